/*
 * check_fleet.c - fair waiting across daemons (PROTOCOL.md 8.7):
 * two or three redlockd on the same three real masters.
 *
 *  - fair_across_daemons: clients of two daemons loop ACQUIRE hot WAIT,
 *    hold about a millisecond, RELEASE, until enough acquisitions were made;
 *    neither daemon's clients get more than twice the other's, and no two
 *    holds overlap. (Without fleet waiting one daemon keeps the key for as
 *    long as its local queue lasts: thousands against a handful.)
 *  - release_wakes_other_daemon: with retry_delay_ms at 60 s, a waiter on
 *    daemon B is granted as soon as daemon A's holder releases (a published
 *    wake-up, not a poll): well before its first poll would come.
 *  - killed_daemon_expires: a registered daemon that is SIGKILLed does not
 *    keep the others waiting: its registration expires, the key is handed
 *    on, and afterwards hand-offs stay local (none yields any more).
 *  - fair_permits_across_daemons: the same loop with PERMITS 2: at most two
 *    holders at once, and neither daemon's clients get more than twice the
 *    other's.
 *  - shared_wakes_other_daemon: with retry_delay_ms at 60 s, a SHARED
 *    waiter on B is granted when A's exclusive holder releases, and an
 *    exclusive waiter on B when A's last reader releases.
 *  - readers_of_two_daemons_wake: readers waiting on two other daemons
 *    both enter when the writer releases (the first one admitted wakes the
 *    next registered daemon).
 *  - hostile_wake_channel: anyone who can PUBLISH on the masters floods the
 *    wake-up channel (thousands of wake-ups for a key still held, junk, other
 *    nodes, a 2 MB message): the daemon keeps answering, its waiter keeps
 *    waiting, the oversized message costs only the subscription (which comes
 *    back), and a real release still wakes the waiter.
 *
 * Counts and deadlines only (no timing assertions): it must hold on a busy
 * two-core machine and under valgrind.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "redlock.h"
#include "testutil.h"

#define NM 3
#define NCLIENTS 6     /* per daemon */
#define WANT_TOTAL 300 /* acquisitions over both daemons */

static struct h_redis M[NM];
static struct h_daemon D[3];

static void setup(void)
{
    memset(D, 0, sizeof D);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
}

static void teardown(void)
{
    int code[3];
    for (int i = 0; i < 3; i++)
        code[i] = h_daemon_stop(&D[i]);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(code[i] == 0, "redlockd %d exited with %d on SIGTERM", i, code[i]);
}

static void start(int i, const char *lock)
{
    struct h_daemon_opts o = {.redis = "master_timeout_ms = 100\n", .lock = lock};
    ck_assert_msg(h_daemon_start(&D[i], M, NM, &o) == 0, "redlockd %d did not start", i);
}

/* An INFO counter of daemon d (-1 when absent). */
static long long info_counter(struct redlock_client *c, const char *name)
{
    char info[16384], key[96];
    ck_assert_int_eq(redlock_command(c, "INFO", info, sizeof info), REDLOCK_OK);
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(info, key);
    return at ? atoll(at + strlen(key)) : -1;
}

/* ---- fair_across_daemons --------------------------------------------------- */

static atomic_int holders;  /* clients inside a hold right now */
static atomic_int overlaps; /* times a grant found another holder inside */
static atomic_int total;    /* acquisitions, both daemons */
static atomic_int errors;   /* unexpected client errors */
static atomic_bool stop;
static struct redlock_acquire_opts work_opts; /* what every worker asks */
static int max_holders;                       /* holders allowed at once */

struct worker {
    const char *addr;
    int count; /* acquisitions of this client */
    pthread_t th;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct redlock_client *c = h_client(w->addr);
    if (c == NULL) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    struct redlock_acquire_opts o = work_opts;
    while (!atomic_load(&stop)) {
        struct redlock_lock lk;
        int rc = redlock_acquire(c, "hot", &o, &lk);
        if (rc == REDLOCK_ERR_BUSY)
            continue; /* WAIT ran out: the test's bound judges */
        if (rc != REDLOCK_OK) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        if (atomic_fetch_add(&holders, 1) >= max_holders)
            atomic_fetch_add(&overlaps, 1);
        w->count++;
        atomic_fetch_add(&total, 1);
        struct timespec hold = {0, 1000000}; /* the workload: hold about 1 ms */
        nanosleep(&hold, NULL);
        atomic_fetch_sub(&holders, 1);
        if (redlock_release(c, lk.id) != REDLOCK_OK) {
            atomic_fetch_add(&errors, 1);
            break;
        }
    }
    redlock_close(c);
    return NULL;
}

static bool enough(void *arg)
{
    (void)arg;
    return atomic_load(&total) >= WANT_TOTAL || atomic_load(&errors) > 0;
}

/* 2 x NCLIENTS clients loop on "hot" with work_opts until WANT_TOTAL
 * acquisitions: no more than max_holders at once, neither daemon's clients
 * more than twice the other's. */
static void run_fairness(const char *name)
{
    struct worker w[2 * NCLIENTS];
    atomic_store(&holders, 0);
    atomic_store(&overlaps, 0);
    atomic_store(&total, 0);
    atomic_store(&errors, 0);
    atomic_store(&stop, false);
    for (int i = 0; i < 2 * NCLIENTS; i++) {
        w[i] = (struct worker){.addr = D[i % 2].sock};
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, work, &w[i]), 0);
    }
    bool done = h_wait_until(enough, NULL, 60000 * h_slowdown());
    atomic_store(&stop, true);
    for (int i = 0; i < 2 * NCLIENTS; i++)
        pthread_join(w[i].th, NULL);
    int per[2] = {0, 0};
    for (int i = 0; i < 2 * NCLIENTS; i++)
        per[i % 2] += w[i].count;
    fprintf(stderr, "%s: daemon A %d, daemon B %d acquisitions\n", name, per[0], per[1]);
    ck_assert_int_eq(atomic_load(&errors), 0);
    ck_assert_msg(done, "only %d acquisitions before the deadline", atomic_load(&total));
    ck_assert_int_eq(atomic_load(&overlaps), 0);
    ck_assert_msg(per[0] <= 2 * per[1] && per[1] <= 2 * per[0],
                  "unfair: daemon A's clients got %d acquisitions, daemon B's %d", per[0], per[1]);
}

START_TEST(fair_across_daemons)
{
    start(0, NULL);
    start(1, NULL);
    work_opts = (struct redlock_acquire_opts){.ttl_ms = 5000, .wait_ms = 10000};
    max_holders = 1;
    run_fairness("fair_across_daemons");
}
END_TEST

START_TEST(fair_permits_across_daemons)
{
    start(0, NULL);
    start(1, NULL);
    work_opts = (struct redlock_acquire_opts){.ttl_ms = 5000, .wait_ms = 10000, .permits = 2};
    max_holders = 2;
    run_fairness("fair_permits_across_daemons");
}
END_TEST

/* ---- release_wakes_other_daemon --------------------------------------------- */

static struct redlock_client *probe;

/* The daemon of probe has a waiter queued (after a refused attempt). */
static bool one_waiter(void *arg)
{
    (void)arg;
    return info_counter(probe, "waiters") >= 1;
}

/* The key's waiter registry exists on a majority of masters. */
static bool registered(void *arg)
{
    const char *key = arg;
    char v[512];
    size_t n = 0;
    for (int i = 0; i < NM; i++)
        n += h_redis_get(&M[i], key, v, sizeof v);
    return n >= 2;
}

static bool registry_gone(void *arg)
{
    const char *key = arg;
    char v[512];
    for (int i = 0; i < NM; i++)
        if (h_redis_get(&M[i], key, v, sizeof v))
            return false;
    return true;
}

#define SLOW_POLL "retry_delay_ms = 60000\nretry_jitter_ms = 0\n"

START_TEST(release_wakes_other_daemon)
{
    start(0, SLOW_POLL);
    start(1, SLOW_POLL);
    struct redlock_client *a = h_client(D[0].sock);
    ck_assert_ptr_nonnull(a);
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    struct redlock_lock held;
    ck_assert_int_eq(redlock_acquire(a, "w", &o, &held), REDLOCK_OK);

    int fd = h_connect_unix(D[1].sock);
    ck_assert_int_ge(fd, 0);
    raw_send(fd, "ACQUIRE w 30000 WAIT 50000");
    /* B's first attempt was refused (and registered it): it waits in B's
     * queue, its next poll 60 s away. */
    struct redlock_client *b = h_client(D[1].sock);
    ck_assert_ptr_nonnull(b);
    probe = b;
    ck_assert_msg(h_wait_until(one_waiter, NULL, 20000 * h_slowdown()),
                  "daemon B's waiter never queued");
    ck_assert_int_eq(redlock_release(a, held.id), REDLOCK_OK);
    char reply[256];
    /* Well before the 60 s poll: only a wake-up can have done it. */
    int n = h_read_reply(fd, reply, sizeof reply, 30000);
    ck_assert_msg(n > 0 && strncmp(reply, "OK ", 3) == 0, "daemon B's waiter: '%s' (%d)",
                  n > 0 ? reply : "", n);
    ck_assert_int_ge(info_counter(b, "fleet_wakeups"), 1);
    redlock_close(b);
    close(fd);
    redlock_close(a);
}
END_TEST

/* ---- shared_wakes_other_daemon, readers_of_two_daemons_wake ---------------- */

/* fd's ACQUIRE (sent) is answered OK within 30 s: long before a 60 s poll. */
static void expect_granted(int fd, const char *who)
{
    char reply[256];
    int n = h_read_reply(fd, reply, sizeof reply, 30000);
    ck_assert_msg(n > 0 && strncmp(reply, "OK ", 3) == 0, "%s: '%s' (%d)", who, n > 0 ? reply : "",
                  n);
}

START_TEST(shared_wakes_other_daemon)
{
    start(0, SLOW_POLL);
    start(1, SLOW_POLL);
    struct redlock_client *a = h_client(D[0].sock), *b = h_client(D[1].sock);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    probe = b;

    /* A reader on B waits for A's writer. */
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    struct redlock_lock held;
    ck_assert_int_eq(redlock_acquire(a, "rw", &o, &held), REDLOCK_OK);
    int fd = h_connect_unix(D[1].sock);
    ck_assert_int_ge(fd, 0);
    raw_send(fd, "ACQUIRE rw 30000 SHARED WAIT 50000");
    ck_assert_msg(h_wait_until(one_waiter, NULL, 20000 * h_slowdown()), "B's reader never queued");
    ck_assert_int_eq(redlock_release(a, held.id), REDLOCK_OK);
    expect_granted(fd, "B's reader after A's writer");
    close(fd);
    long long woken = info_counter(b, "fleet_wakeups");
    ck_assert_int_ge(woken, 1);

    /* A writer on B waits for A's reader (the key is gone only when the
     * last reader leaves: B's reader above has gone with its connection). */
    o.shared = true;
    ck_assert_int_eq(redlock_acquire(a, "rw2", &o, &held), REDLOCK_OK);
    fd = h_connect_unix(D[1].sock);
    ck_assert_int_ge(fd, 0);
    raw_send(fd, "ACQUIRE rw2 30000 WAIT 50000");
    ck_assert_msg(h_wait_until(one_waiter, NULL, 20000 * h_slowdown()), "B's writer never queued");
    ck_assert_int_eq(redlock_release(a, held.id), REDLOCK_OK);
    expect_granted(fd, "B's writer after A's reader");
    ck_assert_int_gt(info_counter(b, "fleet_wakeups"), woken);
    close(fd);
    redlock_close(b);
    redlock_close(a);
}
END_TEST

START_TEST(readers_of_two_daemons_wake)
{
    start(0, SLOW_POLL);
    start(1, SLOW_POLL);
    start(2, SLOW_POLL);
    struct redlock_client *a = h_client(D[0].sock);
    ck_assert_ptr_nonnull(a);
    struct redlock_acquire_opts o = {.ttl_ms = 30000};
    struct redlock_lock held;
    ck_assert_int_eq(redlock_acquire(a, "rd", &o, &held), REDLOCK_OK);
    int fd[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = h_connect_unix(D[1 + i].sock);
        ck_assert_int_ge(fd[i], 0);
        raw_send(fd[i], "ACQUIRE rd 30000 SHARED WAIT 50000");
        probe = h_client(D[1 + i].sock);
        ck_assert_ptr_nonnull(probe);
        ck_assert_msg(h_wait_until(one_waiter, NULL, 20000 * h_slowdown()),
                      "reader %d never queued", i);
        redlock_close(probe);
    }
    ck_assert_int_eq(redlock_release(a, held.id), REDLOCK_OK);
    expect_granted(fd[0], "the first reader");
    expect_granted(fd[1], "the second reader");
    close(fd[0]);
    close(fd[1]);
    redlock_close(a);
}
END_TEST

/* ---- hostile_wake_channel ------------------------------------------------------ */

/* Every master has the daemon's subscriber back on the channel. */
static bool subscribed_everywhere(void *arg)
{
    (void)arg;
    char out[256];
    for (int i = 0; i < NM; i++) {
        const char *argv[] = {"EVAL", "return redis.call('pubsub', 'numsub', ',wake')[2]", "0",
                              NULL};
        if (h_redis_cmdv(&M[i], out, sizeof out, argv) != H_REPLY_INT || atoi(out) < 1)
            return false;
    }
    return true;
}

static bool subscription_lost(void *arg)
{
    (void)arg;
    return h_file_contains(D[0].log, "wake-up subscription lost");
}

/* PUBLISH msg on ",wake" n times on master i (one EVAL). */
static void publish_n(int i, const char *msg, int n)
{
    char out[64], count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *argv[] = {
        "EVAL", "for _ = 1, tonumber(ARGV[2]) do redis.call('publish', ',wake', ARGV[1]) end",
        "0",    msg,
        count,  NULL};
    ck_assert_int_ne(h_redis_cmdv(&M[i], out, sizeof out, argv), H_REPLY_ERRIO);
}

START_TEST(hostile_wake_channel)
{
    start(0, SLOW_POLL);
    /* Another client's lock: redlockd's waiter polls (every 60 s here). */
    char out[512];
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "SET", "hw",
                                     "0123456789abcdef0123456789abcdef", "PX", "60000", NULL),
                         H_REPLY_STATUS);
    int fd = h_connect_unix(D[0].sock);
    ck_assert_int_ge(fd, 0);
    raw_send(fd, "ACQUIRE hw 30000 WAIT 50000");
    ck_assert_msg(h_wait_until(registered, "hw,w", 20000 * h_slowdown()), "never registered");
    ck_assert_msg(h_wait_until(subscribed_everywhere, NULL, 20000 * h_slowdown()),
                  "not subscribed");
    char node[17];
    ck_assert(h_redis_get(&M[0], "hw,w", out, sizeof out));
    snprintf(node, sizeof node, "%.16s", out);
    char wake[64], other[64], nokey[64];
    snprintf(wake, sizeof wake, "%s hw", node);
    snprintf(other, sizeof other, "00000000000000ff hw");
    snprintf(nokey, sizeof nokey, "%s nosuchkey", node);
    struct redlock_client *c = h_client(D[0].sock);
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < NM; i++) {
        publish_n(i, wake, 3000); /* the key is still held: each retry is refused */
        publish_n(i, other, 1000);
        publish_n(i, nokey, 1000);
        publish_n(i, "", 100);
        publish_n(i, "x", 100);
    }
    /* Still answering, and still waiting. */
    ck_assert_int_eq(redlock_command(c, "PING", out, sizeof out), REDLOCK_OK);
    ck_assert(!h_readable(fd, 100));
    long long woken = info_counter(c, "fleet_wakeups");
    fprintf(stderr, "hostile_wake_channel: %d wake-ups for a held key started %lld attempts\n",
            3 * 3000, woken);
    ck_assert_int_ge(woken, 1);
    /* 2 MB in one message: past the reply bound, the subscription is dropped
     * and comes back. */
    const char *big_argv[] = {
        "EVAL", "redis.call('publish', ',wake', string.rep('a', 2 * 1024 * 1024)) return 1", "0",
        NULL};
    ck_assert_int_eq(h_redis_cmdv(&M[1], out, sizeof out, big_argv), H_REPLY_INT);
    ck_assert_int_eq(redlock_command(c, "PING", out, sizeof out), REDLOCK_OK);
    ck_assert_msg(h_wait_until(subscription_lost, NULL, 20000 * h_slowdown()),
                  "the 2 MB message was taken");
    ck_assert_msg(h_wait_until(subscribed_everywhere, NULL, 20000 * h_slowdown()),
                  "subscription not back");
    ck_assert(!h_readable(fd, 100));
    /* The holder goes and a real wake-up comes: granted, long before a poll. */
    for (int i = 0; i < NM; i++) {
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "DEL", "hw", NULL), H_REPLY_INT);
        publish_n(i, wake, 1);
    }
    expect_granted(fd, "the waiter after the flood");
    close(fd);
    redlock_close(c);
}
END_TEST

/* ---- killed_daemon_expires --------------------------------------------------- */


START_TEST(killed_daemon_expires)
{
    /* Polls every ~100 ms: a registration lasts max(1 s, 3 polls). */
    const char *lock = "retry_delay_ms = 50\nretry_jitter_ms = 20\n";
    start(0, lock);
    start(2, lock);
    struct redlock_client *a1 = h_client(D[0].sock), *a2 = h_client(D[0].sock);
    ck_assert_ptr_nonnull(a1);
    ck_assert_ptr_nonnull(a2);
    struct redlock_acquire_opts o = {.ttl_ms = 30000, .wait_ms = 60000};
    struct redlock_lock held;
    ck_assert_int_eq(redlock_acquire(a1, "k", &o, &held), REDLOCK_OK);

    /* Daemon K waits for k (registered), then dies without a word. */
    int fd = h_connect_unix(D[2].sock);
    ck_assert_int_ge(fd, 0);
    raw_send(fd, "ACQUIRE k 30000 WAIT 60000");
    ck_assert_msg(h_wait_until(registered, "k,w", 20000 * h_slowdown()),
                  "daemon K never registered");
    kill(D[2].pid, SIGKILL);
    ck_assert(h_wait_exit(D[2].pid, 10000) >= 0);
    D[2].pid = 0;
    close(fd);

    /* A's next waiter (queued behind a1 on A, younger than K's registration)
     * is first offered to K (yielded), then gets the key all the same. */
    int fd2 = h_connect_unix(D[0].sock);
    ck_assert_int_ge(fd2, 0);
    raw_send(fd2, "ACQUIRE k 30000 WAIT 60000");
    probe = a2;
    ck_assert_msg(h_wait_until(one_waiter, NULL, 20000 * h_slowdown()), "A's waiter never queued");
    ck_assert_int_eq(redlock_release(a1, held.id), REDLOCK_OK);
    char reply[256], id[64];
    int n = h_read_reply(fd2, reply, sizeof reply, 30000 * h_slowdown());
    ck_assert_msg(n > 0 && sscanf(reply, "OK %63s", id) == 1, "A's waiter: '%s' (%d)",
                  n > 0 ? reply : "", n);

    /* K's registration expires on its own. */
    ck_assert_msg(h_wait_until(registry_gone, "k,w", 30000 * h_slowdown()),
                  "K's registration never expired");
    char line[160];
    snprintf(line, sizeof line, "RELEASE %s", id);
    raw_send(fd2, line);
    ck_assert_int_gt(h_read_reply(fd2, reply, sizeof reply, 10000 * h_slowdown()), 0);

    /* From now on A's hand-offs stay local: no yield to anyone. */
    long long yielded = info_counter(a2, "handoffs_yielded");
    ck_assert_int_ge(yielded, 1);
    ck_assert_int_eq(redlock_acquire(a1, "k", &o, &held), REDLOCK_OK);
    for (int i = 0; i < 10; i++) {
        struct redlock_client *holder = i % 2 ? a2 : a1, *next = i % 2 ? a1 : a2;
        raw_send(redlock_fd(next), "ACQUIRE k 30000 WAIT 60000");
        ck_assert_int_eq(redlock_release(holder, held.id), REDLOCK_OK);
        n = h_read_reply(redlock_fd(next), reply, sizeof reply, 30000 * h_slowdown());
        ck_assert_msg(n > 0 && sscanf(reply, "OK %32s", held.id) == 1, "hand-off %d: '%s'", i,
                      reply);
    }
    ck_assert_int_eq(info_counter(a1, "handoffs_yielded"), yielded);
    close(fd2);
    redlock_close(a1);
    redlock_close(a2);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("fleet");
    TCase *tc = tcase_create("fleet");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, fair_across_daemons);
    tcase_add_test(tc, release_wakes_other_daemon);
    tcase_add_test(tc, killed_daemon_expires);
    tcase_add_test(tc, fair_permits_across_daemons);
    tcase_add_test(tc, shared_wakes_other_daemon);
    tcase_add_test(tc, readers_of_two_daemons_wake);
    tcase_add_test(tc, hostile_wake_channel);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
