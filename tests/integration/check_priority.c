/*
 * check_priority.c - PRIORITY preemption through real redlockd processes on
 * real Redis masters: a higher priority takes the lock from a lower one (the
 * holder hears EVENT LOST <id> PREEMPTED at once on the same daemon, at its
 * next extension on another); equal or lower priority waits or gets BUSY.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "redlock.h"

#define NM 3

static struct h_redis M[NM];
static struct h_daemon D[2];

static const struct h_daemon_opts prio_opts = {
    .lock = "retry_count = 1\nretry_delay_ms = 50\n",
};

static void setup(void)
{
    for (int i = 0; i < NM; i++) ck_assert_int_eq(h_redis_start(&M[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(h_daemon_start(&D[i], M, NM, &prio_opts), 0);
}

static void teardown(void)
{
    int code0 = h_daemon_stop(&D[0]), code1 = h_daemon_stop(&D[1]);
    for (int i = 0; i < NM; i++) h_redis_stop(&M[i]);
    ck_assert_int_eq(code0, 0);
    ck_assert_int_eq(code1, 0);
}

/* Send a request line on a raw connection, return its first reply line. */
static void req(int fd, const char *line, char *out, size_t outlen)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s\r\n", line);
    ck_assert_int_eq(h_send_str(fd, buf), 0);
    ck_assert_msg(h_read_line(fd, out, outlen, 5000 * h_slowdown()) > 0, "no reply to %s", line);
}

static void expect_lost(int fd, const char *id, uint32_t within_ms)
{
    char line[256], want[128];
    snprintf(want, sizeof want, "EVENT LOST %s PREEMPTED", id);
    ck_assert_msg(h_read_line(fd, line, sizeof line, within_ms * h_slowdown()) > 0, "no event for %s", id);
    ck_assert_msg(strcmp(line, want) == 0, "got '%s', want '%s'", line, want);
}

START_TEST(test_preempt_on_same_daemon)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[0].sock);
    char line[256], id[64];
    req(a, "ACQUIRE pr 10000 AUTOEXTEND", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "'%s'", line);
    req(b, "ACQUIRE pr 10000 PRIORITY 0 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "no priority must not preempt: '%s'", line);
    uint64_t t0 = h_now_ms();
    req(b, "ACQUIRE pr 10000 PRIORITY 5", line, sizeof line);
    ck_assert_msg(strncmp(line, "OK ", 3) == 0, "priority 5 did not get it: '%s'", line);
    expect_lost(a, id, 1000);
    ck_assert_uint_lt(h_now_ms() - t0, 1000 * h_slowdown());
    /* The new holder owns the keys on the masters. */
    char id2[64], val[64];
    sscanf(line, "OK %63s", id2);
    ck_assert(h_redis_get(&M[0], "pr", val, sizeof val));
    ck_assert_str_eq(val, id2);
    /* Equal priority does not preempt. */
    int c = h_connect_unix(D[0].sock);
    req(c, "ACQUIRE pr 10000 PRIORITY 5 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "equal priority must not preempt: '%s'", line);
    close(a);
    close(b);
    close(c);
}
END_TEST

START_TEST(test_preempt_across_daemons)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char line[256], id[64];
    req(a, "ACQUIRE px 900 AUTOEXTEND PRIORITY 1", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "'%s'", line);
    req(b, "ACQUIRE px 900 PRIORITY 1 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "equal priority across daemons: '%s'", line);
    req(b, "ACQUIRE px 5000 PRIORITY 2", line, sizeof line);
    ck_assert_msg(strncmp(line, "OK ", 3) == 0, "priority 2 did not get it: '%s'", line);
    /* The holder on the other daemon hears it at its next extension (every ttl/3). */
    expect_lost(a, id, 2000);
    close(a);
    close(b);
}
END_TEST

static Suite *priority_suite(void)
{
    Suite *s = suite_create("priority");
    TCase *tc = tcase_create("preemption");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_preempt_on_same_daemon);
    tcase_add_test(tc, test_preempt_across_daemons);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(priority_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
