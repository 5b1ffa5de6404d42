/*
 * check_lockcore.c - the lock core without I/O: the Redlock vote arithmetic
 * (rl_decide, rl_choose_fence) and the lock manager's decisions driven
 * through a fake engine and a fake clock (no Redis, no sockets).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redlock_engine.h"

/* ---- vote arithmetic ---- */

/* N masters, Q = N/2 + 1, everything sent. */
static struct rl_votes votes(enum rl_kind kind, unsigned n)
{
    return (struct rl_votes){.kind = kind, .total = n, .quorum = n / 2 + 1, .sent = n};
}

struct vote_case {
    enum rl_kind kind;
    unsigned n, replied, granted, refused;
    bool preempted, final;
    enum rl_verdict want;
};

static const struct vote_case vote_cases[] = {
    /* ACQUIRE: success never waits, failure waits for every answer. */
    {RL_ACQUIRE, 5, 3, 3, 0, false, false, RL_V_GRANTED},
    {RL_ACQUIRE, 5, 2, 2, 0, false, false, RL_V_WAIT},
    {RL_ACQUIRE, 5, 4, 2, 2, false, false, RL_V_WAIT},
    {RL_ACQUIRE, 5, 5, 2, 3, false, false, RL_V_BUSY},
    {RL_ACQUIRE, 5, 2, 1, 1, false, true, RL_V_NOQUORUM},  /* deadline: 2 answers < Q */
    {RL_ACQUIRE, 5, 5, 0, 0, false, false, RL_V_NOQUORUM}, /* all errors */
    {RL_ACQUIRE, 5, 3, 1, 2, false, true, RL_V_BUSY},      /* deadline, a majority answered */
    {RL_ACQUIRE, 1, 1, 1, 0, false, false, RL_V_GRANTED},
    {RL_ACQUIRE, 1, 1, 0, 1, false, false, RL_V_BUSY},
    {RL_HANDOFF, 3, 2, 2, 0, false, false, RL_V_GRANTED},
    {RL_FENCE, 3, 3, 1, 0, false, false, RL_V_NOQUORUM},
    /* EXTEND: TAKEN only when more than N-Q masters hold other tokens. */
    {RL_EXTEND, 5, 5, 3, 2, false, false, RL_V_GRANTED},   /* 2 = N-Q refusals: still ours */
    {RL_EXTEND, 5, 3, 0, 3, false, false, RL_V_TAKEN},     /* 3 > N-Q: certain at once */
    {RL_EXTEND, 5, 3, 0, 3, true, false, RL_V_PREEMPTED},
    {RL_EXTEND, 5, 2, 0, 2, false, false, RL_V_WAIT},      /* not yet certain */
    {RL_EXTEND, 5, 5, 2, 2, false, false, RL_V_BUSY},      /* one error: neither */
    {RL_EXTEND, 3, 3, 2, 1, false, false, RL_V_GRANTED},   /* 1 = N-Q */
    {RL_EXTEND, 3, 2, 0, 2, false, false, RL_V_TAKEN},
    {RL_EXTEND, 3, 1, 0, 1, false, true, RL_V_NOQUORUM},   /* one refusal is not TAKEN */
    {RL_EXTEND, 1, 1, 0, 1, false, false, RL_V_TAKEN},
    /* RELEASE is done at a majority of any answers; INSPECT at all. */
    {RL_RELEASE, 5, 3, 0, 0, false, false, RL_V_DONE},
    {RL_RELEASE, 5, 2, 2, 0, false, false, RL_V_WAIT},
    {RL_RELEASE, 5, 0, 0, 0, false, true, RL_V_DONE},
    {RL_INSPECT, 3, 2, 2, 0, false, false, RL_V_WAIT},
    {RL_INSPECT, 3, 3, 2, 0, false, false, RL_V_DONE},
};

START_TEST(vote_table)
{
    const struct vote_case *c = &vote_cases[_i];
    struct rl_votes v = votes(c->kind, c->n);
    v.replied = c->replied;
    v.granted = c->granted;
    v.refused = c->refused;
    v.preempted = c->preempted;
    ck_assert_msg(rl_decide(&v, c->final) == c->want, "case %d: got %d, want %d", _i, rl_decide(&v, c->final),
                  c->want);
}
END_TEST

/* Rule found by the chaos test: an extension is TAKEN only when more than
 * N-Q masters hold other tokens. With N-Q refusals and a granting majority
 * the lock is still ours; with one more it is gone. */
START_TEST(extend_taken_only_beyond_n_minus_q)
{
    for (unsigned n = 1; n <= 9; n++) {
        unsigned q = n / 2 + 1;
        struct rl_votes v = votes(RL_EXTEND, n);
        v.refused = n - q;
        v.granted = q;
        v.replied = n;
        ck_assert_msg(rl_decide(&v, false) == RL_V_GRANTED, "N=%u: N-Q refusals must not be TAKEN", n);
        /* N-Q refusals and the rest unanswered: wait (or NOQUORUM), never TAKEN. */
        v.granted = 0;
        v.replied = n - q;
        ck_assert(rl_decide(&v, false) != RL_V_TAKEN);
        ck_assert(rl_decide(&v, true) != RL_V_TAKEN);
        v.refused = n - q + 1;
        v.replied = v.refused;
        ck_assert_msg(rl_decide(&v, false) == RL_V_TAKEN, "N=%u: N-Q+1 refusals are TAKEN", n);
    }
}
END_TEST

START_TEST(fenced_waits_for_fences)
{
    struct rl_votes v = votes(RL_ACQUIRE, 3);
    v.fenced = true;
    v.replied = v.granted = 2;
    ck_assert(rl_decide(&v, false) == RL_V_WAIT); /* granted, no fence yet */
    v.fence_answers = v.fences = 2;
    v.fence_min = v.fence_max = 7;
    ck_assert(rl_decide(&v, false) == RL_V_GRANTED); /* two agree: no need to wait for the third */
    v.fence_min = 5;
    ck_assert(rl_decide(&v, false) == RL_V_WAIT); /* they disagree and one may still answer */
    ck_assert(rl_decide(&v, true) == RL_V_GRANTED);
    v.fences = 1;
    v.bad_fences = 1;
    v.replied = 3;
    v.refused = 1;
    ck_assert(rl_decide(&v, false) == RL_V_BADFENCE);
}
END_TEST

START_TEST(fence_is_kth_largest)
{
    /* N=5, Q=3, 5 usable fences: k = 5 + 3 - 5 = 3, the third largest. */
    uint64_t f[5] = {10, 50, 30, 20, 40};
    struct rl_votes v = votes(RL_ACQUIRE, 5);
    v.fenced = true;
    v.fences = 5;
    v.fence_min = 10;
    v.fence_max = 50;
    struct rl_outcome out = {.result = RL_OK};
    rl_choose_fence(f, &v, (uint64_t)1 << 52, &out);
    ck_assert_uint_eq(out.fence, 30);
    ck_assert(!out.fence_agreed);
    /* 3 usable of 5: k = 1, the largest. */
    uint64_t g[3] = {4, 9, 6};
    v.fences = 3;
    v.fence_min = 4;
    v.fence_max = 9;
    rl_choose_fence(g, &v, (uint64_t)1 << 52, &out);
    ck_assert_uint_eq(out.fence, 9);
    /* All the same: agreed, no raise. */
    v.fence_min = v.fence_max = 9;
    out = (struct rl_outcome){.result = RL_OK};
    rl_choose_fence(NULL, &v, (uint64_t)1 << 52, &out);
    ck_assert_uint_eq(out.fence, 9);
    ck_assert(out.fence_agreed);
    /* A raise above the cap: BADFENCE, counting the high ones. */
    uint64_t h[3] = {100, 200, 300};
    v.fence_min = 100;
    v.fence_max = 300;
    out = (struct rl_outcome){.result = RL_OK};
    rl_choose_fence(h, &v, 250, &out);
    ck_assert_int_eq(out.result, RL_BADFENCE);
    ck_assert_uint_eq(out.bad_fences, 1);
}
END_TEST

static Suite *vote_suite(void)
{
    Suite *s = suite_create("vote");
    TCase *tc = tcase_create("vote");
    tcase_add_loop_test(tc, vote_table, 0, (int)(sizeof vote_cases / sizeof vote_cases[0]));
    tcase_add_test(tc, extend_taken_only_beyond_n_minus_q);
    tcase_add_test(tc, fenced_waits_for_fences);
    tcase_add_test(tc, fence_is_kth_largest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vote_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
