/*
 * check_ops.c - integration tests of the operations issue: INFO, INSPECT,
 * live reload on SIGHUP (settings, bad files, the master list, listeners),
 * the Prometheus endpoint and /healthz, the systemd notify protocol, and the
 * daemon's command-line flags.
 *
 * Three real redis-server masters per test (a checked fixture); each test
 * starts its own redlockd with the settings it needs. The teardown asserts
 * that a daemon still running exits 0 on SIGTERM.
 */
#include <check.h>
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"
#include "redlock.h"

#define NM 3
#define NX 2 /* extra masters for the reload of the master list */
#define INFO_MAX_LINES 256

static struct h_redis M[NM + NX]; /* the first NM are the masters; the rest start on demand */
static struct h_daemon D;

#define BASE_REDIS "master_timeout_ms = 100\n"
#define BASE_LOCK \
    "default_ttl_ms = 10000\nretry_count = 1\nretry_delay_ms = 50\nretry_jitter_ms = 20\n"

static const struct h_daemon_opts base_opts = {.redis = BASE_REDIS, .lock = BASE_LOCK};

static void setup(void)
{
    memset(&D, 0, sizeof D);
    memset(M, 0, sizeof M);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    for (int i = 0; i < NM + NX; i++)
        if (M[i].paused)
            h_redis_resume(&M[i]);
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM + NX; i++)
        if (M[i].dir[0])
            h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
}

static void start(const struct h_daemon_opts *o)
{
    ck_assert_msg(h_daemon_start(&D, M, NM, o) == 0, "redlockd did not start");
}

/* ---- helpers ------------------------------------------------------------------ */

static int raw(void)
{
    int fd = h_connect_unix(D.sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", D.sock);
    return fd;
}

static void raw_req(int fd, const char *line, char *out, size_t outlen)
{
    raw_send(fd, line);
    int n = h_read_reply(fd, out, outlen, 10000 * h_slowdown());
    ck_assert_msg(n >= 0, "no reply to '%.60s' (%d)", line, n);
}

/* "OK <id> <validity> ...": id and validity. */
static void parse_ok_lock(const char *reply, char *id, unsigned long long *validity)
{
    char idbuf[64];
    unsigned long long v;
    ck_assert_msg(sscanf(reply, "OK %63s %llu", idbuf, &v) == 2 && h_is_lock_id(idbuf),
                  "want OK <id> <validity>, got '%s'", reply);
    strcpy(id, idbuf);
    if (validity)
        *validity = v;
}

static void acquire_raw(int fd, const char *args, char *id, unsigned long long *validity)
{
    char line[256], reply[256];
    snprintf(line, sizeof line, "ACQUIRE %s", args);
    raw_req(fd, line, reply, sizeof reply);
    parse_ok_lock(reply, id, validity);
}

/* A DATA block: header checked against the lines that follow. */
struct block {
    int n;
    char line[INFO_MAX_LINES][256];
};

static void read_block(int fd, const char *what, struct block *b)
{
    char hdr[64];
    ck_assert_msg(h_read_reply(fd, hdr, sizeof hdr, 10000) >= 0, "%s: no reply", what);
    int n = -1;
    ck_assert_msg(sscanf(hdr, "DATA %d", &n) == 1 && n > 0 && n <= INFO_MAX_LINES,
                  "%s: header '%s'", what, hdr);
    b->n = n;
    for (int i = 0; i < n; i++)
        ck_assert_msg(h_read_line(fd, b->line[i], sizeof b->line[i], 5000) >= 0,
                      "%s: line %d of %d missing", what, i + 1, n);
}

static void info_fd(int fd, struct block *b)
{
    raw_send(fd, "INFO");
    read_block(fd, "INFO", b);
}

static void info_now(struct block *b)
{
    int fd = raw();
    info_fd(fd, b);
    close(fd);
}

static const char *val(const struct block *b, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < b->n; i++)
        if (strncmp(b->line[i], key, kl) == 0 && b->line[i][kl] == ' ')
            return b->line[i] + kl + 1;
    return NULL;
}

static long long num(const struct block *b, const char *key)
{
    const char *v = val(b, key);
    ck_assert_msg(v != NULL, "no '%s' in the block", key);
    char *end;
    long long n = strtoll(v, &end, 10);
    ck_assert_msg(*v && *end == '\0', "'%s' is not a number: '%s'", key, v);
    return n;
}

static long long info_get(const char *key)
{
    struct block b;
    info_now(&b);
    return num(&b, key);
}

struct info_eq_arg {
    const char *key;
    const char *want;
};

static bool info_equals(void *ud)
{
    struct info_eq_arg *a = ud;
    struct block b;
    info_now(&b);
    const char *v = val(&b, a->key);
    return v && strcmp(v, a->want) == 0;
}

static bool wait_info(const char *key, const char *want, uint32_t ms)
{
    struct info_eq_arg a = {key, want};
    return h_wait_until(info_equals, &a, ms * h_slowdown());
}

static bool log_has(void *ud)
{
    return h_file_contains(D.log, ud);
}

static bool wait_log(const char *needle, uint32_t ms)
{
    return h_wait_until(log_has, (void *)needle, ms * h_slowdown());
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Read a whole (small) file into out. */
static void read_file(const char *path, char *out, size_t outlen)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* Reload with new settings: rewrite the ini, SIGHUP, and wait until the
 * daemon logged the outcome (the n-th time it did). */
static void reload(struct h_redis *masters, size_t n, const struct h_daemon_opts *o,
                   const char *logged)
{
    ck_assert_int_eq(h_daemon_write_ini(&D, masters, n, o), 0);
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(wait_log(logged, 5000), "no '%s' in the log after SIGHUP", logged);
}

/* ---- INFO ------------------------------------------------------------------------- */

/* The keys PROTOCOL.md lists, in its order (others may be interleaved). */
static const char *const info_keys[] = {"version",
                                        "protocol",
                                        "uptime_ms",
                                        "clients",
                                        "locks_held",
                                        "waiters",
                                        "connections_total",
                                        "connections_rejected",
                                        "requests",
                                        "acquire_ok",
                                        "acquire_busy",
                                        "acquire_noquorum",
                                        "acquire_error",
                                        "extend_ok",
                                        "extend_fail",
                                        "release_ok",
                                        "release_notheld",
                                        "lost",
                                        "auto_released",
                                        "expired",
                                        "handoffs",
                                        "errors_badreq",
                                        "errors_toolong",
                                        "errors_limit",
                                        "auth_failures",
                                        "masters",
                                        "quorum",
                                        "masters_up"};
static const char *const master_keys[] = {"addr",       "state",    "latency_us",    "pending",
                                          "last_error", "restarts", "quarantine_ms", "same_as"};

struct latency_arg {
    int master;
};

static bool latency_measured(void *ud)
{
    struct latency_arg *a = ud;
    char k[64];
    snprintf(k, sizeof k, "master.%d.latency_us", a->master);
    return info_get(k) > 0;
}

START_TEST(test_info)
{
    start(&base_opts);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    int fd = raw();
    struct block b;
    info_fd(fd, &b);
    /* Exactly n lines: the next line on the connection is the next reply. */
    char line[256];
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_msg(strcmp(line, "PONG") == 0, "after the INFO block: '%s' (DATA count wrong?)",
                  line);

    /* Every documented key, in the documented order, one "key value" per line. */
    int at = 0;
    for (size_t k = 0; k < sizeof info_keys / sizeof info_keys[0]; k++) {
        size_t kl = strlen(info_keys[k]);
        int i = at;
        while (i < b.n && !(strncmp(b.line[i], info_keys[k], kl) == 0 && b.line[i][kl] == ' '))
            i++;
        ck_assert_msg(i < b.n, "INFO key '%s' missing or out of order", info_keys[k]);
        at = i + 1;
    }
    for (int i = 0; i < b.n; i++)
        ck_assert_msg(strchr(b.line[i], ' ') != NULL, "INFO line without a value: '%s'", b.line[i]);
    ck_assert_msg(strlen(val(&b, "version")) > 0, "empty version");
    ck_assert_int_eq(num(&b, "masters"), 3);
    ck_assert_int_eq(num(&b, "quorum"), 2);
    ck_assert_int_eq(num(&b, "masters_up"), 3);
    ck_assert_int_eq(num(&b, "clients"), 1);
    ck_assert_int_eq(num(&b, "locks_held"), 0);
    for (int m = 0; m < NM; m++) {
        char k[64], want[64];
        for (size_t j = 0; j < sizeof master_keys / sizeof master_keys[0]; j++) {
            snprintf(k, sizeof k, "master.%d.%s", m, master_keys[j]);
            ck_assert_msg(val(&b, k) != NULL, "INFO has no %s", k);
        }
        snprintf(k, sizeof k, "master.%d.addr", m);
        snprintf(want, sizeof want, "127.0.0.1:%d", M[m].port);
        ck_assert_str_eq(val(&b, k), want);
        snprintf(k, sizeof k, "master.%d.state", m);
        ck_assert_str_eq(val(&b, k), "up");
        snprintf(k, sizeof k, "master.%d.last_error", m);
        ck_assert_str_eq(val(&b, k), "-");
        snprintf(k, sizeof k, "master.%d.restarts", m);
        ck_assert_int_eq(num(&b, k), 0);
        snprintf(k, sizeof k, "master.%d.quarantine_ms", m);
        ck_assert_int_eq(num(&b, k), 0);
        snprintf(k, sizeof k, "master.%d.latency_us", m);
        num(&b, k);
    }
    ck_assert_msg(val(&b, "master.3.addr") == NULL, "a 4th master in INFO");

    /* Counters move with the traffic. */
    long long ok0 = num(&b, "acquire_ok"), busy0 = num(&b, "acquire_busy");
    long long ext0 = num(&b, "extend_ok"), rel0 = num(&b, "release_ok");
    long long nh0 = num(&b, "release_notheld"), bad0 = num(&b, "errors_badreq");
    long long req0 = num(&b, "requests"), up0 = num(&b, "uptime_ms");
    char id1[64], id2[64], cmd[128];
    acquire_raw(fd, "i1 10000", id1, NULL);
    acquire_raw(fd, "i2 10000", id2, NULL);
    int other = raw();
    raw_req(other, "ACQUIRE i1 5000 WAIT 0", line, sizeof line);
    ck_assert_msg(is_err(line, "BUSY"), "'%s'", line);
    snprintf(cmd, sizeof cmd, "EXTEND %s 10000", id1);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert(starts(line, "OK "));
    snprintf(cmd, sizeof cmd, "RELEASE %s", id2);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    raw_req(fd, cmd, line, sizeof line);
    ck_assert(is_err(line, "NOTHELD"));
    raw_req(fd, "ACQUIRE a,,b", line, sizeof line);
    ck_assert(is_err(line, "BADREQ"));
    info_fd(fd, &b);
    ck_assert_int_eq(num(&b, "acquire_ok"), ok0 + 2);
    ck_assert_int_eq(num(&b, "acquire_busy"), busy0 + 1);
    ck_assert_int_eq(num(&b, "extend_ok"), ext0 + 1);
    ck_assert_int_eq(num(&b, "release_ok"), rel0 + 1);
    ck_assert_int_eq(num(&b, "release_notheld"), nh0 + 1);
    ck_assert_int_eq(num(&b, "errors_badreq"), bad0 + 1);
    ck_assert_int_ge(num(&b, "requests"), req0 + 8);
    ck_assert_int_ge(num(&b, "uptime_ms"), up0);
    ck_assert_int_eq(num(&b, "locks_held"), 1);
    ck_assert_int_eq(num(&b, "clients"), 2);
    close(other);

    /* Latency is measured (the daemon PINGs its masters every second). */
    struct latency_arg la = {0};
    ck_assert_msg(h_wait_until(latency_measured, &la, 5000), "master.0.latency_us stays 0");

    /* A stalled master is reported down after the stall period (~1 s)... */
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    uint64_t t0 = h_now_ms();
    ck_assert_msg(wait_info("master.2.state", "down", 5000), "stalled master never shown down");
    ck_assert_msg(h_now_ms() - t0 >= 500, "shown down after only %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    info_fd(fd, &b);
    ck_assert_int_eq(num(&b, "masters_up"), 2);
    ck_assert_str_eq(val(&b, "master.0.state"), "up");
    ck_assert_str_ne(val(&b, "master.2.last_error"), "-");
    /* ...and up again once it answers. */
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    ck_assert_msg(wait_info("master.2.state", "up", 5000), "resumed master never up again");
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters_up not back to 3");
    close(fd);
}
END_TEST

/* ---- INSPECT ---------------------------------------------------------------------- */

static void inspect(int fd, const char *res, struct block *b)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "INSPECT %s", res);
    raw_send(fd, cmd);
    read_block(fd, "INSPECT", b);
    ck_assert_int_eq(b->n, 4 + NM);
    ck_assert_str_eq(b->line[0] + strlen("resource "), res);
    ck_assert(starts(b->line[0], "resource "));
}

/* master.<i> line of an INSPECT block: "<addr> <rest>" checked, rest returned. */
static const char *master_line(const struct block *b, int i)
{
    char k[32], addr[64];
    snprintf(k, sizeof k, "master.%d", i);
    const char *v = val(b, k);
    ck_assert_msg(v != NULL, "INSPECT has no %s", k);
    snprintf(addr, sizeof addr, "127.0.0.1:%d ", M[i].port);
    ck_assert_msg(starts(v, addr), "%s is '%s' (want address %s)", k, v, addr);
    return v + strlen(addr);
}

static void assert_not_in_block(const struct block *b, const char *secret)
{
    for (int i = 0; i < b->n; i++)
        ck_assert_msg(strstr(b->line[i], secret) == NULL, "full id shown: '%s'", b->line[i]);
}

START_TEST(test_inspect)
{
    start(&base_opts);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    int fd = raw();
    struct block b;

    inspect(fd, "ins-free", &b);
    ck_assert_str_eq(val(&b, "state"), "free");
    ck_assert_str_eq(val(&b, "holder"), "-");
    ck_assert_str_eq(val(&b, "local"), "no");
    for (int i = 0; i < NM; i++)
        ck_assert_str_eq(master_line(&b, i), "free");

    /* Held through this daemon (by another connection). */
    struct redlock_client *c = h_client(D.sock);
    ck_assert_ptr_nonnull(c);
    struct redlock_acquire_opts o = {.ttl_ms = 10000};
    struct redlock_lock lk;
    ck_assert_int_eq(redlock_acquire(c, "ins-held", &o, &lk), REDLOCK_OK);
    char id8[9];
    snprintf(id8, sizeof id8, "%.8s", lk.id);
    inspect(fd, "ins-held", &b);
    ck_assert_str_eq(val(&b, "state"), "held");
    ck_assert_str_eq(val(&b, "holder"), id8);
    ck_assert_str_eq(val(&b, "local"), "yes");
    for (int i = 0; i < NM; i++) {
        long long pttl;
        char shown[64];
        const char *rest = master_line(&b, i);
        ck_assert_msg(sscanf(rest, "held %lld %63s", &pttl, shown) == 2, "master.%d '%s'", i, rest);
        ck_assert_msg(pttl > 0 && pttl <= 10000, "master.%d pttl %lld", i, pttl);
        ck_assert_str_eq(shown, id8);
    }
    assert_not_in_block(&b, lk.id);

    /* A stalled master shows noreply; the majority still says held. */
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    inspect(fd, "ins-held", &b);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    ck_assert_str_eq(val(&b, "state"), "held");
    ck_assert_str_eq(master_line(&b, 2), "noreply");

    /* Held by a client of no daemon: SET NX PX on two masters directly. */
    static const char foreign[] = "f00dfeedcafebabe0123456789abcdef";
    ck_assert(h_redis_set_px(&M[0], "ins-foreign", foreign, 20000));
    ck_assert(h_redis_set_px(&M[1], "ins-foreign", foreign, 20000));
    inspect(fd, "ins-foreign", &b);
    ck_assert_str_eq(val(&b, "state"), "held");
    ck_assert_str_eq(val(&b, "local"), "no");
    ck_assert_str_eq(val(&b, "holder"), "f00dfeed");
    ck_assert_str_eq(master_line(&b, 2), "free");
    const char *m0 = master_line(&b, 0);
    ck_assert_msg(starts(m0, "held ") && strstr(m0, " f00dfeed") != NULL, "master.0 '%s'", m0);
    assert_not_in_block(&b, foreign);

    /* Held on one master only, free on the others: free (a majority says absent). */
    ck_assert(h_redis_set_px(&M[0], "ins-minority", foreign, 20000));
    inspect(fd, "ins-minority", &b);
    ck_assert_str_eq(val(&b, "state"), "free");
    ck_assert(starts(master_line(&b, 0), "held "));

    /* INSPECT only reads. */
    ck_assert_uint_eq(h_count_key(M, NM, "ins-free", NULL), 0);
    ck_assert_uint_eq(h_count_key(M, NM, "ins-held", lk.id), 3);
    redlock_close(c);
    close(fd);
}
END_TEST

/* Five masters named by 240-byte host names (octal-padded numeric forms of
 * 127.0.0.1, which the resolver accepts: no /etc/hosts needed) and a 512-byte
 * resource: the DATA block is longer than any fixed guess, and must still be
 * exactly the lines it announces, whole (it once overflowed its buffer). */
START_TEST(test_inspect_long_names)
{
    enum { N5 = NM + NX, HOST_LEN = 240, RES_LEN = 512 };
    for (int i = NM; i < N5; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d", i);
    static char masters[N5 * (HOST_LEN + 16)], hosts[N5][HOST_LEN + 1];
    size_t used = 0;
    for (int i = 0; i < N5; i++) {
        /* "000...0177.0.0.1" is 127.0.0.1 (inet_aton: a leading 0 is octal). */
        size_t zeros = HOST_LEN - strlen("177.0.0.1");
        memset(hosts[i], '0', zeros);
        strcpy(hosts[i] + zeros, "177.0.0.1");
        used += (size_t)snprintf(masters + used, sizeof masters - used, "%s%s:%d", i ? "," : "",
                                 hosts[i], M[i].port);
    }
    struct h_daemon_opts o = base_opts;
    o.masters = masters;
    ck_assert_msg(h_daemon_start(&D, M, N5, &o) == 0, "redlockd did not start");
    ck_assert_msg(wait_info("masters_up", "5", 10000), "masters not up");
    static char res[RES_LEN + 1], line[2048];
    memset(res, 'r', RES_LEN);
    res[RES_LEN] = '\0';
    int fd = raw();
    snprintf(line, sizeof line, "ACQUIRE %s 10000", res);
    raw_req(fd, line, line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "ACQUIRE: '%.80s'", line);
    char id8[9];
    snprintf(id8, sizeof id8, "%.8s", line + 3);
    snprintf(line, sizeof line, "INSPECT %s", res);
    raw_send(fd, line);
    raw_send(fd, "PING");
    ck_assert_int_gt(h_read_reply(fd, line, sizeof line, 10000 * h_slowdown()), 0);
    ck_assert_msg(strcmp(line, "DATA 9") == 0, "header '%s'", line);
    ck_assert_int_gt(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(starts(line, "resource ") && strcmp(line + 9, res) == 0, "resource line '%.80s'",
                  line);
    ck_assert_int_gt(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "state held");
    ck_assert_int_gt(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(starts(line, "holder ") && strcmp(line + 7, id8) == 0, "'%s'", line);
    ck_assert_int_gt(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "local yes");
    for (int i = 0; i < N5; i++) {
        char want[sizeof hosts + 64];
        long long pttl;
        char shown[16];
        ck_assert_int_gt(h_read_line(fd, line, sizeof line, 5000), 0);
        snprintf(want, sizeof want, "master.%d %s:%d held ", i, hosts[i], M[i].port);
        ck_assert_msg(starts(line, want), "master line %d: '%s'", i, line);
        ck_assert_msg(sscanf(line + strlen(want), "%lld %15s", &pttl, shown) == 2 &&
                          strcmp(shown, id8) == 0,
                      "master line %d: '%s'", i, line);
    }
    /* The block ended where it said: the next line is PING's answer. */
    ck_assert_int_gt(h_read_reply(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "PONG");
    close(fd);
}
END_TEST

/* ---- reload ----------------------------------------------------------------------- */

START_TEST(test_reload_settings)
{
    static const struct h_daemon_opts before = {
        .redis = BASE_REDIS,
        .lock =
            "default_ttl_ms = 10000\nretry_count = 3\nretry_delay_ms = 300\nretry_jitter_ms = 0\n",
        .log = "level = info\n"};
    start(&before);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    int fd = raw();
    char held[64], id[64], line[256], cmd[128];
    unsigned long long v;
    acquire_raw(fd, "rl-held 30000", held, NULL);
    acquire_raw(fd, "rl-def", id, &v);
    ck_assert_msg(v > 8000 && v <= 10000, "default validity %llu before reload", v);
    acquire_raw(fd, "rl-a,rl-b,rl-c", id, NULL);
    /* Held elsewhere: the retries take at least 3 x 300 ms. */
    for (int i = 0; i < NM; i++)
        ck_assert(h_redis_set_px(&M[i], "rl-busy", "someone-else", 60000));
    uint64_t t0 = h_now_ms();
    raw_req(fd, "ACQUIRE rl-busy", line, sizeof line);
    uint64_t busy_before = h_now_ms() - t0;
    ck_assert(is_err(line, "BUSY"));
    ck_assert_msg(busy_before >= 850, "BUSY after %llu ms with 3 retries of 300 ms",
                  (unsigned long long)busy_before);
    ck_assert_msg(!h_file_contains(D.log, "level=debug"), "debug lines at level info");

    /* A lower limit, a new default TTL, no retries, a larger drift allowance
     * and master timeout, debug logging. */
    static const struct h_daemon_opts after = {
        .server = "max_resources_per_lock = 2\n",
        .redis = "master_timeout_ms = 400\n",
        .lock =
            "default_ttl_ms = 4000\nretry_count = 0\nretry_delay_ms = 300\nretry_jitter_ms = 0\n"
            "drift_factor = 0.1\n",
        .log = "level = debug\n"};
    reload(M, NM, &after, "configuration reloaded");

    /* The same connection goes on: new limit, default TTL, no retries. */
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    raw_req(fd, "ACQUIRE rx,ry,rz 5000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "3 resources after reloading a limit of 2: '%s'", line);
    acquire_raw(fd, "rl-def2", id, &v);
    /* validity = 4000 - elapsed - (4000 * 0.1 + 2) */
    ck_assert_msg(v > 3000 && v <= 3598, "default validity %llu after reload (want < 3598)", v);
    long long pttl = h_redis_pttl(&M[0], "rl-def2");
    ck_assert_msg(pttl > 3000 && pttl <= 4000, "PTTL %lld after reload", pttl);
    t0 = h_now_ms();
    raw_req(fd, "ACQUIRE rl-busy", line, sizeof line);
    uint64_t busy_after = h_now_ms() - t0;
    ck_assert(is_err(line, "BUSY"));
    ck_assert_msg(busy_after < 600 * h_slowdown(), "BUSY after %llu ms with retry_count = 0",
                  (unsigned long long)busy_after);
    /* Two masters stalled: one attempt that waits the new master timeout. */
    ck_assert_int_eq(h_redis_pause(&M[1]), 0);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    t0 = h_now_ms();
    raw_req(fd, "ACQUIRE rl-nq WAIT 0", line, sizeof line);
    uint64_t nq = h_now_ms() - t0;
    ck_assert_int_eq(h_redis_resume(&M[1]), 0);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    ck_assert_msg(is_err(line, "NOQUORUM"), "'%s'", line);
    ck_assert_msg(nq >= 350, "NOQUORUM after %llu ms with master_timeout_ms = 400",
                  (unsigned long long)nq);
    /* The held lock survived. */
    ck_assert_uint_eq(h_count_key(M, NM, "rl-held", held), 3);
    snprintf(cmd, sizeof cmd, "EXTEND %s 30000", held);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "EXTEND of a lock held across the reload: '%s'", line);
    /* Debug logging is on: a closing client is logged. */
    int tmp = raw();
    raw_req(tmp, "PING", line, sizeof line);
    close(tmp);
    ck_assert_msg(wait_log("level=debug", 3000), "no debug line after reloading level = debug");
    close(fd);
}
END_TEST

START_TEST(test_reload_bad_config)
{
    start(&base_opts);
    int fd = raw();
    char id[64], line[256];
    unsigned long long v;
    static const struct h_daemon_opts bad = {.redis = BASE_REDIS,
                                             .lock = "default_ttl_ms = 4000\nbogus_key = 1\n"};
    reload(M, NM, &bad, "reload refused");
    ck_assert_msg(h_file_contains(D.log, "bogus_key"), "the refusal does not name the key");
    ck_assert(h_daemon_alive(&D));
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    acquire_raw(fd, "rb1", id, &v);
    ck_assert_msg(v > 8000 && v <= 10000, "validity %llu: the refused config took effect", v);

    /* A value out of range is refused too. */
    static const struct h_daemon_opts bad2 = {.redis = BASE_REDIS, .lock = "default_ttl_ms = 0\n"};
    ck_assert_int_eq(h_daemon_write_ini(&D, M, NM, &bad2), 0);
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(wait_log("default_ttl_ms", 5000), "bad value not reported");
    acquire_raw(fd, "rb2", id, &v);
    ck_assert_msg(v > 8000 && v <= 10000, "validity %llu after the second bad reload", v);

    /* A good file afterwards is taken. */
    static const struct h_daemon_opts good = {.redis = BASE_REDIS,
                                              .lock = "default_ttl_ms = 4000\n"};
    reload(M, NM, &good, "configuration reloaded");
    acquire_raw(fd, "rb3", id, &v);
    ck_assert_msg(v > 3000 && v <= 4000, "validity %llu after a good reload", v);
    close(fd);
}
END_TEST

struct count_arg {
    const char *key;
    const char *id;
    size_t n;
    size_t want;
};

static bool masters_hold(void *ud)
{
    struct count_arg *a = ud;
    return h_count_key(M, a->n, a->key, a->id) == a->want;
}

START_TEST(test_reload_masters)
{
    start(&base_opts);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    for (int i = NM; i < NM + NX; i++) {
        ck_assert_int_eq(h_redis_start(&M[i]), 0);
        /* New servers younger than max_ttl_ms cannot be told from masters
         * that lost their data: they vote at once only with the marker,
         * which the operator writes by hand (PROTOCOL.md 8.5). */
        ck_assert_int_eq(h_redis_mark(&M[i], ""), 0);
    }
    int fd = raw();
    char held[64], id[64], line[256], cmd[128];
    acquire_raw(fd, "rm-held 30000", held, NULL);

    /* Three old + two new masters. */
    reload(M, NM + NX, &base_opts, "configuration reloaded");
    ck_assert_msg(wait_info("masters", "5", 5000), "INFO does not show 5 masters");
    ck_assert_msg(wait_info("masters_up", "5", 5000), "the new masters never came up");
    struct block b;
    info_now(&b);
    ck_assert_int_eq(num(&b, "quorum"), 3);
    for (int i = 0; i < NM + NX; i++) {
        char k[32], want[64];
        snprintf(k, sizeof k, "master.%d.addr", i);
        snprintf(want, sizeof want, "127.0.0.1:%d", M[i].port);
        ck_assert_str_eq(val(&b, k), want);
    }
    acquire_raw(fd, "rm-new 10000", id, NULL);
    struct count_arg ca = {"rm-new", id, NM + NX, NM + NX};
    ck_assert_msg(h_wait_until(masters_hold, &ca, 2000), "new lock not on all 5 masters (%zu)",
                  h_count_key(M, NM + NX, "rm-new", id));
    /* The lock held across the reload is still ours. */
    snprintf(cmd, sizeof cmd, "EXTEND %s 30000", held);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "EXTEND after growing the master list: '%s'", line);
    ck_assert_uint_ge(h_count_key(M, NM + NX, "rm-held", held), 3);
    /* Two of five stalled: still a quorum of three. */
    ck_assert_int_eq(h_redis_pause(&M[0]), 0);
    ck_assert_int_eq(h_redis_pause(&M[3]), 0);
    acquire_raw(fd, "rm-two-down 10000", id, NULL);
    ck_assert_int_eq(h_redis_resume(&M[0]), 0);
    ck_assert_int_eq(h_redis_resume(&M[3]), 0);

    /* Back to the three. */
    reload(M, NM, &base_opts, "masters=3 masters_changed=yes");
    ck_assert_msg(wait_info("masters", "3", 5000), "INFO does not show 3 masters again");
    info_now(&b);
    ck_assert_int_eq(num(&b, "quorum"), 2);
    ck_assert_msg(val(&b, "master.3.addr") == NULL, "a removed master still listed");
    acquire_raw(fd, "rm-back 10000", id, NULL);
    ck_assert_uint_eq(h_count_key(M, NM, "rm-back", id), 3);
    ck_assert_uint_eq(h_count_key(M + NM, NX, "rm-back", NULL), 0);
    snprintf(cmd, sizeof cmd, "RELEASE %s", held);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    struct count_arg gone = {"rm-held", NULL, NM, 0};
    ck_assert_msg(h_wait_until(masters_hold, &gone, 2000), "released lock left on the masters");
    close(fd);
}
END_TEST

START_TEST(test_reload_listen_ignored)
{
    start(&base_opts);
    char dir[H_PATH_MAX], server[2 * H_PATH_MAX], newsock[H_PATH_MAX + 16], line[128];
    ck_assert_int_eq(h_mkdtemp("newlisten", dir), 0);
    snprintf(newsock, sizeof newsock, "%s/new.sock", dir);
    int newport = h_free_port();
    ck_assert_int_gt(newport, 0);
    /* The harness writes listen/unix_socket first; later lines would be
     * "given twice", so write this ini by hand. */
    char ini[4096];
    snprintf(server, sizeof server, "127.0.0.1:%d", newport);
    snprintf(ini, sizeof ini,
             "[server]\nlisten = %s\nunix_socket = %s\n[redis]\nmasters = 127.0.0.1:%d, "
             "127.0.0.1:%d, 127.0.0.1:%d\n" BASE_REDIS "[lock]\n" BASE_LOCK,
             server, newsock, M[0].port, M[1].port, M[2].port);
    char tmp[H_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", D.ini);
    write_file(tmp, ini);
    ck_assert_int_eq(rename(tmp, D.ini), 0);
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(wait_log("only on restart", 5000), "listener change not reported");

    /* The old listeners serve; nothing listens on the new ones. */
    ck_assert(h_daemon_ping_raw(D.sock, 5000));
    int fd = h_connect_tcp(D.port);
    ck_assert_int_ge(fd, 0);
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(fd);
    fd = h_connect_tcp(newport);
    if (fd >= 0)
        close(fd);
    ck_assert_msg(fd < 0, "something listens on the new port after a reload");
    ck_assert_msg(access(newsock, F_OK) != 0, "the new socket path was created on reload");
}
END_TEST

/* ---- metrics and health --------------------------------------------------------- */

static int metrics_port;

static int http_get(const char *path, char *body, size_t bodylen)
{
    return http_request(metrics_port, "GET", path, body, bodylen);
}

struct health_arg {
    int want;
};

static bool health_is(void *ud)
{
    struct health_arg *a = ud;
    char body[1024];
    return http_get("/healthz", body, sizeof body) == a->want;
}

static bool all_masters_up_metric(void *ud)
{
    (void)ud;
    static char body[65536];
    if (http_get("/metrics", body, sizeof body) != 200)
        return false;
    for (int i = 0; i < NM; i++) {
        char l[128];
        snprintf(l, sizeof l, "redlockd_master_up{master=\"127.0.0.1:%d\"} 1\n", M[i].port);
        if (!strstr(body, l))
            return false;
    }
    return true;
}

START_TEST(test_metrics)
{
    metrics_port = h_free_port();
    ck_assert_int_gt(metrics_port, 0);
    char metrics[64];
    snprintf(metrics, sizeof metrics, "listen = 127.0.0.1:%d\n", metrics_port);
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .metrics = metrics};
    start(&o);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    int fd = raw();
    char id[64], line[256];
    acquire_raw(fd, "me1 10000", id, NULL);
    acquire_raw(fd, "me2 10000", id, NULL);
    int other = raw();
    raw_req(other, "ACQUIRE me1 WAIT 0", line, sizeof line);
    ck_assert(is_err(line, "BUSY"));
    close(other);

    static char body[65536];
    ck_assert_int_eq(http_get("/metrics", body, sizeof body), 200);
    static const char *const want[] = {
        "redlockd_acquire_total{result=\"ok\"} 2\n",
        "redlockd_acquire_total{result=\"busy\"} 1\n",
        "# TYPE redlockd_acquire_latency_seconds histogram\n",
        "redlockd_acquire_latency_seconds_bucket{le=\"+Inf\"} 2\n",
        "redlockd_acquire_latency_seconds_count 2\n",
        "redlockd_acquire_latency_seconds_sum ",
        "redlockd_locks_held 2\n",
        "# TYPE redlockd_master_up gauge\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(body, want[i]) != NULL, "/metrics lacks '%s'", want[i]);
    /* Buckets are cumulative and end at the count. */
    int nb = 0;
    long long prev = -1;
    for (const char *p = body; (p = strstr(p, "redlockd_acquire_latency_seconds_bucket{le=\""));
         p++) {
        const char *sp = strchr(p, ' ');
        ck_assert_ptr_nonnull(sp);
        long long c = atoll(sp + 1);
        ck_assert_msg(c >= prev, "histogram buckets not cumulative");
        prev = c;
        nb++;
    }
    ck_assert_int_ge(nb, 5);
    ck_assert_int_eq(prev, 2);
    ck_assert_msg(h_wait_until(all_masters_up_metric, NULL, 5000),
                  "redlockd_master_up not 1 for the three masters");

    char hb[1024];
    ck_assert_int_eq(http_get("/healthz", hb, sizeof hb), 200);
    /* Two of three stalled: unhealthy once the daemon notices (~1 s). */
    ck_assert_int_eq(h_redis_pause(&M[1]), 0);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    struct health_arg ha = {503};
    ck_assert_msg(h_wait_until(&health_is, &ha, 5000 * h_slowdown()),
                  "/healthz not 503 with two of three masters stalled");
    ck_assert_int_eq(h_redis_resume(&M[1]), 0);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    ha.want = 200;
    ck_assert_msg(h_wait_until(&health_is, &ha, 5000 * h_slowdown()),
                  "/healthz not back to 200 after the masters resumed");
    close(fd);
}
END_TEST

/* ---- systemd notify --------------------------------------------------------------- */

struct notes {
    int fd;
    int n;
    char msg[512][256];
};

/* Receive datagrams until one has the line want (after index from) or ms
 * passed; returns its index or -1. Everything received is kept. */
static int wait_note(struct notes *nt, const char *want, int from, uint32_t ms)
{
    for (int i = from; i < nt->n; i++) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", nt->msg[i]);
        for (char *save, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            if (strcmp(l, want) == 0)
                return i;
    }
    uint64_t deadline = h_now_ms() + ms;
    while (nt->n < 512) {
        uint64_t now = h_now_ms();
        if (now >= deadline || !h_readable(nt->fd, (uint32_t)(deadline - now)))
            return -1;
        ssize_t r = recv(nt->fd, nt->msg[nt->n], sizeof nt->msg[0] - 1, 0);
        if (r < 0)
            return -1;
        nt->msg[nt->n][r] = '\0';
        int idx = nt->n++;
        char copy[256];
        snprintf(copy, sizeof copy, "%s", nt->msg[idx]);
        for (char *save, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            if (strcmp(l, want) == 0 && idx >= from)
                return idx;
    }
    return -1;
}

static int count_note(const struct notes *nt, const char *prefix, int from, int to)
{
    int c = 0;
    for (int i = from; i < to; i++)
        if (strstr(nt->msg[i], prefix))
            c++;
    return c;
}

START_TEST(test_systemd_notify)
{
    char dir[H_PATH_MAX], path[H_PATH_MAX + 16];
    ck_assert_int_eq(h_mkdtemp("notify", dir), 0);
    snprintf(path, sizeof path, "%s/notify.sock", dir);
    static struct notes nt;
    memset(&nt, 0, sizeof nt);
    nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(nt.fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(nt.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static char env_sock[H_PATH_MAX + 32];
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", path);
    const char *env[] = {env_sock, "WATCHDOG_USEC=500000", NULL};
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .env = env};
    start(&o);

    int ready = wait_note(&nt, "READY=1", 0, 5000);
    ck_assert_msg(ready >= 0, "no READY=1 (got %d messages)", nt.n);
    /* Keep-alives every WATCHDOG_USEC/2: several in 2 s. */
    int first = wait_note(&nt, "WATCHDOG=1", 0, 2000);
    ck_assert_msg(first >= 0, "no WATCHDOG=1");
    uint64_t t0 = h_now_ms();
    int seen = 0, last = first;
    while (seen < 4 && h_now_ms() - t0 < 3000) {
        int i = wait_note(&nt, "WATCHDOG=1", last + 1, 2000);
        ck_assert_msg(i >= 0, "WATCHDOG=1 stopped after %d", seen);
        last = i;
        seen++;
    }
    ck_assert_msg(seen >= 4, "only %d more WATCHDOG=1 in 3 s (want them every 250 ms)", seen);
    ck_assert_msg(h_now_ms() - t0 < 2500, "4 WATCHDOG=1 took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    ck_assert_msg(count_note(&nt, "STATUS=", 0, nt.n) >= 1, "no STATUS= message");

    /* Reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1. */
    int mark = nt.n;
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    int rl = wait_note(&nt, "RELOADING=1", mark, 5000);
    ck_assert_msg(rl >= 0, "no RELOADING=1 after SIGHUP");
    ck_assert_msg(strstr(nt.msg[rl], "MONOTONIC_USEC=") != NULL,
                  "RELOADING=1 without MONOTONIC_USEC");
    int rd = wait_note(&nt, "READY=1", rl + 1, 5000);
    ck_assert_msg(rd > rl, "no READY=1 after RELOADING=1");
    /* The watchdog goes on after the reload. */
    ck_assert_msg(wait_note(&nt, "WATCHDOG=1", rd + 1, 2000) > rd, "no WATCHDOG=1 after reload");

    /* Stop: STOPPING=1, exit 0. */
    mark = nt.n;
    pid_t pid = D.pid;
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_msg(wait_note(&nt, "STOPPING=1", mark, 5000) >= 0, "no STOPPING=1 after SIGTERM");
    int code = h_wait_exit(pid, 5000 * h_slowdown());
    D.pid = 0;
    ck_assert_int_eq(code, 0);
    close(nt.fd);
}
END_TEST

/* ---- command line ----------------------------------------------------------------- */

/* Run redlockd with args; its exit code, and its output in out. */
static int run_daemon(char *const args[], char *out, size_t outlen)
{
    char dir[H_PATH_MAX], log[H_PATH_MAX + 16];
    ck_assert_int_eq(h_mkdtemp("cli", dir), 0);
    snprintf(log, sizeof log, "%s/out", dir);
    char *argv[8] = {(char *)h_redlockd_bin()};
    for (int i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    pid_t pid = h_spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    int code = h_wait_exit(pid, 10000);
    ck_assert_msg(code != -1, "redlockd %s did not exit", args[0]);
    read_file(log, out, outlen);
    h_rmtree(dir);
    return code;
}

START_TEST(test_command_line)
{
    start(&base_opts);
    char out[4096];

    /* -t on the running daemon's config. */
    char *good[] = {"-t", "-c", D.ini, NULL};
    ck_assert_int_eq(run_daemon(good, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "ok") != NULL, "-t output: '%s'", out);

    /* -t on a bad file: non-zero, naming file:line and the key. */
    char dir[H_PATH_MAX], bad[H_PATH_MAX + 16], want[H_PATH_MAX + 32];
    ck_assert_int_eq(h_mkdtemp("badini", dir), 0);
    snprintf(bad, sizeof bad, "%s/bad.ini", dir);
    write_file(bad, "[server]\nlisten = 127.0.0.1:7379\n[redis]\nmasters = 127.0.0.1:1\n"
                    "[lock]\nfrobnicate = 3\n");
    char *badargs[] = {"-t", "-c", bad, NULL};
    int code = run_daemon(badargs, out, sizeof out);
    ck_assert_msg(code != 0, "-t accepted an unknown key");
    snprintf(want, sizeof want, "%s:6", bad);
    ck_assert_msg(strstr(out, want) != NULL, "no '%s' in '%s'", want, out);
    ck_assert_msg(strstr(out, "frobnicate") != NULL, "the key is not named: '%s'", out);
    /* A bad value. */
    write_file(bad, "[redis]\nmasters = 127.0.0.1:1\n[lock]\n\ndefault_ttl_ms = soon\n");
    code = run_daemon(badargs, out, sizeof out);
    ck_assert_msg(code != 0, "-t accepted a bad number");
    snprintf(want, sizeof want, "%s:5", bad);
    ck_assert_msg(strstr(out, want) != NULL && strstr(out, "default_ttl_ms") != NULL,
                  "bad value not reported as file:line:key: '%s'", out);
    /* A missing file. */
    snprintf(bad, sizeof bad, "%s/missing.ini", dir);
    ck_assert_int_ne(run_daemon(badargs, out, sizeof out), 0);

    /* -V: the version INFO reports. */
    char *vargs[] = {"-V", NULL};
    ck_assert_int_eq(run_daemon(vargs, out, sizeof out), 0);
    struct block b;
    info_now(&b);
    ck_assert_msg(strstr(out, val(&b, "version")) != NULL, "-V says '%s', INFO version %s", out,
                  val(&b, "version"));
    /* -h: usage on stdout, exit 0; an unknown flag: one line naming it, exit 64. */
    char *hargs[] = {"-h", NULL};
    ck_assert_int_eq(run_daemon(hargs, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "usage") != NULL && strstr(out, "-c") != NULL, "-h: '%s'", out);
    char *xargs[] = {"-x", NULL};
    ck_assert_int_eq(run_daemon(xargs, out, sizeof out), 64);
    ck_assert_msg(strstr(out, "-x") != NULL && strchr(out, '\n') == strrchr(out, '\n'),
                  "unknown flag: '%s'", out);
}
END_TEST

/* Does /metrics carry INFO's key? As "redlockd_<key>[_total] ", or, for a key
 * "<metric>_<value>", as a sample of redlockd_<metric>_total whose label has
 * that value (acquire_busy: redlockd_acquire_total{result="busy"}). */
static bool metrics_has_info_key(const char *body, const char *key)
{
    char want[160];
    snprintf(want, sizeof want, "\nredlockd_%s ", key);
    if (strstr(body, want))
        return true;
    snprintf(want, sizeof want, "\nredlockd_%s_total ", key);
    if (strstr(body, want))
        return true;
    for (const char *us = strchr(key, '_'); us != NULL; us = strchr(us + 1, '_')) {
        char metric[128], value[64];
        snprintf(metric, sizeof metric, "\nredlockd_%.*s_total{", (int)(us - key), key);
        snprintf(value, sizeof value, "=\"%s\"", us + 1);
        for (const char *p = strstr(body, metric); p != NULL; p = strstr(p + 1, metric)) {
            const char *close_brace = strchr(p, '}');
            if (close_brace == NULL)
                break;
            for (const char *v = p; v < close_brace; v++)
                if (strncasecmp(v, value, strlen(value)) == 0)
                    return true;
        }
    }
    return false;
}

/* Every name in a contrib file (alert rules, dashboard) that looks like one of
 * ours is a metric /metrics serves. */
static void check_contrib_names(const char *path, const char *body)
{
    static char text[65536];
    read_file(path, text, sizeof text);
    ck_assert_msg(text[0] != '\0', "cannot read %s", path);
    int names = 0;
    for (const char *p = text; *p; p++) {
        bool ours = strncmp(p, "redlockd_", 9) == 0 || strncmp(p, "process_", 8) == 0;
        if (!ours || (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
            continue;
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
        for (size_t i = 0; i < 3; i++) {
            size_t sl = strlen(suffixes[i]), nl = strlen(name);
            if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0 && strstr(name, "latency"))
                name[nl - sl] = '\0';
        }
        char typeline[160];
        snprintf(typeline, sizeof typeline, "# TYPE %s ", name);
        ck_assert_msg(strstr(body, typeline) != NULL, "%s names %s, which /metrics does not serve",
                      path, name);
        names++;
        p += n - 1;
    }
    ck_assert_msg(names > 3, "%s names only %d metrics", path, names);
}

/* INFO and /metrics come from one list: every INFO counter and gauge is in
 * /metrics, with the standard process_* metrics and build info; promtool
 * (Debian's prometheus) lints the page and checks the contrib/ alert rules
 * (and their unit tests), and every metric the rules and the Grafana
 * dashboard use exists. */
START_TEST(test_metrics_match_info)
{
    metrics_port = h_free_port();
    ck_assert_int_gt(metrics_port, 0);
    char metrics[64];
    snprintf(metrics, sizeof metrics, "listen = 127.0.0.1:%d\n", metrics_port);
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .metrics = metrics};
    start(&o);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    struct block b;
    info_now(&b);
    static char body[65536];
    ck_assert_int_eq(http_get("/metrics", body + 1, sizeof body - 1), 200);
    body[0] = '\n'; /* every sample now follows a newline */
    static const char *const info_only[] = {"version", "protocol", "uptime_ms", "lost"};
    int checked = 0;
    for (int i = 0; i < b.n; i++) {
        char key[128];
        ck_assert_int_eq(sscanf(b.line[i], "%127s", key), 1);
        if (strncmp(key, "master.", 7) == 0)
            continue; /* per master: redlockd_master_up{master=...} */
        bool skip = false;
        for (size_t k = 0; k < sizeof info_only / sizeof info_only[0]; k++)
            skip |= strcmp(key, info_only[k]) == 0;
        if (skip)
            continue;
        ck_assert_msg(metrics_has_info_key(body, key), "INFO has '%s', /metrics does not", key);
        checked++;
    }
    ck_assert_int_ge(checked, 30);
    static const char *const want[] = {
        "\nredlockd_build_info{version=\"",
        "\nprocess_cpu_seconds_total ",
        "\nprocess_resident_memory_bytes ",
        "\nprocess_open_fds ",
        "\nprocess_max_fds ",
        "\nprocess_start_time_seconds ",
        "\nredlockd_lost_total{reason=\"noquorum\"} ",
        "\nredlockd_lost_total{reason=\"taken\"} ",
        "\nredlockd_extend_total{result=\"ok\"} ",
        "\nredlockd_uptime_seconds ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(body, want[i]) != NULL, "/metrics lacks '%s'", want[i] + 1);

    char page[PATH_MAX], cmd[PATH_MAX * 2];
    snprintf(page, sizeof page, "%s/metrics.txt", D.dir);
    write_file(page, body + 1);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' >/dev/null 2>&1", page);
    ck_assert_msg(system(cmd) == 0,
                  "promtool check metrics finds fault with /metrics (is promtool installed?)");
    ck_assert_msg(
        system(
            "cd contrib/prometheus && promtool check rules redlockd-alerts.yml >/dev/null 2>&1 && "
            "promtool test rules redlockd-alerts.test.yml >/dev/null 2>&1") == 0,
        "promtool check/test rules on contrib/prometheus/redlockd-alerts.yml failed");
    check_contrib_names("contrib/prometheus/redlockd-alerts.yml", body);
    check_contrib_names("contrib/grafana/redlockd-dashboard.json", body);
}
END_TEST

/* A reload that changes restart-only keys (the config table's reloadable
 * column) names each in the log and keeps its running value, while the
 * reloadable keys of the same file are applied. */
START_TEST(test_reload_restart_only_keys)
{
    metrics_port = h_free_port();
    ck_assert_int_gt(metrics_port, 0);
    char metrics[64];
    snprintf(metrics, sizeof metrics, "listen = 127.0.0.1:%d\n", metrics_port);
    struct h_daemon_opts o = {
        .redis = BASE_REDIS, .lock = BASE_LOCK, .metrics = metrics, .log = "syslog = no\n"};
    start(&o);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    char body[1024];
    ck_assert_int_eq(http_get("/healthz", body, sizeof body), 200);

    int newport = h_free_port();
    ck_assert_int_gt(newport, 0);
    char newmetrics[64];
    snprintf(newmetrics, sizeof newmetrics, "listen = 127.0.0.1:%d\n", newport);
    struct h_daemon_opts next = {.server = "max_resources_per_lock = 2\n",
                                 .redis = BASE_REDIS,
                                 .lock = BASE_LOCK,
                                 .metrics = newmetrics,
                                 .log = "syslog = yes\nlevel = debug\n"};
    reload(M, NM, &next, "configuration reloaded");
    ck_assert_msg(
        h_file_contains(D.log, "only on restart; the running value stays\" key=metrics.listen"),
        "the metrics.listen change is not named in the log");
    ck_assert_msg(
        h_file_contains(D.log, "only on restart; the running value stays\" key=log.syslog"),
        "the log.syslog change is not named in the log");
    ck_assert_msg(!h_file_contains(D.log, "key=server.max_resources_per_lock"),
                  "a reloadable key was reported as restart-only");

    /* The old metrics address serves, nothing listens on the new one. */
    ck_assert_int_eq(http_get("/healthz", body, sizeof body), 200);
    int fd = h_connect_tcp(newport);
    if (fd >= 0)
        close(fd);
    ck_assert_msg(fd < 0, "/metrics moved to the new address on reload");
    /* Still logging to stderr (syslog = no kept), at the reloaded level. */
    fd = raw();
    char line[256];
    raw_req(fd, "ACQUIRE rr-a,rr-b,rr-c 5000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "3 resources after reloading a limit of 2: '%s'", line);
    close(fd);
    ck_assert_msg(wait_log("level=debug", 3000), "no debug line on stderr after the reload");
}
END_TEST

/* A reload that changes only master_timeout_ms (same masters, same pool)
 * also changes how long a silent master is kept: 10 times the timeout. */
START_TEST(test_reload_master_timeout_stall)
{
    struct h_daemon_opts o = {.redis = "master_timeout_ms = 3000\n", .lock = BASE_LOCK};
    start(&o);
    ck_assert_msg(wait_info("masters_up", "3", 5000), "masters not up");
    struct h_daemon_opts next = {.redis = "master_timeout_ms = 100\n", .lock = BASE_LOCK};
    reload(M, NM, &next, "configuration reloaded");
    /* Silent from now on: with the reloaded timeout it is dropped after
     * about 1 s (its PINGs go unanswered), not after the old 30 s. */
    ck_assert_int_eq(h_redis_pause(&M[0]), 0);
    ck_assert_msg(wait_info("masters_up", "2", 8000),
                  "a paused master still counted up 8 s after reloading master_timeout_ms = 100");
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

int main(void)
{
    const struct test_group groups[] = {
        {"visibility",
         {test_info, test_inspect, test_inspect_long_names, test_metrics, test_metrics_match_info,
          NULL}},
        {"reload",
         {test_reload_settings, test_reload_bad_config, test_reload_masters,
          test_reload_listen_ignored, test_reload_restart_only_keys,
          test_reload_master_timeout_stall, NULL}},
        {"systemd", {test_systemd_notify, test_command_line, NULL}},
    };
    h_init();
    return run_test_groups("ops", groups, sizeof groups / sizeof groups[0], setup, teardown);
}
