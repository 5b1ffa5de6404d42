/*
 * check_liveness.c - integration tests that no client can hang or spin the
 * daemon: a connection over its pending-request limit, connections that
 * QUIT or send a too-long line while a WAITing request is queued, and a
 * stress run that pipelines far more than every per-connection bound on
 * several connections at once while another client's PING is timed.
 *
 * Three real redis-server masters per test (a checked fixture); each test
 * starts its own redlockd. The teardown asserts that a daemon still running
 * exits 0 on SIGTERM within the harness' deadline.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

#define NM 3
#define MAX_PENDING 1024 /* conn.c's MAX_PENDING_REQUESTS, as PROTOCOL.md section 10 states it */

static struct h_redis M[NM];
static struct h_daemon D;

#define BASE_REDIS "master_timeout_ms = 100\n"
#define BASE_LOCK \
    "default_ttl_ms = 10000\nretry_count = 1\nretry_delay_ms = 50\nretry_jitter_ms = 20\n"

static void setup(void)
{
    memset(&D, 0, sizeof D);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0 within the deadline)",
                  code);
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

/* Send line + "\r\n" and read the reply (events skipped) into out. */
static void raw_req(int fd, const char *line, char *out, size_t outlen)
{
    raw_send(fd, line);
    int n = h_read_reply(fd, out, outlen, 10000 * h_slowdown());
    ck_assert_msg(n >= 0, "no reply to '%.60s' (%d)", line, n);
}

/* Raw ACQUIRE that must succeed; the lock id goes to id (64 bytes). */
static void acquire_raw(int fd, const char *args, char *id)
{
    char line[256], reply[256];
    unsigned long long v;
    snprintf(line, sizeof line, "ACQUIRE %s", args);
    raw_req(fd, line, reply, sizeof reply);
    ck_assert_msg(sscanf(reply, "OK %63s %llu", id, &v) == 2 && h_is_lock_id(id),
                  "ACQUIRE %s: want OK <id> <validity>, got '%s'", args, reply);
}

/* RELEASE id on fd, which must answer OK. */
static void release_raw(int fd, const char *id)
{
    char line[128], reply[256];
    snprintf(line, sizeof line, "RELEASE %s", id);
    raw_req(fd, line, reply, sizeof reply);
    ck_assert_msg(strcmp(reply, "OK") == 0, "RELEASE: '%s'", reply);
}

static void set_send_timeout(int fd, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* One numeric INFO value on a new connection, or -1 if the daemon did not
 * answer within timeout_ms (never asserts, so a hung daemon is reported by
 * the caller's own message). */
static long long info_value(const char *key, uint32_t timeout_ms)
{
    int fd = h_connect_unix(D.sock);
    if (fd < 0)
        return -1;
    long long val = -1;
    char line[256];
    int n = -1;
    if (h_send_str(fd, "INFO\r\n") != 0 || h_read_reply(fd, line, sizeof line, timeout_ms) < 0 ||
        sscanf(line, "DATA %d", &n) != 1) {
        close(fd);
        return -1;
    }
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++) {
        if (h_read_line(fd, line, sizeof line, timeout_ms) < 0)
            break;
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            val = atoll(line + kl + 1);
    }
    close(fd);
    return val;
}

struct info_arg {
    const char *key;
    long long want;
};

static bool info_is(void *ud)
{
    struct info_arg *a = ud;
    return info_value(a->key, 2000 * h_slowdown()) == a->want;
}

static bool wait_info(const char *key, long long want, uint32_t ms)
{
    struct info_arg a = {key, want};
    return h_wait_until(info_is, &a, ms * h_slowdown());
}

/* The daemon's CPU use over about a second, in percent of the wall time.
 * (A measurement, not a wait: the interval itself is what is measured.) */
static double daemon_cpu_percent(void)
{
    long long hz = sysconf(_SC_CLK_TCK);
    long long t0 = h_cpu_ticks(D.pid);
    uint64_t w0 = h_now_ms();
    h_sleep_ms(1000);
    long long t1 = h_cpu_ticks(D.pid);
    uint64_t w1 = h_now_ms();
    ck_assert_msg(t0 >= 0 && t1 >= 0 && hz > 0, "cannot read /proc/%d/stat", (int)D.pid);
    return 100.0 * (double)(t1 - t0) * 1000.0 / (double)hz / (double)(w1 - w0);
}

/* Write all of buf on a blocking socket (bounded by its send timeout). */
static void send_burst(int fd, const char *buf, size_t len)
{
    set_send_timeout(fd, 10000 * h_slowdown());
    ck_assert_msg(h_send_all(fd, buf, len) == 0, "burst of %zu bytes not sent: %s", len,
                  strerror(errno));
}

/* n copies of line (CRLF added) in one malloc'd buffer; *len set. */
static char *repeat_line(const char *line, int n, size_t *len)
{
    size_t ll = strlen(line);
    char *buf = malloc((ll + 2) * (size_t)n);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < n; i++) {
        memcpy(buf + i * (ll + 2), line, ll);
        memcpy(buf + i * (ll + 2) + ll, "\r\n", 2);
    }
    *len = (ll + 2) * (size_t)n;
    return buf;
}

/* While a connection fills its pending-request limit with WAITs: every PING
 * on a new connection answers within 2 s, until INFO shows the limit's worth
 * of waiters queued (so the limit has been reached while we watched). */
static void expect_served_while_limit_reached(void)
{
    uint64_t t0 = h_now_ms();
    for (;;) {
        ck_assert_msg(h_daemon_ping_raw(D.sock, 2000 * h_slowdown()),
                      "another client's PING got no answer within 2 s while one connection "
                      "pipelined WAITs past the pending limit: the daemon hangs");
        long long w = info_value("waiters", 2000 * h_slowdown());
        ck_assert_msg(w >= 0, "INFO got no answer within 2 s during the burst: the daemon hangs");
        ck_assert_msg(w <= MAX_PENDING, "%lld waiters queued from one connection (limit %d)", w,
                      MAX_PENDING);
        if (w == MAX_PENDING)
            break;
        ck_assert_msg(h_now_ms() - t0 < 10000 * h_slowdown(), "only %lld of %d waiters queued", w,
                      MAX_PENDING);
        h_sleep_ms(10); /* pacing the poll */
    }
    /* Once the limit is reached the daemon still serves others. */
    ck_assert_msg(h_daemon_ping_raw(D.sock, 2000 * h_slowdown()),
                  "PING got no answer within 2 s once a connection reached the pending limit");
}

/* ---- a pipelined burst past the pending-request limit --------------------------- */

enum { BURST = 1100 };

/* 1100 WAITs pipelined in one write on a held resource: the connection
 * reaches its 1024 pending requests with lines still buffered. The daemon
 * must stop reading it (not spin), keep serving others, and answer all
 * 1100 in order once the holder lets go and the waits end. */
START_TEST(test_wait_burst_past_pending_limit)
{
    /* Room for more waiters (and ACQUIREs in flight) than the pending limit on one connection. */
    static const struct h_daemon_opts o = {
        .server = "max_waiters_per_client = 2000\nmax_locks_per_client = 2000\n",
        .redis = BASE_REDIS,
        .lock = BASE_LOCK};
    start(&o);
    int a = raw(), b = raw();
    char ida[64], line[256];
    acquire_raw(a, "hot 60000", ida);

    uint32_t wait_ms = 3000 * h_slowdown();
    char req[64];
    snprintf(req, sizeof req, "ACQUIRE hot 300000 WAIT %u", wait_ms);
    size_t len;
    char *burst = repeat_line(req, BURST, &len);
    send_burst(b, burst, len);
    free(burst);
    expect_served_while_limit_reached();

    /* The holder lets go: the first waiter gets the lock, the others (waiting
     * behind their own connection's lock) time out, and then the 76 lines
     * left in the socket are read and answered too. */
    release_raw(a, ida);
    int answered = 0, ok = 0, busy = 0;
    for (; answered < BURST; answered++) {
        if (h_read_reply(b, line, sizeof line, 3 * wait_ms + 10000 * h_slowdown()) < 0)
            break;
        if (starts(line, "OK "))
            ok++;
        else if (is_err(line, "BUSY"))
            busy++;
        else
            ck_abort_msg("reply %d of the burst: '%s'", answered + 1, line);
    }
    ck_assert_msg(answered == BURST, "%d of %d pipelined requests answered", answered, BURST);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(busy, BURST - 1);
    raw_req(b, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(a);
    close(b);
}
END_TEST

/* The same burst, then SIGTERM: the daemon must still take signals and
 * exit 0 within the harness' deadline, answering the waiters ERR SHUTDOWN. */
START_TEST(test_wait_burst_then_sigterm)
{
    /* Room for more waiters (and ACQUIREs in flight) than the pending limit on one connection. */
    static const struct h_daemon_opts o = {
        .server = "max_waiters_per_client = 2000\nmax_locks_per_client = 2000\n",
        .redis = BASE_REDIS,
        .lock = BASE_LOCK};
    start(&o);
    int a = raw(), b = raw();
    char ida[64], line[256];
    acquire_raw(a, "hot 60000", ida);
    size_t len;
    char *burst = repeat_line("ACQUIRE hot WAIT 60000", BURST, &len);
    send_burst(b, burst, len);
    free(burst);
    expect_served_while_limit_reached();

    pid_t pid = D.pid;
    uint64_t t0 = h_now_ms();
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int code = h_wait_exit(pid, 5000 * h_slowdown());
    if (code >= 0)
        D.pid = 0;
    ck_assert_msg(code == 0, "redlockd did not exit 0 within 5 s of SIGTERM during a burst (%d)",
                  code);
    ck_assert_msg(h_now_ms() - t0 < 5000 * h_slowdown(), "shutdown took %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    /* The waiters read before the signal were told. */
    ck_assert_msg(h_read_reply(b, line, sizeof line, 2000) >= 0, "no reply to the burst");
    ck_assert_msg(is_err(line, "SHUTDOWN"), "waiter got '%s'", line);
    close(a);
    close(b);
}
END_TEST

/* ---- a DRAINING connection (QUIT, TOOLONG) with a WAIT queued -------------------- */

/* B sends ACQUIRE x WAIT + QUIT and closes its socket. The daemon must
 * notice the close (not spin on the unread EOF) and drop B's waiter, so
 * that when A releases, x goes to C (who queues next) and not to the dead B. */
START_TEST(test_quit_with_wait_then_close)
{
    static const struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&o);
    int a = raw(), b = raw();
    char ida[64], idc[64], line[256];
    acquire_raw(a, "x 30000", ida);
    ck_assert_int_eq(h_send_str(b, "ACQUIRE x WAIT 30000\r\nQUIT\r\n"), 0);
    ck_assert_msg(wait_info("waiters", 1, 5000), "B's ACQUIRE never queued");
    close(b);

    double cpu = daemon_cpu_percent();
    ck_assert_msg(cpu < 20.0, "daemon used %.0f%% CPU after a QUIT client closed: it spins", cpu);
    ck_assert_msg(wait_info("waiters", 0, 2000),
                  "the closed client's WAIT still queued: its EOF was never read");
    ck_assert_msg(wait_info("clients", 2, 2000), "the closed client's connection is still open");

    int c = raw();
    ck_assert_int_eq(h_send_str(c, "ACQUIRE x 30000 WAIT 30000\r\n"), 0);
    ck_assert_msg(wait_info("waiters", 1, 5000), "C's ACQUIRE never queued");
    release_raw(a, ida);
    uint64_t t0 = h_now_ms();
    ck_assert_msg(h_read_reply(c, line, sizeof line, 2000 * h_slowdown()) >= 0,
                  "C was not granted x within 2 s of A's release");
    unsigned long long v;
    ck_assert_msg(sscanf(line, "OK %63s %llu", idc, &v) == 2, "C got '%s'", line);
    ck_assert_msg(h_now_ms() - t0 < 2000 * h_slowdown(), "C waited %llu ms",
                  (unsigned long long)(h_now_ms() - t0));
    ck_assert_uint_eq(h_count_key(M, NM, "x", idc), NM);
    close(a);
    close(c);
}
END_TEST

/* After a too-long line the rest of the client's bytes are read and
 * dropped (not left to make the socket readable for ever), and its close is
 * noticed while its earlier WAIT is still queued. */
START_TEST(test_toolong_with_wait_then_close)
{
    static const struct h_daemon_opts o = {
        .server = "max_line_bytes = 256\n", .redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&o);
    int a = raw(), b = raw();
    char ida[64];
    acquire_raw(a, "y 30000", ida);
    ck_assert_int_eq(h_send_str(b, "ACQUIRE y WAIT 30000\r\n"), 0);
    ck_assert_msg(wait_info("waiters", 1, 5000), "B's ACQUIRE never queued");
    /* 64 KiB without a newline: TOOLONG after 256 bytes, more than one read's worth left. */
    static char junk[65536];
    memset(junk, 'j', sizeof junk);
    send_burst(b, junk, sizeof junk);
    ck_assert_msg(!h_readable(b, 200), "B got a reply before its WAIT ended");

    double cpu = daemon_cpu_percent();
    ck_assert_msg(cpu < 20.0, "daemon used %.0f%% CPU after a TOOLONG line: it spins", cpu);
    ck_assert_msg(info_value("waiters", 2000 * h_slowdown()) == 1, "B's waiter is gone too early");
    close(b);
    ck_assert_msg(wait_info("waiters", 0, 2000),
                  "the closed client's WAIT still queued: its EOF was never read");
    ck_assert_msg(wait_info("clients", 2, 2000), "the closed client's connection is still open");
    close(a);
}
END_TEST

static bool z_absent(void *ud)
{
    (void)ud;
    return h_count_key(M, NM, "z", NULL) == 0;
}

/* PROTOCOL.md, QUIT: requests before QUIT are answered as usual (a WAIT
 * included), then the connection closes; bytes after QUIT are not read. */
START_TEST(test_quit_answers_earlier_wait)
{
    static const struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    start(&o);
    int a = raw(), b = raw();
    char ida[64], idb[64], line[256];
    acquire_raw(a, "z 30000", ida);
    ck_assert_int_eq(h_send_str(b, "ACQUIRE z 30000 WAIT 30000\r\nQUIT\r\nPING\r\n"), 0);
    ck_assert_msg(wait_info("waiters", 1, 5000), "B's ACQUIRE never queued");
    release_raw(a, ida);
    ck_assert_msg(h_read_reply(b, line, sizeof line, 5000 * h_slowdown()) >= 0, "B: no reply");
    unsigned long long v;
    ck_assert_msg(sscanf(line, "OK %63s %llu", idb, &v) == 2, "B's ACQUIRE got '%s'", line);
    ck_assert_msg(h_read_reply(b, line, sizeof line, 5000) >= 0, "B: no reply to QUIT");
    ck_assert_str_eq(line, "OK");
    ck_assert_msg(h_wait_eof(b, 5000), "not closed after QUIT (or the PING after it was read)");
    /* Closing released B's connection-bound lock. */
    ck_assert_msg(h_wait_until(z_absent, NULL, 5000 * h_slowdown()),
                  "B's lock outlived its connection");
    close(a);
    close(b);
}
END_TEST

/* ---- stress: every per-connection bound at once ------------------------------------ */

/* One pipelining connection of the stress test, driven by a poll loop. */
struct flow {
    const char *name;
    int fd;
    char *out; /* everything it sends */
    size_t out_len, out_off;
    bool reads;     /* reads its replies (else only watches for the close) */
    int want_lines; /* lines it must get before EOF (reads), or -1: no EOF expected */
    bool want_eof;  /* the daemon must close it */
    int lines;      /* lines read so far */
    int ok;         /* lines starting "OK" or "PONG" */
    int noquorum;   /* ERR NOQUORUM (masters slower than master_timeout_ms under the load) */
    char other[64]; /* the first line that was none of those nor ERR BUSY/LIMIT/TOOLONG */
    bool eof;
    bool send_failed;
    char head[16]; /* the first bytes of the line being read */
    int headlen;
};

static void flow_init(struct flow *f, const char *name, char *out, size_t len, bool reads,
                      int want_lines, bool want_eof)
{
    memset(f, 0, sizeof *f);
    f->name = name;
    f->fd = raw();
    ck_assert_int_eq(fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK), 0);
    f->out = out;
    f->out_len = len;
    f->reads = reads;
    f->want_lines = want_lines;
    f->want_eof = want_eof;
}

static bool flow_done(const struct flow *f)
{
    bool sent = f->out_off == f->out_len || f->send_failed;
    if (f->want_eof)
        return f->eof && (!f->reads || f->lines == f->want_lines);
    return sent && f->lines == f->want_lines;
}

/* Read what is there: count lines (and OK/PONG starts), note EOF. A flow
 * that does not read its replies never reads (the caller sees its close as
 * POLLHUP). */
static void flow_read(struct flow *f)
{
    char buf[65536];
    if (!f->reads)
        return;
    for (;;) {
        ssize_t n = read(f->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            f->eof = true;
            return;
        }
        if (n < 0) {
            ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, "%s: read: %s",
                          f->name, strerror(errno));
            return;
        }
        /* Each line starts after the previous '\n'; a line split over reads
         * counts where it ends. Only the first 2 bytes of a line matter. */
        for (ssize_t i = 0; i < n; i++) {
            if (f->headlen < (int)sizeof f->head - 1)
                f->head[f->headlen++] = buf[i];
            if (buf[i] == '\n') {
                f->head[f->headlen] = '\0';
                f->lines++;
                if (starts(f->head, "OK") || starts(f->head, "PONG"))
                    f->ok++;
                else if (starts(f->head, "ERR NOQUORUM"))
                    f->noquorum++;
                else if (!starts(f->head, "ERR BUSY") && !starts(f->head, "ERR LIMIT") &&
                         !starts(f->head, "ERR TOOLONG") && f->other[0] == '\0')
                    snprintf(f->other, sizeof f->other, "%s", f->head);
                f->headlen = 0;
            }
        }
    }
}

static void flow_write(struct flow *f)
{
    while (f->out_off < f->out_len && !f->send_failed) {
        ssize_t n = send(f->fd, f->out + f->out_off, f->out_len - f->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            f->send_failed = true; /* the daemon closed it (TOOLONG, max_output_bytes) */
            return;
        }
        f->out_off += (size_t)n;
    }
}

/* "ACQUIRE <prefix><i> <rest>\r\n" for i in 0..n-1, in one malloc'd buffer. */
static char *numbered_lines(const char *prefix, const char *rest, int n, size_t *len)
{
    size_t cap = (strlen(prefix) + strlen(rest) + 24) * (size_t)n + 1, off = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "ACQUIRE %s%d %s\r\n", prefix, i, rest);
    *len = off;
    return buf;
}

/* Several connections pipeline far more than every per-connection bound at
 * once: pending requests (DETACH acquires of fresh resources, WAITs on a
 * held one), locks per connection, unread output (INFO never read), and the
 * line length (a too-long line after a WAIT and some PINGs, the client still
 * sending). Meanwhile another client's PINGs must each answer within
 * 500 ms; every connection gets exactly its replies (or is closed, for the
 * two that break a hard limit); the daemon stays responsive and exits 0. */
START_TEST(test_stress_every_bound_at_once)
{
    static const struct h_daemon_opts o = {
        .server = "max_line_bytes = 1024\nmax_output_bytes = 65536\nmax_locks_per_client = 1000\n",
        .redis = BASE_REDIS,
        .lock = BASE_LOCK};
    start(&o);
    int holder = raw();
    char idh[64];
    acquire_raw(holder, "shot 300000", idh);

    enum { NBOUND = 5000, NWAIT = 1500, NPING = 300, NFLOW = 6 };
    uint32_t slow = h_slowdown();
    /* Under valgrind fewer, still several times every bound. */
    const int NDET = slow > 1 ? 4000 : 20000, NINFO = slow > 1 ? 4000 : 20000;
    struct flow fl[NFLOW];
    size_t len;
    char *buf;

    buf = numbered_lines("sd0-", "60000 DETACH", NDET, &len);
    flow_init(&fl[0], "detach-0", buf, len, true, NDET, false);
    buf = numbered_lines("sd1-", "60000 DETACH", NDET, &len);
    flow_init(&fl[1], "detach-1", buf, len, true, NDET, false);
    /* Connection-bound: 1000 granted, then ERR LIMIT max_locks_per_client. */
    buf = numbered_lines("sb-", "10000", NBOUND, &len);
    flow_init(&fl[2], "bound", buf, len, true, NBOUND, false);
    char req[64];
    snprintf(req, sizeof req, "ACQUIRE shot WAIT %u", 1500 * slow);
    buf = repeat_line(req, NWAIT, &len);
    flow_init(&fl[3], "waits", buf, len, true, NWAIT, false);
    buf = repeat_line("INFO", NINFO, &len);
    flow_init(&fl[4], "never-reads", buf, len, false, -1, true);
    /* A WAIT, PINGs, then 256 KiB of one line: answered up to TOOLONG, then closed. */
    size_t plen;
    char *pings = repeat_line("PING", NPING, &plen);
    size_t junk = 262144, off = 0;
    buf = malloc(64 + plen + junk);
    ck_assert_ptr_nonnull(buf);
    off += (size_t)sprintf(buf, "ACQUIRE shot WAIT %u\r\n", 1500 * slow);
    memcpy(buf + off, pings, plen);
    off += plen;
    free(pings);
    memset(buf + off, 'j', junk);
    off += junk;
    flow_init(&fl[5], "too-long", buf, off, true, 1 + NPING + 1, true);

    int pinger = raw();
    ck_assert_int_eq(fcntl(pinger, F_SETFL, fcntl(pinger, F_GETFL) | O_NONBLOCK), 0);
    uint64_t ping_sent = 0, ping_max = 0, t0 = h_now_ms();
    int pings_done = 0;
    char pbuf[64];
    size_t pbuf_len = 0;
    uint64_t deadline = t0 + 30000 * (uint64_t)slow;

    for (;;) {
        bool all = true;
        for (int i = 0; i < NFLOW; i++)
            all = all && flow_done(&fl[i]);
        if (all && ping_sent == 0)
            break;
        uint64_t now = h_now_ms();
        if (now >= deadline) {
            for (int i = 0; i < NFLOW; i++)
                fprintf(stderr, "stress: %s sent %zu of %zu%s, read %d lines of %d%s\n", fl[i].name,
                        fl[i].out_off, fl[i].out_len, fl[i].send_failed ? " (send failed)" : "",
                        fl[i].lines, fl[i].want_lines, fl[i].eof ? ", EOF" : "");
            ck_abort_msg("stress run not over after %llu ms", (unsigned long long)(now - t0));
        }
        if (ping_sent == 0) {
            ck_assert_int_eq(send(pinger, "PING\r\n", 6, MSG_NOSIGNAL), 6);
            ping_sent = now;
        }
        ck_assert_msg(now - ping_sent < 500 * (uint64_t)slow,
                      "a PING waited %llu ms for its PONG during the stress run (after %d PINGs)",
                      (unsigned long long)(now - ping_sent), pings_done);

        struct pollfd p[NFLOW + 1];
        for (int i = 0; i < NFLOW; i++) {
            p[i].fd = fl[i].eof ? -1 : fl[i].fd;
            p[i].events = (fl[i].reads ? POLLIN : 0) |
                          (fl[i].out_off < fl[i].out_len && !fl[i].send_failed ? POLLOUT : 0);
            p[i].revents = 0;
        }
        p[NFLOW].fd = pinger;
        p[NFLOW].events = POLLIN;
        p[NFLOW].revents = 0;
        ck_assert_int_ge(poll(p, NFLOW + 1, 10), 0);
        for (int i = 0; i < NFLOW; i++) {
            if (p[i].revents & (POLLOUT | POLLERR | POLLHUP))
                flow_write(&fl[i]);
            if (p[i].revents & (POLLIN | POLLERR | POLLHUP))
                flow_read(&fl[i]);
            if (!fl[i].reads && (p[i].revents & (POLLHUP | POLLERR)))
                fl[i].eof = true; /* closed by the daemon, its replies unread */
        }
        if (p[NFLOW].revents & POLLIN) {
            ssize_t n = read(pinger, pbuf + pbuf_len, sizeof pbuf - pbuf_len);
            ck_assert_msg(n > 0 || (n < 0 && errno == EAGAIN), "pinger's connection closed");
            if (n > 0)
                pbuf_len += (size_t)n;
            if (pbuf_len >= 6) {
                ck_assert_msg(memcmp(pbuf, "PONG\r\n", 6) == 0, "PING got '%.*s'", (int)pbuf_len,
                              pbuf);
                uint64_t took = h_now_ms() - ping_sent;
                if (took > ping_max)
                    ping_max = took;
                pings_done++;
                ping_sent = 0;
                pbuf_len = 0;
            }
        }
    }
    uint64_t took = h_now_ms() - t0;
    fprintf(stderr,
            "stress: %llu ms, %d PINGs, slowest %llu ms; DETACH granted %d+%d of %d+%d "
            "(NOQUORUM %d+%d); connection-bound granted %d\n",
            (unsigned long long)took, pings_done, (unsigned long long)ping_max, fl[0].ok, fl[1].ok,
            NDET, NDET, fl[0].noquorum, fl[1].noquorum, fl[2].ok);

    for (int i = 0; i < NFLOW; i++)
        ck_assert_msg(fl[i].other[0] == '\0', "%s got '%s'", fl[i].name, fl[i].other);
    /* Fresh resources: granted (unless the loaded masters were too slow)
     * up to max_locks_per_client, which DETACH locks count against while
     * their connection is open; the rest ERR LIMIT. */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_ge(fl[i].ok + fl[i].noquorum, 1000);
        ck_assert_int_le(fl[i].ok, 1000); /* ACQUIREs in flight count too: no overshoot */
    }
    /* max_locks_per_client granted, counting ACQUIREs in flight (a pipeline
     * once got 1,005-1,536), the rest ERR LIMIT. */
    ck_assert_int_ge(fl[2].ok + fl[2].noquorum, 1000);
    ck_assert_int_le(fl[2].ok, 1000);
    ck_assert_int_eq(fl[3].ok, 0);     /* all ERR BUSY: shot stays held */
    ck_assert_int_eq(fl[5].ok, NPING); /* BUSY, the PONGs, TOOLONG */
    ck_assert_msg(fl[4].eof, "the connection that never reads was not closed");
    for (int i = 0; i < NFLOW; i++) {
        close(fl[i].fd);
        free(fl[i].out);
    }
    /* Still responsive, and the teardown checks a clean exit. */
    char line[64];
    int fd = raw();
    raw_req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    ck_assert_msg(wait_info("clients", 4, 5000), /* holder, pinger, fd and INFO's own */
                  "closed connections not noticed");
    close(fd);
    close(pinger);
    close(holder);
}
END_TEST

int main(void)
{
    const struct test_group groups[] = {
        {"pending-limit", {test_wait_burst_past_pending_limit, test_wait_burst_then_sigterm, NULL}},
        {"draining",
         {test_quit_with_wait_then_close, test_toolong_with_wait_then_close,
          test_quit_answers_earlier_wait, NULL}},
        {"stress", {test_stress_every_bound_at_once, NULL}},
    };
    h_init();
    return run_test_groups("liveness", groups, sizeof groups / sizeof groups[0], setup, teardown);
}
