/*
 * memstore.h - the in-memory backend ([redis] backend = memory): a key-value
 * store with millisecond expiry that executes the few commands and scripts
 * the pool sends (SET NX PX and the scripts of redis_pool.h) exactly as a
 * Redis master would. The pool presents it as a single always-up master, so
 * every layer above (Redlock, waits, AUTOEXTEND, fencing) works unchanged.
 * It is not fault-tolerant: the locks live and die with this process.
 */
#ifndef REDLOCKD_MEMSTORE_H
#define REDLOCKD_MEMSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_pool.h"

struct memstore;

struct memstore *memstore_new(void);
void memstore_free(struct memstore *ms);

/*
 * Execute a command (only "SET key value NX PX ms" and "INCR key"; anything
 * else is an error reply) or a script. The reply goes to *out; a string
 * reply is written to buf (buflen bytes) and out->str points there.
 */
void memstore_command(struct memstore *ms, int argc, const char **argv, const size_t *lens,
                      struct pool_reply *out, char *buf, size_t buflen);
void memstore_script(struct memstore *ms, enum pool_script script, size_t nkeys, const char *const *keys,
                     const size_t *keylens, size_t nargs, const char *const *args, const size_t *arglens,
                     struct pool_reply *out, char *buf, size_t buflen);

/* Drop expired keys, looking at no more than max_slots hash slots. */
void memstore_sweep(struct memstore *ms, size_t max_slots);
/* Keys stored (expired ones not yet swept included). */
size_t memstore_size(const struct memstore *ms);

/* For tests (the differential test against the Lua scripts): SET key value,
 * expiring px_ms from now (0: never), whatever the key held. Returns 0, or
 * -1 out of memory. */
int memstore_set(struct memstore *ms, const char *key, size_t klen, const char *value, size_t vlen,
                 uint64_t px_ms);
/* For tests: the live value of key (owned by ms, valid until the next call;
 * not NUL-terminated) and its ms to live (-1: no expiry). False when absent. */
bool memstore_peek(struct memstore *ms, const char *key, size_t klen, const char **value, size_t *vlen,
                   long long *pttl_ms);

/* For tests: make key a holder hash of mode (redis_pool.c LUA_SHARED_*) if
 * it is not one, and add token to it, its entry expiring rel_ms from now
 * (<= 0: already expired); the key then expires px_ms from now (0: with
 * no expiry). A hash shows in memstore_peek() as "H <mode> <token> ...".
 * Returns 0, or -1 out of memory. */
int memstore_set_holder(struct memstore *ms, const char *key, size_t klen, const char *mode, const char *token,
                        long long rel_ms, uint64_t px_ms);

#endif
