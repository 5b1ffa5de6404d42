/*
 * check_masters.c - integration tests of who may vote: a master listed
 * twice under two names (the config check refuses the names it can resolve
 * to one address; at run time two entries with the same run_id do not vote),
 * and masters that restarted without their data while redlockd itself was
 * down (restart amnesia across a restart of redlockd: the uptime and the
 * marker "<key_prefix>,epoch", PROTOCOL.md 8.5).
 *
 * Three real redis-server masters per test (a checked fixture), each test
 * starts its own redlockd processes. The teardown asserts that a daemon
 * still running exits 0 on SIGTERM.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

#define NM 3
#define INFO_MAX_LINES 256
#define MARKER ",epoch" /* the marker key with the default empty key_prefix */

static struct h_redis M[NM];
static struct h_daemon D;  /* the daemon of the test */
static struct h_daemon D2; /* a second one */

static void setup(void)
{
    memset(&D, 0, sizeof D);
    memset(&D2, 0, sizeof D2);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    int code = h_daemon_stop(&D);
    int code2 = h_daemon_stop(&D2);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
    ck_assert_msg(code2 == 0, "second redlockd exited with %d on SIGTERM (want 0)", code2);
}

/* ---- helpers ------------------------------------------------------------------ */

static int raw_to(const struct h_daemon *d)
{
    int fd = h_connect_unix(d->sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", d->sock);
    return fd;
}

/* Send line and read the reply (events skipped) into out. */
static void raw_req(int fd, const char *line, char *out, size_t outlen)
{
    raw_send(fd, line);
    int n = h_read_reply(fd, out, outlen, 10000 * h_slowdown());
    ck_assert_msg(n >= 0, "no reply to '%.60s' (%d)", line, n);
}

/* Parse "OK <id> <validity> ..." into id (64 bytes). */
static void parse_ok_lock(const char *reply, char *id)
{
    char idbuf[64];
    unsigned long long v;
    ck_assert_msg(sscanf(reply, "OK %63s %llu", idbuf, &v) == 2 && h_is_lock_id(idbuf),
                  "want OK <id> <validity>, got '%s'", reply);
    strcpy(id, idbuf);
}

struct info {
    int n;
    char line[INFO_MAX_LINES][256];
};

static void info_of(const struct h_daemon *d, struct info *in)
{
    int fd = raw_to(d);
    char hdr[64];
    raw_req(fd, "INFO", hdr, sizeof hdr);
    int n = -1;
    ck_assert_msg(sscanf(hdr, "DATA %d", &n) == 1 && n > 0 && n <= INFO_MAX_LINES,
                  "INFO header '%s'", hdr);
    in->n = n;
    for (int i = 0; i < n; i++)
        ck_assert_msg(h_read_line(fd, in->line[i], sizeof in->line[i], 5000) >= 0,
                      "INFO: line %d of %d missing", i + 1, n);
    close(fd);
}

static const char *info_val(const struct info *in, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < in->n; i++)
        if (strncmp(in->line[i], key, kl) == 0 && in->line[i][kl] == ' ')
            return in->line[i] + kl + 1;
    return NULL;
}

static long long info_get(const struct h_daemon *d, const char *key)
{
    struct info in;
    info_of(d, &in);
    const char *v = info_val(&in, key);
    ck_assert_msg(v != NULL, "INFO has no %s", key);
    return atoll(v);
}

struct info_eq_arg {
    const struct h_daemon *d;
    const char *key;
    const char *want;
};

static bool info_equals(void *ud)
{
    struct info_eq_arg *a = ud;
    struct info in;
    info_of(a->d, &in);
    const char *v = info_val(&in, a->key);
    return v && strcmp(v, a->want) == 0;
}

static bool wait_info(const struct h_daemon *d, const char *key, const char *want, uint32_t ms)
{
    struct info_eq_arg a = {d, key, want};
    return h_wait_until(info_equals, &a, ms * h_slowdown());
}

/* The run_id of a master, from INFO server. */
static void run_id_of(const struct h_redis *r, char *out, size_t outlen)
{
    char info[8192];
    ck_assert_int_eq(h_redis_cmd(r, info, sizeof info, "INFO", "server", (char *)NULL),
                     H_REPLY_BULK);
    const char *p = strstr(info, "run_id:");
    ck_assert_ptr_nonnull(p);
    snprintf(out, outlen, "%.40s", p + 7);
}

struct marker_arg {
    const struct h_redis *m;
};

/* The master holds the marker with its own run_id. */
static bool marked(void *ud)
{
    struct marker_arg *a = ud;
    char run_id[64], val[128];
    run_id_of(a->m, run_id, sizeof run_id);
    return h_redis_get(a->m, MARKER, val, sizeof val) && strcmp(val, run_id) == 0;
}

struct log_arg {
    const char *path;
    const char *needle;
};

static bool log_has(void *ud)
{
    struct log_arg *a = ud;
    return h_file_contains(a->path, a->needle);
}

/* ---- the same master under two names -------------------------------------------- */

/* The config check resolves the names: 127.0.0.1 and 127.1 (and localhost)
 * are one address. redlockd -t refuses such a list, and so does a reload,
 * which keeps the running list. */
START_TEST(test_alias_refused_by_check_and_reload)
{
    static const struct h_daemon_opts o = {.redis = "master_timeout_ms = 100\n"};
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &o), 0);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up");

    char masters[256];
    snprintf(masters, sizeof masters, "127.0.0.1:%d, 127.1:%d, localhost:%d", M[0].port, M[0].port,
             M[1].port);
    struct h_daemon_opts bad = o;
    bad.masters = masters;
    ck_assert_int_eq(h_daemon_write_ini(&D, M, NM, &bad), 0);

    char out[H_PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/check.out", D.dir);
    char *const argv[] = {(char *)h_redlockd_bin(), "-t", "-c", D.ini, NULL};
    pid_t pid = h_spawn(argv, out);
    ck_assert_int_gt(pid, 0);
    int code = h_wait_exit(pid, 10000);
    ck_assert_msg(code != 0 && code != -1, "redlockd -t accepted %s (exit %d)", masters, code);
    ck_assert_msg(h_file_contains(out, "are the same master"), "redlockd -t does not say why");

    /* A reload with it is refused and logged; the three masters stay. */
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    struct log_arg la = {D.log, "reload refused"};
    ck_assert_msg(h_wait_until(log_has, &la, 5000 * h_slowdown()), "the reload was not refused");
    ck_assert_msg(h_file_contains(D.log, "are the same master"), "the refusal does not say why");
    ck_assert_int_eq(info_get(&D, "masters"), 3);
    char port2[32];
    snprintf(port2, sizeof port2, "127.0.0.1:%d", M[2].port);
    struct info in;
    info_of(&D, &in);
    ck_assert_str_eq(info_val(&in, "master.2.addr"), port2);
}
END_TEST

/*
 * An alias the config check cannot see: master 0 listens on 127.0.0.1 and,
 * later, on 127.0.0.2 too (CONFIG SET bind), so "127.0.0.2:<port>" is a
 * different address that reaches the same server once the daemon is
 * running. The daemon's list is 127.0.0.1:P0, 127.0.0.2:P0, 127.0.0.1:P1.
 * A client holds an AUTOEXTEND lock (granted by P0 and P1 while the alias
 * was unreachable); then another client takes a real majority of the real
 * masters (P1 and P2). Counted twice, P0's extensions would still be a
 * majority of the daemon's list (P0, alias, against P1's refusal) and the
 * lock would be kept "extending" next to the other holder. With both
 * entries sharing one run_id neither votes: the owner hears EVENT LOST.
 */
START_TEST(test_alias_at_run_time_does_not_vote_twice)
{
    static const struct h_daemon_opts plain = {.redis = "master_timeout_ms = 100\n"};
    /* A daemon on the real masters first: they get their markers, so that
     * the next daemon, which cannot reach its second entry yet, lets the
     * other two vote. (Not asserted: a daemon without markers passes here
     * too, and must fail only at the safety check below.) */
    ck_assert_int_eq(h_daemon_start(&D2, M, NM, &plain), 0);
    ck_assert_msg(wait_info(&D2, "masters_up", "3", 5000), "masters not up");
    for (int i = 0; i < NM; i++) {
        struct marker_arg ma = {&M[i]};
        h_wait_until(marked, &ma, 3000 * h_slowdown());
    }

    char masters[256];
    snprintf(masters, sizeof masters, "127.0.0.1:%d, 127.0.0.2:%d, 127.0.0.1:%d", M[0].port,
             M[0].port, M[1].port);
    struct h_daemon_opts o = {.redis = "master_timeout_ms = 100\n",
                              .lock =
                                  "retry_count = 0\nretry_delay_ms = 50\nretry_jitter_ms = 10\n",
                              .masters = masters};
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &o), 0);
    ck_assert_msg(wait_info(&D, "masters_up", "2", 5000), "masters 0 and 2 not up");

    int x = raw_to(&D);
    char line[256], id[64];
    raw_req(x, "ACQUIRE dup 1000 AUTOEXTEND", line, sizeof line);
    parse_ok_lock(line, id);

    /* The alias becomes reachable: the same server under a second name. */
    char out[256];
    ck_assert_int_eq(h_redis_cmd(&M[0], out, sizeof out, "CONFIG", "SET", "bind",
                                 "127.0.0.1 127.0.0.2", (char *)NULL),
                     H_REPLY_STATUS);
    ck_assert_msg(wait_info(&D, "master.1.state", "up", 5000), "the alias never came up");

    /* Another client holds a real majority (masters 1 and 2) of the real set. */
    ck_assert(h_redis_set_px(&M[1], "dup", "other-holder", 10000));
    ck_assert(h_redis_set_px(&M[2], "dup", "other-holder", 10000));

    /* Within the lock's ttl (1 s) the owner must hear that it lost it. */
    bool lost = false;
    uint64_t t0 = h_now_ms();
    while (!lost && h_now_ms() - t0 < 3000 * h_slowdown()) {
        int n = h_read_line(x, line, sizeof line, 100);
        if (n >= 0 && strncmp(line, "EVENT LOST ", 11) == 0)
            lost = true;
    }
    ck_assert_msg(
        lost, "SAFETY: the AUTOEXTEND lock kept extending on the duplicated votes of one server "
              "while another client held a majority");

    /* INFO names the pair; no lock can be had through the pair now. */
    ck_assert_msg(wait_info(&D, "master.0.same_as", "1", 5000), "master.0.same_as is not 1");
    ck_assert_msg(wait_info(&D, "master.1.same_as", "0", 5000), "master.1.same_as is not 0");
    struct info in;
    info_of(&D, &in);
    ck_assert_str_eq(info_val(&in, "master.2.same_as"), "-");
    raw_req(x, "ACQUIRE dup-2 1000 WAIT 0", line, sizeof line);
    ck_assert_msg(is_err(line, "NOQUORUM"), "one server voted twice: '%s'", line);
    struct log_arg la = {D.log, "reach the same server"};
    ck_assert_msg(h_wait_until(log_has, &la, 3000 * h_slowdown()), "not logged");
    close(x);
}
END_TEST

/* ---- restarts while redlockd was down ----------------------------------------- */

/* A short max_ttl_ms so quarantines end within the test. */
static const struct h_daemon_opts amnesia_opts = {
    .redis = "master_timeout_ms = 100\n",
    .lock = "default_ttl_ms = 2000\nmax_ttl_ms = 3000\nretry_count = 0\nretry_delay_ms = 50\n"
            "retry_jitter_ms = 10\n"};

/* Take "amn" for 3 s (DETACH) through D, then kill redlockd -9. */
static uint64_t hold_then_kill_daemon(char *id)
{
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &amnesia_opts), 0);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up");
    int fd = raw_to(&D);
    char line[256];
    uint64_t t0 = h_now_ms();
    raw_req(fd, "ACQUIRE amn 3000 DETACH", line, sizeof line);
    parse_ok_lock(line, id);
    close(fd);
    ck_assert_uint_eq(h_count_key(M, NM, "amn", id), 3);
    h_kill(D.pid);
    D.pid = 0;
    return t0;
}

/*
 * The reproduction with short TTLs: a lock held on three masters,
 * redlockd killed -9, two masters restart empty while it is down, redlockd
 * starts again with the same config. The two restarted masters would grant
 * the lock that master 2 still holds; they are younger than max_ttl_ms and
 * have lost the marker the other one keeps, so they sit out until their
 * uptime passes max_ttl_ms, and then vote again.
 */
START_TEST(test_restarts_while_daemon_down)
{
    char id[64], line[256], val[128];
    uint64_t t0 = hold_then_kill_daemon(id);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(h_redis_restart(&M[i]), 0);
    ck_assert_int_eq(h_daemon_start(&D2, M, NM, &amnesia_opts), 0);
    ck_assert_msg(wait_info(&D2, "masters_up", "3", 5000), "masters not up after the restart");

    int fd = raw_to(&D2);
    raw_req(fd, "ACQUIRE amn 2000 WAIT 0", line, sizeof line);
    uint64_t elapsed = h_now_ms() - t0;
    bool still_held = h_redis_get(&M[2], "amn", val, sizeof val) && strcmp(val, id) == 0;
    ck_assert_msg(
        !starts(line, "OK"),
        "SAFETY: granted a lock still held (%llu ms into its 3000 ms) through two masters that "
        "restarted empty while redlockd was down: '%s'",
        (unsigned long long)elapsed, line);
    ck_assert_msg(is_err(line, "NOQUORUM") || is_err(line, "BUSY"), "ACQUIRE: '%s'", line);
    ck_assert_msg(still_held, "precondition: the first lock expired (%llu ms) before the attempt",
                  (unsigned long long)elapsed);
    struct info in;
    info_of(&D2, &in);
    for (int i = 0; i < 2; i++) {
        char k[64];
        snprintf(k, sizeof k, "master.%d.quarantine_ms", i);
        long long q = atoll(info_val(&in, k));
        ck_assert_msg(q > 0 && q <= 3000 + 1000, "%s = %lld", k, q);
    }
    ck_assert_str_eq(info_val(&in, "master.2.quarantine_ms"), "0");
    struct log_arg la = {D2.log, "no marker while others have"};
    ck_assert_msg(h_wait_until(log_has, &la, 3000 * h_slowdown()), "not logged");

    /* Once their uptime passes max_ttl_ms they vote, and get the marker. */
    ck_assert_msg(wait_info(&D2, "master.0.quarantine_ms", "0", 6000),
                  "quarantine of master 0 did not end");
    ck_assert_msg(wait_info(&D2, "master.1.quarantine_ms", "0", 6000),
                  "quarantine of master 1 did not end");
    /* WAIT: retried if a slow (valgrind) daemon misses master_timeout_ms. */
    char req[64];
    snprintf(req, sizeof req, "ACQUIRE amn-after 2000 WAIT %u", 2000 * h_slowdown());
    raw_req(fd, req, line, sizeof line);
    char id2[64];
    parse_ok_lock(line, id2);
    for (int i = 0; i < 2; i++) {
        struct marker_arg ma = {&M[i]};
        ck_assert_msg(h_wait_until(marked, &ma, 5000 * h_slowdown()), "master %d got no marker", i);
    }
    close(fd);
}
END_TEST

/* The common case: one master restarted empty while redlockd was down. It
 * sits out, the other two are a majority: locking goes on at once, and the
 * lock the two still hold stays refused. */
START_TEST(test_one_restart_while_daemon_down_keeps_majority)
{
    char id[64], line[256];
    hold_then_kill_daemon(id);
    ck_assert_int_eq(h_redis_restart(&M[0]), 0);
    ck_assert_int_eq(h_daemon_start(&D2, M, NM, &amnesia_opts), 0);
    ck_assert_msg(wait_info(&D2, "masters_up", "3", 5000), "masters not up after the restart");
    int fd = raw_to(&D2);
    raw_req(fd, "ACQUIRE other 2000 WAIT 0", line, sizeof line);
    char id2[64];
    parse_ok_lock(line, id2);
    raw_req(fd, "ACQUIRE amn 2000 WAIT 0", line, sizeof line);
    ck_assert_msg(is_err(line, "BUSY"), "ACQUIRE of the held lock: '%s'", line);
    ck_assert_int_gt(info_get(&D2, "master.0.quarantine_ms"), 0);
    ck_assert_int_eq(info_get(&D2, "master.1.quarantine_ms"), 0);
    close(fd);
}
END_TEST

/* New masters (no marker anywhere) vote at once, and a second daemon
 * started right after the first finds them marked; with one master down at
 * the first start, the young unmarked ones wait until every master has been
 * met (or their uptime passes max_ttl_ms). */
START_TEST(test_new_masters_vote_at_once)
{
    char line[256], id[64];
    h_redis_kill(&M[2]);
    ck_assert_int_eq(h_daemon_start(&D, M, NM, &amnesia_opts), 0);
    ck_assert_msg(wait_info(&D, "masters_up", "2", 5000), "masters not up");
    int fd = raw_to(&D);
    raw_req(fd, "ACQUIRE new-1 2000 WAIT 0", line, sizeof line);
    ck_assert_msg(is_err(line, "NOQUORUM"),
                  "young unmarked masters voted before all were met: '%s'", line);
    struct log_arg la = {D.log, "wait for every master to answer once"};
    ck_assert_msg(h_wait_until(log_has, &la, 5000 * h_slowdown()), "the wait is not logged");

    ck_assert_int_eq(h_redis_restart(&M[2]), 0);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "master 2 not up");
    raw_req(fd, "ACQUIRE new-2 2000 WAIT 0", line, sizeof line);
    parse_ok_lock(line, id);
    close(fd);
    for (int i = 0; i < NM; i++) {
        struct marker_arg ma = {&M[i]};
        ck_assert_msg(h_wait_until(marked, &ma, 5000 * h_slowdown()), "master %d got no marker", i);
    }
    ck_assert_int_eq(h_daemon_start(&D2, M, NM, &amnesia_opts), 0);
    ck_assert_msg(wait_info(&D2, "masters_up", "3", 5000), "masters not up for the second daemon");
    fd = raw_to(&D2);
    raw_req(fd, "ACQUIRE new-3 2000 WAIT 0", line, sizeof line);
    parse_ok_lock(line, id);
    close(fd);
}
END_TEST

int main(void)
{
    const struct test_group groups[] = {
        {"aliases",
         {test_alias_refused_by_check_and_reload, test_alias_at_run_time_does_not_vote_twice,
          NULL}},
        {"unseen_restarts",
         {test_restarts_while_daemon_down, test_one_restart_while_daemon_down_keeps_majority,
          test_new_masters_vote_at_once, NULL}},
    };
    h_init();
    return run_test_groups("masters", groups, sizeof groups / sizeof groups[0], setup, teardown);
}
