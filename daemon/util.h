/*
 * util.h - small helpers every daemon module uses: the monotonic clock,
 * random bytes from getrandom() (buffered), a fast PRNG for jitter, keyed
 * hashing, and SHA1.
 */
#ifndef REDLOCKD_UTIL_H
#define REDLOCKD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: all lock validity arithmetic uses this. */
uint64_t now_ms(void);
/* The same in microseconds, for latency measurements. */
uint64_t now_us(void);

/*
 * Fill buf with len bytes from getrandom(). Bytes are drawn from a buffer
 * refilled 4 KiB at a time, so a lock token costs no syscall. Returns 0, or
 * -1 if the kernel would not give randomness (the caller fails the request).
 */
int random_bytes(void *buf, size_t len);

/* A uniformly distributed number in [0, bound] for jitter (not secret). */
uint32_t random_jitter(uint32_t bound);

/* Lowercase hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void hex_encode(const unsigned char *in, size_t len, char *out);

/* Keyed hash (SipHash-1-3) of client-chosen bytes; the key is random per
 * process, so clients cannot aim collisions at the tables. */
uint64_t hash_bytes(const void *data, size_t len);

#define SHA1_BYTES 20
#define SHA1_HEX (2 * SHA1_BYTES)

/* The SHA1 of len bytes (FIPS 180-4) into out; sha1_hex writes its
 * lowercase hex, NUL-terminated, into out (SHA1_HEX + 1 bytes). Used to
 * know each Lua script's hash without asking a master (EVALSHA). */
void sha1(const void *data, size_t len, unsigned char out[SHA1_BYTES]);
void sha1_hex(const void *data, size_t len, char out[SHA1_HEX + 1]);

#endif
