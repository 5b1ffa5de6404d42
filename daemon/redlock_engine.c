/*
 * redlock_engine.c - Redlock attempts over the masters. See redlock_engine.h.
 *
 * Ops live in fixed pages, so they never move. A command's tag names its op
 * by slot and generation: a reply that arrives after its op was decided (and
 * the slot reused) is recognised as stale and dropped.
 *
 * Every op waits at most master_timeout_ms, the same for all: their
 * deadlines are kept in one queue in start order, behind one libevent timer
 * (a timer per op cost 128 bytes each and a heap operation per start).
 */
#include "redlock_engine.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "proto.h"
#include "util.h"

#define OP_PAGE_SLOTS 1024
#define OP_MAX_PAGES 512 /* up to 512k ops in flight (the tag's slot bits) */
/* A tag: generation | second-reply flag | slot. The flag marks the INCR
 * that follows a SET NX in the pipelined fenced acquire. */
#define TAG_SLOT_BITS 19
#define TAG_SLOT_MASK (((uintptr_t)1 << TAG_SLOT_BITS) - 1)
#define TAG_SECOND ((uintptr_t)1 << TAG_SLOT_BITS)
#define TAG_GEN_SHIFT (TAG_SLOT_BITS + 1)
#define TAG_GEN_MASK (UINTPTR_MAX >> TAG_GEN_SHIFT)
/* The daemon never raises a fence counter above this (2^52), about half of what
 * a master may hold and still vote (POOL_FENCE_MAX): one master that lies
 * can lift the honest counters at most this far, and they then have 2^52
 * fences left (143 years at a million a second). PROTOCOL.md 8.4. */
#define FENCE_RAISE_MAX ((uint64_t)1 << 52)
#define FENCE_WARN_EVERY_MS 10000 /* an unusable fence counter is logged this often at most */

struct rl_op {
    struct rl_engine *engine;
    struct pool *pool; /* the master set this op was sent to */
    uint32_t slot;
    uintptr_t gen; /* bumped when the op is freed; 0 never used */
    bool active;
    enum rl_kind kind;
    uint32_t ttl_ms;
    uint64_t started_ms;
    unsigned sent; /* masters the command went to */
    unsigned granted;
    unsigned refused;                 /* answered but did not grant (busy / taken) */
    unsigned replied;                 /* any reply, including errors */
    bool fenced;                      /* ACQUIRE hands out a fence */
    bool pipelined_fence;             /* ... by SET NX + INCR instead of a script */
    uint64_t granted_mask;            /* masters (the first 64) that granted */
    unsigned fence_answers;           /* granting masters whose fence reply came, usable or not */
    unsigned fences;                  /* ... usable fences among them (1..POOL_FENCE_MAX) */
    unsigned bad_fences;              /* ... unusable: an exhausted or foreign counter */
    bool preempted;                   /* EXTEND: a master said a higher priority holds the key */
    unsigned yielded;                 /* HANDOFF: masters that yielded to another daemon (also refused) */
    unsigned need;                    /* grants needed when above the quorum (PERMITS), else 0 */
    char mode_conflict[32];           /* shared ACQUIRE: another mode a master reported */
    uint64_t fence_max, fence_min;    /* over the usable fences */
    uint64_t *fence_votes;            /* every usable fence once two differ (NULL while all agree) */
    bool fence_votes_failed;          /* ... out of memory for them: the largest is the fence */
    uint64_t deadline_ms;             /* decided with what it has by then */
    TAILQ_ENTRY(rl_op) deadline_link; /* in engine->deadlines while active */
    rl_done_fn *done;
    rl_each_fn *each; /* RL_INSPECT only */
    void *ctx;
    uint32_t next_free; /* free list link */
};

#define MAX_DRAINING_POOLS 4
#define DRAIN_TICK_MS 100
#define DRAIN_MAX_MS 10000 /* a replaced master set is freed by then at the latest */

/* A master set replaced by a reload, kept until its ops and commands end. */
struct draining_pool {
    struct pool *pool;
    unsigned ops; /* ops still counting its votes */
    uint64_t since_ms;
};

struct op_ref {
    uint32_t slot;
    uintptr_t gen;
};

struct rl_engine {
    struct event_base *base;
    struct pool *pool; /* the current master set */
    struct draining_pool draining[MAX_DRAINING_POOLS];
    struct event *drain_timer;
    uint32_t timeout_ms;
    double drift_factor;
    TAILQ_HEAD(rl_op_queue, rl_op) deadlines; /* active ops, earliest deadline first */
    struct event *deadline_timer;
    uint64_t deadline_armed;   /* the deadline it is armed for, 0 when not */
    struct op_ref *decide_now; /* ops to decide on the next turn */
    size_t ndecide_now, decide_now_cap;
    struct event *decide_now_event;
    struct rl_op *pages[OP_MAX_PAGES];
    uint32_t nslots;          /* slots allocated so far */
    uint32_t free_head;       /* UINT32_MAX when empty */
    unsigned inflight;        /* ops started and not yet decided */
    uint64_t fence_warned_ms; /* when an unusable fence counter was last logged */
    rl_wake_fn *wake;         /* fleet waiting: a master's wake-up message, or NULL */
    void *wake_ctx;
};

/* The op in slot (slot < e->nslots). */
static struct rl_op *op_at(struct rl_engine *e, uint32_t slot)
{
    return &e->pages[slot / OP_PAGE_SLOTS][slot % OP_PAGE_SLOTS];
}

static void on_pool_reply(void *userdata, size_t master, uintptr_t tag, const struct pool_reply *reply);

/* A master's wake-up message (fleet waiting): to whoever asked. */
static void on_pool_wake(void *userdata, size_t master, const char *key, size_t len)
{
    struct rl_engine *e = userdata;
    (void)master;
    if (e->wake != NULL) e->wake(e->wake_ctx, key, len);
}

void rl_engine_set_wake(struct rl_engine *e, rl_wake_fn *fn, void *ctx)
{
    e->wake = fn;
    e->wake_ctx = ctx;
}

/* A free op slot (its gen kept), growing by a page of OP_PAGE_SLOTS when
 * none is free; NULL when out of memory or at OP_MAX_PAGES. */
static struct rl_op *op_alloc(struct rl_engine *e)
{
    if (e->free_head == UINT32_MAX) {
        uint32_t page = e->nslots / OP_PAGE_SLOTS;
        if (page >= OP_MAX_PAGES) return NULL;
        struct rl_op *slots = calloc(OP_PAGE_SLOTS, sizeof *slots);
        if (slots == NULL) return NULL;
        e->pages[page] = slots;
        for (uint32_t i = 0; i < OP_PAGE_SLOTS; i++) {
            struct rl_op *op = &slots[i];
            op->engine = e;
            op->slot = e->nslots + i;
            op->gen = 1;
            op->next_free = i + 1 < OP_PAGE_SLOTS ? op->slot + 1 : UINT32_MAX;
        }
        e->free_head = e->nslots;
        e->nslots += OP_PAGE_SLOTS;
    }
    struct rl_op *op = op_at(e, e->free_head);
    e->free_head = op->next_free;
    return op;
}

/* The draining entry of p, or (p NULL) a free entry; NULL when none. */
static struct draining_pool *draining_of(struct rl_engine *e, const struct pool *p)
{
    for (size_t i = 0; i < MAX_DRAINING_POOLS; i++)
        if (e->draining[i].pool == p && p != NULL) return &e->draining[i];
    return NULL;
}

/* Return a decided op to the free list: out of the deadline queue and its
 * draining pool's count, generation bumped (its late replies are stale). */
static void op_free(struct rl_op *op)
{
    struct rl_engine *e = op->engine;
    struct draining_pool *d = draining_of(e, op->pool);
    if (d != NULL && d->ops > 0) d->ops--;
    op->pool = NULL;
    TAILQ_REMOVE(&e->deadlines, op, deadline_link);
    op->active = false;
    e->inflight--;
    op->gen = (op->gen + 1) & TAG_GEN_MASK;
    if (op->gen == 0) op->gen = 1;
    op->done = NULL;
    op->each = NULL;
    op->ctx = NULL;
    free(op->fence_votes);
    op->fence_votes = NULL;
    op->next_free = e->free_head;
    e->free_head = op->slot;
}

/* See redlock_engine.h. */
uint64_t rl_validity_ms(uint32_t ttl_ms, uint64_t elapsed_ms, double drift_factor)
{
    double drift = (double)ttl_ms * drift_factor + 2.0;
    double v = (double)ttl_ms - (double)elapsed_ms - drift;
    return v > 0 ? (uint64_t)v : 0;
}

/*
 * A fenced ACQUIRE or HANDOFF that a majority granted: wait for more of its
 * masters' fences? While fewer than a majority of usable fences came and
 * more may come (to succeed, or for the error to count every master); and
 * while the usable fences disagree and some master has not answered yet,
 * so that as many as possible vouch for the fence chosen (rl_choose_fence).
 * Never once the deadline passed (final).
 */
static bool fence_wait(const struct rl_votes *v, bool final)
{
    if (final) return false;
    unsigned pending = (v->sent - v->replied) + (v->granted - v->fence_answers);
    if (v->fences < v->quorum) return pending > 0;
    return v->fence_min != v->fence_max && pending > 0;
}

unsigned rl_permits_quorum(unsigned n, unsigned total)
{
    unsigned q = (unsigned)(((uint64_t)n * total) / ((uint64_t)n + 1)) + 1;
    unsigned maj = total / 2 + 1;
    return q > maj ? q : maj;
}

enum rl_verdict rl_decide(const struct rl_votes *v, bool final)
{
    assert(v->total == 0 || (v->quorum >= 1 && v->quorum <= v->total));
    assert(v->replied <= v->sent && v->granted + v->refused <= v->replied);
    unsigned outstanding = v->sent - v->replied;
    unsigned need = v->need > v->quorum ? v->need : v->quorum; /* grants needed */
    switch (v->kind) {
    case RL_ACQUIRE:
    case RL_HANDOFF:
    case RL_EXTEND:
    case RL_FENCE:
        if (v->kind == RL_EXTEND && v->refused > v->total - need)
            /* More than N-Q masters hold other tokens: no majority can
             * extend, the lock is gone. One refusal alone is not (a stale
             * key of a failed attempt, say): the extension still stands if
             * a majority grants it. */
            return v->preempted ? RL_V_PREEMPTED : RL_V_TAKEN;
        if (v->granted >= need && v->fenced && fence_wait(v, final))
            return RL_V_WAIT; /* granted: wait for the granting masters' fences */
        if (v->granted >= need && (!v->fenced || v->fences >= v->quorum)) return RL_V_GRANTED;
        if (v->granted >= need && v->bad_fences > 0)
            return RL_V_BADFENCE; /* granted, but too few counters could give a fence */
        if (final || outstanding == 0)
            /* A failure waits for every answer (or the deadline) so that the
             * error says what all the masters said; success never waits.
             * BUSY when a holder refused us and a majority answered;
             * NOQUORUM when too few masters answered at all. */
            return v->refused > 0 && v->granted + v->refused >= v->quorum ? RL_V_BUSY : RL_V_NOQUORUM;
        return RL_V_WAIT;
    case RL_RELEASE:
    case RL_UNREGISTER:
        /* Done once a majority answered (the rest still get the delete). */
        return final || outstanding == 0 || v->replied >= v->quorum ? RL_V_DONE : RL_V_WAIT;
    case RL_INSPECT:
    case RL_MARK: return final || outstanding == 0 ? RL_V_DONE : RL_V_WAIT;
    }
    return RL_V_WAIT;
}

/* qsort order for fences: largest first. */
static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Why the k-th largest (see redlock_engine.h): every fence handed out
 * before is held by the counters of some majority; that majority and these
 * g masters share at least k, so at least k of the g fences are above it
 * and so is the k-th largest; and the k - 1 largest alone (a minority when
 * every master answered) cannot decide it.
 */
void rl_choose_fence(uint64_t *votes, const struct rl_votes *v, uint64_t max_raise, struct rl_outcome *out)
{
    assert(v->fences >= v->quorum && v->fences <= v->total);
    uint64_t f = v->fence_max; /* every fence the same (or no room to sort: the largest) */
    if (votes != NULL) {
        qsort(votes, v->fences, sizeof *votes, cmp_desc);
        f = votes[v->fences + v->quorum - v->total - 1];
    }
    bool raise = v->fence_min < f;
    if (raise && f > max_raise) {
        unsigned high = 0;
        for (unsigned i = 0; votes != NULL && i < v->fences; i++) high += votes[i] > max_raise;
        out->result = RL_BADFENCE;
        out->bad_fences = high > 0 ? high : 1;
        return;
    }
    out->fence = f;
    out->fence_agreed = !raise;
}

/* The votes of op so far, for rl_decide(). */
static struct rl_votes votes_of(const struct rl_op *op)
{
    return (struct rl_votes){
        .kind = op->kind,
        .total = (unsigned)pool_size(op->pool),
        .quorum = (unsigned)pool_quorum(op->pool),
        .need = op->need,
        .sent = op->sent,
        .replied = op->replied,
        .granted = op->granted,
        .refused = op->refused,
        .preempted = op->preempted,
        .fenced = op->fenced,
        .fence_answers = op->fence_answers,
        .fences = op->fences,
        .bad_fences = op->bad_fences,
        .fence_min = op->fence_min,
        .fence_max = op->fence_max,
    };
}

/*
 * Decide the op if its outcome is certain (or final is set: the deadline
 * passed): rl_decide() judges the votes, this adds the clock (validity) and
 * the fence, frees the op and then calls its done callback once. Returns
 * true when it was decided (op is then freed and may be reused).
 */
static bool op_try_decide(struct rl_op *op, bool final)
{
    assert(op->active);
    struct rl_engine *e = op->engine;
    struct rl_votes v = votes_of(op);
    struct rl_outcome out = {
        .granted = op->granted,
        .answered = op->granted + op->refused,
        .total = v.total,
        .started_ms = op->started_ms,
        .yielded = op->yielded,
    };
    switch (rl_decide(&v, final)) {
    case RL_V_WAIT: return false;
    case RL_V_GRANTED:
        out.validity_ms = rl_validity_ms(op->ttl_ms, now_ms() - op->started_ms, e->drift_factor);
        out.result = out.validity_ms > 0 || op->kind == RL_FENCE ? RL_OK : RL_TOOSLOW;
        if (op->fenced) rl_choose_fence(op->fence_votes, &v, FENCE_RAISE_MAX, &out);
        break;
    case RL_V_TAKEN: out.result = RL_TAKEN; break;
    case RL_V_PREEMPTED: out.result = RL_PREEMPTED; break;
    case RL_V_BADFENCE:
        out.result = RL_BADFENCE;
        out.bad_fences = op->bad_fences;
        break;
    case RL_V_BUSY: out.result = RL_BUSY; break;
    case RL_V_NOQUORUM: out.result = RL_NOQUORUM; break;
    case RL_V_DONE: out.result = RL_OK; break;
    }
    memcpy(out.mode_conflict, op->mode_conflict, sizeof out.mode_conflict);
    rl_done_fn *done = op->done;
    void *ctx = op->ctx;
    op_free(op); /* before the callback: it may start new ops */
    if (done != NULL) done(ctx, &out);
    return true;
}

/* Arm the deadline timer for the earliest active op (no-op when armed for
 * it already or when no op is active). */
static void arm_deadline(struct rl_engine *e)
{
    struct rl_op *first = TAILQ_FIRST(&e->deadlines);
    if (first == NULL || first->deadline_ms == e->deadline_armed) return;
    uint64_t now = now_ms();
    uint64_t d = first->deadline_ms > now ? first->deadline_ms - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    evtimer_add(e->deadline_timer, &tv);
    e->deadline_armed = first->deadline_ms;
}

/* Decide, with what they have, the ops whose deadline passed. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct rl_engine *e = arg;
    (void)fd;
    (void)what;
    e->deadline_armed = 0;
    uint64_t now = now_ms();
    struct rl_op *op;
    /* Deciding may start ops (at the tail) and free others: look again each time. */
    while ((op = TAILQ_FIRST(&e->deadlines)) != NULL && op->deadline_ms <= now) op_try_decide(op, true);
    arm_deadline(e);
}

/* Log a master whose fence counter cannot give a fence, at most every
 * FENCE_WARN_EVERY_MS (it answers every fenced acquire that way). */
static void warn_bad_fence(struct rl_op *op, size_t master, const struct pool_reply *r)
{
    struct rl_engine *e = op->engine;
    uint64_t now = now_ms();
    if (e->fence_warned_ms != 0 && now - e->fence_warned_ms < FENCE_WARN_EVERY_MS) return;
    e->fence_warned_ms = now;
    struct master_status st;
    pool_master_status(op->pool, master, &st);
    if (r->kind == POOL_REPLY_INTEGER)
        log_warn("msg=\"fence counter exhausted or not written by redlockd; this master's fence is ignored\" "
                 "master=%s fence=%lld max=%lld",
                 st.addr, r->integer, (long long)POOL_FENCE_MAX);
    else
        log_warn("msg=\"fence counter cannot be incremented; this master's fence is ignored\" master=%s "
                 "error=\"%.*s\"",
                 st.addr, r->kind == POOL_REPLY_ERROR ? (int)(r->len > 100 ? 100 : r->len) : 7,
                 r->kind == POOL_REPLY_ERROR ? r->str : "BADTYPE");
}

/* One granting master's fence reply: a usable fence (1..POOL_FENCE_MAX), a
 * counter that cannot give one (an INCR error, -1 from a script, a number
 * out of range), or nothing (the master went away). */
static void note_fence(struct rl_op *op, size_t master, const struct pool_reply *r)
{
    unsigned cap = (unsigned)pool_size(op->pool);
    if (op->fence_answers >= cap) return; /* one per master; never more */
    op->fence_answers++;
    if (r->kind == POOL_REPLY_NONE) return;
    if (r->kind != POOL_REPLY_INTEGER || r->integer < 1 || r->integer > POOL_FENCE_MAX) {
        op->bad_fences++;
        warn_bad_fence(op, master, r);
        return;
    }
    uint64_t f = (uint64_t)r->integer;
    if (op->fences > 0 && f != op->fence_max && op->fence_votes == NULL && !op->fence_votes_failed) {
        /* The first disagreement: from now on keep every fence (they were
         * all fence_max so far), to choose among them. */
        op->fence_votes = malloc(cap * sizeof *op->fence_votes);
        if (op->fence_votes == NULL) {
            op->fence_votes_failed = true; /* choose the largest, as without a vote */
            log_error("msg=\"out of memory; this fence is the largest the masters gave\"");
        }
        for (unsigned i = 0; op->fence_votes != NULL && i < op->fences; i++) op->fence_votes[i] = op->fence_max;
    }
    if (op->fence_votes != NULL) op->fence_votes[op->fences] = f;
    if (op->fences == 0 || f > op->fence_max) op->fence_max = f;
    if (op->fences == 0 || f < op->fence_min) op->fence_min = f;
    op->fences++;
}

/* Count one master's vote. */
static void on_pool_reply(void *userdata, size_t master, uintptr_t tag, const struct pool_reply *r)
{
    struct rl_engine *e = userdata;
    uint32_t slot = (uint32_t)(tag & TAG_SLOT_MASK);
    if (slot >= e->nslots) return;
    struct rl_op *op = op_at(e, slot);
    if (!op->active || op->gen != ((tag >> TAG_GEN_SHIFT) & TAG_GEN_MASK)) return; /* stale */
    if (tag & TAG_SECOND) { /* the INCR after a granted SET: that master's fence */
        if (master < 64 && (op->granted_mask >> master & 1)) note_fence(op, master, r);
        op_try_decide(op, false);
        return;
    }
    op->replied++;
    if (op->kind != RL_INSPECT && op->kind != RL_RELEASE && !pool_master_votes(op->pool, master)) {
        op_try_decide(op, false); /* a quarantined master's answer is no vote */
        return;
    }
    switch (op->kind) {
    case RL_ACQUIRE:
    case RL_HANDOFF:
        /* SET NX: +OK granted, nil held. The scripts: 0 held; 1, or the
         * fence when fenced, granted; fenced, -1: granted, but the fence
         * counter could give no fence. */
        if (r->kind == POOL_REPLY_OK ||
            (r->kind == POOL_REPLY_INTEGER && (r->integer > 0 || (op->fenced && r->integer == -1)))) {
            op->granted++;
            if (master < 64) op->granted_mask |= (uint64_t)1 << master;
            if (op->fenced && !op->pipelined_fence) note_fence(op, master, r);
        } else if (r->kind == POOL_REPLY_NIL || (r->kind == POOL_REPLY_INTEGER && r->integer == 0)) {
            op->refused++;
        } else if (op->kind == RL_HANDOFF && r->kind == POOL_REPLY_INTEGER && r->integer == POOL_YIELDED) {
            op->refused++; /* freed for another daemon's waiters: no vote for ours */
            op->yielded++;
        } else if (r->kind == POOL_REPLY_STRING && r->len > 5 && r->len < sizeof op->mode_conflict + 5 &&
                   memcmp(r->str, "mode ", 5) == 0) {
            /* the shared acquire: the key is held in another mode */
            op->refused++;
            if (op->mode_conflict[0] == '\0') {
                memcpy(op->mode_conflict, r->str + 5, r->len - 5);
                op->mode_conflict[r->len - 5] = '\0';
            }
        }
        break;
    case RL_MARK: break;
    case RL_FENCE:
        if (r->kind == POOL_REPLY_INTEGER && r->integer == 1) op->granted++;
        break;
    case RL_EXTEND:
        if (r->kind == POOL_REPLY_INTEGER && r->integer == 1) op->granted++;
        else if (r->kind == POOL_REPLY_INTEGER && r->integer <= 0) op->refused++;
        if (r->kind == POOL_REPLY_INTEGER && r->integer < 0) op->preempted = true;
        break;
    case RL_RELEASE:
    case RL_UNREGISTER:
        if (r->kind == POOL_REPLY_INTEGER) op->granted++;
        break;
    case RL_INSPECT:
        if (r->kind == POOL_REPLY_STRING) op->granted++;
        if (op->each != NULL) op->each(op->ctx, master, r);
        break;
    }
    op_try_decide(op, false);
}

/* Ops whose outcome was certain at their start (too few masters usable),
 * decided from the loop: never inside rl_start, whose caller is mid-function. */
static void on_decide_now(evutil_socket_t fd, short what, void *arg)
{
    struct rl_engine *e = arg;
    (void)fd;
    (void)what;
    /* Deciding may start ops that land here again: those wait for the next turn. */
    size_t n = e->ndecide_now;
    for (size_t i = 0; i < n; i++) {
        struct op_ref ref = e->decide_now[i];
        struct rl_op *op = op_at(e, ref.slot);
        if (op->active && op->gen == ref.gen) op_try_decide(op, false);
    }
    memmove(e->decide_now, e->decide_now + n, (e->ndecide_now - n) * sizeof *e->decide_now);
    e->ndecide_now -= n;
}

/* Have op decided on the next loop turn (by slot and generation, so a
 * reused slot is not). Returns 0, or -1 when out of memory (it is then
 * decided at its deadline). */
static int decide_next_turn(struct rl_engine *e, struct rl_op *op)
{
    if (e->ndecide_now == e->decide_now_cap) {
        size_t cap = e->decide_now_cap ? 2 * e->decide_now_cap : 64;
        struct op_ref *grown = realloc(e->decide_now, cap * sizeof *grown);
        if (grown == NULL) return -1;
        e->decide_now = grown;
        e->decide_now_cap = cap;
    }
    e->decide_now[e->ndecide_now++] = (struct op_ref){op->slot, op->gen};
    event_active(e->decide_now_event, EV_TIMEOUT, 0);
    return 0;
}

/* Reset op for a new attempt of kind on t, sent now to the current master
 * set with done/each/ctx as its callbacks, and counted in flight. */
static void op_init(struct rl_engine *e, struct rl_op *op, enum rl_kind kind, const struct rl_target *t,
                    rl_done_fn *done, rl_each_fn *each, void *ctx)
{
    op->active = true;
    op->pool = e->pool;
    e->inflight++;
    op->kind = kind;
    op->ttl_ms = t->ttl_ms;
    op->done = done;
    op->each = each;
    op->ctx = ctx;
    op->sent = op->granted = op->refused = op->replied = op->yielded = 0;
    op->fenced = (kind == RL_ACQUIRE || kind == RL_HANDOFF) && t->fenced;
    op->pipelined_fence = kind == RL_ACQUIRE && t->fenced && t->nkeys == 1 && t->priority == 0 &&
                          t->node == NULL && t->mode == NULL;
    op->granted_mask = 0;
    op->fence_answers = op->fences = op->bad_fences = 0;
    op->fence_votes_failed = false;
    op->preempted = false;
    op->mode_conflict[0] = '\0';
    op->need = t->mode != NULL && t->limit > 0 && (kind == RL_ACQUIRE || kind == RL_EXTEND)
                   ? rl_permits_quorum(t->limit, (unsigned)pool_size(e->pool))
                   : 0;
    op->fence_max = op->fence_min = 0;
    op->started_ms = now_ms();
    op->deadline_ms = op->started_ms + e->timeout_ms;
}

/* Put an active op into the deadline queue, in deadline order (at the tail,
 * unless a reload shortened the timeout), and arm the deadline timer. */
static void op_queue_deadline(struct rl_engine *e, struct rl_op *op)
{
    struct rl_op *before = TAILQ_LAST(&e->deadlines, rl_op_queue);
    while (before != NULL && before->deadline_ms > op->deadline_ms)
        before = TAILQ_PREV(before, rl_op_queue, deadline_link);
    if (before == NULL) TAILQ_INSERT_HEAD(&e->deadlines, op, deadline_link);
    else TAILQ_INSERT_AFTER(&e->deadlines, before, op, deadline_link);
    arm_deadline(e);
}

/* The ARGV of an op's command, built once for every master. */
struct op_argv {
    char ttl[PROTO_U64_DIGITS]; /* the TTL, or RL_FENCE's fence */
    size_t ttl_len;
    char prio[PROTO_U64_DIGITS];
    size_t prio_len;
    size_t token_len;
    const char *args[3 + PROTO_MAX_RESOURCES];
    size_t arglens[3 + PROTO_MAX_RESOURCES];
    size_t acquire_nargs; /* ARGV count of a scripted ACQUIRE */
    /* Fleet waiting's numbers (rl_target) as text. */
    char age[PROTO_U64_DIGITS], streak[PROTO_U64_DIGITS], streak_max[PROTO_U64_DIGITS];
    char reserve[PROTO_U64_DIGITS], registry[PROTO_U64_DIGITS];
    size_t age_len, streak_len, streak_max_len, reserve_len, registry_len;
};

/* ARGV: token, ttl, priority, then (a priority ACQUIRE) one known holder
 * token per lock key, "" when none; RL_FENCE: the fence alone. a must not
 * move afterwards (args point into it). */
static void op_argv_build(enum rl_kind kind, const struct rl_target *t, struct op_argv *a)
{
    a->ttl_len = proto_put_u64(a->ttl, kind == RL_FENCE ? t->fence : t->ttl_ms);
    a->token_len = strlen(t->token);
    a->prio_len = proto_put_u64(a->prio, t->priority);
    a->args[0] = t->token;
    a->arglens[0] = a->token_len;
    a->args[1] = a->ttl;
    a->arglens[1] = a->ttl_len;
    a->args[2] = a->prio;
    a->arglens[2] = a->prio_len;
    a->acquire_nargs = 3;
    a->age_len = proto_put_u64(a->age, t->wait_age_ms);
    a->streak_len = proto_put_u64(a->streak, t->streak);
    a->streak_max_len = proto_put_u64(a->streak_max, t->streak_max);
    a->reserve_len = proto_put_u64(a->reserve, t->reserve_ms);
    a->registry_len = proto_put_u64(a->registry, t->registry_ms);
    if (kind == RL_ACQUIRE && t->priority > 0 && t->nkeys <= PROTO_MAX_RESOURCES) {
        for (size_t i = 0; i < t->nkeys; i++) {
            const char *k = t->known != NULL && t->known[i] != NULL ? t->known[i] : "";
            a->args[3 + i] = k;
            a->arglens[3 + i] = strlen(k);
        }
        a->acquire_nargs += t->nkeys;
    }
    if (kind == RL_FENCE) { /* its one argument is the fence */
        a->args[0] = a->ttl;
        a->arglens[0] = a->ttl_len;
    }
}

/* A shared or PERMITS lock's command (redis_pool.c LUA_SHARED_*): ACQUIRE
 * ARGV token, ttl, mode, limit, fenced with the fence counter after the
 * keys, and with fleet waiting node, registry ms, waiter's age, channel;
 * EXTEND token, ttl, mode, limit; RELEASE token, and with fleet waiting
 * channel, reservation ms, node, age of the oldest local waiter. */
static int send_shared(struct rl_engine *e, enum rl_kind kind, const struct rl_target *t,
                       const struct op_argv *a, size_t m, uintptr_t tag)
{
    char lim[PROTO_U64_DIGITS];
    bool fleet = t->node != NULL;
    if (kind == RL_RELEASE) {
        const char *args[5] = {t->token, t->wake_channel, a->reserve, t->node, a->age};
        size_t lens[5] = {a->token_len, t->wake_channel_len, a->reserve_len, POOL_NODE_ID_LEN, a->age_len};
        return pool_script(e->pool, m, tag, SCRIPT_SHARED_RELEASE, t->nkeys, t->keys, t->keylens, fleet ? 5 : 1,
                           args, lens);
    }
    const char *args[9] = {t->token,    a->ttl, t->mode,        lim, t->fenced ? "1" : "0", t->node,
                           a->registry, a->age, t->wake_channel};
    size_t lens[9] = {a->token_len,     a->ttl_len,      strlen(t->mode), proto_put_u64(lim, t->limit), 1,
                      POOL_NODE_ID_LEN, a->registry_len, a->age_len,      t->wake_channel_len};
    if (kind == RL_EXTEND)
        return pool_script(e->pool, m, tag, SCRIPT_SHARED_EXTEND, t->nkeys, t->keys, t->keylens, 4, args, lens);
    return pool_script(e->pool, m, tag, SCRIPT_SHARED_ACQUIRE, t->nkeys + 1, t->keys, t->keylens,
                       fleet && t->nkeys == 1 ? 9 : 5, args, lens);
}

/* Queue the op's command (tagged tag) to master m. Returns 0 when it was
 * queued, -1 when that master cannot take it now. */
static int op_send(struct rl_engine *e, enum rl_kind kind, const struct rl_target *t, const struct op_argv *a,
                   size_t m, uintptr_t tag)
{
    /* A shared or PERMITS lock has its own scripts. */
    if (t->mode != NULL && (kind == RL_ACQUIRE || kind == RL_EXTEND || kind == RL_RELEASE))
        return send_shared(e, kind, t, a, m, tag);
    /* The key and, for ACQUIRE and HANDOFF only (other targets have one key), its fence counter. */
    const char *hkeys[2] = {t->keys[0], NULL};
    size_t hkeylens[2] = {t->keylens[0], 0};
    if (kind == RL_ACQUIRE || kind == RL_HANDOFF) {
        hkeys[1] = t->keys[1];
        hkeylens[1] = t->keylens[1];
    }
    if (kind == RL_HANDOFF) {
        const char *hargs[12] = {t->old_token,          t->token,   a->ttl,          a->prio,
                                 t->fenced ? "1" : "0", t->node,    a->age,          a->streak,
                                 a->streak_max,         a->reserve, t->wake_channel, a->registry};
        size_t hlens[12] = {
            strlen(t->old_token), a->token_len,   a->ttl_len,    a->prio_len,       1,
            POOL_NODE_ID_LEN,     a->age_len,     a->streak_len, a->streak_max_len, a->reserve_len,
            t->wake_channel_len,  a->registry_len};
        return pool_script(e->pool, m, tag, SCRIPT_HANDOFF, 2, hkeys, hkeylens, t->node != NULL ? 12 : 5, hargs,
                           hlens);
    }
    if (kind == RL_ACQUIRE && t->nkeys == 1 && t->priority == 0 && t->node != NULL) {
        /* Fleet waiting: one script honours reservations and registers a refusal. */
        const char *fargs[6] = {t->token, a->ttl, t->fenced ? "1" : "0", t->node, a->registry, a->age};
        size_t flens[6] = {a->token_len, a->ttl_len, 1, POOL_NODE_ID_LEN, a->registry_len, a->age_len};
        return pool_script(e->pool, m, tag, SCRIPT_ACQUIRE_FLEET, 2, hkeys, hkeylens, 6, fargs, flens);
    }
    if (kind == RL_UNREGISTER) {
        const char *uargs[2] = {t->node, t->wake_channel};
        size_t ulens[2] = {POOL_NODE_ID_LEN, t->wake_channel_len};
        return pool_script(e->pool, m, tag, SCRIPT_UNREGISTER, 1, hkeys, hkeylens, 2, uargs, ulens);
    }
    if (kind == RL_RELEASE && t->node != NULL) {
        /* Fleet waiting: a registered waiter gets the reservation and a wake-up. */
        const char *rargs[3] = {t->token, t->wake_channel, a->reserve};
        size_t rlens[3] = {a->token_len, t->wake_channel_len, a->reserve_len};
        return pool_script(e->pool, m, tag, SCRIPT_RELEASE, t->nkeys, t->keys, t->keylens, 3, rargs, rlens);
    }
    if (kind == RL_ACQUIRE && t->nkeys == 1 && t->priority == 0) {
        /* The plain command every Redlock client uses ... */
        const char *argv[] = {"SET", t->keys[0], t->token, "NX", "PX", a->ttl};
        size_t lens[] = {3, t->keylens[0], a->token_len, 2, 2, a->ttl_len};
        int rc = pool_command(e->pool, m, tag, 6, argv, lens);
        if (rc == 0 && t->fenced) {
            /* ... and, pipelined behind it, the fence counter: INCR runs
             * whether or not the SET granted (a fence may skip numbers,
             * never repeat), and only granting masters' values count. */
            const char *incr[] = {"INCR", t->keys[1]};
            size_t incr_lens[] = {4, t->keylens[1]};
            pool_command(e->pool, m, tag | TAG_SECOND, 2, incr, incr_lens);
        }
        return rc;
    }
    static const enum pool_script script_of[] = {
        [RL_ACQUIRE] = SCRIPT_ACQUIRE_MULTI, [RL_EXTEND] = SCRIPT_EXTEND,     [RL_RELEASE] = SCRIPT_RELEASE,
        [RL_INSPECT] = SCRIPT_INSPECT,       [RL_FENCE] = SCRIPT_FENCE_RAISE, [RL_HANDOFF] = SCRIPT_HANDOFF,
        [RL_UNREGISTER] = SCRIPT_UNREGISTER,
    };
    static const size_t nargs_of[] = {[RL_ACQUIRE] = 3, [RL_EXTEND] = 3,  [RL_RELEASE] = 1,   [RL_INSPECT] = 0,
                                      [RL_FENCE] = 1,   [RL_HANDOFF] = 5, [RL_UNREGISTER] = 2};
    enum pool_script script = script_of[kind];
    const char *const *keys = t->keys;
    const size_t *keylens = t->keylens;
    size_t nkeys = kind == RL_INSPECT ? 1 : t->nkeys;
    if (kind == RL_ACQUIRE && t->fenced) {
        script = SCRIPT_ACQUIRE_FENCED;
        nkeys = t->nkeys + 1; /* the lock keys, then the fence counter */
    } else if (kind == RL_FENCE) {
        keys += t->nkeys;
        keylens += t->nkeys;
        nkeys = 1;
    }
    size_t nargs = kind == RL_ACQUIRE ? a->acquire_nargs : nargs_of[kind];
    return pool_script(e->pool, m, tag, script, nkeys, keys, keylens, nargs, a->args, a->arglens);
}

/*
 * Start one op: its command goes to every master of the current set now
 * (copied into their output buffers: t need not outlive this), its votes
 * are counted by on_pool_reply, and it is decided by op_try_decide at the
 * latest at its deadline; never from inside this call. Returns 0, or -1
 * when no op slot could be allocated (nothing sent, done never called).
 */
static int op_start(struct rl_engine *e, enum rl_kind kind, const struct rl_target *t, rl_done_fn *done,
                    rl_each_fn *each, void *ctx)
{
    assert(t->token != NULL && t->nkeys >= 1 && t->nkeys <= PROTO_MAX_RESOURCES);
    assert(kind != RL_HANDOFF || (t->old_token != NULL && t->nkeys == 1));
    struct rl_op *op = op_alloc(e);
    if (op == NULL) return -1;
    op_init(e, op, kind, t, done, each, ctx);
    op_queue_deadline(e, op);
    uintptr_t tag = (op->gen << TAG_GEN_SHIFT) | op->slot;
    struct op_argv a;
    op_argv_build(kind, t, &a);
    size_t n = pool_size(e->pool);
    for (size_t m = 0; m < n; m++)
        if (op_send(e, kind, t, &a, m, tag) == 0) op->sent++;
    /* With too few masters usable the outcome is already certain: decide
     * it from the loop (what was sent may still answer, for INSPECT). */
    if (op->sent < pool_quorum(op->pool) && decide_next_turn(e, op) != 0)
        log_error("msg=\"out of memory; the op is decided at its deadline\"");
    return 0;
}

/* A release nobody waits for needs no op: its replies carry tag 0 (gen 0 is
 * never an op's), which on_pool_reply drops as stale. A connection closing
 * with 100k locks must not hold 100k ops for their replies. */
static void send_release_untracked(struct rl_engine *e, enum rl_kind kind, const struct rl_target *t)
{
    struct op_argv a;
    op_argv_build(kind, t, &a);
    size_t n = pool_size(e->pool);
    for (size_t m = 0; m < n; m++) op_send(e, kind, t, &a, m, 0);
}

/* RL_MARK: the writer-waiting marker on every shared key of t, for
 * t->ttl_ms; untracked like a release nobody waits for. */
static void send_mark_untracked(struct rl_engine *e, const struct rl_target *t)
{
    char px[PROTO_U64_DIGITS];
    const char *args[1] = {px};
    size_t arglens[1] = {proto_put_u64(px, t->ttl_ms)};
    size_t n = pool_size(e->pool);
    for (size_t m = 0; m < n; m++)
        pool_script(e->pool, m, 0, SCRIPT_WRITER_WAIT, t->nkeys, t->keys, t->keylens, 1, args, arglens);
}

/* See redlock_engine.h: a RELEASE nobody waits for goes untracked. */
int rl_start(struct rl_engine *e, enum rl_kind kind, const struct rl_target *t, rl_done_fn *done, void *ctx)
{
    if ((kind == RL_RELEASE || kind == RL_UNREGISTER) && done == NULL) {
        send_release_untracked(e, kind, t);
        return 0;
    }
    if (kind == RL_MARK) {
        send_mark_untracked(e, t);
        return 0;
    }
    assert(kind != RL_UNREGISTER);
    return op_start(e, kind, t, done, NULL, ctx);
}

/* See redlock_engine.h. */
int rl_inspect(struct rl_engine *e, const struct rl_target *t, rl_each_fn *each, rl_done_fn *done, void *ctx)
{
    return op_start(e, RL_INSPECT, t, done, each, ctx);
}

/* Free a replaced master set now. Ops still counting its votes are decided
 * at once with what they have (the disconnect answers the rest with no reply). */
static void drain_release(struct rl_engine *e, struct draining_pool *d)
{
    struct pool *p = d->pool;
    d->pool = NULL;
    d->ops = 0;
    pool_free(p);
    for (uint32_t i = 0; i < e->nslots; i++) {
        struct rl_op *op = op_at(e, i);
        if (op->active && op->pool == p) {
            op->sent = op->replied; /* nothing more will come */
            op_try_decide(op, true);
        }
    }
}

/* Free replaced master sets once nothing waits on them any more. Runs from
 * a timer, never from inside a hiredis callback of the pool it frees. */
static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct rl_engine *e = arg;
    (void)fd;
    (void)what;
    uint64_t now = now_ms();
    bool any = false;
    for (size_t i = 0; i < MAX_DRAINING_POOLS; i++) {
        struct draining_pool *d = &e->draining[i];
        if (d->pool == NULL) continue;
        if ((d->ops == 0 && pool_pending(d->pool) == 0) || now - d->since_ms > DRAIN_MAX_MS) {
            drain_release(e, d);
        } else {
            any = true;
        }
    }
    if (any) {
        struct timeval tv = {0, DRAIN_TICK_MS * 1000};
        evtimer_add(e->drain_timer, &tv);
    }
}

/* See redlock_engine.h: the old set drains (draining[]), the oldest one is
 * dropped at once when MAX_DRAINING_POOLS are draining already. */
int rl_engine_set_masters(struct rl_engine *e, const struct config *cfg)
{
    struct pool *np = pool_new(e->base, cfg, on_pool_reply, on_pool_wake, e);
    if (np == NULL) return -1;
    struct draining_pool *slot = draining_of(e, NULL);
    for (size_t i = 0; i < MAX_DRAINING_POOLS && slot == NULL; i++)
        if (e->draining[i].pool == NULL) slot = &e->draining[i];
    if (slot == NULL) { /* reloads faster than draining: drop the oldest */
        slot = &e->draining[0];
        for (size_t i = 1; i < MAX_DRAINING_POOLS; i++)
            if (e->draining[i].since_ms < slot->since_ms) slot = &e->draining[i];
        drain_release(e, slot);
    }
    slot->pool = e->pool;
    slot->since_ms = now_ms();
    slot->ops = 0;
    for (uint32_t i = 0; i < e->nslots; i++) {
        struct rl_op *op = op_at(e, i);
        if (op->active && op->pool == slot->pool) slot->ops++;
    }
    e->pool = np;
    struct timeval tv = {0, DRAIN_TICK_MS * 1000};
    evtimer_add(e->drain_timer, &tv);
    return 0;
}

/* Free the engine's libevent events (any may be NULL). */
static void free_events(struct rl_engine *e)
{
    if (e->drain_timer) event_free(e->drain_timer);
    if (e->deadline_timer) event_free(e->deadline_timer);
    if (e->decide_now_event) event_free(e->decide_now_event);
}

/* An engine on cfg's masters with no op in flight; NULL when out of memory
 * (nothing is left allocated). */
struct rl_engine *rl_engine_new(struct event_base *base, const struct config *cfg)
{
    struct rl_engine *e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->base = base;
    e->free_head = UINT32_MAX;
    TAILQ_INIT(&e->deadlines);
    rl_engine_configure(e, cfg);
    e->drain_timer = evtimer_new(base, on_drain_tick, e);
    e->deadline_timer = evtimer_new(base, on_deadline, e);
    e->decide_now_event = event_new(base, -1, 0, on_decide_now, e);
    e->pool = pool_new(base, cfg, on_pool_reply, on_pool_wake, e);
    if (e->pool == NULL || e->drain_timer == NULL || e->deadline_timer == NULL || e->decide_now_event == NULL) {
        pool_free(e->pool);
        free_events(e);
        free(e);
        return NULL;
    }
    return e;
}

/* See redlock_engine.h: applies to ops started from now on. */
void rl_engine_configure(struct rl_engine *e, const struct config *cfg)
{
    e->timeout_ms = cfg->master_timeout_ms;
    e->drift_factor = cfg->drift_factor;
    if (e->pool != NULL) pool_configure(e->pool, cfg);
}

/* Free the engine, its master sets and its ops; no done callback runs
 * (their owners are gone). NULL is a no-op. */
void rl_engine_free(struct rl_engine *e)
{
    if (e == NULL) return;
    /* Disconnecting calls back every pending command; no op may call its
     * owner any more, whose objects are already gone. */
    for (uint32_t slot = 0; slot < e->nslots; slot++) {
        struct rl_op *op = op_at(e, slot);
        op->done = NULL;
        op->active = false;
        free(op->fence_votes);
        op->fence_votes = NULL;
    }
    pool_free(e->pool);
    for (size_t i = 0; i < MAX_DRAINING_POOLS; i++) pool_free(e->draining[i].pool);
    free_events(e);
    for (uint32_t p = 0; p * OP_PAGE_SLOTS < e->nslots; p++) free(e->pages[p]);
    free(e->decide_now);
    free(e);
}

struct pool *rl_engine_pool(struct rl_engine *e)
{
    return e->pool;
}

unsigned rl_engine_inflight(const struct rl_engine *e)
{
    return e->inflight;
}
