/*
 * listener.c - listening sockets. See listener.h.
 *
 * When accept() fails for lack of file descriptors (EMFILE/ENFILE) the
 * listener pauses for ACCEPT_PAUSE_MS instead of spinning on a socket that
 * stays readable; the pending connection waits in the backlog. The pause is
 * logged at most once per ACCEPT_LOG_EVERY_MS, with how many there were.
 */
#include "listener.h"

#include <errno.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "util.h"

#define ACCEPTS_PER_EVENT 64
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_EVERY_MS 10000
#define LISTEN_BACKLOG 1024
#define MAX_LISTENERS 8 /* TCP + Unix, or what socket activation passes */

struct listener {
    struct server *server;
    int fd;
    int is_tcp;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* Unix socket path, "" for TCP */
    struct event *ev;
    struct event *resume;
};

static struct listener listeners[MAX_LISTENERS];
static size_t nlisteners;
static uint64_t accept_pauses;        /* since the last "accept paused" line */
static uint64_t accept_paused_log_ms; /* 0: never logged */

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    (void)fd;
    (void)what;
    event_add(l->ev, NULL);
}

int listener_set_keepalive(int fd, unsigned idle_s)
{
    int on = idle_s > 0;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) return -1;
    if (!on) return 0;
    int idle = (int)idle_s, intvl = idle_s >= 3 ? (int)(idle_s / 3) : 1, cnt = LISTENER_KEEPALIVE_PROBES;
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) != 0)
        return -1;
    return 0;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    struct server *s = l->server;
    (void)what;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                int e = errno;
                uint64_t now = now_ms();
                accept_pauses++;
                if (accept_paused_log_ms == 0 || now - accept_paused_log_ms >= ACCEPT_LOG_EVERY_MS) {
                    log_warn("msg=\"accept paused: out of file descriptors\" error=\"%s\" pauses=%llu",
                             strerror(e), (unsigned long long)accept_pauses);
                    accept_paused_log_ms = now;
                    accept_pauses = 0;
                }
                event_del(l->ev);
                struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
                evtimer_add(l->resume, &tv);
            }
            return; /* EAGAIN: drained; other errors: the client is gone */
        }
        if (s->shutting_down || s->nconns >= s->cfg.max_clients) {
            static const char busy[] = "ERR LIMIT max_clients reached\r\n";
            s->stats.connections_rejected++;
            ssize_t ignored = send(cfd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)ignored;
            close(cfd);
            continue;
        }
        if (l->is_tcp) {
            int one = 1;
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (listener_set_keepalive(cfd, s->cfg.tcp_keepalive_s) != 0)
                log_warn("msg=\"cannot set TCP keepalive\" error=\"%s\"", strerror(errno));
        }
        conn_new(s, cfd);
    }
}

static int add_listener(struct server *s, int fd, int is_tcp, const char *path, char *err, size_t errlen)
{
    struct listener *l = &listeners[nlisteners];
    memset(l, 0, sizeof *l);
    l->server = s;
    l->fd = fd;
    l->is_tcp = is_tcp;
    snprintf(l->path, sizeof l->path, "%s", path ? path : "");
    l->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_accept, l);
    l->resume = evtimer_new(s->base, on_resume, l);
    if (l->ev == NULL || l->resume == NULL || event_add(l->ev, NULL) != 0) {
        snprintf(err, errlen, "cannot register listener");
        if (l->ev) event_free(l->ev);
        if (l->resume) event_free(l->resume);
        close(fd);
        return -1;
    }
    nlisteners++;
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return false;
}

int listen_tcp_socket(const char *what, const char *addr, int backlog, bool *loopback, char *err, size_t errlen)
{
    char *host = NULL;
    int port = 0;
    if (config_parse_hostport(addr, &host, &port) != 0) {
        snprintf(err, errlen, "%s: bad address '%s'", what, addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    free(host);
    if (rc != 0) {
        snprintf(err, errlen, "%s %s: %s", what, addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        snprintf(err, errlen, "%s %s: %s", what, addr, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return -1;
    }
    if (loopback != NULL) *loopback = is_loopback(res->ai_addr);
    freeaddrinfo(res);
    return fd;
}

static int open_tcp(struct server *s, const char *addr, char *err, size_t errlen)
{
    bool loopback;
    int fd = listen_tcp_socket("listen", addr, LISTEN_BACKLOG, &loopback, err, errlen);
    if (fd < 0) return -1;
    if (!loopback && s->auth_token == NULL)
        log_warn("msg=\"listening beyond loopback without client authentication: anyone who can "
                 "reach this address can take and release locks; set auth_token_file\" addr=%s",
                 addr);
    log_info("msg=listening addr=%s", addr);
    return add_listener(s, fd, 1, NULL, err, errlen);
}

/* bind() said ENOENT: the socket's directory is missing (under systemd,
 * RuntimeDirectory= makes /run/redlockd). Say how to make it, or what to set. */
static void missing_dir_error(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    int dirlen = slash == NULL ? 1 : slash == path ? 1 : (int)(slash - path);
    const char *dir = slash == NULL ? "." : path;
    snprintf(err, errlen,
             "unix_socket %s: directory %.*s does not exist; create it (install -d -m 0755 -o USER %.*s) "
             "or set [server] unix_socket to a path in an existing directory (empty: TCP only); "
             "under systemd RuntimeDirectory=redlockd makes it",
             path, dirlen, dir, dirlen, dir);
}

static int open_unix(struct server *s, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "unix_socket: path too long");
        return -1;
    }
    strcpy(sa.sun_path, path);
    /* A socket file left by a previous run would make bind() fail. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        chmod(path, (mode_t)s->cfg.unix_socket_mode) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        if (errno == ENOENT) missing_dir_error(path, err, errlen);
        else snprintf(err, errlen, "unix_socket %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    log_info("msg=listening unix_socket=%s mode=%04o", path, (unsigned)s->cfg.unix_socket_mode);
    return add_listener(s, fd, 0, path, err, errlen);
}

/* Socket activation: serve on the sockets systemd passed instead of the
 * configured addresses. Returns how many were adopted, or -1. */
static int adopt_passed(struct server *s, char *err, size_t errlen)
{
    struct notify_listen_fd fds[MAX_LISTENERS];
    int n = notify_listen_fds(fds, MAX_LISTENERS);
    if (n < 0) {
        snprintf(err, errlen, "socket activation: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (fds[i].kind == NOTIFY_SOCK_OTHER) {
            snprintf(err, errlen, "socket activation: fd %d is not a listening stream socket", fds[i].fd);
            for (int j = i; j < n; j++) close(fds[j].fd);
            listeners_close(s);
            return -1;
        }
        log_info("msg=\"listening on a socket from systemd\" kind=%s addr=%s",
                 notify_sock_kind_name(fds[i].kind), fds[i].addr);
        /* The path stays "": systemd owns the socket file, we must not unlink it. */
        if (add_listener(s, fds[i].fd, fds[i].kind == NOTIFY_SOCK_TCP, NULL, err, errlen) != 0) {
            for (int j = i + 1; j < n; j++) close(fds[j].fd);
            listeners_close(s);
            return -1;
        }
    }
    return n;
}

int listeners_open(struct server *s, char *err, size_t errlen)
{
    int passed = adopt_passed(s, err, errlen);
    if (passed != 0) return passed < 0 ? -1 : 0;
    const char *tcp = s->cfg.listen;
    const char *unix_path = s->cfg.unix_socket;
    if ((tcp == NULL || tcp[0] == '\0') && (unix_path == NULL || unix_path[0] == '\0')) {
        snprintf(err, errlen, "neither listen nor unix_socket is set: nothing to serve on");
        return -1;
    }
    if (tcp != NULL && tcp[0] != '\0' && open_tcp(s, tcp, err, errlen) != 0) return -1;
    if (unix_path != NULL && unix_path[0] != '\0' && open_unix(s, unix_path, err, errlen) != 0) {
        listeners_close(s);
        return -1;
    }
    return 0;
}

void listeners_close(struct server *s)
{
    (void)s;
    for (size_t i = 0; i < nlisteners; i++) {
        struct listener *l = &listeners[i];
        event_free(l->ev);
        event_free(l->resume);
        close(l->fd);
        if (l->path[0] != '\0') unlink(l->path);
    }
    nlisteners = 0;
}
