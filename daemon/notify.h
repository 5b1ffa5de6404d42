/*
 * notify.h - systemd integration without libsystemd: the sd_notify(3)
 * datagram protocol (READY=1, STATUS=..., STOPPING=1, RELOADING=1,
 * WATCHDOG=1), the watchdog period, and socket activation
 * (sd_listen_fds(3)). Everything is a no-op when the daemon does not run
 * under systemd, so callers never need to check first.
 *
 * Not thread-safe; call from the event loop's thread only.
 */
#ifndef REDLOCKD_NOTIFY_H
#define REDLOCKD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define NOTIFY_LISTEN_FDS_START 3 /* SD_LISTEN_FDS_START: the first passed fd */
#define NOTIFY_FDNAME_MAX 256     /* FDNAME= values are at most 255 bytes */
#define NOTIFY_ADDR_MAX 128       /* printable socket address, for logs */

/* What kind of listening socket a passed fd is. */
enum notify_sock_kind {
    NOTIFY_SOCK_OTHER = 0, /* not a listening stream socket of a family we serve */
    NOTIFY_SOCK_TCP,       /* AF_INET or AF_INET6, SOCK_STREAM, listening */
    NOTIFY_SOCK_UNIX,      /* AF_UNIX, SOCK_STREAM, listening */
};

/* One socket passed by systemd (socket activation). */
struct notify_listen_fd {
    int fd;                       /* NOTIFY_LISTEN_FDS_START + i */
    enum notify_sock_kind kind;   /* from getsockname() and SO_TYPE/SO_ACCEPTCONN */
    char name[NOTIFY_FDNAME_MAX]; /* from LISTEN_FDNAMES ("" when not given) */
    char addr[NOTIFY_ADDR_MAX];   /* "127.0.0.1:7379", "[::1]:7379", a path, "@abstract" */
};

/*
 * Read the environment systemd sets for a Type=notify service:
 * NOTIFY_SOCKET (an absolute path, or "@name" for the abstract namespace)
 * and WATCHDOG_USEC / WATCHDOG_PID. Call once at startup, before any other
 * notify_* call (calling it again re-reads the environment: tests do).
 * The variables are left in the environment.
 *
 * Returns 1 when NOTIFY_SOCKET is set and usable, 0 when it is not set
 * (not under systemd: every notify_send() is then a no-op), -1 when it is
 * set but malformed (relative path, too long): errno is EINVAL or
 * ENAMETOOLONG, a warning is logged, and notifications are disabled.
 * A malformed or foreign-pid watchdog setting only disables the watchdog.
 */
int notify_init(void);

/*
 * Send one notification datagram, formatted like printf, e.g.
 *   notify_send("READY=1"), notify_send("STATUS=%u/%u masters up", up, n),
 *   notify_send("STOPPING=1"), notify_send("WATCHDOG=1").
 * Several assignments may be joined with '\n' in one message. The message
 * is cut at 4095 bytes. Never blocks (MSG_DONTWAIT) and never raises SIGPIPE.
 *
 * Returns 1 when sent, 0 when not under systemd (nothing done), -1 on
 * error with errno set (the caller may log it; a lost notification is not
 * fatal).
 */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Send "RELOADING=1\nMONOTONIC_USEC=<now>" (CLOCK_MONOTONIC in
 * microseconds, as systemd >= 253 wants for Type=notify-reload; older
 * versions ignore the second field). Follow it with notify_send("READY=1")
 * once the reload is done or refused. Returns like notify_send().
 */
int notify_reloading(void);

/*
 * The interval at which to send WATCHDOG=1: half of WATCHDOG_USEC, or 0
 * when there is no watchdog (WATCHDOG_USEC unset, malformed or 0,
 * WATCHDOG_PID set to another process, or no NOTIFY_SOCKET). Valid after
 * notify_init().
 */
uint64_t notify_watchdog_interval_usec(void);

/*
 * Socket activation. When LISTEN_PID equals getpid() and LISTEN_FDS is a
 * count n >= 1, describe fds 3 .. 3+n-1 in fds[0 .. n-1] (name from the
 * ':'-separated LISTEN_FDNAMES if present, kind and address from
 * getsockname()), and make each of them close-on-exec and non-blocking
 * (libevent's accept loop needs that; systemd passes them blocking).
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset in every case, so
 * they are consumed once and never inherited.
 *
 * Returns n (the fds now belong to the caller, who closes them), 0 when
 * no sockets were passed to this process (not socket-activated, or the
 * variables are for another pid), or -1 with errno set: EINVAL for a
 * malformed LISTEN_PID/LISTEN_FDS, E2BIG when more than max sockets were
 * passed, EBADF when one of the fds is not open, or fcntl()'s errno.
 * On -1 no fd is closed. Callers should refuse to serve on an fd whose
 * kind is NOTIFY_SOCK_OTHER.
 */
int notify_listen_fds(struct notify_listen_fd *fds, size_t max);

/* A kind in words: "tcp", "unix" or "other". */
const char *notify_sock_kind_name(enum notify_sock_kind kind);

#endif
