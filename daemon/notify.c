/*
 * notify.c - the sd_notify(3) datagram protocol and sd_listen_fds(3)
 * socket activation, written by hand. See notify.h.
 *
 * A notification is one AF_UNIX datagram of "KEY=value" lines sent to
 * $NOTIFY_SOCKET: a filesystem path, or, when it starts with '@', a name
 * in the abstract namespace (the '@' becomes a NUL byte and the address
 * length covers exactly the name). A fresh socket is used per message, as
 * libsystemd does: messages are rare (the watchdog every few seconds) and
 * no descriptor is held open for the daemon's lifetime.
 */
#include "notify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define NOTIFY_MSG_MAX 4096

static struct {
    bool enabled; /* NOTIFY_SOCKET was set and valid */
    struct sockaddr_un addr;
    socklen_t addrlen;
    uint64_t watchdog_usec; /* WATCHDOG_USEC for this pid, 0 = none */
} notify;

/* Parse a decimal number with no sign, spaces or trailing junk into *out. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9') return -1;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* True when $name is unset, or set to this process's pid. */
static bool pid_env_is_ours(const char *name)
{
    const char *e = getenv(name);
    uint64_t pid;
    if (e == NULL) return true;
    return parse_u64(e, &pid) == 0 && pid == (uint64_t)getpid();
}

static int set_address(const char *e)
{
    memset(&notify.addr, 0, sizeof notify.addr);
    notify.addr.sun_family = AF_UNIX;
    size_t len = strlen(e);
    if (e[0] != '/' && e[0] != '@') {
        errno = EINVAL;
        return -1;
    }
    if (len < 2 || len >= sizeof notify.addr.sun_path) {
        errno = len < 2 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    memcpy(notify.addr.sun_path, e, len);
    if (e[0] == '@') {
        notify.addr.sun_path[0] = '\0'; /* abstract: no trailing NUL in the length */
        notify.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        notify.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

int notify_init(void)
{
    memset(&notify, 0, sizeof notify);
    const char *e = getenv("NOTIFY_SOCKET");
    if (e == NULL || e[0] == '\0') return 0;
    if (set_address(e) != 0) {
        int saved = errno;
        log_warn("msg=\"NOTIFY_SOCKET ignored\" value=\"%.200s\" error=\"%s\"", e, strerror(saved));
        memset(&notify, 0, sizeof notify);
        errno = saved;
        return -1;
    }
    notify.enabled = true;

    uint64_t usec;
    const char *w = getenv("WATCHDOG_USEC");
    if (w != NULL) {
        if (parse_u64(w, &usec) != 0 || usec == 0) log_warn("msg=\"WATCHDOG_USEC ignored\" value=\"%.40s\"", w);
        else if (!pid_env_is_ours("WATCHDOG_PID"))
            log_debug("msg=\"watchdog is for another process\" WATCHDOG_PID=%.40s", getenv("WATCHDOG_PID"));
        else notify.watchdog_usec = usec;
    }
    return 1;
}

int notify_send(const char *fmt, ...)
{
    if (!notify.enabled) return 0;
    char msg[NOTIFY_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t sent = sendto(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *)&notify.addr,
                          notify.addrlen);
    int saved = errno;
    close(fd);
    if (sent < 0) {
        errno = saved;
        return -1;
    }
    return 1;
}

int notify_reloading(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return -1;
    unsigned long long usec =
        (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
    return notify_send("RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

uint64_t notify_watchdog_interval_usec(void)
{
    return notify.enabled ? notify.watchdog_usec / 2 : 0;
}

/* ---- Socket activation ---------------------------------------------------- */

const char *notify_sock_kind_name(enum notify_sock_kind kind)
{
    switch (kind) {
    case NOTIFY_SOCK_TCP: return "tcp";
    case NOTIFY_SOCK_UNIX: return "unix";
    case NOTIFY_SOCK_OTHER: break;
    }
    return "other";
}

/* Fill kind and addr of *lf from the socket itself. */
static void describe_fd(struct notify_listen_fd *lf)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int type = 0, listening = 0;
    socklen_t optlen = sizeof type;
    lf->kind = NOTIFY_SOCK_OTHER;
    snprintf(lf->addr, sizeof lf->addr, "fd %d", lf->fd);
    memset(&ss, 0, sizeof ss);
    if (getsockname(lf->fd, (struct sockaddr *)&ss, &sslen) != 0) return; /* not a socket */
    if (getsockopt(lf->fd, SOL_SOCKET, SO_TYPE, &type, &optlen) != 0) return;
    optlen = sizeof listening;
    if (getsockopt(lf->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0) return;
    bool stream = type == SOCK_STREAM && listening;

    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(lf->addr, sizeof lf->addr, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        if (stream) lf->kind = NOTIFY_SOCK_TCP;
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(lf->addr, sizeof lf->addr, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
        if (stream) lf->kind = NOTIFY_SOCK_TCP;
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t plen = sslen > off ? sslen - off : 0;
        if (plen > sizeof un->sun_path) plen = sizeof un->sun_path;
        if (plen == 0) {
            snprintf(lf->addr, sizeof lf->addr, "unix:unnamed");
        } else if (un->sun_path[0] == '\0') {
            snprintf(lf->addr, sizeof lf->addr, "@%.*s", (int)(plen - 1), un->sun_path + 1);
        } else {
            snprintf(lf->addr, sizeof lf->addr, "%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
        }
        if (stream) lf->kind = NOTIFY_SOCK_UNIX;
    }
}

/* Copy the i-th ':'-separated element of names (may be NULL) into out. */
static void fd_name(const char *names, size_t i, char *out, size_t outlen)
{
    out[0] = '\0';
    if (names == NULL) return;
    const char *p = names;
    for (; i > 0; i--) {
        p = strchr(p, ':');
        if (p == NULL) return;
        p++;
    }
    size_t len = strcspn(p, ":");
    snprintf(out, outlen, "%.*s", (int)(len < outlen ? len : outlen - 1), p);
}

static void unset_listen_env(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

int notify_listen_fds(struct notify_listen_fd *fds, size_t max)
{
    int rc = 0;
    uint64_t pid, n;
    const char *e = getenv("LISTEN_PID");
    if (e == NULL) goto done;
    if (parse_u64(e, &pid) != 0) {
        errno = EINVAL;
        rc = -1;
        goto done;
    }
    if (pid != (uint64_t)getpid()) goto done; /* meant for another process */
    e = getenv("LISTEN_FDS");
    if (e == NULL) goto done;
    if (parse_u64(e, &n) != 0 || n > 4096) { /* systemd passes far fewer */
        errno = EINVAL;
        rc = -1;
        goto done;
    }
    if (n > max) {
        errno = E2BIG;
        rc = -1;
        goto done;
    }
    const char *names = getenv("LISTEN_FDNAMES");
    for (size_t i = 0; i < n; i++) {
        int fd = NOTIFY_LISTEN_FDS_START + (int)i;
        int fdflags = fcntl(fd, F_GETFD);
        int flflags = fcntl(fd, F_GETFL);
        if (fdflags < 0 || flflags < 0 || fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC) != 0 ||
            fcntl(fd, F_SETFL, flflags | O_NONBLOCK) != 0) {
            rc = -1; /* errno from fcntl: EBADF when systemd's fd is missing */
            goto done;
        }
        struct notify_listen_fd *lf = &fds[i];
        memset(lf, 0, sizeof *lf);
        lf->fd = fd;
        fd_name(names, i, lf->name, sizeof lf->name);
        describe_fd(lf);
    }
    rc = (int)n;
done:;
    int saved = errno;
    unset_listen_env();
    errno = saved;
    return rc;
}
