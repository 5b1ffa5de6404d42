/* timer.c - see timer.h. */
#include "timer.h"

#include <event2/event.h>
#include <stdlib.h>

#include "util.h"

static void swap_at(struct timers *ts, size_t a, size_t b)
{
    struct timer *t = ts->heap[a];
    ts->heap[a] = ts->heap[b];
    ts->heap[b] = t;
    ts->heap[a]->index = a;
    ts->heap[b]->index = b;
}

static void sift_up(struct timers *ts, size_t i)
{
    while (i > 0 && ts->heap[(i - 1) / 2]->due_ms > ts->heap[i]->due_ms) {
        swap_at(ts, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct timers *ts, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ts->len && ts->heap[l]->due_ms < ts->heap[m]->due_ms) m = l;
        if (r < ts->len && ts->heap[r]->due_ms < ts->heap[m]->due_ms) m = r;
        if (m == i) return;
        swap_at(ts, i, m);
        i = m;
    }
}

/* Point the libevent timer at the earliest deadline. */
static void reschedule(struct timers *ts)
{
    if (ts->len == 0) {
        if (ts->ev_due != UINT64_MAX) event_del(ts->ev);
        ts->ev_due = UINT64_MAX;
        return;
    }
    uint64_t due = ts->heap[0]->due_ms;
    if (due == ts->ev_due) return;
    uint64_t now = now_ms();
    uint64_t d = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    event_add(ts->ev, &tv);
    ts->ev_due = due;
}

#define TIMERS_PER_TURN 1024

static void on_fire(evutil_socket_t fd, short what, void *arg)
{
    struct timers *ts = arg;
    (void)fd;
    (void)what;
    ts->ev_due = UINT64_MAX;
    uint64_t now = now_ms();
    /* Run only what is due now; timers armed by callbacks for "now" wait
     * for the next turn, so a callback re-arming itself cannot spin here.
     * At most TIMERS_PER_TURN per turn: 100k locks expiring together must
     * not queue 300k commands before one is written, nor starve the clients. */
    size_t budget = ts->len < TIMERS_PER_TURN ? ts->len : TIMERS_PER_TURN;
    while (ts->len > 0 && ts->heap[0]->due_ms <= now && budget-- > 0) {
        struct timer *t = ts->heap[0];
        timer_cancel(ts, t);
        t->fn(t);
    }
    reschedule(ts);
}

int timers_init(struct timers *ts, struct event_base *base)
{
    ts->heap = NULL;
    ts->len = ts->cap = 0;
    ts->ev_due = UINT64_MAX;
    ts->ev = evtimer_new(base, on_fire, ts);
    return ts->ev ? 0 : -1;
}

void timers_destroy(struct timers *ts)
{
    for (size_t i = 0; i < ts->len; i++) ts->heap[i]->index = TIMER_IDLE;
    if (ts->ev) event_free(ts->ev);
    free(ts->heap);
    ts->heap = NULL;
    ts->ev = NULL;
    ts->len = ts->cap = 0;
}

void timer_init(struct timer *t, timer_fn *fn)
{
    t->due_ms = 0;
    t->index = TIMER_IDLE;
    t->fn = fn;
}

int timer_arm(struct timers *ts, struct timer *t, uint64_t due_ms)
{
    if (timer_armed(t)) {
        uint64_t old = t->due_ms;
        t->due_ms = due_ms;
        if (due_ms < old) sift_up(ts, t->index);
        else sift_down(ts, t->index);
    } else {
        if (ts->len == ts->cap) {
            size_t cap = ts->cap ? ts->cap * 2 : 256;
            struct timer **h = realloc(ts->heap, cap * sizeof *h);
            if (h == NULL) return -1;
            ts->heap = h;
            ts->cap = cap;
        }
        t->due_ms = due_ms;
        t->index = ts->len;
        ts->heap[ts->len++] = t;
        sift_up(ts, t->index);
    }
    reschedule(ts);
    return 0;
}

void timer_cancel(struct timers *ts, struct timer *t)
{
    if (!timer_armed(t)) return;
    size_t i = t->index;
    ts->len--;
    if (i != ts->len) {
        ts->heap[i] = ts->heap[ts->len];
        ts->heap[i]->index = i;
        sift_down(ts, i);
        sift_up(ts, i);
    }
    t->index = TIMER_IDLE;
    /* The libevent timer may now fire early; on_fire then finds nothing due
     * and reschedules. Not re-adding it here saves a syscall per cancel. */
}
