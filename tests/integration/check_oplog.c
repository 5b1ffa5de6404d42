/*
 * check_oplog.c - what redlockd tells its operator: log lines carry a UTC
 * time stamp unless stderr is the journal (JOURNAL_STREAM names it, as
 * systemd.exec(5) documents), an unresolvable master host names the
 * resolver's error, and a missing socket directory says how to make it or
 * which key to set.
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

static char dir[H_PATH_MAX];

static void setup(void)
{
    ck_assert_int_eq(h_mkdtemp("oplog", dir), 0);
}

static void teardown(void)
{
    h_rmtree(dir);
}

static void slurp(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
}

/* Write an ini for the memory backend (or the given masters) serving only
 * the Unix socket sock. */
static void write_ini(const char *ini, const char *sock, const char *masters)
{
    FILE *f = fopen(ini, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[server]\nlisten =\nunix_socket = %s\n[redis]\n", sock);
    if (masters)
        fprintf(f, "masters = %s\nmaster_timeout_ms = 100\n", masters);
    else
        fprintf(f, "backend = memory\n");
    fclose(f);
}

struct file_needle {
    const char *path, *needle;
};

static bool file_has(void *ud)
{
    struct file_needle *fn = ud;
    return h_file_contains(fn->path, fn->needle);
}

/* Start redlockd -c ini with stderr appended to log and env; wait for needle in the log. */
static pid_t start_and_wait(const char *ini, const char *log, const char *const *env,
                            const char *needle)
{
    pid_t pid =
        h_spawn_env((char *[]){(char *)h_redlockd_bin(), "-c", (char *)ini, NULL}, log, env);
    ck_assert_int_gt(pid, 0);
    struct file_needle fn = {log, needle};
    char text[4096];
    bool seen = h_wait_until(file_has, &fn, 10000 * h_slowdown());
    slurp(log, text, sizeof text);
    ck_assert_msg(seen, "no '%s' in the log: %s", needle, text);
    return pid;
}

static bool every_line_matches(const char *text, const char *pattern)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = text[0] != '\0';
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", text);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        ok = ok && regexec(&re, line, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

#define STAMPED \
    "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z level=[a-z]+ msg="
#define UNSTAMPED "^level=[a-z]+ msg="

START_TEST(test_file_lines_are_stamped)
{
    char ini[H_PATH_MAX + 16], sock[H_PATH_MAX + 16], log[H_PATH_MAX + 16], text[4096];
    snprintf(ini, sizeof ini, "%s/a.ini", dir);
    snprintf(sock, sizeof sock, "%s/a.sock", dir);
    snprintf(log, sizeof log, "%s/a.log", dir);
    write_ini(ini, sock, NULL);
    /* No JOURNAL_STREAM, and one that names some other file: both stamp. */
    const char *const env_other[] = {"JOURNAL_STREAM=1:2", NULL};
    const char *const *envs[] = {NULL, env_other};
    for (int i = 0; i < 2; i++) {
        unlink(log);
        pid_t pid = start_and_wait(ini, log, envs[i], "msg=started");
        h_kill(pid);
        slurp(log, text, sizeof text);
        ck_assert_msg(every_line_matches(text, STAMPED), "case %d: lines without ts=: %s", i, text);
    }
}
END_TEST

START_TEST(test_journal_lines_are_not_stamped)
{
    char ini[H_PATH_MAX + 16], sock[H_PATH_MAX + 16], log[H_PATH_MAX + 16], text[4096];
    snprintf(ini, sizeof ini, "%s/j.ini", dir);
    snprintf(sock, sizeof sock, "%s/j.sock", dir);
    snprintf(log, sizeof log, "%s/j.log", dir);
    write_ini(ini, sock, NULL);
    /* The "journal" is the file stderr goes to: JOURNAL_STREAM names its device and inode. */
    FILE *f = fopen(log, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    struct stat st;
    ck_assert_int_eq(stat(log, &st), 0);
    char js[96];
    snprintf(js, sizeof js, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    const char *const env[] = {js, NULL};
    pid_t pid = start_and_wait(ini, log, env, "msg=started");
    h_kill(pid);
    slurp(log, text, sizeof text);
    ck_assert_msg(every_line_matches(text, UNSTAMPED), "journal lines carry a stamp: %s", text);
}
END_TEST

START_TEST(test_unresolvable_master_names_resolver_error)
{
    char ini[H_PATH_MAX + 16], sock[H_PATH_MAX + 16], log[H_PATH_MAX + 16], text[4096];
    snprintf(ini, sizeof ini, "%s/r.ini", dir);
    snprintf(sock, sizeof sock, "%s/r.sock", dir);
    snprintf(log, sizeof log, "%s/r.log", dir);
    write_ini(ini, sock, "no-such-host.invalid:6379, 127.0.0.1:1, 127.0.0.1:2");
    pid_t pid = start_and_wait(ini, log, NULL, "master=no-such-host.invalid:6379 error=");
    h_kill(pid);
    slurp(log, text, sizeof text);
    ck_assert_msg(!strstr(text, "master=no-such-host.invalid:6379 error=\"\""), "empty error: %s",
                  text);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "master=no-such-host\\.invalid:6379 error=\"[A-Za-z][^\"]+\"",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    bool named = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    ck_assert_msg(named, "the resolver's error is not named: %s", text);
}
END_TEST

START_TEST(test_missing_socket_dir_says_what_to_do)
{
    char ini[H_PATH_MAX + 16], sock[H_PATH_MAX + 32], log[H_PATH_MAX + 16], text[4096];
    snprintf(ini, sizeof ini, "%s/s.ini", dir);
    snprintf(sock, sizeof sock, "%s/missing/redlockd.sock", dir);
    snprintf(log, sizeof log, "%s/s.log", dir);
    write_ini(ini, sock, NULL);
    pid_t pid = h_spawn((char *[]){(char *)h_redlockd_bin(), "-c", ini, NULL}, log);
    ck_assert_int_gt(pid, 0);
    int code = h_wait_exit(pid, 10000 * h_slowdown());
    slurp(log, text, sizeof text);
    ck_assert_msg(code == 1, "redlockd exited %d (want 1): %s", code, text);
    char want[H_PATH_MAX + 64];
    snprintf(want, sizeof want, "install -d -m 0755 -o USER %s/missing", dir);
    ck_assert_msg(strstr(text, "does not exist") && strstr(text, want) &&
                      strstr(text, "[server] unix_socket"),
                  "no hint how to fix it: %s", text);
}
END_TEST

int main(void)
{
    h_init();
    const struct test_group groups[] = {
        {"log", {test_file_lines_are_stamped, test_journal_lines_are_not_stamped, NULL}},
        {"messages",
         {test_unresolvable_master_names_resolver_error, test_missing_socket_dir_says_what_to_do,
          NULL}},
    };
    return run_test_groups("oplog", groups, sizeof groups / sizeof groups[0], setup, teardown);
}
