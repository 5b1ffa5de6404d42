/*
 * owner.h - how the lock core (lockmgr.c, inspect.c) reaches the clients it
 * serves, without knowing what a client is: a small interface of callbacks
 * that a connection (struct lock_owner) and a request (struct lock_request)
 * embed, and conn.c implements. The lock core includes this, never conn.h.
 */
#ifndef REDLOCKD_OWNER_H
#define REDLOCKD_OWNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct lock;
struct lock_owner;
struct lock_request;

struct lock_owner_ops {
    /* Answer r with one reply (a line ending in \r\n, or a multi-line
     * block). Exactly once per request; r may be freed by the call. */
    void (*reply)(struct lock_request *r, const char *line, size_t len);
    /* Push an event line (ends in \r\n) to o, out of request order. */
    void (*push_event)(struct lock_owner *o, const char *line, size_t len);
};

/* A client as the lock core sees it: the locks it holds, counted against
 * its limits. Embedded in struct conn; the lock core keeps the lists. */
struct lock_owner {
    const struct lock_owner_ops *ops;
    LIST_HEAD(, lock) locks; /* connection-bound locks it holds */
    unsigned nlocks;
    LIST_HEAD(, lock) detached; /* DETACHed locks it took that are still held */
    unsigned ndetached;         /* ... counted with nlocks against max_locks_per_client */
    unsigned nwaiting;          /* its ACQUIREs queued behind others (max_waiters_per_client) */
    unsigned nacquiring;        /* its ACQUIREs not answered yet, counted with nlocks and
                                   ndetached against max_locks_per_client, so that a
                                   pipeline of ACQUIREs cannot overshoot the limit */
};

/* A request waiting for the lock core's answer. Embedded in struct request. */
struct lock_request {
    const struct lock_owner_ops *ops; /* how it is answered */
    struct lock_owner *owner;         /* who asked; NULL once it went away */
    struct lock *lock;                /* the lock it acquires (ACQUIRE) or works on (EXTEND/RELEASE) */
    uint32_t ttl_ms;                  /* EXTEND's TTL */
    uint64_t started_us;              /* when it arrived, for the acquire latency histogram */
    uint64_t validity_end_ms;         /* answered "OK <id> <validity> ...": when that validity
                                         ends (monotonic ms), so that a reply written later,
                                         behind earlier ones, reports what is left then; 0: none */
};

/* Initialise an owner with no locks. */
static inline void lock_owner_init(struct lock_owner *o, const struct lock_owner_ops *ops)
{
    o->ops = ops;
    LIST_INIT(&o->locks);
    o->nlocks = 0;
    LIST_INIT(&o->detached);
    o->ndetached = 0;
    o->nwaiting = 0;
    o->nacquiring = 0;
}

#endif
