/*
 * check_memory.c - the in-memory backend ([redis] backend = memory): the
 * same protocol, lifetimes, waits and fences with no Redis at all.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "redlock.h"

static struct h_daemon D;
static struct redlock_client *A, *B;

static const struct h_daemon_opts memory_opts = {
    .redis = "backend = memory\n",
    .lock = "max_ttl_ms = 60000\nretry_count = 1\nretry_delay_ms = 20\n",
};

static void setup(void)
{
    ck_assert_msg(h_daemon_start(&D, NULL, 0, &memory_opts) == 0,
                  "redlockd (memory) did not start");
    A = h_client(D.sock);
    B = h_client(D.sock);
    ck_assert_ptr_nonnull(A);
    ck_assert_ptr_nonnull(B);
}

static void teardown(void)
{
    redlock_close(A);
    redlock_close(B);
    ck_assert_int_eq(h_daemon_stop(&D), 0);
}

static struct redlock_lock take(struct redlock_client *c, const char *res,
                                struct redlock_acquire_opts o)
{
    struct redlock_lock lk;
    int rc = redlock_acquire(c, res, &o, &lk);
    ck_assert_msg(rc == REDLOCK_OK, "acquire %s: %s", res, redlock_errstr(c));
    return lk;
}

START_TEST(test_acquire_busy_release)
{
    struct redlock_lock lk = take(A, "m", (struct redlock_acquire_opts){.ttl_ms = 5000});
    ck_assert_uint_gt(lk.validity_ms, 4000);
    struct redlock_lock other;
    ck_assert_int_eq(redlock_acquire(B, "m", NULL, &other), REDLOCK_ERR_BUSY);
    ck_assert_int_eq(redlock_release(A, lk.id), REDLOCK_OK);
    struct redlock_lock again = take(B, "m", (struct redlock_acquire_opts){.ttl_ms = 5000});
    ck_assert_uint_gt(again.fence, lk.fence); /* fences work in memory too */
    /* All or nothing over several resources. */
    ck_assert_int_eq(redlock_acquire(A, "x,m", NULL, &other), REDLOCK_ERR_BUSY);
    take(A, "x,y", (struct redlock_acquire_opts){.ttl_ms = 5000});
}
END_TEST

START_TEST(test_wait_handoff_and_close_release)
{
    struct redlock_lock lk = take(A, "w", (struct redlock_acquire_opts){.ttl_ms = 20000});
    (void)lk;
    /* B waits; A's connection closes; B gets the lock at once. */
    int fd = h_connect_unix(D.sock);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(h_send_str(fd, "ACQUIRE w 5000 WAIT 5000\r\n"), 0);
    ck_assert(!h_readable(fd, 200));
    uint64_t t0 = h_now_ms();
    redlock_close(A);
    A = h_client(D.sock);
    char line[256];
    ck_assert_int_gt(h_read_line(fd, line, sizeof line, 3000), 0);
    ck_assert_msg(strncmp(line, "OK ", 3) == 0, "waiter got '%s'", line);
    ck_assert_uint_lt(h_now_ms() - t0, 1000 * h_slowdown());
    close(fd);
}
END_TEST

START_TEST(test_expiry_and_autoextend)
{
    take(A, "e", (struct redlock_acquire_opts){.ttl_ms = 300});
    struct redlock_acquire_opts ae = {.ttl_ms = 300, .autoextend = true};
    take(A, "ae", ae);
    h_sleep_ms(900);
    struct redlock_lock lk;
    /* The plain lock expired; the auto-extended one is still held. */
    ck_assert_int_eq(redlock_acquire(B, "e", NULL, &lk), REDLOCK_OK);
    ck_assert_int_eq(redlock_acquire(B, "ae", NULL, &lk), REDLOCK_ERR_BUSY);
}
END_TEST

START_TEST(test_detach_and_info)
{
    struct redlock_acquire_opts o = {.ttl_ms = 10000, .detach = true};
    struct redlock_lock lk = take(A, "d", o);
    redlock_close(A);
    A = h_client(D.sock);
    struct redlock_lock other;
    ck_assert_int_eq(redlock_acquire(B, "d", NULL, &other), REDLOCK_ERR_BUSY);
    ck_assert_int_eq(redlock_release(B, lk.id), REDLOCK_OK);
    static char info[8192];
    ck_assert_int_eq(redlock_command(B, "INFO", info, sizeof info), REDLOCK_OK);
    ck_assert_ptr_nonnull(strstr(info, "masters 1"));
    ck_assert_ptr_nonnull(strstr(info, "master.0.addr memory"));
    ck_assert_ptr_nonnull(strstr(info, "master.0.state up"));
}
END_TEST

START_TEST(test_reentrant_owner)
{
    struct redlock_acquire_opts alice = {.ttl_ms = 5000, .owner = "alice"};
    struct redlock_acquire_opts bob = {.ttl_ms = 5000, .owner = "bob"};
    struct redlock_lock first = take(A, "r1,r2", alice);
    /* The same owner on the same connection gets the same lock again, in any order. */
    struct redlock_lock again = take(A, "r2,r1", alice);
    ck_assert_str_eq(again.id, first.id);
    struct redlock_lock lk;
    ck_assert_int_eq(redlock_acquire(B, "r1,r2", &bob, &lk), REDLOCK_ERR_BUSY);
    /* Another connection naming the same owner is just another client. */
    ck_assert_int_eq(redlock_acquire(B, "r1,r2", &alice, &lk), REDLOCK_ERR_BUSY);
    /* A different set of resources is a different lock. */
    ck_assert_int_eq(redlock_acquire(A, "r1", &alice, &lk), REDLOCK_ERR_BUSY);
    /* Released when the count returns to zero. */
    ck_assert_int_eq(redlock_release(A, first.id), REDLOCK_OK);
    ck_assert_int_eq(redlock_acquire(B, "r1,r2", &bob, &lk), REDLOCK_ERR_BUSY);
    ck_assert_int_eq(redlock_release(A, first.id), REDLOCK_OK);
    take(B, "r1,r2", bob);
}
END_TEST

/* The memory backend runs the same preemption rule as the masters' scripts:
 * a higher PRIORITY takes a lock this daemon wrote (the holder hears it), an
 * equal one does not, and INSPECT shows the new holder. */
START_TEST(test_priority_preempts)
{
    struct redlock_lock low =
        take(A, "p", (struct redlock_acquire_opts){.ttl_ms = 5000, .autoextend = true});
    struct redlock_lock high =
        take(B, "p", (struct redlock_acquire_opts){.ttl_ms = 5000, .priority = 5});
    ck_assert_str_ne(high.id, low.id);
    ck_assert_int_gt(redlock_poll_events(A, 2000), 0);
    struct redlock_lock lk;
    struct redlock_acquire_opts equal = {.ttl_ms = 5000, .priority = 5};
    ck_assert_int_eq(redlock_acquire(A, "p", &equal, &lk), REDLOCK_ERR_BUSY);
    struct redlock_lock higher =
        take(A, "p", (struct redlock_acquire_opts){.ttl_ms = 5000, .priority = 6});
    static char block[4096];
    ck_assert_int_eq(redlock_command(A, "INSPECT p", block, sizeof block), REDLOCK_OK);
    char want[32];
    snprintf(want, sizeof want, "holder %.8s", higher.id);
    ck_assert_msg(strstr(block, want) != NULL, "INSPECT: '%s'", block);
    ck_assert_int_eq(redlock_release(A, higher.id), REDLOCK_OK);
}
END_TEST

static Suite *memory_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("backend");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_acquire_busy_release);
    tcase_add_test(tc, test_wait_handoff_and_close_release);
    tcase_add_test(tc, test_expiry_and_autoextend);
    tcase_add_test(tc, test_detach_and_info);
    tcase_add_test(tc, test_reentrant_owner);
    tcase_add_test(tc, test_priority_preempts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(memory_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
