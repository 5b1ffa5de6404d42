/* fakemaster.c - see fakemaster.h. */
#include "fakemaster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h" /* sha1_hex, from the daemon */

#define FM_MAX_CONNS 16
#define FM_IN_MAX (1024 * 1024) /* a command larger than this closes the connection */
#define FM_MAX_ARGS 64
#define FM_INJECT_DELAY_MS 100
#define FM_STREAM_CHUNK 65536

struct fm_conn {
    int fd; /* -1: free slot */
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
    uint64_t inject_at;   /* ms; 0: nothing to inject */
    uint64_t close_at;    /* ms; 0: stays open */
    uint64_t stream_left; /* stream bytes still to write */
    uint64_t streamed;
};

struct fakemaster {
    struct fm_opts o;
    int lfd;
    int port;
    int wake[2]; /* fm_stop writes a byte */
    pthread_t thread;
    char run_id[41];
    struct fm_conn conns[FM_MAX_CONNS];
    atomic_uint connections, handshakes, injected;
    _Atomic uint64_t max_streamed;
};

static uint64_t fm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int out_add(struct fm_conn *c, const void *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (o == NULL)
            return -1;
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static int out_str(struct fm_conn *c, const char *s)
{
    return out_add(c, s, strlen(s));
}

static int out_bulk(struct fm_conn *c, const char *s, size_t n)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof hdr, "$%zu\r\n", n);
    return out_add(c, hdr, (size_t)h) || out_add(c, s, n) || out_add(c, "\r\n", 2) ? -1 : 0;
}

static void conn_close(struct fakemaster *f, struct fm_conn *c)
{
    (void)f;
    close(c->fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Answer one command (argv as pointer/length pairs). Returns 0, or -1 to
 * close the connection. */
static int answer(struct fakemaster *f, struct fm_conn *c, int argc, char **argv, size_t *lens)
{
    if (argc == 0)
        return out_str(c, "-ERR fakemaster: empty command\r\n");
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(lens[0] < 31 ? lens[0] : 31), argv[0]);
    if (f->o.stream_on != NULL && strcasecmp(name, f->o.stream_on) == 0 && c->streamed == 0 &&
        c->stream_left == 0) {
        c->stream_left = f->o.stream_bytes;
        return out_str(c, "$1000000000\r\n");
    }
    if (strcasecmp(name, "AUTH") == 0) {
        if (f->o.auth_error == NULL)
            return out_str(c, "+OK\r\n");
        return out_str(c, "-") || out_str(c, f->o.auth_error) || out_str(c, "\r\n") ? -1 : 0;
    }
    if (strcasecmp(name, "PING") == 0)
        return out_str(c, "+PONG\r\n");
    if (strcasecmp(name, "SCRIPT") == 0 && argc == 3 && lens[1] == 4 &&
        strncasecmp(argv[1], "LOAD", 4) == 0) {
        char sha[SHA1_HEX + 1];
        sha1_hex(argv[2], lens[2], sha);
        if (f->o.wrong_sha)
            sha[0] = sha[0] == '0' ? '1' : '0';
        return out_bulk(c, sha, SHA1_HEX);
    }
    if (strcasecmp(name, "INFO") == 0) {
        char info[256];
        int n = snprintf(info, sizeof info,
                         "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n"
                         "run_id:%s\r\nuptime_in_seconds:100\r\n",
                         f->run_id);
        if (out_bulk(c, info, (size_t)n) != 0)
            return -1;
        atomic_fetch_add(&f->handshakes, 1);
        if (f->o.after_handshake != NULL && c->inject_at == 0)
            c->inject_at = fm_now_ms() + FM_INJECT_DELAY_MS;
        if (f->o.close_after_ms != 0 && c->close_at == 0)
            c->close_at = fm_now_ms() + f->o.close_after_ms;
        return 0;
    }
    return out_str(c, "-ERR fakemaster: unsupported command\r\n");
}

/* Parse and answer every complete command in c->in. Returns 0 or -1. */
static int serve_input(struct fakemaster *f, struct fm_conn *c)
{
    size_t pos = 0;
    for (;;) {
        char *argv[FM_MAX_ARGS];
        size_t lens[FM_MAX_ARGS];
        size_t p = pos;
        const char *end = c->in + c->in_len;
        if (p >= c->in_len)
            break;
        if (c->in[p] != '*')
            return -1; /* redlockd only sends arrays */
        char *nl = memchr(c->in + p, '\n', c->in_len - p);
        if (nl == NULL)
            break;
        long argc = strtol(c->in + p + 1, NULL, 10);
        if (argc < 0 || argc > FM_MAX_ARGS)
            return -1;
        p = (size_t)(nl + 1 - c->in);
        int i = 0;
        for (; i < argc; i++) {
            if (p >= c->in_len)
                break;
            if (c->in[p] != '$')
                return -1;
            nl = memchr(c->in + p, '\n', c->in_len - p);
            if (nl == NULL)
                break;
            long len = strtol(c->in + p + 1, NULL, 10);
            if (len < 0 || len > FM_IN_MAX)
                return -1;
            p = (size_t)(nl + 1 - c->in);
            if ((size_t)(end - (c->in + p)) < (size_t)len + 2)
                break;
            argv[i] = c->in + p;
            lens[i] = (size_t)len;
            p += (size_t)len + 2;
        }
        if (i < argc)
            break; /* incomplete */
        if (answer(f, c, (int)argc, argv, lens) != 0)
            return -1;
        pos = p;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 0;
}

/* Write what is pending: buffered replies first, then stream bytes.
 * Returns 0, or -1 when the peer is gone. */
static int flush_out(struct fakemaster *f, struct fm_conn *c)
{
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    static const char xs[FM_STREAM_CHUNK] = {[0 ... FM_STREAM_CHUNK - 1] = 'x'};
    while (c->stream_left > 0) {
        size_t want = c->stream_left < sizeof xs ? (size_t)c->stream_left : sizeof xs;
        ssize_t n = send(c->fd, xs, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->stream_left -= (uint64_t)n;
        c->streamed += (uint64_t)n;
        if (c->streamed > atomic_load(&f->max_streamed))
            atomic_store(&f->max_streamed, c->streamed);
    }
    return 0;
}

static void on_readable(struct fakemaster *f, struct fm_conn *c)
{
    if (c->in == NULL && (c->in = malloc(FM_IN_MAX)) == NULL) {
        conn_close(f, c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, FM_IN_MAX - c->in_len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(f, c);
        return;
    }
    if (n > 0)
        c->in_len += (size_t)n;
    if (serve_input(f, c) != 0 || c->in_len == FM_IN_MAX)
        conn_close(f, c);
}

static void *fm_thread(void *arg)
{
    struct fakemaster *f = arg;
    for (;;) {
        struct pollfd pfd[FM_MAX_CONNS + 2];
        int idx[FM_MAX_CONNS + 2];
        nfds_t n = 0;
        pfd[n] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
        idx[n++] = -1;
        pfd[n] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        idx[n++] = -2;
        int timeout = 1000;
        uint64_t now = fm_now_ms();
        for (int i = 0; i < FM_MAX_CONNS; i++) {
            struct fm_conn *c = &f->conns[i];
            if (c->fd < 0)
                continue;
            short ev = POLLIN;
            if (c->out_len > 0 || c->stream_left > 0)
                ev |= POLLOUT;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            idx[n++] = i;
            uint64_t at[2] = {c->inject_at, c->close_at};
            for (int k = 0; k < 2; k++) {
                if (at[k] == 0)
                    continue;
                int left = at[k] > now ? (int)(at[k] - now) : 0;
                if (left < timeout)
                    timeout = left;
            }
        }
        if (poll(pfd, n, timeout) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break; /* fm_stop */
        if (pfd[1].revents & POLLIN) {
            int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                int slot = -1;
                for (int i = 0; i < FM_MAX_CONNS && slot < 0; i++)
                    if (f->conns[i].fd < 0)
                        slot = i;
                if (slot < 0) {
                    close(fd);
                } else {
                    memset(&f->conns[slot], 0, sizeof f->conns[slot]);
                    f->conns[slot].fd = fd;
                    atomic_fetch_add(&f->connections, 1);
                }
            }
        }
        for (nfds_t k = 2; k < n; k++) {
            struct fm_conn *c = &f->conns[idx[k]];
            if (c->fd != pfd[k].fd)
                continue;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                on_readable(f, c);
            if (c->fd >= 0 && flush_out(f, c) != 0)
                conn_close(f, c);
        }
        now = fm_now_ms();
        for (int i = 0; i < FM_MAX_CONNS; i++) {
            struct fm_conn *c = &f->conns[i];
            if (c->fd >= 0 && c->close_at != 0 && now >= c->close_at) {
                conn_close(f, c);
                continue;
            }
            if (c->fd < 0 || c->inject_at == 0 || now < c->inject_at)
                continue;
            /* Only with every command read so far answered: read what has
             * come in first. */
            if (c->in_len == 0 && c->out_len == 0 && c->stream_left == 0) {
                struct pollfd p = {.fd = c->fd, .events = POLLIN};
                if (poll(&p, 1, 0) > 0)
                    continue; /* more input: next turn */
                c->inject_at = 0;
                if (out_str(c, f->o.after_handshake) != 0 || flush_out(f, c) != 0) {
                    conn_close(f, c);
                    continue;
                }
                atomic_fetch_add(&f->injected, 1);
            }
        }
    }
    return NULL;
}

struct fakemaster *fm_start(const struct fm_opts *o)
{
    struct fakemaster *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->o = *o;
    f->lfd = -1;
    f->wake[0] = f->wake[1] = -1;
    for (int i = 0; i < FM_MAX_CONNS; i++)
        f->conns[i].fd = -1;
    unsigned char rnd[20];
    for (size_t i = 0; i < sizeof rnd; i++)
        rnd[i] = (unsigned char)(rand() ^ (int)fm_now_ms() ^ (int)i);
    hex_encode(rnd, sizeof rnd, f->run_id);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(f->lfd, 16) != 0 || getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        pipe2(f->wake, O_CLOEXEC) != 0) {
        perror("fakemaster: listen");
        goto fail;
    }
    f->port = ntohs(sa.sin_port);
    if (pthread_create(&f->thread, NULL, fm_thread, f) != 0) {
        fprintf(stderr, "fakemaster: pthread_create failed\n");
        goto fail;
    }
    return f;
fail:
    if (f->lfd >= 0)
        close(f->lfd);
    if (f->wake[0] >= 0)
        close(f->wake[0]);
    if (f->wake[1] >= 0)
        close(f->wake[1]);
    free(f);
    return NULL;
}

int fm_port(const struct fakemaster *f)
{
    return f->port;
}
unsigned fm_connections(const struct fakemaster *f)
{
    return atomic_load(&f->connections);
}
unsigned fm_handshakes(const struct fakemaster *f)
{
    return atomic_load(&f->handshakes);
}
unsigned fm_injected(const struct fakemaster *f)
{
    return atomic_load(&f->injected);
}

uint64_t fm_max_streamed(const struct fakemaster *f)
{
    return atomic_load(&f->max_streamed);
}

void fm_stop(struct fakemaster *f)
{
    if (f == NULL)
        return;
    char b = 1;
    if (write(f->wake[1], &b, 1) != 1)
        perror("fakemaster: wake");
    pthread_join(f->thread, NULL);
    for (int i = 0; i < FM_MAX_CONNS; i++)
        if (f->conns[i].fd >= 0)
            conn_close(f, &f->conns[i]);
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f);
}
