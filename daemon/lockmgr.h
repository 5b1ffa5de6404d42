/*
 * lockmgr.h - what happens to a lock over its life: Redlock attempts and
 * retries, waiting in FIFO queues with hand-off on release, expiry,
 * AUTOEXTEND with EVENT LOST, MAXHOLD, and release when the owning
 * connection closes. Replies go back through conn_request_done().
 */
#ifndef REDLOCKD_LOCKMGR_H
#define REDLOCKD_LOCKMGR_H

#include "conn.h"
#include "proto.h"
#include "server.h"

/* Start an ACQUIRE; the reply comes later through conn_request_done(). */
void mgr_acquire(struct server *s, struct request *req, const struct proto_request *pr);
void mgr_extend(struct server *s, struct request *req, const struct proto_request *pr);
void mgr_release(struct server *s, struct request *req, const struct proto_request *pr);

/* The connection of an unanswered ACQUIRE closed: forget the request
 * (a lock granted later is released at once). */
void mgr_cancel_acquire(struct server *s, struct request *req);

/* Release every connection-bound lock c holds (compare-and-delete on the
 * masters) and wake the waiters behind them. */
void mgr_conn_closed(struct server *s, struct conn *c);

/* Shutdown: answer every queued ACQUIRE with ERR SHUTDOWN and release all
 * connection-bound and AUTOEXTEND locks. DETACHed locks are left to their TTL. */
void mgr_shutdown(struct server *s);

/* Free every lock (at exit, after mgr_shutdown). */
void mgr_free_all(struct server *s);

#endif
