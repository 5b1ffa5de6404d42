/*
 * listener.h - the TCP and Unix listening sockets and accept().
 */
#ifndef REDLOCKD_LISTENER_H
#define REDLOCKD_LISTENER_H

#include <stddef.h>

struct server;

/*
 * Open the listeners cfg asks for (listen, unix_socket) and start accepting.
 * Returns 0, or -1 with a reason in err. At least one listener must be
 * configured.
 */
int listeners_open(struct server *s, char *err, size_t errlen);
/* Stop accepting and close the sockets (the Unix socket file is removed). */
void listeners_close(struct server *s);

#endif
