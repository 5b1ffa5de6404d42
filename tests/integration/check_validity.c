/*
 * check_validity.c - the validity an OK reply reports (PROTOCOL.md 8.2,
 * issue 14 "Also"): what is left when the reply is written, so a reply that
 * waited behind an earlier one on its connection (pipelining) does not
 * report the validity it had when it was decided.
 *
 * The check is a bound, not a timing: the daemon's validity ends at most
 * ttl after the winning attempt's send, which was before the key was seen
 * on a majority (t_seen); the reply is written after the blocking holder's
 * RELEASE was sent (t_rel). So the reported validity can be at most
 * ttl - (t_rel - t_seen); the wait between the two is a condition on the
 * daemon's own state (LOCKS shows the lock a second old).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

#define NM 3
#define PREFIX "v:"

static struct h_redis M[NM];
static struct h_daemon D;

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
    struct h_daemon_opts o = {.redis = "master_timeout_ms = 200\n",
                              .lock = "key_prefix = " PREFIX "\n"};
    ck_assert_msg(h_daemon_start(&D, M, NM, &o) == 0, "redlockd did not start");
}

static void teardown(void)
{
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
}

static int raw(void)
{
    int fd = h_connect_unix(D.sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", D.sock);
    return fd;
}

/* Read "OK <id> <validity>[ <fence>]": the id into id, the validity returned. */
static unsigned long long expect_lock(int fd, char *id)
{
    char line[256];
    int n = h_read_reply(fd, line, sizeof line, 10000 * h_slowdown());
    ck_assert_msg(n >= 0, "no reply (%d)", n);
    unsigned long long v;
    ck_assert_msg(sscanf(line, "OK %63s %llu", id, &v) == 2 && h_is_lock_id(id),
                  "want OK <id> <validity>, got '%s'", line);
    return v;
}

/* A numeric field of the LOCKS line of the held lock on res, or -1. */
static long long locks_field(const char *res, const char *field)
{
    int fd = raw();
    char line[1024], want_res[128], want_field[64];
    snprintf(want_res, sizeof want_res, " res=%s ", res);
    snprintf(want_field, sizeof want_field, " %s=", field);
    raw_send(fd, "LOCKS");
    ck_assert(h_read_reply(fd, line, sizeof line, 5000) >= 0 && starts(line, "DATA "));
    int n = atoi(line + 5);
    long long val = -1;
    for (int i = 0; i < n; i++) {
        ck_assert(h_read_line(fd, line, sizeof line, 5000) >= 0);
        const char *f;
        if (strstr(line, " state=held ") && strstr(line, want_res) &&
            (f = strstr(line, want_field)) != NULL)
            val = atoll(f + strlen(want_field));
    }
    close(fd);
    return val;
}

struct field_watch {
    const char *res, *field;
    long long min, max; /* wait until min <= value <= max */
};

static bool field_in_range(void *ud)
{
    const struct field_watch *w = ud;
    long long v = locks_field(w->res, w->field);
    return v >= w->min && v <= w->max;
}

struct key_watch {
    const char *key;
    long long min_pttl; /* a majority holds the key with at least this PTTL */
};

static bool key_on_majority(void *ud)
{
    const struct key_watch *w = ud;
    int n = 0;
    for (int i = 0; i < NM; i++)
        n += h_redis_pttl(&M[i], w->key) >= w->min_pttl;
    return n >= NM / 2 + 1;
}

/* A holder of "blk" on its own connection; returns its fd, id in id. */
static int hold_blocker(char *id)
{
    int h = raw();
    raw_send(h, "ACQUIRE blk 60000");
    expect_lock(h, id);
    return h;
}

static void release_blocker(int h, const char *id)
{
    char cmd[128], line[64];
    snprintf(cmd, sizeof cmd, "RELEASE %s", id);
    raw_send(h, cmd);
    ck_assert(h_read_reply(h, line, sizeof line, 10000) >= 0);
    ck_assert_str_eq(line, "OK");
    close(h);
}

START_TEST(test_pipelined_acquire_reports_validity_left_at_write)
{
    char bid[64], wid[64], pid[64];
    int h = hold_blocker(bid);
    int p = raw();
    /* The second ACQUIRE is granted at once, but its reply waits behind the first. */
    static const char two[] = "ACQUIRE blk 60000 WAIT 30000\r\nACQUIRE pb 10000\r\n";
    ck_assert_int_eq(h_send_all(p, two, sizeof two - 1), 0);
    struct key_watch kw = {PREFIX "pb", 1};
    ck_assert_msg(h_wait_until(key_on_majority, &kw, 10000 * h_slowdown()), "pb was not granted");
    uint64_t t_seen = h_now_ms();
    ck_assert_msg(!h_readable(p, 0), "a reply came out of order");
    struct field_watch fw = {"pb", "age_ms", 1000, 1LL << 62};
    ck_assert_msg(h_wait_until(field_in_range, &fw, 10000 * h_slowdown()),
                  "LOCKS never showed pb a second old");
    uint64_t t_rel = h_now_ms();
    release_blocker(h, bid);
    expect_lock(p, wid);
    unsigned long long v = expect_lock(p, pid);
    unsigned long long bound = 10000 - (t_rel - t_seen);
    ck_assert_msg(
        v <= bound,
        "the deferred OK reports %llu ms of validity; at most %llu were left when it was written",
        v, bound);
    close(p);
}
END_TEST

START_TEST(test_pipelined_extend_reports_validity_left_at_write)
{
    char bid[64], eid[64], wid[64], xid[64], cmd[200];
    int p = raw();
    raw_send(p, "ACQUIRE pe 5000");
    expect_lock(p, eid);
    int h = hold_blocker(bid);
    snprintf(cmd, sizeof cmd, "ACQUIRE blk 60000 WAIT 30000\r\nEXTEND %s 30000\r\n", eid);
    ck_assert_int_eq(h_send_all(p, cmd, strlen(cmd)), 0);
    struct key_watch kw = {PREFIX "pe", 20000};
    ck_assert_msg(h_wait_until(key_on_majority, &kw, 10000 * h_slowdown()), "pe was not extended");
    uint64_t t_seen = h_now_ms();
    struct field_watch fw = {"pe", "validity_ms", 0, 28600};
    ck_assert_msg(h_wait_until(field_in_range, &fw, 10000 * h_slowdown()),
                  "LOCKS never showed pe's validity going down");
    uint64_t t_rel = h_now_ms();
    release_blocker(h, bid);
    expect_lock(p, wid);
    unsigned long long v = expect_lock(p, xid);
    ck_assert_str_eq(xid, eid);
    unsigned long long bound = 30000 - (t_rel - t_seen);
    ck_assert_msg(
        v <= bound,
        "the deferred EXTEND reports %llu ms of validity; at most %llu were left when written", v,
        bound);
    close(p);
}
END_TEST

static Suite *validity_suite(void)
{
    Suite *s = suite_create("validity");
    TCase *tc = tcase_create("validity");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pipelined_acquire_reports_validity_left_at_write);
    tcase_add_test(tc, test_pipelined_extend_reports_validity_left_at_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(validity_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
