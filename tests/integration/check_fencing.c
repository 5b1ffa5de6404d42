/*
 * check_fencing.c - fencing tokens through real redlockd processes on real
 * Redis masters: fences strictly increase per resource across two daemons
 * sharing the masters, across interleaved acquisitions, a stopped master and
 * a master restarted empty (a minority), and for multi-resource locks; and a
 * minority of lying fence counters can neither decide the fence nor stop
 * locking, while a majority of exhausted ones is named in the error.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "redlock.h"

#define NM 3

static struct h_redis M[NM];
static struct h_daemon D[2];
static struct redlock_client *C[2];

/* A short max_ttl_ms keeps a restarted master's quarantine short. */
static const struct h_daemon_opts fence_opts = {
    .redis = "master_timeout_ms = 200\n",
    .lock = "max_ttl_ms = 1500\ndefault_ttl_ms = 1000\nretry_count = 20\nretry_delay_ms = 50\n"
            "retry_jitter_ms = 20\nfencing = yes\n",
};

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(h_daemon_start(&D[i], M, NM, &fence_opts) == 0, "redlockd %d did not start",
                      i);
        C[i] = h_client(D[i].sock);
        ck_assert_ptr_nonnull(C[i]);
    }
}

static void teardown(void)
{
    int code[2];
    for (int i = 0; i < 2; i++) {
        redlock_close(C[i]);
        code[i] = h_daemon_stop(&D[i]);
    }
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_int_eq(code[0], 0);
    ck_assert_int_eq(code[1], 0);
}

/* Take res through daemon d, check the fence exceeds *last, release. */
static void take_and_check(int d, const char *res, uint64_t *last)
{
    struct redlock_lock lk;
    struct redlock_acquire_opts o = {.ttl_ms = 1000, .wait_ms = 5000};
    int rc = redlock_acquire(C[d], res, &o, &lk);
    ck_assert_msg(rc == REDLOCK_OK, "acquire %s via daemon %d: %s", res, d, redlock_errstr(C[d]));
    ck_assert_msg(lk.fence > *last, "fence went from %llu to %llu on %s (daemon %d)",
                  (unsigned long long)*last, (unsigned long long)lk.fence, res, d);
    *last = lk.fence;
    ck_assert_int_eq(redlock_release(C[d], lk.id), REDLOCK_OK);
}

START_TEST(test_fences_increase_across_daemons)
{
    uint64_t last = 0;
    for (int i = 0; i < 20; i++)
        take_and_check(i % 2, "fa", &last);
    ck_assert_uint_ge(last, 20);
    /* One counter serves every resource: a resource never locked before
     * gets a fence above all earlier ones too. */
    take_and_check(0, "fb", &last);
}
END_TEST

static bool master_voting_again(void *arg)
{
    struct redlock_client *c = arg;
    static char info[16384];
    if (redlock_command(c, "INFO", info, sizeof info) != REDLOCK_OK)
        return false;
    return strstr(info, "master.0.state up") != NULL &&
           strstr(info, "master.0.quarantine_ms 0") != NULL;
}

START_TEST(test_fences_survive_minority_faults)
{
    uint64_t last = 0;
    for (int i = 0; i < 4; i++)
        take_and_check(i % 2, "fr", &last);
    /* One master stopped: the others still agree and fences keep rising. */
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    for (int i = 0; i < 4; i++)
        take_and_check(i % 2, "fr", &last);
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    /* Master 2 lags now; the next acquisitions must still rise (the daemon
     * raises counters to the largest when the masters disagree). */
    for (int i = 0; i < 4; i++)
        take_and_check(i % 2, "fr", &last);
    /* Master 0 restarted empty: its counter is gone. */
    h_redis_kill(&M[0]);
    ck_assert_int_eq(h_redis_restart(&M[0]), 0);
    for (int i = 0; i < 6; i++)
        take_and_check(i % 2, "fr", &last);
    /* Once it votes again (after max_ttl_ms), still rising. */
    ck_assert_msg(h_wait_until(master_voting_again, C[0], 10000 * h_slowdown()),
                  "restarted master never voted again");
    ck_assert_msg(h_wait_until(master_voting_again, C[1], 10000 * h_slowdown()),
                  "restarted master never voted again (daemon 1)");
    for (int i = 0; i < 6; i++)
        take_and_check(i % 2, "fr", &last);
}
END_TEST

START_TEST(test_multi_resource_fence_exceeds_each)
{
    uint64_t a = 0, b = 0;
    for (int i = 0; i < 3; i++)
        take_and_check(i % 2, "ma", &a);
    take_and_check(1, "mb", &b);
    uint64_t ab = a > b ? a : b;
    take_and_check(0, "ma,mb", &ab);
    ck_assert_uint_gt(ab, a);
    /* The shared fence raised both counters. */
    uint64_t a2 = ab, b2 = ab;
    take_and_check(1, "ma", &a2);
    take_and_check(0, "mb", &b2);
}
END_TEST

START_TEST(test_fence_counter_in_redis)
{
    /* One counter per key prefix (here the empty one), not one per
     * resource: after 50 resources locked and released, each master holds
     * that counter (and the marker ",epoch", PROTOCOL.md 8.5) and nothing else, so the key count stays bounded
     * however many resources are ever used. It never expires. */
    uint64_t last = 0;
    char res[32];
    for (int i = 0; i < 50; i++) {
        snprintf(res, sizeof res, "fk%d", i);
        take_and_check(i % 2, res, &last);
    }
    char val[64], want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)last);
    for (int m = 0; m < NM; m++) {
        ck_assert(h_redis_get(&M[m], ",fence", val, sizeof val));
        ck_assert_str_eq(val, want);
        ck_assert_int_eq(h_redis_pttl(&M[m], ",fence"), -1);
        ck_assert(h_redis_get(&M[m], ",epoch", NULL, 0));
        ck_assert_int_eq(h_redis_dbsize(&M[m]), 2);
    }
}
END_TEST

/* A waiter queued behind a local holder gets the key by compare-and-swap
 * on release (INFO counts it), and its fence still goes up. Two raw
 * connections pass the lock back and forth. */
static void raw_req(int fd, const char *line, char *out, size_t outlen)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s\r\n", line);
    ck_assert_int_eq(h_send_str(fd, buf), 0);
    ck_assert_msg(h_read_line(fd, out, outlen, 5000 * h_slowdown()) > 0, "no reply to %s", line);
}

START_TEST(test_handoff_keeps_fences_rising)
{
    int fd[2] = {h_connect_unix(D[0].sock), h_connect_unix(D[0].sock)};
    ck_assert(fd[0] >= 0 && fd[1] >= 0);
    char line[256], id[64], rel[96];
    unsigned long long fence, last;
    raw_req(fd[0], "ACQUIRE hand 1000", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s %*u %llu", id, &last) == 2, "'%s'", line);
    for (int i = 0; i < 6; i++) {
        int holder = fd[i % 2], waiter = fd[1 - i % 2];
        ck_assert_int_eq(h_send_str(waiter, "ACQUIRE hand 1000 WAIT 5000\r\n"), 0);
        ck_assert_msg(!h_readable(waiter, 100), "the waiter got an answer while the lock was held");
        snprintf(rel, sizeof rel, "RELEASE %s", id);
        raw_req(holder, rel, line, sizeof line);
        ck_assert_str_eq(line, "OK");
        ck_assert_int_gt(h_read_line(waiter, line, sizeof line, 3000 * h_slowdown()), 0);
        ck_assert_msg(sscanf(line, "OK %63s %*u %llu", id, &fence) == 2, "waiter got '%s'", line);
        ck_assert_msg(fence > last, "fence %llu after %llu", fence, last);
        last = fence;
    }
    static char info[16384];
    ck_assert_int_eq(redlock_command(C[0], "INFO", info, sizeof info), REDLOCK_OK);
    const char *cas = strstr(info, "handoffs_cas ");
    ck_assert_ptr_nonnull(cas);
    ck_assert_msg(atoi(cas + 13) >= 6, "hand-offs by compare-and-swap: %d", atoi(cas + 13));
    close(fd[0]);
    close(fd[1]);
}
END_TEST

/* A reload that changes key_prefix: a lock made before it keeps its keys
 * and its prefix's fence counter, so a hand-off between two such locks
 * still raises the fence. Using the new prefix's counter (at 1 here)
 * would hand out a lower fence. */
#define LOCK_P1 "max_ttl_ms = 10000\ndefault_ttl_ms = 1000\nfencing = yes\n"
static const struct h_daemon_opts p1_opts = {.redis = "master_timeout_ms = 200\n",
                                             .lock = LOCK_P1 "key_prefix = p1:\n"};
static const struct h_daemon_opts p2_opts = {.redis = "master_timeout_ms = 200\n",
                                             .lock = LOCK_P1 "key_prefix = p2:\n"};

static bool new_prefix_in_force(void *arg)
{
    (void)arg;
    struct redlock_lock lk;
    struct redlock_acquire_opts o = {.ttl_ms = 1000};
    if (redlock_acquire(C[0], "probe", &o, &lk) != REDLOCK_OK)
        return false;
    bool p2 = h_redis_pttl(&M[0], "p2:probe") > 0;
    redlock_release(C[0], lk.id);
    return p2;
}

START_TEST(test_prefix_reload_keeps_a_locks_counter)
{
    redlock_close(C[0]);
    ck_assert_int_eq(h_daemon_stop(&D[0]), 0);
    ck_assert_int_eq(h_daemon_start(&D[0], M, NM, &p1_opts), 0);
    C[0] = h_client(D[0].sock);
    ck_assert_ptr_nonnull(C[0]);
    uint64_t last = 0;
    for (int i = 0; i < 3; i++)
        take_and_check(0, "pr", &last);

    int fd[2] = {h_connect_unix(D[0].sock), h_connect_unix(D[0].sock)};
    ck_assert(fd[0] >= 0 && fd[1] >= 0);
    char line[256], id[64], rel[96];
    unsigned long long held_fence, next_fence;
    raw_req(fd[0], "ACQUIRE pr 5000", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s %*u %llu", id, &held_fence) == 2, "'%s'", line);
    ck_assert_uint_gt(held_fence, last);
    ck_assert_int_eq(h_send_str(fd[1], "ACQUIRE pr 5000 WAIT 10000\r\n"), 0);

    ck_assert_int_eq(h_daemon_write_ini(&D[0], M, NM, &p2_opts), 0);
    ck_assert_int_eq(h_daemon_hup(&D[0]), 0);
    ck_assert_msg(h_wait_until(new_prefix_in_force, NULL, 5000 * h_slowdown()),
                  "key_prefix p2: never took effect");
    ck_assert_msg(!h_readable(fd[1], 0), "the waiter got an answer while the lock was held");

    snprintf(rel, sizeof rel, "RELEASE %s", id);
    raw_req(fd[0], rel, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_int_gt(h_read_line(fd[1], line, sizeof line, 5000 * h_slowdown()), 0);
    ck_assert_msg(sscanf(line, "OK %63s %*u %llu", id, &next_fence) == 2, "waiter got '%s'", line);
    ck_assert_msg(next_fence > held_fence, "fence %llu after %llu across a key_prefix reload",
                  next_fence, held_fence);
    char val[64];
    ck_assert(h_redis_get(&M[0], "p1:pr", val, sizeof val));
    ck_assert_str_eq(val, id);
    close(fd[0]);
    close(fd[1]);
}
END_TEST

/* ---- fence counters that lie (issue 12.3) ---- */

#define COUNTER_TOP "9223372036854775806" /* INCR overflows after one more */
#define SANE_FENCE 100000                 /* far more than these tests ever hand out */

static void set_counter(struct h_redis *m, const char *val)
{
    char out[64];
    ck_assert_int_eq(h_redis_cmd(m, out, sizeof out, "SET", ",fence", val, NULL), H_REPLY_STATUS);
}

static unsigned long long counter_of(struct h_redis *m)
{
    char val[64];
    ck_assert(h_redis_get(m, ",fence", val, sizeof val));
    return strtoull(val, NULL, 10);
}

/* One master's counter written near 2^63: the fence stays what the honest
 * majority says, keeps rising, on every path (SET NX + INCR, the fenced
 * script of a multi-resource lock, the hand-off script), and the honest
 * counters are not raised to the lie. The daemon used to hand out 2^63 - 1,
 * raise every counter to it, and answer NOQUORUM to every ACQUIRE after. */
START_TEST(test_one_lying_counter_cannot_decide_the_fence)
{
    uint64_t last = 0;
    for (int i = 0; i < 3; i++)
        take_and_check(i % 2, "lie", &last);
    set_counter(&M[0], COUNTER_TOP);
    for (int i = 0; i < 10; i++) {
        take_and_check(i % 2, "lie", &last);
        ck_assert_msg(last < SANE_FENCE, "fence %llu: one master decided it",
                      (unsigned long long)last);
    }
    take_and_check(0, "lie,lie2", &last);
    ck_assert_msg(last < SANE_FENCE, "multi-resource fence %llu", (unsigned long long)last);

    int fd[2] = {h_connect_unix(D[1].sock), h_connect_unix(D[1].sock)};
    ck_assert(fd[0] >= 0 && fd[1] >= 0);
    char line[256], id[64], rel[96];
    unsigned long long fence;
    raw_req(fd[0], "ACQUIRE lie 1000", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s %*u %llu", id, &fence) == 2, "'%s'", line);
    ck_assert_uint_gt(fence, last);
    last = fence;
    ck_assert_int_eq(h_send_str(fd[1], "ACQUIRE lie 1000 WAIT 5000\r\n"), 0);
    ck_assert_msg(!h_readable(fd[1], 100), "the waiter got an answer while the lock was held");
    snprintf(rel, sizeof rel, "RELEASE %s", id);
    raw_req(fd[0], rel, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    ck_assert_int_gt(h_read_line(fd[1], line, sizeof line, 5000 * h_slowdown()), 0);
    ck_assert_msg(sscanf(line, "OK %63s %*u %llu", id, &fence) == 2, "hand-off waiter got '%s'",
                  line);
    ck_assert_msg(fence > last && fence < SANE_FENCE, "hand-off fence %llu after %llu", fence,
                  (unsigned long long)last);
    last = fence;
    snprintf(rel, sizeof rel, "RELEASE %s", id);
    raw_req(fd[1], rel, line, sizeof line);
    close(fd[0]);
    close(fd[1]);

    for (int m = 1; m < NM; m++)
        ck_assert_msg(counter_of(&M[m]) < SANE_FENCE, "master %d's counter raised to %llu", m,
                      counter_of(&M[m]));
    take_and_check(1, "lie", &last);
}
END_TEST

/* A lie that is a plausible number is outvoted too: with every master
 * granting, the fence is one a majority vouches for, not the largest. */
START_TEST(test_plausible_lie_is_outvoted)
{
    uint64_t last = 0;
    for (int i = 0; i < 3; i++)
        take_and_check(i % 2, "pl", &last);
    set_counter(&M[2], "5000000");
    for (int i = 0; i < 6; i++) {
        take_and_check(i % 2, "pl", &last);
        ck_assert_msg(last < SANE_FENCE, "fence %llu: one master decided it",
                      (unsigned long long)last);
    }
    for (int m = 0; m < 2; m++)
        ck_assert_msg(counter_of(&M[m]) < SANE_FENCE, "master %d's counter raised to %llu", m,
                      counter_of(&M[m]));
}
END_TEST

static bool pings(void *arg)
{
    char out[64];
    return redlock_command(arg, "PING", out, sizeof out) == REDLOCK_OK && strcmp(out, "PONG") == 0;
}

static bool key_gone_everywhere(void *arg)
{
    for (int m = 0; m < NM; m++)
        if (h_redis_pttl(&M[m], arg) != -2)
            return false;
    return true;
}

/* A majority of exhausted counters: no fence can be vouched for, and the
 * error says so (it used to be "NOQUORUM 3/3 masters answered"); the keys
 * the attempts took are given back, the daemon keeps serving, and once the
 * counters are repaired by hand ACQUIRE works again. */
START_TEST(test_exhausted_majority_is_named)
{
    uint64_t last = 0;
    take_and_check(0, "ex", &last);
    set_counter(&M[0], COUNTER_TOP);
    set_counter(&M[1], COUNTER_TOP);
    for (int d = 0; d < 2; d++) {
        struct redlock_lock lk;
        struct redlock_acquire_opts o = {.ttl_ms = 1000};
        ck_assert_int_ne(redlock_acquire(C[d], "ex", &o, &lk), REDLOCK_OK);
        const char *err = redlock_errstr(C[d]);
        ck_assert_msg(strstr(err, "fence counter exhausted") != NULL && strstr(err, "2/3") != NULL,
                      "daemon %d said '%s'", d, err);
        ck_assert_msg(pings(C[d]), "daemon %d stopped answering", d);
    }
    ck_assert_msg(h_wait_until(key_gone_everywhere, "ex", 5000 * h_slowdown()),
                  "the failed attempts' keys stayed");
    ck_assert_msg(counter_of(&M[2]) < SANE_FENCE, "the honest counter was raised to %llu",
                  counter_of(&M[2]));
    /* The repair: every counter set to the largest sane one. */
    char val[32];
    snprintf(val, sizeof val, "%llu", counter_of(&M[2]));
    set_counter(&M[0], val);
    set_counter(&M[1], val);
    take_and_check(1, "ex", &last);
    ck_assert_uint_lt(last, SANE_FENCE);
}
END_TEST

/* One master down and one lying below 2^53 (but above 2^52): the two that grant disagree,
 * and only the liar's counter is above the earlier fence... or the honest
 * one lags; the daemon cannot tell, but it never raises a counter above 2^52,
 * so one master can never bring the honest ones near exhaustion. The
 * attempt fails, naming the counter, until the third master answers again
 * and outvotes the lie. */
START_TEST(test_lone_liar_cannot_raise_counters_near_the_top)
{
    uint64_t last = 0;
    take_and_check(0, "nt", &last);
    ck_assert_int_eq(h_redis_pause(&M[2]), 0);
    set_counter(&M[0], "4503599627370596"); /* 2^52 + 100 */
    struct redlock_lock lk;
    struct redlock_acquire_opts o = {.ttl_ms = 1000};
    int rc = redlock_acquire(C[0], "nt", &o, &lk);
    ck_assert_msg(rc != REDLOCK_OK, "granted with fence %llu", (unsigned long long)lk.fence);
    ck_assert_msg(strstr(redlock_errstr(C[0]), "fence counter") != NULL, "'%s'",
                  redlock_errstr(C[0]));
    ck_assert_msg(counter_of(&M[1]) < SANE_FENCE, "the honest counter was raised to %llu",
                  counter_of(&M[1]));
    ck_assert_int_eq(h_redis_resume(&M[2]), 0);
    take_and_check(1, "nt", &last); /* WAIT 5000: until master 2 votes again */
    ck_assert_uint_lt(last, SANE_FENCE);
    ck_assert_uint_lt(counter_of(&M[1]), SANE_FENCE);
}
END_TEST

/* Every counter just below 2^53: the last fences are handed out exactly,
 * then the counters are exhausted, through the multi-resource script (whose
 * Lua numbers read 2^53 + 1 as 2^53, so a looser bound repeated a fence)
 * and through SET NX + INCR alike; never a fence at or past 2^53. */
START_TEST(test_fences_end_below_2_53)
{
    for (int m = 0; m < NM; m++)
        set_counter(&M[m], "9007199254740988"); /* 2^53 - 4 */
    uint64_t last = 0;
    take_and_check(0, "b1,b2", &last);
    ck_assert_uint_eq(last, 9007199254740989ULL);
    take_and_check(1, "b1", &last);
    take_and_check(0, "b1,b2", &last);
    ck_assert_uint_eq(last, 9007199254740991ULL); /* 2^53 - 1: the last one */
    const char *res[] = {"b1,b2", "b1", "b1,b2"};
    for (int i = 0; i < 3; i++) {
        struct redlock_lock lk;
        struct redlock_acquire_opts o = {.ttl_ms = 1000};
        int rc = redlock_acquire(C[i % 2], res[i], &o, &lk);
        ck_assert_msg(rc != REDLOCK_OK, "%s granted with fence %llu", res[i],
                      (unsigned long long)lk.fence);
        ck_assert_msg(strstr(redlock_errstr(C[i % 2]), "fence counter exhausted") != NULL &&
                          strstr(redlock_errstr(C[i % 2]), "3/3") != NULL,
                      "'%s'", redlock_errstr(C[i % 2]));
    }
}
END_TEST

static Suite *fencing_suite(void)
{
    Suite *s = suite_create("fencing");
    TCase *tc = tcase_create("fences");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fences_increase_across_daemons);
    tcase_add_test(tc, test_fences_survive_minority_faults);
    tcase_add_test(tc, test_multi_resource_fence_exceeds_each);
    tcase_add_test(tc, test_fence_counter_in_redis);
    tcase_add_test(tc, test_handoff_keeps_fences_rising);
    tcase_add_test(tc, test_prefix_reload_keeps_a_locks_counter);
    tcase_add_test(tc, test_one_lying_counter_cannot_decide_the_fence);
    tcase_add_test(tc, test_plausible_lie_is_outvoted);
    tcase_add_test(tc, test_exhausted_majority_is_named);
    tcase_add_test(tc, test_lone_liar_cannot_raise_counters_near_the_top);
    tcase_add_test(tc, test_fences_end_below_2_53);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(fencing_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
