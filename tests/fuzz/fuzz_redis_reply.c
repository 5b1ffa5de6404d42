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

static bool same_tree(const redisReply *a, const redisReply *b)
{
    if (a == NULL || b == NULL) return a == b;
    if (a->type != b->type || a->integer != b->integer || a->len != b->len || a->elements != b->elements)
        return false;
    if ((a->str == NULL) != (b->str == NULL)) return false;
    if (a->str != NULL && memcmp(a->str, b->str, a->len + 1) != 0) return false;
    for (size_t i = 0; i < a->elements; i++)
        if (!same_tree(a->element[i], b->element[i])) return false;
    return true;
}

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
            assert(same_tree(a, b));
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
