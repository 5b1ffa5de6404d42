/*
 * redlock.c - libredlock, the blocking client of redlockd. See redlock.h.
 *
 * One request at a time: a call writes its line, then reads lines until
 * its reply arrives; EVENT lines read on the way are dispatched to the
 * event handler (and remembered for the redlock_using() guard).
 */
#include "redlock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define CLIENT_MAX_LINE 65536 /* longest reply line accepted */
#define CLIENT_ERR_MAX 256
#define READ_CHUNK 4096

struct redlock_client {
    int fd;
    uint32_t timeout_ms; /* 0: wait for ever */
    char *in;            /* bytes read, not yet consumed */
    size_t in_len, in_cap;
    int errcode;
    char errstr[CLIENT_ERR_MAX];
    redlock_event_fn *on_event;
    void *event_ud;
    char lost_id[REDLOCK_LOCK_ID_LEN + 1]; /* the guard's lock, watched for LOST */
    bool lost;                             /* a LOST for lost_id arrived */
    bool broken;                           /* I/O failed: every call fails from now on */
};

static int set_error(struct redlock_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_error(struct redlock_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    c->errcode = code;
    if (code == REDLOCK_ERR_IO || code == REDLOCK_ERR_TIMEOUT || code == REDLOCK_ERR_PROTOCOL) c->broken = true;
    return code;
}

const char *redlock_status_name(int status)
{
    switch (status) {
    case REDLOCK_OK: return "OK";
    case REDLOCK_ERR_BUSY: return "BUSY";
    case REDLOCK_ERR_NOQUORUM: return "NOQUORUM";
    case REDLOCK_ERR_NOTHELD: return "NOTHELD";
    case REDLOCK_ERR_BADREQ: return "BADREQ";
    case REDLOCK_ERR_TOOLONG: return "TOOLONG";
    case REDLOCK_ERR_LIMIT: return "LIMIT";
    case REDLOCK_ERR_AUTH: return "AUTH";
    case REDLOCK_ERR_SHUTDOWN: return "SHUTDOWN";
    case REDLOCK_ERR_INTERNAL: return "INTERNAL";
    case REDLOCK_ERR_IO: return "IO";
    case REDLOCK_ERR_PROTOCOL: return "PROTOCOL";
    case REDLOCK_ERR_ARG: return "ARG";
    case REDLOCK_ERR_TIMEOUT: return "TIMEOUT";
    case REDLOCK_ERR_LOST: return "LOST";
    }
    return "UNKNOWN";
}

static int status_of(enum proto_err err)
{
    switch (err) {
    case PROTO_ERR_BUSY: return REDLOCK_ERR_BUSY;
    case PROTO_ERR_NOQUORUM: return REDLOCK_ERR_NOQUORUM;
    case PROTO_ERR_NOTHELD: return REDLOCK_ERR_NOTHELD;
    case PROTO_ERR_BADREQ: return REDLOCK_ERR_BADREQ;
    case PROTO_ERR_TOOLONG: return REDLOCK_ERR_TOOLONG;
    case PROTO_ERR_LIMIT: return REDLOCK_ERR_LIMIT;
    case PROTO_ERR_AUTH: return REDLOCK_ERR_AUTH;
    case PROTO_ERR_SHUTDOWN: return REDLOCK_ERR_SHUTDOWN;
    default: return REDLOCK_ERR_INTERNAL;
    }
}

/* ---- connecting ---- */

static int connect_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "%s: socket path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int connect_tcp(const char *addr, char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *close_br = strchr(addr, ']');
        if (close_br == NULL || close_br[1] != ':' || (size_t)(close_br - addr - 1) >= sizeof host) {
            snprintf(err, errlen, "%s: want [v6addr]:port", addr);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(close_br - addr - 1), addr + 1);
        port = close_br + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
            snprintf(err, errlen, "%s: want host:port or a socket path", addr);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    int saved = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        saved = errno;
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", addr, strerror(saved));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

struct redlock_client *redlock_connect(const char *addr, char *err, size_t errlen)
{
    char dummy[8];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (addr == NULL || addr[0] == '\0') addr = getenv("REDLOCK_ADDR");
    if (addr == NULL || addr[0] == '\0') addr = REDLOCK_DEFAULT_ADDR;
    int fd = strchr(addr, '/') ? connect_unix(addr, err, errlen) : connect_tcp(addr, err, errlen);
    if (fd < 0) return NULL;
    struct redlock_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = fd;
    return c;
}

void redlock_close(struct redlock_client *c)
{
    if (c == NULL) return;
    if (c->fd >= 0) close(c->fd);
    free(c->in);
    free(c);
}

void redlock_set_timeout(struct redlock_client *c, uint32_t timeout_ms)
{
    c->timeout_ms = timeout_ms;
}
int redlock_fd(const struct redlock_client *c)
{
    return c->fd;
}
const char *redlock_errstr(const struct redlock_client *c)
{
    return c->errstr;
}
int redlock_errcode(const struct redlock_client *c)
{
    return c->errcode;
}

void redlock_set_event_handler(struct redlock_client *c, redlock_event_fn *fn, void *userdata)
{
    c->on_event = fn;
    c->event_ud = userdata;
}

/* ---- I/O ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait until fd is ready for events, at most timeout_ms (-1: for ever).
 * Returns 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n >= 0) return n;
        if (errno != EINTR) return -1;
    }
}

static int write_all(struct redlock_client *c, const char *buf, size_t len)
{
    uint64_t deadline = c->timeout_ms ? mono_ms() + c->timeout_ms : 0;
    while (len > 0) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int left = deadline ? (int)(deadline > mono_ms() ? deadline - mono_ms() : 0) : -1;
            if (wait_fd(c->fd, POLLOUT, left) <= 0) return set_error(c, REDLOCK_ERR_TIMEOUT, "write timed out");
            continue;
        }
        return set_error(c, REDLOCK_ERR_IO, "write: %s", strerror(errno));
    }
    return REDLOCK_OK;
}

/*
 * Read until a whole line is buffered, waiting at most timeout_ms
 * (-1: for ever, 0: only what is already there or readable now).
 * Returns 1 with *line (NUL-terminated in the buffer, valid until the
 * next read) and *consumed set, 0 when none arrived in time, or a
 * negative status.
 */
static int read_line(struct redlock_client *c, int timeout_ms, char **line, size_t *consumed)
{
    uint64_t deadline = timeout_ms > 0 ? mono_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        size_t len;
        enum proto_frame_status st = proto_frame(c->in, c->in_len, CLIENT_MAX_LINE, &len, consumed);
        if (st == PROTO_FRAME_LINE) {
            c->in[len] = '\0'; /* overwrites the '\r' or '\n' */
            *line = c->in;
            return 1;
        }
        if (st == PROTO_FRAME_TOOLONG) return set_error(c, REDLOCK_ERR_PROTOCOL, "reply line too long");
        int left = timeout_ms < 0    ? -1
                   : timeout_ms == 0 ? 0
                                     : (int)(deadline > mono_ms() ? deadline - mono_ms() : 0);
        int ready = wait_fd(c->fd, POLLIN, left);
        if (ready < 0) return set_error(c, REDLOCK_ERR_IO, "poll: %s", strerror(errno));
        if (ready == 0) return 0;
        if (c->in_cap - c->in_len < READ_CHUNK) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 2 * READ_CHUNK;
            char *p = realloc(c->in, cap);
            if (p == NULL) return set_error(c, REDLOCK_ERR_IO, "out of memory");
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
        if (n == 0) return set_error(c, REDLOCK_ERR_IO, "connection closed by redlockd");
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return set_error(c, REDLOCK_ERR_IO, "read: %s", strerror(errno));
        }
        c->in_len += (size_t)n;
    }
}

static void consume(struct redlock_client *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Hand an EVENT line to the handler. */
static void dispatch_event(struct redlock_client *c, const struct proto_reply *r)
{
    struct redlock_event ev = {
        .name = r->ntokens > 0 ? r->tokens[0] : "",
        .lock_id = r->ntokens > 1 ? r->tokens[1] : "",
        .reason = r->ntokens > 2 ? r->tokens[2] : "",
    };
    if (strcmp(ev.name, "LOST") == 0 && c->lost_id[0] != '\0' && strcmp(ev.lock_id, c->lost_id) == 0)
        c->lost = true;
    if (c->on_event != NULL) c->on_event(&ev, c->event_ud);
}

/*
 * Read the next reply (not an event). Events met on the way are
 * dispatched. For a DATA block, the whole block is copied into block
 * (lines joined by '\n') when block is not NULL. Returns REDLOCK_OK with
 * *r parsed (its strings live in line_copy), or a negative status.
 */
static int read_reply(struct redlock_client *c, struct proto_reply *r, char *line_copy, size_t copy_len,
                      char *block, size_t block_len)
{
    for (;;) {
        char *line;
        size_t consumed;
        int rc = read_line(c, c->timeout_ms ? (int)c->timeout_ms : -1, &line, &consumed);
        if (rc == 0) return set_error(c, REDLOCK_ERR_TIMEOUT, "no reply within %u ms", c->timeout_ms);
        if (rc < 0) return rc;
        snprintf(line_copy, copy_len, "%s", line);
        consume(c, consumed);
        proto_parse_reply(line_copy, r);
        if (r->kind == PROTO_REPLY_EVENT) {
            dispatch_event(c, r);
            continue;
        }
        if (r->kind != PROTO_REPLY_DATA) return REDLOCK_OK;
        uint64_t n;
        if (r->ntokens < 1 || !proto_parse_u64(r->tokens[0], strlen(r->tokens[0]), 100000, &n))
            return set_error(c, REDLOCK_ERR_PROTOCOL, "bad DATA header");
        size_t used = 0;
        if (block != NULL && block_len > 0) block[0] = '\0';
        for (uint64_t i = 0; i < n; i++) {
            rc = read_line(c, c->timeout_ms ? (int)c->timeout_ms : -1, &line, &consumed);
            if (rc == 0) return set_error(c, REDLOCK_ERR_TIMEOUT, "DATA block timed out");
            if (rc < 0) return rc;
            if (block != NULL && used + 1 < block_len) {
                int w = snprintf(block + used, block_len - used, "%s%s", i ? "\n" : "", line);
                used += w > 0 ? (size_t)w : 0;
                if (used >= block_len) used = block_len - 1;
            }
            consume(c, consumed);
        }
        return REDLOCK_OK;
    }
}

/* Send one request line and read its reply. ERR replies become statuses. */
/* Write one request line with its CRLF, in one write. */
static int send_line(struct redlock_client *c, const char *line)
{
    if (c->broken) return set_error(c, REDLOCK_ERR_IO, "connection is unusable after an earlier error");
    size_t len = strlen(line);
    char *buf = malloc(len + 2);
    if (buf == NULL) return set_error(c, REDLOCK_ERR_IO, "out of memory");
    memcpy(buf, line, len);
    memcpy(buf + len, "\r\n", 2);
    int rc = write_all(c, buf, len + 2);
    free(buf);
    return rc;
}

static int roundtrip(struct redlock_client *c, const char *line, struct proto_reply *r, char *copy,
                     size_t copylen)
{
    int rc = send_line(c, line);
    if (rc != REDLOCK_OK) return rc;
    rc = read_reply(c, r, copy, copylen, NULL, 0);
    if (rc != REDLOCK_OK) return rc;
    if (r->kind == PROTO_REPLY_ERR) {
        int st = status_of(r->err);
        set_error(c, st, "%s %s", r->ntokens > 0 ? r->tokens[0] : "ERR", r->text ? r->text : "");
        if (st == REDLOCK_ERR_TOOLONG) c->broken = true;
        return st;
    }
    if (r->kind == PROTO_REPLY_BAD) return set_error(c, REDLOCK_ERR_PROTOCOL, "unexpected reply '%.64s'", copy);
    c->errcode = REDLOCK_OK;
    c->errstr[0] = '\0';
    return REDLOCK_OK;
}

/* ---- requests ---- */

int redlock_ping(struct redlock_client *c)
{
    struct proto_reply r;
    char copy[PROTO_REPLY_MAX];
    int rc = roundtrip(c, "PING", &r, copy, sizeof copy);
    if (rc == REDLOCK_OK && r.kind != PROTO_REPLY_PONG)
        return set_error(c, REDLOCK_ERR_PROTOCOL, "PING answered '%.64s'", copy);
    return rc;
}

int redlock_auth(struct redlock_client *c, const char *token)
{
    if (token == NULL || token[0] == '\0' || strpbrk(token, " \t\r\n") != NULL)
        return set_error(c, REDLOCK_ERR_ARG, "a token is one word");
    char line[600];
    if ((size_t)snprintf(line, sizeof line, "AUTH %s", token) >= sizeof line)
        return set_error(c, REDLOCK_ERR_ARG, "token too long");
    struct proto_reply r;
    char copy[PROTO_REPLY_MAX];
    int rc = roundtrip(c, line, &r, copy, sizeof copy);
    memset(line, 0, sizeof line);
    return rc;
}

int redlock_auth_file(struct redlock_client *c, const char *path)
{
    if (path == NULL || path[0] == '\0') path = getenv(REDLOCK_TOKEN_FILE_ENV);
    if (path == NULL || path[0] == '\0') return REDLOCK_OK;
    FILE *f = fopen(path, "re");
    if (f == NULL) return set_error(c, REDLOCK_ERR_ARG, "token file %.150s: %s", path, strerror(errno));
    char buf[600];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    int rc;
    if (buf[0] == '\0') rc = set_error(c, REDLOCK_ERR_ARG, "token file %.150s: empty first line", path);
    else rc = redlock_auth(c, buf);
    volatile char *p = buf;
    for (size_t i = 0; i < sizeof buf; i++) p[i] = 0;
    return rc;
}

/* Fill *lock from "OK <id> <validity> [<fence>]". */
static int lock_from_reply(struct redlock_client *c, const struct proto_reply *r, struct redlock_lock *lock)
{
    uint64_t validity, fence = 0;
    if (r->kind != PROTO_REPLY_OK || r->ntokens < 2 ||
        !proto_valid_lock_id(r->tokens[0], strlen(r->tokens[0])) ||
        !proto_parse_u64(r->tokens[1], strlen(r->tokens[1]), UINT64_MAX, &validity) ||
        (r->ntokens > 2 && !proto_parse_u64(r->tokens[2], strlen(r->tokens[2]), UINT64_MAX, &fence)))
        return set_error(c, REDLOCK_ERR_PROTOCOL, "malformed lock reply");
    if (lock != NULL) {
        memcpy(lock->id, r->tokens[0], REDLOCK_LOCK_ID_LEN);
        lock->id[REDLOCK_LOCK_ID_LEN] = '\0';
        lock->validity_ms = validity;
        lock->fence = fence;
    }
    return REDLOCK_OK;
}

int redlock_acquire(struct redlock_client *c, const char *resources, const struct redlock_acquire_opts *opts,
                    struct redlock_lock *lock)
{
    static const struct redlock_acquire_opts none;
    if (opts == NULL) opts = &none;
    if (resources == NULL || resources[0] == '\0' || strpbrk(resources, " \t\r\n") != NULL)
        return set_error(c, REDLOCK_ERR_ARG, "resources: one or more names separated by commas");
    if (opts->owner != NULL && strpbrk(opts->owner, " \t\r\n") != NULL)
        return set_error(c, REDLOCK_ERR_ARG, "owner: one word");
    size_t cap = strlen(resources) + (opts->owner ? strlen(opts->owner) : 0) + 160;
    char *line = malloc(cap);
    if (line == NULL) return set_error(c, REDLOCK_ERR_IO, "out of memory");
    size_t n = (size_t)snprintf(line, cap, "ACQUIRE %s", resources);
    if (opts->ttl_ms) n += (size_t)snprintf(line + n, cap - n, " %u", opts->ttl_ms);
    if (opts->wait_ms == REDLOCK_NOWAIT) n += (size_t)snprintf(line + n, cap - n, " WAIT 0");
    else if (opts->wait_ms) n += (size_t)snprintf(line + n, cap - n, " WAIT %u", opts->wait_ms);
    if (opts->autoextend) n += (size_t)snprintf(line + n, cap - n, " AUTOEXTEND");
    if (opts->maxhold_ms) n += (size_t)snprintf(line + n, cap - n, " MAXHOLD %u", opts->maxhold_ms);
    if (opts->detach) n += (size_t)snprintf(line + n, cap - n, " DETACH");
    if (opts->priority) n += (size_t)snprintf(line + n, cap - n, " PRIORITY %u", opts->priority);
    if (opts->shared) n += (size_t)snprintf(line + n, cap - n, " SHARED");
    if (opts->permits) n += (size_t)snprintf(line + n, cap - n, " PERMITS %u", opts->permits);
    if (opts->owner) snprintf(line + n, cap - n, " OWNER %s", opts->owner);
    struct proto_reply r;
    char copy[PROTO_REPLY_MAX];
    int rc = roundtrip(c, line, &r, copy, sizeof copy);
    free(line);
    if (rc != REDLOCK_OK) return rc;
    return lock_from_reply(c, &r, lock);
}

static int check_id(struct redlock_client *c, const char *id)
{
    if (id == NULL || !proto_valid_lock_id(id, strlen(id)))
        return set_error(c, REDLOCK_ERR_ARG, "a lock id is 32 lowercase hex digits");
    return REDLOCK_OK;
}

int redlock_extend(struct redlock_client *c, const char *lock_id, uint32_t ttl_ms, struct redlock_lock *lock)
{
    if (check_id(c, lock_id) != REDLOCK_OK) return c->errcode;
    char line[96];
    if (ttl_ms) snprintf(line, sizeof line, "EXTEND %s %u", lock_id, ttl_ms);
    else snprintf(line, sizeof line, "EXTEND %s", lock_id);
    struct proto_reply r;
    char copy[PROTO_REPLY_MAX];
    int rc = roundtrip(c, line, &r, copy, sizeof copy);
    if (rc != REDLOCK_OK) return rc;
    return lock_from_reply(c, &r, lock);
}

int redlock_release(struct redlock_client *c, const char *lock_id)
{
    if (check_id(c, lock_id) != REDLOCK_OK) return c->errcode;
    char line[64];
    snprintf(line, sizeof line, "RELEASE %s", lock_id);
    struct proto_reply r;
    char copy[PROTO_REPLY_MAX];
    return roundtrip(c, line, &r, copy, sizeof copy);
}

int redlock_command(struct redlock_client *c, const char *line, char *reply, size_t replylen)
{
    if (line == NULL || strpbrk(line, "\r\n") != NULL)
        return set_error(c, REDLOCK_ERR_ARG, "one line, no line breaks");
    int rc = send_line(c, line);
    if (rc != REDLOCK_OK) return rc;
    struct proto_reply r;
    char copy[CLIENT_MAX_LINE];
    char *block = reply;
    rc = read_reply(c, &r, copy, sizeof copy, block, replylen);
    if (rc != REDLOCK_OK) return rc;
    if (r.kind != PROTO_REPLY_DATA && reply != NULL && replylen > 0) {
        /* proto_parse_reply cut copy into tokens: rebuild the line from them. */
        size_t used = 0;
        const char *first = r.kind == PROTO_REPLY_OK     ? "OK"
                            : r.kind == PROTO_REPLY_PONG ? "PONG"
                            : r.kind == PROTO_REPLY_ERR  ? "ERR"
                                                         : copy;
        used += (size_t)snprintf(reply, replylen, "%s", first);
        for (size_t i = 0; i < r.ntokens && used < replylen; i++)
            used += (size_t)snprintf(reply + used, replylen - used, " %s", r.tokens[i]);
        if (r.kind == PROTO_REPLY_ERR && r.text && r.text[0] && used < replylen)
            snprintf(reply + used, replylen - used, " %s", r.text);
    }
    return REDLOCK_OK;
}

int redlock_poll_events(struct redlock_client *c, uint32_t timeout_ms)
{
    if (c->broken) return set_error(c, REDLOCK_ERR_IO, "connection is unusable after an earlier error");
    int handled = 0;
    int wait = (int)timeout_ms;
    for (;;) {
        char *line;
        size_t consumed;
        int rc = read_line(c, wait, &line, &consumed);
        if (rc < 0) return rc;
        if (rc == 0) return handled;
        char copy[PROTO_REPLY_MAX];
        snprintf(copy, sizeof copy, "%s", line);
        struct proto_reply r;
        proto_parse_reply(copy, &r);
        if (r.kind != PROTO_REPLY_EVENT) return set_error(c, REDLOCK_ERR_PROTOCOL, "a reply nobody asked for");
        consume(c, consumed);
        dispatch_event(c, &r);
        handled++;
        wait = 0; /* after the first, take only what is already there */
    }
}

/* ---- redlock_using ---- */

struct redlock_guard {
    struct redlock_client *client;
    struct redlock_lock lock;
};

bool redlock_guard_held(struct redlock_guard *g)
{
    if (!g->client->lost && !g->client->broken) redlock_poll_events(g->client, 0);
    return !g->client->lost && !g->client->broken;
}

const struct redlock_lock *redlock_guard_lock(const struct redlock_guard *g)
{
    return &g->lock;
}

int redlock_using(struct redlock_client *c, const char *resources, const struct redlock_acquire_opts *opts,
                  redlock_using_fn *fn, void *userdata)
{
    struct redlock_acquire_opts o = opts ? *opts : (struct redlock_acquire_opts){0};
    o.autoextend = true;
    o.detach = false;
    struct redlock_guard g = {.client = c};
    int rc = redlock_acquire(c, resources, &o, &g.lock);
    if (rc != REDLOCK_OK) return rc;
    memcpy(c->lost_id, g.lock.id, sizeof c->lost_id);
    c->lost = false;
    int result = fn(&g, userdata);
    bool held = redlock_guard_held(&g);
    c->lost_id[0] = '\0';
    if (!held) {
        c->lost = false;
        set_error(c, REDLOCK_ERR_LOST, "lock %.8s was lost while the callback ran", g.lock.id);
        return REDLOCK_ERR_LOST;
    }
    rc = redlock_release(c, g.lock.id);
    if (rc != REDLOCK_OK && rc != REDLOCK_ERR_NOTHELD) return rc;
    return result;
}
