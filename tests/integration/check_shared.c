/*
 * check_shared.c - SHARED (read/write) locks and PERMITS semaphores through
 * two real redlockd processes on the same real Redis masters (PROTOCOL.md
 * 8.8): readers hold together and exclude writers across daemons, a
 * waiting writer is not starved by new readers (the writer-waiting marker
 * on the masters, the local FIFO across kinds), a semaphore never has more
 * than n holders (also in the interleaving that a plain majority would
 * allow), a different n is ERR BADREQ, and a shared key excludes another
 * Redlock client's SET NX. Lifetimes: EVENT LOST, connection-bound release,
 * DETACH, fences, INSPECT.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

#define NM 3

static struct h_redis M[5];
static struct h_daemon D[2];

static const struct h_daemon_opts opts = {
    .lock = "retry_count = 1\nretry_delay_ms = 50\nretry_jitter_ms = 10\n",
};

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_start(&M[i]), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(h_daemon_start(&D[i], M, NM, &opts), 0);
}

static void teardown(void)
{
    int code0 = h_daemon_stop(&D[0]), code1 = h_daemon_stop(&D[1]);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_int_eq(code0, 0);
    ck_assert_int_eq(code1, 0);
}


/* ACQUIRE that must succeed: its id (and fence, if asked). */
static void must_get(int fd, const char *line, char id[64], unsigned long long *fence)
{
    char out[256];
    unsigned long long v, f = 0;
    raw_request(fd, line, out, sizeof out);
    ck_assert_msg(sscanf(out, "OK %63s %llu %llu", id, &v, &f) >= 2, "%s -> '%s'", line, out);
    if (fence != NULL)
        *fence = f;
}

static void must_fail(int fd, const char *line, const char *prefix)
{
    char out[256];
    raw_request(fd, line, out, sizeof out);
    ck_assert_msg(strncmp(out, prefix, strlen(prefix)) == 0, "%s -> '%s', want %s...", line, out,
                  prefix);
}

static void release(int fd, const char *id)
{
    char line[128], out[128];
    snprintf(line, sizeof line, "RELEASE %s", id);
    raw_request(fd, line, out, sizeof out);
    ck_assert_msg(strcmp(out, "OK") == 0, "%s -> '%s'", line, out);
}

/* How many of the NM masters hold key (any type). */
static int masters_with(const char *key)
{
    int n = 0;
    char out[64];
    for (int i = 0; i < NM; i++)
        n += h_redis_cmd(&M[i], out, sizeof out, "EXISTS", key, NULL) == H_REPLY_INT &&
             strcmp(out, "1") == 0;
    return n;
}

struct key_count {
    const char *key;
    int want;
};

static bool key_count_is(void *p)
{
    const struct key_count *k = p;
    return masters_with(k->key) == k->want;
}

static void wait_key_count(const char *key, int want)
{
    struct key_count k = {key, want};
    ck_assert_msg(h_wait_until(key_count_is, &k, 5000 * h_slowdown()),
                  "%s is on %d masters, want %d", key, masters_with(key), want);
}

START_TEST(test_readers_together_writer_excluded)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock), w = h_connect_unix(D[0].sock),
        w2 = h_connect_unix(D[1].sock);
    char ra[64], rb[64], wid[64];
    must_get(a, "ACQUIRE rw 10000 SHARED", ra, NULL);
    must_get(b, "ACQUIRE rw 10000 SHARED", rb, NULL);
    must_fail(w, "ACQUIRE rw 10000", "ERR BUSY");  /* local readers: BUSY without asking */
    must_fail(w2, "ACQUIRE rw 10000", "ERR BUSY"); /* readers elsewhere: the masters refuse */
    /* A multi-resource exclusive lock over it neither. */
    must_fail(w2, "ACQUIRE other,rw 10000", "ERR BUSY");
    release(a, ra);
    must_fail(w, "ACQUIRE rw 10000", "ERR BUSY"); /* b still reads */
    release(b, rb);
    wait_key_count("rw", 0);
    must_get(w, "ACQUIRE rw 10000", wid, NULL);
    must_fail(b, "ACQUIRE rw 10000 SHARED", "ERR BUSY");
    must_fail(a, "ACQUIRE rw 10000 SHARED", "ERR BUSY");
    release(w, wid);
    must_get(b, "ACQUIRE rw 10000 SHARED WAIT 2000", rb, NULL);
    release(b, rb);
    close(a);
    close(b);
    close(w);
    close(w2);
}
END_TEST

/* Another Redlock client (node-redlock, redsync) on the same masters. */
START_TEST(test_interop_with_plain_set_nx)
{
    int a = h_connect_unix(D[0].sock);
    char id[64], out[128];
    must_get(a, "ACQUIRE io 10000 SHARED", id, NULL);
    wait_key_count("io", NM); /* answered at a majority: the last master may come later */
    for (int i = 0; i < NM; i++) {
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "SET", "io",
                                     "0123456789abcdef0123456789abcdef", "NX", "PX", "10000", NULL),
                         H_REPLY_NIL);
        /* node-redlock's release: GET on a hash is an error; nothing is deleted. */
        ck_assert_int_eq(
            h_redis_cmd(&M[i], out, sizeof out, "EVAL",
                        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', "
                        "KEYS[1]) else return 0 end",
                        "1", "io", id, NULL),
            H_REPLY_ERROR);
        ck_assert_msg(strstr(out, "WRONGTYPE") != NULL, "'%s'", out);
    }
    wait_key_count("io", NM);
    release(a, id);
    wait_key_count("io", 0);
    /* And the other way round: a foreign string lock keeps readers out. */
    for (int i = 0; i < NM; i++)
        ck_assert(h_redis_set_px(&M[i], "io", "foreign-lock-value", 10000));
    must_fail(a, "ACQUIRE io 10000 SHARED", "ERR BUSY");
    must_fail(a, "ACQUIRE io 10000 PERMITS 3", "ERR BUSY");
    close(a);
}
END_TEST

static bool wwait_on_majority(void *p)
{
    return masters_with(p != NULL ? p : "ws,wwait") >= 2;
}

START_TEST(test_writer_not_starved_across_daemons)
{
    int r1 = h_connect_unix(D[1].sock), r2 = h_connect_unix(D[1].sock),
        w = h_connect_unix(D[0].sock);
    char id1[64], id2[64], wid[64], out[256];
    must_get(r1, "ACQUIRE ws 10000 SHARED", id1, NULL);
    ck_assert_int_eq(h_send_str(w, "ACQUIRE ws 10000 WAIT 20000\r\n"), 0);
    /* The writer's failed attempts mark the key on the masters ... */
    ck_assert_msg(h_wait_until(wwait_on_majority, NULL, 5000 * h_slowdown()),
                  "no writer-waiting marker");
    /* ... so a new reader through the other daemon is refused, */
    must_fail(r2, "ACQUIRE ws 10000 SHARED WAIT 0", "ERR BUSY");
    /* while the reader already in keeps extending. */
    snprintf(out, sizeof out, "EXTEND %s 10000", id1);
    raw_request(r1, out, out, sizeof out);
    ck_assert_msg(strncmp(out, "OK ", 3) == 0, "reader could not extend: '%s'", out);
    release(r1, id1);
    ck_assert_msg(h_read_line(w, out, sizeof out, 10000 * h_slowdown()) > 0,
                  "writer never answered");
    ck_assert_msg(sscanf(out, "OK %63s", wid) == 1, "writer: '%s'", out);
    release(w, wid);
    /* The marker is short-lived: readers get in again once it expired. */
    wait_key_count("ws,wwait", 0);
    must_get(r2, "ACQUIRE ws 10000 SHARED", id2, NULL);
    release(r2, id2);
    close(r1);
    close(r2);
    close(w);
}
END_TEST

/* A writer queued behind a reader of its own daemon never reaches the
 * masters until that reader leaves; the marker keeps the other daemon's new
 * readers out all the same, so that they cannot keep the writer waiting. */
START_TEST(test_writer_behind_local_reader_marks)
{
    int r1 = h_connect_unix(D[0].sock), w = h_connect_unix(D[0].sock),
        r2 = h_connect_unix(D[1].sock);
    char id1[64], wid[64], out[256];
    must_get(r1, "ACQUIRE wl 10000 SHARED", id1, NULL);
    ck_assert_int_eq(h_send_str(w, "ACQUIRE wl 10000 WAIT 20000\r\n"), 0);
    ck_assert_msg(h_wait_until(wwait_on_majority, "wl,wwait", 5000 * h_slowdown()),
                  "no writer-waiting marker for a writer behind a local reader");
    must_fail(r2, "ACQUIRE wl 10000 SHARED WAIT 0", "ERR BUSY");
    release(r1, id1);
    ck_assert_msg(h_read_line(w, out, sizeof out, 10000 * h_slowdown()) > 0,
                  "writer never answered");
    ck_assert_msg(sscanf(out, "OK %63s", wid) == 1, "writer: '%s'", out);
    release(w, wid);
    close(r1);
    close(r2);
    close(w);
}
END_TEST

/* LOCKS on the connection *fd says "waiters 3". */
static bool three_waiters(void *p)
{
    int fd = *(int *)p;
    char out[512];
    int n = 0;
    bool three = false;
    raw_request(fd, "LOCKS", out, sizeof out);
    ck_assert(sscanf(out, "DATA %d", &n) == 1);
    for (int i = 0; i < n; i++) {
        ck_assert(h_read_line(fd, out, sizeof out, 5000) > 0);
        if (strcmp(out, "waiters 3") == 0)
            three = true;
    }
    return three;
}

/* Within one daemon: FIFO across kinds. A reader that comes after a
 * queued writer queues behind it instead of joining the readers. */
START_TEST(test_fifo_across_kinds_on_one_daemon)
{
    int r1 = h_connect_unix(D[0].sock), r2 = h_connect_unix(D[0].sock),
        r3 = h_connect_unix(D[0].sock), w = h_connect_unix(D[0].sock),
        q = h_connect_unix(D[0].sock);
    char id1[64], out[512], wid[64], id2[64], id3[64];
    must_get(r1, "ACQUIRE ff 10000 SHARED", id1, NULL);
    ck_assert_int_eq(h_send_str(w, "ACQUIRE ff 10000 WAIT 20000\r\n"), 0);
    ck_assert_int_eq(h_send_str(r2, "ACQUIRE ff 10000 SHARED WAIT 20000\r\n"), 0);
    ck_assert_int_eq(h_send_str(r3, "ACQUIRE ff 10000 SHARED WAIT 20000\r\n"), 0);
    /* Both readers wait behind the writer (the LOCKS block says 3 waiters). */
    ck_assert_msg(h_wait_until(three_waiters, &q, 5000 * h_slowdown()),
                  "the writer and both readers should be queued");
    release(r1, id1);
    ck_assert(h_read_line(w, out, sizeof out, 10000 * h_slowdown()) > 0);
    ck_assert_msg(sscanf(out, "OK %63s", wid) == 1, "writer: '%s'", out);
    release(w, wid);
    /* Then both readers, together. */
    ck_assert(h_read_line(r2, out, sizeof out, 10000 * h_slowdown()) > 0);
    ck_assert_msg(sscanf(out, "OK %63s", id2) == 1, "reader 2: '%s'", out);
    ck_assert(h_read_line(r3, out, sizeof out, 10000 * h_slowdown()) > 0);
    ck_assert_msg(sscanf(out, "OK %63s", id3) == 1, "reader 3: '%s'", out);
    release(r2, id2);
    release(r3, id3);
    close(r1);
    close(r2);
    close(r3);
    close(w);
    close(q);
}
END_TEST

START_TEST(test_semaphore_bound_across_daemons)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock), c = h_connect_unix(D[0].sock),
        d = h_connect_unix(D[1].sock);
    char ia[64], ib[64], ic[64], out[256];
    must_get(a, "ACQUIRE sem 10000 PERMITS 2", ia, NULL);
    must_get(b, "ACQUIRE sem 10000 PERMITS 2", ib, NULL);
    must_fail(c, "ACQUIRE sem 10000 PERMITS 2", "ERR BUSY");
    must_fail(d, "ACQUIRE sem 10000 PERMITS 2", "ERR BUSY");
    /* A different n: BADREQ naming the n in force, from this daemon's own
     * holders and from the masters. */
    raw_request(c, "ACQUIRE sem 10000 PERMITS 3", out, sizeof out);
    ck_assert_msg(strncmp(out, "ERR BADREQ", 10) == 0 && strstr(out, "PERMITS 2") != NULL, "'%s'",
                  out);
    raw_request(d, "ACQUIRE sem 10000 SHARED", out, sizeof out);
    ck_assert_msg(strncmp(out, "ERR BADREQ", 10) == 0 && strstr(out, "PERMITS 2") != NULL, "'%s'",
                  out);
    must_fail(d, "ACQUIRE sem 10000", "ERR BUSY"); /* an exclusive lock is just busy */
    /* A waiter gets the permit that is given back. */
    ck_assert_int_eq(h_send_str(d, "ACQUIRE sem 10000 PERMITS 2 WAIT 20000\r\n"), 0);
    release(a, ia);
    ck_assert(h_read_line(d, out, sizeof out, 10000 * h_slowdown()) > 0);
    ck_assert_msg(sscanf(out, "OK %63s", ic) == 1, "waiter: '%s'", out);
    must_fail(c, "ACQUIRE sem 10000 PERMITS 2", "ERR BUSY");
    release(b, ib);
    release(d, ic);
    close(a);
    close(b);
    close(c);
    close(d);
}
END_TEST

/* Plant holder tok of "permits n" on master m, as the scripts write it. */
static void plant_holder(int m, const char *key, const char *mode, const char *tok)
{
    char out[64];
    ck_assert_int_eq(
        h_redis_cmd(&M[m], out, sizeof out, "EVAL",
                    "local t = redis.call('time') local now = tonumber(t[1]) * 1000 + "
                    "math.floor(tonumber(t[2]) / 1000) "
                    "redis.call('hset', KEYS[1], '~mode', ARGV[1], ARGV[2], now + 20000) "
                    "redis.call('pexpire', KEYS[1], 20000) return 1",
                    "1", key, mode, tok, NULL),
        H_REPLY_INT);
}

static bool pig_cleaned(void *p)
{
    char out[64];
    (void)p;
    return h_redis_cmd(&M[1], out, sizeof out, "HLEN", "pig", NULL) == H_REPLY_INT &&
           strcmp(out, "2") == 0;
}

/*
 * The interleaving a plain majority would allow (PROTOCOL.md 8.8): with 3
 * masters and PERMITS 2, holders A on masters {0,1} and B on {0,2} are
 * both valid on a majority. A third ACQUIRE finds master 0 full but 1 and
 * 2 with room: two grants, a majority, which would make three holders. The
 * rule asks 3 of 3 for n = 2, so it is refused.
 */
START_TEST(test_semaphore_majority_interleaving_refused)
{
    const char *A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    plant_holder(0, "pig", "permits 2", A);
    plant_holder(1, "pig", "permits 2", A);
    plant_holder(0, "pig", "permits 2", B);
    plant_holder(2, "pig", "permits 2", B);
    int c = h_connect_unix(D[1].sock);
    must_fail(c, "ACQUIRE pig 5000 PERMITS 2", "ERR");
    /* Nothing of the refused attempt stays behind: ~mode and A on master 1. */
    ck_assert_msg(h_wait_until(pig_cleaned, NULL, 5000 * h_slowdown()),
                  "the refused holder stayed on master 1");
    close(c);
}
END_TEST

/* With a master down, PERMITS 2 on 3 masters cannot be granted (it needs
 * all 3), PERMITS 1 (a majority) and SHARED still can. */
START_TEST(test_semaphore_with_a_master_down)
{
    h_redis_kill(&M[2]);
    int a = h_connect_unix(D[0].sock);
    char id[64], out[256];
    raw_request(a, "ACQUIRE md 5000 PERMITS 2", out, sizeof out);
    ck_assert_msg(strncmp(out, "ERR NOQUORUM", 12) == 0 && strstr(out, "needs 3 of 3") != NULL,
                  "'%s'", out);
    must_get(a, "ACQUIRE md1 5000 PERMITS 1", id, NULL);
    release(a, id);
    must_get(a, "ACQUIRE md2 5000 SHARED", id, NULL);
    release(a, id);
    close(a);
    ck_assert_int_eq(h_redis_restart(&M[2]), 0);
}
END_TEST

/* Five masters: PERMITS 2 needs 4, so one master down is tolerated, and
 * the bound holds across both daemons meanwhile. */
static void setup5(void)
{
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(h_redis_start(&M[i]), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(h_daemon_start(&D[i], M, 5, &opts), 0);
}

static void teardown5(void)
{
    int code0 = h_daemon_stop(&D[0]), code1 = h_daemon_stop(&D[1]);
    for (int i = 0; i < 5; i++)
        h_redis_stop(&M[i]);
    ck_assert_int_eq(code0, 0);
    ck_assert_int_eq(code1, 0);
}

START_TEST(test_semaphore_five_masters_one_down)
{
    h_redis_kill(&M[4]);
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock), c = h_connect_unix(D[0].sock),
        d = h_connect_unix(D[1].sock);
    char ia[64], ib[64], out[256];
    must_get(a, "ACQUIRE five 10000 PERMITS 2", ia, NULL);
    must_get(b, "ACQUIRE five 10000 PERMITS 2", ib, NULL);
    must_fail(c, "ACQUIRE five 10000 PERMITS 2 WAIT 300", "ERR BUSY");
    must_fail(d, "ACQUIRE five 10000 PERMITS 2 WAIT 300", "ERR BUSY");
    /* PERMITS 4 on 5 masters needs all 5: not with one down. */
    raw_request(c, "ACQUIRE five4 10000 PERMITS 4", out, sizeof out);
    ck_assert_msg(strncmp(out, "ERR NOQUORUM", 12) == 0 && strstr(out, "needs 5 of 5") != NULL,
                  "'%s'", out);
    release(a, ia);
    must_get(d, "ACQUIRE five 10000 PERMITS 2 WAIT 5000", ia, NULL);
    release(b, ib);
    release(d, ia);
    close(a);
    close(b);
    close(c);
    close(d);
}
END_TEST

START_TEST(test_fences_increase)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char i1[64], i2[64], i3[64];
    unsigned long long f1, f2, f3;
    must_get(a, "ACQUIRE fe 10000 SHARED", i1, &f1);
    must_get(b, "ACQUIRE fe 10000 SHARED", i2, &f2);
    ck_assert_msg(f1 > 0 && f2 > f1, "fences %llu then %llu", f1, f2);
    release(a, i1);
    release(b, i2);
    wait_key_count("fe", 0);
    must_get(a, "ACQUIRE fe 10000", i3, &f3);
    ck_assert_msg(f3 > f2, "writer's fence %llu after readers' %llu", f3, f2);
    release(a, i3);
    must_get(b, "ACQUIRE fe 10000 PERMITS 4", i1, &f1);
    ck_assert_msg(f1 > f3, "permit's fence %llu after %llu", f1, f3);
    release(b, i1);
    close(a);
    close(b);
}
END_TEST

/* No master lists holder (char *) p on "cb" any more. */
static bool holder_gone(void *p)
{
    char out[64];
    for (int i = 0; i < NM; i++) {
        if (h_redis_cmd(&M[i], out, sizeof out, "HEXISTS", "cb", (const char *)p, NULL) !=
                H_REPLY_INT ||
            strcmp(out, "0") != 0)
            return false;
    }
    return true;
}

START_TEST(test_connection_bound_and_detach)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char ia[64], ib[64];
    must_get(a, "ACQUIRE cb 30000 SHARED", ia, NULL);
    must_get(b, "ACQUIRE cb 30000 SHARED DETACH", ib, NULL);
    close(a); /* a's entry goes at once; b's stays */
    ck_assert_msg(h_wait_until(holder_gone, ia, 5000 * h_slowdown()),
                  "the closed connection's reader is still on the masters");
    close(b);
    wait_key_count("cb", NM); /* the DETACHed reader lives on */
    int c = h_connect_unix(D[0].sock);
    must_fail(c, "ACQUIRE cb 30000 WAIT 0", "ERR BUSY");
    c = (close(c), h_connect_unix(D[1].sock));
    release(c, ib);
    wait_key_count("cb", 0);
    close(c);
}
END_TEST

START_TEST(test_autoextend_and_lost)
{
    int a = h_connect_unix(D[0].sock);
    char id[64], out[256], want[128];
    must_get(a, "ACQUIRE ae 600 SHARED AUTOEXTEND", id, NULL);
    /* Someone wipes the readers and writes its own lock everywhere. */
    for (int i = 0; i < NM; i++) {
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "DEL", "ae", NULL), H_REPLY_INT);
        ck_assert(h_redis_set_px(&M[i], "ae", "someone-else", 30000));
    }
    snprintf(want, sizeof want, "EVENT LOST %s TAKEN", id);
    ck_assert_msg(h_read_line(a, out, sizeof out, 5000 * h_slowdown()) > 0, "no EVENT LOST");
    ck_assert_msg(strcmp(out, want) == 0, "'%s', want '%s'", out, want);
    /* AUTOEXTEND keeps a reader past several TTLs otherwise. */
    must_get(a, "ACQUIRE ae2 300 SHARED AUTOEXTEND MAXHOLD 1500", id, NULL);
    snprintf(want, sizeof want, "EVENT LOST %s MAXHOLD", id);
    ck_assert_msg(h_read_line(a, out, sizeof out, 10000 * h_slowdown()) > 0,
                  "no EVENT LOST MAXHOLD");
    ck_assert_msg(strcmp(out, want) == 0, "'%s', want '%s'", out, want);
    wait_key_count("ae2", 0);
    close(a);
}
END_TEST

START_TEST(test_badreq)
{
    int a = h_connect_unix(D[0].sock);
    must_fail(a, "ACQUIRE x 1000 SHARED PRIORITY 3", "ERR BADREQ");
    must_fail(a, "ACQUIRE x 1000 PERMITS 2 OWNER me", "ERR BADREQ");
    must_fail(a, "ACQUIRE x 1000 SHARED PERMITS 2", "ERR BADREQ");
    must_fail(a, "ACQUIRE x,y 1000 PERMITS 2", "ERR BADREQ");
    must_fail(a, "ACQUIRE x 1000 PERMITS 0", "ERR BADREQ");
    must_fail(a, "ACQUIRE x 1000 PERMITS 1001", "ERR BADREQ");
    must_fail(a, "ACQUIRE x 1000 SHARED SHARED", "ERR BADREQ");
    char id[64];
    must_get(a, "ACQUIRE x 1000 PERMITS 1000", id, NULL);
    release(a, id);
    close(a);
}
END_TEST

START_TEST(test_inspect_shows_holders)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char ia[64], ib[64], out[512];
    must_get(a, "ACQUIRE ins 10000 SHARED", ia, NULL);
    must_get(b, "ACQUIRE ins 10000 SHARED", ib, NULL);
    raw_request(a, "INSPECT ins", out, sizeof out);
    int n = 0;
    ck_assert(sscanf(out, "DATA %d", &n) == 1);
    bool mode = false, ha = false, hb = false, state = false;
    for (int i = 0; i < n; i++) {
        ck_assert(h_read_line(a, out, sizeof out, 5000) > 0);
        if (strcmp(out, "mode shared") == 0)
            mode = true;
        if (strcmp(out, "state held") == 0)
            state = true;
        if (strncmp(out, "holder.", 7) == 0 && strstr(out, " local") != NULL &&
            strncmp(strchr(out, ' ') + 1, ia, 8) == 0)
            ha = true;
        if (strncmp(out, "holder.", 7) == 0 && strncmp(strchr(out, ' ') + 1, ib, 8) == 0)
            hb = true;
    }
    ck_assert_msg(mode && state && ha && hb, "mode %d state %d a %d b %d", mode, state, ha, hb);
    release(a, ia);
    release(b, ib);
    close(a);
    close(b);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("shared");
    TCase *tc = tcase_create("shared");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_readers_together_writer_excluded);
    tcase_add_test(tc, test_interop_with_plain_set_nx);
    tcase_add_test(tc, test_writer_not_starved_across_daemons);
    tcase_add_test(tc, test_writer_behind_local_reader_marks);
    tcase_add_test(tc, test_fifo_across_kinds_on_one_daemon);
    tcase_add_test(tc, test_semaphore_bound_across_daemons);
    tcase_add_test(tc, test_semaphore_majority_interleaving_refused);
    tcase_add_test(tc, test_semaphore_with_a_master_down);
    tcase_add_test(tc, test_fences_increase);
    tcase_add_test(tc, test_connection_bound_and_detach);
    tcase_add_test(tc, test_autoextend_and_lost);
    tcase_add_test(tc, test_badreq);
    tcase_add_test(tc, test_inspect_shows_holders);
    suite_add_tcase(s, tc);
    TCase *tc5 = tcase_create("five");
    tcase_add_checked_fixture(tc5, setup5, teardown5);
    tcase_set_timeout(tc5, 60);
    tcase_add_test(tc5, test_semaphore_five_masters_one_down);
    suite_add_tcase(s, tc5);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    h_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
