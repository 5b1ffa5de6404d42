/*
 * conn.h - client connections: reading and framing request lines,
 * dispatching them, and writing replies strictly in request order.
 *
 * A request that cannot be answered at once (ACQUIRE, EXTEND, RELEASE go to
 * the masters) stays queued on its connection until the lock manager calls
 * conn_request_done(); replies behind it wait so that pipelined clients get
 * answers in order. Pushed events (EVENT LOST ...) bypass the queue.
 *
 * A connection is never freed inside one of its own callbacks' callees:
 * conn_close() marks it and the loop reaps it.
 */
#ifndef REDLOCKD_CONN_H
#define REDLOCKD_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "owner.h"
#include "proto.h"

struct server;
struct lock;

#define REQUEST_REPLY_MAX 256 /* a formatted reply line; longer ERR texts are cut */
/* Until a connection has authenticated (when auth_token_file is set), it is
 * held to small limits, so that one that never does costs next to nothing:
 * lines of at most PREAUTH_MAX_LINE bytes (AUTH and the longest token fit),
 * and at most PREAUTH_MAX_REQUESTS requests other than AUTH and QUIT, each
 * answered with an error; the last one's reply is followed by a close. */
#define PREAUTH_MAX_LINE 1024
#define PREAUTH_MAX_REQUESTS 8

struct request {
    TAILQ_ENTRY(request) link; /* in conn->pending */
    struct conn *conn;         /* NULL once the connection closed (freed when its op ends) */
    struct server *server;
    enum proto_verb verb;
    bool done;              /* answered; reply holds it until earlier replies are sent */
    struct lock_request lr; /* the lock core's view: its lock, TTL, start time (owner.h) */
    size_t reply_len;
    char *reply; /* a reply waiting behind unanswered requests, else NULL */
};

enum conn_state {
    CONN_OPEN,     /* reading requests */
    CONN_DRAINING, /* QUIT or TOOLONG: no more requests (input is read and dropped, to see
                     the client's close); close once replies are written */
    CONN_CLOSED,   /* socket closed, waiting to be reaped */
};

struct conn {
    struct server *server;
    uint64_t id; /* for logs */
    int fd;
    enum conn_state state;
    bool authed;          /* AUTH passed, or no auth configured */
    bool reading;         /* read event is added */
    bool flush_scheduled; /* write event activated for this loop turn */
    bool backlog;         /* in[] holds complete lines not handled yet (fairness, a limit, a pause) */
    bool quit;            /* the client sent QUIT: its locks are released at the close
                                     without lock_delay_ms (a clean goodbye) */
    struct event rev, wev;
    struct event pause;         /* resumes input after an AUTH failure's delay, an overload
                                     pause, or 0 ms: lines deferred to the next loop turn */
    struct event auth_deadline; /* closes a connection that does not AUTH in time */
    unsigned preauth_requests;  /* requests other than AUTH/QUIT while not authenticated */
    struct event stall;         /* while output backs up: is the peer reading at all? */
    uint64_t written_total;     /* bytes handed to the socket since the connection opened */
    uint64_t stall_consumed;    /* written_total minus the socket's queue at the last check */
    uint64_t stall_since_ms;    /* when stall_consumed last moved */
    unsigned auth_failures;
    char *in; /* partial request bytes; NULL when none */
    size_t in_len, in_cap;
    char *out;                        /* replies and events not yet written: */
    size_t out_off, out_len, out_cap; /* out[out_off..out_len) is unwritten */
    bool out_failed;                  /* an append ran out of memory: close at the flush */
    TAILQ_HEAD(, request) pending;    /* requests in arrival order, awaiting replies */
    unsigned npending;
    struct lock_owner lo;   /* the lock core's view: its locks and waiters (owner.h) */
    TAILQ_ENTRY(conn) link; /* in the server's list of connections */
};

/* Take ownership of an accepted socket. Returns NULL (and closes fd) on failure. */
struct conn *conn_new(struct server *s, int fd);
/* Close now: release the connection's locks, drop its waiters, close the
 * socket. The memory is reaped later by conn_reap_closed(). */
void conn_close(struct conn *c, const char *why);
/* Free connections closed since the last call (a safe point in the loop). */
void conn_reap_closed(struct server *s);
/* At exit, after the Redlock engine is gone: free requests still orphaned. */
void conn_free_orphans(struct server *s);
/* At exit: free the pool of reusable request objects. */
void conn_free_request_pool(void);

/* Answer a queued request (line ends in \r\n; a multi-line block may be
 * longer than REQUEST_REPLY_MAX). The lock core reaches it through
 * req->lr.ops->reply. */
void conn_request_done(struct request *req, const char *line, size_t len);
/* The connection that embeds o. */
static inline struct conn *conn_of_owner(const struct lock_owner *o)
{
    return (struct conn *)(void *)((char *)o - offsetof(struct conn, lo));
}
/* Shutdown: ask the lock manager (after mgr_shutdown()) to answer every
 * connection's queued ACQUIREs with ERR SHUTDOWN and to release the locks
 * of every open connection (EVENT LOST SHUTDOWN). */
void conn_shutdown_all(struct server *s);
/* The client token changed on reload (s->auth_token is the new one, NULL
 * when AUTH is now off). With a token, every open connection must AUTH
 * again: its next requests other than AUTH and QUIT get ERR AUTH, under
 * the pre-AUTH limits; its locks are kept. Without one, all are let in.
 * Logged. */
void conn_auth_changed(struct server *s);
/* Push an event line (ends in \r\n) to the connection, out of order. */
void conn_push_event(struct conn *c, const char *line, size_t len);

#endif
