/*
 * check_reliability.c - integration tests of the reliability and security
 * issue: configured limits and hostile clients, masters that restart empty
 * or answer errors, graceful shutdown, client AUTH, masters with passwords
 * and ACL users, and the Unix socket's mode.
 *
 * Three real redis-server masters per test (a checked fixture); each test
 * starts its own redlockd with the settings it exercises. The teardown
 * asserts that a daemon still running exits 0 on SIGTERM.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"
#include "redlock.h"

#define NM 3
#define UNKNOWN_ID "0123456789abcdef0123456789abcdef"
#define INFO_MAX_LINES 256

static struct h_redis M[NM];
static struct h_daemon D;  /* the daemon of the test */
static struct h_daemon D2; /* a second one (restart amnesia) */
static struct h_redis X;   /* an extra redis (the primary a master replicates) */

/* Short retries so failures come back quickly. */
#define BASE_REDIS "master_timeout_ms = 100\n"
#define BASE_LOCK \
    "default_ttl_ms = 10000\nretry_count = 1\nretry_delay_ms = 50\nretry_jitter_ms = 20\n"

static void setup(void)
{
    memset(&D, 0, sizeof D);
    memset(&D2, 0, sizeof D2);
    memset(&X, 0, sizeof X);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    /* Paused masters would make the daemons' shutdown wait. */
    for (int i = 0; i < NM; i++)
        if (M[i].paused)
            h_redis_resume(&M[i]);
    int code = h_daemon_stop(&D);
    int code2 = h_daemon_stop(&D2);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    if (X.dir[0])
        h_redis_stop(&X);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
    ck_assert_msg(code2 == 0, "second redlockd exited with %d on SIGTERM (want 0)", code2);
}

static void start(struct h_daemon *d, const struct h_daemon_opts *o)
{
    ck_assert_msg(h_daemon_start(d, M, NM, o) == 0, "redlockd did not start");
}

/* ---- helpers ------------------------------------------------------------------ */

static int raw_to(const struct h_daemon *d)
{
    int fd = h_connect_unix(d->sock);
    ck_assert_msg(fd >= 0, "raw connect to %s failed", d->sock);
    return fd;
}

static int raw(void)
{
    return raw_to(&D);
}

/* Send line + "\r\n" and read the reply (events skipped) into out. */
static void raw_req(int fd, const char *line, char *out, size_t outlen)
{
    raw_send(fd, line);
    int n = h_read_reply(fd, out, outlen, 10000 * h_slowdown());
    ck_assert_msg(n >= 0, "no reply to '%.60s' (%d)", line, n);
}

/* Parse "OK <id> <validity> ..." into id. */
static void parse_ok_lock(const char *reply, char *id)
{
    char idbuf[64];
    unsigned long long v;
    ck_assert_msg(sscanf(reply, "OK %63s %llu", idbuf, &v) == 2 && h_is_lock_id(idbuf),
                  "want OK <id> <validity>, got '%s'", reply);
    strcpy(id, idbuf);
}

/* Raw ACQUIRE that must succeed; the lock id goes to id. */
static void acquire_raw(int fd, const char *args, char *id)
{
    char line[256], reply[256];
    snprintf(line, sizeof line, "ACQUIRE %s", args);
    raw_req(fd, line, reply, sizeof reply);
    parse_ok_lock(reply, id);
}

static size_t holding(const char *key, const char *id)
{
    return h_count_key(M, NM, key, id);
}

static bool absent_everywhere(void *ud)
{
    return holding(ud, NULL) == 0;
}

static bool wait_absent(const char *key, uint32_t ms)
{
    return h_wait_until(absent_everywhere, (void *)key, ms * h_slowdown());
}

/* One INFO reply, kept as lines "key value". */
struct info {
    int n;
    char line[INFO_MAX_LINES][256];
};

/* Send INFO on fd and read the whole block: the DATA header's count must
 * match the lines that follow. */
static void info_fd(int fd, struct info *in)
{
    char hdr[64];
    raw_req(fd, "INFO", hdr, sizeof hdr);
    int n = -1;
    ck_assert_msg(sscanf(hdr, "DATA %d", &n) == 1 && n > 0 && n <= INFO_MAX_LINES,
                  "INFO header '%s'", hdr);
    in->n = n;
    for (int i = 0; i < n; i++)
        ck_assert_msg(h_read_line(fd, in->line[i], sizeof in->line[i], 5000) >= 0,
                      "INFO: line %d of %d missing", i + 1, n);
}

static void info_of(const struct h_daemon *d, struct info *in)
{
    int fd = raw_to(d);
    info_fd(fd, in);
    close(fd);
}

/* The value of key in an INFO block, or NULL. */
static const char *info_val(const struct info *in, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < in->n; i++)
        if (strncmp(in->line[i], key, kl) == 0 && in->line[i][kl] == ' ')
            return in->line[i] + kl + 1;
    return NULL;
}

static long long info_num(const struct info *in, const char *key)
{
    const char *v = info_val(in, key);
    ck_assert_msg(v != NULL, "INFO has no %s", key);
    return atoll(v);
}

/* INFO of daemon d, one numeric key. */
static long long info_get(const struct h_daemon *d, const char *key)
{
    struct info in;
    info_of(d, &in);
    return info_num(&in, key);
}

struct info_eq_arg {
    const struct h_daemon *d;
    const char *key;
    const char *want; /* the value as a string */
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

/* Read lines from fd until EOF (or ms passed); true if one equals want. */
static bool lines_until_eof_contain(int fd, const char *want, uint32_t ms, bool *eof)
{
    uint64_t deadline = h_now_ms() + ms;
    bool found = false;
    *eof = false;
    for (;;) {
        char line[512];
        uint64_t now = h_now_ms();
        int n =
            h_read_line(fd, line, sizeof line, now >= deadline ? 0 : (uint32_t)(deadline - now));
        if (n == H_LINE_EOF) {
            *eof = true;
            return found;
        }
        if (n < 0)
            return found;
        if (strcmp(line, want) == 0)
            found = true;
    }
}

static void set_send_timeout(int fd, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* How many times needle occurs in the file at path. */
static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        for (const char *p = line; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            n++;
    fclose(f);
    return n;
}

static bool log_has(void *ud)
{
    return h_file_contains(D.log, ud);
}

/* ---- limits ------------------------------------------------------------------- */

/* A connection that answers PING with PONG right now. */
static bool pong_on_new_conn(void *ud)
{
    (void)ud;
    int fd = h_connect_unix(D.sock);
    if (fd < 0)
        return false;
    char line[128];
    bool ok = h_send_str(fd, "PING\r\n") == 0 && h_read_line(fd, line, sizeof line, 2000) >= 0 &&
              strcmp(line, "PONG") == 0;
    close(fd);
    return ok;
}

struct clients_arg {
    int fd;
    long long want;
};

static bool clients_is(void *ud)
{
    struct clients_arg *a = ud;
    struct info in;
    info_fd(a->fd, &in);
    return info_num(&in, "clients") == a->want;
}

START_TEST(test_max_clients)
{
    static const struct h_daemon_opts o = {
        .server = "max_clients = 3\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    char line[256];
    int fds[3];
    fds[0] = raw();
    raw_req(fds[0], "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    /* The harness's start-up PING connection is gone once clients is 1. */
    struct clients_arg ca = {fds[0], 1};
    ck_assert_msg(h_wait_until(clients_is, &ca, 5000), "INFO clients never 1");
    for (int i = 1; i < 3; i++) {
        fds[i] = raw();
        raw_req(fds[i], "PING", line, sizeof line);
        ck_assert_str_eq(line, "PONG");
    }

    /* A 4th, on the Unix socket and on TCP: the LIMIT line, then closed. */
    int extra = raw();
    ck_assert_msg(h_read_line(extra, line, sizeof line, 5000) >= 0, "no reply to a 4th client");
    ck_assert_str_eq(line, "ERR LIMIT max_clients reached");
    ck_assert_msg(h_wait_eof(extra, 5000), "4th client not closed");
    close(extra);
    extra = h_connect_tcp(D.port);
    ck_assert_int_ge(extra, 0);
    ck_assert_msg(h_read_line(extra, line, sizeof line, 5000) >= 0, "no reply on TCP");
    ck_assert_str_eq(line, "ERR LIMIT max_clients reached");
    ck_assert_msg(h_wait_eof(extra, 5000), "4th TCP client not closed");
    close(extra);

    /* The three keep working, locks included. */
    char id[64];
    for (int i = 0; i < 3; i++) {
        raw_req(fds[i], "PING", line, sizeof line);
        ck_assert_str_eq(line, "PONG");
    }
    acquire_raw(fds[1], "mc 5000", id);
    ck_assert_uint_eq(holding("mc", id), 3);
    struct info in;
    info_fd(fds[0], &in);
    ck_assert_int_eq(info_num(&in, "clients"), 3);
    ck_assert_int_ge(info_num(&in, "connections_rejected"), 2);

    /* One leaves: a newcomer gets in. */
    close(fds[2]);
    ck_assert_msg(h_wait_until(pong_on_new_conn, NULL, 5000), "no room after a client left");
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_max_resources_per_lock)
{
    static const struct h_daemon_opts o = {
        .server = "max_resources_per_lock = 4\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int fd = raw();
    char line[256], id[64];
    acquire_raw(fd, "r1,r2,r3,r4 5000", id);
    ck_assert_uint_eq(holding("r4", id), 3);
    raw_req(fd, "ACQUIRE s1,s2,s3,s4,s5 5000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "5 resources with a limit of 4: '%s'", line);
    const char *s[] = {"s1", "s2", "s3", "s4", "s5"};
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(holding(s[i], NULL), 0);
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    struct info in;
    info_fd(fd, &in);
    ck_assert_int_ge(info_num(&in, "errors_limit"), 1);
    close(fd);
}
END_TEST

START_TEST(test_max_locks_per_client)
{
    static const struct h_daemon_opts o = {
        .server = "max_locks_per_client = 3\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int fd = raw();
    char line[256], id[3][64], did[64];
    acquire_raw(fd, "a0 10000", id[0]);
    acquire_raw(fd, "a1 10000", id[1]);
    acquire_raw(fd, "a2 10000 AUTOEXTEND", id[2]);
    raw_req(fd, "ACQUIRE a3 10000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "4th connection-bound lock: '%s'", line);
    ck_assert_uint_eq(holding("a3", NULL), 0);
    /* DETACHed locks count too, against the connection that takes them. */
    raw_req(fd, "ACQUIRE d0 10000 DETACH", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "a DETACHed lock over max_locks_per_client: '%s'", line);
    ck_assert_uint_eq(holding("d0", NULL), 0);
    /* The limit is per connection. */
    int fd2 = raw();
    acquire_raw(fd2, "b0 10000", did);
    /* Releasing one makes room for exactly one. */
    snprintf(line, sizeof line, "RELEASE %s", id[0]);
    char reply[256];
    raw_req(fd, line, reply, sizeof reply);
    ck_assert_str_eq(reply, "OK");
    acquire_raw(fd, "a3 10000", did);
    raw_req(fd, "ACQUIRE a4 10000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "limit not enforced after a release: '%s'", line);
    close(fd);
    close(fd2);
}
END_TEST

START_TEST(test_max_waiters)
{
    static const struct h_daemon_opts o = {
        .server = "max_waiters = 2\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int h = raw(), w1 = raw(), w2 = raw(), w3 = raw();
    char line[256], id[64], id1[64], id2[64];
    acquire_raw(h, "w 20000", id);
    raw_send(w1, "ACQUIRE w 15000 WAIT 15000");
    ck_assert_msg(wait_info(&D, "waiters", "1", 5000), "first waiter not queued");
    raw_send(w2, "ACQUIRE w 15000 WAIT 15000");
    ck_assert_msg(wait_info(&D, "waiters", "2", 5000), "second waiter not queued");
    uint64_t t0 = h_now_ms();
    raw_req(w3, "ACQUIRE w 15000 WAIT 15000", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT"), "third waiter: '%s'", line);
    ck_assert_msg(h_now_ms() - t0 < 3000 * h_slowdown(), "LIMIT took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    /* Acquires that need not wait are not limited. */
    acquire_raw(w3, "free 5000", id1);
    ck_assert_int_eq(info_get(&D, "waiters"), 2);

    /* The queued ones are served in order. */
    snprintf(line, sizeof line, "RELEASE %s", id);
    raw_req(h, line, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_int_ge(h_read_reply(w1, line, sizeof line, 5000), 0);
    parse_ok_lock(line, id1);
    ck_assert_msg(!h_readable(w2, 100), "second waiter answered while the first holds");
    close(w1);
    ck_assert_int_ge(h_read_reply(w2, line, sizeof line, 5000), 0);
    parse_ok_lock(line, id2);
    ck_assert_uint_eq(holding("w", id2), 3);
    close(h);
    close(w2);
    close(w3);
}
END_TEST

START_TEST(test_max_line_bytes)
{
    static const struct h_daemon_opts o = {
        .server = "max_line_bytes = 256\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int fd = raw();
    char buf[1024], line[256];
    /* 256 bytes is allowed (trailing blanks are separators). */
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "PING", 4);
    memcpy(buf + 256, "\r\n", 2);
    ck_assert_int_eq(h_send_all(fd, buf, 258), 0);
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "PONG");
    /* 257: TOOLONG after the earlier replies, then closed; nothing after it is read. */
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "PING\r\nPING", 10);
    memcpy(buf + 6 + 257, "\r\nPING\r\n", 8);
    ck_assert_int_eq(h_send_all(fd, buf, 6 + 257 + 8), 0);
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "PONG");
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(is_err(line, "TOOLONG"), "257-byte line: '%s'", line);
    ck_assert_msg(h_wait_eof(fd, 5000), "not closed after TOOLONG");
    close(fd);
    ck_assert_int_ge(info_get(&D, "errors_toolong"), 1);
    ck_assert(h_daemon_ping_raw(D.sock, 5000));
}
END_TEST

START_TEST(test_max_output_bytes)
{
    static const struct h_daemon_opts o = {
        .server = "max_output_bytes = 4096\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int flood = raw();
    char id[64], id2[64];
    acquire_raw(flood, "ob 30000", id);
    ck_assert_uint_eq(holding("ob", id), 3);

    /* Thousands of INFOs (over a kB of reply each), never read. */
    enum { N = 4000 };
    static char reqs[N * 6];
    for (int i = 0; i < N; i++)
        memcpy(reqs + i * 6, "INFO\r\n", 6);
    set_send_timeout(flood, 5000);
    h_send_all(flood, reqs, sizeof reqs); /* fails once the daemon closes: fine */

    /* Its lock is released as on any close... */
    ck_assert_msg(wait_absent("ob", 10000),
                  "a client that never reads was not disconnected (its lock stays)");
    /* ...while another client is served as usual. */
    struct redlock_client *c = h_client(D.sock);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(redlock_ping(c), REDLOCK_OK);
    int fd = raw();
    acquire_raw(fd, "other 5000", id2);
    ck_assert_uint_eq(holding("other", id2), 3);
    struct info in;
    info_fd(fd, &in);
    ck_assert_int_ge(info_num(&in, "auto_released"), 1);
    ck_assert_int_eq(info_num(&in, "clients"), 2);
    /* And the flooder's connection is closed. */
    ck_assert_msg(h_wait_eof(flood, 10000), "flooder's connection still open");
    close(flood);
    close(fd);
    redlock_close(c);
}
END_TEST

/* Out of file descriptors: accept() fails with EMFILE while connections
 * wait in the backlog. The daemon must not spin on the listening socket,
 * must keep serving the clients it has, and must take the waiting ones
 * once descriptors are free again. */
START_TEST(test_accept_emfile)
{
    /* The wrapper lowers the daemon's descriptor limit (it also stretches
     * the harness's start/stop deadlines, which is harmless). */
    const char *w = getenv("REDLOCKD_WRAPPER");
    if (w && *w) { /* valgrind & co. need descriptors of their own */
        fprintf(stderr, "test_accept_emfile: skipped under REDLOCKD_WRAPPER\n");
        return;
    }
    setenv("REDLOCKD_WRAPPER", "prlimit --nofile=48:48", 1);
    static const struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up");
    enum { NC = 80 };
    int fds[NC];
    for (int i = 0; i < NC; i++) {
        fds[i] = raw();
        ck_assert_int_eq(h_send_str(fds[i], "PING\r\n"), 0);
    }
    /* Some are served, the rest wait in the backlog. */
    int served = 0;
    bool answered[NC] = {false};
    uint64_t deadline = h_now_ms() + 5000 * h_slowdown();
    uint64_t quiet_since = h_now_ms();
    /* Collect PONGs until none came for 500 ms (or the deadline). */
    while (h_now_ms() < deadline && (served == 0 || h_now_ms() - quiet_since < 500)) {
        struct pollfd p[NC];
        for (int i = 0; i < NC; i++)
            p[i] = (struct pollfd){.fd = answered[i] ? -1 : fds[i], .events = POLLIN};
        if (poll(p, NC, 50) <= 0)
            continue;
        for (int i = 0; i < NC; i++) {
            char line[64];
            if (!(p[i].revents & POLLIN))
                continue;
            ck_assert_int_ge(h_read_line(fds[i], line, sizeof line, 2000), 0);
            ck_assert_str_eq(line, "PONG");
            answered[i] = true;
            served++;
            quiet_since = h_now_ms();
        }
    }
    ck_assert_msg(served >= 10 && served < NC, "%d of %d connections served with 48 fds", served,
                  NC);
    ck_assert_msg(h_file_contains(D.log, "out of file descriptors"), "EMFILE not logged");

    /* For a second: the daemon keeps serving and does not burn the CPU. */
    long long c0 = h_cpu_ticks(D.pid);
    uint64_t t0 = h_now_ms();
    int first = -1;
    for (int i = 0; i < NC && first < 0; i++)
        if (answered[i])
            first = i;
    while (h_now_ms() - t0 < 1000) {
        char line[64];
        ck_assert_int_eq(h_send_str(fds[first], "PING\r\n"), 0);
        ck_assert_int_ge(h_read_line(fds[first], line, sizeof line, 2000), 0);
        ck_assert_str_eq(line, "PONG");
        h_sleep_ms(20);
    }
    long long used = h_cpu_ticks(D.pid) - c0;
    long hz = sysconf(_SC_CLK_TCK);
    ck_assert_msg(c0 >= 0 && used * 1000 / hz < 400,
                  "daemon used %lld ms of CPU in 1 s while out of descriptors", used * 1000 / hz);

    /* Free descriptors: the waiting connections get in. */
    for (int i = 0; i < NC; i++)
        if (answered[i]) {
            close(fds[i]);
            fds[i] = -1;
        }
    for (int i = 0; i < NC; i++) {
        if (fds[i] < 0)
            continue;
        char line[64];
        ck_assert_msg(h_read_line(fds[i], line, sizeof line, 5000) >= 0,
                      "connection %d never served after descriptors were freed", i);
        ck_assert_str_eq(line, "PONG");
        close(fds[i]);
    }
}
END_TEST

/* ---- garbage ------------------------------------------------------------------ */

START_TEST(test_garbage)
{
    static const struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int keep = raw();
    char held[64], line[512];
    acquire_raw(keep, "g-held 30000", held);

    /* NUL bytes: each such line is BADREQ, the connection stays. */
    int fd = raw();
    static const char nul[] = "PING\0\r\n"
                              "\0\0\0\r\n"
                              "ACQ\0UIRE x 1000\n"
                              "ACQUIRE x\0 1000\n"
                              "PING\r\n";
    ck_assert_int_eq(h_send_all(fd, nul, sizeof nul - 1), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
        ck_assert_msg(is_err(line, "BADREQ"), "NUL line %d: '%s'", i, line);
    }
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "PONG");
    close(fd);
    ck_assert_uint_eq(holding("x", NULL), 0);

    /* Binary junk with and without line ends, then abrupt closes. */
    unsigned rnd = 4242;
    for (int round = 0; round < 4; round++) {
        static char blob[65536];
        for (size_t i = 0; i < sizeof blob; i++) {
            rnd = rnd * 1103515245u + 12345u;
            blob[i] = (char)(rnd >> 16);
            if (round == 1 && blob[i] == '\n')
                blob[i] = 'x'; /* one round without any line end */
        }
        fd = raw();
        set_send_timeout(fd, 3000);
        h_send_all(fd, blob, sizeof blob);
        close(fd);
    }

    /* A 10 MB line: TOOLONG (or a reset) and closed, not buffered. */
    fd = raw();
    set_send_timeout(fd, 5000);
    static char chunk[65536];
    memset(chunk, 'A', sizeof chunk);
    size_t sent = 0;
    while (sent < 10u * 1024 * 1024 && h_send_all(fd, chunk, sizeof chunk) == 0)
        sent += sizeof chunk;
    int n = h_read_line(fd, line, sizeof line, 5000);
    ck_assert_msg(n == H_LINE_EOF || (n >= 0 && is_err(line, "TOOLONG")), "10 MB line: got %d '%s'",
                  n, n >= 0 ? line : "");
    ck_assert_msg(n == H_LINE_EOF || h_wait_eof(fd, 5000), "10 MB line: connection not closed");
    close(fd);
    ck_assert_int_ge(info_get(&D, "errors_toolong"), 1);

    /* 10k tiny pipelined requests, answered one for one and in order. */
    enum { NREQ = 10000 };
    static char reqs[NREQ * 48];
    size_t len = 0;
    for (int i = 0; i < NREQ; i++) {
        const char *r = i % 3 == 0   ? "PING\n"
                        : i % 3 == 1 ? "ping\r\n"
                                     : "EXTEND " UNKNOWN_ID "\r\n";
        memcpy(reqs + len, r, strlen(r));
        len += strlen(r);
    }
    fd = raw();
    size_t off = 0;
    int got = 0;
    char acc[256];
    size_t acclen = 0;
    uint64_t deadline = h_now_ms() + 30000 * h_slowdown();
    while (got < NREQ && h_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (off < len ? POLLOUT : 0)};
        ck_assert_int_ge(poll(&p, 1, 1000), 0);
        if ((p.revents & POLLOUT) && off < len) {
            ssize_t w = send(fd, reqs + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                off += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            char rb[8192];
            ssize_t r = recv(fd, rb, sizeof rb, MSG_DONTWAIT);
            ck_assert_msg(r != 0, "daemon closed the pipelining client after %d replies", got);
            for (ssize_t i = 0; i < r; i++) {
                if (rb[i] != '\n') {
                    if (acclen + 1 < sizeof acc)
                        acc[acclen++] = rb[i];
                    continue;
                }
                if (acclen && acc[acclen - 1] == '\r')
                    acclen--;
                acc[acclen] = '\0';
                acclen = 0;
                bool ok = got % 3 == 2 ? is_err(acc, "NOTHELD") : strcmp(acc, "PONG") == 0;
                ck_assert_msg(ok, "reply %d out of order or wrong: '%s'", got, acc);
                got++;
            }
        }
    }
    ck_assert_msg(got == NREQ, "only %d of %d pipelined replies", got, NREQ);
    close(fd);

    /* Still up, still serving, the held lock intact. */
    ck_assert(h_daemon_alive(&D));
    raw_req(keep, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    ck_assert_uint_eq(holding("g-held", held), 3);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "EXTEND %s 30000", held);
    raw_req(keep, cmd, line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "EXTEND after the garbage: '%s'", line);
    struct redlock_client *c = h_client(D.tcp_addr);
    ck_assert_ptr_nonnull(c);
    struct redlock_lock lk;
    ck_assert_int_eq(redlock_acquire(c, "g-after", NULL, &lk), REDLOCK_OK);
    redlock_close(c);
    close(keep);
}
END_TEST

/* ---- masters that restart empty ------------------------------------------------- */

struct quarantined_arg {
    const struct h_daemon *d;
};

static bool master0_up_quarantined(void *ud)
{
    struct quarantined_arg *a = ud;
    struct info in;
    info_of(a->d, &in);
    const char *st = info_val(&in, "master.0.state");
    return st && strcmp(st, "up") == 0 && info_num(&in, "master.0.quarantine_ms") > 0;
}

struct key_on_arg {
    const struct h_redis *m;
    const char *key;
};

static bool key_on(void *ud)
{
    struct key_on_arg *a = ud;
    return h_redis_get(a->m, a->key, NULL, 0);
}

START_TEST(test_restart_amnesia)
{
    /* Two daemons on the same masters; a restarted master sits out 3 s. */
    static const struct h_daemon_opts o = {
        .redis = BASE_REDIS,
        .lock = "default_ttl_ms = 2000\nmax_ttl_ms = 3000\nretry_count = 0\n"
                "retry_delay_ms = 50\nretry_jitter_ms = 10\n"};
    start(&D, &o);  /* A */
    start(&D2, &o); /* B */
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "A: masters not up");
    ck_assert_msg(wait_info(&D2, "masters_up", "3", 5000), "B: masters not up");

    /* A takes the lock while master 2 is stalled: it is held on masters 0, 1. */
    int a = raw_to(&D), b = raw_to(&D2);
    char id[64], line[256], val[128];
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    uint64_t t0 = h_now_ms();
    acquire_raw(a, "amn 2500", id);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    /* A's queued SET may land on master 2 once it runs again: undo it. */
    struct key_on_arg ko = {&M[2], "amn"};
    h_wait_until(key_on, &ko, 300);
    h_redis_cmd(&M[2], val, sizeof val, "DEL", "amn", (char *)NULL);
    ck_assert(!h_redis_get(&M[2], "amn", val, sizeof val));
    ck_assert(h_redis_get(&M[0], "amn", val, sizeof val) && strcmp(val, id) == 0);
    ck_assert(h_redis_get(&M[1], "amn", val, sizeof val) && strcmp(val, id) == 0);

    /* Master 0 restarts without its data. */
    h_redis_kill(&M[0]);
    ck_assert_int_eq(h_redis_restart(&M[0]), 0);
    ck_assert(!h_redis_get(&M[0], "amn", val, sizeof val));
    struct quarantined_arg qa = {&D2};
    ck_assert_msg(h_wait_until(master0_up_quarantined, &qa, 5000 * h_slowdown()),
                  "B never saw master 0 up again in quarantine");

    /* Masters 0 (empty) and 2 would grant B the lock A still holds: the
     * restarted master must not vote. */
    raw_req(b, "ACQUIRE amn 2000 WAIT 0", line, sizeof line);
    uint64_t elapsed = h_now_ms() - t0;
    bool a_still_holds = h_redis_get(&M[1], "amn", val, sizeof val) && strcmp(val, id) == 0;
    ck_assert_msg(!starts(line, "OK"),
                  "SAFETY: B got a lock A holds, through a master that restarted empty: '%s'",
                  line);
    ck_assert_msg(is_err(line, "BUSY") || is_err(line, "NOQUORUM"), "B's ACQUIRE: '%s'", line);
    ck_assert_msg(a_still_holds,
                  "precondition: A's key on master 1 expired (%llu ms) before B's attempt",
                  (unsigned long long)elapsed);
    struct info in;
    info_of(&D2, &in);
    ck_assert_int_eq(info_num(&in, "master.0.restarts"), 1);
    ck_assert_int_gt(info_num(&in, "master.0.quarantine_ms"), 0);
    ck_assert_int_le(info_num(&in, "master.0.quarantine_ms"), 3000);
    ck_assert_int_eq(info_num(&in, "master.1.restarts"), 0);

    /* While quarantined, masters 0 and 1 are not a majority. */
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    raw_req(b, "ACQUIRE amn-q 2000 WAIT 0", line, sizeof line);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    ck_assert_msg(is_err(line, "NOQUORUM"), "quarantined master voted: '%s'", line);
    ck_assert_int_gt(info_get(&D2, "master.0.quarantine_ms"), 0);

    /* After max_ttl_ms it votes again: masters 0 and 1 make a majority. */
    ck_assert_msg(wait_info(&D2, "master.0.quarantine_ms", "0", 6000), "quarantine did not end");
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    /* WAIT: retried if a slow (valgrind) daemon misses master_timeout_ms. */
    char req[64];
    snprintf(req, sizeof req, "ACQUIRE amn-after 2000 WAIT %u", 2000 * h_slowdown());
    raw_req(b, req, line, sizeof line);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    char id2[64];
    parse_ok_lock(line, id2);
    ck_assert(h_redis_get(&M[0], "amn-after", val, sizeof val) && strcmp(val, id2) == 0);
    close(a);
    close(b);
}
END_TEST

/* ---- masters answering errors --------------------------------------------------- */

struct err_arg {
    const struct h_redis *m;
    const char *prefix; /* e.g. "READONLY" */
};

/* A write on the master fails with the given error. */
static bool write_fails(void *ud)
{
    struct err_arg *a = ud;
    char out[256];
    return h_redis_cmd(a->m, out, sizeof out, "SET", "probe", "1", (char *)NULL) == H_REPLY_ERROR &&
           starts(out, a->prefix);
}

static bool write_works(void *ud)
{
    struct err_arg *a = ud;
    char out[256];
    return h_redis_cmd(a->m, out, sizeof out, "SET", "probe", "1", (char *)NULL) == H_REPLY_STATUS;
}

/* Run one scenario: break(i) makes master i answer errors starting with
 * word, fix(i) restores it. */
static void misbehaving_masters(void (*brk)(int), void (*fix)(int), const char *word)
{
    static const struct h_daemon_opts o = {.redis = BASE_REDIS,
                                           .lock = "default_ttl_ms = 10000\nretry_count = 0\n"};
    start(&D, &o);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up");
    int fd = raw();
    char line[256], id[64];

    brk(0);
    struct err_arg ea = {&M[0], word};
    ck_assert_msg(h_wait_until(write_fails, &ea, 5000), "master 0 does not answer %s", word);
    /* One of three: still a majority. */
    uint64_t t0 = h_now_ms();
    acquire_raw(fd, "mb1 10000", id);
    ck_assert_msg(h_now_ms() - t0 < 2000 * h_slowdown(), "ACQUIRE took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    ck_assert_uint_eq(holding("mb1", id), 2);
    struct info in;
    info_fd(fd, &in);
    const char *le = info_val(&in, "master.0.last_error");
    ck_assert_msg(le && strstr(le, word), "master.0.last_error '%s' (want %s)", le ? le : "(none)",
                  word);
    const char *st0 = info_val(&in, "master.0.state");
    ck_assert_msg(st0 && strcmp(st0, "up") == 0, "master.0.state %s", st0 ? st0 : "(none)");

    /* Two of three: NOQUORUM, promptly; EXTEND too. */
    brk(1);
    ea.m = &M[1];
    ck_assert_msg(h_wait_until(write_fails, &ea, 5000), "master 1 does not answer %s", word);
    t0 = h_now_ms();
    raw_req(fd, "ACQUIRE mb2 10000", line, sizeof line);
    ck_assert_msg(is_err(line, "NOQUORUM"), "two %s masters: '%s'", word, line);
    ck_assert_msg(h_now_ms() - t0 < 2000 * h_slowdown(), "NOQUORUM took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    ck_assert_uint_eq(holding("mb2", NULL), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "EXTEND %s 10000", id);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_msg(is_err(line, "NOQUORUM"), "EXTEND with two %s masters: '%s'", word, line);
    info_fd(fd, &in);
    le = info_val(&in, "master.1.last_error");
    ck_assert_msg(le && strstr(le, word), "master.1.last_error '%s'", le ? le : "(none)");
    ck_assert(h_daemon_alive(&D));

    /* Restored: every master votes again. */
    fix(0);
    fix(1);
    ea.m = &M[0];
    ck_assert(h_wait_until(write_works, &ea, 5000));
    ea.m = &M[1];
    ck_assert(h_wait_until(write_works, &ea, 5000));
    acquire_raw(fd, "mb3 10000", id);
    ck_assert_uint_eq(holding("mb3", id), 3);
    snprintf(cmd, sizeof cmd, "EXTEND %s 10000", id);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "EXTEND after the masters recovered: '%s'", line);
    close(fd);
}

static void make_replica(int i)
{
    char port[16], out[128];
    snprintf(port, sizeof port, "%d", X.port);
    ck_assert_int_eq(
        h_redis_cmd(&M[i], out, sizeof out, "REPLICAOF", "127.0.0.1", port, (char *)NULL),
        H_REPLY_STATUS);
}

static void make_primary(int i)
{
    char out[128];
    ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "REPLICAOF", "NO", "ONE", (char *)NULL),
                     H_REPLY_STATUS);
}

START_TEST(test_master_readonly)
{
    ck_assert_int_eq(h_redis_start(&X), 0);
    misbehaving_masters(make_replica, make_primary, "READONLY");
}
END_TEST

static void make_oom(int i)
{
    char out[128];
    ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "CONFIG", "SET", "maxmemory-policy",
                                 "noeviction", (char *)NULL),
                     H_REPLY_STATUS);
    ck_assert_int_eq(
        h_redis_cmd(&M[i], out, sizeof out, "CONFIG", "SET", "maxmemory", "1", (char *)NULL),
        H_REPLY_STATUS);
}

static void fix_oom(int i)
{
    char out[128];
    ck_assert_int_eq(
        h_redis_cmd(&M[i], out, sizeof out, "CONFIG", "SET", "maxmemory", "0", (char *)NULL),
        H_REPLY_STATUS);
}

START_TEST(test_master_oom)
{
    misbehaving_masters(make_oom, fix_oom, "OOM");
}
END_TEST

/* A master that keeps answering writes with errors is logged once, not at
 * every request: ACQUIRE/RELEASE cycles with one read-only master of three
 * (its deletes and reads still work) must not make the log flap. */
START_TEST(test_master_errors_logged_once)
{
    ck_assert_int_eq(h_redis_start(&X), 0);
    static const struct h_daemon_opts o = {.redis = BASE_REDIS,
                                           .lock = "default_ttl_ms = 10000\nretry_count = 0\n"};
    start(&D, &o);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up");
    make_replica(0);
    struct err_arg ea = {&M[0], "READONLY"};
    ck_assert_msg(h_wait_until(write_fails, &ea, 5000), "master 0 does not answer READONLY");
    int fd = raw();
    for (int i = 0; i < 10; i++) {
        char id[64], cmd[128], line[256];
        acquire_raw(fd, "lg 10000", id);
        snprintf(cmd, sizeof cmd, "RELEASE %s", id);
        raw_req(fd, cmd, line, sizeof line);
        ck_assert_str_eq(line, "OK");
    }
    close(fd);
    int errors = count_in_file(D.log, "master answers with errors");
    int normal = count_in_file(D.log, "master answers normally again");
    ck_assert_msg(errors == 1 && normal == 0,
                  "one read-only master, 10 ACQUIRE+RELEASE: logged 'answers with errors' %d "
                  "times and 'answers normally again' %d times (want 1 and 0)",
                  errors, normal);
}
END_TEST

/* ---- graceful shutdown ---------------------------------------------------------- */

START_TEST(test_graceful_shutdown)
{
    static const struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);
    int x1 = raw(), x2 = raw(), w = raw();
    char idc[64], idd[64], ida[64], line[256];
    acquire_raw(x1, "sd-conn 20000", idc);
    acquire_raw(x1, "sd-det 20000 DETACH", idd);
    acquire_raw(x2, "sd-auto 3000 AUTOEXTEND", ida);
    raw_send(w, "ACQUIRE sd-conn 10000 WAIT 20000");
    ck_assert_msg(wait_info(&D, "waiters", "1", 5000), "waiter not queued");
    ck_assert_uint_eq(holding("sd-conn", idc), 3);
    ck_assert_uint_eq(holding("sd-auto", ida), 3);
    ck_assert_uint_eq(holding("sd-det", idd), 3);

    pid_t pid = D.pid;
    uint64_t t0 = h_now_ms();
    ck_assert_int_eq(kill(pid, SIGTERM), 0);

    /* The waiter is told, not left hanging. */
    ck_assert_msg(h_read_reply(w, line, sizeof line, 5000) >= 0, "waiter got no reply");
    ck_assert_msg(is_err(line, "SHUTDOWN"), "waiter got '%s'", line);
    /* Owners hear why their locks go, then the connections close. */
    char want[128];
    bool eof;
    snprintf(want, sizeof want, "EVENT LOST %s SHUTDOWN", ida);
    ck_assert_msg(lines_until_eof_contain(x2, want, 5000, &eof), "AUTOEXTEND owner not told '%s'",
                  want);
    ck_assert_msg(eof, "AUTOEXTEND owner's connection not closed");
    snprintf(want, sizeof want, "EVENT LOST %s SHUTDOWN", idc);
    ck_assert_msg(lines_until_eof_contain(x1, want, 5000, &eof),
                  "connection-bound owner not told '%s'", want);
    ck_assert(eof);

    int code = h_wait_exit(pid, 5000 * h_slowdown());
    D.pid = 0;
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(code == 0, "exit code %d after SIGTERM", code);
    ck_assert_msg(took < 5000 * h_slowdown(), "shutdown took %llu ms", (unsigned long long)took);

    /* Connection-bound and AUTOEXTEND keys are gone; the DETACHed one stays. */
    ck_assert_msg(wait_absent("sd-conn", 2000), "connection-bound lock left on the masters");
    ck_assert_msg(wait_absent("sd-auto", 2000), "AUTOEXTEND lock left on the masters");
    ck_assert_uint_eq(holding("sd-det", idd), 3);
    for (int i = 0; i < NM; i++) {
        long long pttl = h_redis_pttl(&M[i], "sd-det");
        ck_assert_msg(pttl > 10000 && pttl <= 20000, "DETACH key PTTL %lld on master %d", pttl, i);
    }
    close(x1);
    close(x2);
    close(w);
}
END_TEST

START_TEST(test_second_signal_exits_at_once)
{
    /* Releases to stalled masters wait up to master_timeout_ms: a slow shutdown. */
    static const struct h_daemon_opts o = {.redis = "master_timeout_ms = 5000\n",
                                           .lock = "default_ttl_ms = 10000\nretry_count = 0\n"};
    start(&D, &o);
    int fd = raw();
    char id[64];
    acquire_raw(fd, "s2 10000", id);
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_pause(&M[i]), 0);
    pid_t pid = D.pid;
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_msg(h_wait_exit(pid, 500) == -1, "shutdown did not wait for the stalled masters");
    uint64_t t0 = h_now_ms();
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int code = h_wait_exit(pid, 3000 * h_slowdown());
    D.pid = 0;
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(code != -1, "second SIGTERM: still running after 3 s");
    ck_assert_msg(code != 0, "second SIGTERM: exit code 0 (want non-zero)");
    ck_assert_msg(took < 1500 * h_slowdown(), "second SIGTERM: exit took %llu ms",
                  (unsigned long long)took);
    close(fd);
}
END_TEST

/* An ACQUIRE whose attempt is in flight when SIGTERM arrives (the masters
 * stalled, then answering and granting it): the requester is answered, and
 * the keys the late grants wrote are released, not left to their TTL. */
START_TEST(test_shutdown_with_acquire_in_flight)
{
    static const struct h_daemon_opts o = {.redis = "master_timeout_ms = 1000\n",
                                           .lock = "default_ttl_ms = 30000\nretry_count = 0\n"};
    start(&D, &o);
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up");
    int w = raw(), q = raw();
    struct info in;
    info_fd(q, &in);
    long long base = info_num(&in, "requests");
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_pause(&M[i]), 0);
    raw_send(w, "ACQUIRE sdi 30000");
    /* Each INFO counts itself: the ACQUIRE was read once requests runs ahead. */
    bool seen = false;
    for (int polls = 1; polls <= 200 && !seen; polls++) {
        info_fd(q, &in);
        seen = info_num(&in, "requests") >= base + polls + 1;
    }
    ck_assert_msg(seen, "the ACQUIRE was never read");
    close(q);
    pid_t pid = D.pid;
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_resume(&M[i]), 0);

    char line[256];
    ck_assert_msg(h_read_line(w, line, sizeof line, 5000) >= 0, "in-flight ACQUIRE got no reply");
    char id[64] = "";
    if (starts(line, "OK ")) {
        /* Granted just in time: then it is lost at once. */
        parse_ok_lock(line, id);
        char want[128];
        bool eof;
        snprintf(want, sizeof want, "EVENT LOST %s SHUTDOWN", id);
        ck_assert_msg(lines_until_eof_contain(w, want, 5000, &eof), "granted, but no '%s'", want);
    } else {
        ck_assert_msg(is_err(line, "SHUTDOWN") || is_err(line, "NOQUORUM"),
                      "in-flight ACQUIRE at shutdown: '%s'", line);
    }
    int code = h_wait_exit(pid, 15000 * h_slowdown());
    D.pid = 0;
    ck_assert_msg(code == 0, "exit code %d", code);
    ck_assert_msg(wait_absent("sdi", 2000),
                  "keys of an ACQUIRE in flight at shutdown left on %zu masters (reply '%s')",
                  holding("sdi", NULL), line);
    close(w);
}
END_TEST

/* ---- client AUTH ---------------------------------------------------------------- */

#define TOKEN "t0k3n-Secret-42"

START_TEST(test_auth)
{
    char dir[H_PATH_MAX], path[H_PATH_MAX + 16], server[H_PATH_MAX + 64];
    ck_assert_int_eq(h_mkdtemp("auth", dir), 0);
    snprintf(path, sizeof path, "%s/token", dir);
    write_file(path, TOKEN "\n");
    snprintf(server, sizeof server, "auth_token_file = %s\n", path);
    struct h_daemon_opts o = {.server = server, .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o);

    int fd = raw();
    char line[256], id[64];
    static const char *const before[] = {"PING", "ACQUIRE au 5000", "INFO", "INSPECT au",
                                         "RELEASE " UNKNOWN_ID};
    for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
        raw_req(fd, before[i], line, sizeof line);
        ck_assert_msg(is_err(line, "AUTH"), "'%s' before AUTH: '%s'", before[i], line);
    }
    ck_assert_uint_eq(holding("au", NULL), 0);

    /* A wrong token, and the right one right behind it: the right one is
     * read only after the failure's pause. */
    uint64_t t0 = h_now_ms();
    ck_assert_int_eq(h_send_str(fd, "AUTH wrong-token\r\nAUTH " TOKEN "\r\n"), 0);
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    ck_assert_msg(is_err(line, "AUTH"), "wrong token: '%s'", line);
    ck_assert_int_ge(h_read_line(fd, line, sizeof line, 5000), 0);
    uint64_t took = h_now_ms() - t0;
    ck_assert_str_eq(line, "OK");
    ck_assert_msg(took >= 200, "AUTH after a failure answered in %llu ms (want >= 200)",
                  (unsigned long long)took);
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    acquire_raw(fd, "au 5000", id);
    ck_assert_uint_eq(holding("au", id), 3);
    struct info in;
    info_fd(fd, &in);
    ck_assert_int_eq(info_num(&in, "auth_failures"), 1);
    close(fd);

    /* A prefix of the token is no token. */
    fd = raw();
    raw_req(fd, "AUTH t0k3n", line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "token prefix: '%s'", line);
    raw_req(fd, "AUTH " TOKEN "x", line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "token + suffix: '%s'", line);
    /* QUIT works unauthenticated. */
    raw_req(fd, "QUIT", line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert(h_wait_eof(fd, 2000));
    close(fd);

    /* Ten failures and the connection is dropped. */
    fd = raw();
    for (int i = 0; i < 10; i++) {
        raw_req(fd, "AUTH nope", line, sizeof line);
        ck_assert_msg(is_err(line, "AUTH"), "failure %d: '%s'", i + 1, line);
    }
    ck_assert_msg(h_wait_eof(fd, 3000), "not closed after 10 AUTH failures");
    close(fd);

    /* Through the library. */
    struct redlock_client *c = h_client(D.sock);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(redlock_ping(c), REDLOCK_ERR_AUTH);
    ck_assert_int_eq(redlock_auth(c, "bad"), REDLOCK_ERR_AUTH);
    ck_assert_int_eq(redlock_auth(c, TOKEN), REDLOCK_OK);
    ck_assert_int_eq(redlock_ping(c), REDLOCK_OK);
    redlock_close(c);
    fd = raw();
    raw_req(fd, "AUTH " TOKEN, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    info_fd(fd, &in);
    ck_assert_int_ge(info_num(&in, "auth_failures"), 14);
    close(fd);
    ck_assert_msg(!h_file_contains(D.log, TOKEN), "the client token appears in the log");

    /* A new token on reload: new connections need it, the old one is refused,
     * and connections authenticated with the old one must AUTH again. */
    int old = raw();
    raw_req(old, "AUTH " TOKEN, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    write_file(path, "n3w-t0ken\n");
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(h_wait_until(log_has, "configuration reloaded", 5000), "reload not logged");
    fd = raw();
    raw_req(fd, "AUTH " TOKEN, line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "old token after reload: '%s'", line);
    close(fd);
    fd = raw();
    raw_req(fd, "AUTH n3w-t0ken", line, sizeof line);
    ck_assert_str_eq(line, "OK");
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    raw_req(old, "PING", line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "PING with the old token after the rotation: '%s'", line);
    raw_req(old, "AUTH n3w-t0ken", line, sizeof line);
    ck_assert_str_eq(line, "OK");
    raw_req(old, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(fd);
    close(old);
}
END_TEST

/* ---- masters with passwords ------------------------------------------------------ */

static void require_password(const char *pw)
{
    for (int i = 0; i < NM; i++) {
        char out[128];
        ck_assert_int_eq(
            h_redis_cmd(&M[i], out, sizeof out, "CONFIG", "SET", "requirepass", pw, (char *)NULL),
            H_REPLY_STATUS);
        snprintf(M[i].auth_pass, sizeof M[i].auth_pass, "%s", pw);
        /* Unauthenticated clients are now refused. */
        struct h_redis anon = M[i];
        anon.auth_pass[0] = '\0';
        ck_assert_int_eq(h_redis_cmd(&anon, out, sizeof out, "GET", "x", (char *)NULL),
                         H_REPLY_ERROR);
    }
}

/* The daemon works through masters that need credentials. */
static void works_with_credentials(const char *res)
{
    ck_assert_msg(wait_info(&D, "masters_up", "3", 5000), "masters not up with credentials");
    int fd = raw();
    char id[64], args[64];
    snprintf(args, sizeof args, "%s 5000", res);
    acquire_raw(fd, args, id);
    ck_assert_uint_eq(holding(res, id), 3);
    char cmd[128], line[128];
    snprintf(cmd, sizeof cmd, "RELEASE %s", id);
    raw_req(fd, cmd, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert(wait_absent(res, 2000));
    close(fd);
}

START_TEST(test_master_password_url)
{
    require_password("secret");
    char masters[512];
    h_masters_list(M, NM, ":secret", masters, sizeof masters);
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .masters = masters};
    start(&D, &o);
    works_with_credentials("pw-url");
    ck_assert_msg(!h_file_contains(D.log, "secret"), "a master password appears in the log");
}
END_TEST

START_TEST(test_master_password_file)
{
    require_password("secret");
    char dir[H_PATH_MAX], path[H_PATH_MAX + 16], redis[H_PATH_MAX + 64];
    ck_assert_int_eq(h_mkdtemp("pw", dir), 0);
    snprintf(path, sizeof path, "%s/redis.pw", dir);
    write_file(path, "secret\n");
    snprintf(redis, sizeof redis, BASE_REDIS "password_file = %s\n", path);
    struct h_daemon_opts o = {.redis = redis, .lock = BASE_LOCK};
    start(&D, &o);
    works_with_credentials("pw-file");
}
END_TEST

START_TEST(test_master_acl_user)
{
    require_password("other-default-pw");
    for (int i = 0; i < NM; i++) {
        char out[128];
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "ACL", "SETUSER", "alice", "on", ">pw",
                                     "~*", "+@all", (char *)NULL),
                         H_REPLY_STATUS);
    }
    char masters[512];
    h_masters_list(M, NM, "alice:pw", masters, sizeof masters);
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .masters = masters};
    start(&D, &o);
    works_with_credentials("pw-acl");
    /* It really is alice on each master. */
    for (int i = 0; i < NM; i++) {
        char out[8192];
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "CLIENT", "LIST", (char *)NULL),
                         H_REPLY_BULK);
        ck_assert_msg(strstr(out, "user=alice") != NULL,
                      "no client logged in as alice on master %d", i);
    }
}
END_TEST

START_TEST(test_master_wrong_password)
{
    require_password("secret");
    char masters[512];
    h_masters_list(M, NM, ":wrongpw", masters, sizeof masters);
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .masters = masters};
    start(&D, &o);
    int fd = raw();
    char line[256];
    uint64_t t0 = h_now_ms();
    raw_req(fd, "ACQUIRE wp 5000 WAIT 0", line, sizeof line);
    ck_assert_msg(is_err(line, "NOQUORUM"), "wrong master password: '%s'", line);
    ck_assert_msg(h_now_ms() - t0 < 3000 * h_slowdown(), "NOQUORUM took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    raw_req(fd, "ACQUIRE wp2 5000", line, sizeof line);
    ck_assert_msg(is_err(line, "NOQUORUM"), "wrong master password (retries): '%s'", line);
    ck_assert_uint_eq(holding("wp", NULL), 0);
    ck_assert_int_eq(info_get(&D, "masters_up"), 0);
    ck_assert(h_daemon_alive(&D));
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(fd);
    ck_assert_msg(h_file_contains(D.log, "AUTH"), "the refused AUTH is not logged");
    ck_assert_msg(!h_file_contains(D.log, "wrongpw"), "the master password appears in the log");
}
END_TEST

static bool auth_logged_often(void *ud)
{
    (void)ud;
    return count_in_file(D.log, "refused AUTH") > NM;
}

/* What an operator sees of a wrong master password: INFO says why the
 * masters are down, and the log says it once per master, not at every
 * reconnect attempt. */
START_TEST(test_master_wrong_password_reported)
{
    require_password("secret");
    char masters[512];
    h_masters_list(M, NM, ":wrongpw", masters, sizeof masters);
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .masters = masters};
    start(&D, &o);
    /* Reconnect attempts go on with backoff (100, 200, 400, 800 ms...):
     * give them 2 s, then the log must still name each master once. */
    bool often = h_wait_until(auth_logged_often, NULL, 2000);
    struct info in;
    info_of(&D, &in);
    const char *le = info_val(&in, "master.0.last_error");
    bool le_ok = le && (strstr(le, "AUTH") || strstr(le, "WRONGPASS"));
    for (int i = 1; i < NM; i++) {
        char k[64];
        snprintf(k, sizeof k, "master.%d.last_error", i);
        const char *v = info_val(&in, k);
        le_ok = le_ok && v && (strstr(v, "AUTH") || strstr(v, "WRONGPASS"));
    }
    ck_assert_msg(le_ok && !often,
                  "wrong master password: INFO master.0.last_error is '%s' (want the AUTH "
                  "failure); 'refused AUTH' logged %d times for %d masters within 2 s (want "
                  "once each)",
                  le ? le : "(none)", count_in_file(D.log, "refused AUTH"), NM);
}
END_TEST

/* ---- the Unix socket ------------------------------------------------------------ */

START_TEST(test_unix_socket_mode)
{
    static const struct h_daemon_opts o600 = {
        .server = "unix_socket_mode = 0600\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D, &o600);
    struct stat st;
    ck_assert_int_eq(stat(D.sock, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_msg((st.st_mode & 07777) == 0600, "mode %04o, want 0600",
                  (unsigned)(st.st_mode & 07777));
    /* The default is 0660. */
    static const struct h_daemon_opts dflt = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&D2, &dflt);
    ck_assert_int_eq(stat(D2.sock, &st), 0);
    ck_assert_msg((st.st_mode & 07777) == 0660, "default mode %04o, want 0660",
                  (unsigned)(st.st_mode & 07777));
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

/* A burst against masters that fell behind waits in the socket: the daemon
 * stops reading (overload_pauses) and still answers every request. */
START_TEST(test_overload_pauses_and_answers_all)
{
    static const struct h_daemon_opts o = {.redis = BASE_REDIS "max_backlog = 50\n",
                                           .lock = BASE_LOCK};
    start(&D, &o);
    int fd = raw();
    ck_assert_int_eq(h_redis_pause(&M[1]), 0);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    enum { BURST = 200 };
    static char burst[BURST * 48];
    size_t len = 0;
    for (int i = 0; i < BURST; i++)
        len +=
            (size_t)snprintf(burst + len, sizeof burst - len, "ACQUIRE ovl-%d 10000 WAIT 0\r\n", i);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, burst + off, len - off);
        ck_assert_msg(n > 0 || errno == EINTR, "write: %s", strerror(errno));
        if (n > 0)
            off += (size_t)n;
    }
    int answered = 0;
    char line[256];
    for (; answered < BURST; answered++) {
        if (h_read_reply(fd, line, sizeof line, 10000 * h_slowdown()) < 0)
            break;
        ck_assert_msg(is_err(line, "NOQUORUM"), "reply %d: '%s'", answered, line);
    }
    ck_assert_msg(answered == BURST, "%d of %d requests answered", answered, BURST);
    ck_assert_msg(info_get(&D, "overload_pauses") > 0, "the burst never paused reading");
    h_redis_resume(&M[1]);
    h_redis_resume(&M[2]);
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(fd);
}
END_TEST

int main(void)
{
    const struct test_group groups[] = {
        {"limits",
         {test_max_clients, test_max_resources_per_lock, test_max_locks_per_client,
          test_max_waiters, test_max_line_bytes, test_max_output_bytes, test_accept_emfile,
          test_garbage, NULL}},
        {"masters",
         {test_restart_amnesia, test_master_readonly, test_master_oom,
          test_master_errors_logged_once, test_overload_pauses_and_answers_all, NULL}},
        {"shutdown",
         {test_graceful_shutdown, test_second_signal_exits_at_once,
          test_shutdown_with_acquire_in_flight, NULL}},
        {"security",
         {test_auth, test_master_password_url, test_master_password_file, test_master_acl_user,
          test_master_wrong_password, test_master_wrong_password_reported, test_unix_socket_mode,
          NULL}},
    };
    h_init();
    return run_test_groups("reliability", groups, sizeof groups / sizeof groups[0], setup,
                           teardown);
}
