/*
 * reply_pool.h - hiredis reply objects from a free list.
 *
 * hiredis builds every reply as a calloc'd redisReply (plus a malloc'd
 * string) and frees it right after our callback: three commands per master
 * per lock made that a third of the daemon's malloc traffic. These object
 * functions, installed on each master's reader, build the same redisReply
 * structures from a bounded free list, short strings stored inline.
 *
 * They also bound what a master can make us allocate: hiredis 0.14 would
 * calloc room for any element count below 2^31 that a "*<n>" header claims
 * (14 bytes could ask for 16 GB). Our commands never get an array of more than a few
 * elements; a larger one fails the reader with an out-of-memory error, and
 * the connection to that master is dropped and made again.
 */
#ifndef REDLOCKD_REPLY_POOL_H
#define REDLOCKD_REPLY_POOL_H

#include <hiredis/read.h>

#define REPLY_MAX_ELEMENTS 1024 /* the largest array reply we accept */

/* Object functions for redisReader.fn: replies are plain redisReply trees. */
extern redisReplyObjectFunctions reply_pool_functions;

/* At exit: free the objects kept for reuse. */
void reply_pool_free_all(void);

#endif
