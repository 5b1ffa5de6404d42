/*
 * seeds.c - the jobs the five seed libraries' READMEs show, done through
 * redlockd with libredlock. `seeds JOB` runs one of them against
 * $REDLOCK_ADDR and exits 0 when it did what the seed promises.
 *
 *   using        Deno-Redlock: work under an auto-extended lock, checking
 *                between steps that it is still held (the AbortSignal).
 *   retries      distributed-locks: lock({ttl, retries, interval}); give up
 *                with "FailedToObtainKey" when it cannot be had.
 *   validity     distrilock: acquire, look at the validity, extend, release.
 *   execute      @0xtheprodev/distributed-lock: run a block exclusively.
 *   acquire-all  priority-redlock: several resources at once, all or nothing,
 *                and a higher priority that preempts a lower one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redlock.h"

static struct redlock_client *connect_or_die(void)
{
    char err[256];
    struct redlock_client *c = redlock_connect(NULL, err, sizeof err); /* $REDLOCK_ADDR */
    if (c == NULL) {
        fprintf(stderr, "seeds: %s\n", err);
        exit(69);
    }
    return c;
}

/* Deno-Redlock: redlock.using(["resource"], 10000, async (signal) => {...}) */
static int step(struct redlock_guard *g, void *ud)
{
    (void)ud;
    for (int i = 0; i < 3; i++) {
        usleep(200 * 1000);           /* "perform some action" */
        if (!redlock_guard_held(g)) { /* if (signal.aborted) throw signal.error */
            fprintf(stderr, "seeds: lock lost, aborting\n");
            return 1;
        }
    }
    printf("using: 3 steps done under lock %.8s\n", redlock_guard_lock(g)->id);
    return 0;
}

static int job_using(struct redlock_client *c)
{
    /* A 300 ms TTL, work of 600 ms: only the auto-extension keeps it held. */
    struct redlock_acquire_opts o = {.ttl_ms = 300, .wait_ms = 5000};
    int rc = redlock_using(c, "seed-using", &o, step, NULL);
    return rc == 0 ? 0 : 1;
}

/* distributed-locks: await lock.lock({ttl: 10, interval: 5, retires: 3}) */
static int job_retries(struct redlock_client *c)
{
    int ttl_s = 10, interval_s = 1, retries = 3;
    struct redlock_acquire_opts o = {.ttl_ms = (uint32_t)ttl_s * 1000};
    struct redlock_lock lk;
    int rc = REDLOCK_ERR_BUSY;
    for (int attempt = 0; attempt <= retries; attempt++) {
        rc = redlock_acquire(c, "seed-retries", &o, &lk);
        if (rc != REDLOCK_ERR_BUSY) break;
        sleep((unsigned)interval_s);
    }
    if (rc == REDLOCK_ERR_BUSY) {
        fprintf(stderr, "FailedToObtainKey: %s\n", redlock_errstr(c));
        return 75;
    }
    if (rc != REDLOCK_OK) return 1;
    /* The daemon way to say the same: WAIT 3000 instead of the loop. */
    printf("retries: locked %.8s\n", lk.id);
    return redlock_release(c, lk.id) == REDLOCK_OK ? 0 : 1; /* finally: lock.unlock() */
}

/* distrilock: acquire, check lock.validity, extend, release */
static int job_validity(struct redlock_client *c)
{
    struct redlock_acquire_opts o = {.ttl_ms = 10000};
    struct redlock_lock lk;
    if (redlock_acquire(c, "seed-validity", &o, &lk) != REDLOCK_OK) return 1;
    printf("validity: %llu ms, fence %llu\n", (unsigned long long)lk.validity_ms, (unsigned long long)lk.fence);
    if (lk.validity_ms == 0 || lk.validity_ms > 10000) return 1;
    if (redlock_extend(c, lk.id, 15000, &lk) != REDLOCK_OK) return 1; /* redlock.extend(lock, 15000) */
    printf("extended: %llu ms\n", (unsigned long long)lk.validity_ms);
    if (lk.validity_ms <= 10000) return 1;
    return redlock_release(c, lk.id) == REDLOCK_OK ? 0 : 1;
}

/* @0xtheprodev/distributed-lock: distributedLock.execute("fetch", async () => ...) */
static int job_execute(struct redlock_client *c)
{
    const char *log = getenv("SEEDS_LOG"); /* the block appends start/end markers here */
    struct redlock_acquire_opts o = {.ttl_ms = 5000, .wait_ms = 20000};
    struct redlock_lock lk;
    if (redlock_acquire(c, "seed-execute", &o, &lk) != REDLOCK_OK) return 1;
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) fprintf(f, "start %d\n", (int)getpid()), fflush(f);
    usleep(100 * 1000); /* the block */
    if (f) fprintf(f, "end %d\n", (int)getpid()), fclose(f);
    return redlock_release(c, lk.id) == REDLOCK_OK ? 0 : 1;
}

/* priority-redlock: aquireAll([KITCHEN_LIGHT, BEDROOM_LIGHT]) at priority 100 */
static int job_acquire_all(struct redlock_client *c)
{
    struct redlock_client *fun = connect_or_die();
    struct redlock_acquire_opts low = {.ttl_ms = 10000, .autoextend = true};
    struct redlock_lock kitchen;
    if (redlock_acquire(fun, "kitchen-light", &low, &kitchen) != REDLOCK_OK) return 1;
    /* The security process takes both lights at once, preempting the fun app. */
    struct redlock_acquire_opts sec = {.ttl_ms = 10000, .priority = 100};
    struct redlock_lock both;
    if (redlock_acquire(c, "kitchen-light,bedroom-light", &sec, &both) != REDLOCK_OK) return 1;
    int lost = 0;
    for (int i = 0; i < 50 && !lost; i++) lost = redlock_poll_events(fun, 100) > 0;
    printf("acquire-all: both lights %.8s, fun app %s\n", both.id, lost ? "preempted" : "NOT told");
    redlock_close(fun);
    return lost && redlock_release(c, both.id) == REDLOCK_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seeds using|retries|validity|execute|acquire-all\n");
        return 64;
    }
    struct redlock_client *c = connect_or_die();
    int rc = 64;
    if (strcmp(argv[1], "using") == 0) rc = job_using(c);
    else if (strcmp(argv[1], "retries") == 0) rc = job_retries(c);
    else if (strcmp(argv[1], "validity") == 0) rc = job_validity(c);
    else if (strcmp(argv[1], "execute") == 0) rc = job_execute(c);
    else if (strcmp(argv[1], "acquire-all") == 0) rc = job_acquire_all(c);
    redlock_close(c);
    return rc;
}
