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
 * the connection to that master is dropped and made again. With a guard
 * (below) replies are also bounded in bytes, and unsolicited ones refused.
 */
#ifndef REDLOCKD_REPLY_POOL_H
#define REDLOCKD_REPLY_POOL_H

#include <hiredis/read.h>
#include <stdint.h>

#define REPLY_MAX_ELEMENTS 1024 /* the largest array reply we accept */
/* The largest reply we accept, counting every string, array and object in
 * it (a redisReply is about 100 bytes); also the most unparsed bytes the
 * owner lets a reader buffer (a bulk string is created only once all of it
 * has arrived). Our largest reply is INFO server, a few KiB. */
#define REPLY_MAX_BYTES (1024 * 1024)

/*
 * A connection's guard, given to its reader as privdata
 * (redisReaderSetPrivdata). With it the reader also fails (as out of
 * memory, with the reason in error) on a reply past REPLY_MAX_BYTES and on
 * an unsolicited reply: one that completes when `answered` has reached
 * `limit`. hiredis 0.14 asserts (aborts the process) on an unsolicited
 * non-error reply, so it must never reach redisProcessCallbacks. The owner
 * counts its commands in `sent` and copies `sent` to `limit` before each
 * read: a reply can only answer a command written before it arrived.
 * Readers without a guard (privdata NULL) only bound arrays.
 */
struct reply_guard {
    uint64_t sent;      /* owner: commands queued on the connection */
    uint64_t limit;     /* owner: sent, as of the read being parsed */
    uint64_t answered;  /* reader: complete top-level replies so far */
    size_t reply_bytes; /* reader: size of the reply being built */
    const char *error;  /* reader: why it was failed (static text), NULL if not */
};

/* Object functions for redisReader.fn: replies are plain redisReply trees. */
extern redisReplyObjectFunctions reply_pool_functions;

/* At exit: free the objects kept for reuse. */
void reply_pool_free_all(void);

#endif
