/*
 * locks.h - the LOCKS reply: this daemon's held locks and the ACQUIREs
 * still waiting, one "lock <field>=<value> ..." line each (PROTOCOL.md,
 * LOCKS). Lock ids are shown by their first 8 hex digits only.
 */
#ifndef REDLOCKD_LOCKS_H
#define REDLOCKD_LOCKS_H

struct server;
struct evbuffer;

/* At most this many bytes of lock lines in one reply (also at most a
 * quarter of [server] max_output_bytes); the header says how many were
 * shown. Each line is under 1024 bytes. */
#define LOCKS_MAX_BYTES 65536

/* Append the whole LOCKS reply ("DATA <n>\r\n" and n lines) to out.
 * Returns 0, or -1 when out of memory. */
int locks_render(struct server *s, struct evbuffer *out);

#endif
