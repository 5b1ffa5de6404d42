/*
 * lockmgr.h - what happens to a lock over its life: Redlock attempts and
 * retries, waiting in FIFO queues with hand-off on release, expiry,
 * AUTOEXTEND with EVENT LOST, MAXHOLD, and release when the owning
 * connection closes.
 *
 * The lock core knows nothing of connections: it answers requests and
 * reaches owners through the callbacks of owner.h, talks to the masters
 * through a struct mgr_engine, and reads the time from it. The daemon uses
 * mgr_engine_redlock (the Redlock engine, CLOCK_MONOTONIC); a unit test
 * sets server.engine to a fake and drives every decision without I/O.
 */
#ifndef REDLOCKD_LOCKMGR_H
#define REDLOCKD_LOCKMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owner.h"
#include "proto.h"
#include "redlock_engine.h"
#include "server.h"

/* What the lock manager needs of the masters and the clock. */
struct mgr_engine {
    /* Start one Redlock op (rl_start()): done(ctx, outcome) runs once,
     * later, from the loop; done NULL: fire and forget. 0, or -1 when out
     * of memory (done is then never called). */
    int (*start)(struct server *s, enum rl_kind kind, const struct rl_target *t, rl_done_fn *done, void *ctx);
    unsigned (*masters)(struct server *s); /* masters configured (N) */
    uint64_t (*backlog)(struct server *s); /* commands queued to the masters */
    uint64_t (*now_ms)(void);              /* a monotonic clock in ms */
    /* Where ACQUIRE outcomes are reported (the /metrics histogram and
     * /healthz), or NULL: a granted ACQUIRE's latency in µs; a failed one,
     * daemon_side for NOQUORUM (no decision with a majority), false for a
     * BUSY that the masters decided. */
    void (*acquired)(uint64_t micros);
    void (*acquire_failed)(bool daemon_side);
};

/* The real engine: s->rl and now_ms(), reporting nothing. Used when
 * s->engine is NULL; main.c adds the metrics hooks to a copy. */
extern const struct mgr_engine mgr_engine_redlock;

/* Start an ACQUIRE; the reply comes later through req->ops->reply(). */
void mgr_acquire(struct server *s, struct lock_request *req, const struct proto_request *pr);
/* EXTEND / RELEASE of a HELD lock by id; answered through req->ops->reply(). */
void mgr_extend(struct server *s, struct lock_request *req, const struct proto_request *pr);
void mgr_release(struct server *s, struct lock_request *req, const struct proto_request *pr);

/* The client of an unanswered ACQUIRE went away: forget the request
 * (a lock granted later is released at once). req is not answered. */
void mgr_cancel_acquire(struct server *s, struct lock_request *req);

/* Release every connection-bound lock o holds (compare-and-delete on the
 * masters, from the locks' timers) and wake the waiters behind them; its
 * DETACHed locks live on to their TTL. o's lists are empty afterwards.
 * With [lock] lock_delay_ms, unless quit (the client said QUIT: a clean
 * goodbye), each lock is instead kept, owned by nobody, until the delay or
 * its validity ends, whichever comes first (PROTOCOL.md 6.1). */
void mgr_conn_closed(struct server *s, struct lock_owner *o, bool quit);

/*
 * Shutdown, in three steps driven by the layer that knows the clients
 * (conn.c's conn_shutdown_all()):
 *   mgr_shutdown(s): from now on every attempt ends with ERR SHUTDOWN, and
 *     the locks of connections already closed are released now;
 *   mgr_shutdown_request(s, req) for each unanswered ACQUIRE: answered
 *     ERR SHUTDOWN unless its attempt is in flight (which sees the flag);
 *   mgr_shutdown_owner(s, o) for each open client: its locks are lost
 *     (EVENT LOST SHUTDOWN) and released.
 * DETACHed locks are left to their TTL.
 */
void mgr_shutdown(struct server *s);
void mgr_shutdown_request(struct server *s, struct lock_request *req);
void mgr_shutdown_owner(struct server *s, struct lock_owner *o);

/* Fleet waiting: a master published "<node> <key>": the lock key (key_prefix
 * + resource) was released or yielded and reserved for node. When node is
 * this daemon, the first local waiter for it, if any, attempts now instead
 * of at its next poll (or right after the attempt it has in flight).
 * Duplicates (one per master) are harmless; other messages are ignored. */
void mgr_fleet_wake(struct server *s, const char *msg, size_t len);

/* Free every lock (at exit, after the shutdown steps). */
void mgr_free_all(struct server *s);

#endif
