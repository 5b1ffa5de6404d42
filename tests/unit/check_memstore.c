/* check_memstore.c - the memory backend answers the fence counter's edge
 * cases as a Redis master running the daemon's commands and scripts does:
 * INCR errors at 2^63 - 1 and on a value that is not an integer, and the
 * fenced scripts take the lock but answer -1 (no fence) when the counter
 * cannot be incremented or passes POOL_FENCE_MAX (PROTOCOL.md 8.4). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memstore.h"
#include "redis_pool.h"

static struct memstore *ms;
static char buf[256];

static void setup(void)
{
    ms = memstore_new();
}
static void teardown(void)
{
    memstore_free(ms);
}

/* SET key val NX PX 100000: how a test plants a counter. */
static void plant(const char *key, const char *val)
{
    const char *argv[] = {"SET", key, val, "NX", "PX", "100000"};
    size_t lens[] = {3, strlen(key), strlen(val), 2, 2, 6};
    struct pool_reply r;
    memstore_command(ms, 6, argv, lens, &r, buf, sizeof buf);
    ck_assert_int_eq(r.kind, POOL_REPLY_OK);
}

static struct pool_reply incr(const char *key)
{
    const char *argv[] = {"INCR", key};
    size_t lens[] = {4, strlen(key)};
    struct pool_reply r;
    memstore_command(ms, 2, argv, lens, &r, buf, sizeof buf);
    return r;
}

/* The fenced acquire script of one lock key, then the counter. */
static struct pool_reply acquire_fenced(const char *key, const char *counter)
{
    const char *keys[] = {key, counter};
    size_t keylens[] = {strlen(key), strlen(counter)};
    const char *args[] = {"0123456789abcdef0123456789abcdef", "1000", "0"};
    size_t arglens[] = {32, 4, 1};
    struct pool_reply r;
    memstore_script(ms, SCRIPT_ACQUIRE_FENCED, 2, keys, keylens, 3, args, arglens, &r, buf, sizeof buf);
    return r;
}

static struct pool_reply handoff_fenced(const char *key, const char *counter)
{
    const char *keys[] = {key, counter};
    size_t keylens[] = {strlen(key), strlen(counter)};
    const char *args[] = {"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "1000", "0",
                          "1"};
    size_t arglens[] = {32, 32, 4, 1, 1};
    struct pool_reply r;
    memstore_script(ms, SCRIPT_HANDOFF, 2, keys, keylens, 5, args, arglens, &r, buf, sizeof buf);
    return r;
}

static void assert_int(struct pool_reply r, long long v)
{
    ck_assert_int_eq(r.kind, POOL_REPLY_INTEGER);
    ck_assert_int_eq(r.integer, v);
}

static void assert_error(struct pool_reply r, const char *text)
{
    ck_assert_int_eq(r.kind, POOL_REPLY_ERROR);
    ck_assert_msg(r.len == strlen(text) && memcmp(r.str, text, r.len) == 0, "'%.*s'", (int)r.len, r.str);
}

START_TEST(incr_is_redis_incr)
{
    assert_int(incr(",fence"), 1);
    assert_int(incr(",fence"), 2);
    plant("top,fence", "9223372036854775806");
    assert_int(incr("top,fence"), 9223372036854775807LL);
    assert_error(incr("top,fence"), "ERR increment or decrement would overflow");
    plant("text,fence", "12abc");
    assert_error(incr("text,fence"), "ERR value is not an integer or out of range");
    plant("zero,fence", "007");
    assert_error(incr("zero,fence"), "ERR value is not an integer or out of range");
}
END_TEST

START_TEST(fenced_scripts_answer_minus_one_past_the_limit)
{
    char val[32];
    snprintf(val, sizeof val, "%lld", (long long)POOL_FENCE_MAX - 2);
    plant("p,fence", val);
    assert_int(acquire_fenced("a", "p,fence"), POOL_FENCE_MAX - 1);
    assert_int(acquire_fenced("b", "p,fence"), POOL_FENCE_MAX);
    /* Above the limit: the lock is still taken on this master, without a fence. */
    assert_int(acquire_fenced("c", "p,fence"), -1);
    assert_int(acquire_fenced("c", "p,fence"), 0); /* taken: it was set */
    /* At 2^63 - 1 INCR fails; the script answers -1 and the lock is taken. */
    plant("q,fence", "9223372036854775807");
    assert_int(acquire_fenced("d", "q,fence"), -1);
    assert_int(acquire_fenced("d", "q,fence"), 0);
    /* The hand-off from d's holder: handed over, no fence; then d holds the
     * new token and a second hand-off from the old one is refused. */
    assert_int(handoff_fenced("d", "q,fence"), -1);
    assert_int(handoff_fenced("d", "q,fence"), 0);
    plant("r,fence", "x");
    assert_int(handoff_fenced("f", "r,fence"), -1);
    assert_int(handoff_fenced("g", "ok,fence"), 1); /* an honest counter: the next fence */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memstore");
    TCase *tc = tcase_create("fence counter");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, incr_is_redis_incr);
    tcase_add_test(tc, fenced_scripts_answer_minus_one_past_the_limit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
