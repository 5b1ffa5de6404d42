/*
 * check_hostile_clients.c - one careless or hostile client must not cost the
 * others their locks, memory or latency (issue 13, "Clients"): stalled
 * readers, unauthenticated connections, AUTH guessing, token rotation, and
 * the per-client shares of the daemon-wide limits.
 *
 * The daemon runs with the memory backend: what is tested is the client
 * side, and a real redlockd process serves every request.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

static struct h_daemon D;

static void start_with(const char *server, const char *lock)
{
    char lk[512];
    snprintf(lk, sizeof lk, "max_ttl_ms = 60000\nretry_count = 0\n%s", lock ? lock : "");
    struct h_daemon_opts o = {.server = server, .redis = "backend = memory\n", .lock = lk};
    ck_assert_msg(h_daemon_start(&D, NULL, 0, &o) == 0, "redlockd did not start");
}

static void setup(void)
{
    memset(&D, 0, sizeof D);
}

static void teardown(void)
{
    ck_assert_int_eq(h_daemon_stop(&D), 0);
}

/* One request on a raw connection, its reply (events skipped) into line. */
static void req(int fd, const char *request, char *line, size_t len)
{
    raw_send(fd, request);
    ck_assert_msg(h_read_reply(fd, line, len, 5000 * h_slowdown()) >= 0, "no reply to '%s'",
                  request);
}

static int conn_tcp(void)
{
    int fd = h_connect_tcp(D.port);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* A TCP connection whose receive buffer is small (set before connect, so
 * the window stays small): what the daemon writes and the client does not
 * read stays in the daemon's send queue, where the stall check sees it,
 * instead of vanishing into a receive buffer the kernel grows to megabytes. */
static int conn_tcp_small_rcvbuf(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int size = 4096;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)D.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void set_nonblocking(int fd)
{
    ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* Pipeline PINGs without reading until the daemon stops taking them (no
 * room to write for 300 ms). Returns how many were sent. */
static size_t ping_until_blocked(int fd)
{
    static char pings[6 * 4096];
    for (size_t i = 0; i < sizeof pings; i += 6)
        memcpy(pings + i, "PING\r\n", 6);
    set_nonblocking(fd);
    size_t sent = 0, off = 0;
    uint64_t deadline = h_now_ms() + 20000;
    while (h_now_ms() < deadline) {
        ssize_t n = send(fd, pings + off, sizeof pings - off, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            off = (off + (size_t)n) % sizeof pings;
            continue;
        }
        if (n < 0 && (errno == ECONNRESET || errno == EPIPE))
            return sent / 6; /* already cut off */
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "send: %s",
                      strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 300) == 0)
            return sent / 6;
    }
    ck_abort_msg("the daemon never stopped reading a client that reads nothing");
    return 0;
}

/* ACQUIRE res WAIT on a fresh connection: how long until it was granted,
 * or UINT64_MAX if it was not. */
static uint64_t ms_until_granted(const char *res, uint32_t wait_ms)
{
    int fd = h_connect_unix(D.sock);
    ck_assert_int_ge(fd, 0);
    char request[128], line[256];
    snprintf(request, sizeof request, "ACQUIRE %s 5000 WAIT %u", res, wait_ms);
    uint64_t t0 = h_now_ms();
    raw_send(fd, request);
    ck_assert_msg(h_read_reply(fd, line, sizeof line, wait_ms + 5000) >= 0, "no reply to '%s'",
                  request);
    uint64_t took = h_now_ms() - t0;
    close(fd);
    return starts(line, "OK ") ? took : UINT64_MAX;
}

static bool reloaded(void *ud)
{
    int *count = ud;
    char cmd[H_PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "grep -c 'configuration reloaded' %s", D.log);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (p != NULL) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n > *count;
}

/* SIGHUP and wait for one more "configuration reloaded" in the log. */
static void reload_and_wait(void)
{
    int before = 0;
    while (reloaded(&before))
        before++;
    ck_assert_int_eq(h_daemon_hup(&D), 0);
    ck_assert_msg(h_wait_until(reloaded, &before, 5000 * h_slowdown()), "reload not logged");
}

/* ---- stalled readers ---------------------------------------------------- */

/* A client holds an AUTOEXTEND lock and pipelines PINGs without reading a
 * reply: once nothing of its output drains for client_stall_ms it is closed
 * and the lock is released. (Before, the lock stayed extended for ever.) */
/* One INFO counter over fd (authenticated if the daemon wants it). */
static long long info_num(int fd, const char *key)
{
    char hdr[64], line[256];
    raw_send(fd, "INFO");
    ck_assert_msg(h_read_reply(fd, hdr, sizeof hdr, 5000) >= 0, "INFO: no reply");
    int n = 0;
    ck_assert_msg(sscanf(hdr, "DATA %d", &n) == 1, "INFO: '%s'", hdr);
    long long v = -1;
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(h_read_line(fd, line, sizeof line, 5000) >= 0, "INFO line %d missing", i);
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            v = atoll(line + kl + 1);
    }
    ck_assert_msg(v >= 0, "INFO has no %s", key);
    return v;
}

START_TEST(test_stalled_reader_closed)
{
    start_with("client_stall_ms = 1000\nmax_output_bytes = 65536\n", NULL);
    int fd = conn_tcp_small_rcvbuf();
    char line[256];
    req(fd, "ACQUIRE stall 3000 AUTOEXTEND", line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "ACQUIRE: '%s'", line);
    size_t sent = ping_until_blocked(fd);
    uint64_t took = ms_until_granted("stall", 10000 * h_slowdown());
    ck_assert_msg(took != UINT64_MAX,
                  "the stalled reader kept its AUTOEXTEND lock (%zu PINGs sent)", sent);
    ck_assert_msg(took <= 1000 + 1500 * h_slowdown(),
                  "lock released only after %llu ms (stall limit 1000)", (unsigned long long)took);
    ck_assert(h_file_contains(D.log, "reads none of its replies"));
    close(fd);
    int other = conn_tcp();
    ck_assert_int_eq(info_num(other, "closed_stalled"), 1);
    close(other);
}
END_TEST

/* A reader that is slow but keeps taking its replies is kept: it holds an
 * AUTOEXTEND lock, pipelines PINGs until the daemon stops reading it, then
 * takes chunk bytes every 400 ms for 5 s (two and a half stall limits), far
 * less than is queued. */
static void slow_reader(int fd, const char *res, size_t chunk)
{
    char line[256], request[64];
    snprintf(request, sizeof request, "ACQUIRE %s 3000 AUTOEXTEND", res);
    req(fd, request, line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "ACQUIRE: '%s'", line);
    size_t want = ping_until_blocked(fd) * 6;
    static char buf[1 << 20];
    size_t got = 0;
    uint64_t end = h_now_ms() + 5000;
    while (h_now_ms() < end) {
        h_sleep_ms(400);
        ssize_t n = recv(fd, buf, chunk, MSG_DONTWAIT);
        ck_assert_msg(n > 0, "the slow reader was closed after reading %zu of %zu bytes", got,
                      want);
        got += (size_t)n;
    }
    ck_assert_msg(got + 65536 < want,
                  "the test read everything (%zu of %zu bytes): nothing was backed up", got, want);
    ck_assert_msg(ms_until_granted(res, 0) == UINT64_MAX, "the slow reader lost its lock");
    /* Everything arrives. */
    while (got < want) {
        ck_assert_msg(h_readable(fd, 5000), "replies stopped after %zu of %zu bytes", got, want);
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        ck_assert_msg(n > 0, "closed after %zu of %zu bytes", got, want);
        got += (size_t)n;
    }
    ck_assert_uint_eq(got, want);
}

START_TEST(test_slow_reader_kept_unix)
{
    start_with("client_stall_ms = 2000\nmax_output_bytes = 65536\n", NULL);
    int fd = h_connect_unix(D.sock);
    ck_assert_int_ge(fd, 0);
    slow_reader(fd, "slowu", 4096);
    close(fd);
}
END_TEST

/* Over TCP the daemon sees a read only when it opens the receive window,
 * that is when the reader frees at least a segment (64 KB on loopback) and
 * a sixteenth of its buffer: a reader with a 128 KB buffer. */
START_TEST(test_slow_reader_kept_tcp)
{
    start_with("client_stall_ms = 2000\nmax_output_bytes = 65536\n", NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int rcvbuf = 65536; /* the kernel doubles it */
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)D.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    slow_reader(fd, "slowt", 65536);
    close(fd);
}
END_TEST

/* ---- dead peers ---------------------------------------------------------- */

/* The daemon's side of a TCP connection, as ss(8) shows it. */
static void ss_daemon_side(char *out, size_t len)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ss -tnoH state established '( sport = :%d )' 2>&1", D.port);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
}

/* Accepted TCP sockets carry keepalive with tcp_keepalive_s: a peer that
 * died without a FIN is found and its locks released. */
START_TEST(test_keepalive_on_accepted)
{
    start_with("tcp_keepalive_s = 7\n", NULL);
    int fd = conn_tcp();
    char line[256], ss[4096];
    req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    ss_daemon_side(ss, sizeof ss);
    ck_assert_msg(strstr(ss, "timer:(keepalive,") != NULL,
                  "no keepalive timer on the daemon's socket: %s", ss);
    close(fd);
    /* Off when 0, after a reload (it applies to new connections). */
    struct h_daemon_opts o = {.server = "tcp_keepalive_s = 0\n",
                              .redis = "backend = memory\n",
                              .lock = "max_ttl_ms = 60000\n"};
    ck_assert_int_eq(h_daemon_write_ini(&D, NULL, 0, &o), 0);
    reload_and_wait();
    fd = conn_tcp();
    req(fd, "PING", line, sizeof line);
    ss_daemon_side(ss, sizeof ss);
    ck_assert_msg(strstr(ss, "keepalive") == NULL, "keepalive with tcp_keepalive_s = 0: %s", ss);
    close(fd);
}
END_TEST

/* ---- unauthenticated connections ------------------------------------------ */

#define TOKEN "s3cret-T0ken"

static char token_path[H_PATH_MAX + 16];

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* Start with auth_token_file = a file holding TOKEN, plus server lines. */
static void start_with_token(const char *server, const char *lock)
{
    char dir[H_PATH_MAX], srv[1024];
    ck_assert_int_eq(h_mkdtemp("token", dir), 0);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    write_file(token_path, TOKEN "\n", 0600);
    snprintf(srv, sizeof srv, "auth_token_file = %s\n%s", token_path, server ? server : "");
    start_with(srv, lock);
}

/* A connection that sent AUTH TOKEN and got OK (over TCP). */
static int authed_tcp(void)
{
    int fd = conn_tcp();
    char line[256];
    req(fd, "AUTH " TOKEN, line, sizeof line);
    ck_assert_msg(strcmp(line, "OK") == 0, "AUTH: '%s'", line);
    return fd;
}

static long vm_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kb = strtol(line + n + 1, NULL, 10);
    fclose(f);
    ck_assert_int_ge(kb, 0);
    return kb;
}

/* 200 connections that never AUTH, with max_clients 50: once
 * auth_timeout_ms passes a real client gets in (before, never). */
START_TEST(test_auth_deadline_frees_slots)
{
    start_with_token("max_clients = 50\nauth_timeout_ms = 1000\n", NULL);
    static int idle[200];
    for (int i = 0; i < 200; i++)
        idle[i] = conn_tcp();
    uint64_t t0 = h_now_ms(), deadline = t0 + 10000 * h_slowdown();
    char line[256] = "";
    bool in = false;
    while (!in && h_now_ms() < deadline) {
        int fd = conn_tcp();
        in = h_send_str(fd, "AUTH " TOKEN "\r\n") == 0 &&
             h_read_reply(fd, line, sizeof line, 2000) >= 0 && strcmp(line, "OK") == 0;
        if (in) {
            req(fd, "PING", line, sizeof line);
            ck_assert_str_eq(line, "PONG");
        } else {
            h_sleep_ms(50);
        }
        close(fd);
    }
    uint64_t took = h_now_ms() - t0;
    ck_assert_msg(
        in, "idle unauthenticated connections kept a real client out for 10 s (last reply '%s')",
        line);
    ck_assert_msg(took <= 1000 + 3000 * h_slowdown(), "a real client got in only after %llu ms",
                  (unsigned long long)took);
    /* The idle ones that were let in were closed; an authenticated one is not. */
    int ok = authed_tcp();
    ck_assert_msg(h_wait_eof(idle[0], 3000), "an idle unauthenticated connection is still open");
    h_sleep_ms(1500);
    req(ok, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    ck_assert_int_ge(info_num(ok, "closed_auth_timeout"), 40); /* max_clients let 50 in */
    close(ok);
    for (int i = 0; i < 200; i++)
        close(idle[i]);
}
END_TEST

static bool rss_grew(void *ud)
{
    long *base = ud;
    return vm_kb(D.pid, "VmRSS") > base[0] + 8192;
}

/* Unauthenticated connections that send a long partial line, or pipeline
 * requests without reading the ERR AUTH replies, cost the daemon almost
 * nothing: lines are capped at 1 KB and replies at 8 before AUTH. */
START_TEST(test_preauth_buffers_small)
{
    start_with_token("max_clients = 1000\nauth_timeout_ms = 0\n", NULL);
    long base = vm_kb(D.pid, "VmRSS");
    static char junk[60000];
    memset(junk, 'x', sizeof junk);
    static char pings[6 * 8192];
    for (size_t i = 0; i < sizeof pings; i += 6)
        memcpy(pings + i, "PING\r\n", 6);
    static int partial[200], piped[100];
    for (int i = 0; i < 200; i++) {
        partial[i] = conn_tcp();
        set_nonblocking(partial[i]);
        ssize_t n = send(partial[i], junk, sizeof junk, MSG_NOSIGNAL);
        (void)n; /* the daemon may already have closed it */
    }
    for (int i = 0; i < 100; i++) {
        piped[i] = conn_tcp();
        set_nonblocking(piped[i]);
        for (int k = 0; k < 20; k++)
            if (send(piped[i], pings, sizeof pings, MSG_NOSIGNAL) < 0)
                break;
    }
    bool grew = h_wait_until(rss_grew, &base, 3000);
    long now = vm_kb(D.pid, "VmRSS");
    fprintf(stderr, "preauth: RSS %ld KB before, %ld KB after 300 hostile connections\n", base,
            now);
    ck_assert_msg(!grew,
                  "300 unauthenticated connections took the daemon's RSS from %ld KB to %ld KB",
                  base, now);
    /* The pipelining ones got at most 8 replies each, then a close. */
    char line[256];
    for (int i = 0; i < 100; i += 25) {
        int lines = 0, rc;
        while ((rc = h_read_line(piped[i], line, sizeof line, 3000)) >= 0) {
            ck_assert_msg(is_err(line, "AUTH"), "reply before AUTH: '%s'", line);
            lines++;
        }
        ck_assert_msg(rc == H_LINE_EOF || rc == H_LINE_ERR, "not closed after %d replies (rc %d)",
                      lines, rc);
        ck_assert_int_le(lines, 8);
    }
    for (int i = 0; i < 200; i++)
        close(partial[i]);
    for (int i = 0; i < 100; i++)
        close(piped[i]);
    /* A real client is served. */
    int fd = authed_tcp();
    req(fd, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    close(fd);
}
END_TEST

/* ---- AUTH guessing --------------------------------------------------------- */

static int count_in_log(const char *needle)
{
    FILE *f = fopen(D.log, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

#define GUESSERS 50

/* 50 connections guess as fast as they are answered for 3 s, reconnecting
 * when closed. With max_auth_failures_per_s = 10, about 10 tokens a second
 * are checked (before: 4 per connection, 200 a second) and the log has a
 * line a second, not one per guess. */
START_TEST(test_auth_guessing_budget)
{
    start_with_token("max_auth_failures_per_s = 10\n", NULL);
    struct pollfd p[GUESSERS];
    unsigned seq = 0;
    char guess[64], line[256];
    for (int i = 0; i < GUESSERS; i++) {
        p[i] = (struct pollfd){.fd = conn_tcp(), .events = POLLIN};
        snprintf(guess, sizeof guess, "AUTH guess-%u\r\n", seq++);
        ck_assert_int_eq(h_send_str(p[i].fd, guess), 0);
    }
    int checked = 0, refused = 0, answers = 0;
    uint64_t t0 = h_now_ms(), end = t0 + 3000;
    while (h_now_ms() < end) {
        ck_assert_int_ge(poll(p, GUESSERS, 50), 0);
        for (int i = 0; i < GUESSERS; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int rc = h_read_line(p[i].fd, line, sizeof line, 1000);
            if (rc >= 0) {
                answers++;
                ck_assert_msg(is_err(line, "AUTH"), "guess answered '%s'", line);
                if (strstr(line, "invalid token"))
                    checked++;
                else
                    refused++;
            }
            bool again = rc >= 0;
            if (again) {
                snprintf(guess, sizeof guess, "AUTH guess-%u\r\n", seq++);
                again = h_send_str(p[i].fd, guess) == 0;
            }
            if (!again) { /* closed: a new connection guesses on */
                close(p[i].fd);
                p[i].fd = conn_tcp();
                snprintf(guess, sizeof guess, "AUTH guess-%u\r\n", seq++);
                ck_assert_int_eq(h_send_str(p[i].fd, guess), 0);
            }
        }
    }
    uint64_t took = h_now_ms() - t0;
    for (int i = 0; i < GUESSERS; i++)
        close(p[i].fd);
    /* 10 to start with, 10 a second after that. */
    int allowed = 10 + (int)(10 * took / 1000) + 2;
    ck_assert_msg(checked <= allowed,
                  "%d tokens checked in %llu ms (budget %d; %d refused unchecked)", checked,
                  (unsigned long long)took, allowed, refused);
    ck_assert_msg(refused > 0, "no AUTH was refused (%d checked, %d answers)", checked, answers);
    /* The log: one line a second at most, not one per guess. */
    int logged = count_in_log("AUTH fail");
    ck_assert_msg(logged <= 3 + 3, "%d log lines for %d failed AUTHs in %llu ms", logged,
                  checked + refused, (unsigned long long)took);
    /* Once the guessing stops, the real token works again within a second or so. */
    uint64_t deadline = h_now_ms() + 3000 * h_slowdown();
    bool in = false;
    while (!in && h_now_ms() < deadline) {
        int fd = conn_tcp();
        in = h_send_str(fd, "AUTH " TOKEN "\r\n") == 0 &&
             h_read_reply(fd, line, sizeof line, 2000) >= 0 && strcmp(line, "OK") == 0;
        close(fd);
        if (!in)
            h_sleep_ms(100);
    }
    ck_assert_msg(in, "the real token is refused after the guessing stopped: '%s'", line);
}
END_TEST

/* ---- token files and reloads ----------------------------------------------- */

/* Rewrite the ini as start_with wrote it, with these server lines, and reload. */
static void rewrite_and_reload(const char *server)
{
    struct h_daemon_opts o = {.server = server,
                              .redis = "backend = memory\n",
                              .lock = "max_ttl_ms = 60000\nretry_count = 0\n"};
    ck_assert_int_eq(h_daemon_write_ini(&D, NULL, 0, &o), 0);
    reload_and_wait();
}

/* A reload that rotates the token: connections authenticated with the old
 * one must AUTH again; they keep their locks meanwhile. */
START_TEST(test_token_rotation_reauth)
{
    start_with_token(NULL, NULL);
    int a = authed_tcp();
    char line[256], id[64], request[128];
    req(a, "ACQUIRE rot 20000", line, sizeof line);
    ck_assert_msg(sscanf(line, "OK %63s", id) == 1, "ACQUIRE: '%s'", line);
    write_file(token_path, "n3w-T0ken\n", 0600);
    reload_and_wait();
    ck_assert(h_file_contains(D.log, "open connections must AUTH again"));
    req(a, "PING", line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "PING with the old token after the rotation: '%s'", line);
    snprintf(request, sizeof request, "EXTEND %s 20000", id);
    req(a, request, line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "EXTEND with the old token after the rotation: '%s'", line);
    req(a, "AUTH " TOKEN, line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "the old token still accepted: '%s'", line);
    req(a, "AUTH n3w-T0ken", line, sizeof line);
    ck_assert_str_eq(line, "OK");
    req(a, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    snprintf(request, sizeof request, "RELEASE %s", id);
    req(a, request, line, sizeof line);
    ck_assert_msg(strcmp(line, "OK") == 0, "the lock was not kept over the re-AUTH: '%s'", line);
    close(a);
}
END_TEST

/* A reload that turns AUTH on applies to the open connections; one that
 * turns it off lets the waiting ones in. */
START_TEST(test_auth_turned_on_and_off)
{
    start_with(NULL, NULL);
    int a = conn_tcp();
    char line[256], dir[H_PATH_MAX], server[H_PATH_MAX + 64];
    req(a, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    ck_assert_int_eq(h_mkdtemp("token", dir), 0);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    write_file(token_path, TOKEN "\n", 0600);
    snprintf(server, sizeof server, "auth_token_file = %s\nauth_timeout_ms = 0\n", token_path);
    rewrite_and_reload(server);
    req(a, "PING", line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "PING after AUTH was turned on: '%s'", line);
    int b = conn_tcp();
    req(b, "PING", line, sizeof line);
    ck_assert_msg(is_err(line, "AUTH"), "new connection: '%s'", line);
    req(a, "AUTH " TOKEN, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    req(a, "PING", line, sizeof line);
    ck_assert_str_eq(line, "PONG");
    rewrite_and_reload("");
    req(b, "PING", line, sizeof line);
    ck_assert_msg(strcmp(line, "PONG") == 0, "PING after AUTH was turned off: '%s'", line);
    close(a);
    close(b);
}
END_TEST

/* redlockd -t refuses a token no client could send, naming the file and
 * the byte's offset, and warns of a token file others can read. */
START_TEST(test_check_token_file)
{
    char dir[H_PATH_MAX], tok[H_PATH_MAX + 16], ini[H_PATH_MAX + 16], out[H_PATH_MAX + 16],
        text[H_PATH_MAX + 128];
    ck_assert_int_eq(h_mkdtemp("tcheck", dir), 0);
    snprintf(tok, sizeof tok, "%s/token", dir);
    snprintf(ini, sizeof ini, "%s/r.ini", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(text, sizeof text, "[server]\nauth_token_file = %s\n[redis]\nbackend = memory\n", tok);
    write_file(ini, text, 0600);
    char *const argv[] = {(char *)h_redlockd_bin(), "-t", "-c", ini, NULL};

    write_file(tok, "two words\n", 0600);
    ck_assert_int_eq(h_wait_exit(h_spawn(argv, out), 10000), 1);
    ck_assert_msg(h_file_contains(out, tok) && h_file_contains(out, "0x20 at offset 3"),
                  "-t on a token with a space: no error naming the file and offset");

    write_file(tok, "ok-token\n", 0644);
    ck_assert_int_eq(h_wait_exit(h_spawn(argv, out), 10000), 0);
    ck_assert_msg(h_file_contains(out, "readable by everyone"),
                  "-t on a 0644 token file: no warning");
    h_rmtree(dir);
}
END_TEST

/* ---- per-client shares of the shared limits ------------------------------- */

/* DETACHed locks count against max_locks_per_client of the connection that
 * took them, while it is open (before, one connection took 100,000). */
START_TEST(test_detach_counts_against_creator)
{
    start_with("max_locks_per_client = 5\n", NULL);
    int a = h_connect_unix(D.sock), b = h_connect_unix(D.sock);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(b, 0);
    char line[256], request[128], first[64] = "";
    for (int i = 0; i < 3; i++) {
        snprintf(request, sizeof request, "ACQUIRE det%d 20000 DETACH", i);
        req(a, request, line, sizeof line);
        ck_assert_msg(starts(line, "OK "), "%s: '%s'", request, line);
        if (i == 0)
            sscanf(line, "OK %63s", first);
    }
    req(a, "ACQUIRE bound1 20000", line, sizeof line); /* connection-bound ones share the count */
    ck_assert_msg(starts(line, "OK "), "bound1: '%s'", line);
    req(a, "ACQUIRE det3 20000 DETACH", line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "det3: '%s'", line);
    req(a, "ACQUIRE det4 20000 DETACH", line, sizeof line);
    ck_assert_msg(is_err(line, "LIMIT") && strstr(line, "max_locks_per_client"),
                  "a sixth lock (DETACH) on one connection: '%s'", line);
    /* Released from another connection: a slot comes back to its creator. */
    snprintf(request, sizeof request, "RELEASE %s", first);
    req(b, request, line, sizeof line);
    ck_assert_str_eq(line, "OK");
    req(a, "ACQUIRE det4 20000 DETACH", line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "det4 after a release: '%s'", line);
    /* Once its creator closes, a DETACHed lock lives on to its TTL and counts
     * against nobody. */
    close(a);
    req(b, "ACQUIRE det1 1000", line, sizeof line);
    ck_assert_msg(is_err(line, "BUSY"), "a DETACHed lock went with its creator: '%s'", line);
    for (int i = 0; i < 5; i++) {
        snprintf(request, sizeof request, "ACQUIRE more%d 20000 DETACH", i);
        req(b, request, line, sizeof line);
        ck_assert_msg(starts(line, "OK "), "%s: '%s'", request, line);
    }
    close(b);
}
END_TEST

/* One connection may hold at most max_waiters_per_client of the shared
 * max_waiters, so it cannot lock an unrelated client out of waiting. */
START_TEST(test_waiters_per_client)
{
    start_with("max_waiters = 4\nmax_waiters_per_client = 3\n", NULL);
    int h = h_connect_unix(D.sock), t = h_connect_unix(D.sock), u = h_connect_unix(D.sock);
    ck_assert(h >= 0 && t >= 0 && u >= 0);
    char line[256];
    req(h, "ACQUIRE w1,w2,w3,w4,w5 20000", line, sizeof line);
    ck_assert_msg(starts(line, "OK "), "holder: '%s'", line);
    /* The tenant queues five waits; the last two are over its share. */
    ck_assert_int_eq(h_send_str(t, "ACQUIRE w1 5000 WAIT 1500\r\nACQUIRE w2 5000 WAIT 1500\r\n"
                                   "ACQUIRE w3 5000 WAIT 1500\r\nACQUIRE w4 5000 WAIT 1500\r\n"
                                   "ACQUIRE w4 5000 WAIT 1500\r\n"),
                     0);
    ck_assert(!h_readable(t, 200));
    /* An unrelated client may still wait. */
    raw_send(u, "ACQUIRE w5 5000 WAIT 10000");
    if (h_readable(u, 500)) {
        ck_assert_int_ge(h_read_reply(u, line, sizeof line, 1000), 0);
        ck_abort_msg("an unrelated client could not wait: '%s'", line);
    }
    for (int i = 0; i < 5; i++) {
        ck_assert_int_ge(h_read_reply(t, line, sizeof line, 5000), 0);
        if (i < 3)
            ck_assert_msg(is_err(line, "BUSY"), "wait %d: '%s'", i + 1, line);
        else
            ck_assert_msg(is_err(line, "LIMIT") && strstr(line, "max_waiters_per_client"),
                          "wait %d: '%s'", i + 1, line);
    }
    /* The tenant's slots come back when its waits end. */
    ck_assert_int_eq(h_send_str(t, "ACQUIRE w1 5000 WAIT 300\r\n"), 0);
    ck_assert_int_ge(h_read_reply(t, line, sizeof line, 5000), 0);
    ck_assert_msg(is_err(line, "BUSY"), "a wait after the others ended: '%s'", line);
    close(h);
    ck_assert_int_ge(h_read_reply(u, line, sizeof line, 5000), 0);
    ck_assert_msg(starts(line, "OK "), "the unrelated waiter: '%s'", line);
    close(t);
    close(u);
}
END_TEST

int main(void)
{
    h_init();
    const struct test_group groups[] = {
        {"stall",
         {test_stalled_reader_closed, test_slow_reader_kept_unix, test_slow_reader_kept_tcp, NULL}},
        {"keepalive", {test_keepalive_on_accepted, NULL}},
        {"preauth", {test_auth_deadline_frees_slots, test_preauth_buffers_small, NULL}},
        {"guessing", {test_auth_guessing_budget, NULL}},
        {"tokens",
         {test_token_rotation_reauth, test_auth_turned_on_and_off, test_check_token_file, NULL}},
        {"shares", {test_detach_counts_against_creator, test_waiters_per_client, NULL}},
    };
    return run_test_groups("hostile_clients", groups, sizeof groups / sizeof groups[0], setup,
                           teardown);
}
