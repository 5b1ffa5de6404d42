/*
 * fuzz_redis_reply.c - libFuzzer target for what the masters send: bytes fed
 * in arbitrary pieces to a hiredis reader using redlockd's pooled reply
 * objects (daemon/reply_pool.c) and to one using hiredis' own; both must
 * build the same trees, reject the same malformed replies, and every object,
 * finished or half-built, must be freed (ASan's leak check). The one
 * difference allowed: ours refuse arrays over REPLY_MAX_ELEMENTS (as out of
 * memory), where hiredis' own would try to allocate them; the plain reader
 * is not run past such a point.
 */
#include <assert.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "reply_pool.h"
#include "reply_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the piece size, as reads split the stream. */
    size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
    const char *bytes = size > 0 ? (const char *)data + 1 : "";
    size_t len = size > 0 ? size - 1 : 0;
    redisReader *pooled = redisReaderCreateWithFunctions(&reply_pool_functions);
    redisReader *plain = redisReaderCreate();
    assert(pooled != NULL && plain != NULL);
    bool failed = false;
    for (size_t off = 0; off < len && !failed; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        assert(redisReaderFeed(pooled, bytes + off, n) == REDIS_OK);
        assert(redisReaderFeed(plain, bytes + off, n) == REDIS_OK);
        for (;;) {
            void *a = NULL, *b = NULL;
            int ra = redisReaderGetReply(pooled, &a);
            if (ra != REDIS_OK && pooled->err == REDIS_ERR_OOM) { /* our array bound */
                failed = true;
                break;
            }
            int rb = redisReaderGetReply(plain, &b);
            assert(ra == rb);
            if (ra != REDIS_OK) {
                failed = true;
                break;
            }
            assert(reply_trees_equal(a, b));
            if (a == NULL) break;
            pooled->fn->freeObject(a);
            freeReplyObject(b);
        }
    }
    redisReaderFree(pooled); /* frees a half-built reply, if any */
    redisReaderFree(plain);
    reply_pool_free_all();
    return 0;
}
