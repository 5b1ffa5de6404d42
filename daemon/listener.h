/*
 * listener.h - the TCP and Unix listening sockets and accept().
 */
#ifndef REDLOCKD_LISTENER_H
#define REDLOCKD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

struct server;

/*
 * Open the listeners cfg asks for (listen, unix_socket) and start accepting.
 * Returns 0, or -1 with a reason in err. At least one listener must be
 * configured.
 */
int listeners_open(struct server *s, char *err, size_t errlen);
/*
 * A listening, non-blocking TCP socket on addr ("host:port", "[v6]:port"),
 * for the client listener and the metrics endpoint. what names the config
 * key in errors. *loopback (if not NULL) says whether it is a loopback
 * address. Returns the fd, or -1 with a reason in err.
 */
int listen_tcp_socket(const char *what, const char *addr, int backlog, bool *loopback, char *err,
                      size_t errlen);
/* Stop accepting and close the sockets (the Unix socket file is removed). */
void listeners_close(struct server *s);

/*
 * TCP keepalive on an accepted socket, so that a peer that died without a
 * FIN (power loss, a cable pulled) is noticed and its locks released:
 * probes start after idle_s seconds of silence, then every max(1, idle_s/3)
 * seconds, and after LISTENER_KEEPALIVE_PROBES unanswered ones the kernel
 * fails the socket. idle_s 0 turns keepalive off. Returns 0, or -1 with errno.
 */
#define LISTENER_KEEPALIVE_PROBES 3
int listener_set_keepalive(int fd, unsigned idle_s);

#endif
