/* memstore.c - see memstore.h. */
#include "memstore.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proto.h"
#include "table.h"
#include "util.h"

/* A key held SHARED or under PERMITS (redis_pool.c LUA_SHARED_*): its mode
 * and its holders, each with the time its entry expires. */
struct mholder {
    char token[PROTO_LOCK_ID_LEN];
    uint64_t expire_ms;
};
struct mhash {
    char mode[32]; /* "shared" or "permits <n>" */
    size_t n, cap;
    struct mholder *h;
};

struct entry {
    struct table_node node;
    uint64_t expire_ms; /* 0: never */
    struct mhash *hash; /* a holder hash (value is then empty), or NULL: a string */
    char *value;
    size_t vlen;
    size_t klen;
    char key[];
};

struct memstore {
    struct table keys;
    size_t sweep_slot; /* where the incremental sweep goes on */
};

struct memstore *memstore_new(void)
{
    struct memstore *ms = calloc(1, sizeof *ms);
    if (ms != NULL) table_init(&ms->keys);
    return ms;
}

static void hash_free(struct mhash *h)
{
    if (h != NULL) free(h->h);
    free(h);
}

static void entry_free(struct memstore *ms, struct entry *e)
{
    table_remove(&ms->keys, &e->node);
    hash_free(e->hash);
    free(e->value);
    free(e);
}

void memstore_free(struct memstore *ms)
{
    if (ms == NULL) return;
    while (ms->keys.count > 0) {
        for (size_t i = 0; i <= ms->keys.mask; i++) {
            while (ms->keys.buckets[i] != NULL)
                entry_free(ms, table_entry(ms->keys.buckets[i], struct entry, node));
        }
    }
    table_destroy(&ms->keys);
    free(ms);
}

size_t memstore_size(const struct memstore *ms)
{
    return ms->keys.count;
}

/* The live entry for a key, or NULL (an expired one is dropped). */
static struct entry *lookup(struct memstore *ms, const char *key, size_t klen)
{
    struct table_node *n = table_find(&ms->keys, key, klen);
    if (n == NULL) return NULL;
    struct entry *e = table_entry(n, struct entry, node);
    if (e->expire_ms != 0 && now_ms() >= e->expire_ms) {
        entry_free(ms, e);
        return NULL;
    }
    return e;
}

static bool value_is(const struct entry *e, const char *v, size_t vlen)
{
    return e != NULL && e->vlen == vlen && memcmp(e->value, v, vlen) == 0;
}

/* Set key to value, expiring px_ms from now (0: never). Returns -1 when out of memory. */
static int store(struct memstore *ms, const char *key, size_t klen, const char *v, size_t vlen, uint64_t px_ms)
{
    char *copy = malloc(vlen ? vlen : 1);
    if (copy == NULL) return -1;
    memcpy(copy, v, vlen);
    struct entry *e = lookup(ms, key, klen);
    if (e == NULL) {
        e = malloc(sizeof *e + klen);
        if (e == NULL) {
            free(copy);
            return -1;
        }
        memcpy(e->key, key, klen);
        e->klen = klen;
        e->node.key = e->key;
        e->node.klen = klen;
        e->value = NULL;
        e->hash = NULL;
        if (table_insert(&ms->keys, &e->node) != 0) {
            free(copy);
            free(e);
            return -1;
        }
    }
    free(e->value);
    hash_free(e->hash);
    e->hash = NULL;
    e->value = copy;
    e->vlen = vlen;
    e->expire_ms = px_ms ? now_ms() + px_ms : 0;
    return 0;
}

static uint64_t to_u64(const char *s, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (uint64_t)(s[i] - '0');
    return v;
}

static void reply_int(struct pool_reply *out, long long v)
{
    memset(out, 0, sizeof *out);
    out->kind = POOL_REPLY_INTEGER;
    out->integer = v;
}

static void reply_error(struct pool_reply *out, const char *text)
{
    memset(out, 0, sizeof *out);
    out->kind = POOL_REPLY_ERROR;
    out->str = text;
    out->len = strlen(text);
}

static double counter(struct memstore *ms, const char *key, size_t klen);
static void inspect_shared(const struct entry *e, char *buf, size_t buflen, size_t *len);
static int set_counter(struct memstore *ms, const char *key, size_t klen, uint64_t v);

/*
 * INCR as Redis does it: the value (absent: 0) must be a decimal integer
 * in the signed 64-bit range, and not already 2^63 - 1. Returns 0 with the
 * new value in *v; 1 with Redis' error text in *err (nothing changed); -1
 * out of memory.
 */
static int incr_counter(struct memstore *ms, const char *key, size_t klen, long long *v, const char **err)
{
    struct entry *e = lookup(ms, key, klen);
    long long cur = 0;
    if (e != NULL && e->hash != NULL) {
        *err = "WRONGTYPE Operation against a key holding the wrong kind of value";
        return 1;
    }
    if (e != NULL) {
        char num[24];
        char *end = NULL;
        /* Redis' string2ll: an optional '-', then "0" alone or digits not
         * starting with 0 ("-0" and "-01" are not integers either). */
        const char *d = e->value + (e->value[0] == '-');
        size_t dlen = e->vlen - (size_t)(d - e->value);
        bool canonical = e->vlen > 0 && e->vlen < sizeof num && dlen > 0 && d[0] >= '0' && d[0] <= '9' &&
                         !(d[0] == '0' && (dlen > 1 || d != e->value));
        if (canonical) {
            memcpy(num, e->value, e->vlen);
            num[e->vlen] = '\0';
            errno = 0;
            cur = strtoll(num, &end, 10);
            canonical = errno == 0 && end == num + e->vlen;
        }
        if (!canonical) {
            *err = "ERR value is not an integer or out of range";
            return 1;
        }
    }
    if (cur == LLONG_MAX) {
        *err = "ERR increment or decrement would overflow";
        return 1;
    }
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", cur + 1);
    uint64_t expire_ms = e != NULL ? e->expire_ms : 0; /* INCR keeps the key's expiry */
    if (store(ms, key, klen, num, (size_t)n, 0) != 0) return -1;
    if (expire_ms != 0) lookup(ms, key, klen)->expire_ms = expire_ms;
    *v = cur + 1;
    return 0;
}

/* The fenced scripts' next fence (LUA_NEXT_FENCE in redis_pool.c): INCR the
 * counter; -1 when it cannot be incremented or passes POOL_FENCE_MAX. */
static void reply_next_fence(struct memstore *ms, const char *key, size_t klen, struct pool_reply *out)
{
    long long f = 0;
    const char *err = NULL;
    int rc = incr_counter(ms, key, klen, &f, &err);
    if (rc < 0) reply_error(out, "OOM out of memory");
    else reply_int(out, rc > 0 || f > POOL_FENCE_MAX ? -1 : f);
}

void memstore_command(struct memstore *ms, int argc, const char **argv, const size_t *lens,
                      struct pool_reply *out, char *buf, size_t buflen)
{
    (void)buf;
    (void)buflen;
    if (argc == 2 && lens[0] == 4 && strncasecmp(argv[0], "INCR", 4) == 0) {
        long long v = 0;
        const char *err = NULL;
        int rc = incr_counter(ms, argv[1], lens[1], &v, &err);
        if (rc < 0) reply_error(out, "OOM out of memory");
        else if (rc > 0) reply_error(out, err);
        else reply_int(out, v);
        return;
    }
    if (argc != 6 || lens[0] != 3 || strncasecmp(argv[0], "SET", 3) != 0) {
        reply_error(out, "ERR the memory backend runs only the daemon's own commands");
        return;
    }
    memset(out, 0, sizeof *out);
    if (lookup(ms, argv[1], lens[1]) != NULL) {
        out->kind = POOL_REPLY_NIL;
        return;
    }
    if (store(ms, argv[1], lens[1], argv[2], lens[2], to_u64(argv[5], lens[5])) != 0) {
        reply_error(out, "OOM out of memory");
        return;
    }
    out->kind = POOL_REPLY_OK;
    out->str = "OK";
    out->len = 2;
}

/* A counter (the fence counter) as the fence-raise script reads it:
 * tonumber(value) or 0. Lua 5.1's tonumber is strtod (decimal, hex,
 * exponents, "inf"), with spaces allowed around it and nothing else after;
 * anything else, or an absent key, is 0. */
static double counter(struct memstore *ms, const char *key, size_t klen)
{
    struct entry *e = lookup(ms, key, klen);
    if (e == NULL || e->vlen == 0) return 0;
    char *text = malloc(e->vlen + 1);
    if (text == NULL) return 0;
    memcpy(text, e->value, e->vlen);
    text[e->vlen] = '\0';
    char *end;
    double v = strtod(text, &end);
    bool ok = end != text;
    while (ok && (*end == ' ' || (*end >= '\t' && *end <= '\r'))) end++;
    ok = ok && *end == '\0';
    free(text);
    return ok ? v : 0;
}

static int set_counter(struct memstore *ms, const char *key, size_t klen, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    return store(ms, key, klen, num, (size_t)n, 0);
}

/* "<key>,prio" into pk (1024 bytes); its length, or 0 when it does not fit. */
static size_t marker_key(char pk[1024], const char *key, size_t klen)
{
    if (klen + 5 > 1024) return 0;
    memcpy(pk, key, klen);
    memcpy(pk + klen, ",prio", 5);
    return klen + 5;
}

/* v has a lock id's form: 32 lowercase hex digits. */
static bool token_form(const char *v, size_t len)
{
    if (len != PROTO_LOCK_ID_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'))) return false;
    return true;
}

/* Whether the marker "<key>,prio" = "<p> <token>" names the key's current
 * value e; its priority p (0 included) into *q. */
static bool marker_of(struct memstore *ms, const char *key, size_t klen, const struct entry *e, uint64_t *q)
{
    char pk[1024];
    size_t pklen = marker_key(pk, key, klen);
    struct entry *m = pklen ? lookup(ms, pk, pklen) : NULL;
    if (m == NULL) return false;
    const char *sp = memchr(m->value, ' ', m->vlen);
    if (sp == NULL || sp == m->value) return false;
    size_t qlen = (size_t)(sp - m->value);
    for (size_t i = 0; i < qlen; i++)
        if (m->value[i] < '0' || m->value[i] > '9') return false;
    if (!value_is(e, sp + 1, m->vlen - qlen - 1)) return false;
    *q = to_u64(m->value, qlen);
    return true;
}

/* The priority the marker gives to the key's current value e, or 0 when
 * there is no marker naming that value. */
static uint64_t marked_priority(struct memstore *ms, const char *key, size_t klen, const struct entry *e)
{
    uint64_t q = 0;
    return marker_of(ms, key, klen, e, &q) ? q : 0;
}

/* May a priority-prio acquire replace e (the live entry of key)? As the
 * scripts' may_take: only a token redlockd provably wrote, that is the one
 * this daemon's lower-priority holder has (known), or one its marker gives
 * a lower priority. */
static bool may_take(struct memstore *ms, const char *key, size_t klen, const struct entry *e, uint64_t prio,
                     const char *known, size_t known_len)
{
    if (!token_form(e->value, e->vlen)) return false;
    if (known_len > 0 && value_is(e, known, known_len)) return true;
    if (prio == 0) return false;
    uint64_t q = 0; /* a marker of priority 0 counts too, as in the script */
    return marker_of(ms, key, klen, e, &q) && q < prio;
}

/* Write the marker "<prio> <token>" of key, expiring with it. */
static int set_marker(struct memstore *ms, const char *key, size_t klen, const char *prio, size_t plen,
                      const char *token, size_t token_len, uint64_t px_ms)
{
    char pk[1024], v[32 + PROTO_LOCK_ID_LEN];
    size_t pklen = marker_key(pk, key, klen);
    if (pklen == 0 || plen + 1 + token_len > sizeof v) return -1;
    memcpy(v, prio, plen);
    v[plen] = ' ';
    memcpy(v + plen + 1, token, token_len);
    return store(ms, pk, pklen, v, plen + 1 + token_len, px_ms);
}

static void drop_priority(struct memstore *ms, const char *key, size_t klen)
{
    char pk[1024];
    size_t pklen = marker_key(pk, key, klen);
    struct entry *e = pklen ? lookup(ms, pk, pklen) : NULL;
    if (e != NULL) entry_free(ms, e);
}

/* One script call's keys and arguments, with ARGV[1..3] (token, ttl,
 * priority) decoded as most scripts use them. */
struct script_call {
    size_t nkeys;
    const char *const *keys;
    const size_t *keylens;
    size_t nargs;
    const char *const *args;
    const size_t *arglens;
    const char *token;
    size_t token_len;
    uint64_t ttl, prio;
};

static int handoff_fleet(struct memstore *ms, const struct script_call *c, struct pool_reply *out);
static int release_reserve(struct memstore *ms, const char *key, size_t klen, const struct script_call *c);

/* ACQUIRE_MULTI / ACQUIRE_FENCED: all keys or none. 0 when one is held (and
 * may not be taken by priority), else 1, or (fenced) the next fence from the
 * counter after the lock keys. */
static void script_acquire(struct memstore *ms, const struct script_call *c, bool fenced,
                           struct pool_reply *out)
{
    size_t n = fenced ? c->nkeys - 1 : c->nkeys; /* then the counter */
    for (size_t i = 0; i < n; i++) {
        struct entry *e = lookup(ms, c->keys[i], c->keylens[i]);
        const char *known = c->prio && c->nargs > 3 + i ? c->args[3 + i] : "";
        size_t known_len = c->prio && c->nargs > 3 + i ? c->arglens[3 + i] : 0;
        if (e != NULL && !(c->prio && may_take(ms, c->keys[i], c->keylens[i], e, c->prio, known, known_len))) {
            reply_int(out, 0);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (store(ms, c->keys[i], c->keylens[i], c->token, c->token_len, c->ttl) != 0 ||
            (c->prio && set_marker(ms, c->keys[i], c->keylens[i], c->args[2], c->arglens[2], c->token,
                                   c->token_len, c->ttl) != 0)) {
            reply_error(out, "OOM out of memory");
            return;
        }
    }
    if (fenced) reply_next_fence(ms, c->keys[n], c->keylens[n], out);
    else reply_int(out, 1);
}

/* EXTEND: 1 when every key is absent or ours (all are then set again with
 * the TTL), else 0, or -1 when the other holder has a higher priority. */
static void script_extend(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        struct entry *e = lookup(ms, c->keys[i], c->keylens[i]);
        if (e != NULL && !value_is(e, c->token, c->token_len)) {
            reply_int(out, marked_priority(ms, c->keys[i], c->keylens[i], e) > c->prio ? -1 : 0);
            return;
        }
    }
    for (size_t i = 0; i < c->nkeys; i++) {
        if (store(ms, c->keys[i], c->keylens[i], c->token, c->token_len, c->ttl) != 0 ||
            (c->prio && set_marker(ms, c->keys[i], c->keylens[i], c->args[2], c->arglens[2], c->token,
                                   c->token_len, c->ttl) != 0)) {
            reply_error(out, "OOM out of memory");
            return;
        }
    }
    reply_int(out, 1);
}

/* RELEASE: delete the keys that hold our token; replies how many. */
static void script_release(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    long long deleted = 0;
    for (size_t i = 0; i < c->nkeys; i++) {
        struct entry *e = lookup(ms, c->keys[i], c->keylens[i]);
        if (value_is(e, c->token, c->token_len)) {
            entry_free(ms, e);
            drop_priority(ms, c->keys[i], c->keylens[i]);
            deleted++;
            if (c->nargs > 1 && release_reserve(ms, c->keys[i], c->keylens[i], c) != 0) {
                reply_error(out, "OOM out of memory");
                return;
            }
        }
    }
    reply_int(out, deleted);
}

/* INSPECT: "<pttl> <token>" (or "~<digest>" for a value that is no token)
 * in buf, or "" when the key is absent. */
static void script_inspect(struct memstore *ms, const struct script_call *c, struct pool_reply *out, char *buf,
                           size_t buflen)
{
    memset(out, 0, sizeof *out);
    out->kind = POOL_REPLY_STRING;
    out->str = buf;
    struct entry *e = c->nkeys ? lookup(ms, c->keys[0], c->keylens[0]) : NULL;
    if (e == NULL) {
        buf[0] = '\0';
        return;
    }
    if (e->hash != NULL) {
        inspect_shared(e, buf, buflen, &out->len);
        return;
    }
    long long pttl = e->expire_ms ? (long long)(e->expire_ms - now_ms()) : -1;
    /* As the script: a token, or only a digest of anything else (here
     * FNV-1a, where Redis uses SHA-1; only equality is used). */
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < e->vlen; i++) h = (h ^ (unsigned char)e->value[i]) * 1099511628211ull;
    int n = token_form(e->value, e->vlen) ? snprintf(buf, buflen, "%lld %.*s", pttl, (int)e->vlen, e->value)
                                          : snprintf(buf, buflen, "%lld ~%016llx", pttl, (unsigned long long)h);
    out->len = n < 0 ? 0 : (size_t)n < buflen ? (size_t)n : buflen - 1;
}

/* FENCE_RAISE: raise the counter keys[0] to at least ARGV[1]; replies 1. */
static void script_fence_raise(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    uint64_t f = c->nargs > 0 ? to_u64(c->args[0], c->arglens[0]) : 0;
    if (c->nkeys > 0 && counter(ms, c->keys[0], c->keylens[0]) < f &&
        set_counter(ms, c->keys[0], c->keylens[0], f) != 0) {
        reply_error(out, "OOM out of memory");
        return;
    }
    reply_int(out, 1);
}

/* HANDOFF: ARGV old token, new token, ttl, priority, fenced. The key goes
 * from the old token (or nobody) to the new one: 1, or the next fence when
 * fenced; 0 when someone else holds it. */
static void script_handoff(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    const char *const *args = c->args;
    const size_t *arglens = c->arglens;
    uint64_t hprio = c->nargs > 3 ? to_u64(args[3], arglens[3]) : 0;
    struct entry *e = lookup(ms, c->keys[0], c->keylens[0]);
    if (e != NULL && !may_take(ms, c->keys[0], c->keylens[0], e, hprio, args[0], arglens[0])) {
        reply_int(out, 0);
        return;
    }
    if (handoff_fleet(ms, c, out) != 0) return;
    uint64_t httl = to_u64(args[2], arglens[2]);
    drop_priority(ms, c->keys[0], c->keylens[0]);
    if (store(ms, c->keys[0], c->keylens[0], args[1], arglens[1], httl) != 0 ||
        (hprio &&
         set_marker(ms, c->keys[0], c->keylens[0], args[3], arglens[3], args[1], arglens[1], httl) != 0)) {
        reply_error(out, "OOM out of memory");
        return;
    }
    if (c->nargs > 4 && arglens[4] == 1 && args[4][0] == '1') {
        reply_next_fence(ms, c->keys[1], c->keylens[1], out);
        return;
    }
    reply_int(out, 1);
}

/* ---- fleet waiting: the registry "<key>,w" and reservation "<key>,r" (LUA_FLEET) ---- */

#define REG_NODE_MAX 64 /* longer node ids are not kept (the daemon's are POOL_NODE_ID_LEN) */

/* The scripts' clock(): Redis' TIME in ms, that is the wall clock. Only
 * ordering and short expiries within this one store are read from it. */
static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000 + (double)(ts.tv_nsec / 1000000);
}

struct reg_entry {
    char node[REG_NODE_MAX + 1];
    size_t nlen;
    double since, until;
};

struct registry {
    struct reg_entry e[POOL_REGISTRY_MAX];
    size_t n;
};

/* "<key><suffix>" into out (1024 bytes); its length, or 0 when it does not fit. */
static size_t suffixed(char out[1024], const char *key, size_t klen, const char *suffix)
{
    size_t slen = strlen(suffix);
    if (klen + slen > 1024) return 0;
    memcpy(out, key, klen);
    memcpy(out + klen, suffix, slen);
    return klen + slen;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static double digits_value(const char *s, size_t len)
{
    char num[64];
    if (len >= sizeof num) return 1e300; /* as Lua: a huge number */
    memcpy(num, s, len);
    num[len] = '\0';
    return strtod(num, NULL);
}

/* reg_parse: the live entries of a registry value, as string.gmatch(v,
 * '(%x+) (%d+) (%d+)') finds them (each run maximal; a failed match moves
 * on by one byte). */
static void reg_parse(const struct entry *v, double now, struct registry *t)
{
    t->n = 0;
    if (v == NULL) return;
    const char *s = v->value;
    size_t len = v->vlen, i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && is_hex(s[j])) j++;
        size_t a = j + 1, b = a;
        if (j == i || j >= len || s[j] != ' ') goto next;
        while (b < len && is_digit(s[b])) b++;
        if (b == a || b >= len || s[b] != ' ') goto next;
        size_t c = b + 1, d = c;
        while (d < len && is_digit(s[d])) d++;
        if (d == c) goto next;
        double until = digits_value(s + c, d - c);
        if (until > now && t->n < POOL_REGISTRY_MAX && j - i <= REG_NODE_MAX) {
            struct reg_entry *e = &t->e[t->n++];
            memcpy(e->node, s + i, j - i);
            e->nlen = j - i;
            e->node[e->nlen] = '\0';
            e->since = digits_value(s + a, b - a);
            e->until = until;
        }
        i = d;
        continue;
    next:
        i++;
    }
}

static bool node_is(const struct reg_entry *e, const char *node, size_t nlen)
{
    return e->nlen == nlen && memcmp(e->node, node, nlen) == 0;
}

static void reg_put(struct registry *t, const char *node, size_t nlen, double since, double until)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!node_is(&t->e[i], node, nlen)) continue;
        if (since < t->e[i].since) t->e[i].since = since;
        if (until > t->e[i].until) t->e[i].until = until;
        return;
    }
    if (t->n >= POOL_REGISTRY_MAX || nlen > REG_NODE_MAX) return;
    struct reg_entry *e = &t->e[t->n++];
    memcpy(e->node, node, nlen);
    e->node[nlen] = '\0';
    e->nlen = nlen;
    e->since = since;
    e->until = until;
}

static bool reg_drop(struct registry *t, const char *node, size_t nlen)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!node_is(&t->e[i], node, nlen)) continue;
        memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof t->e[0]);
        t->n--;
        return true;
    }
    return false;
}

/* The oldest entry of a node other than node (ties: the first), or NULL. */
static const struct reg_entry *reg_head(const struct registry *t, const char *node, size_t nlen)
{
    const struct reg_entry *h = NULL;
    for (size_t i = 0; i < t->n; i++)
        if (!node_is(&t->e[i], node, nlen) && (h == NULL || t->e[i].since < h->since)) h = &t->e[i];
    return h;
}

/* reg_save: write the entries back to rk, expiring with the last; none: deleted. */
static int reg_save(struct memstore *ms, const char *rk, size_t rklen, const struct registry *t, double now)
{
    if (t->n == 0) {
        struct entry *e = lookup(ms, rk, rklen);
        if (e != NULL) entry_free(ms, e);
        return 0;
    }
    char v[POOL_REGISTRY_MAX * (REG_NODE_MAX + 48)];
    size_t len = 0;
    double last = now + 1;
    for (size_t i = 0; i < t->n; i++) {
        const struct reg_entry *e = &t->e[i];
        int n = snprintf(v + len, sizeof v - len, "%s%s %lld %lld", i ? ";" : "", e->node, (long long)e->since,
                         (long long)e->until);
        if (n < 0 || (size_t)n >= sizeof v - len) return -1;
        len += (size_t)n;
        if (e->until > last) last = e->until;
    }
    return store(ms, rk, rklen, v, len, (uint64_t)(long long)(last - now));
}

/* ACQUIRE_FLEET: KEYS key, counter; ARGV token, ttl, fenced, node, registry
 * ms [, waiter's age]. Refused (0, and the node registered, dated back by
 * the age) when the key is held or reserved for another node; else set (1
 * or the fence), the node's entry and the reservation dropped. */
static void script_acquire_fleet(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    if (c->nkeys < 2 || c->nargs < 5) {
        reply_error(out, "ERR wrong number of arguments");
        return;
    }
    const char *key = c->keys[0], *node = c->args[3];
    size_t klen = c->keylens[0], nlen = c->arglens[3];
    char wk[1024], rk[1024];
    size_t wklen = suffixed(wk, key, klen, ",w"), rklen = suffixed(rk, key, klen, ",r");
    if (wklen == 0 || rklen == 0) {
        reply_error(out, "ERR key too long");
        return;
    }
    double now = wall_ms();
    struct registry t;
    reg_parse(lookup(ms, wk, wklen), now, &t);
    struct entry *r = lookup(ms, rk, rklen);
    if (lookup(ms, key, klen) != NULL || (r != NULL && !value_is(r, node, nlen))) {
        double age = c->nargs > 5 ? (double)to_u64(c->args[5], c->arglens[5]) : 0;
        reg_put(&t, node, nlen, now - age, now + (double)to_u64(c->args[4], c->arglens[4]));
        if (reg_save(ms, wk, wklen, &t, now) != 0) reply_error(out, "OOM out of memory");
        else reply_int(out, 0);
        return;
    }
    if (store(ms, key, klen, c->token, c->token_len, c->ttl) != 0 ||
        (reg_drop(&t, node, nlen) && reg_save(ms, wk, wklen, &t, now) != 0)) {
        reply_error(out, "OOM out of memory");
        return;
    }
    if (r != NULL) entry_free(ms, r);
    if (c->arglens[2] == 1 && c->args[2][0] == '1') reply_next_fence(ms, c->keys[1], c->keylens[1], out);
    else reply_int(out, 1);
}

/* UNREGISTER: KEYS key; ARGV node, channel. 1 when the node's entry was
 * there; a reservation for it is dropped. (No subscribers here: PUBLISH is
 * nothing in one process.) */
static void script_unregister(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    if (c->nkeys < 1 || c->nargs < 1) {
        reply_error(out, "ERR wrong number of arguments");
        return;
    }
    char wk[1024], rk[1024];
    size_t wklen = suffixed(wk, c->keys[0], c->keylens[0], ",w");
    size_t rklen = suffixed(rk, c->keys[0], c->keylens[0], ",r");
    struct entry *w = wklen ? lookup(ms, wk, wklen) : NULL;
    if (w == NULL || rklen == 0) {
        reply_int(out, 0);
        return;
    }
    double now = wall_ms();
    struct registry t;
    reg_parse(w, now, &t);
    bool dropped = reg_drop(&t, c->args[0], c->arglens[0]);
    if (reg_save(ms, wk, wklen, &t, now) != 0) {
        reply_error(out, "OOM out of memory");
        return;
    }
    struct entry *r = lookup(ms, rk, rklen);
    if (value_is(r, c->args[0], c->arglens[0])) entry_free(ms, r);
    reply_int(out, dropped ? 1 : 0);
}

/* RELEASE's fleet part for a key it deleted (ARGV channel, reservation ms):
 * a live registry reserves the key for its oldest entry. */
static int release_reserve(struct memstore *ms, const char *key, size_t klen, const struct script_call *c)
{
    char wk[1024], rk[1024];
    size_t wklen = suffixed(wk, key, klen, ",w"), rklen = suffixed(rk, key, klen, ",r");
    struct entry *w = wklen ? lookup(ms, wk, wklen) : NULL;
    if (w == NULL || rklen == 0) return 0;
    struct registry t;
    reg_parse(w, wall_ms(), &t);
    const struct reg_entry *h = reg_head(&t, "", 0);
    if (h == NULL) return 0;
    return store(ms, rk, rklen, h->node, h->nlen, c->nargs > 2 ? to_u64(c->args[2], c->arglens[2]) : 0);
}

/* HANDOFF's fleet part (ARGV[6..12]: node, waiter's age, streak, streak
 * bound, reservation ms, channel, registry ms). 1: yielded (reply set);
 * -1: refused, the key free and reserved for another node (reply set);
 * 0: go on with the swap. */
static int handoff_fleet(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    const char *const *a = c->args;
    const size_t *al = c->arglens;
    if (c->nargs < 12 || al[5] == 0) return 0;
    const char *key = c->keys[0];
    size_t klen = c->keylens[0];
    char wk[1024], rk[1024];
    size_t wklen = suffixed(wk, key, klen, ",w"), rklen = suffixed(rk, key, klen, ",r");
    if (wklen == 0 || rklen == 0) return 0;
    struct entry *w = lookup(ms, wk, wklen);
    struct entry *r = lookup(ms, rk, rklen);
    if (w != NULL) {
        double now = wall_ms();
        struct registry t;
        reg_parse(w, now, &t);
        const struct reg_entry *h = reg_head(&t, a[5], al[5]);
        double since = now - (double)to_u64(a[6], al[6]);
        if (h != NULL && (h->since < since || to_u64(a[7], al[7]) >= to_u64(a[8], al[8]))) {
            struct entry *k = lookup(ms, key, klen);
            if (value_is(k, a[0], al[0])) {
                entry_free(ms, k);
                drop_priority(ms, key, klen);
            }
            char head[REG_NODE_MAX];
            size_t hlen = h->nlen;
            memcpy(head, h->node, hlen);
            reg_put(&t, a[5], al[5], since, now + (double)to_u64(a[11], al[11]));
            if (store(ms, rk, rklen, head, hlen, to_u64(a[9], al[9])) != 0 ||
                reg_save(ms, wk, wklen, &t, now) != 0)
                reply_error(out, "OOM out of memory");
            else reply_int(out, POOL_YIELDED);
            return 1;
        }
    }
    if (lookup(ms, key, klen) == NULL && r != NULL && !value_is(r, a[5], al[5])) {
        reply_int(out, 0);
        return -1;
    }
    return 0;
}


/* ---- shared keys (redis_pool.c LUA_SHARED_*) ---- */

/* The "<key>,wwait" marker exists. */
static bool writer_waits(struct memstore *ms, const char *key, size_t klen)
{
    char wk[1024];
    if (klen + 6 > sizeof wk) return false;
    memcpy(wk, key, klen);
    memcpy(wk + klen, ",wwait", 6);
    return lookup(ms, wk, klen + 6) != NULL;
}

/* prune(): drop expired holders of e; none left: the key is deleted (e
 * freed), else it expires with its latest holder. Returns how many live. */
static size_t hash_prune(struct memstore *ms, struct entry *e, uint64_t now)
{
    struct mhash *h = e->hash;
    size_t j = 0;
    uint64_t mx = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->h[i].expire_ms <= now) continue;
        if (h->h[i].expire_ms > mx) mx = h->h[i].expire_ms;
        h->h[j++] = h->h[i];
    }
    h->n = j;
    if (j == 0) entry_free(ms, e);
    else e->expire_ms = mx;
    return j;
}

/* A new holder slot at the end of h (grown as needed), or NULL without memory. */
static struct mholder *hash_add(struct mhash *h)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 4;
        struct mholder *g = realloc(h->h, cap * sizeof *g);
        if (g == NULL) return NULL;
        h->h = g;
        h->cap = cap;
    }
    return &h->h[h->n++];
}

static struct mholder *hash_find(struct mhash *h, const char *token, size_t len)
{
    for (size_t i = 0; len == PROTO_LOCK_ID_LEN && i < h->n; i++)
        if (memcmp(h->h[i].token, token, len) == 0) return &h->h[i];
    return NULL;
}

/* The scripts' check(): may key hold the holder (c->token, mode, lim)?
 * Returns 0 (yes), 1 (refused: reply 0), 2 (another mode: "mode <m>" in buf). */
static int shared_check(struct memstore *ms, const struct script_call *c, size_t i, uint64_t lim, bool admit,
                        uint64_t now, char *buf, size_t buflen)
{
    const char *key = c->keys[i];
    size_t klen = c->keylens[i];
    struct entry *e = lookup(ms, key, klen);
    if (e == NULL) return admit && writer_waits(ms, key, klen) ? 1 : 0;
    if (e->hash == NULL) return 1;
    char mode[sizeof e->hash->mode];
    snprintf(mode, sizeof mode, "%s", e->hash->mode);
    size_t live = hash_prune(ms, e, now);
    if (live == 0) return admit && writer_waits(ms, key, klen) ? 1 : 0;
    if (strlen(mode) != c->arglens[2] || memcmp(mode, c->args[2], c->arglens[2]) != 0) {
        snprintf(buf, buflen, "mode %s", mode);
        return 2;
    }
    bool mine = hash_find(e->hash, c->token, c->token_len) != NULL;
    if (admit && !mine && writer_waits(ms, key, klen)) return 1;
    if (lim > 0 && !mine && live >= lim) return 1;
    return 0;
}

/* The scripts' enter(): the holder's entry expires ttl from now. -1: out of memory. */
static int shared_enter(struct memstore *ms, const struct script_call *c, size_t i, uint64_t now)
{
    const char *key = c->keys[i];
    size_t klen = c->keylens[i];
    struct entry *e = lookup(ms, key, klen);
    if (e == NULL) {
        if (store(ms, key, klen, "", 0, 0) != 0) return -1;
        e = lookup(ms, key, klen);
        e->hash = calloc(1, sizeof *e->hash);
        if (e->hash == NULL) {
            entry_free(ms, e);
            return -1;
        }
    }
    struct mhash *h = e->hash;
    snprintf(h->mode, sizeof h->mode, "%.*s", (int)c->arglens[2], c->args[2]);
    struct mholder *m = hash_find(h, c->token, c->token_len);
    if (m == NULL) {
        if ((m = hash_add(h)) == NULL) return -1;
        memcpy(m->token, c->token, PROTO_LOCK_ID_LEN);
    }
    m->expire_ms = now + c->ttl;
    hash_prune(ms, e, now);
    return 0;
}

/* The fleet part of a SHARED_ACQUIRE (ARGV[6..9]: node, registry ms,
 * waiter's age, channel; one key): on, and whom the key is reserved for. */
struct shared_fleet {
    bool on;
    bool ours;  /* reserved for this node: it may pass the writer marker */
    bool other; /* reserved for another node: refused */
    char wk[1024], rk[1024];
    size_t wklen, rklen;
};

static void shared_fleet_look(struct memstore *ms, const struct script_call *c, struct shared_fleet *f)
{
    f->on = c->nkeys == 2 && c->nargs >= 9 && c->arglens[5] > 0;
    f->ours = f->other = false;
    if (!f->on) return;
    f->wklen = suffixed(f->wk, c->keys[0], c->keylens[0], ",w");
    f->rklen = suffixed(f->rk, c->keys[0], c->keylens[0], ",r");
    if (f->wklen == 0 || f->rklen == 0) {
        f->on = false;
        return;
    }
    struct entry *r = lookup(ms, f->rk, f->rklen);
    f->ours = value_is(r, c->args[5], c->arglens[5]);
    f->other = r != NULL && !f->ours;
}

/* A refused fleet acquire registers its node, its entry dated back by the
 * waiter's age; one that got in leaves the registry and uses up its
 * reservation (the wake-up of the next node is a PUBLISH: nothing here). */
static int shared_fleet_after(struct memstore *ms, const struct script_call *c, const struct shared_fleet *f,
                              bool admitted)
{
    double now = wall_ms();
    struct registry t;
    reg_parse(lookup(ms, f->wk, f->wklen), now, &t);
    if (!admitted) {
        double age = (double)to_u64(c->args[7], c->arglens[7]);
        reg_put(&t, c->args[5], c->arglens[5], now - age, now + (double)to_u64(c->args[6], c->arglens[6]));
        return reg_save(ms, f->wk, f->wklen, &t, now);
    }
    if (reg_drop(&t, c->args[5], c->arglens[5]) && reg_save(ms, f->wk, f->wklen, &t, now) != 0) return -1;
    if (f->ours) entry_free(ms, lookup(ms, f->rk, f->rklen));
    return 0;
}

/* SHARED_ACQUIRE: ARGV token, ttl, mode, limit, fenced [, fleet: node,
 * registry ms, age, channel]; KEYS then the counter. */
static void script_shared_acquire(struct memstore *ms, const struct script_call *c, struct pool_reply *out,
                                  char *buf, size_t buflen)
{
    uint64_t now = now_ms();
    if (c->nkeys < 2 || c->nargs < 5 || c->token_len != PROTO_LOCK_ID_LEN) {
        reply_error(out, "ERR bad shared acquire");
        return;
    }
    size_t n = c->nkeys - 1;
    uint64_t lim = to_u64(c->args[3], c->arglens[3]);
    struct shared_fleet f;
    shared_fleet_look(ms, c, &f);
    for (size_t i = 0; i < n; i++) {
        int r = shared_check(ms, c, i, lim, !f.ours, now, buf, buflen);
        if (r == 0 && f.other) r = 1;
        if (r == 1) {
            if (f.on && shared_fleet_after(ms, c, &f, false) != 0) reply_error(out, "OOM out of memory");
            else reply_int(out, 0);
            return;
        }
        if (r == 2) {
            memset(out, 0, sizeof *out);
            out->kind = POOL_REPLY_STRING;
            out->str = buf;
            out->len = strlen(buf);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (shared_enter(ms, c, i, now) != 0) {
            reply_error(out, "OOM out of memory");
            return;
        }
    }
    if (f.on && shared_fleet_after(ms, c, &f, true) != 0) {
        reply_error(out, "OOM out of memory");
        return;
    }
    if (c->arglens[4] == 1 && c->args[4][0] == '1') reply_next_fence(ms, c->keys[n], c->keylens[n], out);
    else reply_int(out, 1);
}

/* SHARED_EXTEND: ARGV token, ttl, mode, limit. */
static void script_shared_extend(struct memstore *ms, const struct script_call *c, struct pool_reply *out,
                                 char *buf, size_t buflen)
{
    uint64_t now = now_ms();
    if (c->nargs < 4 || c->token_len != PROTO_LOCK_ID_LEN) {
        reply_error(out, "ERR bad shared extend");
        return;
    }
    uint64_t lim = to_u64(c->args[3], c->arglens[3]);
    for (size_t i = 0; i < c->nkeys; i++) {
        if (shared_check(ms, c, i, lim, false, now, buf, buflen) != 0) {
            reply_int(out, 0);
            return;
        }
    }
    for (size_t i = 0; i < c->nkeys; i++) {
        if (shared_enter(ms, c, i, now) != 0) {
            reply_error(out, "OOM out of memory");
            return;
        }
    }
    reply_int(out, 1);
}

/* SHARED_RELEASE's fleet part for key (ARGV channel, reservation ms, node,
 * age of the node's oldest waiter), after a holder left it: with room again
 * (live holders left under mode), the oldest other node registered before
 * that waiter came gets the reservation. */
static int shared_release_reserve(struct memstore *ms, const char *key, size_t klen, const char *mode,
                                  size_t live, const struct script_call *c)
{
    uint64_t lim = strncmp(mode, "permits ", 8) == 0 ? to_u64(mode + 8, strlen(mode + 8)) : 0;
    if (live > 0 && (lim == 0 || live >= lim)) return 0;
    char wk[1024], rk[1024];
    size_t wklen = suffixed(wk, key, klen, ",w"), rklen = suffixed(rk, key, klen, ",r");
    if (wklen == 0 || rklen == 0) return 0;
    double now = wall_ms();
    struct registry t;
    reg_parse(lookup(ms, wk, wklen), now, &t);
    const struct reg_entry *h = reg_head(&t, c->args[3], c->arglens[3]);
    if (h == NULL || h->since > now - (double)to_u64(c->args[4], c->arglens[4])) return 0;
    return store(ms, rk, rklen, h->node, h->nlen, to_u64(c->args[2], c->arglens[2]));
}

/* SHARED_RELEASE: ARGV token [, fleet: channel, reservation ms, node, age];
 * how many entries were removed. */
static void script_shared_release(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    uint64_t now = now_ms();
    long long n = 0;
    for (size_t i = 0; i < c->nkeys; i++) {
        struct entry *e = lookup(ms, c->keys[i], c->keylens[i]);
        if (e == NULL || e->hash == NULL) continue;
        struct mholder *m = hash_find(e->hash, c->token, c->token_len);
        if (m != NULL) {
            m->expire_ms = 0; /* pruned below */
            n++;
        }
        char mode[sizeof e->hash->mode];
        snprintf(mode, sizeof mode, "%s", e->hash->mode);
        size_t live = hash_prune(ms, e, now);
        if (m != NULL && c->nargs >= 5 &&
            shared_release_reserve(ms, c->keys[i], c->keylens[i], mode, live, c) != 0) {
            reply_error(out, "OOM out of memory");
            return;
        }
    }
    reply_int(out, n);
}

/* WRITER_WAIT: ARGV ms; marks every shared key. */
static void script_writer_wait(struct memstore *ms, const struct script_call *c, struct pool_reply *out)
{
    uint64_t px = c->nargs > 0 ? to_u64(c->args[0], c->arglens[0]) : 0;
    long long n = 0;
    for (size_t i = 0; i < c->nkeys; i++) {
        struct entry *e = lookup(ms, c->keys[i], c->keylens[i]);
        if (e == NULL || e->hash == NULL) continue;
        char wk[1024];
        size_t klen = c->keylens[i];
        if (klen + 6 > sizeof wk) continue;
        memcpy(wk, c->keys[i], klen);
        memcpy(wk + klen, ",wwait", 6);
        if (store(ms, wk, klen + 6, "1", 1, px) != 0) {
            reply_error(out, "OOM out of memory");
            return;
        }
        n++;
    }
    reply_int(out, n);
}

/* INSPECT of a shared key, as the script: "<pttl> =<mode, ' ' as ':'>" then
 * " <token>:<ms left>" per live holder (not pruned: INSPECT writes nothing). */
static void inspect_shared(const struct entry *e, char *buf, size_t buflen, size_t *len)
{
    uint64_t now = now_ms();
    long long pttl = e->expire_ms ? (long long)(e->expire_ms - now) : -1;
    size_t n = (size_t)snprintf(buf, buflen, "%lld =", pttl);
    for (const char *m = e->hash->mode; *m != '\0' && n + 1 < buflen; m++) buf[n++] = *m == ' ' ? ':' : *m;
    buf[n < buflen ? n : buflen - 1] = '\0';
    for (size_t i = 0; i < e->hash->n && n < buflen; i++) {
        const struct mholder *h = &e->hash->h[i];
        if (h->expire_ms <= now) continue;
        int w =
            snprintf(buf + n, buflen - n, " %.32s:%llu", h->token, (unsigned long long)(h->expire_ms - now));
        if (w < 0 || (size_t)w >= buflen - n) break;
        n += (size_t)w;
    }
    *len = n < buflen ? n : buflen - 1;
}

void memstore_script(struct memstore *ms, enum pool_script script, size_t nkeys, const char *const *keys,
                     const size_t *keylens, size_t nargs, const char *const *args, const size_t *arglens,
                     struct pool_reply *out, char *buf, size_t buflen)
{
    const struct script_call c = {
        .nkeys = nkeys,
        .keys = keys,
        .keylens = keylens,
        .nargs = nargs,
        .args = args,
        .arglens = arglens,
        .token = nargs > 0 ? args[0] : "",
        .token_len = nargs > 0 ? arglens[0] : 0,
        .ttl = nargs > 1 ? to_u64(args[1], arglens[1]) : 0,
        .prio = nargs > 2 ? to_u64(args[2], arglens[2]) : 0,
    };
    switch (script) {
    case SCRIPT_ACQUIRE_MULTI: script_acquire(ms, &c, false, out); return;
    case SCRIPT_ACQUIRE_FENCED: script_acquire(ms, &c, true, out); return;
    case SCRIPT_EXTEND: script_extend(ms, &c, out); return;
    case SCRIPT_RELEASE: script_release(ms, &c, out); return;
    case SCRIPT_INSPECT: script_inspect(ms, &c, out, buf, buflen); return;
    case SCRIPT_FENCE_RAISE: script_fence_raise(ms, &c, out); return;
    case SCRIPT_HANDOFF: script_handoff(ms, &c, out); return;
    case SCRIPT_ACQUIRE_FLEET: script_acquire_fleet(ms, &c, out); return;
    case SCRIPT_UNREGISTER: script_unregister(ms, &c, out); return;
    case SCRIPT_SHARED_ACQUIRE: script_shared_acquire(ms, &c, out, buf, buflen); return;
    case SCRIPT_SHARED_EXTEND: script_shared_extend(ms, &c, out, buf, buflen); return;
    case SCRIPT_SHARED_RELEASE: script_shared_release(ms, &c, out); return;
    case SCRIPT_WRITER_WAIT: script_writer_wait(ms, &c, out); return;
    case SCRIPT__COUNT: break;
    }
    reply_error(out, "ERR unknown script");
}

void memstore_sweep(struct memstore *ms, size_t max_slots)
{
    if (ms->keys.count == 0) return;
    uint64_t now = now_ms();
    for (size_t i = 0; i < max_slots; i++) {
        size_t slot = ms->sweep_slot++ & ms->keys.mask;
        struct table_node *n = ms->keys.buckets[slot];
        while (n != NULL) {
            struct table_node *next = n->next;
            struct entry *e = table_entry(n, struct entry, node);
            if (e->expire_ms != 0 && now >= e->expire_ms) entry_free(ms, e);
            n = next;
        }
    }
}

int memstore_set(struct memstore *ms, const char *key, size_t klen, const char *value, size_t vlen,
                 uint64_t px_ms)
{
    return store(ms, key, klen, value, vlen, px_ms);
}

bool memstore_peek(struct memstore *ms, const char *key, size_t klen, const char **value, size_t *vlen,
                   long long *pttl_ms)
{
    struct entry *e = lookup(ms, key, klen);
    if (e == NULL) return false;
    if (e->hash != NULL) {
        static char shown[4096];
        size_t n = (size_t)snprintf(shown, sizeof shown, "H %s", e->hash->mode);
        for (size_t i = 0; i < e->hash->n && n + 34 < sizeof shown; i++)
            n += (size_t)snprintf(shown + n, sizeof shown - n, " %.32s", e->hash->h[i].token);
        *value = shown;
        *vlen = n;
        *pttl_ms = e->expire_ms ? (long long)(e->expire_ms - now_ms()) : -1;
        return true;
    }
    *value = e->value;
    *vlen = e->vlen;
    *pttl_ms = e->expire_ms ? (long long)(e->expire_ms - now_ms()) : -1;
    return true;
}

int memstore_set_holder(struct memstore *ms, const char *key, size_t klen, const char *mode, const char *token,
                        long long rel_ms, uint64_t px_ms)
{
    struct entry *e = lookup(ms, key, klen);
    if (e != NULL && e->hash == NULL) entry_free(ms, e), e = NULL;
    if (e == NULL) {
        if (store(ms, key, klen, "", 0, 0) != 0) return -1;
        e = lookup(ms, key, klen);
        if ((e->hash = calloc(1, sizeof *e->hash)) == NULL) return -1;
    }
    struct mhash *h = e->hash;
    snprintf(h->mode, sizeof h->mode, "%s", mode);
    struct mholder *m = hash_add(h);
    if (m == NULL) return -1;
    memcpy(m->token, token, PROTO_LOCK_ID_LEN);
    uint64_t now = now_ms();
    m->expire_ms = rel_ms > 0 ? now + (uint64_t)rel_ms : now - (uint64_t)(-rel_ms) - 1;
    e->expire_ms = px_ms ? now + px_ms : 0;
    return 0;
}
