/*
 * conn.c - client connections. See conn.h.
 *
 * Reading: bytes go into a per-connection buffer that exists only while a
 * partial line is pending (idle connections hold no buffer). At most
 * REQS_PER_EVENT lines are handled per loop turn: the rest wait for the
 * next turn (the pause timer, set to 0 ms, fires after the next epoll), so
 * one client's pipeline cannot starve the others, the masters' replies or
 * the signals. While a client has too many unanswered requests or too much
 * unread output, it is not read from and its buffered lines wait
 * (backpressure) until on_write sees both fall to half their limit; past
 * max_output_bytes of unread output it is closed. The read event is
 * activated by hand (resume_input) only when no limit is reached, so each
 * such activation handles a line: nothing spins without progress.
 *
 * Draining (after QUIT, TOOLONG or too many AUTH failures): no more lines
 * are handled, but the socket is still read, and what arrives is dropped,
 * so that it does not stay readable for ever and the client's close is
 * seen at once: its waiters leave their queues and its locks are released.
 *
 * Writing: replies are appended in request order to the connection's own
 * output buffer, which is kept while it stays small (no allocation per
 * reply); all of a loop turn's output for a connection goes out in one
 * write from the write callback, which the first reply of the turn activates.
 */
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "auth.h"
#include "info.h"
#include "inspect.h"
#include "lockmgr.h"
#include "locks.h"
#include "log.h"
#include "redlock_engine.h"
#include "server.h"
#include "util.h"

#define REQS_PER_EVENT 64         /* lines handled per read event before yielding */
#define READ_CHUNK 16384          /* bytes read per read() */
#define MAX_PENDING_REQUESTS 1024 /* unanswered requests before we stop reading */
/* When a majority of masters owes more than [redis] max_backlog replies,
 * clients are not read for OVERLOAD_PAUSE_MS: a burst of 100k requests waits
 * in the sockets instead of in our memory (and hiredis'), and nothing is lost. */
#define OVERLOAD_PAUSE_MS 1
#define AUTH_FAIL_DELAY_MS 250 /* a failed AUTH stops reading the client this long */
#define AUTH_MAX_FAILURES 10   /* then it is disconnected */

static void on_read(evutil_socket_t fd, short what, void *arg);
static struct request *request_alloc(void);
static void request_free(struct request *req);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_pause_end(evutil_socket_t fd, short what, void *arg);
static void on_stall_check(evutil_socket_t fd, short what, void *arg);
static void on_auth_deadline(evutil_socket_t fd, short what, void *arg);
static uint32_t line_limit(const struct conn *c);
static void handle_line(struct conn *c, const char *line, size_t len);
static size_t unwritten(const struct conn *c);
static void owner_reply(struct lock_request *r, const char *line, size_t len);
static void owner_push_event(struct lock_owner *o, const char *line, size_t len);

/* How the lock core answers this module's requests and reaches its
 * connections (owner.h). */
static const struct lock_owner_ops conn_owner_ops = {
    .reply = owner_reply,
    .push_event = owner_push_event,
};

struct conn *conn_new(struct server *s, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->server = s;
    c->id = ++s->next_conn_id;
    c->fd = fd;
    c->state = CONN_OPEN;
    c->authed = s->auth_token == NULL;
    TAILQ_INIT(&c->pending);
    lock_owner_init(&c->lo, &conn_owner_ops);
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE, on_write, c);
    evtimer_assign(&c->pause, s->base, on_pause_end, c);
    evtimer_assign(&c->stall, s->base, on_stall_check, c);
    evtimer_assign(&c->auth_deadline, s->base, on_auth_deadline, c);
    if (!c->authed && s->cfg.auth_timeout_ms > 0) {
        uint32_t ms = s->cfg.auth_timeout_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(&c->auth_deadline, &tv);
    }
    event_add(&c->rev, NULL);
    c->reading = true;
    TAILQ_INSERT_TAIL(&s->conns, c, link);
    s->nconns++;
    s->stats.connections_total++;
    return c;
}

static void set_reading(struct conn *c, bool on)
{
    if (c->reading == on || c->state != CONN_OPEN) return;
    if (on) event_add(&c->rev, NULL);
    else event_del(&c->rev);
    c->reading = on;
}

/* Too many unanswered requests or too much unread output: the connection
 * must not be read (nor its buffered lines handled) until on_write sees
 * both fall to half their limit. */
static bool input_blocked(const struct conn *c)
{
    return c->npending >= MAX_PENDING_REQUESTS || unwritten(c) > c->server->cfg.max_output_bytes / 2;
}

/* Reading was paused: handle lines that arrived meanwhile. */
static void resume_input(struct conn *c)
{
    if (c->in_len == 0) return;
    c->backlog = true;
    event_active(&c->rev, EV_READ, 1);
}

static void schedule_flush(struct conn *c)
{
    if (c->flush_scheduled || c->state == CONN_CLOSED) return;
    c->flush_scheduled = true;
    event_active(&c->wev, EV_WRITE, 1);
}

/* QUIT, TOOLONG or the last allowed AUTH failure: handle no more lines
 * (the caller drops the buffered ones), write the replies still owed and
 * close (on_write). The read event stays armed so that on_read drops what
 * arrives and sees the client's close. */
static void start_draining(struct conn *c)
{
    c->state = CONN_DRAINING;
    c->backlog = false;
    evtimer_del(&c->pause);
    if (!c->reading) {
        event_add(&c->rev, NULL);
        c->reading = true;
    }
    schedule_flush(c);
}

void conn_close(struct conn *c, const char *why)
{
    struct server *s = c->server;
    if (c->state == CONN_CLOSED) return;
    log_debug("msg=\"client closed\" conn=%llu why=\"%s\" locks=%u", (unsigned long long)c->id, why,
              c->lo.nlocks);
    event_del(&c->rev);
    event_del(&c->wev);
    evtimer_del(&c->pause);
    evtimer_del(&c->stall);
    evtimer_del(&c->auth_deadline);
    close(c->fd);
    c->fd = -1;
    c->state = CONN_CLOSED;
    struct request *req;
    while ((req = TAILQ_FIRST(&c->pending)) != NULL) {
        TAILQ_REMOVE(&c->pending, req, link);
        if (!req->done && req->verb == PROTO_VERB_ACQUIRE) {
            mgr_cancel_acquire(s, &req->lr);
        } else if (!req->done) {
            /* An unanswered EXTEND or RELEASE has its op in flight: the op's
             * completion frees it (conn_request_done on an orphan). */
            req->conn = NULL;
            req->lr.owner = NULL;
            TAILQ_INSERT_TAIL(&s->orphans, req, link);
            continue;
        }
        request_free(req);
    }
    c->npending = 0;
    mgr_conn_closed(s, &c->lo, c->quit);
    TAILQ_REMOVE(&s->conns, c, link);
    TAILQ_INSERT_TAIL(&s->closed, c, link);
    s->nconns--;
    event_active(s->reaper, EV_TIMEOUT, 1);
}

void conn_free_orphans(struct server *s)
{
    struct request *req;
    while ((req = TAILQ_FIRST(&s->orphans)) != NULL) {
        TAILQ_REMOVE(&s->orphans, req, link);
        request_free(req);
    }
}

void conn_reap_closed(struct server *s)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&s->closed)) != NULL) {
        TAILQ_REMOVE(&s->closed, c, link);
        free(c->out);
        free(c->in);
        free(c);
    }
}

/* ---- output ---- */

#define OUT_MIN_CAP 128   /* most replies are one line of under 80 bytes */
#define OUT_KEEP_CAP 4096 /* a drained buffer larger than this is freed */

static size_t unwritten(const struct conn *c)
{
    return c->out_len - c->out_off;
}

/* Append to the output buffer; on failure out_failed is set and the flush closes. */
static void out_add(struct conn *c, const char *line, size_t len)
{
    if (c->out_failed) return;
    if (c->out_cap - c->out_len < len && c->out_off > 0) { /* reuse the written front */
        memmove(c->out, c->out + c->out_off, unwritten(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_cap - c->out_len < len) {
        size_t cap = c->out_cap ? c->out_cap : OUT_MIN_CAP;
        while (cap - c->out_len < len) cap *= 2;
        char *p = realloc(c->out, cap);
        if (p == NULL) { /* closed by the flush: not here, in the middle of the caller's work */
            c->out_failed = true;
            return;
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, line, len);
    c->out_len += len;
}

static void append_output(struct conn *c, const char *line, size_t len)
{
    if (c->state == CONN_CLOSED) return;
    out_add(c, line, len);
    schedule_flush(c);
}

/* Write what the socket takes; returns -1 on a write error (not EAGAIN). */
static int write_output(struct conn *c)
{
    while (unwritten(c) > 0) {
        ssize_t n = write(c->fd, c->out + c->out_off, unwritten(c));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        c->out_off += (size_t)n;
        c->written_total += (uint64_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > OUT_KEEP_CAP) { /* a burst (INFO, a deep pipeline) is over */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 0;
}

/* ---- stalled readers ---- */

/* How many of the bytes written the peer has taken: what went into the
 * socket minus what still waits in its send queue (SIOCOUTQ: unsent and
 * unacknowledged bytes for TCP, bytes the peer has not read for Unix). */
static uint64_t peer_consumed(const struct conn *c)
{
    int queued = 0;
    if (ioctl(c->fd, SIOCOUTQ, &queued) != 0 || queued < 0) queued = 0;
    return c->written_total - (uint64_t)queued;
}

static void stall_tick(struct conn *c)
{
    uint32_t ms = c->server->cfg.client_stall_ms / 4;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (ms == 0) tv.tv_usec = 1000;
    evtimer_add(&c->stall, &tv);
}

/* Called after each write with what is left unwritten. Output backs up in
 * our buffer only once the socket's queue is full: from then on the peer
 * must take some of it every client_stall_ms, or it is closed (and its
 * locks released). A slow reader that takes a little at a time is kept;
 * max_output_bytes bounds what it may leave unread. */
static void stall_watch(struct conn *c, size_t unwritten_len)
{
    if (unwritten_len == 0 || c->server->cfg.client_stall_ms == 0) {
        evtimer_del(&c->stall);
        return;
    }
    if (evtimer_pending(&c->stall, NULL)) return;
    c->stall_consumed = peer_consumed(c);
    c->stall_since_ms = now_ms();
    stall_tick(c);
}

static void on_stall_check(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    uint32_t limit = c->server->cfg.client_stall_ms;
    (void)fd;
    (void)what;
    if (c->state == CONN_CLOSED || unwritten(c) == 0 || limit == 0) return;
    uint64_t consumed = peer_consumed(c), now = now_ms();
    if (consumed != c->stall_consumed) {
        c->stall_consumed = consumed;
        c->stall_since_ms = now;
    } else if (now - c->stall_since_ms >= limit) {
        log_info("msg=\"client closed: reads none of its replies\" conn=%llu stalled_ms=%llu unwritten=%zu "
                 "locks=%u",
                 (unsigned long long)c->id, (unsigned long long)(now - c->stall_since_ms), unwritten(c),
                 c->lo.nlocks);
        c->server->stats.closed_stalled++;
        conn_close(c, "does not read its replies (client_stall_ms)");
        return;
    }
    stall_tick(c);
}

/* Reply now if nothing is queued ahead of this request, else queue the
 * reply behind the unanswered ones. */
static void reply_in_order(struct conn *c, enum proto_verb verb, const char *line, size_t len)
{
    if (TAILQ_EMPTY(&c->pending)) {
        append_output(c, line, len);
        return;
    }
    struct request *req = request_alloc();
    if (req == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    req->conn = c;
    req->server = c->server;
    req->verb = verb;
    req->lr.ops = &conn_owner_ops;
    req->lr.owner = &c->lo;
    TAILQ_INSERT_TAIL(&c->pending, req, link);
    c->npending++;
    conn_request_done(req, line, len);
}

static void reply_err(struct conn *c, enum proto_err err, const char *text)
{
    char line[REQUEST_REPLY_MAX];
    size_t n = proto_fmt_err(line, sizeof line, err, "%s", text);
    reply_in_order(c, PROTO_VERB_PING, line, n);
}

void conn_request_done(struct request *req, const char *line, size_t len)
{
    struct conn *c = req->conn;
    if (c == NULL) { /* orphaned: its connection is gone */
        TAILQ_REMOVE(&req->server->orphans, req, link);
        request_free(req);
        return;
    }
    if (req == TAILQ_FIRST(&c->pending)) {
        /* Nothing ahead of it: the reply goes straight out (the common case). */
        TAILQ_REMOVE(&c->pending, req, link);
        c->npending--;
        request_free(req);
        append_output(c, line, len); /* the write callback also sends any stored replies behind it */
        return;
    }
    /* Replies ahead of it are still missing: keep a copy until they come. */
    req->reply = malloc(len);
    if (req->reply == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    memcpy(req->reply, line, len);
    req->reply_len = len;
    req->done = true;
    schedule_flush(c);
}

void conn_push_event(struct conn *c, const char *line, size_t len)
{
    append_output(c, line, len);
}

static void owner_reply(struct lock_request *r, const char *line, size_t len)
{
    conn_request_done((struct request *)(void *)((char *)r - offsetof(struct request, lr)), line, len);
}

static void owner_push_event(struct lock_owner *o, const char *line, size_t len)
{
    conn_push_event(conn_of_owner(o), line, len);
}

void conn_shutdown_all(struct server *s)
{
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link)
    {
        struct request *req, *next;
        for (req = TAILQ_FIRST(&c->pending); req != NULL; req = next) {
            next = TAILQ_NEXT(req, link); /* answering the head removes it */
            if (req->verb == PROTO_VERB_ACQUIRE && !req->done) mgr_shutdown_request(s, &req->lr);
        }
        mgr_shutdown_owner(s, &c->lo);
    }
}

/* A reply that waited behind earlier ones goes out now. An OK with a
 * validity reports what is left of it now, not when it was decided: the
 * client counts it from when it reads the reply (PROTOCOL.md 8.2). */
static void write_stored_reply(struct conn *c, struct request *req)
{
    if (req->lr.validity_end_ms != 0) {
        char line[REQUEST_REPLY_MAX];
        uint64_t now = now_ms(), end = req->lr.validity_end_ms;
        size_t n =
            proto_refmt_ok_lock(line, sizeof line, req->reply, req->reply_len, end > now ? end - now : 0);
        if (n > 0) {
            out_add(c, line, n);
            return;
        }
    }
    out_add(c, req->reply, req->reply_len);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->server;
    (void)fd;
    (void)what;
    c->flush_scheduled = false;
    if (c->state == CONN_CLOSED) return;
    struct request *req;
    while ((req = TAILQ_FIRST(&c->pending)) != NULL && req->done) {
        TAILQ_REMOVE(&c->pending, req, link);
        c->npending--;
        write_stored_reply(c, req);
        request_free(req);
    }
    if (c->out_failed) {
        conn_close(c, "out of memory");
        return;
    }
    if (write_output(c) != 0) {
        conn_close(c, strerror(errno));
        return;
    }
    size_t len = unwritten(c);
    if (len > s->cfg.max_output_bytes) {
        c->server->stats.closed_output_full++;
        conn_close(c, "does not read its replies (max_output_bytes)");
        return;
    }
    if (len > 0) event_add(&c->wev, NULL);
    stall_watch(c, len);
    if (c->state == CONN_DRAINING && len == 0 && TAILQ_EMPTY(&c->pending)) {
        conn_close(c, "quit");
        return;
    }
    /* Resume reading once the client has caught up (hysteresis: half of
     * both limits, so a connection at a limit is not woken per reply). */
    if (!c->reading && !evtimer_pending(&c->pause, NULL) && len < s->cfg.max_output_bytes / 2 &&
        c->npending < MAX_PENDING_REQUESTS / 2) {
        set_reading(c, true);
        resume_input(c);
    }
}

/* ---- input ---- */

/* Every read lands here first; a connection keeps only what is left of a
 * partial line (or lines deferred for fairness), so an idle connection
 * holds no input buffer at all. */
static char read_buf[READ_CHUNK];

/* Append bytes to the connection's own input buffer. */
static int keep_input(struct conn *c, const char *bytes, size_t len)
{
    if (c->in_cap - c->in_len < len) {
        size_t cap = c->in_cap ? c->in_cap : 256;
        while (cap - c->in_len < len) cap *= 2;
        char *p = realloc(c->in, cap);
        if (p == NULL) return -1;
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, bytes, len);
    c->in_len += len;
    return 0;
}

/* Handle the complete lines at the start of buf, at most REQS_PER_EVENT.
 * Returns the bytes consumed; *more is set when it stopped before the end of
 * the complete lines (fairness, the pending limit, an AUTH or overload
 * pause): the caller keeps the rest and after_lines() decides when to go on.
 * A line that makes the connection drain (QUIT, TOOLONG) ends it: the caller
 * drops the rest. */
static size_t handle_lines(struct conn *c, const char *buf, size_t len, bool *more)
{
    struct server *s = c->server;
    size_t off = 0;
    int handled = 0;
    *more = false;
    while (c->state == CONN_OPEN) {
        if (evtimer_pending(&c->pause, NULL)) { /* AUTH delay, overload or next turn: on_pause_end goes on */
            *more = true;
            break;
        }
        if (pool_backlog(rl_engine_pool(s->rl)) > s->cfg.max_backlog) {
            s->stats.overload_pauses++;
            set_reading(c, false);
            struct timeval tv = {0, OVERLOAD_PAUSE_MS * 1000};
            evtimer_add(&c->pause, &tv);
            *more = true;
            break;
        }
        if (handled == REQS_PER_EVENT || c->npending >= MAX_PENDING_REQUESTS) {
            *more = true;
            break;
        }
        size_t line_len, consumed;
        enum proto_frame_status st = proto_frame(buf + off, len - off, line_limit(c), &line_len, &consumed);
        if (st == PROTO_FRAME_NEED_MORE) break;
        if (st == PROTO_FRAME_TOOLONG) {
            char text[80];
            s->stats.errors_toolong++;
            snprintf(text, sizeof text, "request line longer than %u bytes", line_limit(c));
            reply_err(c, PROTO_ERR_TOOLONG, text);
            if (c->state == CONN_OPEN) start_draining(c);
            return len;
        }
        handle_line(c, buf + off, line_len);
        off += consumed;
        handled++;
    }
    return off;
}

/* Handle what the connection has buffered; free the buffer once empty
 * (and at once if a line made the connection drain or close). */
static bool drain_kept_input(struct conn *c)
{
    bool more;
    size_t used = handle_lines(c, c->in, c->in_len, &more);
    if (c->state != CONN_OPEN) used = c->in_len; /* nothing after QUIT or TOOLONG is handled */
    if (used > 0) {
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
    if (c->in_len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    return more;
}

/* After a batch of lines: over a limit, stop reading (on_write resumes it,
 * and resume_input goes on with the buffered lines); lines left for
 * fairness are handled after the next epoll, when the 0 ms pause ends. */
static void after_lines(struct conn *c, bool more)
{
    c->backlog = false;
    if (c->state != CONN_OPEN) return;
    c->backlog = more && c->in_len > 0;
    if (input_blocked(c)) {
        set_reading(c, false);
        return;
    }
    if (c->backlog && c->reading && !evtimer_pending(&c->pause, NULL)) {
        static const struct timeval next_turn = {0, 0};
        evtimer_add(&c->pause, &next_turn);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    if (c->state == CONN_CLOSED) return;
    if (c->state == CONN_OPEN && c->backlog) { /* activated to continue with buffered lines, not to read */
        after_lines(c, drain_kept_input(c));
        return;
    }
    ssize_t n = read(fd, read_buf, sizeof read_buf);
    if (n == 0) {
        conn_close(c, "closed by client");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn_close(c, strerror(errno));
        return;
    }
    if (c->state == CONN_DRAINING) return; /* read only to see the close: the bytes are dropped */
    bool more;
    if (c->in_len == 0) {
        size_t used = handle_lines(c, read_buf, (size_t)n, &more);
        if (c->state == CONN_OPEN && used < (size_t)n &&
            keep_input(c, read_buf + used, (size_t)n - used) != 0) {
            conn_close(c, "out of memory");
            return;
        }
    } else {
        if (keep_input(c, read_buf, (size_t)n) != 0) {
            conn_close(c, "out of memory");
            return;
        }
        more = drain_kept_input(c);
    }
    after_lines(c, more);
}

/* ---- requests ---- */

/* Requests come and go with every ACQUIRE and RELEASE: keep freed ones
 * for reuse instead of a malloc/free pair per request. */
#define REQUEST_POOL_MAX 4096

static struct request *request_pool; /* linked through link.tqe_next */
static size_t request_pool_len;

static struct request *request_alloc(void)
{
    struct request *req = request_pool;
    if (req == NULL) return calloc(1, sizeof *req);
    request_pool = TAILQ_NEXT(req, link);
    request_pool_len--;
    memset(req, 0, sizeof *req);
    return req;
}

static void request_free(struct request *req)
{
    free(req->reply);
    if (request_pool_len >= REQUEST_POOL_MAX) {
        free(req);
        return;
    }
    TAILQ_NEXT(req, link) = request_pool;
    request_pool = req;
    request_pool_len++;
}

void conn_free_request_pool(void)
{
    while (request_pool != NULL) {
        struct request *next = TAILQ_NEXT(request_pool, link);
        free(request_pool);
        request_pool = next;
    }
    request_pool_len = 0;
}

/* INFO: rendered whole, then queued like any reply. */
static void reply_info(struct conn *c)
{
    struct evbuffer *tmp = evbuffer_new();
    if (tmp == NULL || info_render(c->server, tmp) != 0) {
        if (tmp) evbuffer_free(tmp);
        reply_err(c, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    size_t len = evbuffer_get_length(tmp);
    reply_in_order(c, PROTO_VERB_INFO, (const char *)evbuffer_pullup(tmp, -1), len);
    evbuffer_free(tmp);
}

/* LOCKS: rendered whole (bounded by LOCKS_MAX_BYTES), then queued like any reply. */
static void reply_locks(struct conn *c)
{
    struct evbuffer *tmp = evbuffer_new();
    if (tmp == NULL || locks_render(c->server, tmp) != 0) {
        if (tmp) evbuffer_free(tmp);
        reply_err(c, PROTO_ERR_INTERNAL, "out of memory");
        return;
    }
    size_t len = evbuffer_get_length(tmp);
    reply_in_order(c, PROTO_VERB_LOCKS, (const char *)evbuffer_pullup(tmp, -1), len);
    evbuffer_free(tmp);
}

/* A pause ended (AUTH delay, overload, or the 0 ms wait for the next loop
 * turn): read again and go on with the buffered lines, unless a limit was
 * reached meanwhile. */
static void on_pause_end(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state != CONN_OPEN) return;
    if (input_blocked(c)) { /* on_write resumes it once the client caught up */
        set_reading(c, false);
        return;
    }
    set_reading(c, true);
    resume_input(c);
}

/* ---- before AUTH ---- */

static uint32_t line_limit(const struct conn *c)
{
    uint32_t max = c->server->cfg.max_line_bytes;
    return !c->authed && max > PREAUTH_MAX_LINE ? PREAUTH_MAX_LINE : max;
}

static void on_auth_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->authed || c->state == CONN_CLOSED) return;
    c->server->stats.closed_auth_timeout++;
    conn_close(c, "did not authenticate in time (auth_timeout_ms)");
}

/* A request other than AUTH or QUIT on a connection that has not
 * authenticated: counted, and the one that uses up PREAUTH_MAX_REQUESTS
 * closes the connection once its reply is written. */
static void preauth_request(struct conn *c)
{
    if (++c->preauth_requests >= PREAUTH_MAX_REQUESTS) start_draining(c);
}

void conn_auth_changed(struct server *s)
{
    unsigned n = 0;
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link)
    {
        if (s->auth_token == NULL) {
            n += !c->authed;
            c->authed = true;
            evtimer_del(&c->auth_deadline);
        } else if (c->authed) {
            n++;
            c->authed = false;
            c->preauth_requests = 0;
        }
    }
    if (s->auth_token == NULL)
        log_info("msg=\"client AUTH turned off: every connection is let in\" connections=%u", n);
    else log_warn("msg=\"client token changed: open connections must AUTH again\" connections=%u", n);
}

/* AUTH: a wrong token is answered at once, but the client is not read from
 * for AUTH_FAIL_DELAY_MS, and dropped after AUTH_MAX_FAILURES. */
static void handle_auth(struct conn *c, const struct proto_request *pr)
{
    struct server *s = c->server;
    char line[16];
    if (s->auth_token == NULL) {
        reply_err(c, PROTO_ERR_AUTH, "authentication is not enabled on this daemon");
        return;
    }
    uint64_t now = now_ms();
    if (!auth_budget_allows(&s->auth_budget, s->cfg.max_auth_failures_per_s, now)) {
        /* Too many failures daemon-wide: not even checked, so guessing
         * from many connections gains nothing. */
        s->stats.auth_failures++;
        auth_budget_refuse(&s->auth_budget, now);
        c->authed = false;
        reply_err(c, PROTO_ERR_AUTH, "too many failed AUTH attempts on this daemon; try again later");
        start_draining(c);
        return;
    }
    if (auth_token_equal(s->auth_token, pr->token.ptr, pr->token.len)) {
        c->authed = true;
        evtimer_del(&c->auth_deadline);
        reply_in_order(c, PROTO_VERB_AUTH, line, proto_fmt_ok(line, sizeof line));
        return;
    }
    s->stats.auth_failures++;
    c->authed = false;
    auth_budget_fail(&s->auth_budget, now);
    reply_err(c, PROTO_ERR_AUTH, "invalid token");
    if (++c->auth_failures >= AUTH_MAX_FAILURES) {
        start_draining(c);
        return;
    }
    set_reading(c, false);
    struct timeval tv = {0, AUTH_FAIL_DELAY_MS * 1000};
    evtimer_add(&c->pause, &tv);
}

static struct request *request_new(struct conn *c, enum proto_verb verb)
{
    struct request *req = request_alloc();
    if (req == NULL) return NULL;
    req->conn = c;
    req->server = c->server;
    req->verb = verb;
    req->lr.ops = &conn_owner_ops;
    req->lr.owner = &c->lo;
    req->lr.started_us = now_us();
    TAILQ_INSERT_TAIL(&c->pending, req, link);
    c->npending++;
    return req;
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
    struct server *s = c->server;
    struct proto_slice resources[PROTO_MAX_RESOURCES];
    struct proto_request pr;
    char err[160];
    size_t cap = s->cfg.max_resources_per_lock;
    if (cap > sizeof resources / sizeof resources[0]) cap = sizeof resources / sizeof resources[0];

    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == len) return; /* blank lines are ignored (friendly to telnet/nc) */
    s->stats.requests++;

    enum proto_err rc = proto_parse_request(line, len, &pr, resources, cap, err, sizeof err);
    if (rc != PROTO_OK) {
        if (rc == PROTO_ERR_LIMIT) s->stats.errors_limit++;
        else s->stats.errors_badreq++;
        reply_err(c, rc, err);
        if (!c->authed) preauth_request(c);
        return;
    }
    if (!c->authed && pr.verb != PROTO_VERB_AUTH && pr.verb != PROTO_VERB_QUIT) {
        reply_err(c, PROTO_ERR_AUTH, "authenticate first with AUTH <token>");
        preauth_request(c);
        return;
    }
    char line_out[PROTO_REPLY_MAX];
    struct request *req;
    switch (pr.verb) {
    case PROTO_VERB_PING:
        reply_in_order(c, pr.verb, line_out, proto_fmt_pong(line_out, sizeof line_out));
        return;
    case PROTO_VERB_QUIT:
        reply_in_order(c, pr.verb, line_out, proto_fmt_ok(line_out, sizeof line_out));
        if (c->state == CONN_OPEN) {
            c->quit = true;
            start_draining(c);
        }
        return;
    case PROTO_VERB_AUTH: handle_auth(c, &pr); return;
    case PROTO_VERB_INFO: reply_info(c); return;
    case PROTO_VERB_LOCKS: reply_locks(c); return;
    case PROTO_VERB_INSPECT:
        req = request_new(c, pr.verb);
        if (req == NULL) {
            conn_close(c, "out of memory");
            return;
        }
        inspect_start(s, &req->lr, &pr);
        return;
    case PROTO_VERB_ACQUIRE:
    case PROTO_VERB_EXTEND:
    case PROTO_VERB_RELEASE:
        if (s->shutting_down) {
            reply_err(c, PROTO_ERR_SHUTDOWN, "redlockd is shutting down");
            return;
        }
        req = request_new(c, pr.verb);
        if (req == NULL) {
            conn_close(c, "out of memory");
            return;
        }
        if (pr.verb == PROTO_VERB_ACQUIRE) mgr_acquire(s, &req->lr, &pr);
        else if (pr.verb == PROTO_VERB_EXTEND) mgr_extend(s, &req->lr, &pr);
        else mgr_release(s, &req->lr, &pr);
        return;
    }
}
