/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
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

static void counter(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(b, "# HELP redlockd_%s %s\n# TYPE redlockd_%s counter\nredlockd_%s %llu\n", name, help,
                        name, name, (unsigned long long)v);
}

static void gauge(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(b, "# HELP redlockd_%s %s\n# TYPE redlockd_%s gauge\nredlockd_%s %llu\n", name, help,
                        name, name, (unsigned long long)v);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    const struct stats *st = &s->stats;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    gauge(b, "uptime_seconds", "Seconds since start.", (now_ms() - s->started_ms) / 1000);
    gauge(b, "clients", "Open client connections.", s->nconns);
    gauge(b, "locks_held", "Locks held through this daemon.", s->nheld);
    gauge(b, "waiters", "ACQUIREs queued behind other holders.", s->nwaiters);
    counter(b, "connections_total", "Client connections accepted.", st->connections_total);
    counter(b, "connections_rejected_total", "Connections refused at max_clients.", st->connections_rejected);
    counter(b, "requests_total", "Request lines handled.", st->requests);
    evbuffer_add_printf(b, "# HELP redlockd_acquire_total ACQUIREs answered, by result.\n"
                           "# TYPE redlockd_acquire_total counter\n"
                           "redlockd_acquire_total{result=\"ok\"} %llu\n"
                           "redlockd_acquire_total{result=\"busy\"} %llu\n"
                           "redlockd_acquire_total{result=\"noquorum\"} %llu\n"
                           "redlockd_acquire_total{result=\"error\"} %llu\n",
                        (unsigned long long)st->acquire_ok, (unsigned long long)st->acquire_busy,
                        (unsigned long long)st->acquire_noquorum, (unsigned long long)st->acquire_error);
    counter(b, "extend_ok_total", "Extensions that reached a majority.", st->extend_ok);
    counter(b, "extend_fail_total", "Extensions that did not.", st->extend_fail);
    counter(b, "release_total", "RELEASEs of known locks.", st->release_ok);
    counter(b, "lost_total", "EVENT LOST pushed to owners.", st->lost);
    counter(b, "auto_released_total", "Locks released because their connection closed.", st->auto_released);
    counter(b, "overload_pauses_total", "Times a client was not read for 1 ms because a majority of masters was behind.",
            st->overload_pauses);
    counter(b, "expired_total", "Locks whose validity ran out unreleased.", st->expired);
    counter(b, "handoffs_total", "Releases that woke a local waiter.", st->handoffs);
    counter(b, "auth_failures_total", "Failed AUTH attempts.", st->auth_failures);
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
    struct pool *p = rl_engine_pool(s->rl);
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
