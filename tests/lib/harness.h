/*
 * harness.h - process harness for redlockd's integration tests.
 *
 * Starts real redis-server and redlockd processes on free loopback ports,
 * talks raw RESP to the masters and raw protocol lines to the daemon, and
 * cleans up after itself. No mocks: everything a test asserts went through
 * real sockets to real processes.
 *
 * Process and file hygiene:
 *  - Every process the harness starts is recorded with the pid of the process
 *    that started it, and h_cleanup() (run from an atexit hook, and callable
 *    from a teardown) SIGKILLs and reaps exactly those pids, never by name.
 *  - Every child also gets PR_SET_PDEATHSIG(SIGKILL), so when a check test
 *    process dies without running its hooks (a failed ck_assert _exit()s, a
 *    timed-out test is SIGKILLed) its redis-servers and redlockd die with it.
 *  - All files live under one root directory, $TMPDIR/redlockd-test.XXXXXX,
 *    made by h_init(). Call h_init() from main() before srunner_run_all(), so
 *    the root belongs to the runner process: at its exit the root is removed,
 *    after printing the tail of every redlockd log still in it (a passing
 *    test removes its own directories, so what is left belongs to tests that
 *    failed). Set H_KEEP_TMP=1 to keep the root for inspection.
 *
 * Environment:
 *  REDLOCKD_BIN      the daemon (default: $BUILD/redlockd if BUILD is set,
 *                    else ./build/redlockd)
 *  REDLOCK_BIN       the CLI (default: $BUILD/redlock, else ./build/redlock)
 *  REDLOCKD_WRAPPER  if set (e.g. "valgrind --error-exitcode=99 -q"), the
 *                    daemon runs as `/bin/sh -c 'exec $REDLOCKD_WRAPPER BIN -c INI'`;
 *                    start and stop deadlines are then multiplied by
 *                    H_WRAPPER_SLOWDOWN (8)
 *  REDIS_SERVER_BIN  redis-server to run (default: redis-server from PATH)
 *
 * Every function is meant for the single main thread of a test process.
 * Functions that can fail print why to stderr, so a test only asserts.
 */
#ifndef REDLOCK_HARNESS_H
#define REDLOCK_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_PATH_MAX 256
#define H_WRAPPER_SLOWDOWN 8
#define H_REDIS_START_MS 10000  /* deadline for redis-server to answer PING */
#define H_DAEMON_START_MS 10000 /* deadline for redlockd to answer PING (x slowdown) */
#define H_DAEMON_STOP_MS 5000   /* SIGTERM grace before SIGKILL (x slowdown) */
#define H_IO_TIMEOUT_MS 5000    /* raw Redis commands and daemon PINGs */

/* ---- Set-up, time, waiting ---------------------------------------------- */

/*
 * Create the root temp directory, ignore SIGPIPE in this process (children
 * get the default back) and register the atexit cleanup. Call once from
 * main() before running suites. Idempotent. Aborts the process if the root
 * cannot be made.
 */
void h_init(void);

/*
 * Kill (SIGKILL) and reap every process this process started through the
 * harness and not yet stopped, and remove the directories it made. Processes
 * and directories recorded by another process (the check runner before a
 * fork) are left alone. Safe to call repeatedly.
 */
void h_cleanup(void);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t h_now_ms(void);

/* Sleep ms milliseconds (restarted on EINTR). For pacing poll loops only:
 * tests wait for conditions with h_wait_until(). */
void h_sleep_ms(uint32_t ms);

typedef bool h_pred_fn(void *userdata);

/*
 * Evaluate pred(userdata) now and then every 10 ms until it returns true or
 * timeout_ms passed (it is evaluated once more at the deadline). Returns
 * true as soon as pred did, false if it never did.
 */
bool h_wait_until(h_pred_fn *pred, void *userdata, uint32_t timeout_ms);

/*
 * A loopback TCP port that was free a moment ago: bind 127.0.0.1:0, read the
 * port, close. Someone may take it before it is used, which is why the start
 * functions below retry with a new port when their process dies early.
 * Returns the port, or -1.
 */
int h_free_port(void);

/*
 * Make a fresh directory under the root named prefix-XXXXXX, recorded for
 * h_cleanup(). Writes its path to out (H_PATH_MAX). Returns 0 or -1.
 */
int h_mkdtemp(const char *prefix, char *out);

/* Remove path recursively (files and directories); forget it if recorded. */
void h_rmtree(const char *path);

/* Print the last max_lines lines of the file at path to stderr, headed by title. */
void h_dump_file(const char *title, const char *path, int max_lines);

/* ---- Generic child processes ------------------------------------------- */

/*
 * fork + execvp(argv[0], argv) with stdin from /dev/null and stdout/stderr
 * appended to out_path (NULL: /dev/null). The child gets the default signal
 * dispositions and mask, PR_SET_PDEATHSIG(SIGKILL), and no other inherited
 * file descriptors (so a test's close() of a socket really closes it). The pid is recorded
 * for h_cleanup(). Returns the pid, or -1.
 */
pid_t h_spawn(char *const argv[], const char *out_path);

/* h_spawn with extra environment: env is a NULL-terminated list of
 * "NAME=value" strings put into the child's environment (NULL: none). */
pid_t h_spawn_env(char *const argv[], const char *out_path, const char *const env[]);

/*
 * Wait up to timeout_ms for pid (started by h_spawn) to exit and reap it.
 * Returns its exit code (0..255), 128+N if signal N killed it, or -1 if it
 * is still running at the deadline (it is then left running).
 */
int h_wait_exit(pid_t pid, uint32_t timeout_ms);

/* True if pid (started by h_spawn) has not exited; reaps it if it has
 * (its status is then lost: use h_wait_exit to read it). */
bool h_alive(pid_t pid);

/* SIGKILL pid (started by h_spawn) and reap it; it is then forgotten. */
void h_kill(pid_t pid);

/* For a process that is not our child (e.g. a command started by
 * `redlock run`): true if it no longer exists or is a zombie. */
bool h_pid_gone(pid_t pid);

/* ---- redis-server -------------------------------------------------------- */

struct h_redis {
    pid_t pid;            /* 0 when not running */
    int port;             /* kept across h_redis_kill() for h_redis_restart() */
    bool paused;          /* SIGSTOPped by h_redis_pause() */
    char dir[H_PATH_MAX]; /* private --dir */
    char log[H_PATH_MAX]; /* stdout+stderr of redis-server */
    /* Credentials h_redis_cmdv() sends (AUTH [user] password) before each
     * command when auth_pass is not empty; "" (the default) sends no AUTH.
     * Set them after changing the server's requirepass / ACL. */
    char auth_user[64];
    char auth_pass[64];
};

/*
 * Start redis-server on 127.0.0.1 with no persistence in a private temp dir
 * (--save '' --appendonly no --port P --bind 127.0.0.1 --daemonize no --dir D)
 * and wait until it answers PING. If it dies before that (a port race), retry
 * with a new free port, up to 5 times. Returns 0 (r filled) or -1 (its log
 * printed to stderr).
 */
int h_redis_start(struct h_redis *r);

/* SIGKILL and reap the server (it need not be resumed first). Keeps port and
 * dir so h_redis_restart() can bring up an empty server on the same port. */
void h_redis_kill(struct h_redis *r);

/* Kill (if running) and start an empty server on the same port, retrying up
 * to 3 s while the port is still taken. Returns 0 or -1. */
int h_redis_restart(struct h_redis *r);

/* SIGSTOP / SIGCONT the server, so it stops answering but keeps its sockets
 * open: the "stalled master" of the Redlock paper. Return 0 or -1. */
int h_redis_pause(struct h_redis *r);
int h_redis_resume(struct h_redis *r);

/* Kill the server (if running) and remove its dir. r->port is kept. */
void h_redis_stop(struct h_redis *r);

enum h_reply_type {
    H_REPLY_ERRIO = -1, /* connect/write/read failed or timed out */
    H_REPLY_STATUS,     /* +OK            -> "OK" */
    H_REPLY_ERROR,      /* -ERR ...       -> "ERR ..." */
    H_REPLY_INT,        /* :123           -> "123" */
    H_REPLY_BULK,       /* $3 abc         -> "abc" (cut to fit out) */
    H_REPLY_NIL,        /* $-1 or *-1     -> "" */
    H_REPLY_ARRAY,      /* *N             -> "N" (elements read and dropped) */
};

/*
 * Run one command on the server over a new connection: argv is
 * NULL-terminated, each argument sent as a RESP bulk string. The reply is
 * written to out (outlen bytes, NUL-terminated) in the form shown above.
 * Bounded by H_IO_TIMEOUT_MS (a paused server gives H_REPLY_ERRIO).
 */
enum h_reply_type h_redis_cmdv(const struct h_redis *r, char *out, size_t outlen,
                               const char *const argv[]);
/* The same with the arguments as varargs, ending in NULL. */
enum h_reply_type h_redis_cmd(const struct h_redis *r, char *out, size_t outlen, ...);

/* GET key into out: true if the key exists (false if nil or on error). */
bool h_redis_get(const struct h_redis *r, const char *key, char *out, size_t outlen);
/* CPU time (user + system, in clock ticks) process pid has used, or -1. */
long long h_cpu_ticks(pid_t pid);
/* Write the marker "<key_prefix>,epoch" = the server's run_id, as an operator
 * does for a new master so that it votes at once (PROTOCOL.md 8.5). 0 on success. */
int h_redis_mark(const struct h_redis *r, const char *key_prefix);
/* PTTL key: the ms left, -1 without expiry, -2 when absent, -3 on error. */
long long h_redis_pttl(const struct h_redis *r, const char *key);
/* SET key val PX px_ms: true on +OK. */
bool h_redis_set_px(const struct h_redis *r, const char *key, const char *val, uint32_t px_ms);
/* DBSIZE, or -1 on error. */
long long h_redis_dbsize(const struct h_redis *r);

/* "127.0.0.1:<port>,127.0.0.1:<port>,..." of n servers into out (outlen). When
 * url_auth is not NULL each entry is "redis://<url_auth>@127.0.0.1:<port>"
 * instead (url_auth e.g. ":secret" or "alice:pw"). For h_daemon_opts.masters. */
void h_masters_list(const struct h_redis *m, size_t n, const char *url_auth, char *out,
                    size_t outlen);

/* ---- redlockd -------------------------------------------------------------- */

/* Extra ini lines per section, each a string of "key = value\n" lines
 * (NULL or "" for none). The harness writes listen, unix_socket and masters;
 * everything else is left to the daemon's defaults unless given here. */
struct h_daemon_opts {
    const char *server;
    const char *redis;
    const char *lock;
    const char *log; /* a [log] section is written only when this is set */
    /* Optional too (NULL: none / the default). */
    const char *metrics;    /* a [metrics] section is written only when set */
    const char *masters;    /* the masters value verbatim, instead of the ports */
    const char *const *env; /* extra "NAME=value" strings for redlockd, NULL-ended */
};

struct h_daemon {
    pid_t pid;             /* 0 when not running */
    int port;              /* TCP listen port on 127.0.0.1 */
    char tcp_addr[64];     /* "127.0.0.1:<port>", for redlock_connect() */
    char dir[H_PATH_MAX];  /* private temp dir */
    char sock[H_PATH_MAX]; /* Unix socket path, for redlock_connect() */
    char ini[H_PATH_MAX];  /* the generated config */
    char log[H_PATH_MAX];  /* the daemon's stdout+stderr */
};

/*
 * Write an ini (listen 127.0.0.1:<free port>, unix_socket in a private dir,
 * masters = 127.0.0.1:<port> of each of the nmasters servers, running or not,
 * plus opts' extra lines; opts may be NULL), start redlockd -c INI (through
 * REDLOCKD_WRAPPER if set) and wait until it answers PING on the Unix socket
 * (PONG, or ERR AUTH when opts set auth_token_file).
 * If it exits before that, retry with a new port (3 times at most).
 * Returns 0 (d filled), or -1 with the daemon's log printed to stderr.
 */
int h_daemon_start(struct h_daemon *d, struct h_redis *const masters, size_t nmasters,
                   const struct h_daemon_opts *opts);

/*
 * SIGTERM the daemon and wait up to H_DAEMON_STOP_MS (times the wrapper
 * slowdown) for it to exit, then SIGKILL it. Prints its log to stderr unless
 * it exited with 0, then removes its dir (kept with H_KEEP_TMP). Returns the exit code
 * (0..255, so a wrapper's 99 shows), 128+N if signal N ended it, -1 if it
 * had to be SIGKILLed after the deadline, or 0 if it was not running
 * (d->pid == 0).
 */
int h_daemon_stop(struct h_daemon *d);

/*
 * Write d->ini again for a reload (SIGHUP): the same listen address and
 * socket as d was started with, the given masters and opts (opts->env is
 * ignored). Returns 0 or -1.
 */
int h_daemon_write_ini(const struct h_daemon *d, struct h_redis *const masters, size_t nmasters,
                       const struct h_daemon_opts *opts);

/* Full path of the daemon (REDLOCKD_BIN, see above). */
const char *h_redlockd_bin(void);

/* Send SIGHUP (config reload). Returns 0 or -1. */
int h_daemon_hup(struct h_daemon *d);

/* True while the daemon process has not exited. */
bool h_daemon_alive(struct h_daemon *d);

/* Full path of the CLI (REDLOCK_BIN, see above). */
const char *h_redlock_bin(void);

/* ---- Raw sockets (for protocol-level tests) ------------------------------- */

/* Connect to a Unix socket path / to 127.0.0.1:port. Returns the fd or -1. */
int h_connect_unix(const char *path);
int h_connect_tcp(int port);

/* Write all of buf (MSG_NOSIGNAL). Returns 0, or -1 (e.g. the peer closed). */
int h_send_all(int fd, const void *buf, size_t len);
/* h_send_all of a NUL-terminated string. */
int h_send_str(int fd, const char *s);

enum { H_LINE_EOF = -2, H_LINE_TIMEOUT = -3, H_LINE_ERR = -1 };

/*
 * Read one line from fd, one byte at a time (so nothing after the line is
 * consumed), within timeout_ms. The terminator ("\n", and a "\r" before it)
 * is stripped; out is NUL-terminated (bytes past outlen-1 are dropped).
 * Returns the stored length, H_LINE_EOF if the peer closed first (even
 * mid-line), H_LINE_TIMEOUT, or H_LINE_ERR.
 */
int h_read_line(int fd, char *out, size_t outlen, uint32_t timeout_ms);

/* Like h_read_line but skips pushed "EVENT ..." lines. */
int h_read_reply(int fd, char *out, size_t outlen, uint32_t timeout_ms);

/* True if the file at path contains the string needle (false if unreadable). */
bool h_file_contains(const char *path, const char *needle);
/* How many times needle occurs in the file at path (0 if unreadable). */
unsigned h_file_count(const char *path, const char *needle);

/* True if fd becomes readable (data or EOF) within timeout_ms. */
bool h_readable(int fd, uint32_t timeout_ms);

/* Read and discard until EOF. True if EOF came within timeout_ms. */
bool h_wait_eof(int fd, uint32_t timeout_ms);

/* Send "PING\r\n" on a new connection to the Unix socket path and expect
 * "PONG" within timeout_ms. */
bool h_daemon_ping_raw(const char *sock_path, uint32_t timeout_ms);

/* True if s is a well-formed lock id: 32 lowercase hex characters. */
bool h_is_lock_id(const char *s);

/* ---- Conveniences for tests ------------------------------------------------ */

struct redlock_client;

/* H_WRAPPER_SLOWDOWN when REDLOCKD_WRAPPER is set, else 1: a factor for
 * deadlines that only bound how long a test waits. */
uint32_t h_slowdown(void);

/* libredlock connection to addr (socket path or host:port) with a 15 s I/O
 * timeout, so a stuck daemon fails a test instead of hanging it. NULL (and
 * why on stderr) on failure. */
struct redlock_client *h_client(const char *addr);

/* How many of the n masters hold key (GET finds it) with value val (any
 * value if val is NULL). Paused or killed masters count as not holding. */
size_t h_count_key(const struct h_redis *m, size_t n, const char *key, const char *val);

/* h_count_key once it equals want, or its last value after 2 s (times
 * h_slowdown()). The daemon answers once a majority has answered, so the
 * remaining masters may apply a grant or a release a moment after the reply. */
size_t h_count_key_settled(const struct h_redis *m, size_t n, const char *key, const char *val,
                           size_t want);

#endif
