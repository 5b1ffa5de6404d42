/*
 * check_priority.c - PRIORITY preemption through real redlockd processes on
 * real Redis masters: a higher priority takes the lock from a lower one (the
 * holder hears EVENT LOST <id> PREEMPTED at once on the same daemon, at its
 * next extension on another); equal or lower priority waits or gets BUSY.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"
#include "redlock.h"

#define NM 3

static struct h_redis M[NM];
static struct h_daemon D[2];

static const struct h_daemon_opts prio_opts = {
    .lock = "retry_count = 1\nretry_delay_ms = 50\n",
};

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_start(&M[i]), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(h_daemon_start(&D[i], M, NM, &prio_opts), 0);
}

static void teardown(void)
{
    int code0 = h_daemon_stop(&D[0]), code1 = h_daemon_stop(&D[1]);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_int_eq(code0, 0);
    ck_assert_int_eq(code1, 0);
}


static void expect_lost(int fd, const char *id, uint32_t within_ms)
{
    char line[256], want[128];
    snprintf(want, sizeof want, "EVENT LOST %s PREEMPTED", id);
    ck_assert_msg(h_read_line(fd, line, sizeof line, within_ms * h_slowdown()) > 0,
                  "no event for %s", id);
    ck_assert_msg(strcmp(line, want) == 0, "got '%s', want '%s'", line, want);
}

START_TEST(test_preempt_on_same_daemon)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[0].sock);
    char line[256], id[64];
    raw_request(a, "ACQUIRE pr 10000 AUTOEXTEND", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "'%s'", line);
    raw_request(b, "ACQUIRE pr 10000 PRIORITY 0 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "no priority must not preempt: '%s'", line);
    uint64_t t0 = h_now_ms();
    raw_request(b, "ACQUIRE pr 10000 PRIORITY 5", line, sizeof line);
    ck_assert_msg(strncmp(line, "OK ", 3) == 0, "priority 5 did not get it: '%s'", line);
    expect_lost(a, id, 1000);
    ck_assert_uint_lt(h_now_ms() - t0, 1000 * h_slowdown());
    /* The new holder owns the keys on the masters. */
    char id2[64], val[64];
    sscanf(line, "OK %63s", id2);
    ck_assert(h_redis_get(&M[0], "pr", val, sizeof val));
    ck_assert_str_eq(val, id2);
    /* Equal priority does not preempt. */
    int c = h_connect_unix(D[0].sock);
    raw_request(c, "ACQUIRE pr 10000 PRIORITY 5 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "equal priority must not preempt: '%s'", line);
    close(a);
    close(b);
    close(c);
}
END_TEST

START_TEST(test_preempt_across_daemons)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char line[256], id[64];
    raw_request(a, "ACQUIRE px 900 AUTOEXTEND PRIORITY 1", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "'%s'", line);
    raw_request(b, "ACQUIRE px 900 PRIORITY 1 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "equal priority across daemons: '%s'", line);
    raw_request(b, "ACQUIRE px 5000 PRIORITY 2", line, sizeof line);
    ck_assert_msg(strncmp(line, "OK ", 3) == 0, "priority 2 did not get it: '%s'", line);
    /* The holder on the other daemon hears it at its next extension (every ttl/3). */
    expect_lost(a, id, 2000);
    close(a);
    close(b);
}
END_TEST

/* The application's own keys, on every master: a string, a hash, and a
 * value in the form of a lock id that another Redlock client wrote. */
static const char app_value[] = "db=prod;pool=16;feature_x=on";
static const char other_token[] = "0123456789abcdef0123456789abcdef";

static void put_app_keys(void)
{
    char out[128];
    for (int i = 0; i < NM; i++) {
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "SET", "app:config", app_value, NULL),
                         H_REPLY_STATUS);
        ck_assert_int_eq(
            h_redis_cmd(&M[i], out, sizeof out, "HSET", "app:hash", "field", "value", NULL),
            H_REPLY_INT);
        ck_assert(h_redis_set_px(&M[i], "app:other", other_token, 20000));
    }
}

static void assert_app_keys_intact(void)
{
    char out[128];
    for (int i = 0; i < NM; i++) {
        ck_assert(h_redis_get(&M[i], "app:config", out, sizeof out));
        ck_assert_msg(strcmp(out, app_value) == 0, "master %d: app:config is now '%s'", i, out);
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "TYPE", "app:hash", NULL),
                         H_REPLY_STATUS);
        ck_assert_msg(strcmp(out, "hash") == 0, "master %d: app:hash is now a %s", i, out);
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "HGET", "app:hash", "field", NULL),
                         H_REPLY_BULK);
        ck_assert_str_eq(out, "value");
        ck_assert(h_redis_get(&M[i], "app:other", out, sizeof out));
        ck_assert_str_eq(out, other_token);
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "EXISTS", "app:config,prio", NULL),
                         H_REPLY_INT);
        ck_assert_str_eq(out, "0");
    }
}

/* With the default empty key_prefix a resource name is any application key:
 * PRIORITY must not overwrite what redlockd did not write, and the RELEASE
 * that follows must not delete it. */
START_TEST(test_priority_spares_keys_redlockd_did_not_write)
{
    put_app_keys();
    int a = h_connect_unix(D[0].sock);
    char line[256];
    static const char *const reqs[] = {
        "ACQUIRE app:config 1000 PRIORITY 1 WAIT 0",
        "ACQUIRE app:hash 1000 PRIORITY 1 WAIT 0",
        "ACQUIRE app:other 1000 PRIORITY 1 WAIT 0",
        "ACQUIRE app:config,app:hash 1000 PRIORITY 7 WAIT 0",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        raw_request(a, reqs[i], line, sizeof line);
        if (strncmp(line, "OK ", 3) == 0) { /* the old behaviour: give the keys back as it did */
            char id[64], rel[128];
            sscanf(line, "OK %63s", id);
            snprintf(rel, sizeof rel, "RELEASE %s", id);
            raw_request(a, rel, line, sizeof line);
            ck_abort_msg("'%s' preempted a key redlockd did not write", reqs[i]);
        }
        ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "'%s': '%s'", reqs[i], line);
    }
    assert_app_keys_intact();
    close(a);
}
END_TEST

/* A lock of another daemon taken without PRIORITY carries no marker: nothing
 * proves redlockd wrote it, so it is not preempted either. */
START_TEST(test_unmarked_lock_of_another_daemon_is_not_preempted)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char line[256], id[64];
    raw_request(a, "ACQUIRE pn 10000", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "'%s'", line);
    raw_request(b, "ACQUIRE pn 10000 PRIORITY 3 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "an unmarked lock was preempted: '%s'", line);
    ck_assert_uint_eq(h_count_key(M, NM, "pn", id), NM);
    close(a);
    close(b);
}
END_TEST

/* A marker proves only the token it names: once an application overwrote a
 * priority lock's key, the stale marker does not make its value preemptible. */
START_TEST(test_stale_marker_proves_nothing)
{
    int a = h_connect_unix(D[0].sock), b = h_connect_unix(D[1].sock);
    char line[256], id[64], out[128];
    raw_request(a, "ACQUIRE mk 10000 PRIORITY 1", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "'%s'", line);
    for (int i = 0; i < NM; i++) {
        ck_assert_int_eq(
            h_redis_cmd(&M[i], out, sizeof out, "SET", "mk", other_token, "KEEPTTL", NULL),
            H_REPLY_STATUS);
        ck_assert_int_eq(h_redis_cmd(&M[i], out, sizeof out, "EXISTS", "mk,prio", NULL),
                         H_REPLY_INT);
        ck_assert_str_eq(out, "1");
    }
    raw_request(b, "ACQUIRE mk 10000 PRIORITY 5 WAIT 0", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BUSY", 8) == 0, "a stale marker let '%s' through", line);
    ck_assert_uint_eq(h_count_key(M, NM, "mk", other_token), NM);
    close(a);
    close(b);
}
END_TEST

/* PRIORITY is capped by [lock] max_priority (default 1000). */
START_TEST(test_priority_cap)
{
    int a = h_connect_unix(D[0].sock);
    char line[256];
    raw_request(a, "ACQUIRE capped 1000 PRIORITY 1001", line, sizeof line);
    ck_assert_msg(strncmp(line, "ERR BADREQ", 10) == 0 && strstr(line, "max_priority 1000") != NULL,
                  "PRIORITY above the cap: '%s'", line);
    raw_request(a, "ACQUIRE capped 1000 PRIORITY 1000", line, sizeof line);
    ck_assert_msg(strncmp(line, "OK ", 3) == 0, "PRIORITY at the cap: '%s'", line);
    close(a);
}
END_TEST

/* INSPECT shows no byte of a key redlockd did not write. */
START_TEST(test_inspect_hides_foreign_values)
{
    put_app_keys();
    int a = h_connect_unix(D[0].sock);
    static const char *const keys[] = {"app:config", "app:hash"};
    for (size_t k = 0; k < 2; k++) {
        char cmd[64], line[512];
        snprintf(cmd, sizeof cmd, "INSPECT %s", keys[k]);
        raw_request(a, cmd, line, sizeof line);
        ck_assert_str_eq(line, "DATA 7");
        for (int i = 0; i < 7; i++) {
            ck_assert_int_gt(h_read_line(a, line, sizeof line, 5000), 0);
            ck_assert_msg(strstr(line, "db=prod") == NULL && strstr(line, "WRONGTYPE") == NULL,
                          "INSPECT %s shows '%s'", keys[k], line);
            if (i == 1)
                ck_assert_str_eq(line, "state held");
            if (i == 2)
                ck_assert_str_eq(line, "holder foreign");
            if (i >= 4)
                ck_assert_msg(strstr(line, " held -1 foreign") != NULL, "'%s'", line);
        }
    }
    assert_app_keys_intact();
    close(a);
}
END_TEST

static Suite *priority_suite(void)
{
    Suite *s = suite_create("priority");
    TCase *tc = tcase_create("preemption");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_preempt_on_same_daemon);
    tcase_add_test(tc, test_preempt_across_daemons);
    tcase_add_test(tc, test_priority_spares_keys_redlockd_did_not_write);
    tcase_add_test(tc, test_unmarked_lock_of_another_daemon_is_not_preempted);
    tcase_add_test(tc, test_stale_marker_proves_nothing);
    tcase_add_test(tc, test_priority_cap);
    tcase_add_test(tc, test_inspect_hides_foreign_values);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(priority_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
