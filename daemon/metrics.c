/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "redis_pool.h"
#include "redlock_engine.h"
#include "server.h"
#include "util.h"

/* Upper bounds of the acquire-latency buckets, in microseconds. */
static const uint64_t bucket_us[] = {250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                                     250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

static uint64_t bucket_count[NBUCKETS + 1]; /* the last is +Inf */
static uint64_t latency_sum_us;
static uint64_t latency_count;
static struct evhttp *http;

void metrics_observe_acquire(uint64_t micros)
{
    size_t i = 0;
    while (i < NBUCKETS && micros > bucket_us[i]) i++;
    bucket_count[i]++;
    latency_sum_us += micros;
    latency_count++;
}

/* Every counter of stats.h, with a HELP and TYPE line per metric family. */
static void counters(struct evbuffer *b, const struct stats *st)
{
    const char *family = "";
    for (size_t i = 0; i < stats_ndescs; i++) {
        const struct stats_desc *d = &stats_descs[i];
        if (d->metric[0] == '\0') continue; /* INFO only */
        if (strcmp(family, d->metric) != 0)
            evbuffer_add_printf(b, "# HELP redlockd_%s_total %s\n# TYPE redlockd_%s_total counter\n", d->metric,
                                d->help, d->metric);
        family = d->metric;
        evbuffer_add_printf(b, "redlockd_%s_total%s%s%s %llu\n", d->metric, d->labels[0] ? "{" : "", d->labels,
                            d->labels[0] ? "}" : "", (unsigned long long)stats_value(st, d));
    }
}

static void gauge(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(b, "# HELP redlockd_%s %s\n# TYPE redlockd_%s gauge\nredlockd_%s %llu\n", name, help,
                        name, name, (unsigned long long)v);
}

/* The standard process_* metrics (as Prometheus' client libraries name
 * them), read from getrusage, getrlimit and /proc/self. A value that cannot be
 * read (e.g. no fd left for /proc) is left out rather than reported wrong. */
static void process_metrics(struct evbuffer *b, const struct server *s)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                     (double)ru.ru_stime.tv_usec / 1e6;
        evbuffer_add_printf(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                               "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n",
                            cpu);
    }
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long vm_pages, rss_pages;
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &vm_pages, &rss_pages) == 2) {
            unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
            evbuffer_add_printf(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
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
        evbuffer_add_printf(b, "# HELP process_open_fds Number of open file descriptors.\n"
                               "# TYPE process_open_fds gauge\nprocess_open_fds %llu\n",
                            fds > 0 ? fds - 1 : 0); /* not counting opendir's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        evbuffer_add_printf(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
                               "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                            (unsigned long long)rl.rlim_cur);
    evbuffer_add_printf(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                           "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %lld\n",
                        (long long)s->started_unix);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "# HELP redlockd_build_info The running redlockd's version and protocol.\n"
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
    evbuffer_add_printf(b, "# HELP redlockd_acquire_latency_seconds Time from ACQUIRE to its OK.\n"
                           "# TYPE redlockd_acquire_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += bucket_count[i];
        evbuffer_add_printf(b, "redlockd_acquire_latency_seconds_bucket{le=\"%g\"} %llu\n",
                            (double)bucket_us[i] / 1e6, (unsigned long long)cum);
    }
    cum += bucket_count[NBUCKETS];
    evbuffer_add_printf(b,
                        "redlockd_acquire_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
                        "redlockd_acquire_latency_seconds_sum %.6f\n"
                        "redlockd_acquire_latency_seconds_count %llu\n",
                        (unsigned long long)cum, (double)latency_sum_us / 1e6, (unsigned long long)latency_count);
    evbuffer_add_printf(b, "# HELP redlockd_master_up 1 while the master is connected and voting.\n"
                           "# TYPE redlockd_master_up gauge\n");
    for (size_t i = 0; i < pool_size(p); i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        evbuffer_add_printf(b, "redlockd_master_up{master=\"%s\"} %d\n", ms.addr,
                            ms.state == MASTER_UP && ms.quarantine_ms == 0);
    }
    evbuffer_add_printf(b, "# HELP redlockd_master_latency_seconds Smoothed PING round trip.\n"
                           "# TYPE redlockd_master_latency_seconds gauge\n");
    for (size_t i = 0; i < pool_size(p); i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        evbuffer_add_printf(b, "redlockd_master_latency_seconds{master=\"%s\"} %.6f\n", ms.addr,
                            (double)ms.latency_us / 1e6);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    struct pool *p = rl_engine_pool(s->rl);
    size_t up = 0;
    for (size_t i = 0; i < pool_size(p); i++) up += pool_master_usable(p, i) && pool_master_votes(p, i);
    bool ok = up >= pool_quorum(p) && !s->shutting_down;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "%s %zu/%zu masters up, quorum %zu\n", ok ? "ok" : "unhealthy", up, pool_size(p),
                        pool_quorum(p));
    evhttp_send_reply(req, ok ? HTTP_OK : 503, ok ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

int metrics_open(struct server *s, char *err, size_t errlen)
{
    const char *addr = s->cfg.metrics_listen;
    if (addr == NULL || addr[0] == '\0') return 0;
    char *host;
    int port;
    if (config_parse_hostport(addr, &host, &port) != 0) {
        snprintf(err, errlen, "metrics.listen: bad address '%s'", addr);
        return -1;
    }
    http = evhttp_new(s->base);
    if (http == NULL || evhttp_bind_socket(http, host, (ev_uint16_t)port) != 0) {
        snprintf(err, errlen, "metrics.listen %s: cannot listen", addr);
        free(host);
        metrics_close(s);
        return -1;
    }
    free(host);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(http, "/metrics", on_metrics, s);
    evhttp_set_cb(http, "/healthz", on_healthz, s);
    log_info("msg=\"serving metrics\" addr=%s", addr);
    return 0;
}

void metrics_close(struct server *s)
{
    (void)s;
    if (http != NULL) evhttp_free(http);
    http = NULL;
}
