/*
 * check_cli.c - the `redlock` command line as a user meets it, through its
 * real binary: --help/--version and one-line usage errors (also redlockd's),
 * the AUTH token from REDLOCK_TOKEN_FILE or --token-file, -n (try-lock),
 * `run` waiting without -w as flock(1) does, `acquire` refusing to hand out
 * a lock that ends with it, `locks` / `locks --json` (the LOCKS verb), and
 * examples/seeds-cli.sh retries keeping the exit status it tests.
 *
 * Fresh processes per test. retry_count = 3 and retry_delay_ms = 1000 on
 * purpose: anything that falls back to the daemon's retries takes seconds,
 * so a try-lock answered in well under a second is a real single attempt.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "redlock.h"
#include "testutil.h"

#define NM 3
#define EXIT_USAGE 64
#define EXIT_NOINPUT 66
#define EXIT_HELD 75
#define EXIT_NOPERM 77
#define TOKEN "s3cret-token"

static struct h_redis M[NM];
static struct h_daemon D;
static struct redlock_client *C;
static char token_path[H_PATH_MAX + 16];

static const struct h_daemon_opts cli_opts = {
    .redis = "master_timeout_ms = 100\n",
    .lock = "default_ttl_ms = 10000\nretry_count = 3\nretry_delay_ms = 1000\nretry_jitter_ms = 0\n",
};

static void start_daemon(const struct h_daemon_opts *o)
{
    for (int i = 0; i < NM; i++)
        ck_assert_msg(h_redis_start(&M[i]) == 0, "redis-server %d did not start", i);
    ck_assert_msg(h_daemon_start(&D, M, NM, o) == 0, "redlockd did not start");
}

static void setup(void)
{
    start_daemon(&cli_opts);
    C = h_client(D.sock);
    ck_assert_ptr_nonnull(C);
}

static void teardown(void)
{
    redlock_close(C);
    C = NULL;
    int code = h_daemon_stop(&D);
    for (int i = 0; i < NM; i++)
        h_redis_stop(&M[i]);
    ck_assert_msg(code == 0, "redlockd exited with %d on SIGTERM (want 0)", code);
}

/* ---- running the CLI ---------------------------------------------------------------- */

/* Start the CLI (argv after the binary; -a D.sock first unless no_addr) with
 * extra environment env (NULL-ended, may be NULL); stdout+stderr to out. */
static pid_t cli_env(const char *out, const char *const *env, bool no_addr, const char *const *args)
{
    char *argv[40];
    size_t n = 0;
    argv[n++] = (char *)h_redlock_bin();
    if (!no_addr) {
        argv[n++] = "-a";
        argv[n++] = D.sock;
    }
    while (*args && n < 39)
        argv[n++] = (char *)*args++;
    argv[n] = NULL;
    pid_t pid = h_spawn_env(argv, out, env);
    ck_assert_int_gt(pid, 0);
    return pid;
}

static int wait_code(pid_t pid)
{
    int code = h_wait_exit(pid, 30000 * h_slowdown());
    ck_assert_msg(code >= 0, "redlock did not exit within 30 s");
    return code;
}

static int cli(const char *out, const char *const *args)
{
    return wait_code(cli_env(out, NULL, false, args));
}

static const char *out_path(const char *name)
{
    static char buf[4][H_PATH_MAX + 32];
    static int which;
    which = (which + 1) % 4;
    snprintf(buf[which], sizeof buf[which], "%s/%s.out", D.dir, name);
    unlink(buf[which]);
    return buf[which];
}

static void slurp(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A usage error: exit 64 and exactly one line naming what was wrong. */
static void expect_usage_error(const char *bin, const char *const *args, const char *needle)
{
    const char *out = out_path("usage");
    char *argv[16];
    size_t n = 0;
    argv[n++] = (char *)bin;
    while (*args && n < 15)
        argv[n++] = (char *)*args++;
    argv[n] = NULL;
    pid_t pid = h_spawn(argv, out);
    ck_assert_int_gt(pid, 0);
    int code = wait_code(pid);
    char text[2048];
    slurp(out, text, sizeof text);
    ck_assert_msg(code == EXIT_USAGE, "%s %s: exit %d, want 64; said: %s", bin, argv[1], code,
                  text);
    ck_assert_msg(count_lines(text) == 1, "%s %s: want one line, got: %s", bin, argv[1], text);
    ck_assert_msg(strstr(text, needle) != NULL, "%s %s: '%s' does not say '%s'", bin, argv[1], text,
                  needle);
}

static void acquire_ok(const char *res, const struct redlock_acquire_opts *o,
                       struct redlock_lock *lk)
{
    int rc = redlock_acquire(C, res, o, lk);
    ck_assert_msg(rc == REDLOCK_OK, "acquire %s: %s", res, redlock_errstr(C));
}

/* ---- help, version, usage errors ---------------------------------------------------- */

START_TEST(test_help_version_long_options)
{
    char text[8192];
    const char *out = out_path("help");
    ck_assert_int_eq(wait_code(cli_env(out, NULL, true, (const char *[]){"--help", NULL})), 0);
    slurp(out, text, sizeof text);
    ck_assert_msg(strstr(text, "usage: redlock") && strstr(text, "REDLOCK_TOKEN_FILE") &&
                      strstr(text, "locks [--json]") && strstr(text, "--detach is required"),
                  "--help: %s", text);
    out = out_path("version");
    ck_assert_int_eq(wait_code(cli_env(out, NULL, true, (const char *[]){"--version", NULL})), 0);
    slurp(out, text, sizeof text);
    ck_assert_msg(strncmp(text, "redlock ", 8) == 0, "--version: %s", text);

    /* redlockd too. */
    const char *bins[][3] = {{h_redlockd_bin(), "--help", "usage: redlockd"},
                             {h_redlockd_bin(), "--version", "redlockd "}};
    for (int i = 0; i < 2; i++) {
        out = out_path("d");
        pid_t pid = h_spawn((char *[]){(char *)bins[i][0], (char *)bins[i][1], NULL}, out);
        ck_assert_int_eq(wait_code(pid), 0);
        slurp(out, text, sizeof text);
        ck_assert_msg(strstr(text, bins[i][2]) != NULL, "redlockd %s: %s", bins[i][1], text);
    }
}
END_TEST

START_TEST(test_usage_errors_one_line_64)
{
    const char *r = h_redlock_bin();
    expect_usage_error(r, (const char *[]){"frobnicate", NULL}, "unknown command 'frobnicate'");
    expect_usage_error(r, (const char *[]){NULL}, "no command");
    expect_usage_error(r, (const char *[]){"--bogus", "ping", NULL}, "--bogus");
    expect_usage_error(r, (const char *[]){"-T", "soon", "ping", NULL}, "-T wants milliseconds");
    expect_usage_error(r, (const char *[]){"acquire", "--detach", NULL}, "which resource");
    expect_usage_error(r, (const char *[]){"acquire", "x", "--detach", "-w", "abc", NULL},
                       "-w wants milliseconds");
    expect_usage_error(r, (const char *[]){"run", "x", "true", NULL}, "RES -- COMMAND");
    expect_usage_error(r, (const char *[]){"run", "-q", "x", "--", "true", NULL},
                       "unknown option -q");
    expect_usage_error(r, (const char *[]){"locks", "--yaml", NULL}, "--yaml");
    expect_usage_error(r, (const char *[]){"extend", NULL}, "ID [TTL_MS]");
    /* Usage is checked before connecting: no daemon needed to be told. */
    expect_usage_error(r, (const char *[]){"-a", "/nonexistent/sock", "ping", "extra", NULL},
                       "ping takes no arguments");
    const char *d = h_redlockd_bin();
    expect_usage_error(d, (const char *[]){"--bogus", NULL}, "--bogus");
    expect_usage_error(d, (const char *[]){"-c", NULL}, "-c needs");
    expect_usage_error(d, (const char *[]){"-t", "extra", NULL}, "extra");
}
END_TEST

/* acquire without --detach would print the id of a lock released as it
 * exits: it is refused, and nothing is locked. */
START_TEST(test_acquire_without_detach_refused)
{
    expect_usage_error(h_redlock_bin(), (const char *[]){"-a", D.sock, "acquire", "nodetach", NULL},
                       "--detach");
    expect_usage_error(
        h_redlock_bin(),
        (const char *[]){"-a", D.sock, "acquire", "--autoextend", "--detach", "nd", NULL},
        "redlock run");
    ck_assert_uint_eq(h_count_key(M, NM, "nodetach", NULL), 0);
    const char *out = out_path("acq");
    ck_assert_int_eq(
        cli(out, (const char *[]){"acquire", "--detach", "-t", "5000", "withdetach", NULL}), 0);
    char text[256], id[64];
    slurp(out, text, sizeof text);
    ck_assert_msg(sscanf(text, "%63s", id) == 1 && h_is_lock_id(id), "acquire printed '%s'", text);
    ck_assert_uint_eq(h_count_key(M, NM, "withdetach", id), 3);
}
END_TEST

/* ---- -n, -w 0, waiting ---------------------------------------------------------------- */

START_TEST(test_trylock_answers_at_once)
{
    struct redlock_lock held;
    acquire_ok("tl", &(struct redlock_acquire_opts){.ttl_ms = 30000}, &held);
    char mark[H_PATH_MAX + 16];
    snprintf(mark, sizeof mark, "%s/ran", D.dir);
    const char *const cases[][8] = {
        {"run", "-n", "tl", "--", "touch", mark, NULL},
        {"run", "-w", "0", "tl", "--", "touch", mark, NULL},
        {"acquire", "-n", "--detach", "tl", NULL},
        {"acquire", "--detach", "-w", "0", "tl", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t t0 = h_now_ms();
        int code = cli(NULL, cases[i]);
        uint64_t took = h_now_ms() - t0;
        ck_assert_msg(code == EXIT_HELD, "%s %s: exit %d, want 75", cases[i][0], cases[i][1], code);
        /* The daemon's retries would take 3 x 1000 ms; a single attempt is
         * ~1 ms, plus the start of the process (slow under ASan on a busy machine). */
        ck_assert_msg(took < 2000 * h_slowdown(), "%s %s took %llu ms: not a single attempt",
                      cases[i][0], cases[i][1], (unsigned long long)took);
    }
    ck_assert_msg(access(mark, F_OK) != 0, "the command ran without the lock");
    /* Free: -n takes it. */
    ck_assert_int_eq(redlock_release(C, held.id), REDLOCK_OK);
    ck_assert_int_eq(cli(NULL, (const char *[]){"run", "-n", "tl", "--", "touch", mark, NULL}), 0);
    ck_assert_msg(access(mark, F_OK) == 0, "run -n on a free lock did not run the command");
}
END_TEST

/* Without -w/-n, run waits until the lock is free (past the daemon's
 * retries), then runs the command. */
START_TEST(test_run_waits_without_w)
{
    struct redlock_lock held;
    acquire_ok("wf", &(struct redlock_acquire_opts){.ttl_ms = 30000}, &held);
    char mark[H_PATH_MAX + 16];
    snprintf(mark, sizeof mark, "%s/ran", D.dir);
    pid_t run =
        cli_env(NULL, NULL, false, (const char *[]){"run", "wf", "--", "touch", mark, NULL});
    /* Longer than retry_count x (retry_delay_ms + master_timeout_ms). */
    ck_assert_msg(h_wait_exit(run, 4500) == -1, "run gave up while the lock was held");
    ck_assert_msg(access(mark, F_OK) != 0, "the command ran without the lock");
    ck_assert_int_eq(redlock_release(C, held.id), REDLOCK_OK);
    ck_assert_int_eq(wait_code(run), 0);
    ck_assert_msg(access(mark, F_OK) == 0, "the command did not run once the lock was free");
}
END_TEST

/* ---- --shared, --permits ---------------------------------------------------------------- */

/* run --shared runs beside another reader (through the C client's opts.shared),
 * not beside a writer; run --permits N is one of N; a different N is refused. */
START_TEST(test_run_shared_and_permits)
{
    struct redlock_lock reader, permit;
    acquire_ok("sh", &(struct redlock_acquire_opts){.ttl_ms = 30000, .shared = true}, &reader);
    char mark[H_PATH_MAX + 16];
    snprintf(mark, sizeof mark, "%s/shared-ran", D.dir);
    ck_assert_int_eq(
        cli(NULL, (const char *[]){"run", "-n", "--shared", "sh", "--", "touch", mark, NULL}), 0);
    ck_assert_msg(access(mark, F_OK) == 0, "run --shared did not run beside a reader");
    ck_assert_int_eq(cli(NULL, (const char *[]){"run", "-n", "sh", "--", "true", NULL}), EXIT_HELD);
    ck_assert_int_eq(cli(NULL, (const char *[]){"acquire", "-n", "--detach", "sh", NULL}),
                     EXIT_HELD);
    ck_assert_int_eq(redlock_release(C, reader.id), REDLOCK_OK);

    acquire_ok("pm", &(struct redlock_acquire_opts){.ttl_ms = 30000, .permits = 2}, &permit);
    unlink(mark);
    ck_assert_int_eq(
        cli(NULL, (const char *[]){"run", "-n", "--permits", "2", "pm", "--", "touch", mark, NULL}),
        0);
    ck_assert_msg(access(mark, F_OK) == 0, "run --permits 2 did not run as the second holder");
    ck_assert_int_eq(
        cli(NULL, (const char *[]){"run", "-n", "--permits", "3", "pm", "--", "true", NULL}),
        EXIT_USAGE);
    ck_assert_int_eq(
        cli(NULL, (const char *[]){"run", "-n", "--permits", "1", "pm", "--", "true", NULL}),
        EXIT_USAGE);
    struct redlock_lock other;
    ck_assert_int_eq(redlock_acquire(C, "pm",
                                     &(struct redlock_acquire_opts){.ttl_ms = 30000, .permits = 5},
                                     &other),
                     REDLOCK_ERR_BADREQ);
    ck_assert_msg(strstr(redlock_errstr(C), "PERMITS 2") != NULL, "%s", redlock_errstr(C));
    ck_assert_int_eq(redlock_release(C, permit.id), REDLOCK_OK);
    expect_usage_error(
        h_redlock_bin(),
        (const char *[]){"run", "--shared", "--permits", "2", "x", "--", "true", NULL},
        "exclude each other");
    expect_usage_error(h_redlock_bin(),
                       (const char *[]){"run", "--permits", "0", "x", "--", "true", NULL},
                       "--permits");
}
END_TEST

/* ---- AUTH token ----------------------------------------------------------------------- */

static void setup_auth(void)
{
    char dir[H_PATH_MAX];
    ck_assert_int_eq(h_mkdtemp("token", dir), 0);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    FILE *f = fopen(token_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(TOKEN "\n", f);
    fclose(f);
    static char server[H_PATH_MAX + 64];
    snprintf(server, sizeof server, "auth_token_file = %s\n", token_path);
    struct h_daemon_opts o = cli_opts;
    o.server = server;
    start_daemon(&o);
    C = NULL;
}

START_TEST(test_token_from_env_or_option)
{
    char env_tok[H_PATH_MAX + 64];
    snprintf(env_tok, sizeof env_tok, "REDLOCK_TOKEN_FILE=%s", token_path);
    const char *const env[] = {env_tok, NULL};
    const char *out = out_path("noauth");
    char text[1024];

    /* No token: exit 77 saying how to give one; run does not pretend "held". */
    ck_assert_int_eq(cli(out, (const char *[]){"ping", NULL}), EXIT_NOPERM);
    slurp(out, text, sizeof text);
    ck_assert_msg(strstr(text, "REDLOCK_TOKEN_FILE") && strstr(text, "--token-file"), "said: %s",
                  text);
    ck_assert_int_eq(cli(NULL, (const char *[]){"run", "-n", "ta", "--", "true", NULL}),
                     EXIT_NOPERM);

    /* From the environment, and from --token-file. */
    ck_assert_int_eq(wait_code(cli_env(NULL, env, false, (const char *[]){"ping", NULL})), 0);
    ck_assert_int_eq(wait_code(cli_env(NULL, env, false,
                                       (const char *[]){"run", "-n", "ta", "--", "true", NULL})),
                     0);
    ck_assert_int_eq(cli(NULL, (const char *[]){"--token-file", token_path, "ping", NULL}), 0);
    ck_assert_int_eq(cli(NULL, (const char *[]){"--token-file", token_path, "locks", NULL}), 0);

    /* A wrong token is refused (77); a missing file says so (66). */
    char bad[H_PATH_MAX + 32];
    snprintf(bad, sizeof bad, "%s.bad", token_path);
    FILE *f = fopen(bad, "w");
    ck_assert_ptr_nonnull(f);
    fputs("wrong\n", f);
    fclose(f);
    ck_assert_int_eq(cli(NULL, (const char *[]){"--token-file", bad, "ping", NULL}), EXIT_NOPERM);
    unlink(bad);
    out = out_path("nofile");
    ck_assert_int_eq(cli(out, (const char *[]){"--token-file", bad, "ping", NULL}), EXIT_NOINPUT);
    slurp(out, text, sizeof text);
    ck_assert_msg(strstr(text, bad) != NULL, "the error does not name the file: %s", text);
}
END_TEST

/* ---- locks ---------------------------------------------------------------------------- */

START_TEST(test_locks_lists_holders_and_waiters)
{
    struct redlock_lock a, b;
    acquire_ok(
        "ls1,ls2",
        &(struct redlock_acquire_opts){.ttl_ms = 20000, .autoextend = true, .owner = "job-7"}, &a);
    acquire_ok("ls3", &(struct redlock_acquire_opts){.ttl_ms = 20000, .detach = true}, &b);
    /* A waiter on ls3. */
    int w = h_connect_unix(D.sock);
    ck_assert_int_ge(w, 0);
    raw_send(w, "ACQUIRE ls3 5000 WAIT 20000");
    char want[128], text[16384];
    const char *out = out_path("locks");
    /* Wait until the daemon has queued it. */
    bool queued = false;
    for (uint64_t end = h_now_ms() + 5000; !queued && h_now_ms() < end;) {
        ck_assert_int_eq(cli(out, (const char *[]){"locks", NULL}), 0);
        slurp(out, text, sizeof text);
        queued = strstr(text, "state=waiting") != NULL;
        if (!queued)
            h_sleep_ms(20);
    }
    ck_assert_msg(queued, "no waiter listed: %s", text);
    ck_assert_msg(strstr(text, "locks_held 2\n") && strstr(text, "waiters 1\n") &&
                      strstr(text, "shown 3\n") && strstr(text, "truncated no\n"),
                  "header: %s", text);
    snprintf(want, sizeof want, "lock id=%.8s state=held res=ls1,ls2 nres=2 conn=", a.id);
    ck_assert_msg(strstr(text, want) != NULL, "no line '%s' in: %s", want, text);
    ck_assert_msg(strstr(text, "flags=autoextend priority=0 owner=job-7") != NULL,
                  "owner/flags: %s", text);
    snprintf(want, sizeof want, "lock id=%.8s state=held res=ls3 nres=1 conn=- ttl_ms=20000", b.id);
    ck_assert_msg(strstr(text, want) != NULL, "no line '%s' in: %s", want, text);
    ck_assert_msg(strstr(text, "state=waiting res=ls3 nres=1 conn=") &&
                      strstr(text, "wait_left_ms="),
                  "waiter: %s", text);
    ck_assert_msg(strstr(text, a.id) == NULL && strstr(text, b.id) == NULL,
                  "a full lock id is shown: %s", text);

    out = out_path("json");
    ck_assert_int_eq(cli(out, (const char *[]){"locks", "--json", NULL}), 0);
    slurp(out, text, sizeof text);
    ck_assert_msg(
        strncmp(text,
                "{\"locks_held\":2,\"waiters\":1,\"shown\":3,\"truncated\":false,\"locks\":[{",
                65) == 0,
        "json: %s", text);
    snprintf(want, sizeof want,
             "{\"id\":\"%.8s\",\"state\":\"held\",\"res\":[\"ls1\",\"ls2\"],\"nres\":2,", a.id);
    ck_assert_msg(strstr(text, want) != NULL, "no '%s' in: %s", want, text);
    ck_assert_msg(strstr(text, "\"flags\":[\"autoextend\"],\"priority\":0,\"owner\":\"job-7\"}") !=
                      NULL,
                  "json: %s", text);
    ck_assert_msg(strstr(text, "\"conn\":null") && strstr(text, "\"flags\":[\"detach\"]"),
                  "json: %s", text);
    ck_assert_msg(strcmp(text + strlen(text) - 3, "]}\n") == 0, "json does not end the object: %s",
                  text);
    close(w);
}
END_TEST

/* The reply is bounded: a small max_output_bytes cuts the listing and says so. */
static void setup_small(void)
{
    struct h_daemon_opts o = cli_opts;
    o.server = "max_output_bytes = 4096\n";
    start_daemon(&o);
    C = h_client(D.sock);
    ck_assert_ptr_nonnull(C);
}

START_TEST(test_locks_bounded)
{
    for (int i = 0; i < 40; i++) {
        char res[32];
        struct redlock_lock lk;
        snprintf(res, sizeof res, "bounded-%02d", i);
        acquire_ok(res, &(struct redlock_acquire_opts){.ttl_ms = 20000}, &lk);
    }
    int fd = h_connect_unix(D.sock);
    ck_assert_int_ge(fd, 0);
    raw_send(fd, "LOCKS");
    char line[1100];
    ck_assert_int_gt(h_read_reply(fd, line, sizeof line, 5000), 0);
    unsigned n;
    ck_assert_msg(sscanf(line, "DATA %u", &n) == 1, "header '%s'", line);
    size_t bytes = 0;
    unsigned shown = 0, lock_lines = 0;
    bool truncated = false;
    for (unsigned i = 0; i < n; i++) {
        int len = h_read_line(fd, line, sizeof line, 5000);
        ck_assert_int_gt(len, 0);
        ck_assert_int_lt(len, 1022);
        if (starts(line, "lock ")) {
            lock_lines++;
            bytes += (size_t)len + 2;
        }
        sscanf(line, "shown %u", &shown);
        if (strcmp(line, "truncated yes") == 0)
            truncated = true;
        ck_assert_msg(!starts(line, "locks_held") || strcmp(line, "locks_held 40") == 0, "%s",
                      line);
    }
    ck_assert_msg(truncated && shown == lock_lines && shown > 0 && shown < 40,
                  "shown %u of 40, truncated %d", shown, truncated);
    ck_assert_msg(bytes <= 4096 / 4, "%zu bytes of lock lines for max_output_bytes 4096", bytes);
    raw_send(fd, "PING"); /* still connected, and in step */
    ck_assert_int_gt(h_read_reply(fd, line, sizeof line, 5000), 0);
    ck_assert_str_eq(line, "PONG");
    close(fd);
}
END_TEST

/* ---- examples/seeds-cli.sh retries ----------------------------------------------------- */

/* The daemon makes one attempt per ACQUIRE here, so a busy lock is
 * answered at once and the script's own loop must do the retrying. */
static void setup_noretry(void)
{
    struct h_daemon_opts o = cli_opts;
    o.lock = "default_ttl_ms = 10000\nretry_count = 0\n";
    start_daemon(&o);
    C = h_client(D.sock);
    ck_assert_ptr_nonnull(C);
}

/* Held for 1.5 s by someone else: the example must retry (not mistake a
 * busy lock for success), then get it. */
START_TEST(test_seeds_cli_retries_retries)
{
    struct redlock_lock held;
    acquire_ok("seed-retries", &(struct redlock_acquire_opts){.ttl_ms = 1500}, &held);
    char env_addr[H_PATH_MAX + 32], env_cli[H_PATH_MAX + 32];
    snprintf(env_addr, sizeof env_addr, "REDLOCK_ADDR=%s", D.sock);
    snprintf(env_cli, sizeof env_cli, "REDLOCK=%s", h_redlock_bin());
    const char *const env[] = {env_addr, env_cli, NULL};
    const char *out = out_path("retries");
    pid_t pid = h_spawn_env((char *[]){"examples/seeds-cli.sh", "retries", NULL}, out, env);
    ck_assert_int_gt(pid, 0);
    int code = wait_code(pid);
    char text[2048];
    slurp(out, text, sizeof text);
    ck_assert_msg(code == 0, "seeds-cli.sh retries exited %d: %s", code, text);
    ck_assert_uint_eq(h_count_key(M, NM, "seed-retries", NULL), 0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------ */

int main(void)
{
    h_init();
    const struct test_group groups[] = {
        {"usage",
         {test_help_version_long_options, test_usage_errors_one_line_64,
          test_acquire_without_detach_refused, NULL}},
        {"wait", {test_trylock_answers_at_once, test_run_waits_without_w, NULL}},
        {"shared", {test_run_shared_and_permits, NULL}},
        {"locks", {test_locks_lists_holders_and_waiters, NULL}},
    };
    int rc = run_test_groups("cli", groups, sizeof groups / sizeof groups[0], setup, teardown);
    const struct test_group auth_groups[] = {{"auth", {test_token_from_env_or_option, NULL}}};
    rc |= run_test_groups("cli_auth", auth_groups, 1, setup_auth, teardown);
    const struct test_group small_groups[] = {{"bounded", {test_locks_bounded, NULL}}};
    rc |= run_test_groups("cli_small", small_groups, 1, setup_small, teardown);
    const struct test_group noretry_groups[] = {
        {"example", {test_seeds_cli_retries_retries, NULL}}};
    rc |= run_test_groups("cli_noretry", noretry_groups, 1, setup_noretry, teardown);
    return rc;
}
