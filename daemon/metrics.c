/*
 * metrics.c - see metrics.h.
 *
 * A deliberately small HTTP/1.x server (not evhttp, whose 2.1 series has no
 * connection limit and no bound on a connection's life, and spins on a
 * listener that fails with EMFILE). One request per connection, answered
 * with "Connection: close":
 *  - the request line and headers together are at most METRICS_MAX_HEAD
 *    bytes (else 431); headers are skipped, a body is never read;
 *  - at most [metrics] max_connections are open at once; one more is
 *    answered 503 and closed at once;
 *  - a connection lives at most [metrics] timeout_ms from accept to close,
 *    however slowly it sends (idle, slow-header and unread-reply peers);
 *  - out of file descriptors, accepting pauses METRICS_ACCEPT_PAUSE_MS, and
 *    the pause is logged at most once per METRICS_LOG_EVERY_MS.
 */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "proto.h"
#include "redis_pool.h"
#include "redlock_engine.h"
#include "server.h"
#include "textbuf.h"
#include "util.h"

/* Upper bounds of the acquire-latency buckets, in microseconds. */
static const uint64_t bucket_us[] = {250,    500,    1000,   2500,    5000,    10000,   25000,   50000,
                                     100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])
/* The longest /metrics or /healthz body (64 masters take a few KB); past it, 500. */
#define METRICS_MAX_BYTES (1024 * 1024)

#define METRICS_MAX_HEAD 8192 /* request line + headers, bytes */
#define METRICS_ACCEPTS_PER_EVENT 16
#define METRICS_ACCEPT_PAUSE_MS 100
#define METRICS_LOG_EVERY_MS 10000 /* at most one "accept paused" line per this */
#define METRICS_BACKLOG 64

/* /healthz: this many ACQUIREs in a row failed for a daemon-side reason
 * (NOQUORUM), the latest within HEALTH_FAIL_WINDOW_MS, and none succeeded
 * or found its resource busy since: the daemon cannot grant locks. */
#define HEALTH_FAIL_STREAK 5
#define HEALTH_FAIL_WINDOW_MS 30000

static uint64_t bucket_count[NBUCKETS + 1]; /* the last is +Inf */
static uint64_t latency_sum_us;
static uint64_t latency_count;
static unsigned fail_streak;  /* ACQUIREs failed in a row for a daemon-side reason */
static uint64_t last_fail_ms; /* when the latest of them failed */

/* One HTTP connection: read the request head, answer, close. */
struct mconn {
    TAILQ_ENTRY(mconn) link;
    struct bufferevent *bev; /* owns the socket */
    struct event *deadline;  /* the whole life of the connection */
    size_t head_bytes;       /* bytes of complete head lines consumed */
    size_t discarded;        /* bytes dropped after the answer */
    char *request_line;      /* owned; NULL until the first line came */
    bool answered;           /* reply queued: input is discarded until close */
    bool peer_done;          /* the client half-closed: close once the reply is out */
};

static struct {
    struct server *server;
    int fd; /* listening socket, -1 when off */
    struct event *accept_ev;
    struct event *resume_ev; /* re-enables accept_ev after a pause */
    TAILQ_HEAD(, mconn) conns;
    unsigned nconns;
    uint64_t pauses;      /* accept pauses since the last log line */
    uint64_t last_log_ms; /* 0: never logged */
} M = {.fd = -1};

void metrics_observe_acquire(uint64_t micros)
{
    size_t i = 0;
    while (i < NBUCKETS && micros > bucket_us[i]) i++;
    bucket_count[i]++;
    latency_sum_us += micros;
    latency_count++;
    fail_streak = 0;
}

void metrics_note_acquire_failure(bool daemon_side)
{
    if (!daemon_side) {
        fail_streak = 0; /* BUSY: the masters answered, locking works */
        return;
    }
    fail_streak++;
    last_fail_ms = now_ms();
}

/* Every counter of stats.h, with a HELP and TYPE line per metric family. */
static void counters(struct textbuf *b, const struct stats *st)
{
    const char *family = "";
    for (size_t i = 0; i < stats_ndescs; i++) {
        const struct stats_desc *d = &stats_descs[i];
        if (d->metric[0] == '\0') continue; /* INFO only */
        if (strcmp(family, d->metric) != 0)
            tb_printf(b, "# HELP redlockd_%s_total %s\n# TYPE redlockd_%s_total counter\n", d->metric, d->help,
                      d->metric);
        family = d->metric;
        tb_printf(b, "redlockd_%s_total%s%s%s %llu\n", d->metric, d->labels[0] ? "{" : "", d->labels,
                  d->labels[0] ? "}" : "", (unsigned long long)stats_value(st, d));
    }
}

static void gauge(struct textbuf *b, const char *name, const char *help, uint64_t v)
{
    tb_printf(b, "# HELP redlockd_%s %s\n# TYPE redlockd_%s gauge\nredlockd_%s %llu\n", name, help, name, name,
              (unsigned long long)v);
}

/* The standard process_* metrics (as Prometheus' client libraries name
 * them), read from getrusage, getrlimit and /proc/self. A value that cannot be
 * read (e.g. no fd left for /proc) is left out rather than reported wrong. */
static void process_metrics(struct textbuf *b, const struct server *s)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        tb_printf(b,
                  "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                  "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n",
                  cpu);
    }
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long vm_pages, rss_pages;
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &vm_pages, &rss_pages) == 2) {
            unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
            tb_printf(b,
                      "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
                      "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                      "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n",
                      rss_pages * page, vm_pages * page);
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        unsigned long long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        tb_printf(b,
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\nprocess_open_fds %llu\n",
                  fds > 0 ? fds - 1 : 0); /* not counting opendir's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        tb_printf(b,
                  "# HELP process_max_fds Maximum number of open file descriptors.\n"
                  "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                  (unsigned long long)rl.rlim_cur);
    tb_printf(b,
              "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
              "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %lld\n",
              (long long)s->started_unix);
}

/* The Prometheus text of every counter and gauge, into b (a page past
 * METRICS_MAX_BYTES or out of memory leaves b truncated or failed). */
static void render_metrics(struct server *s, struct textbuf *b)
{
    tb_printf(b,
              "# HELP redlockd_build_info The running redlockd's version and protocol.\n"
              "# TYPE redlockd_build_info gauge\nredlockd_build_info{version=\"%s\",protocol=\"%d\"} 1\n",
              REDLOCKD_VERSION, PROTO_VERSION);
    process_metrics(b, s);
    gauge(b, "uptime_seconds", "Seconds since start.", (now_ms() - s->started_ms) / 1000);
    gauge(b, "clients", "Open client connections.", s->nconns);
    gauge(b, "locks_held", "Locks held through this daemon.", s->nheld);
    gauge(b, "waiters", "ACQUIREs queued behind other holders.", s->nwaiters);
    struct pool *p = rl_engine_pool(s->rl);
    gauge(b, "masters", "Redis masters configured.", pool_size(p));
    gauge(b, "quorum", "Masters that must agree for a lock (N/2+1).", pool_quorum(p));
    gauge(b, "masters_up", "Masters connected (INFO masters_up).", pool_up_count(p));
    counters(b, &s->stats);
    tb_printf(b, "# HELP redlockd_acquire_latency_seconds Time from ACQUIRE to its OK.\n"
                 "# TYPE redlockd_acquire_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += bucket_count[i];
        tb_printf(b, "redlockd_acquire_latency_seconds_bucket{le=\"%g\"} %llu\n", (double)bucket_us[i] / 1e6,
                  (unsigned long long)cum);
    }
    cum += bucket_count[NBUCKETS];
    tb_printf(b,
              "redlockd_acquire_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
              "redlockd_acquire_latency_seconds_sum %.6f\n"
              "redlockd_acquire_latency_seconds_count %llu\n",
              (unsigned long long)cum, (double)latency_sum_us / 1e6, (unsigned long long)latency_count);
    tb_printf(b, "# HELP redlockd_master_up 1 while the master is connected and voting.\n"
                 "# TYPE redlockd_master_up gauge\n");
    for (size_t i = 0; i < pool_size(p); i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        tb_printf(b, "redlockd_master_up{master=\"%s\"} %d\n", ms.addr,
                  ms.state == MASTER_UP && ms.quarantine_ms == 0);
    }
    tb_printf(b, "# HELP redlockd_master_latency_seconds Smoothed PING round trip.\n"
                 "# TYPE redlockd_master_latency_seconds gauge\n");
    for (size_t i = 0; i < pool_size(p); i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        tb_printf(b, "redlockd_master_latency_seconds{master=\"%s\"} %.6f\n", ms.addr,
                  (double)ms.latency_us / 1e6);
    }
}

/* Whether the daemon can grant locks now (see HEALTH_FAIL_STREAK), with
 * the reason as one line into b. */
static bool render_healthz(struct server *s, struct textbuf *b)
{
    struct pool *p = rl_engine_pool(s->rl);
    size_t up = 0;
    for (size_t i = 0; i < pool_size(p); i++) up += pool_master_usable(p, i) && pool_master_votes(p, i);
    uint64_t now = now_ms();
    bool failing = fail_streak >= HEALTH_FAIL_STREAK && now - last_fail_ms <= HEALTH_FAIL_WINDOW_MS;
    bool ok = up >= pool_quorum(p) && !failing && !s->shutting_down;
    tb_printf(b, "%s %zu/%zu masters up, quorum %zu", ok ? "ok" : "unhealthy", up, pool_size(p),
              pool_quorum(p));
    if (failing)
        tb_printf(b, "; the last %u ACQUIREs failed (NOQUORUM), the latest %llu ms ago", fail_streak,
                  (unsigned long long)(now - last_fail_ms));
    if (s->shutting_down) tb_printf(b, "; shutting down");
    tb_printf(b, "\n");
    return ok;
}

/* ---- the HTTP server ---- */

static void mconn_free(struct mconn *c)
{
    TAILQ_REMOVE(&M.conns, c, link);
    M.nconns--;
    event_free(c->deadline);
    bufferevent_free(c->bev);
    free(c->request_line);
    free(c);
}

#define TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define TYPE_TEXT "text/plain; charset=utf-8"

/* Queue the whole reply (head, and body unless head_only) and stop reading. */
static void reply(struct mconn *c, int code, const char *reason, const char *type, const char *extra_headers,
                  struct evbuffer *body, bool head_only)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = body ? evbuffer_get_length(body) : 0;
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                        "Connection: close\r\n\r\n",
                        code, reason, type, len, extra_headers ? extra_headers : "");
    if (body != NULL && !head_only) evbuffer_add_buffer(out, body);
    c->answered = true;
}

static void reply_error(struct mconn *c, int code, const char *reason, const char *extra_headers)
{
    struct evbuffer *b = evbuffer_new();
    if (b != NULL) evbuffer_add_printf(b, "%s\n", reason);
    reply(c, code, reason, TYPE_TEXT, extra_headers, b, false);
    if (b != NULL) evbuffer_free(b);
}

/* The request head is complete: answer "METHOD target HTTP/1.x". */
static void serve(struct mconn *c)
{
    struct server *s = M.server;
    char *save = NULL;
    char *method = strtok_r(c->request_line, " ", &save);
    char *target = method ? strtok_r(NULL, " ", &save) : NULL;
    char *version = target ? strtok_r(NULL, " ", &save) : NULL;
    if (version == NULL || strncmp(version, "HTTP/1.", 7) != 0 || strtok_r(NULL, " ", &save) != NULL) {
        reply_error(c, 400, "Bad Request", NULL);
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        reply_error(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
        return;
    }
    target[strcspn(target, "?")] = '\0';
    bool is_metrics = strcmp(target, "/metrics") == 0;
    if (!is_metrics && strcmp(target, "/healthz") != 0) {
        reply_error(c, 404, "Not Found", NULL);
        return;
    }
    struct textbuf text;
    tb_init(&text, METRICS_MAX_BYTES);
    bool healthy = true;
    if (is_metrics) render_metrics(s, &text);
    else healthy = render_healthz(s, &text);
    struct evbuffer *b = tb_ok(&text) ? evbuffer_new() : NULL;
    if (b == NULL || evbuffer_add(b, tb_text(&text), text.len) != 0) {
        reply_error(c, 500, "Internal Server Error", NULL);
    } else if (is_metrics) {
        reply(c, 200, "OK", TYPE_PROMETHEUS, NULL, b, head);
    } else if (healthy) {
        reply(c, 200, "OK", TYPE_TEXT, NULL, b, head);
    } else {
        reply(c, 503, "Service Unavailable", TYPE_TEXT, NULL, b, head);
    }
    if (b != NULL) evbuffer_free(b);
    tb_free(&text);
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    struct mconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!c->answered) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (line == NULL) break;
        c->head_bytes += n + 1;
        if (c->head_bytes > METRICS_MAX_HEAD) {
            free(line);
            reply_error(c, 431, "Request Header Fields Too Large", NULL);
        } else if (c->request_line == NULL && n > 0) {
            c->request_line = line;
        } else {
            bool end = n == 0 && c->request_line != NULL;
            free(line); /* header fields are not used */
            if (end) serve(c);
        }
    }
    if (!c->answered && c->head_bytes + evbuffer_get_length(in) > METRICS_MAX_HEAD)
        reply_error(c, 431, "Request Header Fields Too Large", NULL);
    if (c->answered) {
        /* Input after the request is dropped, up to a head's worth: a
         * client that keeps sending after its answer is cut off. */
        c->discarded += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->discarded > METRICS_MAX_HEAD) mconn_free(c);
    }
}

/* The reply has left: half-close, and wait for the client's EOF (or the
 * deadline) so that closing never resets a reply it has not read. */
static void on_conn_written(struct bufferevent *bev, void *arg)
{
    struct mconn *c = arg;
    if (!c->answered) return;
    if (c->peer_done) {
        mconn_free(c);
        return;
    }
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct mconn *c = arg;
    /* A client that half-closed after its request still gets the reply. */
    if ((what & BEV_EVENT_EOF) && c->answered && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        c->peer_done = true;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    mconn_free(c); /* EOF, error: done with it */
}

static void on_conn_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mconn_free(arg);
}

static void conn_start(struct server *s, int fd)
{
    struct mconn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) close(fd);
    c->deadline = evtimer_new(s->base, on_conn_deadline, c);
    uint32_t ms = s->cfg.metrics_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (c->bev == NULL || c->deadline == NULL || evtimer_add(c->deadline, &tv) != 0) {
        if (c->bev) bufferevent_free(c->bev);
        if (c->deadline) event_free(c->deadline);
        free(c);
        return;
    }
    /* Read no more than the head may be; what is beyond it is refused. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, METRICS_MAX_HEAD + 1);
    bufferevent_setcb(c->bev, on_conn_read, on_conn_written, on_conn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    TAILQ_INSERT_TAIL(&M.conns, c, link);
    M.nconns++;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_add(M.accept_ev, NULL);
}

/* Out of file descriptors: stop accepting for a moment (the connection
 * waits in the backlog) instead of spinning on a socket that stays
 * readable, and say so at most once per METRICS_LOG_EVERY_MS. */
static void pause_accepting(int err)
{
    event_del(M.accept_ev);
    struct timeval tv = {0, METRICS_ACCEPT_PAUSE_MS * 1000};
    evtimer_add(M.resume_ev, &tv);
    M.pauses++;
    uint64_t now = now_ms();
    if (M.last_log_ms == 0 || now - M.last_log_ms >= METRICS_LOG_EVERY_MS) {
        log_warn("msg=\"metrics accept paused: out of file descriptors\" error=\"%s\" pauses=%llu",
                 strerror(err), (unsigned long long)M.pauses);
        M.last_log_ms = now;
        M.pauses = 0;
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    (void)what;
    for (int i = 0; i < METRICS_ACCEPTS_PER_EVENT; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(errno);
            return; /* EAGAIN: drained; other errors: that client is gone */
        }
        if (M.nconns >= s->cfg.metrics_max_connections || s->shutting_down) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            ssize_t ignored = send(cfd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)ignored;
            close(cfd);
            s->stats.metrics_refused++;
            continue;
        }
        conn_start(s, cfd);
    }
}

int metrics_open(struct server *s, char *err, size_t errlen)
{
    const char *addr = s->cfg.metrics_listen;
    if (addr == NULL || addr[0] == '\0') return 0;
    M.server = s;
    TAILQ_INIT(&M.conns);
    M.fd = listen_tcp_socket("metrics.listen", addr, METRICS_BACKLOG, NULL, err, errlen);
    if (M.fd < 0) return -1;
    M.accept_ev = event_new(s->base, M.fd, EV_READ | EV_PERSIST, on_accept, s);
    M.resume_ev = evtimer_new(s->base, on_resume, NULL);
    if (M.accept_ev == NULL || M.resume_ev == NULL || event_add(M.accept_ev, NULL) != 0) {
        snprintf(err, errlen, "metrics.listen %s: cannot register the listener", addr);
        metrics_close(s);
        return -1;
    }
    log_info("msg=\"serving metrics\" addr=%s", addr);
    return 0;
}

void metrics_close(struct server *s)
{
    (void)s;
    struct mconn *c;
    while (M.server != NULL && (c = TAILQ_FIRST(&M.conns)) != NULL) mconn_free(c);
    if (M.accept_ev) event_free(M.accept_ev);
    if (M.resume_ev) event_free(M.resume_ev);
    if (M.fd >= 0) close(M.fd);
    M.accept_ev = M.resume_ev = NULL;
    M.fd = -1;
}
