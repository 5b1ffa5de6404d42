/*
 * lockmgr.c - the lives of locks. See lockmgr.h.
 *
 * ACQUIRING: a lock either attempts (Redlock over the masters) or sits in
 * the FIFO queue of one of its resources. Only the head of a queue attempts;
 * while a resource has a local holder nobody behind it touches the masters,
 * and the holder's release wakes the head at once (hand-off). Against
 * holders elsewhere (other daemons, other clients) the head polls with
 * retry_delay_ms + jitter until its WAIT (or retry budget) runs out.
 *
 * HELD: a timer fires at the end of validity (plain locks: forgotten) or at
 * the next extension (AUTOEXTEND). An AUTOEXTEND lock that cannot be
 * extended is reported LOST a margin before the validity last promised.
 *
 * A lock's state changes only in lock_set_state(), which keeps the lock
 * table, the wait queues, the resources' holders, the owners' lists, the
 * timer and the counters in step. Every wake-up goes through the lock's own
 * timer (timer.c), so a release that wakes a waiter never recurses into it.
 *
 * Nothing here does I/O itself: the masters and the clock are behind
 * struct mgr_engine, the clients behind owner.h's callbacks.
 */
#include "lockmgr.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define LOST_MARGIN_MIN_MS 5 /* EVENT LOST goes out at least this long before validity ends */
#define MGR_REPLY_MAX 256    /* a reply line; longer ERR texts are cut (as conn.h REQUEST_REPLY_MAX) */
#define DELAY_LOG_MAX 3      /* lock-delay: one connection's locks logged one by one, then a count */
/* Fleet waiting (PROTOCOL.md 8.7). */
#define FLEET_STREAK_MAX 8         /* local hand-offs in a row before yielding to any registered daemon */
#define FLEET_REGISTRY_MIN_MS 1000 /* a registration lasts at least this long unrefreshed ... */
#define FLEET_REGISTRY_POLLS 3     /* ... and at least this many polls of a waiter */
#define FLEET_RESERVE_MIN_MS 20 /* a reservation for a woken daemon: 2 x master_timeout_ms, in these bounds */
#define FLEET_RESERVE_MAX_MS 100
_Static_assert(sizeof((struct server *)0)->node_id == POOL_NODE_ID_LEN + 1, "node id length");

static void on_lock_timer(struct timer *t);
static void acquire_step(struct server *s, struct lock *lk);
static void attempt_failed(struct server *s, struct lock *lk, const struct rl_outcome *out);
static void on_fence_raised(void *ctx, const struct rl_outcome *out);
static void send_shorten(struct server *s, struct lock *lk, uint64_t ttl_ms);
static void mode_conflict_text(const struct lock *lk, enum lock_mode have, uint32_t have_permits, char *text,
                               size_t len);

/* ---- the engine and the clock ---- */

/* mgr_engine_redlock: the Redlock engine of s, the monotonic clock. */
static int redlock_start(struct server *s, enum rl_kind kind, const struct rl_target *t, rl_done_fn *done,
                         void *ctx)
{
    return rl_start(s->rl, kind, t, done, ctx);
}

static unsigned redlock_masters(struct server *s)
{
    return (unsigned)pool_size(rl_engine_pool(s->rl));
}

static uint64_t redlock_backlog(struct server *s)
{
    return pool_backlog(rl_engine_pool(s->rl));
}

const struct mgr_engine mgr_engine_redlock = {
    .start = redlock_start,
    .masters = redlock_masters,
    .backlog = redlock_backlog,
    .now_ms = now_ms,
};

/* The engine in force: the test's fake or the real one. */
static const struct mgr_engine *engine(const struct server *s)
{
    return s->engine != NULL ? s->engine : &mgr_engine_redlock;
}

static uint64_t clock_ms(const struct server *s)
{
    return engine(s)->now_ms();
}

static int engine_start(struct server *s, enum rl_kind kind, const struct rl_target *t, rl_done_fn *done,
                        void *ctx)
{
    return engine(s)->start(s, kind, t, done, ctx);
}

/* ---- small helpers ---- */

/* (Re)arm lk's one timer for at_ms (0: the next loop turn); out of memory
 * is logged (the lock then waits for another event). */
static void arm_at(struct lock *lk, uint64_t at_ms)
{
    if (timer_arm(&lk->server->timers, &lk->timer, at_ms) != 0)
        log_error("msg=\"out of memory arming a lock timer\" lock=%.8s", lk->id);
}

/* Run the lock's timer callback from the loop, never from here: a release
 * that wakes a waiter must not recurse into it. */
static void wake(struct lock *lk)
{
    arm_at(lk, 0);
}

/* What is left of a validity ending at end_ms, seen at now: never wraps
 * below zero. Every reply that reports a validity goes through here. */
static uint64_t validity_left(uint64_t end_ms, uint64_t now)
{
    return end_ms > now ? end_ms - now : 0;
}

/* How long before its validity ends an AUTOEXTEND lock is reported LOST:
 * 5% of its TTL, at least LOST_MARGIN_MIN_MS. */
static uint64_t lost_margin(const struct lock *lk)
{
    uint64_t m = lk->ttl_ms / 20;
    return m > LOST_MARGIN_MIN_MS ? m : LOST_MARGIN_MIN_MS;
}

/* The keys of the op being started: the lock keys, then the fence counter
 * of their key prefix. Built per op rather than stored in every lock (memory
 * with 100k locks); rl_start() copies them out at once, so one scratch array
 * serves all. */
static const char *op_keys[PROTO_MAX_RESOURCES + 1];
static size_t op_keylens[PROTO_MAX_RESOURCES + 1];
static char op_fence_key[CONFIG_MAX_KEY_PREFIX + LOCK_FENCE_SUFFIX_LEN];
static char op_mode[32]; /* "shared" or "permits <n>" */

static char op_wake_channel[CONFIG_MAX_KEY_PREFIX + sizeof ",wake"];

/* Fleet waiting is on: configured, and this daemon has a node id. */
static bool fleet_on(const struct server *s)
{
    return s->cfg.fleet_waiting && s->node_id[0] != '\0';
}

/* A lock that takes part in fleet waiting: one resource, no priority
 * (priorities preempt instead), and WAIT (a waiter, not a try-lock); any
 * mode (exclusive, SHARED, PERMITS). */
static bool fleet_lock(const struct server *s, const struct lock *lk)
{
    return fleet_on(s) && lk->nres == 1 && lk->priority == 0 && lk->max_attempts == UINT_MAX;
}

/* Add fleet waiting's part to a target made by target_of (lk's prefix's
 * wake channel, this daemon's node id, the registration and reservation
 * lifetimes). */
static void fleet_target(const struct server *s, const struct lock *lk, struct rl_target *t)
{
    const struct config *cfg = &s->cfg;
    size_t plen = lk->res[0]->prefix_len;
    memcpy(op_wake_channel, lk->res[0]->key, plen);
    memcpy(op_wake_channel + plen, ",wake", 5);
    t->node = s->node_id;
    t->wake_channel = op_wake_channel;
    t->wake_channel_len = plen + 5;
    uint64_t poll = (uint64_t)cfg->retry_delay_ms + cfg->retry_jitter_ms + cfg->master_timeout_ms;
    uint64_t reg = poll * FLEET_REGISTRY_POLLS;
    t->registry_ms = reg < FLEET_REGISTRY_MIN_MS ? FLEET_REGISTRY_MIN_MS
                     : reg > UINT32_MAX          ? UINT32_MAX
                                                 : (uint32_t)reg;
    uint64_t resv = 2 * (uint64_t)cfg->master_timeout_ms;
    t->reserve_ms = resv < FLEET_RESERVE_MIN_MS   ? FLEET_RESERVE_MIN_MS
                    : resv > FLEET_RESERVE_MAX_MS ? FLEET_RESERVE_MAX_MS
                                                  : (uint32_t)resv;
    t->streak_max = FLEET_STREAK_MAX;
}

/* How long lk has waited (since its ACQUIRE arrived) at now. */
static uint64_t waited_ms(const struct lock *lk, uint64_t now)
{
    return now > lk->created_ms ? now - lk->created_ms : 0;
}

/* fleet_target for a release of lk: a shared release (PROTOCOL.md 8.8)
 * reserves the key only for daemons registered before this daemon's own
 * oldest waiter of it came. */
static void fleet_release_target(const struct server *s, const struct lock *lk, struct rl_target *t)
{
    fleet_target(s, lk, t);
    const struct lock *w = TAILQ_FIRST(&lk->res[0]->waiters);
    t->wait_age_ms = w != NULL ? waited_ms(w, clock_ms(s)) : 0;
}

/* Fill *t for an op on lk's keys with this TTL (fence, old_token, known:
 * none). *t points into static scratch valid until the next call. */
static void target_of(const struct lock *lk, uint32_t ttl_ms, struct rl_target *t)
{
    size_t n = lk->nres;
    assert(n >= 1 && n <= PROTO_MAX_RESOURCES);
    for (size_t i = 0; i < n; i++) {
        op_keys[i] = lk->res[i]->key;
        op_keylens[i] = lk->res[i]->keylen;
    }
    /* All of a lock's keys share the prefix they were made with (a reload
     * may have changed key_prefix since: the lock keeps its own). */
    size_t plen = lk->res[0]->prefix_len;
    memcpy(op_fence_key, lk->res[0]->key, plen);
    memcpy(op_fence_key + plen, LOCK_FENCE_SUFFIX, LOCK_FENCE_SUFFIX_LEN);
    op_keys[n] = op_fence_key;
    op_keylens[n] = plen + LOCK_FENCE_SUFFIX_LEN;
    memset(t, 0, sizeof *t);
    t->keys = op_keys;
    t->keylens = op_keylens;
    t->nkeys = lk->nres;
    t->token = lk->id;
    t->ttl_ms = ttl_ms;
    t->priority = lk->priority;
    if (lk->mode != LOCK_EXCLUSIVE) {
        if (lk->mode == LOCK_SHARED) snprintf(op_mode, sizeof op_mode, "shared");
        else snprintf(op_mode, sizeof op_mode, "permits %u", lk->permits);
        t->mode = op_mode;
        t->limit = lk->mode == LOCK_PERMITS ? lk->permits : 0;
    }
}

/* Answer req (exactly once); req may be freed by this. */
static void reply(struct lock_request *req, const char *line, size_t len)
{
    req->ops->reply(req, line, len);
}

/* Answer req with ERR <err> <text> (cut to MGR_REPLY_MAX). */
static void reply_err(struct lock_request *req, enum proto_err err, const char *text)
{
    char line[MGR_REPLY_MAX];
    size_t n = proto_fmt_err(line, sizeof line, err, "%s", text);
    reply(req, line, n);
}

/* Free a DEAD lock once no op, request or queue refers to it any more. */
static void maybe_free(struct server *s, struct lock *lk)
{
    if (lk->state == LOCK_DEAD && lk->ops == 0 && lk->req == NULL && lk->waiting_on == NULL) {
        timer_cancel(&s->timers, &lk->timer);
        lock_free(&s->tables, lk);
    }
}

/* Fire-and-forget compare-and-delete of the lock's keys on every master. */
static void send_release(struct server *s, struct lock *lk)
{
    struct rl_target t;
    target_of(lk, lk->ttl_ms, &t);
    if (fleet_on(s)) fleet_release_target(s, lk, &t);
    if (engine_start(s, RL_RELEASE, &t, NULL, NULL) != 0)
        log_error("msg=\"out of memory sending a release; the TTL will free it\" lock=%.8s", lk->id);
}

/* Fleet waiting: take this daemon out of r's waiter registry on the
 * masters (fire and forget), if it may be in it. lk names r. */
static void fleet_unregister(struct server *s, struct lock *lk, struct resource *r)
{
    if (!r->registered) return;
    r->registered = false;
    if (!fleet_on(s)) return;
    struct rl_target t;
    target_of(lk, lk->ttl_ms, &t);
    fleet_target(s, lk, &t);
    op_keys[0] = r->key;
    op_keylens[0] = r->keylen;
    t.nkeys = 1;
    if (engine_start(s, RL_UNREGISTER, &t, NULL, NULL) != 0)
        log_error("msg=\"out of memory taking a waiter registration back; it expires\" lock=%.8s", lk->id);
}

/* Detach the ACQUIRE waiting for lk, if any, and return it (NULL: none):
 * the caller answers it or drops it. */
static struct lock_request *unlink_request(struct lock *lk)
{
    struct lock_request *req = lk->req;
    if (req == NULL) return NULL;
    assert(req->lock == lk);
    if (req->owner != NULL) {
        assert(req->owner->nacquiring > 0);
        req->owner->nacquiring--;
    }
    req->lock = NULL;
    lk->req = NULL;
    return req;
}

/* ---- wait queues ---- */

/* Wake the head of r's queue, and when it is SHARED or PERMITS the
 * non-exclusive waiters right behind it too: readers in a row enter
 * together (blocker_of lets them attempt). */
static void wake_queue_head(struct resource *r)
{
    struct lock *w = TAILQ_FIRST(&r->waiters);
    if (w == NULL) return;
    wake(w);
    if (w->mode == LOCK_EXCLUSIVE) return;
    while ((w = TAILQ_NEXT(w, wait_link)) != NULL && w->mode != LOCK_EXCLUSIVE) wake(w);
}

/* Its waiter slot no longer counts against its connection. */
static void uncount_waiter(struct lock *lk)
{
    if (lk->queued_by == NULL) return;
    assert(lk->queued_by->nwaiting > 0);
    lk->queued_by->nwaiting--;
    lk->queued_by = NULL;
}

/* Take lk out of the queue it waits in (if any); when it was the head and
 * the resource has no holder, the next waiter is woken. */
static void queue_remove(struct server *s, struct lock *lk)
{
    struct resource *r = lk->waiting_on;
    if (r == NULL) return;
    bool was_head = TAILQ_FIRST(&r->waiters) == lk;
    TAILQ_REMOVE(&r->waiters, lk, wait_link);
    lk->waiting_on = NULL;
    assert(s->nwaiters > 0);
    s->nwaiters--;
    uncount_waiter(lk);
    if (was_head && r->holder == NULL) wake_queue_head(r);
}

/* Queue lk (ACQUIRING) behind r's waiters, moving it from any other queue.
 * Returns 0, -1 when max_waiters is reached, -2 when its connection's
 * max_waiters_per_client is (it then stays where it was). */
static int queue_on(struct server *s, struct lock *lk, struct resource *r)
{
    assert(lk->state == LOCK_ACQUIRING);
    if (lk->waiting_on == r) return 0;
    struct lock_owner *o = lk->req != NULL ? lk->req->owner : NULL;
    if (lk->waiting_on == NULL) {
        if (s->nwaiters >= s->cfg.max_waiters) return -1;
        if (o != NULL && o->nwaiting >= s->cfg.max_waiters_per_client) return -2;
    }
    queue_remove(s, lk);
    TAILQ_INSERT_TAIL(&r->waiters, lk, wait_link);
    lk->waiting_on = r;
    s->nwaiters++;
    if (o != NULL) {
        lk->queued_by = o;
        o->nwaiting++;
    }
    return 0;
}

/* ---- the lifecycle ---- */

/* ACQUIRING -> HELD (see lock_set_state). */
static int enter_held(struct server *s, struct lock *lk)
{
    struct lock_request *req = lk->req;
    assert(req != NULL && req->owner != NULL);
    queue_remove(s, lk);
    if (table_insert(&s->tables.locks, &lk->node) != 0) return -1;
    lk->state = LOCK_HELD;
    s->nheld++;
    for (size_t i = 0; i < lk->nres; i++) {
        if (lk->mode != LOCK_EXCLUSIVE) {
            struct resource *r = lk->res[i];
            r->nshared++;
            r->shared_mode = lk->mode;
            r->shared_permits = lk->permits;
            continue;
        }
        assert(lk->res[i]->holder == NULL || lk->res[i]->holder == lk);
        lk->res[i]->holder = lk;
    }
    struct lock_owner *o = req->owner;
    if (!(lk->flags & LOCK_F_DETACH)) {
        lk->owner = o;
        LIST_INSERT_HEAD(&o->locks, lk, owner_link);
        o->nlocks++;
    } else {
        /* Counted against its creator while that connection is open. */
        lk->creator = o;
        LIST_INSERT_HEAD(&o->detached, lk, creator_link);
        o->ndetached++;
    }
    return 0;
}

/* ACQUIRING or HELD -> DEAD (see lock_set_state). */
static void enter_dead(struct server *s, struct lock *lk)
{
    bool was_held = lk->state == LOCK_HELD;
    if (was_held) {
        table_remove(&s->tables.locks, &lk->node);
        assert(s->nheld > 0);
        s->nheld--;
    }
    if (lk->owner != NULL) {
        LIST_REMOVE(lk, owner_link);
        lk->owner->nlocks--;
        lk->owner = NULL;
    }
    if (lk->creator != NULL) {
        LIST_REMOVE(lk, creator_link);
        lk->creator->ndetached--;
        lk->creator = NULL;
    }
    timer_cancel(&s->timers, &lk->timer);
    lk->state = LOCK_DEAD;
    if (was_held) {
        for (size_t i = 0; i < lk->nres; i++) {
            struct resource *r = lk->res[i];
            if (lk->mode != LOCK_EXCLUSIVE) {
                /* One reader or permit fewer: the head looks again (a writer
                 * once the last reader left, a PERMITS waiter at once). */
                assert(r->nshared > 0);
                r->nshared--;
                if (r->holder == NULL && !TAILQ_EMPTY(&r->waiters)) wake_queue_head(r);
                continue;
            }
            if (r->holder != lk) continue;
            r->holder = NULL;
            if (!TAILQ_EMPTY(&r->waiters)) {
                s->stats.handoffs++;
                wake_queue_head(r);
            }
        }
    }
    struct resource *r0 = lk->res[0];
    queue_remove(s, lk);
    /* Fleet waiting: the last local waiter went without the lock (gave up,
     * its client left): the other daemons need not wait for this one. */
    if (!was_held && r0->registered && r0->holder == NULL && TAILQ_EMPTY(&r0->waiters))
        fleet_unregister(s, lk, r0);
    maybe_free(s, lk);
}

/*
 * The one place a lock changes state; an illegal move is a bug (assert).
 *   ACQUIRING -> HELD: out of its wait queue, into the lock table, holder of
 *     its resources (each must have no other local holder: the caller has
 *     preempted them), on its owner's list (DETACH: its creator's); nheld++.
 *     Requires lk->req (its owner is the new owner). The only move that can
 *     fail: -1 when out of memory, the lock then still ACQUIRING. The caller
 *     arms the timer and answers the request.
 *   ACQUIRING -> DEAD: out of its wait queue (the next waiter is woken when
 *     it was the head). Requires its request to be unlinked (answered or
 *     dropped) first.
 *   HELD -> DEAD: out of the lock table, its owner's list and its
 *     resources, whose first waiters are woken (hand-off); nheld--.
 * A move to DEAD cancels the timer and frees the lock once no op refers to
 * it: afterwards the caller must not touch lk unless it counts an op on
 * it. Any release to the masters is the caller's, sent before. Returns 0.
 */
static int lock_set_state(struct server *s, struct lock *lk, enum lock_state to)
{
    assert(lk->state != LOCK_DEAD);
    switch (to) {
    case LOCK_HELD: assert(lk->state == LOCK_ACQUIRING); return enter_held(s, lk);
    case LOCK_DEAD:
        assert(lk->state == LOCK_HELD || lk->req == NULL);
        enter_dead(s, lk);
        return 0;
    case LOCK_ACQUIRING: break;
    }
    assert(!"illegal lock state change");
    return -1;
}

/* An ACQUIRING lock whose client went (or must not hear any more): drop
 * its request unanswered and end it. */
static void abandon(struct server *s, struct lock *lk)
{
    unlink_request(lk);
    lock_set_state(s, lk, LOCK_DEAD);
}

/* How a lost lock's keys go. */
enum lost_keys {
    KEYS_EXPIRE,  /* left to their TTL: the owner learns of the loss only when it
                     reads the event, and nobody else may start before the
                     validity it was last promised ends */
    KEYS_RELEASE, /* deleted now: MAXHOLD and SHUTDOWN end the lock on purpose */
};

/* HELD -> DEAD, told: the owner (if connected) gets EVENT LOST <reason>,
 * the loss is counted and logged, and keys says whether a release goes to
 * the masters now. lk may be freed. */
static void lose(struct server *s, struct lock *lk, const char *reason, enum lost_keys keys)
{
    assert(lk->state == LOCK_HELD);
    stats_count_lost(&s->stats, reason);
    log_info("msg=\"lock lost\" lock=%.8s reason=%s", lk->id, reason);
    if (lk->owner != NULL) {
        char line[PROTO_REPLY_MAX];
        size_t n = proto_fmt_event_lost(line, sizeof line, lk->id, reason);
        lk->owner->ops->push_event(lk->owner, line, n);
    }
    if (keys == KEYS_RELEASE) send_release(s, lk);
    lock_set_state(s, lk, LOCK_DEAD);
}

/* A HELD lock ends on purpose (released, expired, its owner gone): its keys
 * are deleted on the masters, then it is DEAD. lk may be freed. */
static void release_and_end(struct server *s, struct lock *lk)
{
    send_release(s, lk);
    lock_set_state(s, lk, LOCK_DEAD);
}

/* ---- ACQUIRE ---- */

/* ACQUIRING -> DEAD with an error answer to its ACQUIRE (if still there). */
static void answer_acquire(struct server *s, struct lock *lk, enum proto_err err, const char *text)
{
    struct lock_request *req = unlink_request(lk);
    if (req != NULL) reply_err(req, err, text);
    lock_set_state(s, lk, LOCK_DEAD);
}

/* Why an ACQUIRING lock failed, from its last attempt (pure): the error
 * code and its text in text[len]. */
static enum proto_err acquire_failure(const struct server *s, const struct lock *lk, unsigned total, char *text,
                                      size_t len)
{
    if (s->shutting_down) {
        snprintf(text, len, "redlockd is shutting down");
        return PROTO_ERR_SHUTDOWN;
    }
    if (lk->attempts == 0) {
        snprintf(text, len, "held by another client of this daemon");
        return PROTO_ERR_BUSY;
    }
    switch (lk->last_result) {
    case RL_BUSY:
        snprintf(text, len, "held elsewhere (granted %u/%u)", lk->last_granted, total);
        return PROTO_ERR_BUSY;
    case RL_BADFENCE:
        snprintf(text, len,
                 "fence counter exhausted or foreign on %u/%u masters; no majority vouches for a fence "
                 "(PROTOCOL.md 8.4)",
                 lk->last_bad_fences, total);
        return PROTO_ERR_NOQUORUM;
    case RL_TOOSLOW:
        snprintf(text, len, "validity used up before a majority granted (granted %u/%u)", lk->last_granted,
                 total);
        return PROTO_ERR_NOQUORUM;
    default:
        if (lk->mode == LOCK_PERMITS && rl_permits_quorum(lk->permits, total) > total / 2 + 1) {
            snprintf(text, len, "%u/%u masters granted; PERMITS %u needs %u of %u (PROTOCOL.md 8.8)",
                     lk->last_granted, total, lk->permits, rl_permits_quorum(lk->permits, total), total);
            return PROTO_ERR_NOQUORUM;
        }
        snprintf(text, len, "%u/%u masters answered", lk->last_answered, total);
        return PROTO_ERR_NOQUORUM;
    }
}

/* Give up on an ACQUIRING lock: answer why (acquire_failure), count it, end it. */
static void fail_acquire(struct server *s, struct lock *lk)
{
    char text[160];
    enum proto_err err = acquire_failure(s, lk, engine(s)->masters(s), text, sizeof text);
    if (err == PROTO_ERR_BUSY) s->stats.acquire_busy++;
    else if (err == PROTO_ERR_NOQUORUM) s->stats.acquire_noquorum++;
    /* For /healthz: did the masters decide (BUSY after an attempt), or not? */
    if ((err == PROTO_ERR_NOQUORUM || (err == PROTO_ERR_BUSY && lk->attempts > 0)) && engine(s)->acquire_failed)
        engine(s)->acquire_failed(err == PROTO_ERR_NOQUORUM);
    answer_acquire(s, lk, err, text);
}

/* queue_on() refused lk (why: -1 or -2): answer ERR LIMIT and end it. */
static void fail_limit_waiters(struct server *s, struct lock *lk, int why)
{
    char text[96];
    s->stats.errors_limit++;
    if (why == -2)
        snprintf(text, sizeof text, "max_waiters_per_client (%u) reached", s->cfg.max_waiters_per_client);
    else snprintf(text, sizeof text, "max_waiters (%u) reached", s->cfg.max_waiters);
    answer_acquire(s, lk, PROTO_ERR_LIMIT, text);
}

/* A higher priority took lk's keys on the masters from local holders:
 * they hear it now (their keys are lk's already, nothing to release). */
static void preempt_local_holders(struct server *s, struct lock *lk)
{
    for (size_t i = 0; i < lk->nres; i++) {
        struct lock *h = lk->res[i]->holder;
        if (h != NULL && h != lk) lose(s, h, "PREEMPTED", KEYS_EXPIRE);
    }
}

/* When a HELD lock's timer next fires: the next extension (AUTOEXTEND,
 * never past MAXHOLD), else the end of its validity. */
static uint64_t first_held_timer(const struct lock *lk, uint64_t now)
{
    if (!(lk->flags & LOCK_F_AUTOEXTEND)) return lk->validity_end_ms;
    uint64_t next = now + lk->ttl_ms / 3;
    if (lk->maxhold_end_ms != 0 && lk->maxhold_end_ms < next) next = lk->maxhold_end_ms;
    return next;
}

/* The lock is ours on a majority: ACQUIRING -> HELD and answer the ACQUIRE
 * with OK. validity_end_ms is when the validity promised ends (from the
 * winning attempt's send time started_ms). Out of memory: the keys are
 * released, the ACQUIRE answered ERR INTERNAL, the lock ended. */
static void grant(struct server *s, struct lock *lk, uint64_t started_ms, uint64_t validity_end_ms)
{
    assert(lk->state == LOCK_ACQUIRING && lk->req != NULL);
    queue_remove(s, lk);
    if (lk->mode == LOCK_EXCLUSIVE) preempt_local_holders(s, lk);
    if (lock_set_state(s, lk, LOCK_HELD) != 0) {
        send_release(s, lk);
        answer_acquire(s, lk, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    s->stats.acquire_ok++;
    /* Fleet waiting: count local hand-offs in a row; a fresh attempt that won
     * took this daemon out of the registry (the script drops the entry). */
    struct resource *r0 = lk->res[0];
    if (lk->via_handoff) {
        if (r0->streak < UINT32_MAX) r0->streak++;
        fleet_unregister(s, lk, r0); /* not in it while holding */
    } else {
        r0->streak = 0;
        r0->registered = false;
    }
    lk->via_handoff = false;
    lk->acquired_ms = started_ms;
    lk->validity_end_ms = validity_end_ms;
    if (lk->maxhold_end_ms != 0) lk->maxhold_end_ms += started_ms; /* counted from the grant */
    arm_at(lk, first_held_timer(lk, clock_ms(s)));
    char line[MGR_REPLY_MAX];
    uint64_t now = clock_ms(s);
    size_t n = proto_fmt_ok_lock(line, sizeof line, lk->id, validity_left(validity_end_ms, now), lk->fence);
    struct lock_request *req = unlink_request(lk);
    if (engine(s)->acquired != NULL) engine(s)->acquired(now_us() - req->started_us);
    req->validity_end_ms = validity_end_ms;
    reply(req, line, n);
}

/* A fenced grant whose granting masters gave different fences: raise every
 * counter to the fence chosen before answering, so that a majority holds it
 * (on_fence_raised finishes). Returns false when the raise could not start. */
static bool start_fence_raise(struct server *s, struct lock *lk, const struct rl_outcome *out)
{
    lk->fence = out->fence;
    lk->acquired_ms = out->started_ms;
    lk->validity_end_ms = out->started_ms + out->validity_ms;
    struct rl_target t;
    target_of(lk, lk->ttl_ms, &t);
    t.fence = out->fence;
    lk->ops++;
    if (engine_start(s, RL_FENCE, &t, on_fence_raised, lk) == 0) return true;
    lk->ops--;
    return false;
}

/* An attempt (ACQUIRE or HANDOFF) of lk was decided: grant, retry, wait or fail. */
static void on_acquire_done(void *ctx, const struct rl_outcome *out)
{
    struct lock *lk = ctx;
    struct server *s = lk->server;
    assert(lk->ops > 0 && lk->state == LOCK_ACQUIRING);
    lk->ops--;
    bool granted = out->result == RL_OK;
    if (lk->req == NULL) {
        /* Its client went away meanwhile: give back whatever was taken. */
        if (granted || out->granted > 0 || out->answered < out->total) send_release(s, lk);
        abandon(s, lk);
        return;
    }
    if (granted && s->shutting_down) {
        send_release(s, lk);
        fail_acquire(s, lk); /* answers ERR SHUTDOWN */
        return;
    }
    if (granted && out->fence != 0 && !out->fence_agreed) {
        /* Some granting master gave less than the fence chosen (the one a
         * majority vouches for, PROTOCOL.md 8.4). */
        if (start_fence_raise(s, lk, out)) return;
        struct rl_outcome failed = *out;
        failed.result = RL_NOQUORUM;
        attempt_failed(s, lk, &failed);
        return;
    }
    if (granted) {
        lk->fence = out->fence;
        grant(s, lk, out->started_ms, out->started_ms + out->validity_ms);
        return;
    }
    attempt_failed(s, lk, out);
}

/* The slow path of a fenced ACQUIRE: counters raised (or not). Granted
 * only if the raise succeeded within the validity promised. */
static void on_fence_raised(void *ctx, const struct rl_outcome *out)
{
    struct lock *lk = ctx;
    struct server *s = lk->server;
    assert(lk->ops > 0 && lk->state == LOCK_ACQUIRING);
    lk->ops--;
    uint64_t now = clock_ms(s);
    if (lk->req == NULL || s->shutting_down || out->result != RL_OK || now >= lk->validity_end_ms) {
        struct rl_outcome failed = *out;
        failed.result = out->result == RL_OK ? RL_TOOSLOW : RL_NOQUORUM;
        failed.answered = out->answered;
        send_release(s, lk);
        if (lk->req == NULL) {
            abandon(s, lk);
            return;
        }
        attempt_failed(s, lk, &failed);
        return;
    }
    grant(s, lk, lk->acquired_ms, lk->validity_end_ms);
}

/* An exclusive ACQUIRE that was refused and will retry, or that waits
 * behind this daemon's own readers: on every master where its keys are held
 * SHARED or with PERMITS it writes the writer-waiting marker "<key>,wwait",
 * which refuses new readers until it expires (PROTOCOL.md 8.8): 2 polls, at
 * least 100 ms. Refreshed while the writer waits, it outlives the wait by at
 * most that. Fire and forget; returns the marker's lifetime. */
static uint32_t mark_writer_waiting(struct server *s, struct lock *lk)
{
    const struct config *cfg = &s->cfg;
    uint64_t ms = 2 * ((uint64_t)cfg->retry_delay_ms + cfg->retry_jitter_ms + cfg->master_timeout_ms);
    uint32_t life = (uint32_t)(ms < 100 ? 100 : ms > PROTO_MAX_MS ? PROTO_MAX_MS : ms);
    struct rl_target t;
    target_of(lk, life, &t);
    if (engine_start(s, RL_MARK, &t, NULL, NULL) != 0)
        log_error("msg=\"out of memory marking a writer waiting\" lock=%.8s", lk->id);
    return life;
}

/* An attempt did not get the lock: clean up, then retry (after a delay),
 * wait in a queue, or give up (answered). */
static void attempt_failed(struct server *s, struct lock *lk, const struct rl_outcome *out)
{
    assert(lk->state == LOCK_ACQUIRING && lk->req != NULL);
    /* Delete what was set, including on masters that timed out. */
    if (out->granted > 0 || out->answered < out->total) send_release(s, lk);
    if (out->mode_conflict[0] != '\0' && lk->mode != LOCK_EXCLUSIVE) {
        /* A master holds the key in another mode ("shared", "permits <n>"):
         * a client error, not a wait. */
        char text[128];
        bool permits = strncmp(out->mode_conflict, "permits ", 8) == 0;
        mode_conflict_text(lk, permits ? LOCK_PERMITS : LOCK_SHARED,
                           permits ? (uint32_t)strtoul(out->mode_conflict + 8, NULL, 10) : 0, text,
                           sizeof text);
        s->stats.errors_badreq++;
        answer_acquire(s, lk, PROTO_ERR_BADREQ, text);
        return;
    }
    lk->fence = 0;
    lk->last_result = (int)out->result;
    lk->last_granted = out->granted;
    lk->last_answered = out->answered;
    lk->last_bad_fences = (uint8_t)(out->bad_fences > UINT8_MAX ? UINT8_MAX : out->bad_fences);
    bool was_handoff = lk->via_handoff;
    bool yielded = was_handoff && out->yielded > 0;
    if (yielded) s->stats.handoffs_yielded++;
    /* A refused fleet attempt registered this daemon, and so did a yield. */
    if (fleet_lock(s, lk) && (yielded || !was_handoff)) lk->res[0]->registered = true;
    lk->via_handoff = false;
    uint64_t now = clock_ms(s);
    if (s->shutting_down || lk->attempts >= lk->max_attempts || now >= lk->wait_deadline_ms) {
        fail_acquire(s, lk);
        return;
    }
    int queued = lk->waiting_on == NULL ? queue_on(s, lk, lk->res[0]) : 0;
    if (queued != 0) {
        fail_limit_waiters(s, lk, queued);
        return;
    }
    /* A refused ACQUIRE may have met readers; a refused hand-off met our own token. */
    if (lk->mode == LOCK_EXCLUSIVE && out->result == RL_BUSY && !was_handoff) mark_writer_waiting(s, lk);
    uint64_t at = now + s->cfg.retry_delay_ms + random_jitter(s->cfg.retry_jitter_ms);
    if (lk->fleet_woken && !yielded) at = now; /* released meanwhile (mgr_fleet_wake) */
    lk->fleet_woken = false;
    if (yielded) {
        /* The key went to another daemon's waiter, reserved for it a moment:
         * look again when the reservation ends, in case it never came. A
         * release by it wakes this waiter sooner (mgr_fleet_wake). */
        struct rl_target t;
        target_of(lk, lk->ttl_ms, &t);
        fleet_target(s, lk, &t);
        uint64_t soon = now + t.reserve_ms + 1;
        if (soon < at) at = soon;
    }
    arm_at(lk, at < lk->wait_deadline_ms ? at : lk->wait_deadline_ms);
}

/* Send one Redlock ACQUIRE attempt for lk (on_acquire_done decides it).
 * Out of memory: the ACQUIRE is answered ERR INTERNAL and lk ended. */
static void start_attempt(struct server *s, struct lock *lk)
{
    assert(lk->state == LOCK_ACQUIRING && lk->ops == 0);
    struct rl_target t;
    target_of(lk, lk->ttl_ms, &t);
    t.fenced = s->cfg.fencing;
    lk->via_handoff = false;
    if (fleet_lock(s, lk)) {
        fleet_target(s, lk, &t); /* honour reservations, register if refused */
        t.wait_age_ms = waited_ms(lk, clock_ms(s));
    }
    /* A priority attempt may replace a local holder's key only with proof
     * that redlockd wrote it: the holder's own token, which this daemon knows,
     * passed when that holder has the lower priority. Other keys it may
     * replace only if they carry redlockd's priority marker (redis_pool.c). */
    static const char *known[PROTO_MAX_RESOURCES];
    if (lk->priority > 0) {
        for (size_t i = 0; i < lk->nres; i++) {
            const struct lock *h = lk->res[i]->holder;
            known[i] = h != NULL && h != lk && h->priority < lk->priority ? h->id : NULL;
        }
        t.known = known;
    }
    lk->attempts++;
    lk->ops++;
    if (engine_start(s, RL_ACQUIRE, &t, on_acquire_done, lk) != 0) {
        lk->ops--;
        s->stats.acquire_error++;
        answer_acquire(s, lk, PROTO_ERR_INTERNAL, "out of memory");
    }
}

/* The resource lk must wait for now, or NULL when it may attempt (pure):
 * a local holder it may not preempt (equal or higher priority); without a
 * priority, anyone already queued on one of its resources (first come first
 * served); or, queued, anyone ahead of it. */
static struct resource *blocker_of(const struct lock *lk)
{
    struct resource *blocker = NULL;
    for (size_t i = 0; i < lk->nres && blocker == NULL; i++) {
        const struct resource *r = lk->res[i];
        /* An exclusive holder blocks every mode (SHARED and PERMITS have no
         * priority); local readers block a writer, and n local holders a
         * PERMITS n. */
        if (r->holder != NULL && (lk->mode != LOCK_EXCLUSIVE || r->holder->priority >= lk->priority))
            blocker = lk->res[i];
        else if (r->nshared > 0 &&
                 (lk->mode == LOCK_EXCLUSIVE || (lk->mode == LOCK_PERMITS && r->nshared >= lk->permits)))
            blocker = lk->res[i];
    }
    if (blocker == NULL && lk->waiting_on == NULL && lk->priority == 0) {
        for (size_t i = 0; i < lk->nres && blocker == NULL; i++)
            if (!TAILQ_EMPTY(&lk->res[i]->waiters)) blocker = lk->res[i];
    }
    if (blocker == NULL && lk->waiting_on != NULL && TAILQ_FIRST(&lk->waiting_on->waiters) != lk) {
        /* Not our turn yet; but readers (or permit holders) right behind a
         * reader at the head go together: FIFO across kinds, readers in a
         * row enter at once. */
        const struct lock *w = TAILQ_FIRST(&lk->waiting_on->waiters);
        if (lk->mode == LOCK_EXCLUSIVE) blocker = lk->waiting_on;
        for (; blocker == NULL && w != lk; w = TAILQ_NEXT(w, wait_link))
            if (w->mode == LOCK_EXCLUSIVE) blocker = lk->waiting_on;
    }
    return blocker;
}

/* How a SHARED / PERMITS mode is named in errors: "SHARED", "PERMITS <n>". */
static void mode_name(enum lock_mode mode, uint32_t permits, char *out, size_t len)
{
    if (mode == LOCK_PERMITS) snprintf(out, len, "PERMITS %u", permits);
    else snprintf(out, len, "SHARED");
}

/* The ERR BADREQ text for a SHARED / PERMITS lk that finds its resource
 * held in mode have (with have_permits), here or on a master. */
static void mode_conflict_text(const struct lock *lk, enum lock_mode have, uint32_t have_permits, char *text,
                               size_t len)
{
    char want[32], held[32];
    mode_name((enum lock_mode)lk->mode, lk->permits, want, sizeof want);
    mode_name(have, have_permits, held, sizeof held);
    snprintf(text, len, "%s asked, but the resource is held with %s", want, held);
}

/* A SHARED / PERMITS lk whose resource this daemon's holders hold in
 * another mode or with another n: the ERR BADREQ text in text[len], else
 * NULL (pure). */
static const char *local_mode_conflict(const struct lock *lk, char *text, size_t len)
{
    for (size_t i = 0; i < lk->nres; i++) {
        const struct resource *r = lk->res[i];
        if (r->nshared == 0 || (r->shared_mode == lk->mode && r->shared_permits == lk->permits)) continue;
        mode_conflict_text(lk, (enum lock_mode)r->shared_mode, r->shared_permits, text, len);
        return text;
    }
    return NULL;
}

/* Decide what an ACQUIRING lock does now: attempt, queue, or give up. */
static void acquire_step(struct server *s, struct lock *lk)
{
    assert(lk->state == LOCK_ACQUIRING);
    if (lk->ops > 0) return; /* an attempt is in flight; its outcome decides */
    assert(lk->req != NULL); /* dropped requests end the lock unless an op is in flight */
    char text[128];
    if (lk->mode != LOCK_EXCLUSIVE && local_mode_conflict(lk, text, sizeof text) != NULL) {
        s->stats.errors_badreq++;
        answer_acquire(s, lk, PROTO_ERR_BADREQ, text);
        return;
    }
    bool expired = clock_ms(s) >= lk->wait_deadline_ms;
    struct resource *blocker = blocker_of(lk);
    if (blocker != NULL) {
        if (expired || s->shutting_down) {
            fail_acquire(s, lk);
            return;
        }
        int queued = queue_on(s, lk, blocker);
        if (queued != 0) {
            fail_limit_waiters(s, lk, queued);
            return;
        }
        uint64_t at = lk->wait_deadline_ms;
        if (lk->mode == LOCK_EXCLUSIVE && blocker->nshared > 0 && blocker->holder == NULL &&
            TAILQ_FIRST(&blocker->waiters) == lk) {
            /* A writer first in line behind this daemon's own readers: the
             * other daemons' new readers are kept out meanwhile too (8.8),
             * the marker refreshed halfway through its life (every 50 ms at
             * the most, whatever retry_delay_ms) until the readers are gone. */
            uint64_t refresh = clock_ms(s) + mark_writer_waiting(s, lk) / 2;
            if (refresh < at) at = refresh;
        }
        arm_at(lk, at);
        return;
    }
    if (lk->attempts >= lk->max_attempts || (expired && lk->attempts > 0) || s->shutting_down) {
        fail_acquire(s, lk);
        return;
    }
    start_attempt(s, lk);
}

/* ---- HELD ---- */

/* The next timer of an AUTOEXTEND lock after an extension attempt (pure):
 * ttl/3 after a success, a short retry after a failure, never past MAXHOLD
 * nor the LOST guard. */
static uint64_t next_extension_at(const struct server *s, const struct lock *lk, bool extended, uint64_t now)
{
    uint64_t next;
    if (extended) {
        next = now + lk->ttl_ms / 3;
    } else {
        uint32_t retry = s->cfg.retry_delay_ms < lk->ttl_ms / 10 ? s->cfg.retry_delay_ms : lk->ttl_ms / 10;
        next = now + retry + 1;
    }
    if (lk->maxhold_end_ms != 0 && lk->maxhold_end_ms < next) next = lk->maxhold_end_ms;
    uint64_t guard = lk->validity_end_ms - lost_margin(lk);
    return next < guard ? next : guard;
}

/* An AUTOEXTEND extension was decided: extend the validity, or lose the
 * lock (TAKEN/PREEMPTED: its keys are left to expire), or retry soon. */
static void on_autoextend_done(void *ctx, const struct rl_outcome *out)
{
    struct lock *lk = ctx;
    struct server *s = lk->server;
    assert(lk->ops > 0);
    lk->ops--;
    lk->extending = false;
    if (lk->state != LOCK_HELD) {
        maybe_free(s, lk);
        return;
    }
    if (lk->flags & LOCK_F_ORPHANED) { /* its owner closed meanwhile: the timer releases it */
        wake(lk);
        return;
    }
    if (out->result == RL_TAKEN || out->result == RL_PREEMPTED) {
        lose(s, lk, out->result == RL_PREEMPTED ? "PREEMPTED" : "TAKEN", KEYS_EXPIRE);
        return;
    }
    bool extended = out->result == RL_OK;
    if (extended) {
        s->stats.extend_ok++;
        uint64_t end = out->started_ms + out->validity_ms;
        if (end > lk->validity_end_ms) lk->validity_end_ms = end;
    } else {
        s->stats.extend_fail++;
    }
    arm_at(lk, next_extension_at(s, lk, extended, clock_ms(s)));
}

/* An AUTOEXTEND lock's timer: lost at MAXHOLD (released) or at the guard
 * before its validity ends (NOQUORUM: left to expire); else start an
 * extension if none is in flight, and look again at the guard. */
static void autoextend_timer(struct server *s, struct lock *lk, uint64_t now)
{
    if (lk->maxhold_end_ms != 0 && now >= lk->maxhold_end_ms) {
        lose(s, lk, "MAXHOLD", KEYS_RELEASE);
        return;
    }
    uint64_t guard = lk->validity_end_ms - lost_margin(lk);
    if (now >= guard) {
        lose(s, lk, "NOQUORUM", KEYS_EXPIRE);
        return;
    }
    if (!lk->extending) {
        struct rl_target t;
        target_of(lk, lk->ttl_ms, &t);
        lk->ops++;
        lk->extending = true;
        if (engine_start(s, RL_EXTEND, &t, on_autoextend_done, lk) != 0) {
            lk->ops--;
            lk->extending = false;
        }
    }
    arm_at(lk, guard);
}

/* Cut the TTL of a delayed lock's keys on every master to ttl_ms (the
 * delay left): an extension with that TTL (compare-and-pexpire: a key
 * holding another token is left alone), nobody waiting for its outcome.
 * Sent after any extension already in flight, so it is the last word on
 * each master; the release at the delay's end follows it. */
static void send_shorten(struct server *s, struct lock *lk, uint64_t ttl_ms)
{
    struct rl_target t;
    target_of(lk, ttl_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ttl_ms, &t);
    if (engine_start(s, RL_EXTEND, &t, NULL, NULL) != 0)
        log_error("msg=\"out of memory shortening a delayed lock; released at the delay's end\" lock=%.8s",
                  lk->id);
}

/* A delayed lock's timer: first (SHORTEN) cut its keys' TTL to the delay,
 * then wait for the delay's end (validity_end_ms), where it is released and
 * its local waiters are woken. Early wake-ups (an extension that was in
 * flight when its owner closed) just re-arm. */
static void delayed_timer(struct server *s, struct lock *lk)
{
    uint64_t now = clock_ms(s);
    if (now >= lk->validity_end_ms) {
        log_debug("msg=\"lock delay over\" lock=%.8s", lk->id);
        release_and_end(s, lk);
        return;
    }
    if (lk->flags & LOCK_F_SHORTEN) {
        lk->flags &= ~LOCK_F_SHORTEN;
        send_shorten(s, lk, lk->validity_end_ms - now);
    }
    arm_at(lk, lk->validity_end_ms);
}

/* A HELD lock's timer: its owner closed (release, paced by the masters'
 * backlog; or the lock-delay), its validity ended (plain: release), or
 * AUTOEXTEND's turn. */
static void held_timer(struct server *s, struct lock *lk)
{
    if (lk->flags & LOCK_F_ORPHANED) { /* its owner closed */
        /* A mass close waits for the masters to catch up instead of queueing
         * every delete (and hiredis' state for each) at once; the same
         * threshold pauses reading clients (conn.c). */
        if (engine(s)->backlog(s) > s->cfg.max_backlog) {
            arm_at(lk, clock_ms(s) + 1);
            return;
        }
        if (lk->flags & LOCK_F_DELAYED) delayed_timer(s, lk);
        else release_and_end(s, lk);
        return;
    }
    uint64_t now = clock_ms(s);
    if (!(lk->flags & LOCK_F_AUTOEXTEND)) {
        s->stats.expired++;
        log_debug("msg=\"lock expired\" lock=%.8s", lk->id);
        release_and_end(s, lk); /* its keys are about to expire anyway; waiters get in sooner */
        return;
    }
    autoextend_timer(s, lk, now);
}

/* A lock's timer fired: ACQUIRING locks take their next step, HELD ones
 * their held_timer; DEAD ones (waiting for an op) nothing. */
static void on_lock_timer(struct timer *t)
{
    struct lock *lk = (struct lock *)(void *)((char *)t - offsetof(struct lock, timer));
    if (lk->state == LOCK_ACQUIRING) acquire_step(lk->server, lk);
    else if (lk->state == LOCK_HELD) held_timer(lk->server, lk);
}

/* ---- requests ---- */

/*
 * The lock an ACQUIRE with OWNER re-enters, or NULL: a HELD lock of this
 * daemon with exactly the resources of pr (in any order) and pr's OWNER,
 * still valid at now, and bound to the very connection the request came on.
 * Re-entry never crosses connections: an owner id is a label the client
 * chooses, not a secret, so another connection naming it (by design or by
 * accident) must not be handed the holder's lock id. DETACH locks belong to
 * no connection and are never re-entered; their lock id is how they are
 * shared. Every extra hold is thus on the owning connection and ends with it.
 */
static struct lock *find_reentrant(struct server *s, const struct lock_request *req,
                                   const struct proto_request *pr, uint64_t now)
{
    const char *prefix = s->cfg.key_prefix;
    size_t plen = strlen(prefix);
    struct lock *held = NULL;
    for (size_t i = 0; i < pr->nresources; i++) {
        char key[PROTO_MAX_RESOURCE_BYTES + 300];
        if (plen + pr->resources[i].len > sizeof key) return NULL;
        memcpy(key, prefix, plen);
        memcpy(key + plen, pr->resources[i].ptr, pr->resources[i].len);
        struct resource *r = resource_find(&s->tables, key, plen + pr->resources[i].len);
        if (r == NULL || r->holder == NULL || (held != NULL && r->holder != held)) return NULL;
        held = r->holder;
    }
    if (held == NULL || held->nres != pr->nresources || held->owner_id == NULL ||
        strlen(held->owner_id) != pr->owner.len || memcmp(held->owner_id, pr->owner.ptr, pr->owner.len) != 0 ||
        held->owner == NULL || held->owner != req->owner || (held->flags & LOCK_F_ORPHANED) ||
        now >= held->validity_end_ms)
        return NULL;
    return held;
}

/* Check an ACQUIRE's options against the config (pure). Returns NULL when
 * they are acceptable, else the ERR BADREQ text (in text[len] or static). */
static const char *acquire_args_error(const struct config *cfg, const struct proto_request *pr, uint32_t ttl,
                                      char *text, size_t len)
{
    if (ttl > cfg->max_ttl_ms) {
        snprintf(text, len, "ttl %u ms is above max_ttl_ms %u", ttl, cfg->max_ttl_ms);
        return text;
    }
    if ((pr->opts & PROTO_OPT_PRIORITY) && pr->priority > cfg->max_priority) {
        snprintf(text, len, "priority %u is above max_priority %u", pr->priority, cfg->max_priority);
        return text;
    }
    if ((pr->opts & PROTO_OPT_AUTOEXTEND) && (pr->opts & PROTO_OPT_DETACH))
        return "AUTOEXTEND and DETACH exclude each other";
    if ((pr->opts & PROTO_OPT_MAXHOLD) && !(pr->opts & PROTO_OPT_AUTOEXTEND)) return "MAXHOLD needs AUTOEXTEND";
    if (pr->opts & (PROTO_OPT_SHARED | PROTO_OPT_PERMITS)) {
        const char *what = (pr->opts & PROTO_OPT_SHARED) ? "SHARED" : "PERMITS";
        if ((pr->opts & PROTO_OPT_SHARED) && (pr->opts & PROTO_OPT_PERMITS))
            return "SHARED and PERMITS exclude each other";
        if ((pr->opts & PROTO_OPT_PERMITS) && pr->nresources != 1) return "PERMITS takes one resource";
        if (pr->opts & PROTO_OPT_PRIORITY) {
            snprintf(text, len, "PRIORITY applies to exclusive locks only, not %s", what);
            return text;
        }
        if (pr->opts & PROTO_OPT_OWNER) {
            snprintf(text, len, "OWNER (re-entry) applies to exclusive locks only, not %s", what);
            return text;
        }
    }
    return NULL;
}

/* An ACQUIRE with OWNER that this connection's owner holds already: one
 * more hold on the same lock, answered at once with no round trip. Returns
 * true when it was answered that way. */
static bool try_reenter(struct server *s, struct lock_request *req, const struct proto_request *pr)
{
    if (!(pr->opts & PROTO_OPT_OWNER)) return false;
    uint64_t now = clock_ms(s); /* one reading decides validity and what is reported */
    struct lock *held = find_reentrant(s, req, pr, now);
    if (held == NULL || held->holds == UINT32_MAX) return false;
    char line[MGR_REPLY_MAX];
    held->holds++;
    s->stats.acquire_ok++;
    req->validity_end_ms = held->validity_end_ms;
    reply(
        req, line,
        proto_fmt_ok_lock(line, sizeof line, held->id, validity_left(held->validity_end_ms, now), held->fence));
    return true;
}

/* A new ACQUIRING lock for pr with its options set (TTL, flags, priority,
 * OWNER, MAXHOLD as a duration until the grant, attempt budget and wait
 * deadline), not yet linked to a request. NULL when out of memory. */
static struct lock *new_lock(struct server *s, const struct proto_request *pr, uint32_t ttl)
{
    const struct config *cfg = &s->cfg;
    struct lock *lk = lock_new(&s->tables, cfg->key_prefix, pr->resources, pr->nresources);
    if (lk == NULL) return NULL;
    lk->server = s;
    timer_init(&lk->timer, on_lock_timer);
    lk->holds = 1;
    lk->priority = (pr->opts & PROTO_OPT_PRIORITY) ? pr->priority : 0;
    lk->mode = (pr->opts & PROTO_OPT_SHARED)    ? LOCK_SHARED
               : (pr->opts & PROTO_OPT_PERMITS) ? LOCK_PERMITS
                                                : LOCK_EXCLUSIVE;
    lk->permits = (pr->opts & PROTO_OPT_PERMITS) ? pr->permits : 0;
    if ((pr->opts & PROTO_OPT_OWNER) && (lk->owner_id = strndup(pr->owner.ptr, pr->owner.len)) == NULL) {
        lock_free(&s->tables, lk);
        return NULL;
    }
    lk->ttl_ms = ttl;
    if (pr->opts & PROTO_OPT_DETACH) lk->flags |= LOCK_F_DETACH;
    if (pr->opts & PROTO_OPT_AUTOEXTEND) {
        lk->flags |= LOCK_F_AUTOEXTEND;
        /* Kept in maxhold_end_ms as a duration until the grant. */
        lk->maxhold_end_ms = (pr->opts & PROTO_OPT_MAXHOLD) ? pr->maxhold_ms : cfg->max_hold_ms;
    }
    uint64_t now = clock_ms(s);
    lk->created_ms = now;
    if (pr->opts & PROTO_OPT_WAIT) {
        lk->wait_deadline_ms = now + pr->wait_ms;
        lk->max_attempts = UINT_MAX;
    } else {
        uint64_t per_retry = (uint64_t)cfg->retry_delay_ms + cfg->retry_jitter_ms + cfg->master_timeout_ms;
        lk->wait_deadline_ms = now + cfg->retry_count * per_retry + 1;
        lk->max_attempts = cfg->retry_count + 1;
    }
    return lk;
}

/* See lockmgr.h. Checks the options, re-enters an OWNER's hold, enforces
 * max_locks_per_client, then makes the lock and takes its first step. */
void mgr_acquire(struct server *s, struct lock_request *req, const struct proto_request *pr)
{
    assert(req->owner != NULL && req->lock == NULL && pr->nresources >= 1);
    const struct config *cfg = &s->cfg;
    char text[160];
    uint32_t ttl = (pr->opts & PROTO_OPT_TTL) ? pr->ttl_ms : cfg->default_ttl_ms;
    const char *bad = acquire_args_error(cfg, pr, ttl, text, sizeof text);
    if (bad != NULL) {
        s->stats.errors_badreq++;
        reply_err(req, PROTO_ERR_BADREQ, bad);
        return;
    }
    if (try_reenter(s, req, pr)) return;
    if (req->owner->nlocks + req->owner->ndetached + req->owner->nacquiring >= cfg->max_locks_per_client) {
        s->stats.errors_limit++;
        snprintf(text, sizeof text, "max_locks_per_client (%u) reached", cfg->max_locks_per_client);
        reply_err(req, PROTO_ERR_LIMIT, text);
        return;
    }
    struct lock *lk = new_lock(s, pr, ttl);
    if (lk == NULL) {
        s->stats.acquire_error++;
        reply_err(req, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    lk->req = req;
    req->lock = lk;
    req->owner->nacquiring++;
    acquire_step(s, lk);
}

/* Look up the HELD lock a request names, still valid; answers the request
 * itself (ERR NOTHELD) and returns NULL if none. The parser admits only
 * well-formed lock ids. */
static struct lock *lookup_for(struct server *s, struct lock_request *req, const struct proto_request *pr)
{
    struct lock *lk = lock_find(&s->tables, pr->lock_id.ptr, pr->lock_id.len);
    if (lk == NULL || clock_ms(s) >= lk->validity_end_ms) {
        reply_err(req, PROTO_ERR_NOTHELD, "unknown, expired or lost lock id");
        return NULL;
    }
    return lk;
}

/* A client's EXTEND was decided: answer it. OK: the validity is the new
 * one. TAKEN/PREEMPTED: the lock is gone (AUTOEXTEND: EVENT LOST as well);
 * its keys are left to expire with the validity promised. Anything else:
 * ERR NOQUORUM, the lock still held with its old validity. */
static void on_extend_done(void *ctx, const struct rl_outcome *out)
{
    struct lock_request *req = ctx;
    struct lock *lk = req->lock;
    struct server *s = lk->server;
    char line[MGR_REPLY_MAX];
    size_t n;
    assert(lk->ops > 0);
    req->lock = NULL;
    lk->ops--;
    if (lk->state != LOCK_HELD) {
        s->stats.extend_fail++;
        n = proto_fmt_err(line, sizeof line, PROTO_ERR_NOTHELD, "released or lost meanwhile");
        maybe_free(s, lk);
    } else if (lk->flags & LOCK_F_DELAYED) {
        /* Its connection ended meanwhile: the lock-delay, not this extension,
         * says how long it lasts (its shortening reaches each master after this). */
        s->stats.extend_fail++;
        n = proto_fmt_err(line, sizeof line, PROTO_ERR_NOTHELD, "its connection ended (lock-delay)");
    } else if (out->result == RL_OK) {
        s->stats.extend_ok++;
        lk->validity_end_ms = out->started_ms + out->validity_ms;
        if (lk->flags & LOCK_F_ORPHANED) wake(lk); /* its owner closed: the timer releases it */
        else if (!(lk->flags & LOCK_F_AUTOEXTEND)) arm_at(lk, lk->validity_end_ms);
        /* What is left now, as ACQUIRE reports it (not the validity counted from the send). */
        req->validity_end_ms = lk->validity_end_ms;
        n = proto_fmt_ok_lock(line, sizeof line, lk->id, validity_left(lk->validity_end_ms, clock_ms(s)), 0);
    } else if (out->result == RL_TAKEN || out->result == RL_PREEMPTED) {
        bool preempted = out->result == RL_PREEMPTED;
        s->stats.extend_fail++;
        n = proto_fmt_err(line, sizeof line, PROTO_ERR_NOTHELD, "%s",
                          preempted ? "preempted by a higher priority" : "taken by another holder");
        if (lk->flags & LOCK_F_AUTOEXTEND) lose(s, lk, preempted ? "PREEMPTED" : "TAKEN", KEYS_EXPIRE);
        else lock_set_state(s, lk, LOCK_DEAD); /* what keys we still have expire with the validity promised */
    } else {
        s->stats.extend_fail++;
        n = proto_fmt_err(line, sizeof line, PROTO_ERR_NOQUORUM, "%u/%u masters extended", out->granted,
                          out->total);
    }
    reply(req, line, n); /* lk may be freed by now */
}

/* See lockmgr.h: one EXTEND op with the TTL given (or the lock's); the
 * request holds an op count on the lock until on_extend_done. */
void mgr_extend(struct server *s, struct lock_request *req, const struct proto_request *pr)
{
    assert(req->lock == NULL);
    struct lock *lk = lookup_for(s, req, pr);
    if (lk == NULL) return;
    if (lk->flags & LOCK_F_DELAYED) { /* owned by nobody until its lock-delay ends */
        s->stats.extend_fail++;
        reply_err(req, PROTO_ERR_NOTHELD, "its connection ended (lock-delay)");
        return;
    }
    uint32_t ttl = (pr->opts & PROTO_OPT_TTL) ? pr->ttl_ms : lk->ttl_ms;
    if (ttl > s->cfg.max_ttl_ms) {
        char text[96];
        snprintf(text, sizeof text, "ttl %u ms is above max_ttl_ms %u", ttl, s->cfg.max_ttl_ms);
        reply_err(req, PROTO_ERR_BADREQ, text);
        return;
    }
    struct rl_target t;
    target_of(lk, ttl, &t);
    req->lock = lk;
    req->ttl_ms = ttl;
    lk->ops++;
    if (engine_start(s, RL_EXTEND, &t, on_extend_done, req) != 0) {
        lk->ops--;
        req->lock = NULL;
        reply_err(req, PROTO_ERR_INTERNAL, "out of memory");
    }
}

/* A client's RELEASE went out to the masters: answer OK. */
static void on_release_done(void *ctx, const struct rl_outcome *out)
{
    struct lock_request *req = ctx;
    char line[16];
    (void)out;
    reply(req, line, proto_fmt_ok(line, sizeof line));
}

/* The hand-off finished: the RELEASE is answered either way (its key now
 * holds the waiter's token, or it expires), and the waiter's attempt counts
 * like any other. */
static void on_handoff_done(void *ctx, const struct rl_outcome *out)
{
    struct lock *w = ctx;
    struct lock_request *rel = w->handoff_req;
    w->handoff_req = NULL;
    if (rel != NULL) {
        char line[16];
        reply(rel, line, proto_fmt_ok(line, sizeof line));
    }
    on_acquire_done(w, out);
}

/*
 * Hot-resource hand-off: when a released single-resource lock has a local
 * waiter for that resource at the head of the queue, one compare-and-swap
 * per master gives the key straight from the old token to the waiter's,
 * first come first served, instead of a delete and then a new SET.
 * Returns true when the hand-off was started (rel is then answered by
 * on_handoff_done, and lk is DEAD).
 */
static bool try_handoff(struct server *s, struct lock *lk, struct lock_request *rel)
{
    assert(lk->state == LOCK_HELD);
    if (lk->nres != 1 || s->shutting_down || lk->mode != LOCK_EXCLUSIVE) return false;
    struct lock *w = TAILQ_FIRST(&lk->res[0]->waiters);
    if (w == NULL || w->nres != 1 || w->mode != LOCK_EXCLUSIVE || w->state != LOCK_ACQUIRING || w->ops > 0 ||
        w->req == NULL || w->attempts >= w->max_attempts || clock_ms(s) >= w->wait_deadline_ms)
        return false;
    struct rl_target t;
    target_of(w, w->ttl_ms, &t);
    t.fenced = s->cfg.fencing;
    t.old_token = lk->id;
    if (fleet_lock(s, w)) {
        /* Fleet waiting: the masters yield the key instead when another
         * daemon registered before w came, or after FLEET_STREAK_MAX local
         * hand-offs in a row when anyone else is registered. */
        fleet_target(s, w, &t);
        t.wait_age_ms = waited_ms(w, clock_ms(s));
        t.streak = w->res[0]->streak;
    }
    w->attempts++;
    w->ops++;
    w->handoff_req = rel;
    w->via_handoff = true;
    if (engine_start(s, RL_HANDOFF, &t, on_handoff_done, w) != 0) {
        w->attempts--;
        w->ops--;
        w->handoff_req = NULL;
        w->via_handoff = false;
        return false;
    }
    s->stats.handoffs_cas++;
    lock_set_state(s, lk, LOCK_DEAD); /* wakes w, which sees its attempt in flight and waits for it */
    return true;
}

/* See lockmgr.h: a re-entrant hold just drops one; else a hand-off to the
 * first local waiter, or a delete on the masters; the lock is DEAD at once. */
void mgr_release(struct server *s, struct lock_request *req, const struct proto_request *pr)
{
    assert(req->lock == NULL);
    struct lock *lk = lookup_for(s, req, pr);
    if (lk == NULL) {
        s->stats.release_notheld++;
        return;
    }
    s->stats.release_ok++;
    if (lk->holds > 1) { /* a re-entrant owner still holds it */
        char line[16];
        lk->holds--;
        reply(req, line, proto_fmt_ok(line, sizeof line));
        return;
    }
    if (try_handoff(s, lk, req)) return;
    struct rl_target t;
    target_of(lk, lk->ttl_ms, &t);
    if (fleet_on(s)) fleet_release_target(s, lk, &t);
    /* Send the delete before waking waiters, so that on every master the
     * next holder's SET arrives after it. */
    int rc = engine_start(s, RL_RELEASE, &t, on_release_done, req);
    lock_set_state(s, lk, LOCK_DEAD);
    if (rc != 0) reply_err(req, PROTO_ERR_INTERNAL, "out of memory");
}

/* ---- connections going away, shutdown ---- */

/* See lockmgr.h. */
void mgr_cancel_acquire(struct server *s, struct lock_request *req)
{
    struct lock *lk = req->lock;
    if (lk == NULL) return;
    assert(lk->req == req && lk->state == LOCK_ACQUIRING);
    unlink_request(lk);
    uncount_waiter(lk);      /* its connection is going */
    if (lk->ops > 0) return; /* on_acquire_done finishes it */
    abandon(s, lk);
}

/* What becomes of a lock whose connection ended, seen at now (pure). */
enum orphan_fate {
    ORPHAN_RELEASE, /* released at once: no lock-delay, a QUIT, or no validity left */
    ORPHAN_SHORTEN, /* kept until *end_ms = now + delay, its keys' TTL cut to that */
    ORPHAN_KEEP,    /* kept until *end_ms = its validity's end, which comes first */
};

static enum orphan_fate orphan_fate(uint32_t delay_ms, bool quit, uint64_t validity_end_ms, uint64_t now,
                                    uint64_t *end_ms)
{
    if (delay_ms == 0 || quit || validity_end_ms <= now) return ORPHAN_RELEASE;
    if (now + delay_ms < validity_end_ms) {
        *end_ms = now + delay_ms;
        return ORPHAN_SHORTEN;
    }
    *end_ms = validity_end_ms;
    return ORPHAN_KEEP;
}

/* The lock-delay of an orphan: it stays HELD (its resources' holder, so
 * local waiters keep waiting and no hand-off happens) but owned by nobody,
 * no longer extended, until end_ms; counted and logged. */
static void delay_orphan(struct server *s, struct lock *lk, enum orphan_fate fate, uint64_t end_ms,
                         uint64_t now, bool logged)
{
    lk->flags |= LOCK_F_DELAYED;
    if (fate == ORPHAN_SHORTEN) lk->flags |= LOCK_F_SHORTEN;
    lk->validity_end_ms = end_ms;
    s->stats.locks_delayed++;
    if (!logged) return;
    const struct resource *r = lk->res[0];
    log_info("msg=\"lock delayed: its connection ended without RELEASE\" lock=%.8s res=%.*s nres=%zu "
             "delay_ms=%llu",
             lk->id, (int)(r->keylen - r->prefix_len), r->key + r->prefix_len, lk->nres,
             (unsigned long long)(end_ms - now));
}

/* The owner is gone: its locks are released from their timers, so that a
 * connection closing with 100k locks is spread over loop turns (timer.c)
 * instead of queueing all the deletes at once; or, under lock_delay_ms
 * (not after a QUIT), kept until the delay ends (delayed_timer). */
void mgr_conn_closed(struct server *s, struct lock_owner *o, bool quit)
{
    struct lock *lk;
    uint64_t now = clock_ms(s);
    unsigned ndelayed = 0;
    while ((lk = LIST_FIRST(&o->locks)) != NULL) {
        s->stats.auto_released++;
        LIST_REMOVE(lk, owner_link);
        o->nlocks--;
        lk->owner = NULL;
        lk->flags |= LOCK_F_ORPHANED;
        uint64_t end = 0;
        enum orphan_fate fate = orphan_fate(s->cfg.lock_delay_ms, quit, lk->validity_end_ms, now, &end);
        if (fate != ORPHAN_RELEASE) delay_orphan(s, lk, fate, end, now, ndelayed++ < DELAY_LOG_MAX);
        wake(lk);
    }
    /* A connection with thousands of locks does not flood the log. */
    if (ndelayed > DELAY_LOG_MAX)
        log_info("msg=\"locks delayed: their connection ended without RELEASE\" more=%u",
                 ndelayed - DELAY_LOG_MAX);
    /* Its DETACHed locks live on to their TTL, counted against nobody. */
    while ((lk = LIST_FIRST(&o->detached)) != NULL) {
        LIST_REMOVE(lk, creator_link);
        o->ndetached--;
        lk->creator = NULL;
    }
}

/* See lockmgr.h. */
void mgr_shutdown(struct server *s)
{
    s->shutting_down = true;
    /* Locks of connections closed before and not yet released: now; those
     * under lock-delay are left to expire on the masters at the delay's end. */
    struct lock *lk, *next;
    uint64_t now = clock_ms(s);
    for (lk = LIST_FIRST(&s->tables.all); lk != NULL; lk = next) {
        next = LIST_NEXT(lk, all_link);
        if (lk->state != LOCK_HELD || !(lk->flags & LOCK_F_ORPHANED)) continue;
        if (!(lk->flags & LOCK_F_DELAYED) || now >= lk->validity_end_ms) {
            release_and_end(s, lk);
            continue;
        }
        if (lk->flags & LOCK_F_SHORTEN) send_shorten(s, lk, lk->validity_end_ms - now);
        lock_set_state(s, lk, LOCK_DEAD);
    }
}

/* See lockmgr.h. */
void mgr_shutdown_request(struct server *s, struct lock_request *req)
{
    assert(s->shutting_down);
    struct lock *lk = req->lock;
    if (lk == NULL || lk->ops > 0) return;
    /* Queued or between retries: answer now. In-flight attempts see
     * shutting_down when they finish. */
    assert(lk->req == req && lk->state == LOCK_ACQUIRING);
    unlink_request(lk);
    reply_err(req, PROTO_ERR_SHUTDOWN, "redlockd is shutting down");
    lock_set_state(s, lk, LOCK_DEAD);
}

/* At shutdown the owners still connected hear why their locks go. */
void mgr_shutdown_owner(struct server *s, struct lock_owner *o)
{
    assert(s->shutting_down);
    struct lock *lk;
    while ((lk = LIST_FIRST(&o->locks)) != NULL) lose(s, lk, "SHUTDOWN", KEYS_RELEASE);
}

/* See lockmgr.h: no state moves, no replies; the tables are emptied. */
void mgr_free_all(struct server *s)
{
    struct lock *lk;
    while ((lk = LIST_FIRST(&s->tables.all)) != NULL) {
        timer_cancel(&s->timers, &lk->timer);
        if (lk->state == LOCK_HELD) table_remove(&s->tables.locks, &lk->node);
        if (lk->waiting_on != NULL) TAILQ_REMOVE(&lk->waiting_on->waiters, lk, wait_link);
        lock_free(&s->tables, lk);
    }
    s->nheld = s->nwaiters = 0;
}

/* See lockmgr.h. */
void mgr_fleet_wake(struct server *s, const char *msg, size_t len)
{
    if (!fleet_on(s)) return;
    /* "<node> <key>": only the node the key is reserved for is woken. */
    if (len <= POOL_NODE_ID_LEN + 1 || msg[POOL_NODE_ID_LEN] != ' ' ||
        memcmp(msg, s->node_id, POOL_NODE_ID_LEN) != 0)
        return;
    const char *key = msg + POOL_NODE_ID_LEN + 1;
    len -= POOL_NODE_ID_LEN + 1;
    struct resource *r = resource_find(&s->tables, key, len);
    if (r == NULL || r->holder != NULL) return;
    struct lock *head = TAILQ_FIRST(&r->waiters);
    /* Every master publishes the same release: the first wake starts the
     * attempt, the others find it in flight. */
    if (head == NULL || head->state != LOCK_ACQUIRING || head->req == NULL || !fleet_lock(s, head)) return;
    if (head->ops > 0) {
        /* Its attempt may have reached a master before the release: if it
         * fails, it tries again at once rather than at its next poll. */
        head->fleet_woken = true;
        return;
    }
    s->stats.fleet_wakeups++;
    wake_queue_head(r); /* with the readers right behind a reader */
}
