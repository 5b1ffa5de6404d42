/*
 * redlock_engine.h - the Redlock algorithm over the pool's masters.
 *
 * One op is one attempt of ACQUIRE, EXTEND or RELEASE: its command goes to
 * every master at once, votes are counted as replies arrive, and the op is
 * decided as soon as the outcome is certain or master_timeout_ms passed.
 * The done callback runs exactly once, from the event loop, never from
 * inside rl_start(). Retries, waiting and clean-up after a failed acquire
 * are the caller's (lock manager's) business.
 */
#ifndef REDLOCKD_REDLOCK_ENGINE_H
#define REDLOCKD_REDLOCK_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_pool.h"

struct event_base;
struct rl_engine;

enum rl_kind {
    RL_ACQUIRE,
    RL_EXTEND,
    RL_RELEASE,
    RL_INSPECT,    /* read-only: each master's value and PTTL of keys[0] */
    RL_FENCE,      /* raise the fence counter keys[nkeys] to at least t->fence */
    RL_HANDOFF,    /* one key from t->old_token straight to t->token (counted like ACQUIRE) */
    RL_UNREGISTER, /* fleet waiting: take t->node out of keys[0]'s waiter registry (done NULL only) */
    RL_MARK,       /* fire and forget: an exclusive waiter marks shared keys (t->ttl_ms long) */
};

enum rl_result {
    RL_OK,        /* ACQUIRE/EXTEND: a majority granted and validity > 0; RELEASE: sent */
    RL_BUSY,      /* ACQUIRE: a majority answered but too few granted */
    RL_NOQUORUM,  /* too few masters answered in time */
    RL_TOOSLOW,   /* a majority granted, but after the TTL's validity was used up */
    RL_TAKEN,     /* EXTEND: a master holds a key with another token */
    RL_PREEMPTED, /* EXTEND: ... and that holder has a higher priority */
    RL_BADFENCE,  /* fenced ACQUIRE: a majority granted, but fewer than a majority of fence
                    counters could give a fence (exhausted, or not written by redlockd), or
                    the fence would have to be raised above 2^52 (PROTOCOL.md 8.4) */
};

struct rl_outcome {
    enum rl_result result;
    unsigned granted;       /* masters that took / extended / deleted */
    unsigned answered;      /* masters that answered in time (granted or refused) */
    unsigned total;         /* masters configured */
    uint64_t validity_ms;   /* RL_OK of ACQUIRE/EXTEND: ttl - elapsed - drift */
    uint64_t started_ms;    /* CLOCK_MONOTONIC ms when this attempt was first sent */
    uint64_t fence;         /* fenced ACQUIRE: the fence a majority vouches for (PROTOCOL.md 8.4) */
    bool fence_agreed;      /* ... no granting master gave less: no counter needs raising */
    unsigned bad_fences;    /* RL_BADFENCE: granting masters whose counters could not give it */
    unsigned yielded;       /* RL_HANDOFF: masters that yielded the key to another daemon's waiters
                             (counted as refusals; PROTOCOL.md 8.7) */
    char mode_conflict[32]; /* shared ACQUIRE: a master holds the key in this other mode
                               ("shared", "permits <n>"), "" when none said so */
};

typedef void rl_done_fn(void *ctx, const struct rl_outcome *outcome);
/* RL_INSPECT: called with each master's reply as it arrives (reply->kind
 * POOL_REPLY_STRING "<pttl> <value>" or "" when the key is absent). */
typedef void rl_each_fn(void *ctx, size_t master, const struct pool_reply *reply);

/* What an op works on. Everything is copied into the masters' output
 * buffers by rl_start(), so the caller's memory need not outlive it. */
struct rl_target {
    const char *const *keys; /* full Redis keys (prefix + resource), then keys[nkeys]: the
                                fence counter (ACQUIRE and HANDOFF when fenced, RL_FENCE) */
    const size_t *keylens;
    size_t nkeys;      /* lock keys (not counting the fence counter) */
    const char *token; /* PROTO_LOCK_ID_LEN hex chars */
    uint32_t ttl_ms;
    bool fenced;              /* ACQUIRE, HANDOFF: also hand out a fence */
    uint32_t priority;        /* ACQUIRE, EXTEND: the lock's priority, 0 = none */
    uint64_t fence;           /* RL_FENCE: the value to raise the counters to */
    const char *old_token;    /* RL_HANDOFF: the releasing holder's token */
    const char *const *known; /* ACQUIRE with priority: per lock key, the token of this
                                daemon's own holder that the lock may preempt, or NULL
                                (NULL array: none). Proof that redlockd wrote the key. */
    /* Fleet waiting (PROTOCOL.md 8.7), NULL node: off. ACQUIRE of one key
     * without priority: honour reservations, register when refused. HANDOFF: may
     * yield to another node's older waiters. RELEASE: reserve for and wake the
     * registered (shared: those older than wait_age_ms). UNREGISTER: drop
     * node's entry. */
    const char *node;         /* this daemon's node id (POOL_NODE_ID_LEN hex) */
    const char *wake_channel; /* "<key_prefix>,wake" */
    size_t wake_channel_len;
    uint64_t wait_age_ms; /* HANDOFF, shared ACQUIRE: how long the local waiter has waited;
                             shared RELEASE: the oldest local waiter of the key (0: none) */
    uint32_t streak;      /* HANDOFF: consecutive local hand-offs of the key before this one */
    uint32_t streak_max;  /* HANDOFF: at this streak, yield to any registered node */
    uint32_t registry_ms; /* a registration lasts this long unless refreshed */
    uint32_t reserve_ms;  /* a reservation for a woken node lasts this long */
    const char *mode;     /* ACQUIRE, EXTEND, RELEASE: NULL for an exclusive lock, else
                                "shared" or "permits <n>" (the holder-hash scripts) */
    uint32_t limit;       /* ... PERMITS n (0: SHARED, no limit) */
};

/* Grants a PERMITS n lock needs out of N masters: the smallest q with
 * (n + 1) q > n N, and at least a majority (PROTOCOL.md 8.8). */
unsigned rl_permits_quorum(unsigned n, unsigned total);

struct rl_engine *rl_engine_new(struct event_base *base, const struct config *cfg);
/* Fleet waiting: fn(ctx, msg, len) for each wake-up message of a master
 * ("<node> <key>": a key released and reserved for node's waiter). */
typedef void rl_wake_fn(void *ctx, const char *msg, size_t len);
void rl_engine_set_wake(struct rl_engine *e, rl_wake_fn *fn, void *ctx);
void rl_engine_free(struct rl_engine *e);
struct pool *rl_engine_pool(struct rl_engine *e);
/* Ops started and not yet decided (shutdown waits for releases to go out). */
unsigned rl_engine_inflight(const struct rl_engine *e);
/* Apply new timing settings (master_timeout_ms, drift_factor) on reload. */
void rl_engine_configure(struct rl_engine *e, const struct config *cfg);
/* Reload with a different master list: new ops go to a new pool; the old
 * one finishes the ops already counting its votes and is then freed.
 * Returns 0, or -1 (old masters kept) when out of memory. */
int rl_engine_set_masters(struct rl_engine *e, const struct config *cfg);

/*
 * Start an attempt. done(ctx, outcome) runs once when it is decided; done may
 * be NULL for fire-and-forget (clean-up deletes). Returns 0, or -1 when out
 * of memory (done is then not called).
 */
int rl_start(struct rl_engine *e, enum rl_kind kind, const struct rl_target *t, rl_done_fn *done, void *ctx);
/* RL_INSPECT of t->keys[0]: each(ctx, ...) per answering master, then done
 * once every master answered or the deadline passed. */
int rl_inspect(struct rl_engine *e, const struct rl_target *t, rl_each_fn *each, rl_done_fn *done, void *ctx);

/*
 * The vote arithmetic of one attempt, without I/O: what a test can drive.
 * struct rl_votes is the count of the masters' answers so far; rl_decide()
 * says whether the outcome is certain and which it is.
 */
struct rl_votes {
    enum rl_kind kind;
    unsigned total;                /* masters configured (N) */
    unsigned quorum;               /* N/2 + 1 (Q) */
    unsigned need;                 /* grants needed when above Q (PERMITS), else 0: Q */
    unsigned sent;                 /* masters the command went to */
    unsigned replied;              /* any reply, including errors and non-voting masters */
    unsigned granted;              /* voting masters that took / extended / deleted */
    unsigned refused;              /* voting masters that answered no (another token) */
    bool preempted;                /* EXTEND: some refusal was a higher priority's */
    bool fenced;                   /* ACQUIRE/HANDOFF hands out a fence */
    unsigned fence_answers;        /* granting masters whose fence reply came */
    unsigned fences;               /* ... usable fences among them */
    unsigned bad_fences;           /* ... unusable ones */
    uint64_t fence_min, fence_max; /* over the usable fences */
};

enum rl_verdict {
    RL_V_WAIT,      /* not certain yet: wait for more answers or the deadline */
    RL_V_GRANTED,   /* a majority granted (and gave fences when fenced): the caller
                       computes the validity (OK or TOOSLOW) and chooses the fence */
    RL_V_TAKEN,     /* EXTEND: more than N-Q masters hold other tokens */
    RL_V_PREEMPTED, /* ... and one of them has a higher priority */
    RL_V_BADFENCE,  /* a majority granted, but too few counters could give a fence */
    RL_V_BUSY,      /* every answer is in (or final): a majority answered, some refused */
    RL_V_NOQUORUM,  /* every answer is in (or final): too few masters answered */
    RL_V_DONE,      /* RELEASE, INSPECT: enough answers */
};

/* Decide an attempt from its votes; final: the deadline passed, nothing
 * more will come. Pure: reads only v. Requires quorum <= total, and the
 * counts consistent (granted + refused <= replied <= sent <= total). */
enum rl_verdict rl_decide(const struct rl_votes *v, bool final);

/*
 * The fence of a granted fenced attempt with v->fences >= v->quorum usable
 * fences (PROTOCOL.md 8.4): the k-th largest, k = fences + Q - N. votes
 * holds the v->fences usable fences (it is sorted in place), or is NULL
 * when they all equal v->fence_max (or there was no memory to keep them).
 * Sets out->fence and out->fence_agreed (no usable fence below it: no raise
 * needed), or out->result = RL_BADFENCE and out->bad_fences when the
 * counters would have to be raised above max_raise.
 */
void rl_choose_fence(uint64_t *votes, const struct rl_votes *v, uint64_t max_raise, struct rl_outcome *out);

/* validity = ttl - elapsed - (ttl * drift_factor + 2 ms), or 0 if not positive. */
uint64_t rl_validity_ms(uint32_t ttl_ms, uint64_t elapsed_ms, double drift_factor);

#endif
