/* util.c - see util.h. */
#include "util.h"

#include <endian.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define RANDOM_POOL_BYTES 4096
static unsigned char random_pool[RANDOM_POOL_BYTES];
static size_t random_pool_left;

static int fill_exact(unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0) return -1; /* EINTR included: the caller fails this request */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int random_bytes(void *buf, size_t len)
{
    unsigned char *out = buf;
    while (len > 0) {
        if (random_pool_left == 0) {
            if (fill_exact(random_pool, sizeof random_pool) != 0) return -1;
            random_pool_left = sizeof random_pool;
        }
        size_t take = len < random_pool_left ? len : random_pool_left;
        unsigned char *src = random_pool + (sizeof random_pool - random_pool_left);
        memcpy(out, src, take);
        memset(src, 0, take); /* a token is never handed out twice */
        random_pool_left -= take;
        out += take;
        len -= take;
    }
    return 0;
}

/* xorshift64*: cheap, good enough for spreading retries; seeded once. */
static uint64_t jitter_state;

uint32_t random_jitter(uint32_t bound)
{
    if (bound == 0) return 0;
    if (jitter_state == 0 && (random_bytes(&jitter_state, sizeof jitter_state) != 0 || jitter_state == 0))
        jitter_state = 0x9E3779B97F4A7C15ull;
    jitter_state ^= jitter_state >> 12;
    jitter_state ^= jitter_state << 25;
    jitter_state ^= jitter_state >> 27;
    uint64_t r = jitter_state * 0x2545F4914F6CDD1Dull;
    return (uint32_t)((r >> 32) % ((uint64_t)bound + 1));
}

void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* ---- SipHash-1-3 (as Redis hashes its dicts: keyed against flooding, and
 * twice as fast as 2-4 on our short keys) ---- */

static uint64_t sip_key[2];
static int sip_key_ready;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
    do { \
        v0 += v1; \
        v1 = ROTL(v1, 13); \
        v1 ^= v0; \
        v0 = ROTL(v0, 32); \
        v2 += v3; \
        v3 = ROTL(v3, 16); \
        v3 ^= v2; \
        v0 += v3; \
        v3 = ROTL(v3, 21); \
        v3 ^= v0; \
        v2 += v1; \
        v1 = ROTL(v1, 17); \
        v1 ^= v2; \
        v2 = ROTL(v2, 32); \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v);
}

uint64_t hash_bytes(const void *data, size_t len)
{
    if (!sip_key_ready) {
        if (random_bytes(sip_key, sizeof sip_key) != 0) {
            sip_key[0] = 0x0706050403020100ull; /* still correct, just predictable */
            sip_key[1] = 0x0f0e0d0c0b0a0908ull;
        }
        sip_key_ready = 1;
    }
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ sip_key[0];
    uint64_t v1 = 0x646f72616e646f6dull ^ sip_key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ sip_key[0];
    uint64_t v3 = 0x7465646279746573ull ^ sip_key[1];
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++) b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* One 64-byte block into the five state words. */
static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void sha1(const void *data, size_t len, unsigned char out[SHA1_BYTES])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    const unsigned char *in = data;
    size_t full = len & ~(size_t)63;
    for (size_t i = 0; i < full; i += 64) sha1_block(h, in + i);
    /* The tail, 0x80, zeros and the bit length: one or two more blocks. */
    unsigned char last[128] = {0};
    size_t rest = len - full;
    memcpy(last, in + full, rest);
    last[rest] = 0x80;
    size_t nlast = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) last[nlast - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, last);
    if (nlast == 128) sha1_block(h, last + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

void sha1_hex(const void *data, size_t len, char out[SHA1_HEX + 1])
{
    unsigned char d[SHA1_BYTES];
    sha1(data, len, d);
    hex_encode(d, sizeof d, out);
}
