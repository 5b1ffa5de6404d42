/*
 * reply_pool.h - hiredis reply objects from a free list.
 *
 * hiredis builds every reply as a calloc'd redisReply (plus a malloc'd
 * string) and frees it right after our callback: three commands per master
 * per lock made that a third of the daemon's malloc traffic. These object
 * functions, installed on each master's reader, build the same redisReply
 * structures from a bounded free list, short strings stored inline.
 */
#ifndef REDLOCKD_REPLY_POOL_H
#define REDLOCKD_REPLY_POOL_H

#include <hiredis/read.h>

/* Object functions for redisReader.fn: replies are plain redisReply trees. */
extern redisReplyObjectFunctions reply_pool_functions;

/* At exit: free the objects kept for reuse. */
void reply_pool_free_all(void);

#endif
