/*
 * check_memstore_lua.c - the memory backend (daemon/memstore.c) agrees with
 * the Lua scripts it re-implements (daemon/redis_pool.c). Each case plants
 * the same keys in a real redis-server and in a memstore, runs one script
 * on both (EVAL with the script's own text; memstore_script()), and
 * compares the replies and then every key the case touches, with its
 * ",prio" marker: value, and expiry within a tolerance.
 *
 * Known and accepted differences, normalised before comparing: INSPECT's
 * digest of a value that is not a token is SHA-1 on Redis and FNV-1a in
 * memstore ("~digest" here: only equality is ever used); a key of another
 * type than string cannot exist in memstore and is not tried. Fleet
 * waiting's registry ("<key>,w") holds master times: a setup value's
 * "@+<ms>" / "@-<ms>" is the wall clock now plus or minus ms, and numbers
 * above 10^11 (times) compare within TTL_SLACK_MS.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "memstore.h"
#include "redis_pool.h"

#define T1 "0123456789abcdef0123456789abcdef"
#define T2 "fedcba9876543210fedcba9876543210"
#define T3 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define UPPER "0123456789ABCDEF0123456789ABCDEF"
#define TTL_SLACK_MS 3000 /* two expiries set a moment apart on a busy machine */
#define MAXN 16
#define N1 "00000000000000a1"
#define N2 "00000000000000b2"
#define N3 "00000000000000c3"
#define CH "p,wake"

struct kv {
    const char *key, *value; /* value "@<mode>" with token: a holder hash (LUA_SHARED_*) */
    uint32_t px;             /* 0: no expiry */
    const char *token;       /* holder hash: the holder added */
    long long rel;           /* ... its entry expires this long from now (< 0: expired) */
};

struct dcase {
    const char *name;
    enum pool_script script;
    struct kv setup[MAXN];  /* ends at a NULL key */
    const char *keys[MAXN]; /* ends at NULL */
    const char *args[MAXN]; /* ends at NULL */
};

/* One case a line or two, as written (a string's kv leaves token and rel out). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* clang-format off */
static const struct dcase cases[] = {
    /* ---- acquire, several keys: ARGV token, ttl [, priority, known token per key] ---- */
    {"acquire free", SCRIPT_ACQUIRE_MULTI, {{NULL}}, {"a", "b"}, {T1, "60000"}},
    {"acquire one held", SCRIPT_ACQUIRE_MULTI, {{"b", T2, 60000}}, {"a", "b"}, {T1, "60000"}},
    {"acquire prio over unmarked", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}}, {"a"}, {T1, "60000", "5", ""}},
    {"acquire prio over lower mark", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}, {"a,prio", "3 " T2, 60000}},
     {"a", "b"}, {T1, "60000", "5", "", ""}},
    {"acquire prio over higher mark", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}, {"a,prio", "7 " T2, 60000}},
     {"a"}, {T1, "60000", "5", ""}},
    {"acquire prio over equal mark", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}, {"a,prio", "5 " T2, 60000}},
     {"a"}, {T1, "60000", "5", ""}},
    {"acquire prio over mark 0", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}, {"a,prio", "0 " T2, 60000}},
     {"a"}, {T1, "60000", "5", ""}},
    {"acquire prio, mark of another token", SCRIPT_ACQUIRE_MULTI,
     {{"a", T2, 60000}, {"a,prio", "3 " T3, 60000}}, {"a"}, {T1, "60000", "5", ""}},
    {"acquire prio, known holder", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}}, {"a"}, {T1, "60000", "5", T2}},
    {"acquire prio over foreign value", SCRIPT_ACQUIRE_MULTI, {{"a", "hello", 60000}, {"a,prio", "1 hello", 60000}},
     {"a"}, {T1, "60000", "5", "hello"}},
    {"acquire prio over upper-case token", SCRIPT_ACQUIRE_MULTI, {{"a", UPPER, 60000}, {"a,prio", "1 " UPPER, 60000}},
     {"a"}, {T1, "60000", "5", ""}},
    {"acquire prio, bad mark", SCRIPT_ACQUIRE_MULTI, {{"a", T2, 60000}, {"a,prio", "x3 " T2, 60000}},
     {"a"}, {T1, "60000", "5", ""}},
    {"acquire no expiry on holder", SCRIPT_ACQUIRE_MULTI, {{"b", T2, 0}}, {"a", "b"}, {T1, "60000"}},

    /* ---- fenced acquire: KEYS ..., counter ---- */
    {"fenced free", SCRIPT_ACQUIRE_FENCED, {{NULL}}, {"a", "b", ",fence"}, {T1, "60000", "0"}},
    {"fenced counter 41", SCRIPT_ACQUIRE_FENCED, {{",fence", "41", 0}}, {"a", ",fence"}, {T1, "60000", "0"}},
    {"fenced held", SCRIPT_ACQUIRE_FENCED, {{"a", T2, 60000}, {",fence", "41", 0}}, {"a", ",fence"},
     {T1, "60000", "0"}},
    {"fenced counter not a number", SCRIPT_ACQUIRE_FENCED, {{",fence", "abc", 0}}, {"a", ",fence"},
     {T1, "60000", "0"}},
    {"fenced counter at 2^63-1", SCRIPT_ACQUIRE_FENCED, {{",fence", "9223372036854775807", 0}}, {"a", ",fence"},
     {T1, "60000", "0"}},
    {"fenced counter at 2^53-1", SCRIPT_ACQUIRE_FENCED, {{",fence", "9007199254740991", 0}}, {"a", ",fence"},
     {T1, "60000", "0"}},
    {"fenced counter below 2^53-1", SCRIPT_ACQUIRE_FENCED, {{",fence", "9007199254740990", 0}}, {"a", ",fence"},
     {T1, "60000", "0"}},
    {"fenced counter -5", SCRIPT_ACQUIRE_FENCED, {{",fence", "-5", 0}}, {"a", ",fence"}, {T1, "60000", "0"}},
    {"fenced counter -0", SCRIPT_ACQUIRE_FENCED, {{",fence", "-0", 0}}, {"a", ",fence"}, {T1, "60000", "0"}},
    {"fenced counter -01", SCRIPT_ACQUIRE_FENCED, {{",fence", "-01", 0}}, {"a", ",fence"}, {T1, "60000", "0"}},
    {"fenced counter 007", SCRIPT_ACQUIRE_FENCED, {{",fence", "007", 0}}, {"a", ",fence"}, {T1, "60000", "0"}},
    {"fenced counter ' 5'", SCRIPT_ACQUIRE_FENCED, {{",fence", " 5", 0}}, {"a", ",fence"}, {T1, "60000", "0"}},
    {"fenced counter with expiry", SCRIPT_ACQUIRE_FENCED, {{",fence", "7", 60000}}, {"a", ",fence"},
     {T1, "60000", "0"}},
    {"fenced prio over lower mark", SCRIPT_ACQUIRE_FENCED, {{"a", T2, 60000}, {"a,prio", "2 " T2, 60000}},
     {"a", ",fence"}, {T1, "60000", "4", ""}},

    /* ---- extend: ARGV token, ttl [, priority] ---- */
    {"extend ours", SCRIPT_EXTEND, {{"a", T1, 10000}, {"b", T1, 10000}}, {"a", "b"}, {T1, "60000"}},
    {"extend forgotten", SCRIPT_EXTEND, {{"a", T1, 10000}}, {"a", "b"}, {T1, "60000"}},
    {"extend taken, unmarked", SCRIPT_EXTEND, {{"a", T1, 10000}, {"b", T2, 10000}}, {"a", "b"}, {T1, "60000"}},
    {"extend taken by higher priority", SCRIPT_EXTEND, {{"a", T2, 10000}, {"a,prio", "9 " T2, 10000}}, {"a"},
     {T1, "60000", "0"}},
    {"extend taken by equal priority", SCRIPT_EXTEND, {{"a", T2, 10000}, {"a,prio", "9 " T2, 10000}}, {"a"},
     {T1, "60000", "9"}},
    {"extend taken, mark of another token", SCRIPT_EXTEND, {{"a", T2, 10000}, {"a,prio", "9 " T3, 10000}},
     {"a"}, {T1, "60000", "0"}},
    {"extend with priority writes the mark", SCRIPT_EXTEND, {{"a", T1, 10000}}, {"a"}, {T1, "60000", "3"}},
    {"extend without priority keeps a mark", SCRIPT_EXTEND, {{"a", T1, 10000}, {"a,prio", "3 " T1, 10000}},
     {"a"}, {T1, "60000"}},
    {"extend taken by foreign value", SCRIPT_EXTEND, {{"a", "hello", 10000}}, {"a"}, {T1, "60000", "2"}},

    /* ---- release: ARGV token ---- */
    {"release ours", SCRIPT_RELEASE, {{"a", T1, 60000}, {"a,prio", "3 " T1, 60000}}, {"a"}, {T1}},
    {"release other's", SCRIPT_RELEASE, {{"a", T2, 60000}, {"a,prio", "3 " T2, 60000}}, {"a"}, {T1}},
    {"release some", SCRIPT_RELEASE, {{"a", T1, 60000}, {"b", T2, 60000}, {"c", T1, 0}}, {"a", "b", "c", "d"},
     {T1}},

    /* ---- inspect ---- */
    {"inspect absent", SCRIPT_INSPECT, {{NULL}}, {"a"}, {""}},
    {"inspect token", SCRIPT_INSPECT, {{"a", T1, 60000}}, {"a"}, {""}},
    {"inspect token without expiry", SCRIPT_INSPECT, {{"a", T1, 0}}, {"a"}, {""}},
    {"inspect foreign", SCRIPT_INSPECT, {{"a", "hello world", 60000}}, {"a"}, {""}},
    {"inspect foreign without expiry", SCRIPT_INSPECT, {{"a", "x", 0}}, {"a"}, {""}},
    {"inspect upper-case token", SCRIPT_INSPECT, {{"a", UPPER, 60000}}, {"a"}, {""}},
    {"inspect empty value", SCRIPT_INSPECT, {{"a", "", 60000}}, {"a"}, {""}},

    /* ---- hand-off: KEYS key [, counter]; ARGV old, new, ttl, priority, fenced ---- */
    {"handoff from old", SCRIPT_HANDOFF, {{"a", T1, 60000}, {"a,prio", "3 " T1, 60000}}, {"a"},
     {T1, T2, "30000", "0", "0"}},
    {"handoff taken", SCRIPT_HANDOFF, {{"a", T3, 60000}}, {"a"}, {T1, T2, "30000", "0", "0"}},
    {"handoff absent", SCRIPT_HANDOFF, {{NULL}}, {"a"}, {T1, T2, "30000", "0", "0"}},
    {"handoff with priority over a lower mark", SCRIPT_HANDOFF, {{"a", T3, 60000}, {"a,prio", "2 " T3, 60000}},
     {"a"}, {T1, T2, "30000", "5", "0"}},
    {"handoff with priority over a higher mark", SCRIPT_HANDOFF, {{"a", T3, 60000}, {"a,prio", "7 " T3, 60000}},
     {"a"}, {T1, T2, "30000", "5", "0"}},
    {"handoff fenced", SCRIPT_HANDOFF, {{"a", T1, 60000}, {",fence", "10", 0}}, {"a", ",fence"},
     {T1, T2, "30000", "0", "1"}},
    {"handoff fenced, bad counter", SCRIPT_HANDOFF, {{"a", T1, 60000}, {",fence", "abc", 0}}, {"a", ",fence"},
     {T1, T2, "30000", "0", "1"}},
    {"handoff over foreign", SCRIPT_HANDOFF, {{"a", "hello", 60000}}, {"a"}, {T1, T2, "30000", "9", "0"}},

    /* ---- fleet hand-off: ARGV old, new, ttl, priority, fenced, node, waiter's age, streak, streak bound,
     * reservation ms, channel, registry ms ---- */
#define HF(age, streak) {T1, T2, "30000", "0", "0", N1, age, streak, "8", "60000", CH, "5000"}
    {"handoff fleet, nobody registered", SCRIPT_HANDOFF, {{"a", T1, 60000}}, {"a", ",fence"}, HF("1000", "0")},
    {"handoff yields to an older waiter", SCRIPT_HANDOFF, {{"a", T1, 60000}, {"a,prio", "3 " T1, 60000},
     {"a,w", N2 " @-5000 @+5000", 60000}}, {"a", ",fence"}, HF("1000", "0")},
    {"handoff keeps a younger registration waiting", SCRIPT_HANDOFF,
     {{"a", T1, 60000}, {"a,w", N2 " @-500 @+5000", 60000}}, {"a", ",fence"}, HF("1000", "0")},
    {"handoff yields past the streak bound", SCRIPT_HANDOFF,
     {{"a", T1, 60000}, {"a,w", N2 " @-500 @+5000", 60000}}, {"a", ",fence"}, HF("1000", "8")},
    {"handoff yields to the oldest of several", SCRIPT_HANDOFF,
     {{"a", T1, 60000}, {"a,w", N2 " @-3000 @+5000;" N3 " @-4000 @+5000;" N1 " @-9000 @+5000", 60000}},
     {"a", ",fence"}, HF("1000", "0")},
    {"handoff ignores its own registration", SCRIPT_HANDOFF,
     {{"a", T1, 60000}, {"a,w", N1 " @-5000 @+5000", 60000}}, {"a", ",fence"}, HF("10", "9")},
    {"handoff ignores an expired registration", SCRIPT_HANDOFF,
     {{"a", T1, 60000}, {"a,w", N2 " @-9000 @-1", 60000}}, {"a", ",fence"}, HF("1000", "0")},
    {"handoff yield of a key that expired", SCRIPT_HANDOFF, {{"a,w", N2 " @-5000 @+5000", 60000}},
     {"a", ",fence"}, HF("1000", "0")},
    {"handoff refused: free and reserved for another", SCRIPT_HANDOFF, {{"a,r", N2, 60000}},
     {"a", ",fence"}, HF("1000", "0")},
    {"handoff free and reserved for us", SCRIPT_HANDOFF, {{"a,r", N1, 60000}}, {"a", ",fence"},
     HF("1000", "0")},
    {"handoff yield keeps a foreign holder", SCRIPT_HANDOFF,
     {{"a", T3, 60000}, {"a,prio", "2 " T3, 60000}, {"a,w", N2 " @-5000 @+5000", 60000}}, {"a", ",fence"},
     {T1, T2, "30000", "5", "0", N1, "10", "0", "8", "60000", CH, "5000"}},
    {"handoff with node off ignores the registry", SCRIPT_HANDOFF,
     {{"a", T1, 60000}, {"a,w", N2 " @-5000 @+5000", 60000}, {"a,r", N2, 60000}}, {"a", ",fence"},
     {T1, T2, "30000", "0", "0", "", "1000", "0", "8", "60000", CH, "5000"}},
    {"handoff registry junk", SCRIPT_HANDOFF, {{"a", T1, 60000}, {"a,w", "x 1 2;zz" N2 " 5 @+9000 tail", 60000}},
     {"a", ",fence"}, HF("1000", "0")},
#undef HF

    /* ---- fleet acquire: KEYS key, counter; ARGV token, ttl, fenced, node, registry ms [, waiter's age] ---- */
#define AF(fenced) {T1, "60000", fenced, N1, "5000"}
    {"fleet acquire free", SCRIPT_ACQUIRE_FLEET, {{NULL}}, {"a", ",fence"}, AF("0")},
    {"fleet acquire fenced", SCRIPT_ACQUIRE_FLEET, {{",fence", "41", 0}}, {"a", ",fence"}, AF("1")},
    {"fleet acquire held registers", SCRIPT_ACQUIRE_FLEET, {{"a", T2, 60000}}, {"a", ",fence"}, AF("1")},
    {"fleet acquire held registers dated back by the age", SCRIPT_ACQUIRE_FLEET, {{"a", T2, 60000}},
     {"a", ",fence"}, {T1, "60000", "0", N1, "5000", "4000"}},
    {"fleet acquire refresh keeps the older since", SCRIPT_ACQUIRE_FLEET,
     {{"a", T2, 60000}, {"a,w", N1 " @-9000 @+1000", 60000}}, {"a", ",fence"}, {T1, "60000", "0", N1, "5000", "4000"}},
    {"fleet acquire refresh keeps since", SCRIPT_ACQUIRE_FLEET,
     {{"a", T2, 60000}, {"a,w", N2 " @-100 @+3000;" N1 " @-3000 @+1000", 60000}}, {"a", ",fence"}, AF("0")},
    {"fleet acquire reserved for another", SCRIPT_ACQUIRE_FLEET, {{"a,r", N2, 60000}}, {"a", ",fence"}, AF("0")},
    {"fleet acquire reserved for us", SCRIPT_ACQUIRE_FLEET,
     {{"a,r", N1, 60000}, {"a,w", N1 " @-100 @+5000;" N2 " @-50 @+5000", 60000}}, {"a", ",fence"}, AF("0")},
    {"fleet acquire, last entry leaves", SCRIPT_ACQUIRE_FLEET, {{"a,w", N1 " @-100 @+5000", 60000}},
     {"a", ",fence"}, AF("1")},
    {"fleet acquire prunes expired", SCRIPT_ACQUIRE_FLEET,
     {{"a", T2, 60000}, {"a,w", N2 " @-9000 @-10;" N3 " @-100 @+5000", 60000}}, {"a", ",fence"}, AF("0")},
    {"fleet acquire registry junk", SCRIPT_ACQUIRE_FLEET, {{"a,w", "hello", 60000}}, {"a", ",fence"}, AF("0")},
    {"fleet acquire held, registry junk", SCRIPT_ACQUIRE_FLEET, {{"a", T2, 60000}, {"a,w", "hello", 60000}},
     {"a", ",fence"}, AF("0")},
#undef AF

    /* ---- release with fleet waiting: ARGV token, channel, reservation ms ---- */
    {"release reserves for the oldest registered", SCRIPT_RELEASE,
     {{"a", T1, 60000}, {"a,w", N2 " @-100 @+5000;" N3 " @-200 @+5000", 60000}}, {"a"}, {T1, CH, "60000"}},
    {"release, channel, nobody registered", SCRIPT_RELEASE, {{"a", T1, 60000}}, {"a"}, {T1, CH, "60000"}},
    {"release, only expired registrations", SCRIPT_RELEASE, {{"a", T1, 60000}, {"a,w", N2 " @-900 @-5", 60000}},
     {"a"}, {T1, CH, "60000"}},
    {"release other's, registered", SCRIPT_RELEASE, {{"a", T2, 60000}, {"a,w", N2 " @-100 @+5000", 60000}},
     {"a"}, {T1, CH, "60000"}},

    /* ---- unregister: KEYS key; ARGV node, channel ---- */
    {"unregister present", SCRIPT_UNREGISTER,
     {{"a,w", N1 " @-100 @+5000;" N2 " @-50 @+4000", 60000}, {"a,r", N1, 60000}}, {"a"}, {N1, CH}},
    {"unregister the last", SCRIPT_UNREGISTER, {{"a,w", N1 " @-100 @+5000", 60000}}, {"a"}, {N1, CH}},
    {"unregister absent", SCRIPT_UNREGISTER, {{NULL}}, {"a"}, {N1, CH}},
    {"unregister, reserved for another", SCRIPT_UNREGISTER,
     {{"a,w", N2 " @-100 @+5000", 60000}, {"a,r", N2, 60000}}, {"a"}, {N1, CH}},

    /* ---- fence raise: KEYS counter; ARGV value ---- */
    {"raise absent", SCRIPT_FENCE_RAISE, {{NULL}}, {",fence"}, {"5"}},
    {"raise below", SCRIPT_FENCE_RAISE, {{",fence", "3", 0}}, {",fence"}, {"5"}},
    {"raise above", SCRIPT_FENCE_RAISE, {{",fence", "10", 0}}, {",fence"}, {"5"}},
    {"raise equal", SCRIPT_FENCE_RAISE, {{",fence", "5", 0}}, {",fence"}, {"5"}},
    {"raise not a number", SCRIPT_FENCE_RAISE, {{",fence", "abc", 0}}, {",fence"}, {"5"}},
    {"raise number with junk", SCRIPT_FENCE_RAISE, {{",fence", "12abc", 0}}, {",fence"}, {"5"}},
    {"raise negative", SCRIPT_FENCE_RAISE, {{",fence", "-3", 0}}, {",fence"}, {"5"}},
    {"raise spaces", SCRIPT_FENCE_RAISE, {{",fence", " 7 ", 0}}, {",fence"}, {"5"}},
    {"raise exponent", SCRIPT_FENCE_RAISE, {{",fence", "1e3", 0}}, {",fence"}, {"5"}},
    {"raise with expiry", SCRIPT_FENCE_RAISE, {{",fence", "3", 60000}}, {",fence"}, {"5"}},
    {"raise large", SCRIPT_FENCE_RAISE, {{",fence", "9007199254740990", 0}}, {",fence"}, {"9007199254740991"}},

    /* ---- shared: holder hashes "@<mode>" (key, mode, px, token, entry expiry) ---- */
    {"shared acquire free", SCRIPT_SHARED_ACQUIRE, {{NULL}}, {"a", "b", ",fence"},
     {T1, "60000", "shared", "0", "1"}},
    {"shared acquire unfenced", SCRIPT_SHARED_ACQUIRE, {{NULL}}, {"a", ",fence"}, {T1, "60000", "shared", "0", "0"}},
    {"shared acquire joins readers", SCRIPT_SHARED_ACQUIRE, {{"a", "@shared", 60000, T2, 60000}}, {"a", ",fence"},
     {T1, "30000", "shared", "0", "1"}},
    {"shared acquire over exclusive", SCRIPT_SHARED_ACQUIRE, {{"b", T2, 60000}}, {"a", "b", ",fence"},
     {T1, "60000", "shared", "0", "1"}},
    {"shared acquire over foreign string", SCRIPT_SHARED_ACQUIRE, {{"a", "hello", 60000}}, {"a", ",fence"},
     {T1, "60000", "shared", "0", "1"}},
    {"shared acquire writer waits", SCRIPT_SHARED_ACQUIRE, {{"a", "@shared", 60000, T2, 60000}, {"a,wwait", "1", 5000}},
     {"a", ",fence"}, {T1, "60000", "shared", "0", "1"}},
    {"shared acquire writer waits, free key", SCRIPT_SHARED_ACQUIRE, {{"a,wwait", "1", 5000}}, {"a", ",fence"},
     {T1, "60000", "shared", "0", "1"}},
    {"shared acquire prunes expired", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@shared", 60000, T2, -5}, {"a", "@shared", 60000, T3, 20000}}, {"a", ",fence"},
     {T1, "10000", "shared", "0", "1"}},
    {"shared acquire all expired, other mode", SCRIPT_SHARED_ACQUIRE, {{"a", "@permits 2", 60000, T2, -5}},
     {"a", ",fence"}, {T1, "10000", "shared", "0", "1"}},
    {"shared acquire over permits", SCRIPT_SHARED_ACQUIRE, {{"a", "@permits 2", 60000, T2, 60000}},
     {"a", ",fence"}, {T1, "60000", "shared", "0", "1"}},
    {"permits acquire under limit", SCRIPT_SHARED_ACQUIRE, {{"a", "@permits 2", 60000, T2, 60000}},
     {"a", ",fence"}, {T1, "60000", "permits 2", "2", "1"}},
    {"permits acquire full", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@permits 2", 60000, T2, 60000}, {"a", "@permits 2", 60000, T3, 60000}}, {"a", ",fence"},
     {T1, "60000", "permits 2", "2", "1"}},
    {"permits acquire full but one expired", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@permits 2", 60000, T2, 60000}, {"a", "@permits 2", 60000, T3, -1}}, {"a", ",fence"},
     {T1, "60000", "permits 2", "2", "1"}},
    {"permits acquire other n", SCRIPT_SHARED_ACQUIRE, {{"a", "@permits 2", 60000, T2, 60000}}, {"a", ",fence"},
     {T1, "60000", "permits 3", "3", "1"}},
    {"permits acquire over shared", SCRIPT_SHARED_ACQUIRE, {{"a", "@shared", 60000, T2, 60000}}, {"a", ",fence"},
     {T1, "60000", "permits 3", "3", "1"}},
    {"shared extend ours", SCRIPT_SHARED_EXTEND, {{"a", "@shared", 60000, T1, 1000}, {"a", "@shared", 60000, T2, 2000}},
     {"a"}, {T1, "30000", "shared", "0"}},
    {"shared extend forgotten", SCRIPT_SHARED_EXTEND, {{NULL}}, {"a"}, {T1, "30000", "shared", "0"}},
    {"shared extend ignores the writer marker", SCRIPT_SHARED_EXTEND,
     {{"a", "@shared", 60000, T1, 1000}, {"a,wwait", "1", 5000}}, {"a"}, {T1, "30000", "shared", "0"}},
    {"shared extend taken by exclusive", SCRIPT_SHARED_EXTEND, {{"a", T2, 60000}}, {"a"},
     {T1, "30000", "shared", "0"}},
    {"permits extend re-admits under limit", SCRIPT_SHARED_EXTEND, {{"a", "@permits 2", 60000, T2, 60000}}, {"a"},
     {T1, "30000", "permits 2", "2"}},
    {"permits extend full, not ours", SCRIPT_SHARED_EXTEND,
     {{"a", "@permits 1", 60000, T2, 60000}}, {"a"}, {T1, "30000", "permits 1", "1"}},
    {"permits extend ours when full", SCRIPT_SHARED_EXTEND,
     {{"a", "@permits 2", 60000, T2, 60000}, {"a", "@permits 2", 60000, T1, 1000}}, {"a"},
     {T1, "30000", "permits 2", "2"}},
    {"shared release one of two", SCRIPT_SHARED_RELEASE,
     {{"a", "@shared", 60000, T1, 60000}, {"a", "@shared", 60000, T2, 20000}}, {"a"}, {T1}},
    {"shared release last", SCRIPT_SHARED_RELEASE, {{"a", "@shared", 60000, T1, 60000}}, {"a", "b"}, {T1}},
    {"shared release not ours", SCRIPT_SHARED_RELEASE, {{"a", "@shared", 60000, T2, 60000}, {"b", T1, 60000}},
     {"a", "b"}, {T1}},
    {"writer wait marks shared keys", SCRIPT_WRITER_WAIT, {{"a", "@shared", 60000, T2, 60000}, {"b", T1, 60000}},
     {"a", "b", "c"}, {"700"}},
    {"exclusive extend over a shared key", SCRIPT_EXTEND, {{"a", "@shared", 60000, T2, 60000}}, {"a"},
     {T1, "60000"}},
    {"exclusive release over a shared key", SCRIPT_RELEASE, {{"a", "@shared", 60000, T1, 60000}, {"b", T1, 60000}},
     {"a", "b"}, {T1}},
    {"exclusive acquire over a shared key", SCRIPT_ACQUIRE_MULTI, {{"a", "@shared", 60000, T2, 60000}}, {"a"},
     {T1, "60000", "5", ""}},
    {"inspect shared", SCRIPT_INSPECT, {{"a", "@shared", 60000, T1, 60000}, {"a", "@shared", 60000, T2, -1}}, {"a"},
     {""}},
    {"inspect permits", SCRIPT_INSPECT, {{"a", "@permits 3", 60000, T1, 60000}}, {"a"}, {""}},

    /* ---- shared with fleet waiting: acquire ARGV token, ttl, mode, limit, fenced, node, registry ms,
     * waiter's age, channel; release ARGV token, channel, reservation ms, node, oldest waiter's age ---- */
#define SF(mode, lim) {T1, "60000", mode, lim, "0", N1, "5000", "1000", CH}
#define SR(age) {T1, CH, "60000", N1, age}
    {"shared fleet acquire free", SCRIPT_SHARED_ACQUIRE, {{NULL}}, {"a", ",fence"}, SF("shared", "0")},
    {"shared fleet acquire over exclusive registers", SCRIPT_SHARED_ACQUIRE, {{"a", T2, 60000}}, {"a", ",fence"},
     SF("shared", "0")},
    {"shared fleet acquire reserved for another", SCRIPT_SHARED_ACQUIRE, {{"a,r", N2, 60000}}, {"a", ",fence"},
     SF("shared", "0")},
    {"shared acquire without fleet ignores reservations", SCRIPT_SHARED_ACQUIRE, {{"a,r", N2, 60000}},
     {"a", ",fence"}, {T1, "60000", "shared", "0", "0"}},
    {"shared fleet acquire, writer marker, registers", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@shared", 60000, T2, 60000}, {"a,wwait", "1", 5000}}, {"a", ",fence"}, SF("shared", "0")},
    {"shared fleet acquire reserved for us passes the writer marker", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@shared", 60000, T2, 60000}, {"a,wwait", "1", 5000}, {"a,r", N1, 60000},
      {"a,w", N1 " @-100 @+5000;" N2 " @-50 @+5000", 60000}}, {"a", ",fence"}, SF("shared", "0")},
    {"permits fleet acquire full keeps the older since", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@permits 1", 60000, T2, 60000}, {"a,w", N1 " @-9000 @+3000", 60000}}, {"a", ",fence"},
     SF("permits 1", "1")},
    {"permits fleet acquire leaves the registry", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@permits 2", 60000, T2, 60000}, {"a,w", N1 " @-100 @+5000;" N2 " @-50 @+5000", 60000}},
     {"a", ",fence"}, SF("permits 2", "2")},
    {"shared fleet acquire, other mode, not registered", SCRIPT_SHARED_ACQUIRE,
     {{"a", "@permits 2", 60000, T2, 60000}}, {"a", ",fence"}, SF("shared", "0")},
    {"shared release, last, reserves for the oldest other", SCRIPT_SHARED_RELEASE,
     {{"a", "@shared", 60000, T1, 60000},
      {"a,w", N2 " @-100 @+5000;" N3 " @-200 @+5000;" N1 " @-900 @+5000", 60000}}, {"a"}, SR("0")},
    {"shared release, readers left, no reservation", SCRIPT_SHARED_RELEASE,
     {{"a", "@shared", 60000, T1, 60000}, {"a", "@shared", 60000, T2, 60000}, {"a,w", N2 " @-100 @+5000", 60000}},
     {"a"}, SR("0")},
    {"permits release under n reserves", SCRIPT_SHARED_RELEASE,
     {{"a", "@permits 2", 60000, T1, 60000}, {"a", "@permits 2", 60000, T2, 60000},
      {"a,w", N2 " @-100 @+5000", 60000}}, {"a"}, SR("0")},
    {"shared release keeps a younger registration waiting", SCRIPT_SHARED_RELEASE,
     {{"a", "@shared", 60000, T1, 60000}, {"a,w", N2 " @-100 @+5000", 60000}}, {"a"}, SR("5000")},
    {"shared release of a non-holder reserves nothing", SCRIPT_SHARED_RELEASE,
     {{"a,w", N2 " @-100 @+5000", 60000}}, {"a"}, SR("0")},
#undef SF
#undef SR
};
/* clang-format on */
#define NCASES (sizeof cases / sizeof cases[0])

static struct h_redis R;

static void start_redis(void)
{
    memset(&R, 0, sizeof R);
    ck_assert_msg(h_redis_start(&R) == 0, "redis-server did not start");
}

static void stop_redis(void)
{
    h_redis_stop(&R);
}

static size_t count(const char *const *list)
{
    size_t n = 0;
    while (n < MAXN && list[n] != NULL)
        n++;
    return n;
}

/* A reply as "<type>:<text>"; a string "<pttl> <rest>" keeps its pttl
 * aside (*pttl, else -3) and shows "<ttl>" unless it is -1, and a digest
 * "~<hex>" shows as "~digest". */
static void normalise(char type, const char *text, char *out, size_t outlen, long long *pttl)
{
    *pttl = -3;
    if (type != 's' || text[0] == '\0') {
        snprintf(out, outlen, "%c:%s", type, text);
        return;
    }
    char *end;
    long long p = strtoll(text, &end, 10);
    const char *rest = *end == ' ' ? end + 1 : end;
    char shown[64];
    if (p >= 0)
        *pttl = p;
    snprintf(shown, sizeof shown, p >= 0 ? "<ttl>" : "%lld", p);
    if (rest[0] == '=') { /* a shared key's INSPECT: "<token>:<ms left>" per holder, ms masked */
        char masked[512];
        size_t n = 0;
        for (const char *q = rest; *q != '\0' && n + 8 < sizeof masked;) {
            if (*q == ':' && q - rest >= 32 && q[-33] == ' ') {
                n += (size_t)snprintf(masked + n, sizeof masked - n, ":<ms>");
                q++;
                while (*q >= '0' && *q <= '9')
                    q++;
                continue;
            }
            masked[n++] = *q++;
        }
        masked[n] = '\0';
        snprintf(out, outlen, "s:%s %s", shown, masked);
        return;
    }
    size_t hex = rest[0] == '~' ? strspn(rest + 1, "0123456789abcdef") : 0;
    if (rest[0] == '~' && hex > 0 && rest[1 + hex] == '\0')
        rest = "~digest";
    snprintf(out, outlen, "s:%s %s", shown, rest);
}

/* A setup value with "@+<ms>" / "@-<ms>" replaced by the wall clock's ms now plus or minus. */
static const char *expand(const char *in, char *out, size_t outlen)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    size_t o = 0;
    for (const char *p = in; *p != '\0' && o + 32 < outlen;) {
        if (p[0] == '@' && (p[1] == '+' || p[1] == '-')) {
            char *end;
            long long d = strtoll(p + 2, &end, 10);
            o += (size_t)snprintf(out + o, outlen - o, "%lld", p[1] == '+' ? now + d : now - d);
            p = end;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

/* Equal, except numbers above 10^11 (master times) within TTL_SLACK_MS. */
static bool same_loose(const char *a, const char *b)
{
    while (*a != '\0' && *b != '\0') {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            char *ea, *eb;
            long long x = strtoll(a, &ea, 10), y = strtoll(b, &eb, 10);
            if (x > 100000000000LL && y > 100000000000LL ? llabs(x - y) > TTL_SLACK_MS : x != y)
                return false;
            if (ea - a != eb - b && !(x > 100000000000LL))
                return false;
            a = ea;
            b = eb;
            continue;
        }
        if (*a++ != *b++)
            return false;
    }
    return *a == *b;
}

static void run_redis(const struct dcase *c, char *out, size_t outlen, long long *pttl)
{
    char buf[512];
    ck_assert_int_eq(h_redis_cmd(&R, buf, sizeof buf, "FLUSHALL", NULL), H_REPLY_STATUS);
    for (size_t i = 0; i < MAXN && c->setup[i].key != NULL; i++) {
        char px[16], value[512];
        snprintf(px, sizeof px, "%u", (unsigned)c->setup[i].px);
        if (c->setup[i].value[0] == '@') { /* a holder hash: entry at master time + rel */
            char rel[32];
            snprintf(rel, sizeof rel, "%lld", c->setup[i].rel);
            const char *hv[] = {"EVAL",
                                "local t = redis.call('time') local now = tonumber(t[1]) * 1000 + "
                                "math.floor(tonumber(t[2]) / 1000) local r = tonumber(ARGV[3]) "
                                "if r <= 0 then r = r - 1 end "
                                "redis.call('hset', KEYS[1], '~mode', ARGV[1], ARGV[2], now + r) "
                                "redis.call('pexpire', KEYS[1], ARGV[4]) return 1",
                                "1",
                                c->setup[i].key,
                                c->setup[i].value + 1,
                                c->setup[i].token,
                                rel,
                                px,
                                NULL};
            ck_assert_int_eq(h_redis_cmdv(&R, buf, sizeof buf, hv), H_REPLY_INT);
            continue;
        }
        expand(c->setup[i].value, value, sizeof value);
        enum h_reply_type t =
            c->setup[i].px
                ? h_redis_cmd(&R, buf, sizeof buf, "SET", c->setup[i].key, value, "PX", px, NULL)
                : h_redis_cmd(&R, buf, sizeof buf, "SET", c->setup[i].key, value, NULL);
        ck_assert_int_eq(t, H_REPLY_STATUS);
    }
    const char *argv[3 + 2 * MAXN + 1];
    char nk[8];
    size_t nkeys = count(c->keys), nargs = count(c->args), argc = 0;
    snprintf(nk, sizeof nk, "%zu", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = pool_script_text(c->script);
    argv[argc++] = nk;
    for (size_t i = 0; i < nkeys; i++)
        argv[argc++] = c->keys[i];
    for (size_t i = 0; i < nargs; i++)
        argv[argc++] = c->args[i];
    argv[argc] = NULL;
    enum h_reply_type t = h_redis_cmdv(&R, buf, sizeof buf, argv);
    ck_assert_msg(t != H_REPLY_ERRIO, "%s: EVAL failed", c->name);
    char type = t == H_REPLY_INT     ? 'i'
                : t == H_REPLY_BULK  ? 's'
                : t == H_REPLY_ERROR ? 'e'
                : t == H_REPLY_NIL   ? 'n'
                                     : '?';
    normalise(type, buf, out, outlen, pttl);
}

static void run_memstore(struct memstore *ms, const struct dcase *c, char *out, size_t outlen,
                         long long *pttl)
{
    for (size_t i = 0; i < MAXN && c->setup[i].key != NULL; i++) {
        if (c->setup[i].value[0] == '@') { /* a holder hash */
            ck_assert_int_eq(memstore_set_holder(ms, c->setup[i].key, strlen(c->setup[i].key),
                                                 c->setup[i].value + 1, c->setup[i].token,
                                                 c->setup[i].rel, c->setup[i].px),
                             0);
            continue;
        }
        char value[512];
        expand(c->setup[i].value, value, sizeof value);
        ck_assert_int_eq(memstore_set(ms, c->setup[i].key, strlen(c->setup[i].key), value,
                                      strlen(value), c->setup[i].px),
                         0);
    }
    size_t nkeys = count(c->keys), nargs = count(c->args);
    size_t keylens[MAXN], arglens[MAXN];
    for (size_t i = 0; i < nkeys; i++)
        keylens[i] = strlen(c->keys[i]);
    for (size_t i = 0; i < nargs; i++)
        arglens[i] = strlen(c->args[i]);
    struct pool_reply r;
    char buf[512], text[512];
    memstore_script(ms, c->script, nkeys, c->keys, keylens, nargs, c->args, arglens, &r, buf,
                    sizeof buf);
    char type = '?';
    text[0] = '\0';
    switch (r.kind) {
    case POOL_REPLY_INTEGER:
        type = 'i';
        snprintf(text, sizeof text, "%lld", r.integer);
        break;
    case POOL_REPLY_STRING:
        type = 's';
        snprintf(text, sizeof text, "%.*s", (int)r.len, r.str);
        break;
    case POOL_REPLY_ERROR:
        type = 'e';
        snprintf(text, sizeof text, "%.*s", (int)r.len, r.str);
        break;
    case POOL_REPLY_NIL:
        type = 'n';
        break;
    default:
        break;
    }
    normalise(type, text, out, outlen, pttl);
}

/* Every key of the case (planted or named), its ",prio" marker, fleet and writer-waiting keys, once. */
static size_t touched_keys(const struct dcase *c, char keys[10 * MAXN][64])
{
    size_t n = 0;
    const char *names[2 * MAXN];
    size_t nn = 0;
    for (size_t i = 0; i < MAXN && c->setup[i].key != NULL; i++)
        names[nn++] = c->setup[i].key;
    for (size_t i = 0; i < count(c->keys); i++)
        names[nn++] = c->keys[i];
    for (size_t i = 0; i < nn; i++) {
        static const char *const suffix[] = {"", ",prio", ",w", ",r", ",wwait"};
        for (int prio = 0; prio < 5; prio++) {
            char k[64];
            snprintf(k, sizeof k, "%s%s", names[i], suffix[prio]);
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = strcmp(keys[j], k) == 0;
            if (!seen)
                snprintf(keys[n++], 64, "%s", k);
        }
    }
    return n;
}

/* A holder hash on redis as memstore_peek() shows it: "H <mode> <token> ...". */
static bool redis_hash(const char *key, char *out, size_t outlen)
{
    const char *argv[] = {
        "EVAL",
        "if redis.call('type', KEYS[1])['ok'] ~= 'hash' then return false end "
        "local o = 'H ' .. (redis.call('hget', KEYS[1], '~mode') or '') "
        "local h = redis.call('hgetall', KEYS[1]) "
        "for i = 1, #h, 2 do if h[i] ~= '~mode' then o = o .. ' ' .. h[i] end end return o",
        "1", key, NULL};
    return h_redis_cmdv(&R, out, outlen, argv) == H_REPLY_BULK;
}

static bool ttl_close(long long a, long long b)
{
    if (a < 0 || b < 0)
        return a == b;
    return llabs(a - b) <= TTL_SLACK_MS;
}

START_TEST(same_as_lua)
{
    const struct dcase *c = &cases[_i];
    char want[600], got[600];
    long long want_ttl, got_ttl;
    run_redis(c, want, sizeof want, &want_ttl);
    struct memstore *ms = memstore_new();
    ck_assert_ptr_nonnull(ms);
    run_memstore(ms, c, got, sizeof got, &got_ttl);
    if (getenv("MEMSTORE_LUA_VERBOSE") != NULL)
        fprintf(stderr, "%s: %s\n", c->name, want);
    ck_assert_msg(strcmp(want, got) == 0, "%s: redis answers '%s', memstore '%s'", c->name, want,
                  got);
    ck_assert_msg(ttl_close(want_ttl, got_ttl), "%s: pttl %lld on redis, %lld in memstore", c->name,
                  want_ttl, got_ttl);

    char keys[10 * MAXN][64];
    size_t n = touched_keys(c, keys);
    for (size_t i = 0; i < n; i++) {
        char rv[512] = "", mv[512] = "";
        bool rhas = h_redis_get(&R, keys[i], rv, sizeof rv) || redis_hash(keys[i], rv, sizeof rv);
        long long rttl = rhas ? h_redis_pttl(&R, keys[i]) : -2;
        const char *v;
        size_t vlen;
        long long mttl = -2;
        bool mhas = memstore_peek(ms, keys[i], strlen(keys[i]), &v, &vlen, &mttl);
        if (mhas)
            snprintf(mv, sizeof mv, "%.*s", (int)vlen, v);
        ck_assert_msg(rhas == mhas && same_loose(rv, mv),
                      "%s: key '%s' is %s%s%s on redis, %s%s%s in memstore", c->name, keys[i],
                      rhas ? "'" : "absent", rv, rhas ? "'" : "", mhas ? "'" : "absent", mv,
                      mhas ? "'" : "");
        ck_assert_msg(ttl_close(rttl, mttl),
                      "%s: key '%s' has pttl %lld on redis, %lld in memstore", c->name, keys[i],
                      rttl, mttl);
    }
    memstore_free(ms);
}
END_TEST

int main(void)
{
    h_init();
    Suite *s = suite_create("memstore_lua");
    TCase *tc = tcase_create("scripts");
    tcase_add_unchecked_fixture(tc, start_redis, stop_redis);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, same_as_lua, 0, (int)NCASES);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
