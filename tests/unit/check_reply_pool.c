/*
 * check_reply_pool.c - unit tests for daemon/reply_pool.c: a hiredis reader
 * with the pooled object functions must build the same reply trees as
 * hiredis' own functions, reuse freed objects, free partial replies, and
 * refuse array headers past REPLY_MAX_ELEMENTS; with a guard, refuse
 * unsolicited replies and replies over REPLY_MAX_BYTES.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdlib.h>
#include <string.h>

#include "reply_pool.h"
#include "reply_tree.h"

/* Parse one complete reply from bytes with the given reader. */
static redisReply *parse_with(redisReader *r, const char *bytes)
{
    ck_assert_int_eq(redisReaderFeed(r, bytes, strlen(bytes)), REDIS_OK);
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

/* Feed bytes that must fail the reader; returns its error code. */
static int parse_error_with(redisReader *r, const char *bytes)
{
    ck_assert_int_eq(redisReaderFeed(r, bytes, strlen(bytes)), REDIS_OK);
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_ERR);
    ck_assert_ptr_null(reply);
    return r->err;
}

START_TEST(same_trees_as_hiredis)
{
    char long_bulk[2000];
    int n = snprintf(long_bulk, sizeof long_bulk, "$1000\r\n");
    memset(long_bulk + n, 'x', 1000);
    memcpy(long_bulk + n + 1000, "\r\n", 3);
    const char *inputs[] = {
        ":42\r\n",
        ":-9223372036854775808\r\n",
        "+OK\r\n",
        "-NOSCRIPT No matching script\r\n",
        "$-1\r\n",
        "$0\r\n\r\n",
        "$32\r\n0123456789abcdef0123456789abcdef\r\n",
        "$47\r\n01234567890123456789012345678901234567890123456\r\n",  /* inline limit - 1 */
        "$48\r\n012345678901234567890123456789012345678901234567\r\n", /* on the heap */
        long_bulk,
        "*0\r\n",
        "*-1\r\n",
        "*4\r\n:1\r\n*2\r\n$3\r\nfoo\r\n$-1\r\n+OK\r\n-ERR x\r\n",
        "*2\r\n*1\r\n*1\r\n:7\r\n$5\r\nhello\r\n",
    };
    redisReader *pooled = redisReaderCreateWithFunctions(&reply_pool_functions);
    redisReader *plain = redisReaderCreate();
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        redisReply *a = parse_with(pooled, inputs[i]);
        redisReply *b = parse_with(plain, inputs[i]);
        ck_assert_msg(reply_trees_equal(a, b), "input %zu differs from hiredis' own reply", i);
        pooled->fn->freeObject(a);
        freeReplyObject(b);
    }
    redisReaderFree(pooled);
    redisReaderFree(plain);
    reply_pool_free_all();
}
END_TEST

START_TEST(freed_objects_are_reused)
{
    redisReader *r = redisReaderCreateWithFunctions(&reply_pool_functions);
    redisReply *first = parse_with(r, ":1\r\n");
    r->fn->freeObject(first);
    redisReply *second = parse_with(r, "$3\r\nabc\r\n");
    ck_assert_ptr_eq(first, second); /* from the free list, not malloc */
    ck_assert_int_eq(second->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(second->str, "abc");
    ck_assert_int_eq(second->integer, 0); /* nothing left over from the integer */
    r->fn->freeObject(second);
    redisReaderFree(r);
    reply_pool_free_all();
}
END_TEST

START_TEST(many_alive_at_once)
{
    /* More replies alive than the free list keeps: all freed, none leaked
     * (ASan and valgrind runs check the leak). */
    enum { N = 3000 };
    redisReply **replies = calloc(N, sizeof *replies);
    ck_assert_ptr_nonnull(replies);
    redisReader *r = redisReaderCreateWithFunctions(&reply_pool_functions);
    for (int i = 0; i < N; i++) replies[i] = parse_with(r, "*2\r\n:1\r\n$2\r\nhi\r\n");
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(replies[i]->elements, 2);
        r->fn->freeObject(replies[i]);
    }
    free(replies);
    redisReaderFree(r);
    reply_pool_free_all();
}
END_TEST

START_TEST(protocol_error_mid_array_frees_the_partial_reply)
{
    redisReader *r = redisReaderCreateWithFunctions(&reply_pool_functions);
    parse_error_with(r, "*3\r\n:1\r\n$40\r\n0123456789012345678901234567890123456789\r\n?bad\r\n");
    redisReaderFree(r); /* frees the half-built array through our freeObject */
    reply_pool_free_all();
}
END_TEST

START_TEST(huge_array_header_is_refused)
{
    /* 14 bytes that would have hiredis calloc 16 GB. */
    redisReader *r = redisReaderCreateWithFunctions(&reply_pool_functions);
    ck_assert_int_eq(parse_error_with(r, "*2000000000\r\n"), REDIS_ERR_OOM);
    redisReaderFree(r);

    /* The bound itself is accepted. */
    char big[16 + REPLY_MAX_ELEMENTS * 4];
    int n = snprintf(big, sizeof big, "*%d\r\n", REPLY_MAX_ELEMENTS);
    for (int i = 0; i < REPLY_MAX_ELEMENTS; i++) n += snprintf(big + n, sizeof big - (size_t)n, ":1\r\n");
    r = redisReaderCreateWithFunctions(&reply_pool_functions);
    redisReply *ok = parse_with(r, big);
    ck_assert_int_eq(ok->elements, REPLY_MAX_ELEMENTS);
    r->fn->freeObject(ok);
    redisReaderFree(r);
    reply_pool_free_all();
}
END_TEST

/* A reader with a guard, as redis_pool.c sets one on each master. */
static redisReader *guarded_reader(struct reply_guard *g)
{
    memset(g, 0, sizeof *g);
    redisReader *r = redisReaderCreateWithFunctions(&reply_pool_functions);
    ck_assert_ptr_nonnull(r);
    redisReaderSetPrivdata(r, g);
    return r;
}

START_TEST(unsolicited_reply_is_refused)
{
    struct reply_guard g;
    redisReader *r = guarded_reader(&g);
    /* Two commands sent: two replies fine, a third one is refused. */
    g.sent = g.limit = 2;
    redisReply *a = parse_with(r, "+OK\r\n");
    r->fn->freeObject(a);
    a = parse_with(r, "*2\r\n:1\r\n*0\r\n");
    r->fn->freeObject(a);
    ck_assert_uint_eq(g.answered, 2);
    ck_assert_int_eq(parse_error_with(r, "+OK\r\n"), REDIS_ERR_OOM);
    ck_assert_str_eq(g.error, "unsolicited reply");
    redisReaderFree(r);

    /* Every kind of reply counts, nested ones once for the whole tree. */
    const char *kinds[] = {":1\r\n",
                           "$-1\r\n",
                           "*-1\r\n",
                           "*0\r\n",
                           "-ERR x\r\n",
                           "$2\r\nab\r\n",
                           "*2\r\n*1\r\n$1\r\na\r\n*0\r\n"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        r = guarded_reader(&g);
        g.sent = g.limit = 1;
        a = parse_with(r, kinds[i]);
        r->fn->freeObject(a);
        ck_assert_int_eq(parse_error_with(r, kinds[i]), REDIS_ERR_OOM);
        ck_assert_str_eq(g.error, "unsolicited reply");
        redisReaderFree(r);
    }
    /* A command sent after the read began does not count (limit, not sent). */
    r = guarded_reader(&g);
    g.sent = 1;
    ck_assert_int_eq(parse_error_with(r, ":1\r\n"), REDIS_ERR_OOM);
    redisReaderFree(r);
    reply_pool_free_all();
}
END_TEST

START_TEST(oversized_replies_are_refused)
{
    struct reply_guard g;
    /* One bulk string over REPLY_MAX_BYTES. */
    size_t big = REPLY_MAX_BYTES + 1;
    char *bytes = malloc(big + 64);
    ck_assert_ptr_nonnull(bytes);
    int n = snprintf(bytes, 64, "$%zu\r\n", big);
    memset(bytes + n, 'x', big);
    memcpy(bytes + n + big, "\r\n", 3);
    redisReader *r = guarded_reader(&g);
    g.sent = g.limit = 1;
    ck_assert_int_eq(parse_error_with(r, bytes), REDIS_ERR_OOM);
    ck_assert_str_eq(g.error, "reply too large");
    redisReaderFree(r);
    free(bytes);

    /* An array of 1024 strings of 2 KiB: each is small, the whole is not. */
    size_t each = 2048, total = 16 + REPLY_MAX_ELEMENTS * (each + 16);
    bytes = malloc(total);
    ck_assert_ptr_nonnull(bytes);
    size_t off = (size_t)snprintf(bytes, total, "*%d\r\n", REPLY_MAX_ELEMENTS);
    for (int i = 0; i < REPLY_MAX_ELEMENTS; i++) {
        off += (size_t)snprintf(bytes + off, total - off, "$%zu\r\n", each);
        memset(bytes + off, 'y', each);
        off += each;
        memcpy(bytes + off, "\r\n", 2);
        off += 2;
    }
    bytes[off] = '\0';
    r = guarded_reader(&g);
    g.sent = g.limit = 1;
    ck_assert_int_eq(parse_error_with(r, bytes), REDIS_ERR_OOM);
    ck_assert_str_eq(g.error, "reply too large");
    redisReaderFree(r);
    free(bytes);

    /* Small input, large tree: arrays of 1024 integers in an array (4 bytes
     * of input for each object of about 100). */
    r = guarded_reader(&g);
    g.sent = g.limit = 1;
    size_t nlen = 16 + 20 * (16 + REPLY_MAX_ELEMENTS * 4);
    char *nested = malloc(nlen);
    ck_assert_ptr_nonnull(nested);
    off = (size_t)snprintf(nested, nlen, "*%d\r\n", REPLY_MAX_ELEMENTS);
    for (int i = 0; i < 20; i++) {
        off += (size_t)snprintf(nested + off, nlen - off, "*%d\r\n", REPLY_MAX_ELEMENTS);
        for (int j = 0; j < REPLY_MAX_ELEMENTS; j++)
            off += (size_t)snprintf(nested + off, nlen - off, ":1\r\n");
    }
    ck_assert_int_eq(parse_error_with(r, nested), REDIS_ERR_OOM);
    free(nested);
    ck_assert_str_eq(g.error, "reply too large");
    redisReaderFree(r);

    /* Under the bound, replies come one after another: the size is per reply. */
    r = guarded_reader(&g);
    g.sent = g.limit = 64;
    char mid[40000];
    n = snprintf(mid, sizeof mid, "$%d\r\n", 32768);
    memset(mid + n, 'z', 32768);
    memcpy(mid + n + 32768, "\r\n", 3);
    for (int i = 0; i < 64; i++) {
        redisReply *a = parse_with(r, mid);
        ck_assert_uint_eq(a->len, 32768);
        r->fn->freeObject(a);
    }
    ck_assert_ptr_null(g.error);
    redisReaderFree(r);
    reply_pool_free_all();
}
END_TEST

static Suite *reply_pool_suite(void)
{
    Suite *s = suite_create("reply_pool");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, same_trees_as_hiredis);
    tcase_add_test(tc, freed_objects_are_reused);
    tcase_add_test(tc, many_alive_at_once);
    tcase_add_test(tc, protocol_error_mid_array_frees_the_partial_reply);
    tcase_add_test(tc, huge_array_header_is_refused);
    tcase_add_test(tc, unsolicited_reply_is_refused);
    tcase_add_test(tc, oversized_replies_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reply_pool_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
