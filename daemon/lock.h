/*
 * lock.h - the daemon's locks and the resources they name.
 *
 * A struct lock is one ACQUIRE from its first attempt until it is released,
 * expires or is lost: the same object carries the waiting state while it is
 * ACQUIRING and the lease while it is HELD. Locks are found by id in the
 * lock table; resources by key in the resource table. A resource entry
 * exists while any lock names it and records the local holder and the FIFO
 * of local waiters, which is what lets a release hand the resource straight
 * to the next waiter.
 *
 * This module only keeps the tables; lockmgr.c decides what happens.
 */
#ifndef REDLOCKD_LOCK_H
#define REDLOCKD_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "proto.h"
#include "table.h"
#include "timer.h"

struct lock_owner;
struct lock_request;
struct server;

/* A lock's life: ACQUIRING -> HELD -> DEAD, or ACQUIRING -> DEAD. Only
 * lockmgr.c's lock_set_state() changes it (see there what each move does). */
enum lock_state {
    LOCK_ACQUIRING, /* attempting, or queued behind a holder; lock->req awaits the answer
                       (NULL once its client went; the lock then ends with its op) */
    LOCK_HELD,      /* granted: in the lock table, holder of its resources, on its owner's list */
    LOCK_DEAD,      /* released, expired or lost; freed once nothing refers to it */
};

#define LOCK_F_DETACH (1u << 0)     /* outlives its connection */
#define LOCK_F_AUTOEXTEND (1u << 1) /* the daemon extends it while the owner lives */
#define LOCK_F_ORPHANED (1u << 2)   /* its owner closed: released on its timer's next turn */
#define LOCK_F_DELAYED \
    (1u << 3)                    /* ORPHANED under lock_delay_ms: kept, owned by nobody, until
                                       validity_end_ms (then released); local waiters wait */
#define LOCK_F_SHORTEN (1u << 4) /* DELAYED: its keys' TTL is still to be cut to the delay */

/* A lock's mode (PROTOCOL.md 8.8): exclusive, a reader of a read/write
 * lock, or one of at most n holders of a semaphore. */
enum lock_mode {
    LOCK_EXCLUSIVE = 0,
    LOCK_SHARED,
    LOCK_PERMITS,
};

struct resource {
    struct table_node node;     /* in the resource table, keyed by key */
    struct lock *holder;        /* the HELD local exclusive lock on it, or NULL */
    unsigned nshared;           /* HELD local SHARED / PERMITS locks on it */
    uint8_t shared_mode;        /* their enum lock_mode (while nshared > 0) */
    uint32_t shared_permits;    /* ... and their n (LOCK_PERMITS) */
    TAILQ_HEAD(, lock) waiters; /* ACQUIRING locks queued on it, first come first */
    unsigned refs;              /* locks naming it */
    unsigned prefix_len;        /* the key_prefix part of key (its fence counter's key) */
    uint32_t streak;            /* fleet waiting: local hand-offs in a row since a grant by a fresh attempt */
    bool registered;            /* fleet waiting: this daemon may be in the key's waiter registry */
    size_t keylen;
    char key[]; /* key_prefix + resource name (not NUL-terminated) */
};

/* The fence counter of a key prefix is one key per master: the prefix plus
 * this. Resource names are never empty and cannot contain ',', so no lock
 * key can equal it. One counter for all resources, not one per resource:
 * the masters' key count stays bounded however many resources are used. */
#define LOCK_FENCE_SUFFIX ",fence"
#define LOCK_FENCE_SUFFIX_LEN 6

struct lock {
    struct table_node node;         /* in the lock table while HELD, keyed by id */
    char id[PROTO_LOCK_ID_LEN + 1]; /* the token stored in Redis; the client's lock id */
    enum lock_state state;
    unsigned flags;            /* LOCK_F_* */
    uint32_t ttl_ms;           /* TTL asked for, reused by EXTEND without one */
    uint64_t acquired_ms;      /* when granted (monotonic) */
    uint64_t validity_end_ms;  /* the validity promised to the client ends here */
    uint64_t maxhold_end_ms;   /* AUTOEXTEND stops here; 0 = never */
    uint64_t wait_deadline_ms; /* ACQUIRING: give up at this time */
    uint64_t created_ms;       /* when the ACQUIRE came (fleet waiting: the waiter's age) */
    bool via_handoff;          /* ACQUIRING: the attempt in flight is a hand-off */
    bool fleet_woken;          /* ACQUIRING: a wake-up came while an attempt was in flight */
    unsigned attempts;         /* ACQUIRING: Redlock attempts made */
    unsigned max_attempts;     /* ACQUIRING: attempts allowed (UINT_MAX with WAIT) */
    int last_result;           /* ACQUIRING: enum rl_result of the last attempt */
    unsigned last_granted, last_answered;
    bool extending;          /* an AUTOEXTEND extension is in flight */
    uint8_t last_bad_fences; /* ACQUIRING: masters whose fence counter failed the last attempt */
    struct server *server;
    struct lock_owner *owner;         /* connection-bound owner; NULL when detached */
    LIST_ENTRY(lock) owner_link;      /* in owner->locks */
    struct lock_owner *creator;       /* DETACH: the connection that took it, while it is open */
    LIST_ENTRY(lock) creator_link;    /* in creator->detached */
    struct lock_owner *queued_by;     /* queued: the connection its waiter slot is counted against */
    struct lock_request *req;         /* ACQUIRING: the ACQUIRE waiting for this lock */
    struct lock_request *handoff_req; /* ACQUIRING: the RELEASE whose key is being handed to us */
    struct resource *waiting_on;      /* ACQUIRING: queue it sits in, or NULL */
    TAILQ_ENTRY(lock) wait_link;      /* in waiting_on->waiters */
    unsigned ops;                     /* Redlock ops in flight that refer to this lock */
    struct timer timer;               /* retry/deadline, expiry or extension timer */
    LIST_ENTRY(lock) all_link;        /* in lock_tables.all, from lock_new to lock_free */
    uint64_t fence;                   /* the fence handed out with it, 0 when none */
    char *owner_id;                   /* OWNER given at ACQUIRE (owned copy), or NULL */
    uint32_t holds;                   /* re-entrant holds by owner_id; released at 0 */
    uint32_t priority;                /* PRIORITY: preempts holders of lower priority; 0 = none */
    uint8_t mode;                     /* enum lock_mode */
    uint32_t permits;                 /* LOCK_PERMITS: n */
    size_t nres;
    struct resource *res[]; /* the resources, in request order */
};

struct lock_tables {
    struct table locks;     /* HELD locks by id */
    struct table resources; /* resource entries by key */
    LIST_HEAD(, lock) all;  /* every lock in any state, so teardown can free them */
};

void lock_tables_init(struct lock_tables *t);
void lock_tables_destroy(struct lock_tables *t);

/*
 * A new ACQUIRING lock on names[0..n), each prefixed with prefix, with a
 * fresh random id. Resource entries are found or created and referenced.
 * Returns NULL when out of memory or randomness.
 */
struct lock *lock_new(struct lock_tables *t, const char *prefix, const struct proto_slice *names, size_t n);
/* Drop the lock's resource references and free it. It must be out of the
 * lock table and every queue. */
void lock_free(struct lock_tables *t, struct lock *lk);

/* The HELD lock with this id, or NULL. */
struct lock *lock_find(struct lock_tables *t, const char *id, size_t len);
/* The resource entry for this key, or NULL. */
struct resource *resource_find(struct lock_tables *t, const char *key, size_t len);

#endif
