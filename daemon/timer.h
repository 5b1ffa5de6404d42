/*
 * timer.h - many cheap timers on one libevent timer: a binary min-heap of
 * deadlines. A lock carries a 24-byte struct timer instead of a 128-byte
 * struct event, which matters with 100,000 locks. Callbacks run from the
 * event loop and may arm or cancel any timer, including their own.
 */
#ifndef REDLOCKD_TIMER_H
#define REDLOCKD_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct timer;

typedef void timer_fn(struct timer *t);

struct timer {
    uint64_t due_ms; /* CLOCK_MONOTONIC ms */
    size_t index;    /* position in the heap; TIMER_IDLE when not armed */
    timer_fn *fn;
};

#define TIMER_IDLE SIZE_MAX

struct timers {
    struct timer **heap;
    size_t len, cap;
    struct event *ev; /* fires at the earliest deadline */
    uint64_t ev_due;  /* when ev is set to fire; UINT64_MAX when not */
};

/* Returns 0, or -1 when out of memory. */
int timers_init(struct timers *ts, struct event_base *base);
void timers_destroy(struct timers *ts);

void timer_init(struct timer *t, timer_fn *fn);
/* (Re)arm t to fire at due_ms (a past time fires on the next loop turn).
 * Returns 0, or -1 when the heap cannot grow (t is then not armed). */
int timer_arm(struct timers *ts, struct timer *t, uint64_t due_ms);
void timer_cancel(struct timers *ts, struct timer *t);
static inline bool timer_armed(const struct timer *t)
{
    return t->index != TIMER_IDLE;
}

#endif
