/*
 * metrics.h - the optional HTTP endpoint ([metrics] listen): GET /metrics in
 * Prometheus text format and GET /healthz (200 while a majority of masters
 * is up, else 503). Also the acquire-latency histogram it reports.
 */
#ifndef REDLOCKD_METRICS_H
#define REDLOCKD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct server;

/* Start serving on cfg.metrics_listen (no-op when empty). Returns 0, or -1
 * with the reason in err. */
int metrics_open(struct server *s, char *err, size_t errlen);
void metrics_close(struct server *s);

/* Record one granted ACQUIRE's latency, from request to reply. */
void metrics_observe_acquire(uint64_t micros);

#endif
