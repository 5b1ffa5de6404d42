/*
 * harness.c - see harness.h for the contract of each function.
 */
#include "harness.h"

#include "redlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_PROCS 256
#define H_MAX_DIRS 256

struct h_proc {
    pid_t pid;   /* 0: free slot */
    pid_t owner; /* the process that started it */
    bool exited; /* reaped by h_alive(); status holds the wait status */
    int status;
};

struct h_dir {
    char path[H_PATH_MAX]; /* "" : free slot */
    pid_t owner;
};

static struct h_proc procs[H_MAX_PROCS];
static struct h_dir dirs[H_MAX_DIRS];
static char root[H_PATH_MAX];
static pid_t root_owner;

/* ---- Small utilities ------------------------------------------------------ */

/* snprintf that tolerates truncation (paths here are short by construction:
 * the root is at most 60 + 20 bytes). */
static void __attribute__((format(printf, 3, 4))) fmt(char *out, size_t len, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(out, len, f, ap);
    va_end(ap);
}

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void h_sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

bool h_wait_until(h_pred_fn *pred, void *userdata, uint32_t timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        if (pred(userdata))
            return true;
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return false;
        uint64_t left = deadline - now;
        h_sleep_ms(left < 10 ? (uint32_t)left : 10);
        if (h_now_ms() >= deadline)
            return pred(userdata);
    }
}

uint32_t h_slowdown(void)
{
    const char *w = getenv("REDLOCKD_WRAPPER");
    return (w && *w) ? H_WRAPPER_SLOWDOWN : 1;
}

bool h_is_lock_id(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return i == 32;
}

/* ---- Root dir, registry, cleanup -------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void h_rmtree(const char *path)
{
    if (!path || !*path)
        return;
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < H_MAX_DIRS; i++) {
        if (dirs[i].path[0] && strcmp(dirs[i].path, path) == 0)
            dirs[i].path[0] = '\0';
    }
}

void h_dump_file(const char *title, const char *path, int max_lines)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "---- %s: %s (cannot open: %s) ----\n", title, path, strerror(errno));
        return;
    }
    /* Count lines, then print the last max_lines. */
    long total = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        if (ch == '\n')
            total++;
    }
    rewind(f);
    long skip = total > max_lines ? total - max_lines : 0;
    fprintf(stderr, "---- %s: %s (last %ld of %ld lines) ----\n", title, path, total - skip, total);
    char line[2048];
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        bool whole = strchr(line, '\n') != NULL;
        if (n >= skip)
            fputs(line, stderr);
        if (whole)
            n++;
    }
    fclose(f);
    fprintf(stderr, "---- end of %s ----\n", title);
}

/* At the runner's exit: show the logs of daemons whose test did not clean up
 * (it failed or timed out), before everything is removed. */
static void dump_leftover_daemon_logs(void)
{
    DIR *dp = opendir(root);
    if (!dp)
        return;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (strncmp(de->d_name, "redlockd-", 9) != 0)
            continue;
        char path[H_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s/redlockd.log", root, de->d_name);
        if (access(path, R_OK) == 0)
            h_dump_file("redlockd log of a test that did not finish cleanly", path, 60);
    }
    closedir(dp);
}

static bool keep_tmp(void)
{
    const char *keep = getenv("H_KEEP_TMP");
    return keep && *keep && strcmp(keep, "0") != 0;
}

static void h_atexit(void)
{
    if (root[0] && getpid() == root_owner) {
        dump_leftover_daemon_logs();
        h_cleanup();
        if (keep_tmp())
            fprintf(stderr, "harness: kept %s\n", root);
        else
            h_rmtree(root);
        root[0] = '\0';
    } else {
        h_cleanup();
    }
}

void h_init(void)
{
    if (root[0])
        return;
    const char *tmp = getenv("TMPDIR");
    /* Unix socket paths are limited to 107 bytes: keep the root short. */
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(root, sizeof root, "%s/redlockd-test.XXXXXX", tmp);
    if (!mkdtemp(root)) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", root, strerror(errno));
        abort();
    }
    root_owner = getpid();
    signal(SIGPIPE, SIG_IGN);
    atexit(h_atexit);
}

int h_mkdtemp(const char *prefix, char *out)
{
    h_init();
    fmt(out, H_PATH_MAX, "%s/%s-XXXXXX", root, prefix);
    if (!mkdtemp(out)) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", out, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    for (size_t i = 0; i < H_MAX_DIRS; i++) {
        if (!dirs[i].path[0]) {
            snprintf(dirs[i].path, sizeof dirs[i].path, "%s", out);
            dirs[i].owner = getpid();
            return 0;
        }
    }
    return 0; /* not recorded, still under the root */
}

static struct h_proc *proc_find(pid_t pid)
{
    for (size_t i = 0; i < H_MAX_PROCS; i++) {
        if (procs[i].pid == pid && procs[i].owner == getpid())
            return &procs[i];
    }
    return NULL;
}

static void proc_forget(pid_t pid)
{
    struct h_proc *p = proc_find(pid);
    if (p)
        memset(p, 0, sizeof *p);
}

void h_cleanup(void)
{
    pid_t me = getpid();
    for (size_t i = 0; i < H_MAX_PROCS; i++) {
        if (procs[i].pid > 0 && procs[i].owner == me) {
            if (!procs[i].exited) {
                kill(procs[i].pid, SIGKILL);
                while (waitpid(procs[i].pid, NULL, 0) == -1 && errno == EINTR) {
                }
            }
            memset(&procs[i], 0, sizeof procs[i]);
        }
    }
    for (size_t i = 0; i < H_MAX_DIRS; i++) {
        if (dirs[i].path[0] && dirs[i].owner == me) {
            char path[H_PATH_MAX];
            fmt(path, sizeof path, "%s", dirs[i].path);
            h_rmtree(path);
        }
    }
}

/* ---- Child processes -------------------------------------------------------- */

pid_t h_spawn(char *const argv[], const char *out_path)
{
    return h_spawn_env(argv, out_path, NULL);
}

pid_t h_spawn_env(char *const argv[], const char *out_path, const char *const env[])
{
    h_init();
    struct h_proc *slot = NULL;
    for (size_t i = 0; i < H_MAX_PROCS && !slot; i++) {
        if (procs[i].pid == 0)
            slot = &procs[i];
    }
    if (!slot) {
        fprintf(stderr, "harness: too many processes\n");
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < 32; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        }
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        /* No inherited test sockets: a test's close() must reach the daemon. */
        closefrom(3);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execvp(argv[0], argv);
        dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    slot->pid = pid;
    slot->owner = parent;
    slot->exited = false;
    slot->status = 0;
    return pid;
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Reap pid if it exited; true if it has (status stored). */
static bool proc_poll(struct h_proc *p)
{
    if (p->exited)
        return true;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->exited = true;
        p->status = st;
        return true;
    }
    if (r == -1 && errno == ECHILD) {
        p->exited = true;
        p->status = 0;
        return true;
    }
    return false;
}

int h_wait_exit(pid_t pid, uint32_t timeout_ms)
{
    struct h_proc *p = proc_find(pid);
    if (!p)
        return -1;
    uint64_t deadline = h_now_ms() + timeout_ms;
    while (!proc_poll(p)) {
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(5);
    }
    int code = decode_status(p->status);
    proc_forget(pid);
    return code;
}

bool h_alive(pid_t pid)
{
    struct h_proc *p = proc_find(pid);
    return p && !proc_poll(p);
}

void h_kill(pid_t pid)
{
    struct h_proc *p = proc_find(pid);
    if (!p)
        return;
    if (!p->exited) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {
        }
    }
    proc_forget(pid);
}

/* The state letter of /proc/pid/stat, or 0 if the process does not exist. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return (rp && rp[1] == ' ') ? rp[2] : 0;
}

bool h_pid_gone(pid_t pid)
{
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return true;
    char s = proc_state(pid);
    return s == 0 || s == 'Z' || s == 'X';
}

/* ---- Raw sockets ------------------------------------------------------------ */

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int h_connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int h_connect_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int h_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int h_send_str(int fd, const char *s)
{
    return h_send_all(fd, s, strlen(s));
}

/* Wait until fd is readable or the absolute deadline passes. 1 / 0 / -1. */
static int wait_readable(int fd, uint64_t deadline)
{
    for (;;) {
        uint64_t now = h_now_ms();
        int ms = now >= deadline ? 0 : (int)(deadline - now);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        return r > 0 ? 1 : 0;
    }
}

bool h_readable(int fd, uint32_t timeout_ms)
{
    return wait_readable(fd, h_now_ms() + timeout_ms) == 1;
}

int h_read_line(int fd, char *out, size_t outlen, uint32_t timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    size_t n = 0;
    for (;;) {
        int w = wait_readable(fd, deadline);
        if (w < 0)
            return H_LINE_ERR;
        if (w == 0)
            return H_LINE_TIMEOUT;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECONNRESET)
                return H_LINE_EOF;
            return H_LINE_ERR;
        }
        if (r == 0)
            return H_LINE_EOF;
        if (c == '\n')
            break;
        if (n + 1 < outlen)
            out[n++] = c;
    }
    if (n > 0 && out[n - 1] == '\r')
        n--;
    if (outlen)
        out[n] = '\0';
    return (int)n;
}

int h_read_reply(int fd, char *out, size_t outlen, uint32_t timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = h_now_ms();
        int r = h_read_line(fd, out, outlen, now >= deadline ? 0 : (uint32_t)(deadline - now));
        if (r < 0 || strncmp(out, "EVENT ", 6) != 0)
            return r;
    }
}

bool h_wait_eof(int fd, uint32_t timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        int w = wait_readable(fd, deadline);
        if (w <= 0)
            return false;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

bool h_daemon_ping_raw(const char *sock_path, uint32_t timeout_ms)
{
    int fd = h_connect_unix(sock_path);
    if (fd < 0)
        return false;
    char line[64];
    bool ok = h_send_str(fd, "PING\r\n") == 0 &&
              h_read_reply(fd, line, sizeof line, timeout_ms) >= 0 && strcmp(line, "PONG") == 0;
    close(fd);
    return ok;
}

/* ---- RESP client -------------------------------------------------------------- */

struct resp {
    int fd;
    uint64_t deadline;
};

static int resp_line(struct resp *rs, char *out, size_t outlen)
{
    uint64_t now = h_now_ms();
    int n =
        h_read_line(rs->fd, out, outlen, now >= rs->deadline ? 0 : (uint32_t)(rs->deadline - now));
    return n;
}

/* Read exactly len bytes (and the CRLF after them); store up to outlen-1. */
static int resp_bulk(struct resp *rs, long long len, char *out, size_t outlen)
{
    size_t stored = 0;
    long long left = len + 2;
    char buf[4096];
    while (left > 0) {
        if (wait_readable(rs->fd, rs->deadline) != 1)
            return -1;
        size_t want = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
        ssize_t r = read(rs->fd, buf, want);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        for (ssize_t i = 0; i < r; i++) {
            long long pos = len + 2 - left + i;
            if (pos < len && out && stored + 1 < outlen)
                out[stored++] = buf[i];
        }
        left -= r;
    }
    if (out && outlen)
        out[stored] = '\0';
    return 0;
}

static enum h_reply_type resp_read(struct resp *rs, char *out, size_t outlen)
{
    char line[1024];
    if (resp_line(rs, line, sizeof line) < 1)
        return H_REPLY_ERRIO;
    const char *rest = line + 1;
    long long n;
    switch (line[0]) {
    case '+':
        snprintf(out, outlen, "%s", rest);
        return H_REPLY_STATUS;
    case '-':
        snprintf(out, outlen, "%s", rest);
        return H_REPLY_ERROR;
    case ':':
        snprintf(out, outlen, "%s", rest);
        return H_REPLY_INT;
    case '$':
        n = atoll(rest);
        if (n < 0) {
            snprintf(out, outlen, "%s", "");
            return H_REPLY_NIL;
        }
        return resp_bulk(rs, n, out, outlen) == 0 ? H_REPLY_BULK : H_REPLY_ERRIO;
    case '*':
        n = atoll(rest);
        if (n < 0) {
            snprintf(out, outlen, "%s", "");
            return H_REPLY_NIL;
        }
        for (long long i = 0; i < n; i++) {
            char skip[16];
            if (resp_read(rs, skip, sizeof skip) == H_REPLY_ERRIO)
                return H_REPLY_ERRIO;
        }
        snprintf(out, outlen, "%lld", n);
        return H_REPLY_ARRAY;
    default:
        return H_REPLY_ERRIO;
    }
}

enum h_reply_type h_redis_cmdv(const struct h_redis *r, char *out, size_t outlen,
                               const char *const argv[])
{
    char dummy[8];
    if (!out || outlen == 0) {
        out = dummy;
        outlen = sizeof dummy;
    }
    out[0] = '\0';
    int fd = h_connect_tcp(r->port);
    if (fd < 0)
        return H_REPLY_ERRIO;
    int ok = 1;
    char hdr[64];
    if (r->auth_pass[0]) {
        /* AUTH first; its reply is read and dropped (a wrong password shows
         * in the command's own NOAUTH reply). */
        const char *auth[] = {"AUTH", r->auth_user[0] ? r->auth_user : r->auth_pass,
                              r->auth_user[0] ? r->auth_pass : NULL, NULL};
        size_t na = r->auth_user[0] ? 3 : 2;
        snprintf(hdr, sizeof hdr, "*%zu\r\n", na);
        ok = h_send_str(fd, hdr) == 0;
        for (size_t i = 0; ok && i < na; i++) {
            snprintf(hdr, sizeof hdr, "$%zu\r\n", strlen(auth[i]));
            ok = h_send_str(fd, hdr) == 0 && h_send_str(fd, auth[i]) == 0 &&
                 h_send_str(fd, "\r\n") == 0;
        }
        char skip[256];
        struct resp rs = {.fd = fd, .deadline = h_now_ms() + H_IO_TIMEOUT_MS};
        if (ok && resp_read(&rs, skip, sizeof skip) == H_REPLY_ERRIO)
            ok = 0;
    }
    size_t argc = 0;
    while (argv[argc])
        argc++;
    snprintf(hdr, sizeof hdr, "*%zu\r\n", argc);
    ok = ok && h_send_str(fd, hdr) == 0;
    for (size_t i = 0; ok && i < argc; i++) {
        snprintf(hdr, sizeof hdr, "$%zu\r\n", strlen(argv[i]));
        ok =
            h_send_str(fd, hdr) == 0 && h_send_str(fd, argv[i]) == 0 && h_send_str(fd, "\r\n") == 0;
    }
    enum h_reply_type t = H_REPLY_ERRIO;
    if (ok) {
        struct resp rs = {.fd = fd, .deadline = h_now_ms() + H_IO_TIMEOUT_MS};
        t = resp_read(&rs, out, outlen);
    }
    close(fd);
    return t;
}

enum h_reply_type h_redis_cmd(const struct h_redis *r, char *out, size_t outlen, ...)
{
    const char *argv[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, outlen);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return h_redis_cmdv(r, out, outlen, argv);
}

bool h_redis_get(const struct h_redis *r, const char *key, char *out, size_t outlen)
{
    char tmp[1024];
    if (!out) {
        out = tmp;
        outlen = sizeof tmp;
    }
    return h_redis_cmd(r, out, outlen, "GET", key, (char *)NULL) == H_REPLY_BULK;
}

long long h_redis_pttl(const struct h_redis *r, const char *key)
{
    char out[64];
    if (h_redis_cmd(r, out, sizeof out, "PTTL", key, (char *)NULL) != H_REPLY_INT)
        return -3;
    return atoll(out);
}

bool h_redis_set_px(const struct h_redis *r, const char *key, const char *val, uint32_t px_ms)
{
    char px[16], out[64];
    snprintf(px, sizeof px, "%u", px_ms);
    return h_redis_cmd(r, out, sizeof out, "SET", key, val, "PX", px, (char *)NULL) ==
               H_REPLY_STATUS &&
           strcmp(out, "OK") == 0;
}

long long h_redis_dbsize(const struct h_redis *r)
{
    char out[64];
    if (h_redis_cmd(r, out, sizeof out, "DBSIZE", (char *)NULL) != H_REPLY_INT)
        return -1;
    return atoll(out);
}

void h_masters_list(const struct h_redis *m, size_t n, const char *url_auth, char *out,
                    size_t outlen)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < outlen; i++) {
        int w;
        if (url_auth)
            w = snprintf(out + len, outlen - len, "%sredis://%s@127.0.0.1:%d", i ? "," : "",
                         url_auth, m[i].port);
        else
            w = snprintf(out + len, outlen - len, "%s127.0.0.1:%d", i ? "," : "", m[i].port);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

/* ---- redis-server processes ------------------------------------------------------ */

/* PING a Redis on port over a fresh connection, expecting +PONG. */
static bool redis_ping(int port, uint32_t timeout_ms)
{
    int fd = h_connect_tcp(port);
    if (fd < 0)
        return false;
    char line[64];
    bool ok = h_send_str(fd, "PING\r\n") == 0 &&
              h_read_line(fd, line, sizeof line, timeout_ms) > 0 && strcmp(line, "+PONG") == 0;
    close(fd);
    return ok;
}

/* Start redis-server on r->port; 0 when it answers PING, -1 if it died
 * (e.g. the port was taken) or missed the deadline (then it is killed). */
static int redis_launch(struct h_redis *r)
{
    const char *bin = getenv("REDIS_SERVER_BIN");
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    char *argv[] = {(char *)(bin && *bin ? bin : "redis-server"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--port",
                    port,
                    "--bind",
                    "127.0.0.1",
                    "--daemonize",
                    "no",
                    "--dir",
                    r->dir,
                    NULL};
    pid_t pid = h_spawn(argv, r->log);
    if (pid < 0)
        return -1;
    uint64_t deadline = h_now_ms() + H_REDIS_START_MS;
    while (h_now_ms() < deadline) {
        if (!h_alive(pid)) {
            h_wait_exit(pid, 0);
            return -1;
        }
        if (redis_ping(r->port, 500)) {
            r->pid = pid;
            r->paused = false;
            return 0;
        }
        h_sleep_ms(10);
    }
    fprintf(stderr, "harness: redis-server on port %d did not answer PING in %d ms\n", r->port,
            H_REDIS_START_MS);
    h_kill(pid);
    return -1;
}

int h_redis_start(struct h_redis *r)
{
    memset(r, 0, sizeof *r);
    if (h_mkdtemp("redis", r->dir) != 0)
        return -1;
    fmt(r->log, sizeof r->log, "%s/redis.log", r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = h_free_port();
        if (r->port > 0 && redis_launch(r) == 0)
            return 0;
    }
    h_dump_file("redis-server log", r->log, 30);
    return -1;
}

void h_redis_kill(struct h_redis *r)
{
    if (r->pid > 0)
        h_kill(r->pid);
    r->pid = 0;
    r->paused = false;
}

int h_redis_restart(struct h_redis *r)
{
    h_redis_kill(r);
    uint64_t deadline = h_now_ms() + 3000;
    do {
        if (redis_launch(r) == 0)
            return 0;
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    fprintf(stderr, "harness: could not restart redis-server on port %d\n", r->port);
    h_dump_file("redis-server log", r->log, 30);
    return -1;
}

/* Wait (1 s at most) until the process is / is not in the stopped state. */
static bool wait_stopped_state(pid_t pid, bool stopped)
{
    uint64_t deadline = h_now_ms() + 1000;
    for (;;) {
        char s = proc_state(pid);
        if ((s == 'T' || s == 't') == stopped)
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(1);
    }
}

int h_redis_pause(struct h_redis *r)
{
    if (r->pid <= 0 || kill(r->pid, SIGSTOP) != 0 || !wait_stopped_state(r->pid, true))
        return -1;
    r->paused = true;
    return 0;
}

int h_redis_resume(struct h_redis *r)
{
    if (r->pid <= 0 || kill(r->pid, SIGCONT) != 0 || !wait_stopped_state(r->pid, false))
        return -1;
    r->paused = false;
    return 0;
}

void h_redis_stop(struct h_redis *r)
{
    h_redis_kill(r);
    h_rmtree(r->dir);
    r->dir[0] = '\0';
}

/* ---- redlockd ------------------------------------------------------------------- */

static const char *bin_path(const char *env, const char *name, char *buf, size_t len)
{
    const char *v = getenv(env);
    if (v && *v)
        return v;
    const char *build = getenv("BUILD");
    snprintf(buf, len, "%s/%s", build && *build ? build : "./build", name);
    return buf;
}

const char *h_redlock_bin(void)
{
    static char buf[H_PATH_MAX];
    return bin_path("REDLOCK_BIN", "redlock", buf, sizeof buf);
}

const char *h_redlockd_bin(void)
{
    static char buf[H_PATH_MAX];
    return bin_path("REDLOCKD_BIN", "redlockd", buf, sizeof buf);
}

static const char *redlockd_bin(void)
{
    static char buf[H_PATH_MAX];
    return bin_path("REDLOCKD_BIN", "redlockd", buf, sizeof buf);
}

static void put_section(FILE *f, const char *name, const char *lines, bool always)
{
    if (!always && !(lines && *lines))
        return;
    fprintf(f, "[%s]\n", name);
    if (lines && *lines)
        fprintf(f, "%s%s", lines, lines[strlen(lines) - 1] == '\n' ? "" : "\n");
}

static int write_ini(const struct h_daemon *d, struct h_redis *const masters, size_t n,
                     const struct h_daemon_opts *opts)
{
    static const struct h_daemon_opts none;
    if (!opts)
        opts = &none;
    FILE *f = fopen(d->ini, "w");
    if (!f) {
        fprintf(stderr, "harness: %s: %s\n", d->ini, strerror(errno));
        return -1;
    }
    fprintf(f, "; generated by tests/lib/harness.c\n[server]\nlisten = %s\nunix_socket = %s\n",
            d->tcp_addr, d->sock);
    put_section(f, "server", opts->server, false);
    fprintf(f, "[redis]\nmasters = ");
    if (opts->masters) {
        fprintf(f, "%s", opts->masters);
    } else {
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s127.0.0.1:%d", i ? ", " : "", masters[i].port);
    }
    fprintf(f, "\n");
    put_section(f, "redis", opts->redis, false);
    put_section(f, "lock", opts->lock, false);
    put_section(f, "log", opts->log, false);
    put_section(f, "metrics", opts->metrics, false);
    return fclose(f) == 0 ? 0 : -1;
}

/* The daemon is up when it answers PING with PONG, or with ERR AUTH when
 * auth_token_file is set. */
static bool daemon_answers(const char *sock_path, uint32_t timeout_ms)
{
    int fd = h_connect_unix(sock_path);
    if (fd < 0)
        return false;
    char line[128];
    bool ok = h_send_str(fd, "PING\r\n") == 0 &&
              h_read_reply(fd, line, sizeof line, timeout_ms) >= 0 &&
              (strcmp(line, "PONG") == 0 || strncmp(line, "ERR AUTH", 8) == 0);
    close(fd);
    return ok;
}

/* The daemon's INFO masters_up, or -1 (no answer, AUTH needed, no such line). */
static long long daemon_masters_up(const char *sock_path, uint32_t timeout_ms)
{
    int fd = h_connect_unix(sock_path);
    if (fd < 0)
        return -1;
    char line[256];
    int n = -1;
    long long up = -1;
    if (h_send_str(fd, "INFO\r\n") == 0 && h_read_reply(fd, line, sizeof line, timeout_ms) >= 0 &&
        sscanf(line, "DATA %d", &n) == 1) {
        for (int i = 0; i < n && h_read_line(fd, line, sizeof line, timeout_ms) >= 0; i++)
            if (strncmp(line, "masters_up ", 11) == 0)
                up = atoll(line + 11);
    }
    close(fd);
    return up;
}

/* Wait (until deadline) for the daemon to have every running master up, so
 * a test's first grant is written on all of them. Gives up quietly: tests
 * that start with a master stopped or refusing expect fewer. */
static void wait_masters_up(const char *sock_path, struct h_redis *const masters, size_t nmasters,
                            uint64_t deadline)
{
    long long live = 0;
    for (size_t i = 0; i < nmasters; i++)
        live += masters[i].pid > 0 && !masters[i].paused;
    while (h_now_ms() < deadline) {
        long long up = daemon_masters_up(sock_path, 1000);
        if (up < 0 || up >= live)
            return;
        h_sleep_ms(10);
    }
}

int h_daemon_start(struct h_daemon *d, struct h_redis *const masters, size_t nmasters,
                   const struct h_daemon_opts *opts)
{
    memset(d, 0, sizeof *d);
    const char *bin = redlockd_bin();
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "harness: %s is not executable (set REDLOCKD_BIN or build it)\n", bin);
        return -1;
    }
    if (h_mkdtemp("redlockd", d->dir) != 0)
        return -1;
    fmt(d->sock, sizeof d->sock, "%s/redlockd.sock", d->dir);
    fmt(d->ini, sizeof d->ini, "%s/redlockd.ini", d->dir);
    fmt(d->log, sizeof d->log, "%s/redlockd.log", d->dir);
    const char *wrapper = getenv("REDLOCKD_WRAPPER");
    uint32_t start_ms = H_DAEMON_START_MS * h_slowdown();

    for (int attempt = 0; attempt < 3; attempt++) {
        d->port = h_free_port();
        snprintf(d->tcp_addr, sizeof d->tcp_addr, "127.0.0.1:%d", d->port);
        if (d->port <= 0 || write_ini(d, masters, nmasters, opts) != 0)
            return -1;
        char *argv_plain[] = {(char *)bin, "-c", d->ini, NULL};
        char *argv_wrap[] = {"/bin/sh",   "-c",   "exec $REDLOCKD_WRAPPER \"$0\" -c \"$1\"",
                             (char *)bin, d->ini, NULL};
        pid_t pid = h_spawn_env(wrapper && *wrapper ? argv_wrap : argv_plain, d->log,
                                opts ? opts->env : NULL);
        if (pid < 0)
            return -1;
        uint64_t deadline = h_now_ms() + start_ms;
        bool died = false;
        while (h_now_ms() < deadline) {
            if (!h_alive(pid)) {
                died = true;
                break;
            }
            if (daemon_answers(d->sock, 1000)) {
                d->pid = pid;
                wait_masters_up(d->sock, masters, nmasters, deadline);
                return 0;
            }
            h_sleep_ms(10);
        }
        if (!died) {
            fprintf(stderr, "harness: redlockd did not answer PING on %s within %u ms\n", d->sock,
                    start_ms);
            h_kill(pid);
            break;
        }
        int code = h_wait_exit(pid, 0);
        fprintf(stderr, "harness: redlockd exited with %d before answering PING (attempt %d)\n",
                code, attempt + 1);
    }
    h_dump_file("redlockd.ini", d->ini, 100);
    h_dump_file("redlockd log", d->log, 60);
    return -1;
}

int h_daemon_stop(struct h_daemon *d)
{
    if (d->pid <= 0)
        return 0;
    pid_t pid = d->pid;
    d->pid = 0;
    kill(pid, SIGTERM);
    uint32_t stop_ms = H_DAEMON_STOP_MS * h_slowdown();
    int code = h_wait_exit(pid, stop_ms);
    if (code == -1) {
        fprintf(stderr, "harness: redlockd (pid %d) ignored SIGTERM for %u ms; SIGKILL\n", (int)pid,
                stop_ms);
        h_kill(pid);
    }
    if (code != 0)
        h_dump_file("redlockd log (unclean exit)", d->log, 60);
    if (!keep_tmp())
        h_rmtree(d->dir);
    return code;
}

int h_daemon_write_ini(const struct h_daemon *d, struct h_redis *const masters, size_t nmasters,
                       const struct h_daemon_opts *opts)
{
    /* Write a new file and rename it over the old, so a reload never reads
     * a half-written config. */
    struct h_daemon tmp = *d;
    fmt(tmp.ini, sizeof tmp.ini, "%s.new", d->ini);
    if (write_ini(&tmp, masters, nmasters, opts) != 0)
        return -1;
    return rename(tmp.ini, d->ini) == 0 ? 0 : -1;
}

bool h_file_contains(const char *path, const char *needle)
{
    return h_file_count(path, needle) > 0;
}

unsigned h_file_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    unsigned found = 0;
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap)
            break;
        cap *= 2;
        char *p = realloc(buf, cap + 1);
        if (!p)
            break;
        buf = p;
    }
    if (buf) {
        buf[len] = '\0';
        size_t nlen = strlen(needle);
        for (const char *at = buf;
             nlen > 0 && (at = memmem(at, len - (size_t)(at - buf), needle, nlen)) != NULL;
             at += nlen)
            found++;
    }
    free(buf);
    fclose(f);
    return found;
}

int h_daemon_hup(struct h_daemon *d)
{
    return d->pid > 0 ? kill(d->pid, SIGHUP) : -1;
}

bool h_daemon_alive(struct h_daemon *d)
{
    return d->pid > 0 && h_alive(d->pid);
}

/* ---- Conveniences ------------------------------------------------------------------ */

struct redlock_client *h_client(const char *addr)
{
    char err[256] = "";
    struct redlock_client *c = redlock_connect(addr, err, sizeof err);
    if (!c) {
        fprintf(stderr, "harness: redlock_connect(%s): %s\n", addr, err);
        return NULL;
    }
    redlock_set_timeout(c, 15000);
    return c;
}

size_t h_count_key(const struct h_redis *m, size_t n, const char *key, const char *val)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char out[1024];
        if (m[i].pid <= 0 || m[i].paused)
            continue;
        if (h_redis_get(&m[i], key, out, sizeof out) && (!val || strcmp(out, val) == 0))
            count++;
    }
    return count;
}

size_t h_count_key_settled(const struct h_redis *m, size_t n, const char *key, const char *val,
                           size_t want)
{
    uint64_t deadline = h_now_ms() + 2000 * (uint64_t)h_slowdown();
    size_t count = h_count_key(m, n, key, val);
    while (count != want && h_now_ms() < deadline) {
        h_sleep_ms(10);
        count = h_count_key(m, n, key, val);
    }
    return count;
}

int h_redis_mark(const struct h_redis *r, const char *key_prefix)
{
    char info[4096], run_id[48], key[160];
    if (h_redis_cmd(r, info, sizeof info, "INFO", "server", (char *)NULL) != H_REPLY_BULK)
        return -1;
    const char *p = strstr(info, "run_id:");
    if (p == NULL)
        return -1;
    snprintf(run_id, sizeof run_id, "%.40s", p + 7);
    snprintf(key, sizeof key, "%s,epoch", key_prefix);
    return h_redis_cmd(r, info, sizeof info, "SET", key, run_id, (char *)NULL) == H_REPLY_STATUS
               ? 0
               : -1;
}

long long h_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}
