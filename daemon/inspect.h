/*
 * inspect.h - INSPECT <resource>: who holds a resource right now as the
 * masters see it. Tokens are shown by their first 8 hex digits only: a full
 * lock id is a capability and is never revealed to another client.
 */
#ifndef REDLOCKD_INSPECT_H
#define REDLOCKD_INSPECT_H

#include "owner.h"
#include "proto.h"
#include "server.h"

/* Start an INSPECT; the DATA block (or an ERR) comes back once, later or
 * at once, through req->ops->reply(). */
void inspect_start(struct server *s, struct lock_request *req, const struct proto_request *pr);

#endif
