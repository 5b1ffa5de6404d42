/*
 * redis_pool.c - async hiredis connections to the Redis masters.
 * See redis_pool.h for the contract.
 */
#include "redis_pool.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "memstore.h"
#include "proto.h"
#include "reply_pool.h"
#include "util.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 1000
#define WATCHDOG_TICK_MS 100
#define PING_INTERVAL_MS 1000
#define STALL_MIN_MS 1000     /* a reply overdue this long (or 10 deadlines) drops the connection */
#define MASTER_STABLE_MS 3000 /* up this long: backoff starts again from RECONNECT_MIN_MS */
#define SHA_HEX SHA1_HEX
#define ERROR_TEXT_MAX 128
#define RUN_ID_MAX 48
#define UPTIME_SLACK_MS 1000   /* INFO's uptime_in_seconds is whole seconds of the wall clock */
#define MARKER_SUFFIX ",epoch" /* "<key_prefix>,epoch": the marker key, see pool_master_votes() */
#define MARKER_RECHECK_MS 500  /* before condemning an unmarked master, read its marker again */
#define UNDECIDED_LOG_MS 2000  /* say why young unmarked masters do not vote yet */

/*
 * The scripts. KEYS are the lock's keys, ARGV[1] the token, ARGV[2] the TTL.
 * Acquire of several keys: all or nothing on this master.
 * Extend: 0 if any key holds another token (taken), else every key is set
 *   to expire in ttl (a key this master forgot is set again), 1.
 * Release: delete every key still holding the token; returns how many.
 * Priority (ARGV[3] of acquire and extend, 0 = none): a lock taken with a
 *   priority p > 0 also writes the marker "<key>,prio" = "<p> <token>" with
 *   the key's TTL. A priority acquire replaces an existing key only if
 *   redlockd provably wrote it (may_take below): the key is a string holding
 *   a token of redlockd's form (32 lowercase hex digits), and that token is
 *   either the one this daemon's own lower-priority holder has (ARGV[3 + i]
 *   for KEYS[i], "" when none) or named by a marker with a lower priority.
 *   Anything else (another Redlock client's lock, an application's string,
 *   hash or list, a redlockd lock of another daemon taken without PRIORITY)
 *   is held by someone redlockd cannot preempt, and is never touched. An
 *   extend that finds its key taken under a marker of a higher priority
 *   returns -1.
 * Hand-off: KEYS[1] the lock key, KEYS[2] the fence counter; ARGV: old
 *   token, new token, ttl, priority, fenced ("1"/"0"). If the key holds the
 *   old token (or nothing, or may_take allows it) it is given to the new token
 *   in one step, with the next fence (the counter incremented) when fenced;
 *   else 0.
 * Acquire fenced: KEYS are the n lock keys then the fence counter; 0 if any
 *   lock key exists (and may not be taken), else every lock key is set and
 *   the counter incremented, its new value (the fence) returned; -1 (taken,
 *   but no fence) when the counter cannot be incremented (not an integer, or
 *   at 2^63 - 1) or its new value is above POOL_FENCE_MAX. The hand-off
 *   answers the same way.
 * Fence raise: the counter KEYS[1] is raised to at least ARGV[1].
 * Inspect: "<pttl> <value>" when the key holds a string of a token's form;
 *   "<pttl> ~<sha1 of the value>" for any other string and "<pttl> ~<type>"
 *   for another type, so that no byte of a key redlockd did not write leaves
 *   the master; "" when the key does not exist.
 */
/* May a priority-p acquire replace key k? known: the token this daemon's
 * lower-priority holder has there, or "". */
#define LUA_MAY_TAKE \
    "local function may_take(k, p, known) " \
    "if redis.call('type', k)['ok'] ~= 'string' then return false end " \
    "local v = redis.call('get', k) " \
    "if #v ~= 32 or string.find(v, '[^0-9a-f]') then return false end " \
    "if known and known ~= '' and v == known then return true end " \
    "if p <= 0 then return false end " \
    "local m = redis.pcall('get', k .. ',prio') " \
    "if type(m) ~= 'string' then return false end " \
    "local q, t = string.match(m, '^(%d+) (%x+)$') " \
    "return t == v and tonumber(q) < p end "
/* The priority that the marker of k gives to its current value v, or 0. */
#define LUA_MARKED_PRIORITY \
    "local function marked(k, v) " \
    "local m = redis.pcall('get', k .. ',prio') " \
    "if type(m) ~= 'string' then return 0 end " \
    "local q, t = string.match(m, '^(%d+) (%x+)$') " \
    "if t ~= v then return 0 end return tonumber(q) end "
#define LUA_STR_(x) #x
#define LUA_STR(x) LUA_STR_(x)
#define LUA_NEXT_FENCE(counter) \
    "local f = redis.pcall('incr', " counter ") " \
    "if type(f) ~= 'number' or f > " LUA_STR(POOL_FENCE_MAX) " then return -1 end return f "

/*
 * Fleet waiting (PROTOCOL.md 8.7). "<key>,w" is the key's waiter
 * registry, a string of entries "<node> <since> <until>" joined by ';':
 * node a daemon's id (hex), since the master's time (ms, from TIME) of its
 * first registration, until when the entry expires unless refreshed. The
 * key expires with its last entry. "<key>,r" = a node id (PX short) is a
 * reservation: redlockd's fleet acquire refuses a free key reserved for
 * another node. Helpers: clock() the master's time in ms; reg_parse() the
 * live entries (at most POOL_REGISTRY_MAX); reg_put() registers or
 * refreshes a node (keeping its oldest since); reg_drop(); reg_head() the
 * oldest entry of another node (ties: the first listed); reg_save() writes
 * them back, expiring with the last one (deleted when none is left).
 */
/* clang-format off */
#define LUA_FLEET \
    "local function clock() local t = redis.call('time') " \
    "return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end " \
    "local function reg_parse(v, now) local t = {} " \
    "if type(v) ~= 'string' then return t end " \
    "for n, a, u in string.gmatch(v, '(%x+) (%d+) (%d+)') do " \
    "if tonumber(u) > now and #t < " LUA_STR(POOL_REGISTRY_MAX) " then " \
    "t[#t + 1] = {n, tonumber(a), tonumber(u)} end end return t end " \
    "local function reg_put(t, n, a, u) for _, e in ipairs(t) do if e[1] == n then " \
    "if a < e[2] then e[2] = a end if u > e[3] then e[3] = u end return end end " \
    "if #t < " LUA_STR(POOL_REGISTRY_MAX) " then t[#t + 1] = {n, a, u} end end " \
    "local function reg_drop(t, n) for i, e in ipairs(t) do if e[1] == n then " \
    "table.remove(t, i) return true end end return false end " \
    "local function reg_head(t, n) local h = nil for _, e in ipairs(t) do " \
    "if e[1] ~= n and (h == nil or e[2] < h[2]) then h = e end end return h end " \
    "local function reg_save(k, t, now) if #t == 0 then redis.call('del', k) return end " \
    "local p, last = {}, now + 1 for i, e in ipairs(t) do " \
    "p[i] = e[1] .. ' ' .. string.format('%d', e[2]) .. ' ' .. string.format('%d', e[3]) " \
    "if e[3] > last then last = e[3] end end " \
    "redis.call('set', k, table.concat(p, ';'), 'PX', string.format('%d', last - now)) end "
/* clang-format on */

/*
 * Shared (read/write) locks and semaphores (PROTOCOL.md 8.8). The key of a
 * resource held SHARED or under PERMITS is a hash: "~mode" = "shared" or
 * "permits <n>", and one field per holder, its token = the master's time
 * (ms, from TIME) at which that holder's entry expires. Every script prunes
 * expired entries first and sets the key's PEXPIRE to the latest entry's
 * expiry, so the key is gone when its last holder's TTL is. A hash whose
 * "~mode" is not of that form is an application's: never touched.
 * "<key>,wwait" is the writer-waiting marker: while it lives no new holder
 * is admitted (holders already in keep extending).
 * Acquire: KEYS the n lock keys then the fence counter; ARGV token, ttl,
 *   mode, limit (0: no limit, n for PERMITS), fenced "1"/"0". All or none:
 *   0 when a key is held exclusively or by anything else, full, or marked;
 *   "mode <m>" when a key is held in another mode m; else 1, or the fence.
 *   Fleet waiting (one key; ARGV node, registry ms, waiter's age, channel):
 *   a key reserved for another node refuses too, and a refusal (0)
 *   registers the node, its entry dated back by the waiter's age. A
 *   reservation for this node lets it in past the writer marker and is
 *   used up; a node that was registered (or reserved) and got in, with room
 *   left, wakes the next registered node (PUBLISH, no reservation), so
 *   readers waiting on several daemons all enter.
 * Extend: KEYS the lock keys; ARGV token, ttl, mode, limit. 1 when every
 *   key has (or can admit again, under the limit) the holder; else 0.
 * Release: remove the holder's entries; returns how many were there. Fleet
 *   waiting (ARGV channel, reservation ms, node, age of this node's oldest
 *   waiter or 0): when the key has room again (gone, or PERMITS below n),
 *   the oldest other registered node that registered before that waiter
 *   came gets a reservation and a wake-up.
 * Writer wait: KEYS the lock keys; ARGV ms: marks every key held shared.
 */
#define LUA_SHARED_MODE \
    "local function mode_of(k) local m = redis.call('hget', k, '~mode') " \
    "if m == 'shared' or (m and string.find(m, '^permits [1-9]%d*$')) then return m end " \
    "return nil end "
#define LUA_SHARED_PRUNE \
    LUA_SHARED_MODE \
    "local t = redis.call('time') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) " \
    "local function prune(k) local h = redis.call('hgetall', k) local c, mx = 0, 0 " \
    "for i = 1, #h, 2 do if h[i] ~= '~mode' then local e = tonumber(h[i + 1]) or 0 " \
    "if e <= now then redis.call('hdel', k, h[i]) else c = c + 1 if e > mx then mx = e end end end end " \
    "if c == 0 then redis.call('del', k) else redis.call('pexpire', k, mx - now) end " \
    "return c end "
/* Check key k for holder tok (ARGV[3] mode, lim): nil when it may hold,
 * else the script's refusal. admit: a new holder (the writer marker counts). */
#define LUA_SHARED_CHECK \
    "local function check(k, lim, admit) local ty = redis.call('type', k)['ok'] " \
    "if ty == 'none' then if admit and redis.call('exists', k .. ',wwait') == 1 then return 0 end return nil " \
    "end " \
    "if ty ~= 'hash' then return 0 end local m = mode_of(k) if not m then return 0 end " \
    "local c = prune(k) if c == 0 then " \
    "if admit and redis.call('exists', k .. ',wwait') == 1 then return 0 end return nil end " \
    "if m ~= ARGV[3] then return 'mode ' .. m end " \
    "local mine = redis.call('hexists', k, ARGV[1]) == 1 " \
    "if admit and not mine and redis.call('exists', k .. ',wwait') == 1 then return 0 end " \
    "if lim > 0 and not mine and c >= lim then return 0 end return nil end " \
    "local function enter(k) local e = now + tonumber(ARGV[2]) " \
    "redis.call('hset', k, '~mode', ARGV[3], ARGV[1], e) prune(k) end "

static const char *const script_text[SCRIPT__COUNT] = {
    [SCRIPT_ACQUIRE_MULTI] = LUA_MAY_TAKE
    "local prio = tonumber(ARGV[3] or '0') or 0 "
    "for i, k in ipairs(KEYS) do if redis.call('exists', k) == 1 and "
    "not (prio > 0 and may_take(k, prio, ARGV[3 + i])) then return 0 end end "
    "for _, k in ipairs(KEYS) do redis.call('set', k, ARGV[1], 'PX', ARGV[2]) "
    "if prio > 0 then redis.call('set', k .. ',prio', ARGV[3] .. ' ' .. ARGV[1], 'PX', ARGV[2]) end end "
    "return 1",
    [SCRIPT_EXTEND] = LUA_MARKED_PRIORITY
    "local prio = tonumber(ARGV[3] or '0') or 0 "
    "for _, k in ipairs(KEYS) do local v = redis.pcall('get', k) "
    "if type(v) == 'table' then v = '~' end " /* not a string: a shared key, an application's */
    "if v and v ~= ARGV[1] then "
    "if marked(k, v) > prio then return -1 end "
    "return 0 end end "
    "for _, k in ipairs(KEYS) do redis.call('set', k, ARGV[1], 'PX', ARGV[2]) "
    "if prio > 0 then redis.call('set', k .. ',prio', ARGV[3] .. ' ' .. ARGV[1], 'PX', ARGV[2]) end end "
    "return 1",
    [SCRIPT_RELEASE] =
        LUA_FLEET "local n = 0 for _, k in ipairs(KEYS) do "
                  "if redis.pcall('get', k) == ARGV[1] then redis.call('del', k, k .. ',prio') n = n + 1 "
                  "if ARGV[2] then local w = redis.pcall('get', k .. ',w') if type(w) == 'string' then "
                  "local h = reg_head(reg_parse(w, clock()), '') if h then "
                  "redis.call('set', k .. ',r', h[1], 'PX', ARGV[3]) redis.call('publish', ARGV[2], h[1] .. ' "
                  "' .. k) end end end "
                  "end end "
                  "return n",
    [SCRIPT_INSPECT] =
        "local ty = redis.call('type', KEYS[1])['ok'] if ty == 'none' then return '' end "
        "local p = redis.call('pttl', KEYS[1]) "
        "if ty == 'hash' then " LUA_SHARED_MODE "local m = mode_of(KEYS[1]) if m then "
        "local t = redis.call('time') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
        "local out = p .. ' =' .. (string.gsub(m, ' ', ':')) local h = redis.call('hgetall', KEYS[1]) "
        "for i = 1, #h, 2 do local e = tonumber(h[i + 1]) "
        "if h[i] ~= '~mode' and #h[i] == 32 and not string.find(h[i], '[^0-9a-f]') and e and e > now then "
        "out = out .. ' ' .. h[i] .. ':' .. (e - now) end end return out end end "
        "if ty ~= 'string' then return p .. ' ~' .. ty end "
        "local v = redis.call('get', KEYS[1]) "
        "if #v == 32 and not string.find(v, '[^0-9a-f]') then return p .. ' ' .. v end "
        "return p .. ' ~' .. redis.sha1hex(v)",
    [SCRIPT_ACQUIRE_FENCED] =
        LUA_MAY_TAKE "local n = #KEYS - 1 "
                     "local prio = tonumber(ARGV[3] or '0') or 0 "
                     "for i = 1, n do if redis.call('exists', KEYS[i]) == 1 and "
                     "not (prio > 0 and may_take(KEYS[i], prio, ARGV[3 + i])) then return 0 end end "
                     "for i = 1, n do redis.call('set', KEYS[i], ARGV[1], 'PX', ARGV[2]) "
                     "if prio > 0 then redis.call('set', KEYS[i] .. ',prio', ARGV[3] .. ' ' .. ARGV[1], 'PX', "
                     "ARGV[2]) end end " LUA_NEXT_FENCE("KEYS[n + 1]"),
    [SCRIPT_HANDOFF] = LUA_MAY_TAKE LUA_FLEET
    "local prio = tonumber(ARGV[4]) or 0 "
    "if redis.call('exists', KEYS[1]) == 1 and not may_take(KEYS[1], prio, ARGV[1]) then return 0 end "
    "local node = ARGV[6] or '' "
    "if node ~= '' then local k = KEYS[1] local w = redis.pcall('get', k .. ',w') "
    "local r = redis.pcall('get', k .. ',r') "
    "if type(w) == 'string' then local now = clock() local t = reg_parse(w, now) "
    "local h = reg_head(t, node) local since = now - tonumber(ARGV[7]) "
    "if h and (h[2] < since or tonumber(ARGV[8]) >= tonumber(ARGV[9])) then "
    "if redis.call('get', k) == ARGV[1] then redis.call('del', k, k .. ',prio') end "
    "redis.call('set', k .. ',r', h[1], 'PX', ARGV[10]) "
    "reg_put(t, node, since, now + tonumber(ARGV[12])) reg_save(k .. ',w', t, now) "
    "redis.call('publish', ARGV[11], h[1] .. ' ' .. k) return " LUA_STR(
        POOL_YIELDED) " end end "
                      "if redis.call('exists', k) == 0 and type(r) == 'string' and r ~= node then return 0 end "
                      "end "
                      "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
                      "if prio > 0 then redis.call('set', KEYS[1] .. ',prio', ARGV[4] .. ' ' .. ARGV[2], 'PX', "
                      "ARGV[3]) "
                      "else redis.call('del', KEYS[1] .. ',prio') end "
                      "if ARGV[5] == '1' then " LUA_NEXT_FENCE("KEYS[2]") "end "
                                                                          "return 1",
    [SCRIPT_ACQUIRE_FLEET] =
        LUA_FLEET "local k, node = KEYS[1], ARGV[4] "
                  "local w, r = redis.pcall('get', k .. ',w'), redis.pcall('get', k .. ',r') "
                  "if redis.call('exists', k) == 1 or (type(r) == 'string' and r ~= node) then "
                  "local now = clock() local t = reg_parse(w, now) "
                  "reg_put(t, node, now - (tonumber(ARGV[6]) or 0), now + tonumber(ARGV[5])) "
                  "reg_save(k .. ',w', t, now) return 0 end "
                  "redis.call('set', k, ARGV[1], 'PX', ARGV[2]) "
                  "if type(w) == 'string' then local now = clock() local t = reg_parse(w, now) "
                  "if reg_drop(t, node) then reg_save(k .. ',w', t, now) end end "
                  "if type(r) == 'string' then redis.call('del', k .. ',r') end "
                  "if ARGV[3] == '1' then " LUA_NEXT_FENCE("KEYS[2]") "end "
                                                                      "return 1",
    [SCRIPT_UNREGISTER] =
        LUA_FLEET "local k, node = KEYS[1], ARGV[1] local w = redis.pcall('get', k .. ',w') "
                  "if type(w) ~= 'string' then return 0 end "
                  "local now = clock() local t = reg_parse(w, now) local dropped = reg_drop(t, node) "
                  "reg_save(k .. ',w', t, now) "
                  "if redis.pcall('get', k .. ',r') == node then redis.call('del', k .. ',r') "
                  "local h = reg_head(t, '') if h and redis.call('exists', k) == 0 then "
                  "redis.call('publish', ARGV[2], h[1] .. ' ' .. k) end end "
                  "if dropped then return 1 end return 0",
    [SCRIPT_FENCE_RAISE] = "if (tonumber(redis.call('get', KEYS[1]) or '0') or 0) < tonumber(ARGV[1]) then "
                           "redis.call('set', KEYS[1], ARGV[1]) end "
                           "return 1",
    /* clang-format off */
    [SCRIPT_SHARED_ACQUIRE] = LUA_SHARED_PRUNE LUA_SHARED_CHECK LUA_FLEET
    "local n = #KEYS - 1 local lim = tonumber(ARGV[4]) or 0 "
    "local node = ARGV[6] or '' local fleet = node ~= '' and n == 1 local k = KEYS[1] "
    "local rsv = fleet and redis.pcall('get', k .. ',r') local ours = fleet and rsv == node "
    "for i = 1, n do local r = check(KEYS[i], lim, not ours) "
    "if not r and fleet and type(rsv) == 'string' and not ours then r = 0 end "
    "if r then if r == 0 and fleet then local t = reg_parse(redis.pcall('get', k .. ',w'), now) "
    "reg_put(t, node, now - tonumber(ARGV[8]), now + tonumber(ARGV[7])) reg_save(k .. ',w', t, now) end "
    "return r end end "
    "for i = 1, n do enter(KEYS[i]) end "
    "if fleet then local t = reg_parse(redis.pcall('get', k .. ',w'), now) local dropped = reg_drop(t, node) "
    "if dropped then reg_save(k .. ',w', t, now) end "
    "if ours then redis.call('del', k .. ',r') end local h = reg_head(t, node) "
    "if h and (dropped or ours) and (lim == 0 or redis.call('hlen', k) - 1 < lim) "
    "and redis.call('exists', k .. ',wwait') == 0 then redis.call('publish', ARGV[9], h[1] .. ' ' .. k) end end "
    "if ARGV[5] == '1' then " LUA_NEXT_FENCE("KEYS[n + 1]") "end "
    "return 1",
    /* clang-format on */
    [SCRIPT_SHARED_EXTEND] = LUA_SHARED_PRUNE LUA_SHARED_CHECK
    "local lim = tonumber(ARGV[4]) or 0 "
    "for _, k in ipairs(KEYS) do if check(k, lim, false) then return 0 end end "
    "for _, k in ipairs(KEYS) do enter(k) end "
    "return 1",
    /* clang-format off */
    [SCRIPT_SHARED_RELEASE] = LUA_SHARED_PRUNE LUA_FLEET
    "local function wake(k, m, c) local lim = tonumber(string.match(m, '^permits (%d+)$')) or 0 "
    "if c > 0 and (lim == 0 or c >= lim) then return end "
    "local h = reg_head(reg_parse(redis.pcall('get', k .. ',w'), now), ARGV[4]) "
    "if h and h[2] <= now - tonumber(ARGV[5]) then redis.call('set', k .. ',r', h[1], 'PX', ARGV[3]) "
    "redis.call('publish', ARGV[2], h[1] .. ' ' .. k) end end "
    "local n = 0 for _, k in ipairs(KEYS) do "
    "if redis.call('type', k)['ok'] == 'hash' then local m = mode_of(k) if m then "
    "local d = redis.call('hdel', k, ARGV[1]) n = n + d local c = prune(k) "
    "if d > 0 and ARGV[5] then wake(k, m, c) end end end end "
    "return n",
    /* clang-format on */
    [SCRIPT_WRITER_WAIT] =
        LUA_SHARED_MODE "local n = 0 for _, k in ipairs(KEYS) do "
                        "if redis.call('type', k)['ok'] == 'hash' and mode_of(k) then "
                        "redis.call('set', k .. ',wwait', '1', 'PX', ARGV[1]) n = n + 1 end end "
                        "return n",
};

const char *pool_script_text(enum pool_script script)
{
    return script < SCRIPT__COUNT ? script_text[script] : NULL;
}

struct master {
    struct pool *pool;
    size_t index;
    char addr[300];          /* "host:port" for logs */
    struct master_addr conf; /* host/port/user/password (owned copies) */
    redisAsyncContext *ac;   /* NULL while disconnected */
    enum master_state state;
    struct event *reconnect_timer;
    uint32_t backoff_ms;
    uint64_t pending;      /* commands sent and not yet answered */
    uint64_t progress_at;  /* last reply, or when pending rose from 0 */
    uint64_t ping_sent_us; /* 0 when no probe is outstanding */
    uint64_t last_ping_ms;
    uint64_t latency_us;       /* smoothed probe round trip */
    char run_id[RUN_ID_MAX];   /* from INFO server */
    uint64_t quarantine_until; /* restarted: no vote before this time (0 = votes) */
    uint64_t restarts;         /* run_id changes seen */
    char marker[RUN_ID_MAX];   /* the marker's value read in the handshake, "" if absent */
    bool met;                  /* a handshake of this pool has answered */
    bool had_marker;           /* the marker was there when this pool first met it */
    bool unverified;           /* young, no marker: quarantined unless the deployment is new */
    uint64_t recheck_at;       /* unverified: when to read its marker again (0 = not planned) */
    uint32_t same_as;          /* 1 + index of another entry with this run_id; 0 = none */
    char last_error[ERROR_TEXT_MAX];
    char error_word[16];               /* first word of the error replies being seen, "" if none */
    uint64_t last_error_reply_ms;      /* when the last error reply came */
    bool down_logged;                  /* "master down" was logged and no "master up" since */
    bool quiet;                        /* flapping (down again within MASTER_STABLE_MS of up): its
                                    ups and same-error downs are not logged until it is stable */
    uint64_t up_since;                 /* when it last came up */
    char logged_error[ERROR_TEXT_MAX]; /* the error of the last "master down" logged */
    bool script_ok[SCRIPT__COUNT];     /* SCRIPT LOAD answered with the right sha on this connection */
    struct reply_guard guard;          /* the reader's bounds: size, unsolicited replies */
    /* Fleet waiting's subscriber connection (PROTOCOL.md 8.7): SUBSCRIBE
     * "<key_prefix>,wake"; its messages name released keys. */
    struct bufferevent *sub_bev; /* NULL while disconnected */
    redisReader *sub_reader;
    struct reply_guard sub_guard;
    struct event *sub_timer; /* reconnect */
    uint32_t sub_backoff_ms;
    bool sub_auth_pending; /* AUTH sent, its answer not read yet */
    bool sub_logged;       /* a failure was logged since it last subscribed */
};

struct pool {
    struct event_base *base;
    struct master *masters;
    size_t nmasters;
    uint32_t stall_ms;
    uint32_t quarantine_ms; /* max_ttl_ms: how long a restarted master sits out */
    char marker_key[CONFIG_MAX_KEY_PREFIX + sizeof MARKER_SUFFIX]; /* "<key_prefix>,epoch" */
    bool fresh_decided;  /* known whether no master had the marker (a new deployment) */
    bool fresh;          /* ... and none had: every master met was new */
    uint64_t created_ms; /* for the log line of a long undecided start */
    bool undecided_logged;
    char sha[SCRIPT__COUNT][SHA_HEX + 1]; /* SHA1 of each script, computed here */
    pool_reply_fn *on_reply;
    void *userdata;
    struct event *watchdog;
    struct memstore *mem;        /* backend = memory: the one "master" is this store */
    struct mem_reply *mem_queue; /* its replies, delivered on the next loop turn */
    size_t mem_len, mem_cap;
    struct event *mem_deliver;
    pool_wake_fn *on_wake; /* fleet waiting: a message on wake_channel; NULL: none */
    bool fleet;            /* subscribe to wake_channel on every master */
    char wake_channel[CONFIG_MAX_KEY_PREFIX + sizeof ",wake"];
};

/* A reply of the memory backend waiting to be delivered, like a master's. */
struct mem_reply {
    uintptr_t tag;
    enum pool_reply_kind kind;
    long long integer;
    char *str; /* owned copy, or NULL */
    size_t len;
};

static void master_connect(struct master *m);
static void master_drop(struct master *m, const char *why);
static void sub_connect(struct master *m);
static void sub_drop(struct master *m, const char *why, bool reconnect);
static size_t resp_encode(char *buf, int argc, const char **argv, const size_t *lens);
static size_t resp_size(int argc, const size_t *lens);

/*
 * Our own hiredis event adapter. hiredis 0.14's libevent adapter re-adds a
 * one-shot event for every command and every reply, which costs an
 * epoll_ctl each time. Here the read event is persistent, and a write
 * request only activates a flush that runs later in the same loop turn, so
 * all the commands queued during a turn leave in one write. The socket's
 * write event is added only while the kernel buffer is full.
 */
struct adapter {
    redisAsyncContext *ac;
    struct event rev;   /* EV_READ | EV_PERSIST */
    struct event wev;   /* EV_WRITE | EV_PERSIST, added only while writes block */
    struct event flush; /* activated by add_write: one write per loop turn */
    bool reading;
    bool want_write; /* hiredis has output (or a connect) pending */
    bool wev_added;
    bool flush_queued;
    bool in_flush; /* inside on_flush: cleanup must not free yet */
    bool dead;     /* cleanup ran during on_flush */
};

/* Before hiredis reads and parses: bound what the reader buffers (a bulk
 * string is parsed only once all of it arrived, so a "$1000000000" header
 * would make it buffer everything), and tell the reader's guard how many
 * replies this read may complete (see reply_pool.h: an unsolicited reply
 * fails the reader instead of aborting in hiredis). */
static void ad_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct adapter *a = arg;
    struct master *m = a->ac->data;
    const redisReader *r = a->ac->c.reader;
    (void)fd;
    (void)what;
    if (r->len - r->pos > REPLY_MAX_BYTES) {
        master_drop(m, "reply too large"); /* frees a */
        return;
    }
    m->guard.limit = m->guard.sent;
    redisAsyncHandleRead(a->ac);
}

static void ad_on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleWrite(((struct adapter *)arg)->ac);
}

static void ad_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct adapter *a = arg;
    (void)fd;
    (void)what;
    a->flush_queued = false;
    a->in_flush = true;
    redisAsyncHandleWrite(a->ac); /* calls del_write when all is written */
    a->in_flush = false;
    if (a->dead) { /* the write failed and hiredis freed the context */
        free(a);
        return;
    }
    if (a->want_write && !a->wev_added) { /* still pending: wait until writable */
        event_add(&a->wev, NULL);
        a->wev_added = true;
    }
}

static void ad_add_read(void *p)
{
    struct adapter *a = p;
    if (!a->reading) event_add(&a->rev, NULL);
    a->reading = true;
}

static void ad_del_read(void *p)
{
    struct adapter *a = p;
    if (a->reading) event_del(&a->rev);
    a->reading = false;
}

static void ad_add_write(void *p)
{
    struct adapter *a = p;
    a->want_write = true;
    if (a->in_flush || a->wev_added || a->flush_queued) return;
    a->flush_queued = true;
    event_active(&a->flush, EV_WRITE, 1);
}

static void ad_del_write(void *p)
{
    struct adapter *a = p;
    a->want_write = false;
    if (a->wev_added) event_del(&a->wev);
    a->wev_added = false;
}

static void ad_cleanup(void *p)
{
    struct adapter *a = p;
    event_del(&a->rev);
    event_del(&a->wev);
    event_del(&a->flush);
    if (a->in_flush) a->dead = true; /* ad_on_flush frees it on return */
    else free(a);
}

static int adapter_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct adapter *a = calloc(1, sizeof *a);
    if (a == NULL) return -1;
    a->ac = ac;
    event_assign(&a->rev, base, ac->c.fd, EV_READ | EV_PERSIST, ad_on_read, a);
    event_assign(&a->wev, base, ac->c.fd, EV_WRITE | EV_PERSIST, ad_on_writable, a);
    event_assign(&a->flush, base, -1, 0, ad_on_flush, a);
    ac->ev.addRead = ad_add_read;
    ac->ev.delRead = ad_del_read;
    ac->ev.addWrite = ad_add_write;
    ac->ev.delWrite = ad_del_write;
    ac->ev.cleanup = ad_cleanup;
    ac->ev.data = a;
    return 0;
}

/* Two error texts that differ only in numbers ("no reply for 1003 ms")
 * are the same error for logging. */
static bool same_error(const char *a, const char *b)
{
    for (;;) {
        while (*a >= '0' && *a <= '9') a++;
        while (*b >= '0' && *b <= '9') b++;
        if (*a != *b) return false;
        if (*a == '\0') return true;
        a++;
        b++;
    }
}

/* State changes are logged once per change of error: going down (or
 * failing to come up the first time) with a new error, and coming back.
 * Reconnect attempts that fail the same way are quiet, and so is a master
 * that keeps coming up and going down again (an unsolicited reply after
 * each handshake): it is logged up again once it stayed up
 * MASTER_STABLE_MS (on_watchdog). last_error keeps the reason. */
static void master_set_state(struct master *m, enum master_state s, const char *why)
{
    if (m->state == s) return;
    if (why != NULL && why[0] != '\0') snprintf(m->last_error, sizeof m->last_error, "%s", why);
    uint64_t now = now_ms();
    if (s == MASTER_UP) {
        m->up_since = now;
        m->state = s;
        sub_connect(m); /* fleet waiting's subscriber, if not connected */
        if (!m->quiet) {
            log_info("msg=\"master up\" master=%s run_id=%.12s", m->addr, m->run_id);
            m->down_logged = false;
        }
    } else if (s == MASTER_DOWN) {
        if (m->state == MASTER_UP && now - m->up_since < MASTER_STABLE_MS) m->quiet = true;
        if (!m->down_logged || !same_error(m->last_error, m->logged_error)) {
            log_warn("msg=\"master down\" master=%s error=\"%s\"", m->addr, m->last_error);
            m->down_logged = true;
            snprintf(m->logged_error, sizeof m->logged_error, "%s", m->last_error);
        }
    }
    m->state = s;
}

static void schedule_reconnect(struct master *m)
{
    struct timeval tv = {m->backoff_ms / 1000, (m->backoff_ms % 1000) * 1000};
    evtimer_add(m->reconnect_timer, &tv);
    m->backoff_ms = m->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : m->backoff_ms * 2;
}

/* ---- hiredis callbacks ---- */

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct master *m = ac->data;
    (void)status;
    m->ac = NULL; /* hiredis frees the context after this returns */
    m->pending = 0;
    m->ping_sent_us = 0;
    /* The reader's guard failed it (as out of memory): say why. */
    const char *why = m->guard.error ? m->guard.error : ac->errstr[0] ? ac->errstr : "disconnected";
    master_set_state(m, MASTER_DOWN, why);
    schedule_reconnect(m);
}

/* Drop a master's connection at once (a protocol violation or a failed
 * handshake): it goes DOWN with why and is reconnected with backoff. Safe
 * inside a hiredis callback (the context is freed when it returns) and from
 * the adapter. Pending commands get no reply. */
static void master_drop(struct master *m, const char *why)
{
    if (m->ac == NULL) return;
    master_set_state(m, MASTER_DOWN, why);
    redisAsyncFree(m->ac); /* on_disconnect schedules the reconnect */
}

static void on_connect(const redisAsyncContext *ac, int status);

/* Copy the parts of a hiredis reply the caller may look at. */
static void summarize_reply(const redisReply *r, struct pool_reply *out)
{
    memset(out, 0, sizeof *out);
    if (r == NULL) {
        out->kind = POOL_REPLY_NONE;
        return;
    }
    switch (r->type) {
    case REDIS_REPLY_STATUS:
        out->kind = POOL_REPLY_OK;
        out->str = r->str;
        out->len = r->len;
        break;
    case REDIS_REPLY_NIL: out->kind = POOL_REPLY_NIL; break;
    case REDIS_REPLY_INTEGER:
        out->kind = POOL_REPLY_INTEGER;
        out->integer = r->integer;
        break;
    case REDIS_REPLY_STRING:
        out->kind = POOL_REPLY_STRING;
        out->str = r->str;
        out->len = r->len;
        break;
    case REDIS_REPLY_ERROR:
        out->kind = POOL_REPLY_ERROR;
        out->str = r->str;
        out->len = r->len;
        break;
    default: out->kind = POOL_REPLY_OTHER; break;
    }
}

static void note_reply(struct master *m)
{
    if (m->pending > 0) m->pending--;
    m->progress_at = now_ms();
}

static void reload_scripts(struct master *m);
static int send_internal(struct master *m, redisCallbackFn *fn, void *privdata, int argc, const char **argv,
                         const size_t *lens);

#define ERROR_CALM_MS 1000 /* no error reply for this long: the master answers normally again */

/* Log a master's error replies once per change of kind, not per request.
 * Recovery is declared by the watchdog after ERROR_CALM_MS without an error,
 * so a master that fails only some commands (a replica refusing writes but
 * answering reads) does not flap. */
static void track_error_reply(struct master *m, const struct pool_reply *r)
{
    char word[sizeof m->error_word] = "";
    if (r->kind == POOL_REPLY_ERROR) {
        size_t n = 0;
        while (n < r->len && n < sizeof word - 1 && r->str[n] != ' ') {
            word[n] = r->str[n];
            n++;
        }
        word[n] = '\0';
    } else {
        snprintf(word, sizeof word, "BADTYPE");
    }
    m->last_error_reply_ms = now_ms();
    if (strcmp(word, m->error_word) == 0) return;
    snprintf(m->last_error, sizeof m->last_error, "%.*s",
             r->kind == POOL_REPLY_ERROR ? (int)(r->len > 100 ? 100 : r->len) : 7,
             r->kind == POOL_REPLY_ERROR ? r->str : "BADTYPE");
    log_warn("msg=\"master answers with errors\" master=%s error=\"%s\"", m->addr, m->last_error);
    snprintf(m->error_word, sizeof m->error_word, "%s", word);
    if (strcmp(word, "NOSCRIPT") == 0) { /* EVAL until SCRIPT LOAD answers again */
        memset(m->script_ok, 0, sizeof m->script_ok);
        reload_scripts(m);
    }
}

static void on_user_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    struct pool_reply r;
    note_reply(m);
    summarize_reply(reply, &r);
    if (r.kind == POOL_REPLY_ERROR || r.kind == POOL_REPLY_OTHER) track_error_reply(m, &r);
    uintptr_t tag = (uintptr_t)privdata;
    if (tag != 0) m->pool->on_reply(m->pool->userdata, m->index, tag, &r);
}

static void on_script_load(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    redisReply *r = reply;
    size_t script = (size_t)(uintptr_t)privdata;
    note_reply(m);
    if (r == NULL || script >= SCRIPT__COUNT) return;
    if (r->type == REDIS_REPLY_STRING && r->len == SHA_HEX &&
        memcmp(r->str, m->pool->sha[script], SHA_HEX) == 0) {
        m->script_ok[script] = true;
    } else if (r->type == REDIS_REPLY_ERROR) {
        /* Scripts still run through EVAL on this master. */
        snprintf(m->last_error, sizeof m->last_error, "SCRIPT LOAD: %.100s", r->str);
    } else {
        /* It does not hash like Redis, or does not answer what it was
         * asked: nothing it says can be trusted. */
        master_drop(m, "SCRIPT LOAD answered a wrong sha");
    }
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    redisReply *r = reply;
    (void)privdata;
    note_reply(m);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        /* Wrong password: a failed connect, retried with backoff; the
         * "master down" line says why, once per change of error. */
        char why[ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "refused AUTH: %.100s", r->str);
        master_drop(m, why);
    }
}

/* The value of field "name" in an INFO reply (lines "name:value\r\n"),
 * copied into out (cut to outlen - 1); false when the field is absent. */
static bool info_field(const char *text, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (size_t at = 0; at < len;) {
        const char *line = text + at;
        const char *eol = memchr(line, '\n', len - at);
        size_t llen = eol ? (size_t)(eol - line) : len - at;
        at += llen + 1;
        if (llen > nlen && memcmp(line, name, nlen) == 0 && line[nlen] == ':') {
            size_t n = 0;
            for (const char *v = line + nlen + 1; v < line + llen && *v != '\r' && n + 1 < outlen; v++)
                out[n++] = *v;
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* Write the marker, "<key_prefix>,epoch" = this master's run_id, on a master
 * whose vote counts: it says "a redlockd trusted this dataset while the
 * server had this run_id" (see pool_master_votes()). No expiry. */
static void write_marker(struct master *m)
{
    if (m->ac == NULL || m->state != MASTER_UP || m->run_id[0] == '\0' || strcmp(m->marker, m->run_id) == 0)
        return;
    const char *argv[] = {"SET", m->pool->marker_key, m->run_id};
    size_t lens[] = {3, strlen(m->pool->marker_key), strlen(m->run_id)};
    if (send_internal(m, on_user_reply, NULL, 3, argv, lens) == 0)
        snprintf(m->marker, sizeof m->marker, "%s", m->run_id);
}

static bool master_in_quarantine(const struct master *m)
{
    return m->quarantine_until != 0 && now_ms() < m->quarantine_until;
}

/* Two entries with the same run_id are one server under two names (an
 * alias the config check could not see): neither votes until that changes.
 * Recomputed whenever a run_id is learnt; each change is logged once. */
static void find_same_servers(struct pool *p)
{
    for (size_t i = 0; i < p->nmasters; i++) {
        struct master *m = &p->masters[i];
        uint32_t same = 0;
        for (size_t j = 0; j < p->nmasters && same == 0 && m->run_id[0] != '\0'; j++)
            if (j != i && strcmp(p->masters[j].run_id, m->run_id) == 0) same = (uint32_t)j + 1;
        if (same == m->same_as) continue;
        if (same != 0)
            log_error("msg=\"two master entries reach the same server (same run_id): neither votes until "
                      "the master list is fixed\" master=%s same_as=%s run_id=%.12s",
                      m->addr, p->masters[same - 1].addr, m->run_id);
        else
            log_info("msg=\"master entry no longer reaches the same server as another: it votes\" master=%s",
                     m->addr);
        m->same_as = same;
    }
}

/* Whether this is a new deployment, asked once per pool: if no master had
 * the marker when first met, and every master has been met, nothing can
 * have been locked through a redlockd on them, so the young unmarked ones
 * vote at once (and get the marker). Until every master was met (one is
 * down) that is not known and they wait. If any master had the marker, the
 * young unmarked ones may have lost data: their marker is read once more
 * MARKER_RECHECK_MS later (another redlockd starting at the same time on a
 * new deployment may be writing it) and, still absent, they sit out until
 * their uptime passes max_ttl_ms. */
static void settle_unverified(struct pool *p)
{
    if (!p->fresh_decided) {
        bool all_met = true, any_marker = false;
        for (size_t i = 0; i < p->nmasters; i++) {
            all_met &= p->masters[i].met;
            any_marker |= p->masters[i].met && p->masters[i].had_marker;
        }
        if (!any_marker && !all_met) return;
        p->fresh_decided = true;
        p->fresh = !any_marker;
    }
    for (size_t i = 0; i < p->nmasters; i++) {
        struct master *m = &p->masters[i];
        if (!m->unverified) continue;
        if (p->fresh) {
            log_info("msg=\"no master has the marker: a new deployment, the master votes\" master=%s", m->addr);
            m->unverified = false;
            m->quarantine_until = 0;
            write_marker(m);
        } else if (m->recheck_at == 0) {
            m->recheck_at = now_ms() + MARKER_RECHECK_MS;
        }
    }
}

static void on_recheck_marker(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    redisReply *r = reply;
    (void)privdata;
    note_reply(m);
    if (!m->unverified) return;
    if (r == NULL) { /* dropped: read again after the next handshake */
        m->recheck_at = 0;
        return;
    }
    m->unverified = false;
    if (r->type == REDIS_REPLY_STRING && r->len > 0 && strlen(m->run_id) == r->len &&
        memcmp(r->str, m->run_id, r->len) == 0) {
        log_info("msg=\"master got the marker from another redlockd meanwhile: it votes\" master=%s", m->addr);
        snprintf(m->marker, sizeof m->marker, "%s", m->run_id);
        m->quarantine_until = 0;
        return;
    }
    uint64_t now = now_ms();
    log_warn("msg=\"master is younger than max_ttl_ms and has no marker while others have: it may have "
             "restarted without its data; no vote until its uptime passes max_ttl_ms\" "
             "master=%s run_id=%.12s quarantine_ms=%llu",
             m->addr, m->run_id,
             (unsigned long long)(m->quarantine_until > now ? m->quarantine_until - now : 0));
}

/* First handshake of this pool with a master: did it lose data that may
 * still back valid locks, though this process never saw its old run_id?
 * It votes at once if it holds the marker with its own run_id (a redlockd
 * trusted it and it has not restarted since) or if its uptime is past
 * max_ttl_ms (whatever it lost has expired). Otherwise it is quarantined
 * until its uptime passes max_ttl_ms; without any marker it may be a new
 * server, which settle_unverified() decides. */
static void first_meeting(struct master *m, const char *run_id, uint64_t uptime_ms)
{
    uint64_t need = (uint64_t)m->pool->quarantine_ms + UPTIME_SLACK_MS;
    m->had_marker = m->marker[0] != '\0';
    if ((run_id[0] != '\0' && strcmp(m->marker, run_id) == 0) || uptime_ms >= need) return;
    m->quarantine_until = now_ms() + (need - uptime_ms);
    m->unverified = !m->had_marker;
    if (m->had_marker)
        log_warn("msg=\"master restarted less than max_ttl_ms ago (its marker is from an earlier run_id): no "
                 "vote until its uptime passes max_ttl_ms\" master=%s run_id=%.12s uptime_ms=%llu",
                 m->addr, run_id, (unsigned long long)uptime_ms);
}

static void on_handshake_marker(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    redisReply *r = reply;
    (void)privdata;
    note_reply(m);
    m->marker[0] = '\0'; /* absent, or an error: treated as absent (the safe side) */
    if (r != NULL && r->type == REDIS_REPLY_STRING && r->len < sizeof m->marker)
        snprintf(m->marker, sizeof m->marker, "%.*s", (int)r->len, r->str);
}

static void on_handshake_info(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    redisReply *r = reply;
    (void)privdata;
    note_reply(m);
    if (r == NULL || m->ac == NULL) return;
    if (r->type != REDIS_REPLY_STRING) {
        char why[ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "INFO: %.100s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        master_drop(m, why);
        return;
    }
    char run_id[sizeof m->run_id] = "", uptime[24] = "";
    info_field(r->str, r->len, "run_id", run_id, sizeof run_id);
    info_field(r->str, r->len, "uptime_in_seconds", uptime, sizeof uptime);
    /* No uptime (not a Redis?) counts as just started: the safe side. */
    uint64_t uptime_ms = strtoull(uptime, NULL, 10);
    uptime_ms = uptime_ms > UINT64_MAX / 2000 ? UINT64_MAX / 2 : uptime_ms * 1000;
    if (m->run_id[0] != '\0' && strcmp(run_id, m->run_id) != 0) {
        /* It may have lost the locks it granted (no fsync): keep it out of
         * the vote for longer than any lock can live, while its SETs still
         * go out so that it re-learns the current holders. */
        m->restarts++;
        m->unverified = false;
        m->quarantine_until = now_ms() + m->pool->quarantine_ms;
        log_warn("msg=\"master restarted: no vote until max_ttl_ms has passed\" master=%s "
                 "old_run_id=%.12s run_id=%.12s quarantine_ms=%u",
                 m->addr, m->run_id, run_id, m->pool->quarantine_ms);
    } else if (!m->met) {
        first_meeting(m, run_id, uptime_ms);
    }
    m->met = true;
    snprintf(m->run_id, sizeof m->run_id, "%s", run_id);
    if (m->unverified && m->run_id[0] != '\0' && strcmp(m->marker, m->run_id) == 0) { /* marked meanwhile */
        m->unverified = false;
        m->quarantine_until = 0;
    }
    m->last_error[0] = '\0';
    master_set_state(m, MASTER_UP, NULL);
    find_same_servers(m->pool);
    settle_unverified(m->pool);
    if (!m->unverified && !master_in_quarantine(m)) write_marker(m);
}

static void on_ping(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct master *m = ac->data;
    (void)privdata;
    note_reply(m);
    if (reply == NULL || m->ping_sent_us == 0) return;
    uint64_t rtt = now_us() - m->ping_sent_us;
    m->latency_us = m->latency_us == 0 ? rtt : (m->latency_us * 7 + rtt) / 8;
    m->ping_sent_us = 0;
}

/* ---- connection management ---- */

#define RESP_STACK_BYTES 2048

/* The RESP encoding of a command, written into buf (which must hold
 * resp_size() bytes). Returns its length. */
static size_t resp_encode(char *buf, int argc, const char **argv, const size_t *lens)
{
    char *p = buf;
    *p++ = '*';
    p += proto_put_u64(p, (uint64_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p += proto_put_u64(p, lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - buf);
}

static size_t resp_size(int argc, const size_t *lens)
{
    size_t n = 16 + 1; /* + the NUL after it */
    for (int i = 0; i < argc; i++) n += lens[i] + 26;
    return n;
}

/* Queue a command on a master's connection. We encode RESP ourselves:
 * hiredis's own formatting (sds, printf-style) was a tenth of the CPU. */
static int send_internal(struct master *m, redisCallbackFn *fn, void *privdata, int argc, const char **argv,
                         const size_t *lens)
{
    if (m->ac == NULL) return -1;
    char stackbuf[RESP_STACK_BYTES];
    size_t need = resp_size(argc, lens);
    char *buf = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (buf == NULL) return -1;
    size_t len = resp_encode(buf, argc, argv, lens);
    buf[len] = '\0'; /* hiredis scans the command with strchr() to spot SUBSCRIBE */
    int rc = redisAsyncFormattedCommand(m->ac, fn, privdata, buf, len);
    if (buf != stackbuf) free(buf);
    if (rc != REDIS_OK) return -1;
    m->guard.sent++;
    if (m->pending++ == 0) m->progress_at = now_ms();
    return 0;
}

static void reload_scripts(struct master *m)
{
    for (size_t i = 0; i < SCRIPT__COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_text[i]};
        size_t lens[] = {6, 4, strlen(script_text[i])};
        send_internal(m, on_script_load, (void *)(uintptr_t)i, 3, argv, lens);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct master *m = cac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        m->ac = NULL;
        m->pending = 0;
        master_set_state(m, MASTER_DOWN, cac->errstr);
        schedule_reconnect(m);
        return;
    }
    /* Pipeline the whole handshake; the master is UP when INFO answers. */
    if (m->conf.password != NULL) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int argc = 1;
        if (m->conf.user != NULL) {
            argv[argc] = m->conf.user;
            lens[argc++] = strlen(m->conf.user);
        }
        argv[argc] = m->conf.password;
        lens[argc++] = strlen(m->conf.password);
        send_internal(m, on_auth, NULL, argc, argv, lens);
    }
    reload_scripts(m);
    const char *get[] = {"GET", m->pool->marker_key};
    size_t getlens[] = {3, strlen(m->pool->marker_key)};
    send_internal(m, on_handshake_marker, NULL, 2, get, getlens);
    const char *argv[] = {"INFO", "server"};
    size_t lens[] = {4, 6};
    send_internal(m, on_handshake_info, NULL, 2, argv, lens);
}

static void master_connect(struct master *m)
{
    master_set_state(m, MASTER_CONNECTING, NULL);
    redisAsyncContext *ac = redisAsyncConnect(m->conf.host, m->conf.port);
    if (ac == NULL || ac->err) {
        /* A copy: master_set_state() copies why into last_error, and a copy
         * onto itself (as before) logged error="" for an unresolvable host. */
        char why[ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        master_set_state(m, MASTER_DOWN, why);
        schedule_reconnect(m);
        return;
    }
    ac->data = m;
    ac->c.reader->fn = &reply_pool_functions; /* no malloc per reply */
    memset(&m->guard, 0, sizeof m->guard);
    ac->c.reader->privdata = &m->guard; /* redisReaderSetPrivdata() casts to int */
    memset(m->script_ok, 0, sizeof m->script_ok);
    if (adapter_attach(ac, m->pool->base) != 0) {
        redisAsyncFree(ac);
        master_set_state(m, MASTER_DOWN, "cannot attach to event loop");
        schedule_reconnect(m);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    m->ac = ac;
    m->pending = 0;
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    master_connect(arg);
}

/* Drop a master that stopped answering, so its votes fail at once instead
 * of each request waiting out its deadline, and probe idle masters. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct pool *p = arg;
    (void)fd;
    (void)what;
    if (p->mem != NULL) {
        memstore_sweep(p->mem, 1024); /* expired keys go without a scan per request */
        return;
    }
    uint64_t now = now_ms();
    if (!p->fresh_decided && !p->undecided_logged && now - p->created_ms >= UNDECIDED_LOG_MS) {
        size_t waiting = 0;
        for (size_t i = 0; i < p->nmasters; i++) waiting += p->masters[i].unverified;
        if (waiting > 0) {
            log_warn("msg=\"masters younger than max_ttl_ms without the marker wait for every master to answer "
                     "once (none marked: a new deployment, they vote) or for their uptime to pass max_ttl_ms\" "
                     "waiting=%zu",
                     waiting);
            p->undecided_logged = true;
        }
    }
    for (size_t i = 0; i < p->nmasters; i++) {
        struct master *m = &p->masters[i];
        if (m->error_word[0] != '\0' && now - m->last_error_reply_ms >= ERROR_CALM_MS) {
            log_info("msg=\"master answers normally again\" master=%s", m->addr);
            m->error_word[0] = '\0';
            if (m->state == MASTER_UP) m->last_error[0] = '\0';
        }
        if (m->state == MASTER_UP && now - m->up_since >= MASTER_STABLE_MS) {
            m->backoff_ms = RECONNECT_MIN_MS;
            if (m->quiet) {
                m->quiet = false;
                m->down_logged = false;
                log_info("msg=\"master up\" master=%s run_id=%.12s", m->addr, m->run_id);
            }
        }
        if (m->quarantine_until != 0 && now >= m->quarantine_until) {
            m->quarantine_until = 0;
            m->unverified = false;
            log_info("msg=\"restarted master votes again\" master=%s", m->addr);
            write_marker(m);
        }
        if (m->ac == NULL) continue;
        if (m->unverified && m->recheck_at != 0 && now >= m->recheck_at && m->state == MASTER_UP) {
            const char *argv[] = {"GET", p->marker_key};
            size_t lens[] = {3, strlen(p->marker_key)};
            m->recheck_at = UINT64_MAX; /* sent: on_recheck_marker decides */
            if (send_internal(m, on_recheck_marker, NULL, 2, argv, lens) != 0)
                m->recheck_at = now + MARKER_RECHECK_MS;
        }
        if (m->pending > 0 && now - m->progress_at > p->stall_ms) {
            char why[64];
            snprintf(why, sizeof why, "no reply for %llu ms", (unsigned long long)(now - m->progress_at));
            master_set_state(m, MASTER_DOWN, why);
            redisAsyncFree(m->ac); /* calls back every pending command with no reply */
            continue;
        }
        if (m->state == MASTER_UP && m->ping_sent_us == 0 && now - m->last_ping_ms >= PING_INTERVAL_MS) {
            const char *argv[] = {"PING"};
            size_t lens[] = {4};
            m->last_ping_ms = now;
            m->ping_sent_us = now_us();
            if (send_internal(m, on_ping, NULL, 1, argv, lens) != 0) m->ping_sent_us = 0;
        }
    }
}

/* ---- fleet waiting: the subscriber connections ---- */

#define SUB_READ_CHUNK 16384

/* A subscriber connection's reply: a message on our channel is a wake-up;
 * the subscribe confirmation resets the backoff; an error (a refused AUTH
 * or SUBSCRIBE) drops the connection; anything else is ignored. Returns
 * false when the connection was dropped. */
static bool sub_on_reply(struct master *m, const redisReply *r)
{
    struct pool *p = m->pool;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s: %.100s", m->sub_auth_pending ? "AUTH" : "SUBSCRIBE", r->str);
        sub_drop(m, why, true);
        return false;
    }
    if (m->sub_auth_pending) { /* +OK to AUTH */
        m->sub_auth_pending = false;
        return true;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return true;
    const redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    size_t clen = strlen(p->wake_channel);
    if (chan->len != clen || memcmp(chan->str, p->wake_channel, clen) != 0) return true;
    if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) {
        m->sub_backoff_ms = RECONNECT_MIN_MS;
        if (m->sub_logged) log_info("msg=\"wake-up subscription back\" master=%s", m->addr);
        m->sub_logged = false;
    } else if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0 && msg->type == REDIS_REPLY_STRING &&
               msg->len > 0 && msg->len <= PROTO_MAX_RESOURCE_BYTES + CONFIG_MAX_KEY_PREFIX + 80 &&
               p->on_wake != NULL) {
        p->on_wake(p->userdata, m->index, msg->str, msg->len);
    }
    return true;
}

static void sub_on_read(struct bufferevent *bev, void *arg)
{
    struct master *m = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char chunk[SUB_READ_CHUNK];
    int n;
    while ((n = evbuffer_remove(in, chunk, sizeof chunk)) > 0) {
        const redisReader *rd = m->sub_reader;
        if (rd->len - rd->pos > REPLY_MAX_BYTES) {
            sub_drop(m, "reply too large", true);
            return;
        }
        if (redisReaderFeed(m->sub_reader, chunk, (size_t)n) != REDIS_OK) {
            sub_drop(m, "out of memory", true);
            return;
        }
        for (;;) {
            void *reply = NULL;
            m->sub_guard.limit = UINT64_MAX; /* messages come unasked */
            if (redisReaderGetReply(m->sub_reader, &reply) != REDIS_OK) {
                sub_drop(m, m->sub_guard.error ? m->sub_guard.error : "protocol error", true);
                return;
            }
            if (reply == NULL) break;
            bool alive = sub_on_reply(m, reply);
            reply_pool_functions.freeObject(reply);
            if (!alive) return;
        }
    }
}

static void sub_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct master *m = arg;
    struct pool *p = m->pool;
    if (what & BEV_EVENT_CONNECTED) {
        /* AUTH (when configured), then SUBSCRIBE, in one write. */
        const char *argv[3];
        size_t lens[3];
        int argc = 0;
        if (m->conf.password != NULL) {
            argv[argc] = "AUTH";
            lens[argc++] = 4;
            if (m->conf.user != NULL) {
                argv[argc] = m->conf.user;
                lens[argc++] = strlen(m->conf.user);
            }
            argv[argc] = m->conf.password;
            lens[argc++] = strlen(m->conf.password);
        }
        char *buf = NULL;
        size_t len = 0;
        if (argc > 0) {
            buf = malloc(resp_size(argc, lens));
            if (buf != NULL) len = resp_encode(buf, argc, argv, lens);
            m->sub_auth_pending = true;
        }
        const char *sargv[2] = {"SUBSCRIBE", p->wake_channel};
        size_t slens[2] = {9, strlen(p->wake_channel)};
        char *sbuf = malloc(resp_size(2, slens));
        if ((argc > 0 && buf == NULL) || sbuf == NULL) {
            free(buf);
            free(sbuf);
            sub_drop(m, "out of memory", true);
            return;
        }
        size_t slen = resp_encode(sbuf, 2, sargv, slens);
        int rc = (len > 0 ? bufferevent_write(bev, buf, len) : 0) | bufferevent_write(bev, sbuf, slen);
        if (buf != NULL) memset(buf, 0, len); /* the password */
        free(buf);
        free(sbuf);
        if (rc != 0) sub_drop(m, "out of memory", true);
        else bufferevent_enable(bev, EV_READ);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[ERROR_TEXT_MAX];
        int err = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof why, "%s",
                 (what & BEV_EVENT_EOF) ? "connection closed" : evutil_socket_error_to_string(err));
        sub_drop(m, why, true);
    }
}

/* Close the subscriber connection (logged once until it subscribes again);
 * reconnect with backoff when asked. */
static void sub_drop(struct master *m, const char *why, bool reconnect)
{
    if (m->sub_bev != NULL) {
        bufferevent_free(m->sub_bev);
        m->sub_bev = NULL;
    }
    if (m->sub_reader != NULL) {
        redisReaderFree(m->sub_reader);
        m->sub_reader = NULL;
    }
    m->sub_auth_pending = false;
    /* A master that is down says so itself ("master down"): only the loss
     * of the subscription alone is news. */
    if (why != NULL && !m->sub_logged && m->state == MASTER_UP) {
        log_warn("msg=\"wake-up subscription lost; waiters poll until it is back\" master=%s error=\"%s\"",
                 m->addr, why);
        m->sub_logged = true;
    }
    if (!reconnect || m->sub_timer == NULL) return;
    struct timeval tv = {m->sub_backoff_ms / 1000, (m->sub_backoff_ms % 1000) * 1000};
    evtimer_add(m->sub_timer, &tv);
    m->sub_backoff_ms = m->sub_backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : m->sub_backoff_ms * 2;
}

static void sub_connect(struct master *m)
{
    struct pool *p = m->pool;
    /* Only beside a command connection that is up: a master refusing AUTH
     * or not answering is retried by master_connect alone (its backoff). */
    if (!p->fleet || p->on_wake == NULL || m->sub_bev != NULL || m->state != MASTER_UP) return;
    m->sub_reader = redisReaderCreateWithFunctions(&reply_pool_functions);
    m->sub_bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (m->sub_reader == NULL || m->sub_bev == NULL) {
        sub_drop(m, "out of memory", true);
        return;
    }
    memset(&m->sub_guard, 0, sizeof m->sub_guard);
    m->sub_reader->privdata = &m->sub_guard;
    bufferevent_setcb(m->sub_bev, sub_on_read, NULL, sub_on_event, m);
    /* No DNS base: names are resolved as hiredis does for the command connection. */
    if (bufferevent_socket_connect_hostname(m->sub_bev, NULL, AF_UNSPEC, m->conf.host, m->conf.port) != 0)
        sub_drop(m, "cannot connect", true);
}

static void on_sub_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sub_connect(arg);
}

/* ---- public API ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- the memory backend ---- */

static void on_mem_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct pool *p = arg;
    (void)fd;
    (void)what;
    /* Take the batch: replies queued by the callbacks go out next turn. */
    struct mem_reply *q = p->mem_queue;
    size_t n = p->mem_len;
    p->mem_queue = NULL;
    p->mem_len = p->mem_cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct pool_reply r = {.kind = q[i].kind, .integer = q[i].integer, .str = q[i].str, .len = q[i].len};
        if (q[i].tag != 0) p->on_reply(p->userdata, 0, q[i].tag, &r);
        free(q[i].str);
    }
    free(q);
}

/* Queue the memory store's reply for delivery from the loop. */
static int mem_enqueue(struct pool *p, uintptr_t tag, const struct pool_reply *r)
{
    if (p->mem_len == p->mem_cap) {
        size_t cap = p->mem_cap ? p->mem_cap * 2 : 64;
        struct mem_reply *q = realloc(p->mem_queue, cap * sizeof *q);
        if (q == NULL) return -1;
        p->mem_queue = q;
        p->mem_cap = cap;
    }
    struct mem_reply *m = &p->mem_queue[p->mem_len];
    m->tag = tag;
    m->kind = r->kind;
    m->integer = r->integer;
    m->len = r->len;
    m->str = NULL;
    if (r->str != NULL && (m->str = malloc(r->len + 1)) == NULL) return -1;
    if (m->str != NULL) {
        memcpy(m->str, r->str, r->len);
        m->str[r->len] = '\0';
    }
    if (p->mem_len++ == 0) event_active(p->mem_deliver, EV_TIMEOUT, 1);
    return 0;
}

static struct pool *pool_new_memory(struct event_base *base, pool_reply_fn *on_reply, void *userdata)
{
    struct pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->base = base;
    p->on_reply = on_reply;
    p->userdata = userdata;
    p->nmasters = 1;
    p->masters = calloc(1, sizeof *p->masters);
    p->mem = memstore_new();
    p->mem_deliver = event_new(base, -1, 0, on_mem_deliver, p);
    p->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, p);
    if (p->masters == NULL || p->mem == NULL || p->mem_deliver == NULL || p->watchdog == NULL) {
        pool_free(p);
        return NULL;
    }
    p->masters[0].pool = p;
    p->masters[0].state = MASTER_UP;
    snprintf(p->masters[0].addr, sizeof p->masters[0].addr, "memory");
    struct timeval tick = {0, WATCHDOG_TICK_MS * 1000};
    event_add(p->watchdog, &tick);
    log_warn("msg=\"backend = memory: locks live in this process only and are not fault-tolerant\"");
    return p;
}

struct pool *pool_new(struct event_base *base, const struct config *cfg, pool_reply_fn *on_reply,
                      pool_wake_fn *on_wake, void *userdata)
{
    if (cfg->backend_memory) return pool_new_memory(base, on_reply, userdata);
    struct pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->base = base;
    p->on_reply = on_reply;
    p->on_wake = on_wake;
    p->userdata = userdata;
    pool_configure(p, cfg);
    p->created_ms = now_ms();
    for (size_t i = 0; i < SCRIPT__COUNT; i++) sha1_hex(script_text[i], strlen(script_text[i]), p->sha[i]);
    p->masters = calloc(cfg->nmasters ? cfg->nmasters : 1, sizeof *p->masters);
    p->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, p);
    if (p->masters == NULL || p->watchdog == NULL) goto fail;
    for (size_t i = 0; i < cfg->nmasters; i++) {
        struct master *m = &p->masters[i];
        const struct master_addr *a = &cfg->masters[i];
        m->pool = p;
        m->index = i;
        m->state = MASTER_DOWN;
        m->backoff_ms = RECONNECT_MIN_MS;
        snprintf(m->addr, sizeof m->addr, strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
        m->conf.port = a->port;
        m->conf.host = strdup(a->host);
        m->conf.user = dup_or_null(a->user);
        m->conf.password = dup_or_null(a->password);
        m->reconnect_timer = evtimer_new(base, on_reconnect_timer, m);
        m->sub_timer = evtimer_new(base, on_sub_timer, m);
        m->sub_backoff_ms = RECONNECT_MIN_MS;
        p->nmasters = i + 1;
        if (m->conf.host == NULL || m->reconnect_timer == NULL || m->sub_timer == NULL ||
            (a->user && !m->conf.user) || (a->password && !m->conf.password))
            goto fail;
    }
    struct timeval tick = {0, WATCHDOG_TICK_MS * 1000};
    event_add(p->watchdog, &tick);
    for (size_t i = 0; i < p->nmasters; i++) {
        master_connect(&p->masters[i]);
        sub_connect(&p->masters[i]);
    }
    return p;
fail:
    pool_free(p);
    return NULL;
}

void pool_free(struct pool *p)
{
    if (p == NULL) return;
    for (size_t i = 0; i < p->nmasters; i++) {
        struct master *m = &p->masters[i];
        if (m->ac != NULL) {
            redisAsyncContext *ac = m->ac;
            m->state = MASTER_DOWN;
            redisAsyncSetDisconnectCallback(ac, NULL);
            m->ac = NULL;
            redisAsyncFree(ac);
        }
        if (m->reconnect_timer) event_free(m->reconnect_timer);
        sub_drop(m, NULL, false);
        if (m->sub_timer) event_free(m->sub_timer);
        free(m->conf.host);
        free(m->conf.user);
        if (m->conf.password) {
            memset(m->conf.password, 0, strlen(m->conf.password));
            free(m->conf.password);
        }
    }
    if (p->watchdog) event_free(p->watchdog);
    if (p->mem_deliver) event_free(p->mem_deliver);
    for (size_t i = 0; i < p->mem_len; i++) free(p->mem_queue[i].str);
    free(p->mem_queue);
    memstore_free(p->mem);
    free(p->masters);
    free(p);
    reply_pool_free_all(); /* only the cache: no reply is alive between loop turns */
}

size_t pool_size(const struct pool *p)
{
    return p->nmasters;
}

uint64_t pool_pending(const struct pool *p)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->nmasters; i++) n += p->masters[i].pending;
    return n;
}
/* Commands a majority of masters still have to answer: the quorum-th
 * smallest pending count. A stalled minority does not raise it. */
uint64_t pool_backlog(const struct pool *p)
{
    uint64_t pending[CONFIG_MAX_MASTERS];
    size_t n = p->nmasters < CONFIG_MAX_MASTERS ? p->nmasters : CONFIG_MAX_MASTERS;
    for (size_t i = 0; i < n; i++) { /* insertion sort: a handful of masters */
        uint64_t v = p->masters[i].pending;
        size_t j = i;
        for (; j > 0 && pending[j - 1] > v; j--) pending[j] = pending[j - 1];
        pending[j] = v;
    }
    return n == 0 ? 0 : pending[n / 2];
}

size_t pool_quorum(const struct pool *p)
{
    return p->nmasters / 2 + 1;
}

size_t pool_up_count(const struct pool *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nmasters; i++) n += p->masters[i].state == MASTER_UP;
    return n;
}

bool pool_master_usable(const struct pool *p, size_t master)
{
    return master < p->nmasters && p->masters[master].state == MASTER_UP && p->masters[master].ac;
}

bool pool_master_votes(const struct pool *p, size_t master)
{
    const struct master *m = &p->masters[master];
    if (m->same_as != 0) return false;
    return m->quarantine_until == 0 || now_ms() >= m->quarantine_until;
}

void pool_configure(struct pool *p, const struct config *cfg)
{
    p->quarantine_ms = cfg->max_ttl_ms;
    /* Here, not only in pool_new: a reload of master_timeout_ms alone keeps the pool. */
    p->stall_ms = cfg->master_timeout_ms * 10 > STALL_MIN_MS ? cfg->master_timeout_ms * 10 : STALL_MIN_MS;
    /* Fleet waiting: (re)subscribe when it is turned on or the channel changes. */
    char chan[sizeof p->wake_channel];
    snprintf(chan, sizeof chan, "%s,wake", cfg->key_prefix ? cfg->key_prefix : "");
    bool fleet = cfg->fleet_waiting && p->on_wake != NULL && p->mem == NULL;
    if (fleet != p->fleet || strcmp(chan, p->wake_channel) != 0) {
        memcpy(p->wake_channel, chan, sizeof chan);
        p->fleet = fleet;
        for (size_t i = 0; i < p->nmasters && p->mem == NULL; i++) {
            struct master *m = &p->masters[i];
            if (m->sub_timer == NULL) continue; /* pool_new has not made it yet: it connects */
            sub_drop(m, NULL, false);
            evtimer_del(m->sub_timer);
            m->sub_logged = false;
            sub_connect(m);
        }
    }
    char key[sizeof p->marker_key];
    snprintf(key, sizeof key, "%s" MARKER_SUFFIX, cfg->key_prefix ? cfg->key_prefix : "");
    if (strcmp(key, p->marker_key) == 0) return;
    memcpy(p->marker_key, key, sizeof key);
    /* A new key_prefix: the masters that vote get the new marker now. */
    for (size_t i = 0; i < p->nmasters && p->mem == NULL; i++) {
        struct master *m = &p->masters[i];
        m->marker[0] = '\0';
        if (m->met && !m->unverified && !master_in_quarantine(m)) write_marker(m);
    }
}

void pool_master_status(const struct pool *p, size_t master, struct master_status *out)
{
    const struct master *m = &p->masters[master];
    uint64_t now = now_ms();
    out->quarantine_ms = m->quarantine_until > now ? m->quarantine_until - now : 0;
    out->restarts = m->restarts;
    out->same_as = m->same_as;
    out->addr = m->addr;
    out->state = m->state;
    out->last_error = m->last_error;
    out->latency_us = m->latency_us;
    out->pending = m->pending;
}

int pool_command(struct pool *p, size_t master, uintptr_t tag, int argc, const char **argv,
                 const size_t *argvlen)
{
    if (p->mem != NULL) {
        struct pool_reply r;
        char buf[64];
        memstore_command(p->mem, argc, argv, argvlen, &r, buf, sizeof buf);
        return mem_enqueue(p, tag, &r);
    }
    if (!pool_master_usable(p, master)) return -1;
    return send_internal(&p->masters[master], on_user_reply, (void *)tag, argc, argv, argvlen);
}

#define SCRIPT_MAX_ARGS 1040 /* EVALSHA sha nkeys + up to 1024 keys + a few args */

int pool_script(struct pool *p, size_t master, uintptr_t tag, enum pool_script script, size_t nkeys,
                const char *const *keys, const size_t *keylens, size_t nargs, const char *const *args,
                const size_t *arglens)
{
    if (p->mem != NULL) {
        struct pool_reply r;
        char buf[PROTO_LOCK_ID_LEN + 64];
        memstore_script(p->mem, script, nkeys, keys, keylens, nargs, args, arglens, &r, buf, sizeof buf);
        return mem_enqueue(p, tag, &r);
    }
    const char *argv[SCRIPT_MAX_ARGS];
    size_t lens[SCRIPT_MAX_ARGS];
    char nkeys_str[PROTO_U64_DIGITS];
    if (3 + nkeys + nargs > SCRIPT_MAX_ARGS) return -1;
    size_t argc = 0;
    if (master < p->nmasters && p->masters[master].script_ok[script]) {
        argv[argc] = "EVALSHA";
        lens[argc++] = 7;
        argv[argc] = p->sha[script];
        lens[argc++] = SHA_HEX;
    } else {
        argv[argc] = "EVAL";
        lens[argc++] = 4;
        argv[argc] = script_text[script];
        lens[argc++] = strlen(script_text[script]);
    }
    argv[argc] = nkeys_str;
    lens[argc++] = proto_put_u64(nkeys_str, nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        argv[argc] = keys[i];
        lens[argc++] = keylens[i];
    }
    for (size_t i = 0; i < nargs; i++) {
        argv[argc] = args[i];
        lens[argc++] = arglens[i];
    }
    return pool_command(p, master, tag, (int)argc, argv, lens);
}
