/*
 * redis_pool.h - one async hiredis connection per Redis master, on the
 * daemon's libevent loop. The only module that includes hiredis.
 *
 * Commands are queued on a master's connection and hiredis writes them all
 * in one write per loop turn, so every client's commands to one master are
 * pipelined together. Each command carries a caller tag (0 = fire and
 * forget); every reply, including "no reply" when the connection dropped,
 * reaches the single reply handler given to pool_new() exactly once.
 *
 * A master is usable only after its handshake (AUTH, SCRIPT LOAD, INFO)
 * answered. A master that stops answering (a reply overdue by stall_ms) is
 * disconnected; dead masters are reconnected with exponential backoff.
 * Nothing here ever blocks the loop.
 */
#ifndef REDLOCKD_REDIS_POOL_H
#define REDLOCKD_REDIS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct pool;

/* The Lua scripts the daemon runs (see redis_pool.c for their text). */
enum pool_script {
    SCRIPT_ACQUIRE_MULTI,  /* all-or-nothing SET NX PX of several keys */
    SCRIPT_EXTEND,         /* compare-and-pexpire; re-sets keys a master forgot */
    SCRIPT_RELEASE,        /* compare-and-delete */
    SCRIPT_INSPECT,        /* "<pttl> <value>" of a key, or "" when absent */
    SCRIPT_ACQUIRE_FENCED, /* all-or-nothing SET NX PX, returning the next fence (-1: none) */
    SCRIPT_FENCE_RAISE,    /* raise fence counters to at least a value */
    SCRIPT_HANDOFF,        /* compare-and-swap the token to the next holder; fleet: may yield */
    SCRIPT_ACQUIRE_FLEET,  /* SET NX PX of one key honouring reservations; registers a refused waiter */
    SCRIPT_UNREGISTER,     /* take this daemon out of a key's waiter registry */
    SCRIPT_SHARED_ACQUIRE, /* admit a SHARED / PERMITS holder into the keys' holder hashes */
    SCRIPT_SHARED_EXTEND,  /* renew (or re-admit) a holder's entries */
    SCRIPT_SHARED_RELEASE, /* remove a holder's entries; delete a key left with none */
    SCRIPT_WRITER_WAIT,    /* an exclusive waiter marks shared keys "<key>,wwait" */
    SCRIPT__COUNT
};

/* The Lua text of a script (what EVAL would run; the pool sends EVALSHA), or
 * NULL past the end. For the test that memstore.c agrees with the scripts. */
const char *pool_script_text(enum pool_script script);

/*
 * The largest fence counter a master may hold and still vote for a fence:
 * 2^53 - 1, the largest integer the scripts' Lua numbers (doubles) tell
 * apart from the next one (2^53 + 1 reads as 2^53), and far below INCR's
 * overflow at 2^63 - 1. A counter above it, or one INCR cannot increment,
 * is exhausted or was written by something else: the fenced scripts still
 * take the lock on that master but answer -1 (no fence), and the engine
 * ignores such a master's fence. The scripts spell this number out in Lua;
 * see PROTOCOL.md section 8.4.
 */
#define POOL_FENCE_MAX 9007199254740991 /* no suffix: the scripts use its digits */

/* Fleet waiting (PROTOCOL.md 8.7): the hand-off script answers this
 * when it yielded the key to another daemon's waiters instead. */
#define POOL_YIELDED (-2)
/* A daemon's node id: this many lowercase hex digits, random per run. */
#define POOL_NODE_ID_LEN 16
/* At most this many daemons in one key's waiter registry (more wait unregistered). */
#define POOL_REGISTRY_MAX 64

/* A reply, copied out of hiredis so nothing outlives the callback. */
enum pool_reply_kind {
    POOL_REPLY_NONE,    /* no reply: disconnected or master not usable */
    POOL_REPLY_OK,      /* +OK or another status */
    POOL_REPLY_NIL,     /* nil (e.g. SET NX found the key) */
    POOL_REPLY_INTEGER, /* :n */
    POOL_REPLY_STRING,  /* bulk string */
    POOL_REPLY_ERROR,   /* -ERR ..., -READONLY ..., -OOM ... */
    POOL_REPLY_OTHER,   /* an unexpected type (array, ...) */
};

struct pool_reply {
    enum pool_reply_kind kind;
    long long integer; /* POOL_REPLY_INTEGER */
    const char *str;   /* STRING / ERROR text, valid during the callback only */
    size_t len;
};

/* Called once per tagged command. master is the master's index. */
typedef void pool_reply_fn(void *userdata, size_t master, uintptr_t tag, const struct pool_reply *reply);

/* Master states, reported by INFO and logged on change. */
enum master_state {
    MASTER_CONNECTING, /* TCP connect or handshake in progress */
    MASTER_UP,         /* handshake answered: votes count */
    MASTER_DOWN,       /* disconnected; reconnect scheduled */
};

struct master_status {
    const char *addr; /* "host:port" */
    enum master_state state;
    const char *last_error; /* "" when none */
    uint64_t latency_us;    /* smoothed round-trip time */
    uint64_t pending;       /* commands awaiting replies */
    uint64_t quarantine_ms; /* restarted: ms left before its vote counts again */
    uint64_t restarts;      /* restarts (run_id changes) seen */
    uint32_t same_as;       /* 1 + index of another entry reaching the same server; 0 = none */
};

/* Fleet waiting: a master published "<node> <key>" on "<key_prefix>,wake":
 * the lock key was released or yielded and is reserved for node's waiter.
 * msg is valid during the call only; every master sends its own. */
typedef void pool_wake_fn(void *userdata, size_t master, const char *msg, size_t len);

/* Create the pool and start connecting to every master in cfg (copied).
 * With on_wake and [lock] fleet_waiting, a second connection per master
 * subscribes to "<key_prefix>,wake" (reconnected with backoff; its input is
 * bounded like the command connection's, and unexpected replies are
 * ignored). Returns NULL on allocation failure. */
struct pool *pool_new(struct event_base *base, const struct config *cfg, pool_reply_fn *on_reply,
                      pool_wake_fn *on_wake, void *userdata);
/* Disconnect everything; pending commands get POOL_REPLY_NONE. */
void pool_free(struct pool *p);

size_t pool_size(const struct pool *p);
/* Commands sent to any master and not yet answered. */
uint64_t pool_pending(const struct pool *p);
/* Commands still unanswered by the least busy majority of masters. */
uint64_t pool_backlog(const struct pool *p);
/* Votes needed for a majority: N/2 + 1. */
size_t pool_quorum(const struct pool *p);
/* Masters currently UP. */
size_t pool_up_count(const struct pool *p);
bool pool_master_usable(const struct pool *p, size_t master);
/*
 * False while a master's replies must not count as votes:
 *  - it restarted (its run_id changed) less than max_ttl_ms ago, so it may
 *    have lost locks that are still valid; or, first met by this pool, it
 *    is younger than max_ttl_ms (INFO uptime_in_seconds) and does not hold
 *    the marker "<key_prefix>,epoch" with its own run_id -- unless no
 *    master had the marker at all (a new deployment). Such a master is
 *    quarantined until its uptime passes max_ttl_ms. Every voting master
 *    gets the marker. PROTOCOL.md 8.5 argues the rule.
 *  - another entry of the list reaches the same server (same run_id).
 */
bool pool_master_votes(const struct pool *p, size_t master);
/* Apply a reloaded config's max_ttl_ms, key_prefix (the marker key, the
 * wake channel) and fleet_waiting (subscribers on or off). */
void pool_configure(struct pool *p, const struct config *cfg);
void pool_master_status(const struct pool *p, size_t master, struct master_status *out);

/*
 * Queue one command on a master. Returns 0 when queued (the handler will be
 * called for tag != 0), or -1 when the master is not usable (no callback).
 */
int pool_command(struct pool *p, size_t master, uintptr_t tag, int argc, const char **argv,
                 const size_t *argvlen);

/* Run a script: EVALSHA once its SHA is known, else EVAL. keys[] and args[]
 * as (pointer, length) pairs. Same return as pool_command(). */
int pool_script(struct pool *p, size_t master, uintptr_t tag, enum pool_script script, size_t nkeys,
                const char *const *keys, const size_t *keylens, size_t nargs, const char *const *args,
                const size_t *arglens);

#endif
