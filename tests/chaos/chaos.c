/*
 * chaos.c - mutual exclusion under master faults, measured.
 *
 * Three real redis-server masters, two redlockd instances sharing them, and
 * CHAOS_CLIENTS client processes (half on each daemon) that keep taking a
 * few hot resources: plain TTL locks with WAIT, and AUTOEXTEND locks through
 * redlock_using(); exclusive on three of them, readers (SHARED) and writers
 * on a fourth, and PERMITS 2 on a fifth. Every holder records its critical section on
 * CLOCK_MONOTONIC (one clock for all processes of this machine). Meanwhile
 * the parent injects faults into one master at a time: SIGSTOP for a while,
 * or SIGKILL and a restart with no data.
 *
 * Fails if two sections of one resource overlap (a writer and anyone; more
 * than two PERMITS 2 holders), if a section's fence is not above the fence
 * of an earlier section on that resource that ended before it began (one of
 * them a writer; semaphore holders are not ordered), if a plain
 * holder's section ran past the validity it was promised, if an AUTOEXTEND
 * holder went on after EVENT LOST, or if a daemon crashed or did not exit 0
 * on SIGTERM.
 * Prints the totals and "N passed, N failed".
 *
 * CHAOS_SECONDS (default 60) bounds the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "redlock.h"

#define NM 3
#define NRES 5
#define RES_RW 3      /* readers and writers */
#define RES_PERMITS 4 /* PERMITS 2 */
#define PERMITS_N 2
#define MAX_CLIENTS 16
#define MAX_RECORDS 200000
#define PLAIN_TTL_MS 500
#define AUTO_TTL_MS 600
#define MAX_TTL_MS 3000 /* the daemons' max_ttl_ms: a restarted master's quarantine */
#define MAX_KILLS 256
#define STR_(x) #x
#define STR(x) STR_(x)

enum kind { SECTION_PLAIN = 0, SECTION_AUTO = 1 };

/* One critical section, as its holder saw it. */
struct record {
    int resource;
    int kind;
    int client;
    uint64_t start_ns;    /* right after the OK */
    uint64_t end_ns;      /* right before RELEASE (or when LOST was noticed) */
    uint64_t promised_ns; /* plain: OK arrival + validity (validity counts from the reply); auto: 0 */
    int lost;             /* auto: EVENT LOST arrived during the section */
    int past_lost;        /* auto: the section went on after LOST was seen */
    uint64_t fence;       /* the fence the lock came with */
    int shared;           /* a reader (RES_RW) */
};

/* Totals a client reports back through its record file's trailer. */
struct client_totals {
    uint64_t acquired, busy, noquorum, other_errors, lost;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void work_ms(unsigned ms) /* simulated work inside the section */
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *resource_name(int r)
{
    static const char *const names[NRES] = {"chaos-a", "chaos-b", "chaos-c", "chaos-rw", "chaos-permits"};
    return names[r];
}

/* ---- the clients ---- */

struct auto_ctx {
    struct record *rec;
    unsigned work_ms;
};

static int in_auto_section(struct redlock_guard *g, void *ud)
{
    struct auto_ctx *a = ud;
    a->rec->start_ns = mono_ns();
    a->rec->fence = redlock_guard_lock(g)->fence;
    /* Work in small steps, checking the signal between them as the seeds do. */
    for (unsigned done = 0; done < a->work_ms; done += 5) {
        if (!redlock_guard_held(g)) {
            a->rec->end_ns = mono_ns();
            a->rec->lost = 1;
            return 0;
        }
        work_ms(5);
    }
    a->rec->end_ns = mono_ns();
    if (!redlock_guard_held(g)) { /* lost at the very end: the section ended before we looked */
        a->rec->lost = 1;
    }
    return 0;
}

/* The resource's mode in the ACQUIRE options: on RES_RW a reader half the time. */
static void set_mode(struct record *rec, struct redlock_acquire_opts *o)
{
    if (rec->resource == RES_PERMITS) o->permits = PERMITS_N;
    if (rec->resource == RES_RW && rand() % 2 == 0) rec->shared = o->shared = true;
}

static void run_client(int id, const char *sock, uint64_t stop_ns, const char *out_path)
{
    srand((unsigned)(getpid() ^ mono_ns()));
    FILE *out = fopen(out_path, "w");
    if (out == NULL) _exit(2);
    struct client_totals tot = {0};
    struct redlock_client *c = NULL;
    while (mono_ns() < stop_ns) {
        if (c == NULL) {
            c = redlock_connect(sock, NULL, 0);
            if (c == NULL) {
                work_ms(50);
                continue;
            }
            redlock_set_timeout(c, 10000);
        }
        struct record rec = {.resource = rand() % NRES, .client = id};
        const char *res = resource_name(rec.resource);
        int rc;
        if (rand() % 3 == 0) {
            rec.kind = SECTION_AUTO;
            struct auto_ctx a = {.rec = &rec, .work_ms = (unsigned)(rand() % 300)};
            struct redlock_acquire_opts o = {.ttl_ms = AUTO_TTL_MS, .wait_ms = 2000};
            set_mode(&rec, &o);
            rc = redlock_using(c, res, &o, in_auto_section, &a);
            if (rc == REDLOCK_OK || rc == REDLOCK_ERR_LOST || rec.start_ns != 0) {
                if (rec.lost || rc == REDLOCK_ERR_LOST) {
                    rec.lost = 1;
                    tot.lost++;
                }
                tot.acquired++;
                fwrite(&rec, sizeof rec, 1, out);
                if (rc != REDLOCK_OK && rc != REDLOCK_ERR_LOST && rc < REDLOCK_ERR_IO + 1) {
                    /* the release after the section failed: the connection is gone */
                    redlock_close(c);
                    c = NULL;
                }
                continue;
            }
        } else {
            rec.kind = SECTION_PLAIN;
            struct redlock_acquire_opts o = {.ttl_ms = PLAIN_TTL_MS, .wait_ms = 2000};
            set_mode(&rec, &o);
            struct redlock_lock lk;
            rc = redlock_acquire(c, res, &o, &lk);
            if (rc == REDLOCK_OK) {
                rec.start_ns = mono_ns();
                /* The validity counts from when the daemon wrote the reply
                 * (after any WAIT), so it ends at most this late. */
                rec.promised_ns = rec.start_ns + lk.validity_ms * 1000000u;
                rec.fence = lk.fence;
                work_ms((unsigned)(rand() % 21));
                rec.end_ns = mono_ns();
                fwrite(&rec, sizeof rec, 1, out);
                tot.acquired++;
                rc = redlock_release(c, lk.id);
                if (rc == REDLOCK_OK || rc == REDLOCK_ERR_NOTHELD || rc == REDLOCK_ERR_NOQUORUM) continue;
            }
        }
        if (rc == REDLOCK_ERR_BUSY) tot.busy++;
        else if (rc == REDLOCK_ERR_NOQUORUM) tot.noquorum++;
        else if (tot.other_errors++ < 3)
            fprintf(stderr, "chaos: client %d: %s: %s\n", id, redlock_status_name(rc),
                    c ? redlock_errstr(c) : "");
        if (rc <= REDLOCK_ERR_IO) { /* I/O or protocol trouble: reconnect */
            redlock_close(c);
            c = NULL;
        }
    }
    redlock_close(c);
    struct record trailer = {.resource = -1};
    fwrite(&trailer, sizeof trailer, 1, out);
    fwrite(&tot, sizeof tot, 1, out);
    fclose(out);
    _exit(0);
}

/* ---- the checks ---- */

static int by_start(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    if (x->resource != y->resource) return x->resource - y->resource;
    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

/*
 * Fences survive the loss of fewer than half of the masters' data within one
 * max_ttl_ms (PROTOCOL.md 8.4); the injector may kill two of three masters
 * closer together than that (mutual exclusion must survive even that). A
 * fence that fails to rise within a few seconds after the second of such
 * kills (their quarantines, plus the longest SIGSTOP of the third master)
 * is reported but not counted as a failure.
 */
static bool after_double_loss(const uint64_t *kill_ns, unsigned nkills, uint64_t t)
{
    const uint64_t ms = 1000000u;
    for (unsigned k = 1; k < nkills; k++)
        if (kill_ns[k] - kill_ns[k - 1] < (MAX_TTL_MS + 500) * ms && t >= kill_ns[k] &&
            t < kill_ns[k] + (MAX_TTL_MS + 3000) * ms)
            return true;
    return false;
}

int main(void)
{
    const char *secs_env = getenv("CHAOS_SECONDS");
    unsigned seconds = secs_env ? (unsigned)atoi(secs_env) : 60;
    const char *clients_env = getenv("CHAOS_CLIENTS");
    int nclients = clients_env ? atoi(clients_env) : 6;
    if (nclients < 2 || nclients > MAX_CLIENTS) nclients = 6;
    h_init();

    struct h_redis m[NM];
    struct h_daemon d[2];
    memset(m, 0, sizeof m);
    memset(d, 0, sizeof d);
    for (int i = 0; i < NM; i++)
        if (h_redis_start(&m[i]) != 0) {
            fprintf(stderr, "chaos: redis-server did not start\n");
            return 1;
        }
    /* A short max_ttl_ms keeps a restarted master's quarantine short. */
    const struct h_daemon_opts opts = {
        .redis = "master_timeout_ms = 50\n",
        .lock = "max_ttl_ms = " STR(
            MAX_TTL_MS) "\ndefault_ttl_ms = 1000\nretry_delay_ms = 50\nretry_jitter_ms = 50\n",
    };
    for (int i = 0; i < 2; i++)
        if (h_daemon_start(&d[i], m, NM, &opts) != 0) {
            fprintf(stderr, "chaos: redlockd did not start\n");
            return 1;
        }
    char dir[H_PATH_MAX];
    if (h_mkdtemp("chaos", dir) != 0) return 1;

    uint64_t stop_ns = mono_ns() + (uint64_t)seconds * 1000000000u;
    pid_t pids[MAX_CLIENTS];
    char paths[MAX_CLIENTS][H_PATH_MAX + 32];
    for (int i = 0; i < nclients; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/client-%d", dir, i);
        pids[i] = fork();
        if (pids[i] == 0) run_client(i, d[i % 2].sock, stop_ns, paths[i]);
    }

    /* The fault injector: one master at a time. */
    unsigned faults_stop = 0, faults_kill = 0;
    uint64_t kill_ns[MAX_KILLS];
    srand((unsigned)mono_ns());
    while (mono_ns() + 2500000000u < stop_ns) {
        h_sleep_ms(1000 + (uint32_t)(rand() % 1000)); /* pacing between faults, not a wait for a condition */
        int victim = rand() % NM;
        switch (rand() % 3) {
        case 0:
            if (h_redis_pause(&m[victim]) == 0) {
                faults_stop++;
                h_sleep_ms(500 + (uint32_t)(rand() % 1500));
                h_redis_resume(&m[victim]);
            }
            break;
        case 1:
            h_redis_kill(&m[victim]);
            if (faults_kill < MAX_KILLS) kill_ns[faults_kill] = mono_ns();
            faults_kill++;
            if (h_redis_restart(&m[victim]) != 0)
                fprintf(stderr, "chaos: restart of master %d failed\n", victim);
            break;
        default: break; /* a quiet period */
        }
    }

    int failures = 0;
    for (int i = 0; i < nclients; i++) {
        /* Clients stop by themselves at stop_ns (their calls time out in 10 s). */
        int status, code = -1;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(status)) code = WEXITSTATUS(status);
        if (code != 0) {
            fprintf(stderr, "chaos: client %d exited with %d\n", i, code);
            failures++;
        }
    }
    /* Fleet waiting (on by default) took part: its counters, both daemons. */
    long long yielded = 0, wakeups = 0;
    for (int i = 0; i < 2; i++) {
        struct redlock_client *c = h_daemon_alive(&d[i]) ? h_client(d[i].sock) : NULL;
        char info[16384];
        if (c != NULL && redlock_command(c, "INFO", info, sizeof info) == REDLOCK_OK) {
            const char *y = strstr(info, "\nhandoffs_yielded "), *w = strstr(info, "\nfleet_wakeups ");
            if (y != NULL) yielded += atoll(y + 18);
            if (w != NULL) wakeups += atoll(w + 15);
        }
        if (c != NULL) redlock_close(c);
    }
    bool alive0 = h_daemon_alive(&d[0]), alive1 = h_daemon_alive(&d[1]);
    int code0 = h_daemon_stop(&d[0]), code1 = h_daemon_stop(&d[1]);
    if (!alive0 || !alive1 || code0 != 0 || code1 != 0) {
        fprintf(stderr, "chaos: redlockd crashed or exited badly (alive %d %d, exit %d %d)\n", alive0, alive1,
                code0, code1);
        failures++;
    }
    for (int i = 0; i < NM; i++) h_redis_stop(&m[i]);

    /* Merge the records. */
    struct record *all = malloc(sizeof *all * MAX_RECORDS);
    size_t n = 0;
    struct client_totals sum = {0};
    for (int i = 0; i < nclients; i++) {
        FILE *f = fopen(paths[i], "r");
        if (f == NULL) continue;
        struct record r;
        while (fread(&r, sizeof r, 1, f) == 1) {
            if (r.resource < 0) {
                struct client_totals t;
                if (fread(&t, sizeof t, 1, f) == 1) {
                    sum.acquired += t.acquired;
                    sum.busy += t.busy;
                    sum.noquorum += t.noquorum;
                    sum.other_errors += t.other_errors;
                    sum.lost += t.lost;
                }
                break;
            }
            if (n < MAX_RECORDS) all[n++] = r;
        }
        fclose(f);
    }
    qsort(all, n, sizeof *all, by_start);
    size_t overlaps = 0, overran = 0, fences_back = 0, fences_excused = 0;
    unsigned nkills = faults_kill < MAX_KILLS ? faults_kill : MAX_KILLS;
    size_t readers = 0, writers = 0, permit_holders = 0;
    unsigned most_readers = 0, most_permits = 0; /* the most in at once */
    for (size_t i = 0; i < n; i++) {
        const struct record *ri = &all[i];
        bool permits = ri->resource == RES_PERMITS;
        if (ri->kind == SECTION_PLAIN && ri->end_ns > ri->promised_ns) {
            overran++;
            fprintf(stderr, "chaos: client %d held %s %.1f ms past its validity\n", ri->client,
                    resource_name(ri->resource), (double)(ri->end_ns - ri->promised_ns) / 1e6);
        }
        /* Against every earlier section of the resource (sorted by start). */
        unsigned open = 0; /* earlier sections still open at this start */
        bool fence_ok = true;
        const struct record *behind = NULL; /* an earlier, ordered section with a fence not below */
        for (size_t j = i; j-- > 0 && all[j].resource == ri->resource;) {
            const struct record *rj = &all[j];
            if (ri->start_ns - rj->start_ns > 10000000000ull) break; /* far enough back */
            bool ordered = !permits && !(ri->shared && rj->shared);  /* a writer is one of them */
            if (rj->end_ns > ri->start_ns) {
                open++;
                if (ordered) {
                    overlaps++;
                    fprintf(stderr, "chaos: OVERLAP on %s: client %d [%llu, %llu] and client %d [%llu, %llu]\n",
                            resource_name(ri->resource), rj->client, (unsigned long long)rj->start_ns,
                            (unsigned long long)rj->end_ns, ri->client, (unsigned long long)ri->start_ns,
                            (unsigned long long)ri->end_ns);
                }
            } else if (ordered && fence_ok && ri->fence <= rj->fence) {
                fence_ok = false;
                behind = rj;
            }
        }
        if (ri->resource == RES_RW && ri->shared) {
            readers++;
            if (open + 1 > most_readers) most_readers = open + 1; /* overlapping writers are reported */
        } else if (ri->resource == RES_RW) writers++;
        if (permits) {
            permit_holders++;
            if (open + 1 > most_permits) most_permits = open + 1;
        }
        if (permits && open >= PERMITS_N) {
            overlaps++;
            fprintf(stderr, "chaos: OVERLAP on %s: client %d started with %u holders in\n",
                    resource_name(ri->resource), ri->client, open);
        }
        if (!fence_ok) {
            /* A later holder's fence must be above every earlier holder's it is ordered with. */
            bool excused = after_double_loss(kill_ns, nkills, ri->start_ns);
            if (excused) fences_excused++;
            else fences_back++;
            fprintf(stderr, "chaos: FENCE on %s: client %d got %llu after client %d's %llu%s\n",
                    resource_name(ri->resource), ri->client, (unsigned long long)ri->fence, behind->client,
                    (unsigned long long)behind->fence,
                    excused ? " (excused: two masters lost their data within max_ttl_ms)" : "");
        }
    }
    free(all);
    h_rmtree(dir);
    printf("chaos: %u s, %d clients, 2 daemons, %d masters\n", seconds, nclients, NM);
    printf("chaos: acquisitions %llu (sections recorded %zu), BUSY %llu, NOQUORUM %llu, other errors %llu\n",
           (unsigned long long)sum.acquired, n, (unsigned long long)sum.busy, (unsigned long long)sum.noquorum,
           (unsigned long long)sum.other_errors);
    printf("chaos: faults injected %u (SIGSTOP %u, kill+restart empty %u), LOST events %llu\n",
           faults_stop + faults_kill, faults_stop, faults_kill, (unsigned long long)sum.lost);
    printf("chaos: %s: readers %zu (at most %u at once), writers %zu; %s: PERMITS %d holders %zu "
           "(at most %u at once)\n",
           resource_name(RES_RW), readers, most_readers, writers, resource_name(RES_PERMITS), PERMITS_N,
           permit_holders, most_permits);
    printf("chaos: fleet waiting: hand-offs yielded to the other daemon %lld, wake-ups %lld\n", yielded,
           wakeups);
    printf("chaos: overlaps %zu (must be 0), plain sections past validity %zu (must be 0), "
           "fences not above the previous holder's %zu (must be 0; %zu more after two masters lost their data "
           "within max_ttl_ms, which fences do not survive)\n",
           overlaps, overran, fences_back, fences_excused);
    if (overlaps > 0 || overran > 0 || fences_back > 0 || n == 0) failures++;
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures ? 1 : 0;
}
