/*
 * redlock.h - libredlock, the blocking C client of redlockd.
 *
 * One struct redlock_client is one connection to one redlockd. It is not
 * thread-safe: use one client per thread. Every call blocks until the
 * daemon answers (or the optional I/O timeout passes). Events the daemon
 * pushes (EVENT LOST ...) may arrive at any time; they are queued and
 * delivered to the event handler, if one is set, from inside whichever
 * call reads them, and can be polled with redlock_poll_events().
 *
 * Every call returning int returns REDLOCK_OK (0) or a negative
 * enum redlock_status; redlock_errstr() then says why in words (the
 * daemon's own text for daemon errors).
 */
#ifndef REDLOCK_H
#define REDLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REDLOCK_LIB_VERSION "0.1.0"
#define REDLOCK_DEFAULT_ADDR "/run/redlockd/redlockd.sock"
#define REDLOCK_LOCK_ID_LEN 32
/* wait_ms value for a try-lock: "WAIT 0", one attempt and no retries. */
#define REDLOCK_NOWAIT UINT32_MAX
/* The environment variable naming a file whose first line is the AUTH token. */
#define REDLOCK_TOKEN_FILE_ENV "REDLOCK_TOKEN_FILE"

enum redlock_status {
    REDLOCK_OK = 0,
    REDLOCK_ERR_BUSY = -1,      /* the lock is held elsewhere (after retries / WAIT) */
    REDLOCK_ERR_NOQUORUM = -2,  /* too few Redis masters answered */
    REDLOCK_ERR_NOTHELD = -3,   /* unknown, expired or lost lock id */
    REDLOCK_ERR_BADREQ = -4,    /* the daemon refused the request as malformed */
    REDLOCK_ERR_TOOLONG = -5,   /* request line too long; the daemon closed the connection */
    REDLOCK_ERR_LIMIT = -6,     /* a daemon limit was reached */
    REDLOCK_ERR_AUTH = -7,      /* authentication required or failed */
    REDLOCK_ERR_SHUTDOWN = -8,  /* the daemon is shutting down */
    REDLOCK_ERR_INTERNAL = -9,  /* the daemon reported an internal error */
    REDLOCK_ERR_IO = -20,       /* connect/read/write failed or connection closed */
    REDLOCK_ERR_PROTOCOL = -21, /* the daemon sent something this library cannot parse */
    REDLOCK_ERR_ARG = -22,      /* a bad argument to this library */
    REDLOCK_ERR_TIMEOUT = -23,  /* no answer within the client's I/O timeout */
    REDLOCK_ERR_LOST = -24,     /* redlock_using(): the lock was lost during the callback */
};

/* A lock as granted by the daemon. */
struct redlock_lock {
    char id[REDLOCK_LOCK_ID_LEN + 1]; /* NUL-terminated lock id */
    uint64_t validity_ms;             /* how long the lock is guaranteed: count it from when you
                                         called redlock_acquire()/redlock_extend(), or, with
                                         wait_ms, from when redlock_acquire() returned
                                         (PROTOCOL.md 8.2, "How a client counts the validity") */
    uint64_t fence;                   /* fencing token; 0 when the daemon sent none */
};

/* Options of redlock_acquire(); zero-initialise and set what you need. */
struct redlock_acquire_opts {
    uint32_t ttl_ms;     /* 0: the daemon's default_ttl_ms */
    uint32_t wait_ms;    /* 0: no WAIT (the daemon's retry_count applies);
                           * REDLOCK_NOWAIT: WAIT 0, a single attempt */
    uint32_t maxhold_ms; /* 0: the daemon's max_hold_ms (AUTOEXTEND only) */
    bool autoextend;     /* the daemon keeps extending while this connection lives */
    bool detach;         /* the lock outlives this connection (not with autoextend) */
    uint32_t priority;   /* 0: none */
    const char *owner;   /* NULL: none (re-entrant owner id) */
    bool shared;         /* SHARED: a reader of a read/write lock (not with priority, owner) */
    uint32_t permits;    /* 0: none; 1..1000: PERMITS n, one of at most n holders (one resource) */
};

/* An event pushed by the daemon. Strings live until the handler returns. */
struct redlock_event {
    const char *name;    /* "LOST", ... */
    const char *lock_id; /* the lock it is about */
    const char *reason;  /* e.g. "NOQUORUM", "TAKEN", "MAXHOLD", "EXPIRED" */
};

typedef void redlock_event_fn(const struct redlock_event *ev, void *userdata);

struct redlock_client;

/*
 * Connect to addr: "host:port", "[v6addr]:port", or a Unix socket path
 * (anything containing '/'). NULL uses $REDLOCK_ADDR, then
 * REDLOCK_DEFAULT_ADDR. Returns NULL on failure and, if err is not NULL,
 * writes why to err (errlen bytes).
 */
struct redlock_client *redlock_connect(const char *addr, char *err, size_t errlen);

/* Close the connection and free the client. NULL is fine. */
void redlock_close(struct redlock_client *c);

/* Bound every blocking read/write to timeout_ms (0 = wait for ever, the default).
 * A request that times out leaves the connection unusable (REDLOCK_ERR_TIMEOUT). */
void redlock_set_timeout(struct redlock_client *c, uint32_t timeout_ms);

/* Send AUTH <token>. */
int redlock_auth(struct redlock_client *c, const char *token);

/*
 * Send AUTH with the token read from the first line of the file at path
 * (the format of the daemon's auth_token_file). path NULL uses
 * $REDLOCK_TOKEN_FILE; when that is unset or empty too, nothing is sent and
 * REDLOCK_OK is returned. An unreadable or empty file is REDLOCK_ERR_ARG
 * (errstr names the file and why). The token is wiped from memory after use.
 */
int redlock_auth_file(struct redlock_client *c, const char *path);

int redlock_ping(struct redlock_client *c);

/*
 * ACQUIRE resources ("a" or "a,b,c": all or nothing) with opts (NULL for
 * defaults). On REDLOCK_OK fills *lock.
 */
int redlock_acquire(struct redlock_client *c, const char *resources, const struct redlock_acquire_opts *opts,
                    struct redlock_lock *lock);

/* EXTEND lock_id to ttl_ms (0 = the lock's own TTL). On REDLOCK_OK fills *lock if not NULL. */
int redlock_extend(struct redlock_client *c, const char *lock_id, uint32_t ttl_ms, struct redlock_lock *lock);

int redlock_release(struct redlock_client *c, const char *lock_id);

/*
 * Send one raw request line (without terminator) and copy the first reply
 * line (without terminator) to reply. For INFO and INSPECT, whose replies
 * span several lines, the whole block is copied, lines separated by '\n'.
 * Returns REDLOCK_OK when a reply was read, whatever it says.
 */
int redlock_command(struct redlock_client *c, const char *line, char *reply, size_t replylen);

/* Call fn for every event the daemon pushes (NULL to stop). */
void redlock_set_event_handler(struct redlock_client *c, redlock_event_fn *fn, void *userdata);

/*
 * Read and dispatch any pushed events, waiting up to timeout_ms for the
 * first (0 = just look). Returns the number of events handled, or a
 * negative status.
 */
int redlock_poll_events(struct redlock_client *c, uint32_t timeout_ms);

/* The socket, for poll()/select() by callers that multiplex. */
int redlock_fd(const struct redlock_client *c);

/* The last error in words, and its status. */
const char *redlock_errstr(const struct redlock_client *c);
int redlock_errcode(const struct redlock_client *c);

/* A status in words, e.g. "BUSY". */
const char *redlock_status_name(int status);

/* ---- Running code under a lock (the seeds' `using`) ---------------------- */

struct redlock_guard;

/* Inside redlock_using(): true while the lock is still held. It reads any
 * pending events without blocking, so call it between steps of the work,
 * as the seeds check signal.aborted. */
bool redlock_guard_held(struct redlock_guard *g);
/* The lock the callback runs under. */
const struct redlock_lock *redlock_guard_lock(const struct redlock_guard *g);

typedef int redlock_using_fn(struct redlock_guard *g, void *userdata);

/*
 * Acquire resources with AUTOEXTEND (opts may add WAIT, TTL, MAXHOLD), run
 * fn, release. Returns fn's return value if it is >= 0 and the lock was held
 * throughout; REDLOCK_ERR_LOST if the lock was lost while fn ran (fn's return
 * value is then discarded); or the acquire's error (fn not called).
 */
int redlock_using(struct redlock_client *c, const char *resources, const struct redlock_acquire_opts *opts,
                  redlock_using_fn *fn, void *userdata);

#ifdef __cplusplus
}
#endif
#endif
