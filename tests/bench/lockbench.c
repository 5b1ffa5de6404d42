/*
 * lockbench.c - redlockd's load generator.
 *
 * Opens N connections to a redlockd (TCP host:port or a Unix socket path; -a given
 * more than once: several daemons, connection c going to address c mod the number of
 * addresses), keeps D requests in flight on each (pipelining), and runs one of:
 *
 *   pairs   ACQUIRE <unique resource> <ttl>, then RELEASE <id>; a new resource per op
 *   hot     every connection ACQUIREs one resource with WAIT, holds it H ms, RELEASEs
 *   fleet   hot, through several daemons on the same masters (-a twice or more), with
 *           what a fleet needs measured: acquisitions per daemon, the hand-over between
 *           daemons (from the previous holder's RELEASE being *sent* to the next grant's
 *           reply, one clock: this process), the longest run of grants on one daemon,
 *           and overlaps: a grant while another holder of ours still held (its grant
 *           seen, its RELEASE not yet sent, its validity not over), which must never
 *           happen. Waits still open at the end of the window count in the wait
 *           figures with their length so far.
 *   hold    like pairs, but each lock is held H ms before its RELEASE
 *   idle    each connection sends one PING and then stays idle (memory measurements)
 *   ping    PING after PING: one op is one round trip to the daemon and back, no
 *           Redis involved (the cost of the hop itself)
 *   direct  no daemon: a minimal Redlock client talking to the masters given with -M
 *           (SET key token NX PX ttl to all at once, majority wins, compare-and-delete
 *           release by EVALSHA), the baseline the daemon's latency is compared with
 *
 * One op is one acquire+release cycle (ping mode: one PING). Ops finishing during the warm-up are not
 * measured; latencies go into log-linear histograms with microsecond resolution
 * (HDR-style: 64 sub-buckets per power of two, < 1.6% relative error), never into a
 * sorted array. The run stops by itself: after the measured window (-t seconds
 * and/or -n ops) it stops starting ops, lets those in flight finish for a bounded
 * time, closes its connections and prints a report (or one JSON line).
 *
 * Only loopback addresses are accepted: this tool generates load, it must not be
 * pointed at somebody else's server.
 *
 * Helpers used by scripts/bench.sh: --free-port prints a free loopback TCP port,
 * --ping MS waits until the daemon at -a answers PING.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define DEFAULT_ADDR "127.0.0.1:7379"
#define MAX_CONNS 200000
#define MAX_DEPTH 100000
#define MAX_MASTERS 16
#define MAX_ADDRS 8
#define MAX_PREFIX 256
#define MAX_LINE 65536
#define IN_BUF_INIT 4096
#define DRAIN_MIN_MS 3000 /* in-flight ops get this long (plus the hold) to finish */
#define CONNECT_TIMEOUT_MS 5000

/* The compare-and-delete every Redlock implementation uses for release. */
static const char RELEASE_LUA[] =
    "if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) "
    "else return 0 end";

/* ---- Histogram ------------------------------------------------------------
 * Values below 128 us have their own bucket; above that each power of two is
 * split into 64 buckets, so a bucket is at most 1/64 of its value wide. */

#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_HALF (H_SUB / 2)
#define H_MAX_SHIFT 32 /* up to ~2^39 us; anything longer lands in the last bucket */
#define H_BUCKETS (H_SUB + H_MAX_SHIFT * H_HALF)

struct hist {
    uint64_t counts[H_BUCKETS];
    uint64_t total;
    uint64_t min, max, sum;
};

static size_t hist_index(uint64_t v)
{
    if (v < H_SUB) return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (H_SUB_BITS - 1); /* >= 1 */
    if (shift > H_MAX_SHIFT) return H_BUCKETS - 1;
    return H_SUB + (size_t)(shift - 1) * H_HALF + (size_t)((v >> shift) - H_HALF);
}

/* The highest value that falls into bucket i. */
static uint64_t hist_upper(size_t i)
{
    if (i < H_SUB) return i;
    size_t j = i - H_SUB;
    unsigned shift = (unsigned)(j / H_HALF) + 1;
    uint64_t top = j % H_HALF + H_HALF;
    return ((top + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    if (h->total == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->total++;
    h->sum += v;
}

/* The value at quantile q (0..1): the upper edge of the bucket holding the
 * ceil(q * total)-th smallest sample, never more than the true maximum. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->total);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

static double hist_mean(const struct hist *h)
{
    return h->total ? (double)h->sum / (double)h->total : 0.0;
}

/* ---- Options and state --------------------------------------------------- */

enum mode { MODE_PAIRS, MODE_HOT, MODE_HOLD, MODE_IDLE, MODE_DIRECT, MODE_PING, MODE_FLEET };
static const char *const mode_names[] = {"pairs", "hot", "hold", "idle", "direct", "ping", "fleet"};

#define MAX_FLEET_PERMITS 64 /* --permits at most */

struct options {
    const char *addr; /* the first -a (or the default) */
    const char *addrs[MAX_ADDRS];
    unsigned naddrs;
    const char *masters; /* -M, direct mode */
    enum mode mode;
    unsigned conns;
    unsigned depth;
    double seconds;
    uint64_t max_ops; /* 0 = no limit */
    long warmup_ms;   /* -1 = automatic */
    uint32_t ttl_ms;
    uint32_t hold_ms;
    uint32_t wait_ms;
    uint32_t ramp_ms; /* spread the first ops over this long */
    long drain_ms;    /* -1 = DRAIN_MIN_MS */
    uint32_t permits; /* hot, fleet: ACQUIRE ... PERMITS n (0: exclusive) */
    bool json;
    const char *label;
    char prefix[MAX_PREFIX + 1];
};

enum phase {
    PH_IDLE,  /* not running an op */
    PH_PING,  /* idle mode: PING sent */
    PH_ACQ,   /* ACQUIRE / SET NX PX sent */
    PH_HOLD,  /* acquired, hold timer running */
    PH_REL,   /* RELEASE / EVALSHA sent */
    PH_PARKED /* idle mode: answered, waiting for the end */
};

struct pend {      /* one request whose reply has not arrived */
    uint32_t slot; /* index into the client's slots */
    uint32_t gen;  /* the slot's generation when sent; stale replies are dropped */
};

struct link;

struct slot { /* one op in flight on a client */
    struct client *cl;
    uint32_t idx;
    uint32_t gen;
    enum phase phase;
    uint64_t t0_ns;                 /* op start (ACQUIRE sent) */
    uint8_t ok;                     /* direct: masters that granted / released */
    uint8_t answered;               /* direct: masters that answered */
    bool holding;                   /* acquired and not yet released */
    uint64_t valid_until_ns;        /* fleet: grant reply + validity_ms */
    char id[PROTO_LOCK_ID_LEN + 1]; /* lock id (daemon) or token (direct) */
    char key[MAX_PREFIX + 48];      /* direct: the Redis key */
    size_t keylen;
    struct event *timer; /* hold timer, created on first use */
};

struct link { /* one socket */
    int fd;
    struct client *cl;
    struct event *rev, *wev;
    char *in;
    size_t inlen, incap;
    char *out;
    size_t outlen, outoff, outcap;
    struct pend *ring; /* replies expected, in order */
    size_t rhead, rlen, rcap;
    bool dirty; /* on the flush list */
    bool dead;
};

struct client {
    unsigned id;
    unsigned daemon;    /* index of its address (-a) */
    struct link *links; /* 1 (daemon) or nmasters (direct) */
    unsigned nlinks;
    struct slot *slots;
    uint64_t seq;        /* resource counter */
    uint64_t acq_window; /* acquisitions inside the measured window (fairness) */
};

struct master {
    char host[256];
    int port;
    char sha[41];
};

struct daemon_addr {
    bool unix_sock;
    char host[256];
    int port;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static struct {
    struct options o;
    struct event_base *base;
    struct client *clients;
    struct master masters[MAX_MASTERS];
    unsigned nmasters, quorum;
    struct daemon_addr addrs[MAX_ADDRS];

    bool measuring, stopping, finished;
    uint64_t t_start_ns, t_ws_ns, t_we_ns;
    uint64_t active; /* slots not idle */
    uint64_t ops_window, ops_total, acq_total;
    uint64_t err[PROTO_ERR__COUNT + 1]; /* by code; last = unknown code */
    uint64_t err_bad, err_closed, err_redis, events, abandoned;
    uint64_t held, held_max; /* locks held right now / at most */
    struct hist lat, acq;

    struct link **flush; /* links with output queued this turn */
    size_t nflush, flushcap;
    struct event *ev_warm, *ev_end, *ev_drain, *ev_ramp;
    uint64_t started; /* slots started by the ramp so far */

    struct {                                     /* fleet mode */
        struct slot *holders[MAX_FLEET_PERMITS]; /* grants seen, RELEASE not sent yet */
        unsigned nholders;
        int last_daemon;      /* daemon of the last grant, -1 before the first */
        int last_rel_daemon;  /* daemon of the last RELEASE (hand-over: to the same or another) */
        uint64_t last_rel_ns; /* when the last holder's RELEASE was sent */
        bool rel_pending;     /* a RELEASE since the last grant: the next grant is a hand-over */
        uint64_t streak, streak_max, switches, overlaps, open_waits;
        uint64_t acq[MAX_ADDRS];  /* grants in the window, per daemon */
        struct hist cross, local; /* hand-over to another daemon / the same daemon */
        bool censored;            /* open waits added to the wait histogram */
    } f;
} g;

/* ---- Small helpers ------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lockbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) die("out of memory");
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL) die("out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) die("out of memory");
    return p;
}

/* Random bytes drawn 4 KiB at a time, as a careful Redlock client (and the
 * daemon) does, so a token costs no syscall. */
static void random_fill(unsigned char *out, size_t len)
{
    static unsigned char pool[4096];
    static size_t avail;
    while (len > 0) {
        if (avail == 0) {
            size_t got = 0;
            while (got < sizeof pool) {
                ssize_t n = getrandom(pool + got, sizeof pool - got, 0);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    die("getrandom: %s", strerror(errno));
                }
                got += (size_t)n;
            }
            avail = sizeof pool;
        }
        size_t take = len < avail ? len : avail;
        memcpy(out, pool + sizeof pool - avail, take);
        avail -= take;
        out += take;
        len -= take;
    }
}

static void random_token(char out[PROTO_LOCK_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[PROTO_LOCK_ID_LEN / 2];
    random_fill(b, sizeof b);
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[PROTO_LOCK_ID_LEN] = '\0';
}

/* Decimal digits of v into p; returns the number written. */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

/* Parse "host:port" or "[v6]:port" into host/port. */
static bool parse_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':') return false;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) return false;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostcap) return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) return false;
    *port = (int)p;
    return true;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A blocking connection to a loopback TCP address; -1 with a message on failure. */
static int connect_tcp(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "%s:%d: no loopback address", host, port);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) continue;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        snprintf(err, errlen, "%s:%d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int connect_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Connect to daemon address i (the i-th -a). */
static int connect_daemon(unsigned i, char *err, size_t errlen)
{
    const struct daemon_addr *a = &g.addrs[i];
    return a->unix_sock ? connect_unix(a->path, err, errlen) : connect_tcp(a->host, a->port, err, errlen);
}

/* hot and fleet: one resource, WAIT */
static bool hot_mode(void)
{
    return g.o.mode == MODE_HOT || g.o.mode == MODE_FLEET;
}

/* ---- Links: buffered, pipelined sockets ---------------------------------- */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static void link_init(struct link *l, struct client *cl, int fd)
{
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->cl = cl;
    l->rev = event_new(g.base, fd, EV_READ | EV_PERSIST, on_read, l);
    l->wev = event_new(g.base, fd, EV_WRITE | EV_PERSIST, on_write, l);
    if (l->rev == NULL || l->wev == NULL) die("event_new failed");
    event_add(l->rev, NULL);
}

static void link_close(struct link *l)
{
    if (l->fd < 0) return;
    event_free(l->rev);
    event_free(l->wev);
    close(l->fd);
    l->fd = -1;
    l->dead = true;
}

static char *link_reserve(struct link *l, size_t n)
{
    if (l->outcap - l->outlen < n) {
        if (l->outoff > 0) {
            memmove(l->out, l->out + l->outoff, l->outlen - l->outoff);
            l->outlen -= l->outoff;
            l->outoff = 0;
        }
        if (l->outcap - l->outlen < n) {
            size_t cap = l->outcap ? l->outcap : 512;
            while (cap - l->outlen < n) cap *= 2;
            l->out = xrealloc(l->out, cap);
            l->outcap = cap;
        }
    }
    return l->out + l->outlen;
}

static void link_expect(struct link *l, struct slot *s)
{
    if (l->rlen == l->rcap) {
        size_t cap = l->rcap ? l->rcap * 2 : 8;
        struct pend *r = xmalloc(cap * sizeof *r);
        for (size_t i = 0; i < l->rlen; i++) r[i] = l->ring[(l->rhead + i) & (l->rcap - 1)];
        free(l->ring);
        l->ring = r;
        l->rcap = cap;
        l->rhead = 0;
    }
    l->ring[(l->rhead + l->rlen) & (l->rcap - 1)] = (struct pend){s->idx, s->gen};
    l->rlen++;
    if (!l->dirty) {
        if (g.nflush == g.flushcap) {
            g.flushcap = g.flushcap ? g.flushcap * 2 : 64;
            g.flush = xrealloc(g.flush, g.flushcap * sizeof *g.flush);
        }
        g.flush[g.nflush++] = l;
        l->dirty = true;
    }
}

static bool link_pop(struct link *l, struct pend *out)
{
    if (l->rlen == 0) return false;
    *out = l->ring[l->rhead];
    l->rhead = (l->rhead + 1) & (l->rcap - 1);
    l->rlen--;
    return true;
}

static void link_failed(struct link *l, const char *why);

/* Write what is queued; the rest waits for EV_WRITE. */
static void link_flush(struct link *l)
{
    while (l->fd >= 0 && l->outoff < l->outlen) {
        ssize_t n = write(l->fd, l->out + l->outoff, l->outlen - l->outoff);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(l->wev, NULL);
                return;
            }
            link_failed(l, strerror(errno));
            return;
        }
        l->outoff += (size_t)n;
    }
    if (l->fd >= 0) event_del(l->wev);
    l->outoff = l->outlen = 0;
}

/* One write per link per callback: everything queued while handling the
 * replies of a read goes out together. */
static void flush_all(void)
{
    for (size_t i = 0; i < g.nflush; i++) {
        struct link *l = g.flush[i];
        l->dirty = false;
        link_flush(l);
    }
    g.nflush = 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_flush(arg);
    flush_all();
}

/* ---- Requests ------------------------------------------------------------ */

static void maybe_finish(void);
static void start_op(struct slot *s);

static void send_daemon(struct slot *s, const char *verb, size_t vlen, const char *arg, size_t alen,
                        const char *tail, size_t tlen)
{
    struct link *l = &s->cl->links[0];
    char *p = link_reserve(l, vlen + alen + tlen + 4);
    memcpy(p, verb, vlen);
    p += vlen;
    memcpy(p, arg, alen);
    p += alen;
    memcpy(p, tail, tlen);
    p += tlen;
    *p++ = '\r';
    *p++ = '\n';
    l->outlen = (size_t)(p - l->out);
    link_expect(l, s);
}

/* The resource of a new op: "<prefix>hot" or "<prefix><client>.<seq>". */
static size_t make_resource(struct slot *s, char *buf)
{
    size_t plen = strlen(g.o.prefix);
    memcpy(buf, g.o.prefix, plen);
    if (hot_mode()) {
        memcpy(buf + plen, "hot", 3);
        return plen + 3;
    }
    size_t n = plen;
    n += put_u64(buf + n, s->cl->id);
    buf[n++] = '.';
    n += put_u64(buf + n, s->cl->seq++);
    return n;
}

static void send_acquire(struct slot *s)
{
    char res[MAX_PREFIX + 48];
    char tail[64];
    size_t rlen = make_resource(s, res);
    size_t t = 0;
    tail[t++] = ' ';
    t += put_u64(tail + t, g.o.ttl_ms);
    if (hot_mode()) {
        memcpy(tail + t, " WAIT ", 6);
        t += 6;
        t += put_u64(tail + t, g.o.wait_ms);
        if (g.o.permits > 0) {
            memcpy(tail + t, " PERMITS ", 9);
            t += 9;
            t += put_u64(tail + t, g.o.permits);
        }
    }
    send_daemon(s, "ACQUIRE ", 8, res, rlen, tail, t);
}

/* Fleet bookkeeping: s's hold ends (its RELEASE goes out, or its daemon
 * connection died). */
static void fleet_released(struct slot *s)
{
    for (unsigned i = 0; i < g.f.nholders; i++) {
        if (g.f.holders[i] != s) continue;
        g.f.holders[i] = g.f.holders[--g.f.nholders];
        g.f.last_rel_ns = now_ns();
        g.f.last_rel_daemon = (int)s->cl->daemon;
        g.f.rel_pending = true;
        return;
    }
}

static void send_release(struct slot *s)
{
    s->phase = PH_REL;
    s->gen++;
    if (g.o.mode == MODE_FLEET) fleet_released(s);
    if (g.o.mode != MODE_DIRECT) {
        send_daemon(s, "RELEASE ", 8, s->id, PROTO_LOCK_ID_LEN, "", 0);
        return;
    }
    s->ok = s->answered = 0;
    char klen[24];
    size_t kl = put_u64(klen, s->keylen);
    for (unsigned m = 0; m < s->cl->nlinks; m++) {
        struct link *l = &s->cl->links[m];
        if (l->dead) continue;
        char *p = link_reserve(l, 192 + s->keylen);
        p += sprintf(p, "*5\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n$", g.masters[m].sha);
        memcpy(p, klen, kl);
        p += kl;
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, s->key, s->keylen);
        p += s->keylen;
        memcpy(p, "\r\n$32\r\n", 7);
        p += 7;
        memcpy(p, s->id, PROTO_LOCK_ID_LEN);
        p += PROTO_LOCK_ID_LEN;
        *p++ = '\r';
        *p++ = '\n';
        l->outlen = (size_t)(p - l->out);
        link_expect(l, s);
    }
}

static void send_set_nx(struct slot *s)
{
    s->ok = s->answered = 0;
    s->keylen = make_resource(s, s->key);
    random_token(s->id);
    char klen[24], ttl[24];
    size_t kl = put_u64(klen, s->keylen);
    size_t tl = put_u64(ttl, g.o.ttl_ms);
    for (unsigned m = 0; m < s->cl->nlinks; m++) {
        struct link *l = &s->cl->links[m];
        if (l->dead) continue;
        char *p = link_reserve(l, 192 + s->keylen);
        memcpy(p, "*6\r\n$3\r\nSET\r\n$", 14);
        p += 14;
        memcpy(p, klen, kl);
        p += kl;
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, s->key, s->keylen);
        p += s->keylen;
        memcpy(p, "\r\n$32\r\n", 7);
        p += 7;
        memcpy(p, s->id, PROTO_LOCK_ID_LEN);
        p += PROTO_LOCK_ID_LEN;
        memcpy(p, "\r\n$2\r\nNX\r\n$2\r\nPX\r\n$", 19);
        p += 19;
        p += put_u64(p, tl); /* "$<digits of the ttl>" then the ttl */
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, ttl, tl);
        p += tl;
        *p++ = '\r';
        *p++ = '\n';
        l->outlen = (size_t)(p - l->out);
        link_expect(l, s);
    }
}

static bool in_window(void)
{
    return g.measuring;
}

static void set_holding(struct slot *s, bool on)
{
    if (s->holding == on) return;
    s->holding = on;
    if (on && ++g.held > g.held_max) g.held_max = g.held;
    if (!on) g.held--;
}

static void slot_idle(struct slot *s)
{
    set_holding(s, false);
    if (s->phase != PH_IDLE) {
        s->phase = PH_IDLE;
        g.active--;
    }
}

/* Begin the next op on s, or park it once the run is stopping. */
static void start_op(struct slot *s)
{
    if (g.stopping) {
        slot_idle(s);
        maybe_finish();
        return;
    }
    if (s->phase == PH_IDLE) g.active++;
    s->gen++;
    s->t0_ns = now_ns();
    switch (g.o.mode) {
    case MODE_IDLE:
    case MODE_PING:
        s->phase = PH_PING;
        send_daemon(s, "PING", 4, "", 0, "", 0);
        break;
    case MODE_DIRECT:
        s->phase = PH_ACQ;
        send_set_nx(s);
        break;
    default:
        s->phase = PH_ACQ;
        send_acquire(s);
        break;
    }
}

static void op_done(struct slot *s)
{
    g.ops_total++;
    if (in_window()) {
        uint64_t us = (now_ns() - s->t0_ns) / 1000;
        hist_add(&g.lat, us);
        g.ops_window++;
        if (g.o.max_ops && g.ops_window >= g.o.max_ops && !g.stopping) {
            g.measuring = false;
            g.stopping = true;
            g.t_we_ns = now_ns();
        }
    }
    start_op(s);
}

static void on_hold_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct slot *s = arg;
    send_release(s);
    flush_all();
}

/* Fleet bookkeeping for a grant just seen (reply parsed, validity known):
 * more valid holders than the lock admits (1, or --permits n) is an overlap. */
static void fleet_grant(struct slot *s)
{
    uint64_t now = now_ns();
    int d = (int)s->cl->daemon;
    unsigned limit = g.o.permits > 0 ? g.o.permits : 1, valid = 0;
    struct slot *h = NULL;
    for (unsigned i = 0; i < g.f.nholders; i++)
        if (g.f.holders[i] != s && now < g.f.holders[i]->valid_until_ns) valid++, h = g.f.holders[i];
    if (valid >= limit) {
        if (++g.f.overlaps <= 10)
            fprintf(stderr,
                    "lockbench: OVERLAP: client %u (daemon %u) granted while %u others hold, client %u "
                    "(daemon %u) with %llu ms of its validity left\n",
                    s->cl->id, s->cl->daemon, valid, h->cl->id, h->cl->daemon,
                    (unsigned long long)((h->valid_until_ns - now) / 1000000));
    } else if (g.f.rel_pending && in_window()) {
        hist_add(d == g.f.last_rel_daemon ? &g.f.local : &g.f.cross, (now - g.f.last_rel_ns) / 1000);
    }
    g.f.rel_pending = false;
    if (d == g.f.last_daemon) {
        g.f.streak++;
    } else {
        if (g.f.last_daemon >= 0 && in_window()) g.f.switches++;
        g.f.streak = 1;
    }
    if (in_window()) {
        if (g.f.streak > g.f.streak_max) g.f.streak_max = g.f.streak;
        g.f.acq[d]++;
    }
    if (g.f.nholders < MAX_FLEET_PERMITS) g.f.holders[g.f.nholders++] = s;
    g.f.last_daemon = d;
}

static void acquired(struct slot *s)
{
    g.acq_total++;
    set_holding(s, true);
    if (g.o.mode == MODE_FLEET) fleet_grant(s);
    if (in_window()) {
        hist_add(&g.acq, (now_ns() - s->t0_ns) / 1000);
        s->cl->acq_window++;
    }
    if (g.o.hold_ms > 0 && g.o.mode != MODE_DIRECT && !g.stopping) {
        s->phase = PH_HOLD;
        if (s->timer == NULL) {
            s->timer = evtimer_new(g.base, on_hold_done, s);
            if (s->timer == NULL) die("evtimer_new failed");
        }
        struct timeval tv = {g.o.hold_ms / 1000, (g.o.hold_ms % 1000) * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    send_release(s);
}

static void count_err(const struct proto_reply *r)
{
    if (r->kind == PROTO_REPLY_ERR && r->err < PROTO_ERR__COUNT) g.err[r->err]++;
    else if (r->kind == PROTO_REPLY_ERR) g.err[PROTO_ERR__COUNT]++;
    else g.err_bad++;
}

/* A reply line from redlockd (NUL-terminated, modifiable). */
static void daemon_line(struct link *l, char *line)
{
    struct proto_reply r;
    proto_parse_reply(line, &r);
    if (r.kind == PROTO_REPLY_EVENT) {
        g.events++;
        return;
    }
    struct pend p;
    if (!link_pop(l, &p)) {
        g.err_bad++;
        return;
    }
    struct slot *s = &l->cl->slots[p.slot];
    switch (s->phase) {
    case PH_PING: /* idle mode: one PING, then the connection stays quiet */
        if (r.kind == PROTO_REPLY_PONG && g.o.mode == MODE_PING) {
            op_done(s);
        } else if (r.kind == PROTO_REPLY_PONG) {
            s->phase = PH_PARKED;
            g.ops_total++;
            g.ops_window++;
            hist_add(&g.lat, (now_ns() - s->t0_ns) / 1000);
        } else {
            count_err(&r);
            start_op(s);
        }
        break;
    case PH_ACQ:
        if (r.kind == PROTO_REPLY_OK && r.ntokens >= 2 &&
            proto_valid_lock_id(r.tokens[0], strlen(r.tokens[0]))) {
            memcpy(s->id, r.tokens[0], PROTO_LOCK_ID_LEN);
            s->id[PROTO_LOCK_ID_LEN] = '\0';
            s->valid_until_ns = now_ns() + strtoull(r.tokens[1], NULL, 10) * 1000000u;
            acquired(s);
        } else {
            count_err(&r);
            start_op(s);
        }
        break;
    case PH_REL:
        set_holding(s, false);
        if (r.kind == PROTO_REPLY_OK) op_done(s);
        else {
            count_err(&r);
            start_op(s);
        }
        break;
    default: g.err_bad++; break;
    }
}

/* A RESP line from master m. Only single-line replies are expected
 * (+OK, $-1, :1, :0, -ERR ...). */
static void redis_line(struct link *l, char *line)
{
    struct pend p;
    if (!link_pop(l, &p)) {
        g.err_bad++;
        return;
    }
    struct slot *s = &l->cl->slots[p.slot];
    if (line[0] == '-') g.err_redis++;
    if (p.gen != s->gen) return; /* a straggler of an op already decided */
    unsigned n = s->cl->nlinks;
    s->answered++;
    if (s->phase == PH_ACQ) {
        if (strcmp(line, "+OK") == 0) s->ok++;
        if (s->ok >= g.quorum) {
            acquired(s);
        } else if ((unsigned)(s->answered - s->ok) > n - g.quorum) {
            g.err[PROTO_ERR_BUSY]++;
            send_release(s); /* clean up the masters that granted */
            s->t0_ns = 0;    /* marks the op as failed */
        }
    } else if (s->phase == PH_REL) {
        if (s->answered >= g.quorum) {
            set_holding(s, false);
            if (s->t0_ns == 0) start_op(s);
            else op_done(s);
        }
    }
}

static void link_failed(struct link *l, const char *why)
{
    if (l->dead) return;
    if (!g.finished && !g.stopping) fprintf(stderr, "lockbench: connection lost: %s\n", why);
    g.err_closed++;
    struct client *cl = l->cl;
    link_close(l);
    for (unsigned i = g.f.nholders; i-- > 0;) /* the daemon releases them */
        if (g.f.holders[i]->cl == cl) fleet_released(g.f.holders[i]);
    /* Slots of a daemon client die with its connection; a direct client
     * carries on while a majority of its masters is still connected. */
    unsigned alive = 0;
    for (unsigned i = 0; i < cl->nlinks; i++) alive += !cl->links[i].dead;
    if (g.o.mode == MODE_DIRECT ? alive >= g.quorum : alive > 0) return;
    for (unsigned i = 0; i < g.o.depth; i++) {
        struct slot *s = &cl->slots[i];
        if (s->timer) evtimer_del(s->timer);
        s->gen++;
        slot_idle(s);
    }
    for (unsigned i = 0; i < cl->nlinks; i++) link_close(&cl->links[i]);
    maybe_finish();
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct link *l = arg;
    for (;;) {
        if (l->incap - l->inlen < 1024) {
            l->incap = l->incap ? l->incap * 2 : IN_BUF_INIT;
            l->in = xrealloc(l->in, l->incap);
        }
        ssize_t n = read(fd, l->in + l->inlen, l->incap - l->inlen);
        if (n == 0) {
            link_failed(l, "closed by peer");
            break;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) link_failed(l, strerror(errno));
            break;
        }
        bool full = (size_t)n == l->incap - l->inlen;
        l->inlen += (size_t)n;
        size_t pos = 0, ll, used;
        for (;;) {
            enum proto_frame_status st = proto_frame(l->in + pos, l->inlen - pos, MAX_LINE, &ll, &used);
            if (st == PROTO_FRAME_NEED_MORE) break;
            if (st == PROTO_FRAME_TOOLONG) {
                link_failed(l, "reply line too long");
                flush_all();
                return;
            }
            char *line = l->in + pos;
            line[ll] = '\0';
            pos += used;
            if (ll == 0) continue;
            if (g.o.mode == MODE_DIRECT) redis_line(l, line);
            else daemon_line(l, line);
            if (l->dead) {
                flush_all();
                return;
            }
        }
        memmove(l->in, l->in + pos, l->inlen - pos);
        l->inlen -= pos;
        if (!full) break;
    }
    flush_all();
}

/* ---- Run control ---------------------------------------------------------- */

static void maybe_finish(void)
{
    if (g.stopping && g.active == 0 && !g.finished) {
        g.finished = true;
        event_base_loopexit(g.base, NULL);
    }
}

static void on_warm(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (g.stopping) return;
    g.measuring = true;
    g.t_ws_ns = now_ns();
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    g.abandoned = g.active;
    g.finished = true;
    event_base_loopexit(g.base, NULL);
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!g.stopping) {
        g.measuring = false;
        g.stopping = true;
        g.t_we_ns = now_ns();
    }
    /* Parked idle-mode slots have nothing in flight; held locks go back now
     * rather than at the end of their hold. In fleet mode an ACQUIRE still
     * waiting counts in the wait figures with its wait so far (a starved client
     * must show), once. */
    bool censor = g.o.mode == MODE_FLEET && !g.f.censored && g.t_ws_ns != 0;
    g.f.censored = true;
    for (unsigned c = 0; c < g.o.conns; c++)
        for (unsigned i = 0; i < g.o.depth; i++) {
            struct slot *s = &g.clients[c].slots[i];
            if (s->phase == PH_PARKED) slot_idle(s);
            if (censor && s->phase == PH_ACQ && s->t0_ns < g.t_we_ns) {
                hist_add(&g.acq, (g.t_we_ns - s->t0_ns) / 1000);
                g.f.open_waits++;
            }
            if (s->phase == PH_HOLD) {
                evtimer_del(s->timer);
                send_release(s);
            }
        }
    flush_all();
    uint64_t ms = (g.o.drain_ms >= 0 ? (uint64_t)g.o.drain_ms : DRAIN_MIN_MS) + g.o.hold_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (!evtimer_pending(g.ev_drain, NULL)) evtimer_add(g.ev_drain, &tv);
    maybe_finish();
}

/* Starts the first op of each slot, spread evenly over --ramp ms, slot i of
 * every connection before slot i+1 of any. */
static void on_ramp(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t total = (uint64_t)g.o.conns * g.o.depth;
    uint64_t elapsed_ms = (now_ns() - g.t_start_ns) / 1000000;
    uint64_t target = total;
    if (g.o.ramp_ms && elapsed_ms < g.o.ramp_ms) target = total * elapsed_ms / g.o.ramp_ms;
    if (target == 0) target = 1;
    while (g.started < target && !g.stopping) {
        uint64_t k = g.started++;
        start_op(&g.clients[k % g.o.conns].slots[k / g.o.conns]);
    }
    if (g.started >= total || g.stopping) evtimer_del(g.ev_ramp);
    flush_all();
}

/* Watches the -n limit (reached inside op_done) so the drain timer starts. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (g.stopping && !evtimer_pending(g.ev_drain, NULL)) on_end(-1, 0, NULL);
}

/* Send a command and read a single RESP reply synchronously (setup only). */
static int redis_sync(int fd, const char *cmd, char *reply, size_t cap)
{
    size_t len = strlen(cmd), off = 0;
    while (off < len) {
        ssize_t n = write(fd, cmd + off, len - off);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, reply + got, cap - 1 - got);
        if (n <= 0) return -1;
        got += (size_t)n;
        reply[got] = '\0';
        char *nl = strstr(reply, "\r\n");
        if (nl == NULL) continue;
        if (reply[0] != '$') return 0;
        long blen = strtol(reply + 1, NULL, 10);
        if (blen < 0) return 0;
        if (got >= (size_t)(nl + 2 - reply) + (size_t)blen + 2) return 0;
        if (got + 1 >= cap) return -1;
    }
}

static void setup_masters(void)
{
    char *list = strdup(g.o.masters);
    if (list == NULL) die("out of memory");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ') tok++;
        if (g.nmasters == MAX_MASTERS) die("too many masters (max %d)", MAX_MASTERS);
        struct master *m = &g.masters[g.nmasters];
        if (!parse_hostport(tok, m->host, sizeof m->host, &m->port)) die("bad master address '%s'", tok);
        g.nmasters++;
    }
    free(list);
    if (g.nmasters == 0) die("-M needs at least one master");
    g.quorum = g.nmasters / 2 + 1;
    char cmd[512], reply[512], err[256];
    snprintf(cmd, sizeof cmd, "*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$%zu\r\n%s\r\n", strlen(RELEASE_LUA),
             RELEASE_LUA);
    for (unsigned i = 0; i < g.nmasters; i++) {
        struct master *m = &g.masters[i];
        int fd = connect_tcp(m->host, m->port, err, sizeof err);
        if (fd < 0) die("master %s", err);
        if (redis_sync(fd, cmd, reply, sizeof reply) != 0 || strncmp(reply, "$40\r\n", 5) != 0)
            die("master %s:%d: SCRIPT LOAD failed: %.80s", m->host, m->port, reply);
        memcpy(m->sha, reply + 5, 40);
        m->sha[40] = '\0';
        close(fd);
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void open_clients(void)
{
    char err[512];
    g.clients = xcalloc(g.o.conns, sizeof *g.clients);
    for (unsigned c = 0; c < g.o.conns; c++) {
        struct client *cl = &g.clients[c];
        cl->id = c;
        cl->daemon = c % g.o.naddrs;
        cl->nlinks = g.o.mode == MODE_DIRECT ? g.nmasters : 1;
        cl->links = xcalloc(cl->nlinks, sizeof *cl->links);
        for (unsigned m = 0; m < cl->nlinks; m++) {
            int fd = g.o.mode == MODE_DIRECT
                         ? connect_tcp(g.masters[m].host, g.masters[m].port, err, sizeof err)
                         : connect_daemon(cl->daemon, err, sizeof err);
            if (fd < 0) die("connection %u: %s", c, err);
            if (set_nonblock(fd) != 0) die("fcntl: %s", strerror(errno));
            link_init(&cl->links[m], cl, fd);
        }
        cl->slots = xcalloc(g.o.depth, sizeof *cl->slots);
        for (unsigned i = 0; i < g.o.depth; i++) {
            cl->slots[i].cl = cl;
            cl->slots[i].idx = i;
        }
    }
}

/* ---- Report ---------------------------------------------------------------- */

struct fairness {
    uint64_t min, max;
    double ratio;
};

static struct fairness fairness(void)
{
    struct fairness f = {UINT64_MAX, 0, 0};
    for (unsigned c = 0; c < g.o.conns; c++) {
        uint64_t a = g.clients[c].acq_window;
        if (a < f.min) f.min = a;
        if (a > f.max) f.max = a;
    }
    if (g.o.conns == 0) f.min = 0;
    f.ratio = f.min ? (double)f.max / (double)f.min : INFINITY;
    return f;
}

static uint64_t errors_total(void)
{
    uint64_t t = g.err_bad + g.err_closed;
    for (int i = 0; i <= PROTO_ERR__COUNT; i++) t += g.err[i];
    return t;
}

static const char *err_name(int i)
{
    return i == PROTO_ERR__COUNT ? "UNKNOWN" : proto_err_name((enum proto_err)i);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

/* Acquisitions per daemon in the window: the smallest, the largest, max/min. */
static struct fairness daemon_fairness(void)
{
    struct fairness f = {UINT64_MAX, 0, 0};
    for (unsigned d = 0; d < g.o.naddrs; d++) {
        if (g.f.acq[d] < f.min) f.min = g.f.acq[d];
        if (g.f.acq[d] > f.max) f.max = g.f.acq[d];
    }
    f.ratio = f.min ? (double)f.max / (double)f.min : INFINITY;
    return f;
}

static void report(double window_s)
{
    double rate = window_s > 0 ? (double)g.ops_window / window_s : 0;
    struct fairness fr = fairness();
    struct fairness df = daemon_fairness();
    char addrs[MAX_ADDRS * 300];
    size_t al = 0;
    addrs[0] = '\0';
    for (unsigned i = 0; i < g.o.naddrs && al < sizeof addrs; i++)
        al += (size_t)snprintf(addrs + al, sizeof addrs - al, "%s%s", i ? "," : "", g.o.addrs[i]);
    const char *addr = g.o.mode == MODE_DIRECT ? g.o.masters : addrs;
    double cpu = cpu_seconds();
    if (g.o.json) {
        FILE *f = stdout;
        fprintf(f, "{\"label\":");
        json_str(f, g.o.label ? g.o.label : mode_names[g.o.mode]);
        fprintf(f, ",\"mode\":\"%s\",\"addr\":", mode_names[g.o.mode]);
        json_str(f, addr);
        fprintf(f,
                ",\"conns\":%u,\"depth\":%u,\"ttl_ms\":%u,\"hold_ms\":%u,\"wait_ms\":%u,"
                "\"window_s\":%.3f,\"ops\":%llu,\"ops_total\":%llu,\"acq_total\":%llu,"
                "\"ops_per_s\":%.1f",
                g.o.conns, g.o.depth, g.o.ttl_ms, g.o.hold_ms, g.o.wait_ms, window_s,
                (unsigned long long)g.ops_window, (unsigned long long)g.ops_total,
                (unsigned long long)g.acq_total, rate);
        static const struct {
            const char *name;
            double q;
        } qs[] = {{"p50", .5}, {"p90", .9}, {"p99", .99}, {"p999", .999}};
        for (size_t i = 0; i < 4; i++)
            fprintf(f, ",\"%s_us\":%llu", qs[i].name, (unsigned long long)hist_quantile(&g.lat, qs[i].q));
        fprintf(f, ",\"max_us\":%llu,\"mean_us\":%.1f", (unsigned long long)g.lat.max, hist_mean(&g.lat));
        for (size_t i = 0; i < 4; i++)
            fprintf(f, ",\"acq_%s_us\":%llu", qs[i].name, (unsigned long long)hist_quantile(&g.acq, qs[i].q));
        fprintf(f, ",\"acq_max_us\":%llu", (unsigned long long)g.acq.max);
        fprintf(f, ",\"errors_total\":%llu,\"errors\":{", (unsigned long long)errors_total());
        bool first = true;
        for (int i = 1; i <= PROTO_ERR__COUNT; i++) {
            if (!g.err[i]) continue;
            fprintf(f, "%s\"%s\":%llu", first ? "" : ",", err_name(i), (unsigned long long)g.err[i]);
            first = false;
        }
        if (g.err_bad) {
            fprintf(f, "%s\"BADREPLY\":%llu", first ? "" : ",", (unsigned long long)g.err_bad);
            first = false;
        }
        if (g.err_closed) fprintf(f, "%s\"CLOSED\":%llu", first ? "" : ",", (unsigned long long)g.err_closed);
        fprintf(f, "},\"redis_errors\":%llu,\"events\":%llu,\"abandoned\":%llu,\"held_max\":%llu",
                (unsigned long long)g.err_redis, (unsigned long long)g.events, (unsigned long long)g.abandoned,
                (unsigned long long)g.held_max);
        if (hot_mode()) {
            fprintf(f, ",\"fair_min\":%llu,\"fair_max\":%llu,\"fair_ratio\":", (unsigned long long)fr.min,
                    (unsigned long long)fr.max);
            if (isinf(fr.ratio)) fprintf(f, "null"); /* some client never got the lock */
            else fprintf(f, "%.3f", fr.ratio);
        }
        if (g.o.mode == MODE_FLEET) {
            fprintf(f,
                    ",\"daemons\":%u,\"daemon_acq_min\":%llu,\"daemon_acq_max\":%llu,"
                    "\"daemon_ratio\":",
                    g.o.naddrs, (unsigned long long)df.min, (unsigned long long)df.max);
            if (isinf(df.ratio)) fprintf(f, "null"); /* some daemon's clients never got the lock */
            else fprintf(f, "%.3f", df.ratio);
            fprintf(f, ",\"daemon_acq\":[");
            for (unsigned d = 0; d < g.o.naddrs; d++)
                fprintf(f, "%s%llu", d ? "," : "", (unsigned long long)g.f.acq[d]);
            fprintf(f,
                    "],\"handover_n\":%llu,\"handover_p50_us\":%llu,\"handover_p99_us\":%llu,"
                    "\"handover_max_us\":%llu,\"local_handover_n\":%llu,"
                    "\"local_handover_p50_us\":%llu,\"local_handover_p99_us\":%llu,"
                    "\"switches\":%llu,\"streak_max\":%llu,\"open_waits\":%llu,"
                    "\"overlaps\":%llu",
                    (unsigned long long)g.f.cross.total, (unsigned long long)hist_quantile(&g.f.cross, .5),
                    (unsigned long long)hist_quantile(&g.f.cross, .99), (unsigned long long)g.f.cross.max,
                    (unsigned long long)g.f.local.total, (unsigned long long)hist_quantile(&g.f.local, .5),
                    (unsigned long long)hist_quantile(&g.f.local, .99), (unsigned long long)g.f.switches,
                    (unsigned long long)g.f.streak_max, (unsigned long long)g.f.open_waits,
                    (unsigned long long)g.f.overlaps);
        }
        fprintf(f, ",\"client_cpu_s\":%.3f}\n", cpu);
        fflush(f);
        return;
    }
    printf("lockbench: mode=%s addr=%s conns=%u depth=%u ttl=%ums", mode_names[g.o.mode], addr, g.o.conns,
           g.o.depth, g.o.ttl_ms);
    if (hot_mode()) printf(" wait=%ums", g.o.wait_ms);
    if (g.o.hold_ms) printf(" hold=%ums", g.o.hold_ms);
    printf("\n  ops:        %llu in %.2f s = %.0f ops/s  (%llu including warm-up and drain)\n",
           (unsigned long long)g.ops_window, window_s, rate, (unsigned long long)g.ops_total);
    const struct hist *hs[2] = {&g.lat, &g.acq};
    bool pings = g.o.mode == MODE_IDLE || g.o.mode == MODE_PING;
    const char *names[2] = {pings ? "ping" : "op", hot_mode() ? "wait" : "acquire"};
    for (int i = 0; i < (pings ? 1 : 2); i++) {
        const struct hist *h = hs[i];
        printf("  %-8s us: p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu  mean %.1f\n", names[i],
               (unsigned long long)hist_quantile(h, .5), (unsigned long long)hist_quantile(h, .9),
               (unsigned long long)hist_quantile(h, .99), (unsigned long long)hist_quantile(h, .999),
               (unsigned long long)h->max, hist_mean(h));
    }
    printf("  errors:     ");
    if (errors_total() == 0) printf("none");
    for (int i = 1; i <= PROTO_ERR__COUNT; i++)
        if (g.err[i]) printf("%s=%llu ", err_name(i), (unsigned long long)g.err[i]);
    if (g.err_bad) printf("BADREPLY=%llu ", (unsigned long long)g.err_bad);
    if (g.err_closed) printf("CLOSED=%llu ", (unsigned long long)g.err_closed);
    printf("\n");
    if (g.err_redis) printf("  redis errors: %llu\n", (unsigned long long)g.err_redis);
    if (g.events) printf("  events:     %llu\n", (unsigned long long)g.events);
    if (g.abandoned)
        printf("  abandoned:  %llu ops still in flight at the drain deadline\n",
               (unsigned long long)g.abandoned);
    if (g.o.mode == MODE_HOLD)
        printf("  held:       at most %llu locks at once\n", (unsigned long long)g.held_max);
    if (hot_mode())
        printf("  fairness:   acquisitions per client min %llu max %llu ratio %.2f\n",
               (unsigned long long)fr.min, (unsigned long long)fr.max, fr.ratio);
    if (g.o.mode == MODE_FLEET) {
        printf("  daemons:    acquisitions");
        for (unsigned d = 0; d < g.o.naddrs; d++) printf(" %llu", (unsigned long long)g.f.acq[d]);
        printf(" (max/min %.2f); %llu switches between daemons, longest run on one %llu\n", df.ratio,
               (unsigned long long)g.f.switches, (unsigned long long)g.f.streak_max);
        printf("  hand-over:  RELEASE sent -> next grant's reply, to another daemon: n %llu p50 %llu"
               " p99 %llu max %llu us; same daemon: n %llu p50 %llu us\n",
               (unsigned long long)g.f.cross.total, (unsigned long long)hist_quantile(&g.f.cross, .5),
               (unsigned long long)hist_quantile(&g.f.cross, .99), (unsigned long long)g.f.cross.max,
               (unsigned long long)g.f.local.total, (unsigned long long)hist_quantile(&g.f.local, .5));
        if (g.f.open_waits)
            printf("  open waits: %llu ACQUIREs still waiting at the end (in the wait figures)\n",
                   (unsigned long long)g.f.open_waits);
        printf("  overlaps:   %llu%s\n", (unsigned long long)g.f.overlaps,
               g.f.overlaps ? "  <- two holders at once: a safety violation" : "");
    }
    printf("  client cpu: %.2f s\n", cpu);
}

/* ---- Helpers for scripts ---------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 1;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return 1;
    }
    printf("%d\n", ntohs(sin.sin_port));
    close(fd);
    return 0;
}

/* Exit 0 once every daemon (-a) answers PING within ms milliseconds. */
static int ping_until(long ms)
{
    uint64_t deadline = now_ns() + (uint64_t)ms * 1000000u;
    char err[512] = "";
    unsigned i = 0;
    do {
        int fd = connect_daemon(i, err, sizeof err);
        if (fd >= 0) {
            struct timeval tv = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            char buf[64];
            ssize_t n = -1;
            if (write(fd, "PING\r\n", 6) == 6) n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n >= 4 && strncmp(buf, "PONG", 4) == 0) {
                if (++i == g.o.naddrs) return 0;
                continue;
            }
            snprintf(err, sizeof err, "no PONG");
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    } while (now_ns() < deadline);
    fprintf(stderr, "lockbench: %s did not answer PING within %ld ms: %s\n", g.o.addrs[i], ms, err);
    return 1;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: lockbench [options]\n"
               "  -a, --addr ADDR       redlockd address: host:port, [v6]:port or a socket path\n"
               "                        (default $REDLOCK_ADDR or " DEFAULT_ADDR "; loopback only);\n"
               "                        given up to 8 times: connection c goes to address c mod n\n"
               "  -m, --mode MODE       pairs | hot | hold | idle | direct | ping | fleet\n"
               "                        (default pairs; fleet: hot through the -a daemons, with\n"
               "                        per-daemon acquisitions, hand-over and overlap counts)\n"
               "  -c, --conns N         connections in all (default 1)\n"
               "  -d, --depth D         requests in flight per connection (default 1)\n"
               "  -t, --time SECONDS    measured duration, may be fractional (default 5)\n"
               "  -n, --ops N           stop after N measured ops (default: no limit)\n"
               "  -w, --warmup MS       warm-up excluded from the results (default min(1000, t/5))\n"
               "  -T, --ttl MS          lock ttl (default 10000)\n"
               "  -H, --hold MS         hold each lock this long (hot, hold; default 0; hold: 100)\n"
               "  -W, --wait MS         WAIT for hot and fleet modes (default 10000)\n"
               "  -r, --ramp MS         start the connections' ops spread over MS ms (default 0)\n"
               "      --permits N       hot, fleet: ACQUIRE ... PERMITS N, a semaphore of N holders\n"
               "                        (fleet: an overlap is more than N valid holders; 1..64)\n"
               "      --drain MS        after the window, ops in flight get MS ms (plus the hold)\n"
               "                        to finish before they are abandoned (default 3000)\n"
               "  -M, --masters LIST    direct mode: host:port,host:port,... (Redis masters)\n"
               "  -p, --prefix P        resource name prefix (default lockbench:<pid>:)\n"
               "  -l, --label NAME      label written into the JSON line\n"
               "      --json            print one JSON line instead of the report\n"
               "      --free-port       print a free loopback TCP port and exit\n"
               "      --ping MS         exit 0 once ADDR answers PING, 1 after MS ms\n"
               "  -h, --help            this help\n");
}

static unsigned long parse_num(const char *s, const char *what, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || *s == '-' || v < min || v > max)
        die("%s must be a number in %lu..%lu, not '%s'", what, min, max, s);
    return v;
}

int main(int argc, char **argv)
{
    struct options *o = &g.o;
    o->drain_ms = -1;
    o->mode = MODE_PAIRS;
    o->conns = 1;
    o->depth = 1;
    o->seconds = 5;
    o->warmup_ms = -1;
    o->ttl_ms = 10000;
    o->wait_ms = 10000;
    long hold = -1, ping_ms = -1;
    bool want_port = false;
    snprintf(o->prefix, sizeof o->prefix, "lockbench:%ld:", (long)getpid());

    enum { OPT_JSON = 256, OPT_FREE_PORT, OPT_PING, OPT_DRAIN, OPT_PERMITS };
    static const struct option longopts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"mode", required_argument, NULL, 'm'},
        {"conns", required_argument, NULL, 'c'},
        {"depth", required_argument, NULL, 'd'},
        {"time", required_argument, NULL, 't'},
        {"ops", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"ttl", required_argument, NULL, 'T'},
        {"hold", required_argument, NULL, 'H'},
        {"wait", required_argument, NULL, 'W'},
        {"masters", required_argument, NULL, 'M'},
        {"prefix", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, OPT_JSON},
        {"free-port", no_argument, NULL, OPT_FREE_PORT},
        {"ping", required_argument, NULL, OPT_PING},
        {"ramp", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"permits", required_argument, NULL, OPT_PERMITS},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "a:m:c:d:t:n:w:T:H:W:M:p:l:r:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'a':
            if (o->naddrs == MAX_ADDRS) die("-a given more than %d times", MAX_ADDRS);
            o->addrs[o->naddrs++] = optarg;
            break;
        case 'm': {
            size_t i;
            for (i = 0; i < sizeof mode_names / sizeof *mode_names; i++)
                if (strcmp(optarg, mode_names[i]) == 0) break;
            if (i == sizeof mode_names / sizeof *mode_names) die("unknown mode '%s'", optarg);
            o->mode = (enum mode)i;
            break;
        }
        case 'c': o->conns = (unsigned)parse_num(optarg, "-c", 1, MAX_CONNS); break;
        case 'd': o->depth = (unsigned)parse_num(optarg, "-d", 1, MAX_DEPTH); break;
        case 't': {
            char *end;
            o->seconds = strtod(optarg, &end);
            if (*end != '\0' || !(o->seconds > 0) || o->seconds > 3600) die("-t must be in (0, 3600]");
            break;
        }
        case 'n': o->max_ops = parse_num(optarg, "-n", 1, ULONG_MAX); break;
        case 'w': o->warmup_ms = (long)parse_num(optarg, "-w", 0, 600000); break;
        case 'T': o->ttl_ms = (uint32_t)parse_num(optarg, "-T", 1, PROTO_MAX_MS); break;
        case 'H': hold = (long)parse_num(optarg, "-H", 0, 3600000); break;
        case 'W': o->wait_ms = (uint32_t)parse_num(optarg, "-W", 0, PROTO_MAX_MS); break;
        case 'M': o->masters = optarg; break;
        case 'p':
            if (strlen(optarg) > MAX_PREFIX) die("--prefix is longer than %d bytes", MAX_PREFIX);
            for (const char *c = optarg; *c; c++)
                if (*c < 0x21 || *c > 0x7e || *c == ',') die("--prefix: printable ASCII without ',' only");
            snprintf(o->prefix, sizeof o->prefix, "%s", optarg);
            break;
        case 'l': o->label = optarg; break;
        case 'r': o->ramp_ms = (uint32_t)parse_num(optarg, "--ramp", 0, 600000); break;
        case OPT_JSON: o->json = true; break;
        case OPT_FREE_PORT: want_port = true; break;
        case OPT_PING: ping_ms = (long)parse_num(optarg, "--ping", 0, 600000); break;
        case OPT_DRAIN: o->drain_ms = (long)parse_num(optarg, "--drain", 0, 600000); break;
        case OPT_PERMITS: o->permits = (uint32_t)parse_num(optarg, "--permits", 1, MAX_FLEET_PERMITS); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (want_port) return free_port();

    if (o->naddrs == 0) {
        const char *env = getenv("REDLOCK_ADDR");
        o->addrs[o->naddrs++] = env != NULL && *env != '\0' ? env : DEFAULT_ADDR;
    }
    o->addr = o->addrs[0];
    if (o->mode != MODE_DIRECT) {
        for (unsigned i = 0; i < o->naddrs; i++) {
            const char *a = o->addrs[i];
            struct daemon_addr *da = &g.addrs[i];
            if (strchr(a, '/')) {
                da->unix_sock = true;
                if (strlen(a) >= sizeof da->path) die("%s: socket path too long", a);
                strcpy(da->path, a);
            } else if (!parse_hostport(a, da->host, sizeof da->host, &da->port)) {
                die("bad address '%s' (host:port, [v6]:port or a path)", a);
            }
        }
    } else {
        o->naddrs = 1; /* direct: -a is not used */
    }
    if (ping_ms >= 0) return ping_until(ping_ms);

    if (o->mode == MODE_DIRECT && o->masters == NULL) die("-m direct needs -M host:port,...");
    if (o->mode == MODE_HOLD && hold < 0) hold = 100;
    o->hold_ms = hold < 0 ? 0 : (uint32_t)hold;
    if (o->hold_ms && o->mode != MODE_HOT && o->mode != MODE_FLEET && o->mode != MODE_HOLD)
        die("-H applies to hot, fleet and hold modes");
    if (o->permits && o->mode != MODE_HOT && o->mode != MODE_FLEET)
        die("--permits applies to hot and fleet modes");
    g.f.last_daemon = g.f.last_rel_daemon = -1;
    if (o->warmup_ms < 0) {
        long auto_ms = (long)(o->seconds * 1000 / 5);
        o->warmup_ms = auto_ms < 1000 ? auto_ms : 1000;
    }
    if (o->mode == MODE_IDLE) o->warmup_ms = 0;

    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    /* A precise timer (timerfd with epoll), so that a hold of 1 ms is 1 ms and not
     * the 2.5-4 ms that epoll's millisecond timeouts and libevent's cached time make it. */
    struct event_config *cfg = event_config_new();
    if (cfg == NULL) die("event_config_new failed");
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    g.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (g.base == NULL) die("event_base_new failed");
    if (o->mode == MODE_DIRECT) setup_masters();
    open_clients();

    g.ev_warm = evtimer_new(g.base, on_warm, NULL);
    g.ev_end = evtimer_new(g.base, on_end, NULL);
    g.ev_drain = evtimer_new(g.base, on_drain, NULL);
    struct event *tick = event_new(g.base, -1, EV_PERSIST, on_tick, NULL);
    if (!g.ev_warm || !g.ev_end || !g.ev_drain || !tick) die("evtimer_new failed");
    uint64_t warm_us = (uint64_t)o->warmup_ms * 1000;
    uint64_t end_us = warm_us + (uint64_t)(o->seconds * 1e6);
    struct timeval tw = {(time_t)(warm_us / 1000000), (suseconds_t)(warm_us % 1000000)};
    struct timeval te = {(time_t)(end_us / 1000000), (suseconds_t)(end_us % 1000000)};
    struct timeval tt = {0, 20000};
    g.t_start_ns = now_ns();
    if (warm_us == 0) {
        g.measuring = true;
        g.t_ws_ns = g.t_start_ns;
    } else {
        evtimer_add(g.ev_warm, &tw);
    }
    evtimer_add(g.ev_end, &te);
    evtimer_add(tick, &tt);

    g.ev_ramp = event_new(g.base, -1, EV_PERSIST, on_ramp, NULL);
    if (g.ev_ramp == NULL) die("event_new failed");
    struct timeval tr = {0, 1000};
    on_ramp(-1, 0, NULL);
    if (g.started < (uint64_t)o->conns * o->depth) evtimer_add(g.ev_ramp, &tr);
    event_base_dispatch(g.base);

    if (g.t_we_ns == 0) g.t_we_ns = now_ns();
    double window_s = 0;
    if (g.t_ws_ns && g.t_we_ns > g.t_ws_ns) window_s = (double)(g.t_we_ns - g.t_ws_ns) / 1e9;
    report(window_s);

    for (unsigned c = 0; c < o->conns; c++) {
        struct client *cl = &g.clients[c];
        for (unsigned m = 0; m < cl->nlinks; m++) {
            link_close(&cl->links[m]);
            free(cl->links[m].in);
            free(cl->links[m].out);
            free(cl->links[m].ring);
        }
        for (unsigned i = 0; i < o->depth; i++)
            if (cl->slots[i].timer) event_free(cl->slots[i].timer);
        free(cl->slots);
        free(cl->links);
    }
    free(g.clients);
    free(g.flush);
    event_free(g.ev_warm);
    event_free(g.ev_end);
    event_free(g.ev_drain);
    event_free(tick);
    event_free(g.ev_ramp);
    event_base_free(g.base);
    return g.ops_window > 0 || (o->mode == MODE_IDLE && g.ops_total > 0) ? 0 : 1;
}
