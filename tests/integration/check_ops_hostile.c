/*
 * check_ops_hostile.c - integration tests of issue 13's operations part: the
 * metrics endpoint under hostile HTTP peers (endless headers, idle and slow
 * connections, too many of them), the daemon out of file descriptors,
 * /healthz while every ACQUIRE fails, warnings for master counts without
 * fault tolerance, and reload storms that only reorder the masters.
 *
 * Three real redis-server masters per test (a checked fixture); each test
 * starts its own redlockd. The teardown asserts that a daemon still running
 * exits 0 on SIGTERM.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

#define NM 3

static struct h_redis M[NM];
static struct h_daemon D;
static int metrics_port;

#define BASE_REDIS "master_timeout_ms = 100\n"
#define BASE_LOCK \
    "default_ttl_ms = 10000\nretry_count = 1\nretry_delay_ms = 20\nretry_jitter_ms = 10\n"

static void setup(void)
{
    memset(&D, 0, sizeof D);
    memset(M, 0, sizeof M);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM; i++)
        if (M[i].dir[0])
            h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
}

/* Start with [metrics] listen on a free port plus the extra metrics lines. */
static void start_with_metrics(const char *extra, size_t nmasters)
{
    metrics_port = h_free_port();
    ck_assert_int_gt(metrics_port, 0);
    static char metrics[512];
    snprintf(metrics, sizeof metrics, "listen = 127.0.0.1:%d\n%s", metrics_port,
             extra ? extra : "");
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK, .metrics = metrics};
    ck_assert_msg(h_daemon_start(&D, M, nmasters, &o) == 0, "redlockd did not start");
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

/* ACQUIRE res then RELEASE it on fd; false (and the reply in why) if either failed. */
static bool lock_pair(int fd, const char *res, char *why, size_t whylen)
{
    char line[256], reply[256], id[64];
    snprintf(line, sizeof line, "ACQUIRE %s 10000", res);
    raw_req(fd, line, reply, sizeof reply);
    if (sscanf(reply, "OK %63s", id) != 1) {
        snprintf(why, whylen, "ACQUIRE %.30s: %.200s", res, reply);
        return false;
    }
    snprintf(line, sizeof line, "RELEASE %s", id);
    raw_req(fd, line, reply, sizeof reply);
    if (strcmp(reply, "OK") != 0) {
        snprintf(why, whylen, "RELEASE: %.200s", reply);
        return false;
    }
    return true;
}

/* How many times needle occurs in the file at path. */
static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    static char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, f))
        for (const char *p = line; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            n++;
    fclose(f);
    return n;
}

static int count_lines(const char *path)
{
    return count_in_file(path, "\n");
}

static bool log_has(void *ud)
{
    return h_file_contains(D.log, ud);
}

static bool wait_log(const char *needle, uint32_t ms)
{
    return h_wait_until(log_has, (void *)needle, ms * h_slowdown());
}

/* The daemon's resident set, in kB (-1 if unreadable). */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int http_req(const char *method, const char *path, char *body, size_t bodylen)
{
    return http_request(metrics_port, method, path, body, bodylen);
}

static int http_get(const char *path, char *body, size_t bodylen)
{
    return http_req("GET", path, body, bodylen);
}

static bool metrics_answers(void *ud)
{
    (void)ud;
    static char body[65536];
    return http_get("/metrics", body, sizeof body) == 200;
}

/* ---- metrics: endless headers ---------------------------------------------------- */

#define ATTACKERS 5
#define FLOOD_MS 3000
#define FLOOD_CONN_MAX (4u << 20) /* a connection not closed after this much: unbounded */

struct attacker {
    int fd;
    size_t sent;     /* on the current connection */
    size_t max_sent; /* the most any of its connections took before it was closed */
    int closed;      /* connections the daemon ended */
    bool long_line;  /* one growing header line instead of many short ones */
};

static void attacker_connect(struct attacker *a)
{
    a->fd = h_connect_tcp(metrics_port);
    ck_assert_msg(a->fd >= 0, "cannot connect to the metrics port");
    /* A fixed send buffer, so "sent" is close to what reached the daemon. */
    int sndbuf = 65536;
    ck_assert_int_eq(setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    a->sent = 0;
    const char *first =
        a->long_line ? "GET /metrics HTTP/1.1\r\nX-Long: " : "GET /metrics HTTP/1.1\r\n";
    ck_assert_int_eq(h_send_str(a->fd, first), 0);
}

static void attacker_ended(struct attacker *a)
{
    if (a->sent > a->max_sent)
        a->max_sent = a->sent;
    a->closed++;
    close(a->fd);
    attacker_connect(a);
}

START_TEST(test_metrics_header_flood)
{
    start_with_metrics(NULL, NM);
    int lockfd = raw();
    char why[256] = "";
    ck_assert_msg(lock_pair(lockfd, "flood-warm", why, sizeof why), "%s", why);

    static char short_lines[16384], long_line[16384];
    for (size_t i = 0; i + 16 <= sizeof short_lines; i += 16)
        memcpy(short_lines + i, "X-Flood: aaaaa\r\n", 16);
    memset(long_line, 'a', sizeof long_line);
    struct attacker at[ATTACKERS];
    memset(at, 0, sizeof at);
    for (int i = 0; i < ATTACKERS; i++) {
        at[i].long_line = i == ATTACKERS - 1;
        attacker_connect(&at[i]);
    }
    uint64_t start = h_now_ms(), next_lock = start, worst_lock_ms = 0;
    long peak_rss = 0;
    int pairs = 0;
    while (h_now_ms() - start < FLOOD_MS) {
        struct pollfd pf[ATTACKERS];
        for (int i = 0; i < ATTACKERS; i++)
            pf[i] = (struct pollfd){.fd = at[i].fd, .events = POLLIN | POLLOUT};
        ck_assert_int_ge(poll(pf, ATTACKERS, 50), 0);
        for (int i = 0; i < ATTACKERS; i++) {
            struct attacker *a = &at[i];
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                char junk[4096];
                ssize_t n = read(a->fd, junk, sizeof junk);
                if (n <= 0) {
                    attacker_ended(a);
                    continue;
                }
            }
            if (pf[i].revents & POLLOUT) {
                const char *src = a->long_line ? long_line : short_lines;
                ssize_t n = send(a->fd, src, sizeof short_lines, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno != EAGAIN) {
                    attacker_ended(a);
                    continue;
                }
                if (n > 0)
                    a->sent += (size_t)n;
                ck_assert_msg(
                    a->sent <= FLOOD_CONN_MAX,
                    "attacker %d sent %zu bytes of header and the daemon still reads them", i,
                    a->sent);
            }
        }
        long rss = rss_kb(D.pid);
        if (rss > peak_rss)
            peak_rss = rss;
        if (h_now_ms() >= next_lock) {
            char res[32];
            snprintf(res, sizeof res, "flood-%d", pairs++);
            uint64_t t0 = h_now_ms();
            ck_assert_msg(lock_pair(lockfd, res, why, sizeof why), "during the flood: %s", why);
            uint64_t took = h_now_ms() - t0;
            if (took > worst_lock_ms)
                worst_lock_ms = took;
            next_lock = h_now_ms() + 50;
        }
    }
    for (int i = 0; i < ATTACKERS; i++) {
        ck_assert_msg(at[i].closed > 0, "attacker %d (%s) was never cut off (%zu bytes sent)", i,
                      at[i].long_line ? "one long line" : "endless lines", at[i].sent);
        ck_assert_msg(at[i].max_sent <= (2u << 20),
                      "attacker %d got %zu bytes in before it was closed", i, at[i].max_sent);
        close(at[i].fd);
    }
    fprintf(stderr,
            "header flood: peak RSS %ld kB, worst lock pair %llu ms over %d pairs, cut off "
            "%d/%d/%d/%d/%d\n",
            peak_rss, (unsigned long long)worst_lock_ms, pairs, at[0].closed, at[1].closed,
            at[2].closed, at[3].closed, at[4].closed);
    /* 2-3 MB normally; room for ASan's quarantine of freed connections. */
    ck_assert_msg(peak_rss > 0 && peak_rss < 128 * 1024,
                  "daemon RSS reached %ld kB under the header flood", peak_rss);
    ck_assert_msg(worst_lock_ms < 1000 * h_slowdown(), "a lock pair took %llu ms during the flood",
                  (unsigned long long)worst_lock_ms);
    ck_assert_int_ge(pairs, 10);
    /* And the endpoint still serves. */
    ck_assert_msg(h_wait_until(metrics_answers, NULL, 5000 * h_slowdown()),
                  "/metrics does not answer after the flood");
    close(lockfd);
}
END_TEST

/* ---- metrics: idle, slow, too many ---------------------------------------------- */

/* Milliseconds until the daemon closes fd (EOF or reset), reading and dropping
 * what it sends; UINT32_MAX if it is still open after limit_ms. When
 * drip_ms is not 0, one header line is sent every drip_ms meanwhile. */
static uint32_t ms_until_closed(int fd, uint32_t limit_ms, uint32_t drip_ms)
{
    uint64_t t0 = h_now_ms(), next_drip = t0 + drip_ms;
    while (h_now_ms() - t0 < limit_ms) {
        uint32_t wait = 20;
        if (h_readable(fd, wait)) {
            char buf[512];
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0)
                return (uint32_t)(h_now_ms() - t0);
        }
        if (drip_ms != 0 && h_now_ms() >= next_drip) {
            if (send(fd, "X: y\r\n", 6, MSG_NOSIGNAL) < 0)
                return (uint32_t)(h_now_ms() - t0);
            next_drip += drip_ms;
        }
    }
    return UINT32_MAX;
}

START_TEST(test_metrics_timeouts_and_limits)
{
    start_with_metrics("timeout_ms = 500\nmax_connections = 4\n", NM);
    char body[65536];
    ck_assert_int_eq(http_get("/metrics", body, sizeof body), 200);

    /* Idle: closed after the timeout. */
    int idle = h_connect_tcp(metrics_port);
    ck_assert_int_ge(idle, 0);
    uint32_t t = ms_until_closed(idle, 3000 * h_slowdown(), 0);
    ck_assert_msg(t != UINT32_MAX,
                  "an idle metrics connection is still open after 3 s (timeout_ms = 500)");
    ck_assert_msg(t >= 300, "the idle connection was closed after %u ms, before the timeout", t);
    close(idle);

    /* Slow: a header line every 100 ms keeps it busy, not alive. */
    int slow = h_connect_tcp(metrics_port);
    ck_assert_int_ge(slow, 0);
    ck_assert_int_eq(h_send_str(slow, "GET /metrics HTTP/1.1\r\n"), 0);
    t = ms_until_closed(slow, 3000 * h_slowdown(), 100);
    ck_assert_msg(t != UINT32_MAX, "a slowly sending metrics connection is still open after 3 s");
    close(slow);

    ck_assert_int_eq(http_get("/metrics", body, sizeof body), 200);
    ck_assert_msg(strstr(body, "redlockd_metrics_refused_total 0\n"),
                  "no refused counter in /metrics");

    /* Four open: a fifth is answered 503 at once. */
    int hold[4];
    for (int i = 0; i < 4; i++) {
        hold[i] = h_connect_tcp(metrics_port);
        ck_assert_int_ge(hold[i], 0);
    }
    /* The daemon must have accepted them before the fifth comes: a request
     * on the last one is answered only once it is accepted. */
    ck_assert_int_eq(h_send_str(hold[3], "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    char line[256];
    ck_assert_msg(h_read_line(hold[3], line, sizeof line, 5000) > 0 && starts(line, "HTTP/1.1 "),
                  "no answer on the fourth connection");
    int code = http_get("/metrics", body, sizeof body);
    ck_assert_msg(code == 503, "a fifth connection over max_connections = 4 got %d, want 503",
                  code);
    for (int i = 0; i < 4; i++)
        close(hold[i]);
    ck_assert_msg(h_wait_until(metrics_answers, NULL, 3000 * h_slowdown()),
                  "/metrics does not answer again");
    ck_assert_int_eq(http_get("/metrics", body, sizeof body), 200);
    /* At least the fifth; a retry above may have come before the four closed. */
    const char *rc = strstr(body, "\nredlockd_metrics_refused_total ");
    ck_assert_msg(rc != NULL && atoi(rc + strlen("\nredlockd_metrics_refused_total ")) >= 1,
                  "refused counter not counted");

    /* The small server answers what it should. */
    ck_assert_int_eq(http_req("HEAD", "/healthz", body, sizeof body), 200);
    ck_assert_str_eq(body, "");
    ck_assert_int_eq(http_req("GET", "/healthz?x=1", body, sizeof body), 200);
    ck_assert_int_eq(http_req("GET", "/nothing", body, sizeof body), 404);
    ck_assert_int_eq(http_req("POST", "/metrics", body, sizeof body), 405);
    int fd = h_connect_tcp(metrics_port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(h_send_str(fd, "GET /metrics\r\n\r\n"), 0);
    ck_assert_msg(h_read_line(fd, line, sizeof line, 5000) > 0 && starts(line, "HTTP/1.1 400"),
                  "a request line without a version: '%s'", line);
    close(fd);
}
END_TEST

/* ---- out of file descriptors -------------------------------------------------------- */

#define NOFILE 64
#define FLOOD_CONNS 100

START_TEST(test_fd_exhaustion)
{
    /* The daemon inherits a soft limit of NOFILE descriptors. */
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {NOFILE, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    start_with_metrics(NULL, NM);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    int lockfd = raw();
    char why[256] = "";
    ck_assert_msg(lock_pair(lockfd, "fd-warm", why, sizeof why), "%s", why);

    /* More clients than descriptors: the rest wait in the backlog. */
    int fds[FLOOD_CONNS];
    for (int i = 0; i < FLOOD_CONNS; i++) {
        fds[i] = h_connect_tcp(D.port);
        ck_assert_msg(fds[i] >= 0, "connect %d failed", i);
    }
    ck_assert_msg(wait_log("accept paused: out of file descriptors", 5000),
                  "the daemon never ran out of fds");
    /* Scrapers wait too, and must not make the metrics listener spin. */
    int scrapers[3];
    for (int i = 0; i < 3; i++) {
        scrapers[i] = h_connect_tcp(metrics_port);
        ck_assert_int_ge(scrapers[i], 0);
        ck_assert_int_eq(h_send_str(scrapers[i], "GET /metrics HTTP/1.1\r\n\r\n"), 0);
    }
    /* Measure over a window: CPU and log growth while out of descriptors. */
    int lines0 = count_lines(D.log);
    long long cpu0 = h_cpu_ticks(D.pid);
    uint64_t t0 = h_now_ms();
    h_sleep_ms(2000);
    long long cpu1 = h_cpu_ticks(D.pid);
    uint64_t elapsed = h_now_ms() - t0;
    int lines1 = count_lines(D.log);
    ck_assert(cpu0 >= 0 && cpu1 >= cpu0);
    double cpu_ms = (double)(cpu1 - cpu0) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    fprintf(stderr, "out of fds: %.0f ms CPU in %llu ms, %d log lines\n", cpu_ms,
            (unsigned long long)elapsed, lines1 - lines0);
    ck_assert_msg(cpu_ms < 0.15 * (double)elapsed,
                  "the daemon used %.0f ms of CPU in %llu ms out of fds (spinning)", cpu_ms,
                  (unsigned long long)elapsed);
    ck_assert_msg(lines1 - lines0 <= 10, "%d log lines in %llu ms out of fds", lines1 - lines0,
                  (unsigned long long)elapsed);
    /* An existing client still locks. */
    ck_assert_msg(lock_pair(lockfd, "fd-during", why, sizeof why), "while out of fds: %s", why);

    /* Free the descriptors: new clients and scrapers are served again. */
    for (int i = 0; i < FLOOD_CONNS; i++)
        close(fds[i]);
    for (int i = 0; i < 3; i++)
        close(scrapers[i]);
    ck_assert_msg(h_daemon_ping_raw(D.sock, 5000 * h_slowdown()),
                  "a new client is not served after fds were freed");
    int fresh = raw();
    ck_assert_msg(lock_pair(fresh, "fd-after", why, sizeof why), "after fds were freed: %s", why);
    close(fresh);
    ck_assert_msg(h_wait_until(metrics_answers, NULL, 5000 * h_slowdown()),
                  "/metrics does not answer after fds were freed");
    close(lockfd);
}
END_TEST

/* ---- /healthz while every ACQUIRE fails ------------------------------------------ */

struct health_arg {
    int want;
    char body[1024];
};

static bool health_is(void *ud)
{
    struct health_arg *a = ud;
    return http_get("/healthz", a->body, sizeof a->body) == a->want;
}

START_TEST(test_healthz_failing_acquires)
{
    start_with_metrics(NULL, NM);
    struct health_arg ha = {200, ""};
    ck_assert_msg(h_wait_until(health_is, &ha, 5000 * h_slowdown()), "/healthz not 200 at start");
    int fd = raw();
    char why[256], reply[256], line[128];
    ck_assert_msg(lock_pair(fd, "hz-warm", why, sizeof why), "%s", why);

    /* The fence counter holds a string on every master: INCR fails, every
     * fenced ACQUIRE fails, while every master is up and answering. */
    for (int i = 0; i < NM; i++) {
        char out[64];
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "SET", ",fence", "not-a-number", NULL),
                         H_REPLY_STATUS);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(line, sizeof line, "ACQUIRE hz-%d 10000", i);
        raw_req(fd, line, reply, sizeof reply);
        ck_assert_msg(starts(reply, "ERR "), "ACQUIRE with a broken fence counter: '%s'", reply);
    }
    ha.want = 503;
    ck_assert_msg(h_wait_until(health_is, &ha, 2000 * h_slowdown()),
                  "/healthz is not 503 while every ACQUIRE fails: '%s'", ha.body);
    ck_assert_msg(strstr(ha.body, "ACQUIREs failed"), "/healthz does not say why: '%s'", ha.body);

    /* Repaired: one success makes it healthy again. */
    for (int i = 0; i < NM; i++) {
        char out[64];
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "DEL", ",fence", NULL), H_REPLY_INT);
    }
    ck_assert_msg(lock_pair(fd, "hz-repaired", why, sizeof why), "%s", why);
    ha.want = 200;
    ck_assert_msg(h_wait_until(health_is, &ha, 2000 * h_slowdown()),
                  "/healthz not 200 after a grant: '%s'", ha.body);
    close(fd);
}
END_TEST

/* ---- master counts without fault tolerance --------------------------------------- */

START_TEST(test_master_count_warnings)
{
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    ck_assert_msg(h_daemon_start(&D, M, 2, &o) == 0, "redlockd did not start");
    ck_assert_msg(wait_log("two masters: the quorum is 2", 5000), "no warning for two masters");
    /* redlockd -t (ExecReload's check) says it too, and still accepts the file. */
    char out[H_PATH_MAX + 16];
    snprintf(out, sizeof out, "%s.check", D.ini);
    char *argv[] = {(char *)h_redlockd_bin(), "-t", "-c", D.ini, NULL};
    pid_t pid = h_spawn(argv, out);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(h_wait_exit(pid, 10000), 0);
    ck_assert_msg(h_file_contains(out, "two masters: the quorum is 2"),
                  "redlockd -t does not warn about two masters");

    /* Four: the same tolerance as three. M[0..2] and one address nobody serves. */
    int spare = h_free_port();
    ck_assert_int_gt(spare, 0);
    char list[256];
    snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", M[0].port,
             M[1].port, M[2].port, spare);
    o.masters = list;
    ck_assert_int_eq(h_daemon_write_ini(&D, M, NM, &o), 0);
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(
        wait_log("an even number of masters: the quorum is 3, so it survives 1 failures", 5000),
        "no warning for four masters");

    o.masters = NULL;
    ck_assert_int_eq(h_daemon_write_ini(&D, M, 1, &o), 0);
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(wait_log("a single master: no fault tolerance", 5000),
                  "no warning for one master");

    /* Three: no warning. */
    int warnings = count_in_file(D.log, "level=warn");
    ck_assert_int_eq(h_daemon_write_ini(&D, M, NM, &o), 0);
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(wait_log("masters=3 masters_changed=yes", 5000),
                  "the reload to three masters did not happen");
    ck_assert_int_eq(count_in_file(D.log, "level=warn"), warnings);
}
END_TEST

/* ---- reload storms that only reorder the masters -------------------------------- */

#define STORM_RELOADS 200

struct reloads_arg {
    int want;
};

static bool reloads_done(void *ud)
{
    struct reloads_arg *a = ud;
    return count_in_file(D.log, "configuration reloaded") >= a->want;
}

START_TEST(test_reload_storm_reorder)
{
    struct h_daemon_opts o = {.redis = BASE_REDIS, .lock = BASE_LOCK};
    ck_assert_msg(h_daemon_start(&D, M, NM, &o) == 0, "redlockd did not start");
    ck_assert_msg(wait_log("quorum=2", 5000), "no start line");
    /* Wait for all three masters. */
    for (int i = 0; i < NM; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "master up\" master=127.0.0.1:%d", M[i].port);
        ck_assert_msg(wait_log(needle, 5000), "master %d never came up", i);
    }
    int ups = count_in_file(D.log, "msg=\"master up\"");
    ck_assert_int_eq(ups, NM);

    char orders[2][256];
    snprintf(orders[0], sizeof orders[0], "127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d", M[0].port,
             M[1].port, M[2].port);
    snprintf(orders[1], sizeof orders[1], "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", M[2].port,
             M[0].port, M[1].port);
    int fd = raw();
    char why[256];
    int errors = 0;
    for (int i = 0; i < STORM_RELOADS; i++) {
        o.masters = orders[(i + 1) % 2];
        ck_assert_int_eq(h_daemon_write_ini(&D, M, NM, &o), 0);
        ck_assert_int_eq(h_daemon_hup(&D), 0);
        char res[32];
        snprintf(res, sizeof res, "storm-%d", i);
        if (!lock_pair(fd, res, why, sizeof why)) {
            if (errors++ < 5)
                fprintf(stderr, "reload storm, pair %d: %s\n", i, why);
        }
        struct reloads_arg ra = {i + 1};
        ck_assert_msg(h_wait_until(reloads_done, &ra, 5000 * h_slowdown()),
                      "reload %d was not handled", i + 1);
    }
    int reloads = count_in_file(D.log, "configuration reloaded");
    fprintf(stderr, "reload storm: %d reloads handled, %d errors, %d master-up lines\n", reloads,
            errors, count_in_file(D.log, "msg=\"master up\""));
    ck_assert_msg(errors == 0, "%d of %d lock pairs failed during the reload storm", errors,
                  STORM_RELOADS);
    ck_assert_msg(count_in_file(D.log, "masters_changed=yes") == 0,
                  "a reorder counted as a change of masters");
    ck_assert_msg(count_in_file(D.log, "msg=\"master up\"") == NM,
                  "the masters were connected again (%d up lines)",
                  count_in_file(D.log, "msg=\"master up\""));
    ck_assert_int_eq(reloads, STORM_RELOADS);
    close(fd);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

int main(void)
{
    const struct test_group groups[] = {
        {"metrics",
         {test_metrics_header_flood, test_metrics_timeouts_and_limits, test_fd_exhaustion, NULL}},
        {"health", {test_healthz_failing_acquires, test_master_count_warnings, NULL}},
        {"reload", {test_reload_storm_reorder, NULL}},
    };
    h_init();
    return run_test_groups("ops_hostile", groups, sizeof groups / sizeof groups[0], setup,
                           teardown);
}
