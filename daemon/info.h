/*
 * info.h - the INFO reply: daemon version, uptime, clients, locks, counters
 * and per-master state, as "key value" lines (see PROTOCOL.md, INFO).
 */
#ifndef REDLOCKD_INFO_H
#define REDLOCKD_INFO_H

#include <stddef.h>

struct server;
struct evbuffer;

/* Append the whole INFO reply ("DATA <n>\r\n" and n lines) to out.
 * Returns 0, or -1 when out of memory. */
int info_render(struct server *s, struct evbuffer *out);

#endif
