/*
 * check_lockdelay.c - [lock] lock_delay_ms (issue 14 section 3) with real
 * masters and two daemons on them: a holder whose connection ends without
 * RELEASE or QUIT keeps its keys until min(lock_delay_ms, validity left),
 * and waiters on its daemon and on another one get the lock only after
 * that. RELEASE and QUIT are never delayed; 0 keeps today's behaviour.
 *
 * No timed assertions: "not before the delay" is checked as "not while the
 * old holder's key is on a majority of masters" (nobody can be granted
 * then), "the delay was applied" by the key's PTTL having been cut to at most
 * the delay, and grants by deadlines far shorter than the TTLs involved.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

#define NM 3
#define PREFIX "ld:"
#define INFO_MAX_LINES 128

static struct h_redis M[NM];
static struct h_daemon A, B;

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    int ca = h_daemon_stop(&A), cb = h_daemon_stop(&B);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_msg(ca == 0 && cb == 0, "redlockd exited with %d / %d on SIGTERM (want 0)", ca, cb);
}

/* Start d on the masters with this lock_delay_ms (retry_delay_ms 100, so that
 * a waiter on another daemon polls often). */
static struct h_daemon_opts opts_with(unsigned delay_ms)
{
    static char lock[256];
    snprintf(lock, sizeof lock,
             "key_prefix = " PREFIX
             "\nretry_delay_ms = 100\nretry_jitter_ms = 20\nlock_delay_ms = %u\n",
             delay_ms);
    return (struct h_daemon_opts){.redis = "master_timeout_ms = 200\n", .lock = lock};
}

static void start(struct h_daemon *d, unsigned delay_ms)
{
    struct h_daemon_opts o = opts_with(delay_ms);
    ck_assert_msg(h_daemon_start(d, M, NM, &o) == 0, "redlockd did not start");
}

static const char *key(const char *res)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s%s", PREFIX, res);
    return buf;
}

static int raw(const struct h_daemon *d)
{
    int fd = h_connect_unix(d->sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", d->sock);
    return fd;
}

/* Read an "OK <id> <validity>[ <fence>]" reply within ms into id. */
static void expect_lock(int fd, uint32_t ms, char *id)
{
    char line[256];
    int n = h_read_reply(fd, line, sizeof line, ms * h_slowdown());
    ck_assert_msg(n >= 0, "no reply within %u ms (%d)", ms, n);
    unsigned long long v;
    ck_assert_msg(sscanf(line, "OK %63s %llu", id, &v) == 2 && h_is_lock_id(id),
                  "want OK <id> <validity>, got '%s'", line);
}

static void expect_line(int fd, const char *want)
{
    char line[256];
    ck_assert_msg(h_read_reply(fd, line, sizeof line, 10000 * h_slowdown()) >= 0,
                  "no reply (want %s)", want);
    ck_assert_msg(strcmp(line, want) == 0, "want '%s', got '%s'", want, line);
}

/* An abrupt end of the connection, as a crashed or cut-off holder's. */
static void cut(int fd)
{
    shutdown(fd, SHUT_RDWR);
    close(fd);
}

/* The value of an INFO key of d, or -1 when INFO has no such key. */
static long long info_get(const struct h_daemon *d, const char *name)
{
    int fd = raw(d);
    char hdr[64], line[256];
    raw_send(fd, "INFO");
    ck_assert(h_read_reply(fd, hdr, sizeof hdr, 5000) >= 0);
    int n = -1;
    ck_assert_msg(sscanf(hdr, "DATA %d", &n) == 1 && n > 0 && n <= INFO_MAX_LINES,
                  "INFO header '%s'", hdr);
    long long val = -1;
    size_t kl = strlen(name);
    for (int i = 0; i < n; i++) {
        ck_assert(h_read_line(fd, line, sizeof line, 5000) >= 0);
        if (strncmp(line, name, kl) == 0 && line[kl] == ' ')
            val = atoll(line + kl + 1);
    }
    close(fd);
    return val;
}

/* Masters where the key of res holds val (any value: NULL). */
static size_t holding(const char *res, const char *val)
{
    return h_count_key(M, NM, key(res), val);
}

struct cut_watch {
    const char *res, *id;
    long long limit; /* the key's TTL must be at most this */
};

/* A majority of masters hold the old id with a PTTL cut to at most limit. */
static bool ttl_cut(void *ud)
{
    const struct cut_watch *w = ud;
    size_t n = 0;
    for (int i = 0; i < NM; i++) {
        char v[128];
        long long p = h_redis_pttl(&M[i], key(w->res));
        if (p > 0 && p <= w->limit && h_redis_get(&M[i], key(w->res), v, sizeof v) &&
            strcmp(v, w->id) == 0)
            n++;
    }
    return n >= NM / 2 + 1;
}

struct gone_watch {
    const char *res;
    const char *id;
};

static bool id_gone(void *ud)
{
    const struct gone_watch *g = ud;
    return holding(g->res, g->id) == 0;
}

/* Two waiters racing for the key of a delayed holder. */
struct race {
    const char *res, *id;
    int wa, wb;
    int first;        /* the waiter that got a reply first, -1 */
    size_t violation; /* masters still holding the old id when a reply was seen */
};

static bool granted_after_key(void *ud)
{
    struct race *r = ud;
    bool ra = h_readable(r->wa, 0), rb = h_readable(r->wb, 0);
    size_t held = holding(r->res, r->id);
    if ((ra || rb) && held >= 2) {
        r->violation = held;
        return true;
    }
    if (ra || rb)
        r->first = ra ? r->wa : r->wb;
    return ra || rb;
}

static bool delayed_one(void *ud)
{
    return info_get(ud, "locks_delayed") == 1;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The main case: a holder on A is cut off; its key stays (TTL cut to the
 * delay) and neither A's waiter nor B's is granted while a majority holds
 * it; then both get the lock in turn. */
START_TEST(test_cut_holder_delays_successors_on_both_daemons)
{
    start(&A, 3000);
    start(&B, 3000);
    int h = raw(&A);
    char id[64], wa_id[64], wb_id[64], line[256];
    raw_send(h, "ACQUIRE hot 60000");
    expect_lock(h, 10000, id);
    int wa = raw(&A), wb = raw(&B);
    raw_send(wa, "ACQUIRE hot 60000 WAIT 30000");
    raw_send(wb, "ACQUIRE hot 60000 WAIT 30000");
    ck_assert(!h_readable(wa, 200) && !h_readable(wb, 0));
    cut(h);
    /* The TTL of 60 s is cut to at most the delay: the lock-delay, not a release. */
    struct cut_watch w = {.res = "hot", .id = id, .limit = 3000};
    ck_assert_msg(h_wait_until(ttl_cut, &w, 2000 * h_slowdown()),
                  "the key's TTL was not cut to the delay");
    ck_assert_int_eq(info_get(&A, "locks_delayed"), 1);
    /* LOCKS on A shows it held by nobody, flagged delayed (while the key is still there). */
    int l = raw(&A);
    raw_send(l, "LOCKS");
    bool delayed_shown = false;
    ck_assert(h_read_reply(l, line, sizeof line, 5000) >= 0 && starts(line, "DATA "));
    int n = atoi(line + 5);
    for (int i = 0; i < n; i++) {
        ck_assert(h_read_line(l, line, sizeof line, 5000) >= 0);
        if (starts(line, "lock ") && strstr(line, " state=held") && strstr(line, " conn=- ") &&
            strstr(line, "flags=delayed"))
            delayed_shown = true;
    }
    close(l);
    bool still = holding("hot", id) >= 2;
    ck_assert_msg(delayed_shown || !still, "LOCKS does not show the delayed lock");
    /* Nobody is granted while a majority holds the old id (the waiters are
     * read first: a grant seen and then a majority still holding the key is
     * a violation); then one of them is. */
    struct race r = {.res = "hot", .id = id, .wa = wa, .wb = wb, .first = -1};
    ck_assert_msg(h_wait_until(granted_after_key, &r, 15000 * h_slowdown()),
                  "no waiter was granted after the delay");
    ck_assert_msg(r.violation == 0,
                  "a waiter was granted while the old holder's key is on %zu masters", r.violation);
    int first = r.first;
    int second = first == wa ? wb : wa;
    char *fid = first == wa ? wa_id : wb_id, *sid = first == wa ? wb_id : wa_id;
    expect_lock(first, 1000, fid);
    ck_assert_uint_ge(holding("hot", fid), 2);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "RELEASE %s", fid);
    raw_send(first, cmd);
    expect_line(first, "OK");
    expect_lock(second, 10000, sid);
    ck_assert_uint_ge(holding("hot", sid), 2);
    close(wa);
    close(wb);
}
END_TEST

/* An AUTOEXTEND lock with a long TTL: cut to the delay, not extended any
 * more, gone after it. */
START_TEST(test_autoextend_long_ttl_cut_to_delay)
{
    start(&A, 2000);
    int h = raw(&A);
    char id[64];
    raw_send(h, "ACQUIRE ae 600000 AUTOEXTEND");
    expect_lock(h, 10000, id);
    cut(h);
    struct cut_watch w = {.res = "ae", .id = id, .limit = 2000};
    ck_assert_msg(h_wait_until(ttl_cut, &w, 2000 * h_slowdown()),
                  "the AUTOEXTEND lock's TTL was not cut to the delay");
    struct gone_watch g = {"ae", id};
    ck_assert_msg(h_wait_until(id_gone, &g, 10000 * h_slowdown()),
                  "the delayed AUTOEXTEND lock outlived its delay");
    ck_assert_int_eq(info_get(&A, "locks_delayed"), 1);
}
END_TEST

static bool reloaded(void *ud)
{
    return h_file_contains(((struct h_daemon *)ud)->log, "configuration reloaded");
}

/* lock_delay_ms is reloadable: set by SIGHUP, it applies to the next close. */
START_TEST(test_reload_turns_the_delay_on)
{
    start(&A, 0);
    struct h_daemon_opts o = opts_with(3000);
    ck_assert_int_eq(h_daemon_write_ini(&A, M, NM, &o), 0);
    ck_assert_int_eq(h_daemon_hup(&A), 0);
    ck_assert_msg(h_wait_until(reloaded, &A, 5000 * h_slowdown()), "no reload logged");
    int h = raw(&A);
    char id[64];
    raw_send(h, "ACQUIRE rl 60000");
    expect_lock(h, 10000, id);
    cut(h);
    struct cut_watch w = {.res = "rl", .id = id, .limit = 3000};
    ck_assert_msg(h_wait_until(ttl_cut, &w, 2000 * h_slowdown()),
                  "the reloaded delay was not applied");
    ck_assert_int_eq(info_get(&A, "locks_delayed"), 1);
}
END_TEST

/* lock_delay_ms = 0: a cut holder's keys are deleted at once (30 s TTL). */
START_TEST(test_zero_delay_releases_at_once)
{
    start(&A, 0);
    int h = raw(&A);
    char id[64];
    raw_send(h, "ACQUIRE z 30000");
    expect_lock(h, 10000, id);
    cut(h);
    struct gone_watch g = {"z", id};
    ck_assert_msg(h_wait_until(id_gone, &g, 3000 * h_slowdown()), "not released at the close");
    ck_assert_int_eq(info_get(&A, "locks_delayed"), 0);
}
END_TEST

/* With a delay of a minute, an explicit RELEASE hands the lock to A's
 * waiter, and a holder that says QUIT releases at once too (B's waiter gets
 * it well before the minute). */
START_TEST(test_release_and_quit_are_never_delayed)
{
    start(&A, 60000);
    start(&B, 60000);
    int h = raw(&A), wa = raw(&A), wb = raw(&B);
    char id[64], ida[64], idb[64], cmd[128];
    raw_send(h, "ACQUIRE rq 60000");
    expect_lock(h, 10000, id);
    raw_send(wa, "ACQUIRE rq 60000 WAIT 30000");
    ck_assert(!h_readable(wa, 200));
    snprintf(cmd, sizeof cmd, "RELEASE %s", id);
    raw_send(h, cmd);
    expect_line(h, "OK");
    expect_lock(wa, 10000, ida);
    raw_send(wb, "ACQUIRE rq 60000 WAIT 30000");
    ck_assert(!h_readable(wb, 200));
    raw_send(wa, "QUIT");
    expect_line(wa, "OK");
    ck_assert(h_wait_eof(wa, 5000));
    close(wa);
    expect_lock(wb, 20000, idb); /* B polls every ~100 ms; a delay would take 60 s */
    ck_assert_uint_ge(holding("rq", idb), 2);
    ck_assert_int_eq(info_get(&A, "locks_delayed"), 0);
    close(h);
    close(wb);
}
END_TEST

/* A connection that ends holding many locks: each is delayed and counted,
 * but only the first three are logged one by one, then one line says how
 * many more (a client cannot flood the log). */
static struct h_daemon *log_daemon;
static bool summary_logged(void *ud)
{
    (void)ud;
    return h_file_count(log_daemon->log, "more=3") == 1;
}

START_TEST(test_many_delayed_locks_log_once)
{
    start(&A, 60000);
    int h = raw(&A);
    char id[64], cmd[64];
    for (int i = 0; i < 6; i++) {
        snprintf(cmd, sizeof cmd, "ACQUIRE many%d 30000", i);
        raw_send(h, cmd);
        expect_lock(h, 10000, id);
    }
    cut(h);
    log_daemon = &A;
    ck_assert_msg(h_wait_until(summary_logged, NULL, 5000 * h_slowdown()), "no summary line");
    ck_assert_int_eq(info_get(&A, "locks_delayed"), 6);
    ck_assert_uint_eq(h_file_count(A.log, "lock delayed: its connection ended"), 3);
}
END_TEST

/* A validity shorter than the delay: the keys are not deleted at the close
 * and simply expire with the validity (2 s), long before the minute. */
START_TEST(test_validity_shorter_than_delay)
{
    start(&A, 60000);
    start(&B, 60000);
    int h = raw(&A), wb = raw(&B);
    char id[64], idb[64];
    raw_send(h, "ACQUIRE short 2000");
    expect_lock(h, 10000, id);
    raw_send(wb, "ACQUIRE short 10000 WAIT 30000");
    ck_assert(!h_readable(wb, 100));
    cut(h);
    /* Once A counted the delay, the key is still the old holder's... */
    ck_assert_msg(h_wait_until(delayed_one, &A, 2000 * h_slowdown()),
                  "A did not count a delayed lock");
    bool ra = h_readable(wb, 0);
    size_t held = holding("short", id);
    ck_assert_msg(!(ra && held >= 2), "B's waiter granted while the old key is on %zu masters",
                  held);
    /* ... and B's waiter gets it after the validity, not after the delay. */
    expect_lock(wb, 20000, idb);
    ck_assert_uint_ge(holding("short", idb), 2);
    close(wb);
}
END_TEST

static Suite *lockdelay_suite(void)
{
    Suite *s = suite_create("lockdelay");
    TCase *tc = tcase_create("lockdelay");
    tcase_set_timeout(tc, 90);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cut_holder_delays_successors_on_both_daemons);
    tcase_add_test(tc, test_autoextend_long_ttl_cut_to_delay);
    tcase_add_test(tc, test_zero_delay_releases_at_once);
    tcase_add_test(tc, test_reload_turns_the_delay_on);
    tcase_add_test(tc, test_release_and_quit_are_never_delayed);
    tcase_add_test(tc, test_validity_shorter_than_delay);
    tcase_add_test(tc, test_many_delayed_locks_log_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(lockdelay_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
