/*
 * check_core.c - integration tests of the core issue: three real
 * redis-server masters and a real redlockd per test, driven through
 * libredlock and raw protocol lines.
 *
 * Every test gets fresh processes (a checked fixture, run inside the test's
 * forked process), so a test that stops or kills masters cannot disturb the
 * next, and a failed test's processes die with it (see harness.h). The
 * teardown asserts that redlockd exits 0 on SIGTERM, which is also where a
 * REDLOCKD_WRAPPER such as valgrind reports its errors (exit 99).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"
#include "redlock.h"

#define NM 3
#define PREFIX "t:"
#define MAX_LINE 1024
#define MAX_RES 8
#define UNKNOWN_ID "0123456789abcdef0123456789abcdef"

static struct h_redis M[NM];
static struct h_daemon D;
static struct redlock_client *C;

/* Short retries so BUSY comes back quickly; a small line limit so TOOLONG is
 * cheap to provoke; a prefix so keys show where they came from. */
static const struct h_daemon_opts core_opts = {
    .server = "max_line_bytes = 1024\nmax_resources_per_lock = 8\n",
    .redis = "master_timeout_ms = 100\n",
    .lock = "key_prefix = " PREFIX "\ndefault_ttl_ms = 10000\nretry_count = 1\n"
            "retry_delay_ms = 50\nretry_jitter_ms = 20\n",
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
    ck_assert_msg(h_daemon_start(&D, M, NM, &core_opts) == 0, "redlockd did not start");
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
    static char buf[2][700];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s%s", PREFIX, res);
    return buf[which];
}

/* Masters (of the running ones) holding resource res with value id (NULL: any). */
static size_t holding(const char *res, const char *id)
{
    return h_count_key(M, NM, key(res), id);
}

/* holding() once it reaches want (the last master may answer after the reply). */
static size_t holding_settled(const char *res, const char *id, size_t want)
{
    return h_count_key_settled(M, NM, key(res), id, want);
}

struct absent_arg {
    const char *res;
};

static bool absent_everywhere(void *ud)
{
    const struct absent_arg *a = ud;
    return holding(a->res, NULL) == 0;
}

static bool wait_absent(const char *res, uint32_t ms)
{
    struct absent_arg a = {res};
    return h_wait_until(absent_everywhere, &a, ms);
}

struct absent_on_arg {
    int master;
    const char *res;
};

static bool absent_on(void *ud)
{
    const struct absent_on_arg *a = ud;
    char val[256];
    return !h_redis_get(&M[a->master], key(a->res), val, sizeof val);
}

static bool wait_absent_on(int master, const char *res, uint32_t ms)
{
    struct absent_on_arg a = {master, res};
    return h_wait_until(absent_on, &a, ms);
}

static int raw(void)
{
    int fd = h_connect_unix(D.sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", D.sock);
    return fd;
}

/* Send line + "\r\n" and read the reply into out. */
static void raw_req(int fd, const char *line, char *out, size_t outlen)
{
    ck_assert_int_eq(h_send_str(fd, line), 0);
    ck_assert_int_eq(h_send_str(fd, "\r\n"), 0);
    int n = h_read_reply(fd, out, outlen, 10000);
    ck_assert_msg(n >= 0, "no reply to '%.60s' (%d)", line, n);
}

/* Parse "OK <id> <validity>"; extra tokens are allowed (fence later). */
static void parse_ok_lock(const char *reply, char *id, unsigned long long *validity)
{
    char idbuf[64];
    int n = sscanf(reply, "OK %63s %llu", idbuf, validity);
    ck_assert_msg(n == 2, "not an OK lock reply: '%s'", reply);
    ck_assert_msg(h_is_lock_id(idbuf), "bad lock id in '%s'", reply);
    strcpy(id, idbuf);
}

static void acquire_ok(struct redlock_client *c, const char *res, uint32_t ttl,
                       struct redlock_lock *lk)
{
    struct redlock_acquire_opts o = {.ttl_ms = ttl};
    int rc = redlock_acquire(c, res, &o, lk);
    ck_assert_msg(rc == REDLOCK_OK, "acquire %s: %s (%s)", res, redlock_status_name(rc),
                  redlock_errstr(c));
    ck_assert_msg(h_is_lock_id(lk->id), "bad lock id '%s'", lk->id);
}

/* ---- PING, reply forms ---------------------------------------------------------- */

START_TEST(test_ping)
{
    ck_assert_int_eq(redlock_ping(C), REDLOCK_OK);
    int fd = raw();
    char line[128];
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    ck_assert_int_eq(h_send_str(fd, "ping\n"), 0); /* lower case, bare \n */
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "PONG");
    close(fd);
}
END_TEST

START_TEST(test_tcp_listener)
{
    struct redlock_client *t = h_client(D.tcp_addr);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(redlock_ping(t), REDLOCK_OK);
    struct redlock_lock lk;
    acquire_ok(t, "tcp", 5000, &lk);
    ck_assert_uint_eq(holding_settled("tcp", lk.id, 3), 3);
    ck_assert_int_eq(redlock_release(t, lk.id), REDLOCK_OK);
    redlock_close(t);
}
END_TEST

START_TEST(test_acquire_reply_and_keys)
{
    int fd = raw();
    char line[256], id[64];
    unsigned long long v;
    raw_req(fd, "ACQUIRE form 10000", line, sizeof line);
    parse_ok_lock(line, id, &v);
    ck_assert_msg(v > 8000 && v <= 10000, "validity %llu for ttl 10000", v);
    /* The Redis side: key = prefix + resource, value = lock id, on every master. */
    ck_assert_uint_eq(holding_settled("form", id, 3), 3);
    for (int i = 0; i < NM; i++) {
        long long pttl = h_redis_pttl(&M[i], key("form"));
        ck_assert_msg(pttl > 8000 && pttl <= 10000, "master %d PTTL %lld", i, pttl);
    }
    /* Verbs and options are case-insensitive, tabs and runs of spaces separate. */
    raw_req(fd, "acquire\tform2   3000", line, sizeof line);
    parse_ok_lock(line, id, &v);
    ck_assert_msg(v <= 3000, "validity %llu for ttl 3000", v);
    ck_assert_uint_eq(holding_settled("form2", id, 3), 3);
    close(fd);

    /* Through the library, with the default TTL (10000 in this config). */
    struct redlock_lock lk;
    acquire_ok(C, "form3", 0, &lk);
    ck_assert_msg(lk.validity_ms > 5000 && lk.validity_ms <= 10000, "validity %llu",
                  (unsigned long long)lk.validity_ms);
    long long pttl = h_redis_pttl(&M[0], key("form3"));
    ck_assert_msg(pttl > 5000 && pttl <= 10000, "default ttl: PTTL %lld", pttl);
}
END_TEST

START_TEST(test_resource_names)
{
    /* 512 bytes is the longest name; every printable but ',' is allowed. */
    char big[520], line[700], reply[256], id[64];
    unsigned long long v;
    memset(big, 'r', 512);
    big[512] = '\0';
    int fd = raw();
    snprintf(line, sizeof line, "ACQUIRE %s 5000", big);
    raw_req(fd, line, reply, sizeof reply);
    parse_ok_lock(reply, id, &v);
    ck_assert_uint_eq(holding_settled(big, id, 3), 3);
    const char *odd = "!\"#$%&'()*+-./:;<=>?@[\\]^_`{|}~";
    snprintf(line, sizeof line, "ACQUIRE %s 5000", odd);
    raw_req(fd, line, reply, sizeof reply);
    parse_ok_lock(reply, id, &v);
    ck_assert_uint_eq(holding_settled(odd, id, 3), 3);
    close(fd);
}
END_TEST

START_TEST(test_default_prefix_is_empty)
{
    ck_assert_int_eq(h_daemon_stop(&D), 0);
    redlock_close(C);
    static const struct h_daemon_opts noprefix = {.lock = "retry_count = 1\n"};
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &noprefix), 0);
    C = client();
    struct redlock_lock lk;
    acquire_ok(C, "plain", 5000, &lk);
    ck_assert_uint_eq(h_count_key(M, NM, "plain", lk.id), 3);
}
END_TEST

/* ---- EXTEND / RELEASE ------------------------------------------------------------ */

START_TEST(test_extend)
{
    struct redlock_lock lk, ext;
    acquire_ok(C, "ext", 5000, &lk);
    ck_assert_int_eq(redlock_extend(C, lk.id, 20000, &ext), REDLOCK_OK);
    ck_assert_str_eq(ext.id, lk.id);
    ck_assert_msg(ext.validity_ms > 15000 && ext.validity_ms <= 20000, "validity %llu",
                  (unsigned long long)ext.validity_ms);
    for (int i = 0; i < NM; i++)
        ck_assert_int_gt(h_redis_pttl(&M[i], key("ext")), 15000);
    ck_assert_uint_eq(holding_settled("ext", lk.id, 3), 3);

    /* Without a TTL: the TTL the lock was acquired with. */
    ck_assert_int_eq(redlock_extend(C, lk.id, 0, &ext), REDLOCK_OK);
    ck_assert_msg(ext.validity_ms <= 5000, "validity %llu", (unsigned long long)ext.validity_ms);
    ck_assert_int_le(h_redis_pttl(&M[0], key("ext")), 5000);

    /* Raw reply form; any connection may extend by id. */
    int fd = raw();
    char line[256], cmd[128], id[64];
    unsigned long long v;
    snprintf(cmd, sizeof cmd, "EXTEND %s 7000", lk.id);
    raw_req(fd, cmd, line, sizeof line);
    parse_ok_lock(line, id, &v);
    ck_assert_str_eq(id, lk.id);
    ck_assert_msg(v <= 7000 && v > 5000, "validity %llu", v);
    close(fd);
}
END_TEST

START_TEST(test_release)
{
    struct redlock_lock lk;
    acquire_ok(C, "rel", 10000, &lk);
    ck_assert_uint_eq(holding_settled("rel", lk.id, 3), 3);
    int fd = raw();
    char line[128], cmd[128];
    snprintf(cmd, sizeof cmd, "RELEASE %s", lk.id);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_msg(wait_absent("rel", 2000), "keys left after RELEASE");
    /* Released: the id is no longer held. */
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_ERR_NOTHELD);
    ck_assert_int_eq(redlock_extend(C, lk.id, 1000, NULL), REDLOCK_ERR_NOTHELD);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_msg(is_err(line, "NOTHELD"), "second RELEASE: '%s'", line);
    close(fd);
    /* And someone else can take it at once. */
    acquire_ok(C, "rel", 10000, &lk);
}
END_TEST

START_TEST(test_notheld_unknown_id)
{
    ck_assert_int_eq(redlock_extend(C, UNKNOWN_ID, 1000, NULL), REDLOCK_ERR_NOTHELD);
    ck_assert_int_eq(redlock_release(C, UNKNOWN_ID), REDLOCK_ERR_NOTHELD);
    int fd = raw();
    char line[256];
    raw_req(fd, "EXTEND " UNKNOWN_ID, line, sizeof line);
    ck_assert_msg(is_err(line, "NOTHELD"), "'%s'", line);
    raw_req(fd, "RELEASE " UNKNOWN_ID, line, sizeof line);
    ck_assert_msg(is_err(line, "NOTHELD"), "'%s'", line);
    close(fd);
}
END_TEST

START_TEST(test_quit)
{
    int fd = raw();
    char line[128];
    raw_req(fd, "QUIT", line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_msg(h_wait_eof(fd, 2000), "connection not closed after QUIT");
    close(fd);
}
END_TEST

/* ---- BUSY ------------------------------------------------------------------------ */

START_TEST(test_busy_foreign_majority)
{
    /* Another Redlock client holds the key on two masters of three. */
    ck_assert(h_redis_set_px(&M[0], key("fb"), "foreign-token", 30000));
    ck_assert(h_redis_set_px(&M[1], key("fb"), "foreign-token", 30000));
    int fd = raw();
    char line[256];
    uint64_t t0 = h_now_ms();
    raw_req(fd, "ACQUIRE fb 5000", line, sizeof line);
    ck_assert_msg(is_err(line, "BUSY"), "want ERR BUSY, got '%s'", line);
    ck_assert_msg(strstr(line, "1/3") != NULL, "text should say 1/3 granted: '%s'", line);
    ck_assert_msg(h_now_ms() - t0 < 2000 * h_slowdown(), "BUSY took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    close(fd);
    /* The partial key it set on the third master is deleted again... */
    ck_assert_msg(wait_absent_on(2, "fb", 2000), "partial key left on master 2");
    /* ...and the foreign holder's keys are untouched. */
    ck_assert_uint_eq(holding("fb", "foreign-token"), 2);
    /* Through the library: the status. */
    struct redlock_lock lk;
    ck_assert_int_eq(redlock_acquire(C, "fb", NULL, &lk), REDLOCK_ERR_BUSY);
}
END_TEST

START_TEST(test_busy_held_by_other_client)
{
    struct redlock_lock lk, lk2;
    acquire_ok(C, "held", 10000, &lk);
    struct redlock_client *b = client();
    ck_assert_int_eq(redlock_acquire(b, "held", NULL, &lk2), REDLOCK_ERR_BUSY);
    ck_assert_uint_eq(holding_settled("held", lk.id, 3), 3);
    /* A multi-resource request overlapping it fails whole. */
    ck_assert_int_eq(redlock_acquire(b, "free1,held", NULL, &lk2), REDLOCK_ERR_BUSY);
    ck_assert_uint_eq(holding_settled("free1", NULL, 0), 0);
    redlock_close(b);
}
END_TEST

/* ---- NOQUORUM, stalled and dead masters ---------------------------------------- */

START_TEST(test_noquorum_two_masters_stopped)
{
    struct redlock_lock held;
    acquire_ok(C, "nq-held", 10000, &held);
    ck_assert_int_eq(h_redis_pause(&M[1]), 0);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);

    int fd = raw();
    char line[256];
    uint64_t t0 = h_now_ms();
    raw_req(fd, "ACQUIRE nq 5000", line, sizeof line);
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(is_err(line, "NOQUORUM"), "want ERR NOQUORUM, got '%s'", line);
    ck_assert_msg(strstr(line, "1/3") != NULL, "text should say 1/3 answered: '%s'", line);
    ck_assert_msg(took < 2000 * h_slowdown(), "NOQUORUM took %llu ms", (unsigned long long)took);

    /* EXTEND cannot reach a majority either, and says so promptly. */
    t0 = h_now_ms();
    ck_assert_int_eq(redlock_extend(C, held.id, 10000, NULL), REDLOCK_ERR_NOQUORUM);
    took = h_now_ms() - t0;
    ck_assert_msg(took < 2000 * h_slowdown(), "EXTEND NOQUORUM took %llu ms",
                  (unsigned long long)took);
    /* The one reachable master does not keep the failed acquire's key. */
    ck_assert_msg(wait_absent("nq", 2000), "key of the failed acquire left on master 0");

    /* Back to three: the daemon serves again. */
    ck_assert_int_eq(h_redis_resume(&M[1]), 0);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    struct redlock_lock lk;
    uint64_t deadline = h_now_ms() + 5000;
    int rc;
    while ((rc = redlock_acquire(C, "nq-after", NULL, &lk)) != REDLOCK_OK && h_now_ms() < deadline)
        h_sleep_ms(50);
    ck_assert_msg(rc == REDLOCK_OK, "no lock after the masters resumed: %s",
                  redlock_status_name(rc));
    close(fd);
}
END_TEST

/* INFO says masters_up 3. */
static bool all_masters_up(void *ud)
{
    (void)ud;
    int fd = raw();
    char line[256];
    int n = 0;
    bool up = false;
    raw_req(fd, "INFO", line, sizeof line);
    ck_assert_int_eq(sscanf(line, "DATA %d", &n), 1);
    for (int i = 0; i < n; i++) {
        ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
        up |= strcmp(line, "masters_up 3") == 0;
    }
    close(fd);
    return up;
}

START_TEST(test_one_master_stopped_still_fast)
{
    /* Every master answered once: on new masters (no marker anywhere) the
     * daemon lets them vote only then (PROTOCOL.md 8.5). */
    ck_assert_msg(h_wait_until(all_masters_up, NULL, 5000 * h_slowdown()), "masters not up");
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    struct redlock_lock lk;
    for (int i = 0; i < 3; i++) {
        char res[32];
        snprintf(res, sizeof res, "one-stopped-%d", i);
        uint64_t t0 = h_now_ms();
        acquire_ok(C, res, 10000, &lk);
        uint64_t took = h_now_ms() - t0;
        ck_assert_msg(took < 1000 * h_slowdown(), "acquire with one stalled master took %llu ms",
                      (unsigned long long)took);
        ck_assert_msg(lk.validity_ms > 8000, "validity %llu", (unsigned long long)lk.validity_ms);
        ck_assert_uint_eq(holding(res, lk.id), 2);
        t0 = h_now_ms();
        ck_assert_int_eq(redlock_extend(C, lk.id, 10000, NULL), REDLOCK_OK);
        ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
        took = h_now_ms() - t0;
        ck_assert_msg(took < 2000 * h_slowdown(), "extend+release took %llu ms",
                      (unsigned long long)took);
    }
}
END_TEST

START_TEST(test_one_master_dead_still_fast)
{
    h_redis_kill(&M[1]);
    struct redlock_lock lk;
    uint64_t t0 = h_now_ms();
    acquire_ok(C, "one-dead", 10000, &lk);
    ck_assert_msg(h_now_ms() - t0 < 1000 * h_slowdown(), "acquire took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    ck_assert_uint_eq(holding("one-dead", lk.id), 2);
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
}
END_TEST

struct reconnect_arg {
    int n;
    int master;
};

/* Acquire a fresh resource; true when the given master holds it too. */
static bool master_used_again(void *ud)
{
    struct reconnect_arg *a = ud;
    char res[32];
    snprintf(res, sizeof res, "rc-%d", a->n++);
    struct redlock_lock lk;
    if (redlock_acquire(C, res, NULL, &lk) != REDLOCK_OK)
        return false;
    char val[128];
    bool used = h_redis_get(&M[a->master], key(res), val, sizeof val) && strcmp(val, lk.id) == 0;
    redlock_release(C, lk.id);
    return used;
}

/* A master that restarts (new run_id) has lost its keys, so the daemon keeps
 * it out of the vote for max_ttl_ms while still sending it every command:
 * a short max_ttl_ms here lets the test see both phases. */
static const struct h_daemon_opts restart_opts = {
    .server = "max_line_bytes = 1024\nmax_resources_per_lock = 8\n",
    .redis = "master_timeout_ms = 100\n",
    .lock = "key_prefix = " PREFIX "\ndefault_ttl_ms = 2000\nmax_ttl_ms = 3000\n"
            "retry_count = 1\nretry_delay_ms = 50\nretry_jitter_ms = 20\n",
};

/* Acquire a fresh resource; true when it is granted. */
static bool votes_on_two(void *ud)
{
    struct reconnect_arg *a = ud;
    char res[32];
    snprintf(res, sizeof res, "rv-%d", a->n++);
    struct redlock_lock lk;
    if (redlock_acquire(C, res, NULL, &lk) != REDLOCK_OK)
        return false;
    redlock_release(C, lk.id);
    return true;
}

START_TEST(test_master_killed_and_restarted)
{
    ck_assert_int_eq(h_daemon_stop(&D), 0);
    redlock_close(C);
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &restart_opts), 0);
    C = client();

    struct redlock_lock kept, lk;
    h_redis_kill(&M[0]);
    acquire_ok(C, "during", 3000, &lk);
    ck_assert_uint_eq(holding("during", lk.id), 2);
    acquire_ok(C, "kept", 3000, &kept);          /* never reaches master 0 */
    ck_assert_int_eq(h_redis_restart(&M[0]), 0); /* same port, empty */

    /* The daemon reconnects and sends the restarted master its commands. */
    struct reconnect_arg a = {0, 0};
    ck_assert_msg(h_wait_until(master_used_again, &a, 10000 * h_slowdown()),
                  "daemon did not use the restarted master within 10 s (%d tries)", a.n);
    /* EXTEND sets a key again on a master that lost it. */
    ck_assert_int_eq(redlock_extend(C, kept.id, 3000, NULL), REDLOCK_OK);
    ck_assert_uint_eq(holding_settled("kept", kept.id, 3), 3);

    /* Once its quarantine (max_ttl_ms) is over it votes: with another master
     * gone, the restarted one and the third still make a majority. */
    h_redis_kill(&M[1]);
    a.n = 0;
    ck_assert_msg(h_wait_until(votes_on_two, &a, (3000 + 5000) * h_slowdown()),
                  "the restarted master never voted again");
    acquire_ok(C, "after", 3000, &lk);
    ck_assert_uint_eq(holding("after", lk.id), 2);
}
END_TEST

START_TEST(test_starts_with_a_master_down)
{
    ck_assert_int_eq(h_daemon_stop(&D), 0);
    redlock_close(C);
    h_redis_kill(&M[2]);
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &core_opts), 0);
    C = client();
    struct redlock_lock lk;
    acquire_ok(C, "down-at-start", 10000, &lk);
    ck_assert_uint_eq(holding("down-at-start", lk.id), 2);
    ck_assert_int_eq(h_redis_restart(&M[2]), 0);
    struct reconnect_arg a = {0, 2};
    ck_assert_msg(h_wait_until(master_used_again, &a, 10000 * h_slowdown()),
                  "daemon did not connect to the late master within 10 s");
}
END_TEST

/* ---- BADREQ, LIMIT, TOOLONG ----------------------------------------------------- */

/* Keys on master i other than the daemon's marker (PROTOCOL.md 8.5). */
static long long lock_keys(int i)
{
    return h_redis_dbsize(&M[i]) - (h_redis_get(&M[i], PREFIX ",epoch", NULL, 0) ? 1 : 0);
}

START_TEST(test_badreq)
{
    static const char *const bad[] = {
        "ACQUIRE",
        "ACQUIRE a 0",
        "ACQUIRE a,,b",
        "ACQUIRE ,a",
        "ACQUIRE a,",
        "ACQUIRE a,a",
        "ACQUIRE a 2147483648",
        "ACQUIRE a 12x",
        "ACQUIRE a -5",
        "ACQUIRE a +5",
        "ACQUIRE a 100 200",
        "ACQUIRE a WAIT",
        "ACQUIRE a WAIT abc",
        "ACQUIRE a WAIT 1 WAIT 2",
        "ACQUIRE a AUTOEXTEND AUTOEXTEND",
        "ACQUIRE a AUTOEXTEND DETACH",
        "ACQUIRE a FROB",
        "ACQUIRE a MAXHOLD 100",
        "ACQUIRE a 100 MAXHOLD",
        "ACQUIRE a\x7f",
        "ACQUIRE \x01"
        "b",
        "ACQUIRE a\xc3\xa9",
        "EXTEND",
        "EXTEND xyz",
        "EXTEND 0123456789ABCDEF0123456789ABCDEF",
        "EXTEND 0123456789abcdef0123456789abcde",
        "EXTEND 0123456789abcdef0123456789abcdef0",
        "EXTEND " UNKNOWN_ID " 0",
        "EXTEND " UNKNOWN_ID " abc",
        "RELEASE",
        "RELEASE zz",
        "RELEASE 0123456789abcdef0123456789abcdeg",
        "FROB",
        "PINGX",
    };
    char big[600];
    memset(big, 'x', 513);
    big[513] = '\0';
    char toolong_res[700];
    snprintf(toolong_res, sizeof toolong_res, "ACQUIRE %s 1000", big);

    int fd = raw();
    char line[512];
    for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
        const char *req = i < sizeof bad / sizeof bad[0] ? bad[i] : toolong_res;
        raw_req(fd, req, line, sizeof line);
        ck_assert_msg(is_err(line, "BADREQ"), "'%.40s' -> '%s' (want ERR BADREQ)", req, line);
    }
    /* Nothing was locked by any of them, and the connection still works. */
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(lock_keys(i), 0);
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(fd);
    /* The library maps it to its status. */
    char reply[256];
    ck_assert_int_eq(redlock_command(C, "ACQUIRE a 0", reply, sizeof reply), REDLOCK_OK);
    ck_assert_msg(is_err(reply, "BADREQ"), "'%s'", reply);
    ck_assert_int_eq(redlock_extend(C, "nothex", 0, NULL) < 0, 1);
}
END_TEST

START_TEST(test_limit_resources)
{
    struct redlock_lock lk;
    ck_assert_int_eq(redlock_acquire(C, "l1,l2,l3,l4,l5,l6,l7,l8,l9", NULL, &lk),
                     REDLOCK_ERR_LIMIT);
    int fd = raw();
    char line[256];
    raw_req(fd, "ACQUIRE l1,l2,l3,l4,l5,l6,l7,l8,l9 1000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "'%s'", line);
    close(fd);
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(lock_keys(i), 0);
    /* Exactly the limit is fine. */
    acquire_ok(C, "l1,l2,l3,l4,l5,l6,l7,l8", 5000, &lk);
    ck_assert_uint_eq(holding_settled("l8", lk.id, 3), 3);
}
END_TEST

START_TEST(test_toolong_closes)
{
    char buf[MAX_LINE + 16], line[256];
    /* Exactly max_line_bytes is still a line (a bad one), whatever the
     * terminator: it is not part of the line. */
    int fd = raw();
    for (int crlf = 0; crlf <= 1; crlf++) {
        memset(buf, 'A', MAX_LINE);
        memcpy(buf + MAX_LINE, crlf ? "\r\n" : "\n", crlf ? 3 : 2);
        ck_assert_int_eq(h_send_str(fd, buf), 0);
        ck_assert_int_ge(h_read_reply(fd, line, sizeof line, 5000), 0);
        ck_assert_msg(is_err(line, "BADREQ"), "1024-byte line (%s): '%s'", crlf ? "CRLF" : "LF",
                      line);
    }
    /* One more byte: TOOLONG, then the daemon closes. */
    memset(buf, 'A', MAX_LINE + 1);
    memcpy(buf + MAX_LINE + 1, "\r\n", 3);
    ck_assert_int_eq(h_send_str(fd, buf), 0);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(is_err(line, "TOOLONG"), "1025-byte line: '%s'", line);
    ck_assert_msg(h_wait_eof(fd, 2000), "connection still open after TOOLONG");
    close(fd);

    /* Without any terminator at all. */
    fd = raw();
    memset(buf, 'B', sizeof buf);
    ck_assert_int_eq(h_send_all(fd, buf, sizeof buf), 0);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(is_err(line, "TOOLONG"), "unterminated: '%s'", line);
    ck_assert_msg(h_wait_eof(fd, 2000), "connection still open after TOOLONG");
    close(fd);

    /* Through the library: TOOLONG (as a status or as the reply text), then
     * the connection is gone. */
    struct redlock_client *c = client();
    buf[sizeof buf - 1] = '\0';
    int rc = redlock_command(c, buf, line, sizeof line);
    ck_assert_msg(rc == REDLOCK_ERR_TOOLONG || (rc == REDLOCK_OK && is_err(line, "TOOLONG")),
                  "long line through the library: %s '%s'", redlock_status_name(rc),
                  rc == REDLOCK_OK ? line : redlock_errstr(c));
    ck_assert_int_ne(redlock_ping(c), REDLOCK_OK);
    redlock_close(c);
    /* Others are unaffected. */
    ck_assert_int_eq(redlock_ping(C), REDLOCK_OK);
}
END_TEST

/* ---- pipelining ------------------------------------------------------------------ */

START_TEST(test_pipelined_in_order)
{
    int fd = raw();
    const char *batch = "PING\r\n"
                        "ACQUIRE pa 10000\r\n"
                        "ACQUIRE pb 10000\n"
                        "FROB\r\n"
                        "PING\n"
                        "ACQUIRE pa 10000\r\n"
                        "RELEASE " UNKNOWN_ID "\r\n"
                        "ACQUIRE pc 10000\r\n"
                        "PING\r\n";
    ck_assert_int_eq(h_send_str(fd, batch), 0);
    char line[256], ida[64], idb[64], idc[64];
    unsigned long long v;
    const int timeout = 10000;
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    ck_assert_str_eq(line, "PONG");
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    parse_ok_lock(line, ida, &v);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    parse_ok_lock(line, idb, &v);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    ck_assert_msg(is_err(line, "BADREQ"), "4th reply '%s'", line);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    ck_assert_str_eq(line, "PONG");
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    ck_assert_msg(is_err(line, "BUSY"), "6th reply (pa again) '%s'", line);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    ck_assert_msg(is_err(line, "NOTHELD"), "7th reply '%s'", line);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    parse_ok_lock(line, idc, &v);
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    ck_assert_str_eq(line, "PONG");
    ck_assert_uint_eq(holding_settled("pa", ida, 3), 3);
    ck_assert_uint_eq(holding_settled("pb", idb, 3), 3);
    ck_assert_uint_eq(holding_settled("pc", idc, 3), 3);
    ck_assert_str_ne(ida, idb);

    /* A request trickling in byte by byte gets no reply until its end. */
    const char *slow = "ACQUIRE pd 10000\r\n";
    for (size_t i = 0; slow[i]; i++) {
        ck_assert_int_eq(h_send_all(fd, slow + i, 1), 0);
        if (slow[i + 1])
            ck_assert_msg(!h_readable(fd, 2), "reply before the line was complete");
    }
    ck_assert_int_ge(h_read_reply(fd, line, sizeof line, timeout), 0);
    parse_ok_lock(line, idc, &v);
    close(fd);
}
END_TEST

/* ---- expiry ---------------------------------------------------------------------- */

START_TEST(test_expiry)
{
    struct redlock_lock lk;
    acquire_ok(C, "short", 300, &lk);
    ck_assert_msg(lk.validity_ms < 300, "validity %llu for ttl 300",
                  (unsigned long long)lk.validity_ms);
    ck_assert_msg(wait_absent("short", 3000), "keys did not expire");
    ck_assert_int_eq(redlock_extend(C, lk.id, 1000, NULL), REDLOCK_ERR_NOTHELD);
    struct redlock_client *b = client();
    struct redlock_lock lk2;
    acquire_ok(b, "short", 5000, &lk2);
    ck_assert_str_ne(lk.id, lk2.id);
    redlock_close(b);
}
END_TEST

/* ---- several resources ---------------------------------------------------------- */

START_TEST(test_multi_resource)
{
    struct redlock_lock lk;
    acquire_ok(C, "m1,m2,m3", 10000, &lk);
    ck_assert_uint_eq(holding_settled("m1", lk.id, 3), 3);
    ck_assert_uint_eq(holding_settled("m2", lk.id, 3), 3);
    ck_assert_uint_eq(holding_settled("m3", lk.id, 3), 3);
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
    ck_assert(wait_absent("m1", 2000));
    ck_assert(wait_absent("m2", 2000));
    ck_assert(wait_absent("m3", 2000));
}
END_TEST

START_TEST(test_multi_resource_all_or_nothing)
{
    for (int i = 0; i < NM; i++)
        ck_assert(h_redis_set_px(&M[i], key("a2"), "foreign-token", 30000));
    struct redlock_lock lk;
    ck_assert_int_eq(redlock_acquire(C, "a1,a2,a3", NULL, &lk), REDLOCK_ERR_BUSY);
    /* Nothing was set on any master, not even for a moment's leftovers. */
    ck_assert_uint_eq(holding_settled("a1", NULL, 0), 0);
    ck_assert_uint_eq(holding_settled("a3", NULL, 0), 0);
    ck_assert_uint_eq(holding_settled("a2", "foreign-token", 3), 3);
}
END_TEST

START_TEST(test_multi_resource_minority_foreign)
{
    /* One master has one of the keys: that master refuses the whole set,
     * the other two grant it all, and the majority wins. */
    ck_assert(h_redis_set_px(&M[0], key("n2"), "foreign-token", 30000));
    struct redlock_lock lk;
    acquire_ok(C, "n1,n2,n3", 10000, &lk);
    char val[128];
    ck_assert(!h_redis_get(&M[0], key("n1"), val, sizeof val));
    ck_assert(!h_redis_get(&M[0], key("n3"), val, sizeof val));
    ck_assert_uint_eq(holding("n1", lk.id), 2);
    ck_assert_uint_eq(holding("n2", lk.id), 2);
    ck_assert_uint_eq(holding("n3", lk.id), 2);
    /* Release deletes only its own keys. */
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
    ck_assert(wait_absent("n1", 2000));
    ck_assert(wait_absent("n3", 2000));
    ck_assert_uint_eq(holding("n2", "foreign-token"), 1);
    ck_assert_uint_eq(holding("n2", NULL), 1);
}
END_TEST

/* ---- garbage --------------------------------------------------------------------- */

START_TEST(test_garbage_does_not_hurt)
{
    struct redlock_lock held;
    acquire_ok(C, "g-held", 30000, &held);

    /* A client sending junk lines gets ERR BADREQ for each (blank lines are
     * ignored: no reply) and still a PONG after them. */
    int fd = raw();
    static const char junk[] = "\x00\x01\x02\n"
                               "\xff\xfe\xfd garbage\n"
                               "ACQUIRE \x80\x81 1000\n"
                               "   \n"
                               "\r\n"
                               "\t\t\n"
                               "EXTEND \x00\x00\n"
                               "RELEASE " UNKNOWN_ID "\x00\n"
                               "\x1b[31mred\x1b[0m\n"
                               "PING\r\n";
    ck_assert_int_eq(h_send_all(fd, junk, sizeof junk - 1), 0);
    char line[512];
    int errs = 0;
    for (;;) {
        int n = h_read_reply(fd, line, sizeof line, 5000);
        ck_assert_msg(n >= 0, "no PONG after junk lines (%d)", n);
        if (strcmp(line, "PONG") == 0)
            break;
        ck_assert_msg(is_err(line, "BADREQ"), "junk got '%s'", line);
        errs++;
    }
    ck_assert_int_eq(errs, 6); /* 9 lines, 3 of them blank */
    close(fd);

    /* Random binary with and without newlines, then an abrupt close. */
    unsigned rnd = 12345;
    for (int round = 0; round < 3; round++) {
        char blob[8192];
        for (size_t i = 0; i < sizeof blob; i++) {
            rnd = rnd * 1103515245u + 12345u;
            blob[i] = (char)(rnd >> 16);
        }
        fd = raw();
        h_send_all(fd, blob, round == 0 ? 600 : sizeof blob); /* may fail once closed */
        close(fd);
    }
    /* A half line, then close. */
    fd = raw();
    ck_assert_int_eq(h_send_str(fd, "ACQUIRE half"), 0);
    close(fd);

    /* The daemon is alive and serves others; held locks are intact. */
    ck_assert(h_daemon_alive(&D));
    ck_assert_int_eq(redlock_ping(C), REDLOCK_OK);
    struct redlock_lock lk;
    acquire_ok(C, "g-after", 5000, &lk);
    ck_assert_int_eq(redlock_release(C, lk.id), REDLOCK_OK);
    ck_assert_uint_eq(holding_settled("g-held", held.id, 3), 3);
    ck_assert_uint_eq(holding_settled("half", NULL, 0), 0);
    ck_assert_int_eq(redlock_extend(C, held.id, 30000, NULL), REDLOCK_OK);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

int main(void)
{
    const struct test_group groups[] = {
        {"protocol",
         {test_ping, test_tcp_listener, test_acquire_reply_and_keys, test_resource_names,
          test_default_prefix_is_empty, test_extend, test_release, test_notheld_unknown_id,
          test_quit, test_badreq, test_limit_resources, test_toolong_closes,
          test_pipelined_in_order, test_garbage_does_not_hurt, NULL}},
        {"redlock",
         {test_busy_foreign_majority, test_busy_held_by_other_client, test_expiry,
          test_multi_resource, test_multi_resource_all_or_nothing,
          test_multi_resource_minority_foreign, NULL}},
        {"masters",
         {test_noquorum_two_masters_stopped, test_one_master_stopped_still_fast,
          test_one_master_dead_still_fast, test_master_killed_and_restarted,
          test_starts_with_a_master_down, NULL}},
    };
    h_init();
    return run_test_groups("core", groups, sizeof groups / sizeof groups[0], setup, teardown);
}
