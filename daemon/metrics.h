/*
 * metrics.h - the optional HTTP endpoint ([metrics] listen): GET /metrics in
 * Prometheus text format and GET /healthz (200 while the daemon can grant
 * locks: a majority of masters up and voting, and not a run of ACQUIREs that
 * all failed NOQUORUM; else 503). Also the acquire-latency histogram it
 * reports. Bounded: see metrics.c for the limits on HTTP connections.
 */
#ifndef REDLOCKD_METRICS_H
#define REDLOCKD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;

/* Start serving on cfg.metrics_listen (no-op when empty). Returns 0, or -1
 * with the reason in err. */
int metrics_open(struct server *s, char *err, size_t errlen);
void metrics_close(struct server *s);

/* Record one granted ACQUIRE's latency, from request to reply. */
void metrics_observe_acquire(uint64_t micros);

/* Record an ACQUIRE that failed: daemon_side for NOQUORUM (the daemon could
 * not reach a decision with a majority), false for BUSY (it could: the
 * resource is held). /healthz turns 503 after a run of daemon-side failures
 * with no grant or BUSY between them (see metrics.c). */
void metrics_note_acquire_failure(bool daemon_side);

#endif
