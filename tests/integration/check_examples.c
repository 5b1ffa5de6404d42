/*
 * check_examples.c - every example in examples/ (the five seed libraries'
 * jobs, from C, through the CLI and over a plain socket) run against a real
 * redlockd on real masters: each exits 0, and executions of the exclusive
 * block never interleave.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define NM 3

static struct h_redis M[NM];
static struct h_daemon D;
static char seeds_bin[H_PATH_MAX], log_path[H_PATH_MAX + 32];
static char env_addr[H_PATH_MAX + 32], env_tcp[96], env_cli[H_PATH_MAX + 32],
    env_log[H_PATH_MAX + 64];

static const char *const jobs[] = {"using", "retries", "validity", "execute", "acquire-all"};
enum way { WAY_C, WAY_CLI, WAY_SOCKET };

static void setup(void)
{
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(h_redis_start(&M[i]), 0);
    ck_assert_int_eq(h_daemon_start(&D, M, NM, NULL), 0);
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(seeds_bin, sizeof seeds_bin, "%s/examples/seeds", build);
    snprintf(log_path, sizeof log_path, "%s/execute.log", D.dir);
    snprintf(env_addr, sizeof env_addr, "REDLOCK_ADDR=%s", D.sock);
    snprintf(env_tcp, sizeof env_tcp, "REDLOCK_TCP=%s", D.tcp_addr);
    snprintf(env_cli, sizeof env_cli, "REDLOCK=%s", h_redlock_bin());
    snprintf(env_log, sizeof env_log, "SEEDS_LOG=%s", log_path);
}

static void teardown(void)
{
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_int_eq(code, 0);
}

static pid_t start(enum way way, const char *job)
{
    const char *const env[] = {env_addr, env_tcp, env_cli, env_log, NULL};
    char *argv[4] = {NULL, (char *)job, NULL, NULL};
    if (way == WAY_C)
        argv[0] = seeds_bin;
    else if (way == WAY_CLI)
        argv[0] = "examples/seeds-cli.sh";
    else
        argv[0] = "examples/seeds-socket.sh";
    pid_t pid = h_spawn_env(argv, NULL, env);
    ck_assert_int_gt(pid, 0);
    return pid;
}

static void run_all_ways(const char *job)
{
    for (enum way w = WAY_C; w <= WAY_SOCKET; w++) {
        int code = h_wait_exit(start(w, job), 30000 * h_slowdown());
        ck_assert_msg(code == 0, "example %s (%s) exited %d", job,
                      w == WAY_C     ? "C"
                      : w == WAY_CLI ? "CLI"
                                     : "socket",
                      code);
    }
}

START_TEST(test_each_seed_each_way)
{
    run_all_ways(jobs[_i]);
}
END_TEST

/* Two of each way at once: the block must run strictly one at a time. */
START_TEST(test_execute_is_exclusive)
{
    pid_t pids[6];
    for (int i = 0; i < 6; i++)
        pids[i] = start((enum way)(i % 3), "execute");
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(h_wait_exit(pids[i], 60000 * h_slowdown()), 0);
    FILE *f = fopen(log_path, "r");
    ck_assert_ptr_nonnull(f);
    char line[128], open_pid[32] = "";
    int sections = 0;
    while (fgets(line, sizeof line, f)) {
        char what[16], pid[32];
        ck_assert_int_eq(sscanf(line, "%15s %31s", what, pid), 2);
        if (strcmp(what, "start") == 0) {
            ck_assert_msg(open_pid[0] == '\0', "%s started while %s was inside", pid, open_pid);
            snprintf(open_pid, sizeof open_pid, "%s", pid);
        } else {
            ck_assert_str_eq(pid, open_pid);
            open_pid[0] = '\0';
            sections++;
        }
    }
    fclose(f);
    ck_assert_int_eq(sections, 6);
}
END_TEST

static Suite *examples_suite(void)
{
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("seeds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_each_seed_each_way, 0, (int)(sizeof jobs / sizeof jobs[0]));
    tcase_add_test(tc, test_execute_is_exclusive);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_init();
    SRunner *sr = srunner_create(examples_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
