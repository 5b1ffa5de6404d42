/*
 * check_lifetimes.c - integration tests of the lock-lifetimes issue:
 * connection-bound release, DETACH, AUTOEXTEND with EVENT LOST and MAXHOLD,
 * WAIT with in-process hand-off, and `redlock run`.
 *
 * Fresh processes per test, as in check_core.c. retry_delay_ms is 1000 here
 * on purpose: a WAIT that is granted well under a second after the holder
 * released proves the in-process hand-off rather than a lucky retry.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"
#include "redlock.h"

#define NM 3
#define PREFIX "l:"
#define RETRY_DELAY_MS 1000
#define EXIT_HELD 75 /* redlock run: the lock could not be had (EX_TEMPFAIL) */
#define EXIT_LOST 76 /* redlock run: the lock was lost while the command ran */

static struct h_redis M[NM];
static struct h_daemon D;
static struct redlock_client *C;

static const struct h_daemon_opts life_opts = {
    .redis = "master_timeout_ms = 100\n",
    .lock = "key_prefix = " PREFIX "\ndefault_ttl_ms = 10000\nretry_count = 1\n"
            "retry_delay_ms = 1000\nretry_jitter_ms = 100\n",
};

static struct redlock_client *client(void)
{
    struct redlock_client *c = h_client(D.sock);
    ck_assert_msg(c != NULL, "cannot connect to redlockd at %s", D.sock);
    return c;
}

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
    ck_assert_msg(h_daemon_start(&D, M, NM, &life_opts) == 0, "redlockd did not start");
    C = client();
}

static void teardown(void)
{
    redlock_close(C);
    C = NULL;
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
}

/* ---- helpers ------------------------------------------------------------------ */

static const char *key(const char *res)
{
    static char buf[2][256];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s%s", PREFIX, res);
    return buf[which];
}

static size_t holding(const char *res, const char *id)
{
    return h_count_key(M, NM, key(res), id);
}

/* holding() once it reaches want (the last master may answer after the reply). */
static size_t holding_settled(const char *res, const char *id, size_t want)
{
    return h_count_key_settled(M, NM, key(res), id, want);
}

static bool absent_everywhere(void *ud)
{
    return holding(ud, NULL) == 0;
}

static bool wait_absent(const char *res, uint32_t ms)
{
    return h_wait_until(absent_everywhere, (void *)res, ms);
}

static void acquire_ok(struct redlock_client *c, const char *res,
                       const struct redlock_acquire_opts *o, struct redlock_lock *lk)
{
    int rc = redlock_acquire(c, res, o, lk);
    ck_assert_msg(rc == REDLOCK_OK, "acquire %s: %s (%s)", res, redlock_status_name(rc),
                  redlock_errstr(c));
}

static int raw(void)
{
    int fd = h_connect_unix(D.sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", D.sock);
    return fd;
}

/* Read an "OK <id> <validity>" reply within ms into id. */
static void raw_expect_lock(int fd, uint32_t ms, char *id)
{
    char line[256];
    int n = h_read_reply(fd, line, sizeof line, ms);
    ck_assert_msg(n >= 0, "no reply within %u ms (%d)", ms, n);
    unsigned long long v;
    ck_assert_msg(sscanf(line, "OK %63s %llu", id, &v) == 2 && h_is_lock_id(id),
                  "want OK <id> <validity>, got '%s'", line);
}

/* Collects pushed events. */
struct events {
    int n;
    char name[16], lock_id[64], reason[32];
    uint64_t at_ms;
};

static void on_event(const struct redlock_event *ev, void *ud)
{
    struct events *e = ud;
    if (e->n++ == 0) {
        snprintf(e->name, sizeof e->name, "%s", ev->name ? ev->name : "");
        snprintf(e->lock_id, sizeof e->lock_id, "%s", ev->lock_id ? ev->lock_id : "");
        snprintf(e->reason, sizeof e->reason, "%s", ev->reason ? ev->reason : "");
        e->at_ms = h_now_ms();
    }
}

/* Poll c for events until one arrived, ms passed or the connection failed. */
static void wait_event(struct redlock_client *c, struct events *e, uint32_t ms)
{
    uint64_t deadline = h_now_ms() + ms;
    while (e->n == 0) {
        uint64_t now = h_now_ms();
        if (now >= deadline)
            break;
        int rc = redlock_poll_events(c, (uint32_t)(deadline - now));
        if (rc < 0) {
            fprintf(stderr, "poll_events: %s (%s)\n", redlock_status_name(rc), redlock_errstr(c));
            break;
        }
    }
}

/* ---- connection-bound locks, DETACH ------------------------------------------------- */

START_TEST(test_close_releases_at_once)
{
    struct redlock_client *a = client();
    struct redlock_lock l1, l2, l3;
    struct redlock_acquire_opts plain = {.ttl_ms = 30000};
    struct redlock_acquire_opts ae = {.ttl_ms = 30000, .autoextend = true};
    acquire_ok(a, "cr1", &plain, &l1);
    acquire_ok(a, "cr2,cr3", &ae, &l2);
    ck_assert_uint_eq(holding_settled("cr1", l1.id, 3), 3);
    ck_assert_uint_eq(holding_settled("cr3", l2.id, 3), 3);
    redlock_close(a);
    /* TTL is 30 s: only the connection-close release explains a quick delete. */
    ck_assert_msg(wait_absent("cr1", 2000), "cr1 still held 2 s after close");
    ck_assert_msg(wait_absent("cr2", 2000), "cr2 still held 2 s after close");
    ck_assert_msg(wait_absent("cr3", 2000), "cr3 still held 2 s after close");
    acquire_ok(C, "cr1", &plain, &l3);

    /* The same for an abrupt close of a raw connection. */
    int fd = raw();
    char id[64];
    raw_send(fd, "ACQUIRE cr4 30000");
    raw_expect_lock(fd, 10000, id);
    ck_assert_uint_eq(holding_settled("cr4", id, 3), 3);
    close(fd);
    ck_assert_msg(wait_absent("cr4", 2000), "cr4 still held 2 s after close");
}
END_TEST

START_TEST(test_detach_survives_close)
{
    struct redlock_client *a = client();
    struct redlock_lock det, ctl, ext;
    struct redlock_acquire_opts od = {.ttl_ms = 30000, .detach = true};
    struct redlock_acquire_opts op = {.ttl_ms = 30000};
    acquire_ok(a, "dt", &od, &det);
    acquire_ok(a, "dt-ctl", &op, &ctl);
    redlock_close(a);
    /* Once the plain lock is gone the daemon has handled the close... */
    ck_assert_msg(wait_absent("dt-ctl", 2000), "plain lock not released on close");
    /* ...and the detached one is still there. */
    ck_assert_uint_eq(holding_settled("dt", det.id, 3), 3);

    /* Another connection extends and releases it by id. */
    struct redlock_client *b = client();
    ck_assert_int_eq(redlock_extend(b, det.id, 20000, &ext), REDLOCK_OK);
    ck_assert_msg(ext.validity_ms > 15000, "validity %llu", (unsigned long long)ext.validity_ms);
    ck_assert_int_gt(h_redis_pttl(&M[0], key("dt")), 15000);
    ck_assert_int_eq(redlock_release(b, det.id), REDLOCK_OK);
    ck_assert_msg(wait_absent("dt", 2000), "detached lock not deleted by RELEASE");
    ck_assert_int_eq(redlock_release(b, det.id), REDLOCK_ERR_NOTHELD);
    /* Closing b after touching the lock must not matter either. */
    redlock_close(b);

    /* A detached lock with a short TTL simply expires. */
    struct redlock_acquire_opts shortd = {.ttl_ms = 300, .detach = true};
    acquire_ok(C, "dt-short", &shortd, &det);
    ck_assert_msg(wait_absent("dt-short", 3000), "detached lock did not expire");
    ck_assert_int_eq(redlock_extend(C, det.id, 1000, NULL), REDLOCK_ERR_NOTHELD);
}
END_TEST

START_TEST(test_autoextend_with_detach_is_badreq)
{
    int fd = raw();
    char line[256];
    raw_send(fd, "ACQUIRE x 1000 AUTOEXTEND DETACH");
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(strncmp(line, "ERR BADREQ", 10) == 0, "'%s'", line);
    close(fd);
    ck_assert_uint_eq(holding("x", NULL), 0);
}
END_TEST

START_TEST(test_shutdown_releases_bound_keeps_detached)
{
    struct events ev = {0};
    redlock_set_event_handler(C, on_event, &ev);
    struct redlock_lock bound, det;
    struct redlock_acquire_opts ob = {.ttl_ms = 30000};
    struct redlock_acquire_opts od = {.ttl_ms = 30000, .detach = true};
    acquire_ok(C, "sd-bound", &ob, &bound);
    acquire_ok(C, "sd-detached", &od, &det);
    ck_assert_int_eq(h_daemon_stop(&D), 0);
    /* The owner was told, the bound lock is gone, the detached one stays. */
    wait_event(C, &ev, 2000);
    ck_assert_msg(ev.n > 0, "no EVENT LOST ... SHUTDOWN before the connection closed");
    ck_assert_str_eq(ev.lock_id, bound.id);
    ck_assert_str_eq(ev.reason, "SHUTDOWN");
    ck_assert_uint_eq(holding_settled("sd-bound", NULL, 0), 0);
    ck_assert_uint_eq(holding_settled("sd-detached", det.id, 3), 3);
}
END_TEST

/* ---- AUTOEXTEND ----------------------------------------------------------------------- */

struct ae_watch {
    struct redlock_client *c;
    struct events *ev;
    const char *res;
    const char *id;
};

/* True (a failure) when the lock is off a majority or an event arrived. */
static bool autoextend_broke(void *ud)
{
    struct ae_watch *w = ud;
    if (redlock_poll_events(w->c, 0) < 0 || w->ev->n > 0)
        return true;
    return holding(w->res, w->id) < 2;
}

START_TEST(test_autoextend_keeps_lock)
{
    struct events ev = {0};
    redlock_set_event_handler(C, on_event, &ev);
    struct redlock_acquire_opts o = {.ttl_ms = 500, .autoextend = true};
    struct redlock_lock lk;
    acquire_ok(C, "ae", &o, &lk);
    ck_assert_msg(lk.validity_ms <= 500, "validity %llu", (unsigned long long)lk.validity_ms);
    /* Four TTLs: the key must stay on a majority, with no event. */
    struct ae_watch w = {C, &ev, "ae", lk.id};
    ck_assert_msg(!h_wait_until(autoextend_broke, &w, 2000),
                  "500 ms AUTOEXTEND lock broke (held on %zu masters, %d events: %s %s)",
                  holding("ae", lk.id), ev.n, ev.name, ev.reason);
    long long pttl = h_redis_pttl(&M[0], key("ae"));
    ck_assert_msg(pttl > 0 && pttl <= 500, "PTTL %lld: extended by its own TTL", pttl);
    /* RELEASE stops it. */
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
    ck_assert_msg(wait_absent("ae", 2000), "released AUTOEXTEND lock still on masters");
    ck_assert_int_eq(redlock_ping(C), REDLOCK_OK);
    ck_assert_int_eq(ev.n, 0);
}
END_TEST

START_TEST(test_autoextend_lost_before_validity)
{
    const uint32_t ttl = 1500;
    struct events ev = {0};
    redlock_set_event_handler(C, on_event, &ev);
    struct redlock_acquire_opts o = {.ttl_ms = ttl, .autoextend = true};
    struct redlock_lock lk;
    acquire_ok(C, "al", &o, &lk);
    ck_assert_uint_eq(holding_settled("al", lk.id, 3), 3);

    ck_assert_int_eq(h_redis_pause(&M[1]), 0);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    /* Every validity the daemon promised so far began before this moment,
     * so none of them lasts past stopped + ttl. */
    uint64_t stopped = h_now_ms();
    wait_event(C, &ev, 5000);
    ck_assert_msg(ev.n > 0, "no EVENT LOST within 5 s of losing the quorum");
    ck_assert_str_eq(ev.name, "LOST");
    ck_assert_str_eq(ev.lock_id, lk.id);
    ck_assert_str_eq(ev.reason, "NOQUORUM");
    ck_assert_msg(ev.at_ms < stopped + ttl,
                  "EVENT LOST came %llu ms after the quorum was lost, past the %u ms TTL",
                  (unsigned long long)(ev.at_ms - stopped), ttl);
    /* The daemon forgot the lock. */
    uint64_t t0 = h_now_ms();
    ck_assert_int_eq(redlock_extend(C, lk.id, 1000, NULL), REDLOCK_ERR_NOTHELD);
    ck_assert_msg(h_now_ms() - t0 < 2000, "EXTEND of a lost lock took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
}
END_TEST

/* A key of another token on one master (a late SET of a failed attempt, a
 * restarted master re-learning holders) must not cost the holder its lock:
 * the extension stands on the majority. */
START_TEST(test_minority_other_token_is_not_taken)
{
    struct events ev = {0};
    redlock_set_event_handler(C, on_event, &ev);
    struct redlock_acquire_opts o = {.ttl_ms = 500, .autoextend = true};
    struct redlock_lock lk;
    acquire_ok(C, "mt", &o, &lk);
    ck_assert(h_redis_set_px(&M[0], key("mt"), "0123456789abcdef0123456789abcdef", 10000));
    struct ae_watch w = {C, &ev, "mt", lk.id};
    ck_assert_msg(
        !h_wait_until(autoextend_broke, &w, 1500),
        "one foreign key broke a 500 ms AUTOEXTEND lock (held on %zu masters, %d events: %s %s)",
        holding("mt", lk.id), ev.n, ev.name, ev.reason);
    ck_assert_int_eq(redlock_extend(C, lk.id, 500, NULL), REDLOCK_OK);
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
    ck_assert_int_eq(ev.n, 0);
}
END_TEST

static bool tk_key_gone(void *ud)
{
    return holding("tk", ud) == 0;
}

/* Taken on a majority: the owner hears TAKEN, and the key it still has is left
 * to expire, not deleted before the owner can have read the event. */
START_TEST(test_taken_leaves_keys_to_expire)
{
    struct events ev = {0};
    redlock_set_event_handler(C, on_event, &ev);
    struct redlock_acquire_opts o = {.ttl_ms = 3000, .autoextend = true};
    struct redlock_lock lk;
    acquire_ok(C, "tk", &o, &lk);
    for (int i = 0; i < 2; i++)
        ck_assert(h_redis_set_px(&M[i], key("tk"), "0123456789abcdef0123456789abcdef", 10000));
    wait_event(C, &ev, 5000);
    ck_assert_msg(ev.n > 0, "no EVENT LOST within 5 s of a majority taken");
    ck_assert_str_eq(ev.lock_id, lk.id);
    ck_assert_str_eq(ev.reason, "TAKEN");
    ck_assert_msg(!h_wait_until(tk_key_gone, lk.id, 500), "the lost lock's last key was deleted");
    long long pttl = h_redis_pttl(&M[2], key("tk"));
    ck_assert_msg(pttl > 0 && pttl <= 3000, "PTTL %lld of the key left to expire", pttl);
    ck_assert_int_eq(redlock_extend(C, lk.id, 1000, NULL), REDLOCK_ERR_NOTHELD);
}
END_TEST

START_TEST(test_maxhold)
{
    struct events ev = {0};
    redlock_set_event_handler(C, on_event, &ev);
    struct redlock_acquire_opts o = {.ttl_ms = 500, .autoextend = true, .maxhold_ms = 1200};
    struct redlock_lock lk;
    uint64_t t0 = h_now_ms();
    acquire_ok(C, "mh", &o, &lk);
    wait_event(C, &ev, 5000);
    ck_assert_msg(ev.n > 0, "no EVENT LOST ... MAXHOLD within 5 s");
    ck_assert_str_eq(ev.name, "LOST");
    ck_assert_str_eq(ev.lock_id, lk.id);
    ck_assert_str_eq(ev.reason, "MAXHOLD");
    uint64_t after = ev.at_ms - t0;
    /* Counted from the grant, which is after t0: never early. */
    ck_assert_msg(after >= 1190 && after < 1200 + 2000, "MAXHOLD 1200 fired after %llu ms",
                  (unsigned long long)after);
    ck_assert_msg(wait_absent("mh", 2000), "MAXHOLD lock not released on the masters");
    ck_assert_int_eq(redlock_extend(C, lk.id, 1000, NULL), REDLOCK_ERR_NOTHELD);
}
END_TEST

/* ---- WAIT ------------------------------------------------------------------------------- */

START_TEST(test_wait_handoff_is_prompt)
{
    struct redlock_lock a;
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    acquire_ok(C, "w", &o, &a);
    int b = raw();
    raw_send(b, "ACQUIRE w 30000 WAIT 10000");
    ck_assert_msg(!h_readable(b, 300), "the waiter got a reply while the lock was held");
    uint64_t t1 = h_now_ms();
    ck_assert_int_eq(redlock_release(C, a.id), REDLOCK_OK);
    char id[64];
    raw_expect_lock(b, 5000, id);
    uint64_t took = h_now_ms() - t1;
    ck_assert_msg(took < 600, "waiter got the lock %llu ms after release (retry delay is %d)",
                  (unsigned long long)took, RETRY_DELAY_MS);
    ck_assert_uint_eq(holding_settled("w", id, 3), 3);
    close(b);
}
END_TEST

START_TEST(test_wait_times_out_on_schedule)
{
    struct redlock_lock a, lk;
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    acquire_ok(C, "wt", &o, &a);
    struct redlock_client *b = client();
    struct redlock_acquire_opts ow = {.ttl_ms = 30000, .wait_ms = 1500};
    uint64_t t0 = h_now_ms();
    ck_assert_int_eq(redlock_acquire(b, "wt", &ow, &lk), REDLOCK_ERR_BUSY);
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(took >= 1400 && took < 1500 + 2000, "WAIT 1500 gave up after %llu ms",
                  (unsigned long long)took);
    ck_assert_uint_eq(holding_settled("wt", a.id, 3), 3);
    redlock_close(b);
}
END_TEST

START_TEST(test_wait_first_come_first_served)
{
    struct redlock_lock a;
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    acquire_ok(C, "wf", &o, &a);
    int b = raw(), c = raw();
    raw_send(b, "ACQUIRE wf 30000 WAIT 10000");
    ck_assert(!h_readable(b, 200));
    raw_send(c, "ACQUIRE wf 30000 WAIT 10000");
    ck_assert(!h_readable(c, 200));
    ck_assert_int_eq(redlock_release(C, a.id), REDLOCK_OK);
    char idb[64], idc[64], line[256], cmd[128];
    raw_expect_lock(b, 5000, idb);
    ck_assert_msg(!h_readable(c, 300), "second waiter served while the first holds the lock");
    snprintf(cmd, sizeof cmd, "RELEASE %s", idb);
    raw_send(b, cmd);
    ck_assert_int_ge(h_read_reply(b, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "OK");
    raw_expect_lock(c, 5000, idc);
    ck_assert_uint_eq(holding_settled("wf", idc, 3), 3);
    close(b);
    close(c);
}
END_TEST

START_TEST(test_waiter_that_closes_leaves_queue)
{
    struct redlock_lock a, lk;
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    acquire_ok(C, "wq", &o, &a);
    int b = raw();
    raw_send(b, "ACQUIRE wq 30000 WAIT 10000");
    ck_assert(!h_readable(b, 200));
    close(b);
    ck_assert_int_eq(redlock_ping(C), REDLOCK_OK);
    ck_assert_int_eq(redlock_release(C, a.id), REDLOCK_OK);
    /* No WAIT: the lock must be free now, not handed to the closed waiter. */
    struct redlock_client *c = client();
    acquire_ok(c, "wq", &o, &lk);
    ck_assert_uint_eq(holding_settled("wq", lk.id, 3), 3);
    redlock_close(c);
}
END_TEST

START_TEST(test_wait_for_foreign_holder)
{
    /* Held by another Redlock client: no hand-off, jittered retries. */
    for (int i = 0; i < NM; i++)
        ck_assert(h_redis_set_px(&M[i], key("wfor"), "foreign-token", 1500));
    struct redlock_lock lk;
    struct redlock_acquire_opts ow = {.ttl_ms = 10000, .wait_ms = 6000};
    uint64_t t0 = h_now_ms();
    acquire_ok(C, "wfor", &ow, &lk);
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(took >= 1300 && took < 1500 + RETRY_DELAY_MS + 100 + 1500,
                  "got a 1500 ms foreign lock after %llu ms", (unsigned long long)took);
    ck_assert_uint_eq(holding_settled("wfor", lk.id, 3), 3);
}
END_TEST

START_TEST(test_others_served_while_some_wait)
{
    struct redlock_lock a, lk;
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    acquire_ok(C, "contended", &o, &a);
    for (int i = 0; i < NM; i++)
        ck_assert(h_redis_set_px(&M[i], key("foreign"), "foreign-token", 30000));
    int w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = raw();
        raw_send(w[i],
                 i < 3 ? "ACQUIRE contended 30000 WAIT 8000" : "ACQUIRE foreign 30000 WAIT 8000");
    }
    struct redlock_client *d = client();
    uint64_t t0 = h_now_ms();
    for (int i = 0; i < 20; i++) {
        char res[32];
        snprintf(res, sizeof res, "free-%d", i);
        ck_assert_int_eq(redlock_ping(d), REDLOCK_OK);
        acquire_ok(d, res, &o, &lk);
        ck_assert_int_eq(redlock_release(d, lk.id), REDLOCK_OK);
    }
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(took < 2000 * h_slowdown(), "20 rounds took %llu ms with waiters queued",
                  (unsigned long long)took);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(!h_readable(w[i], 0), "waiter %d was answered while the lock is held", i);
        close(w[i]);
    }
    redlock_close(d);
}
END_TEST

/* ---- redlock run / the CLI ------------------------------------------------------------ */

static pid_t cli(const char *out_path, const char *const *args)
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)h_redlock_bin();
    argv[n++] = "-a";
    argv[n++] = D.sock;
    while (*args && n < 31)
        argv[n++] = (char *)*args++;
    argv[n] = NULL;
    ck_assert_msg(access(argv[0], X_OK) == 0, "%s is not executable", argv[0]);
    pid_t pid = h_spawn(argv, out_path);
    ck_assert_int_gt(pid, 0);
    return pid;
}

/* Run the CLI to completion (30 s at most) and return its exit code. */
static int cli_run(const char *out_path, const char *const *args)
{
    int code = h_wait_exit(cli(out_path, args), 30000);
    ck_assert_msg(code >= 0, "redlock did not exit within 30 s");
    return code;
}

static void read_file(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
}

START_TEST(test_cli_ping)
{
    ck_assert_int_eq(cli_run(NULL, (const char *[]){"ping", NULL}), 0);
}
END_TEST

START_TEST(test_run_passes_exit_codes)
{
    ck_assert_int_eq(cli_run(NULL, (const char *[]){"run", "rx", "--", "true", NULL}), 0);
    ck_assert_int_eq(cli_run(NULL, (const char *[]){"run", "rx", "--", "sh", "-c", "exit 7", NULL}),
                     7);
    /* The command sees its lock id, and the lock is really held meanwhile. */
    char script[256];
    snprintf(script, sizeof script,
             "[ ${#REDLOCK_LOCK_ID} -eq 32 ] && "
             "[ \"$(redis-cli -p %d GET %s)\" = \"$REDLOCK_LOCK_ID\" ]",
             M[0].port, key("rx"));
    ck_assert_int_eq(cli_run(NULL, (const char *[]){"run", "rx", "--", "sh", "-c", script, NULL}),
                     0);
    ck_assert_msg(wait_absent("rx", 2000), "redlock run did not release");
}
END_TEST

START_TEST(test_run_exits_75_when_held)
{
    struct redlock_lock a;
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    acquire_ok(C, "rh", &o, &a);
    char mark[H_PATH_MAX + 16];
    snprintf(mark, sizeof mark, "%s/ran", D.dir);
    /* -n: one attempt (without -w/-n run would wait until the lock is free). */
    ck_assert_int_eq(cli_run(NULL, (const char *[]){"run", "-n", "rh", "--", "touch", mark, NULL}),
                     EXIT_HELD);
    ck_assert_msg(access(mark, F_OK) != 0, "the command ran without the lock");
    ck_assert_uint_eq(holding_settled("rh", a.id, 3), 3);
}
END_TEST

START_TEST(test_run_serializes)
{
    char file[H_PATH_MAX + 16], script[2 * H_PATH_MAX + 128];
    snprintf(file, sizeof file, "%s/serial.txt", D.dir);
    snprintf(script, sizeof script, "echo S >> '%s'; sleep 0.2; echo E >> '%s'", file, file);
    enum { N = 4 };
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = cli(
            NULL, (const char *[]){"run", "-w", "20000", "ser", "--", "sh", "-c", script, NULL});
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(h_wait_exit(pids[i], 30000), 0);
    char got[256];
    read_file(file, got, sizeof got);
    ck_assert_str_eq(got, "S\nE\nS\nE\nS\nE\nS\nE\n");
}
END_TEST

static bool file_has_pid(void *ud)
{
    char buf[32];
    read_file(ud, buf, sizeof buf);
    return atoi(buf) > 0;
}

static bool pid_gone(void *ud)
{
    return h_pid_gone(*(pid_t *)ud);
}

START_TEST(test_run_stops_command_when_lost)
{
    char pidfile[H_PATH_MAX + 16], script[H_PATH_MAX + 64];
    snprintf(pidfile, sizeof pidfile, "%s/cmd.pid", D.dir);
    snprintf(script, sizeof script, "echo $$ > '%s'; exec sleep 60", pidfile);
    pid_t run =
        cli(NULL, (const char *[]){"run", "-t", "600", "lr", "--", "sh", "-c", script, NULL});
    ck_assert_msg(h_wait_until(file_has_pid, pidfile, 10000), "the command never started");
    char buf[32];
    read_file(pidfile, buf, sizeof buf);
    pid_t cmd = atoi(buf);
    ck_assert_int_eq(h_redis_pause(&M[1]), 0);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    int code = h_wait_exit(run, 10000);
    ck_assert_msg(code == EXIT_LOST, "redlock run exited %d after the lock was lost (want %d)",
                  code, EXIT_LOST);
    ck_assert_msg(h_wait_until(pid_gone, &cmd, 5000), "the command %d still runs", (int)cmd);
}
END_TEST

START_TEST(test_cli_detach_then_release)
{
    char out[H_PATH_MAX + 16], text[512];
    snprintf(out, sizeof out, "%s/acquire.out", D.dir);
    ck_assert_int_eq(cli_run(out, (const char *[]){"acquire", "--detach", "clid", NULL}), 0);
    read_file(out, text, sizeof text);
    /* The output names the lock id somewhere: find a 32-hex token. */
    char id[64] = "";
    for (char *tok = strtok(text, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        if (h_is_lock_id(tok)) {
            snprintf(id, sizeof id, "%s", tok);
            break;
        }
    }
    ck_assert_msg(h_is_lock_id(id), "no lock id in the output of acquire --detach");
    /* The process is gone; the lock is not. */
    ck_assert_uint_eq(holding_settled("clid", id, 3), 3);
    ck_assert_int_eq(cli_run(NULL, (const char *[]){"release", id, NULL}), 0);
    ck_assert_msg(wait_absent("clid", 2000), "redlock release did not delete the keys");
    ck_assert_int_ne(cli_run(NULL, (const char *[]){"release", id, NULL}), 0);
}
END_TEST

/* ---- OWNER: re-entry stays on the holder's connection ------------------------------ */

/* One request on a raw connection; its reply line into out. */
static void raw_req(int fd, const char *req, char *out, size_t outlen)
{
    raw_send(fd, req);
    ck_assert_msg(h_read_reply(fd, out, outlen, 5000 * h_slowdown()) > 0, "no reply to '%s'", req);
}

/* A second connection naming the same OWNER is just another client: it
 * waits or gets BUSY, never the holder's lock id (which would let it RELEASE
 * the lock under the holder, who would not be told). */
START_TEST(test_owner_does_not_cross_connections)
{
    int a = raw(), b = raw();
    char line[256], id[64];
    raw_send(a, "ACQUIRE payroll 10000 AUTOEXTEND OWNER worker-1");
    raw_expect_lock(a, 5000 * h_slowdown(), id);
    raw_req(b, "ACQUIRE payroll 10000 OWNER worker-1 WAIT 0", line, sizeof line);
    ck_assert_msg(is_err(line, "BUSY"), "another connection with the same OWNER got '%s'", line);
    ck_assert_msg(strstr(line, id) == NULL, "the holder's lock id was handed out: '%s'", line);
    close(b);
    /* The holder still has it, and was not pushed anything. */
    ck_assert_uint_eq(holding_settled("payroll", id, 3), 3);
    ck_assert(!h_readable(a, 100));
    close(a);
}
END_TEST

/* Holds a connection could add end with that connection: after another
 * connection named the owner of a DETACH lock and went away, the holder's
 * one RELEASE answers OK and really releases the lock on the masters. */
START_TEST(test_owner_holds_end_with_their_connection)
{
    int a = raw(), b = raw();
    char line[256], other[256], id[64];
    raw_send(a, "ACQUIRE ledger 10000 DETACH OWNER worker-1");
    raw_expect_lock(a, 5000 * h_slowdown(), id);
    raw_req(b, "ACQUIRE ledger 10000 DETACH OWNER worker-1 WAIT 0", other, sizeof other);
    close(b);
    char rel[96];
    snprintf(rel, sizeof rel, "RELEASE %s", id);
    raw_req(a, rel, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_msg(wait_absent("ledger", 2000),
                  "the owner's RELEASE answered OK but the lock stayed held");
    /* A DETACH lock is shared by its lock id, never by naming its owner. */
    ck_assert_msg(is_err(other, "BUSY"), "another connection re-entered a DETACH lock: '%s'",
                  other);
    close(a);
}
END_TEST

/* Re-entry on the holder's own connection: the same lock, counted; each
 * RELEASE gives back one hold; closing the connection drops every hold. */
START_TEST(test_owner_reentry_on_same_connection)
{
    int a = raw();
    char line[256], id[64], again[64];
    raw_send(a, "ACQUIRE nest 10000 OWNER job-7");
    raw_expect_lock(a, 5000 * h_slowdown(), id);
    raw_send(a, "ACQUIRE nest 10000 OWNER job-7");
    raw_expect_lock(a, 5000 * h_slowdown(), again);
    ck_assert_str_eq(again, id);
    char rel[96];
    snprintf(rel, sizeof rel, "RELEASE %s", id);
    raw_req(a, rel, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_uint_eq(holding_settled("nest", id, 3), 3); /* one hold left */
    raw_req(a, rel, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_msg(wait_absent("nest", 2000), "the last RELEASE did not release");
    /* Held twice, then the connection closes: released at once, all holds. */
    raw_send(a, "ACQUIRE nest 10000 OWNER job-7");
    raw_expect_lock(a, 5000 * h_slowdown(), id);
    raw_send(a, "ACQUIRE nest 10000 OWNER job-7");
    raw_expect_lock(a, 5000 * h_slowdown(), again);
    ck_assert_str_eq(again, id);
    close(a);
    ck_assert_msg(wait_absent("nest", 2000), "holds of a closed connection kept the lock");
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------ */

int main(void)
{
    const struct test_group groups[] = {
        {"ownership",
         {test_close_releases_at_once, test_detach_survives_close,
          test_autoextend_with_detach_is_badreq, test_shutdown_releases_bound_keeps_detached,
          test_owner_does_not_cross_connections, test_owner_holds_end_with_their_connection,
          test_owner_reentry_on_same_connection, NULL}},
        {"autoextend",
         {test_autoextend_keeps_lock, test_autoextend_lost_before_validity,
          test_minority_other_token_is_not_taken, test_taken_leaves_keys_to_expire, test_maxhold,
          NULL}},
        {"wait",
         {test_wait_handoff_is_prompt, test_wait_times_out_on_schedule,
          test_wait_first_come_first_served, test_waiter_that_closes_leaves_queue,
          test_wait_for_foreign_holder, test_others_served_while_some_wait, NULL}},
        {"cli",
         {test_cli_ping, test_run_passes_exit_codes, test_run_exits_75_when_held,
          test_run_serializes, test_run_stops_command_when_lost, test_cli_detach_then_release,
          NULL}},
    };
    h_init();
    return run_test_groups("lifetimes", groups, sizeof groups / sizeof groups[0], setup, teardown);
}
