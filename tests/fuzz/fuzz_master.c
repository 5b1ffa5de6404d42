/*
 * fuzz_master.c - libFuzzer target for a master that answers with arbitrary
 * bytes: the daemon's real pool (daemon/redis_pool.c, included here so the
 * harness can read the scripts' hashes and the master's state), its own
 * libevent adapter and its guarded reader, connected over loopback TCP to
 * this harness, which plays the master.
 *
 * Input: byte 0 picks the mode (bit 0: answer the handshake correctly first,
 * so the master is UP; bits 1-2: how many tagged commands, 0 to 3, are
 * then outstanding), byte 1 the piece size (1..64); the rest is written to
 * the daemon's socket in pieces, the loop run between pieces. Unsolicited
 * replies, extra replies, broken RESP and huge headers included.
 *
 * Checked: no crash or abort (hiredis 0.14 asserts on an unsolicited reply,
 * so the guard must stop every one), no sanitizer report or leak, every
 * tagged command answered exactly once (a reply, or none when the
 * connection drops), and a master that broke the protocol is not left UP.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../daemon/redis_pool.c"

#define NTAGS 3

static struct event_base *base;
static char host[] = "127.0.0.1";
static int lfd = -1;
static int port;
static unsigned answered[NTAGS + 1];

static void on_reply(void *ud, size_t master, uintptr_t tag, const struct pool_reply *r)
{
    (void)ud;
    (void)master;
    (void)r;
    assert(tag >= 1 && tag <= NTAGS);
    answered[tag]++;
}

static void init_once(void)
{
    if (base != NULL) return;
    log_set_level(LOG_LEVEL_ERROR);
    base = event_base_new();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert(base != NULL && lfd >= 0);
    assert(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 64) == 0);
    assert(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
    port = ntohs(sa.sin_port);
}

static void spin(int turns)
{
    for (int i = 0; i < turns; i++) event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Read what the daemon sent (up to a moment); returns the bytes seen. */
static size_t drain(int fd, char *keep, size_t keep_cap, size_t *kept)
{
    size_t total = 0;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) break;
        if (keep != NULL && *kept < keep_cap) {
            size_t c = (size_t)n < keep_cap - *kept ? (size_t)n : keep_cap - *kept;
            memcpy(keep + *kept, buf, c);
            *kept += c;
        }
        total += (size_t)n;
    }
    return total;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EAGAIN) {
            spin(1); /* let the daemon read */
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (poll(&pf, 1, 10) <= 0) return false; /* it stopped reading */
            continue;
        }
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Answer the handshake (7 SCRIPT LOADs and INFO) correctly, once it has
 * been received in full. Returns true when the master is UP. */
static bool handshake(struct pool *p, int fd)
{
    static char seen[65536];
    size_t kept = 0;
    for (int i = 0; i < 200 && (kept == 0 || memmem(seen, kept, "INFO", 4) == NULL); i++) {
        spin(1);
        drain(fd, seen, sizeof seen, &kept);
    }
    char out[4096];
    size_t n = 0;
    for (size_t i = 0; i < SCRIPT__COUNT; i++) {
        char sha[SHA1_HEX + 1];
        sha1_hex(script_text[i], strlen(script_text[i]), sha);
        n += (size_t)snprintf(out + n, sizeof out - n, "$40\r\n%s\r\n", sha);
    }
    const char *info = "# Server\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\n";
    n += (size_t)snprintf(out + n, sizeof out - n, "$%zu\r\n%s\r\n", strlen(info), info);
    if (!send_all(fd, out, n)) return false;
    for (int i = 0; i < 50 && p->masters[0].state != MASTER_UP; i++) spin(1);
    return p->masters[0].state == MASTER_UP;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    uint8_t mode = size > 0 ? data[0] : 0;
    size_t piece = size > 1 ? 1 + data[1] % 64 : 1;
    const char *bytes = size > 2 ? (const char *)data + 2 : "";
    size_t len = size > 2 ? size - 2 : 0;

    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.nmasters = 1;
    cfg.masters[0].host = host;
    cfg.masters[0].port = port;
    cfg.master_timeout_ms = 1000;
    cfg.max_ttl_ms = 60000;
    memset(answered, 0, sizeof answered);
    int stale;
    while ((stale = accept(lfd, NULL, NULL)) >= 0) close(stale); /* a slow run's reconnect */
    struct pool *p = pool_new(base, &cfg, on_reply, NULL, NULL);
    assert(p != NULL);
    spin(2); /* connect, send the handshake */
    struct pollfd pl = {.fd = lfd, .events = POLLIN};
    assert(poll(&pl, 1, 5000) == 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert(fd >= 0);
    int one = 1; /* each piece leaves at once, not held back by Nagle */
    assert(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);

    unsigned ntags = 0;
    if ((mode & 1) && handshake(p, fd)) {
        ntags = (mode >> 1) & 3; /* 0..3 commands outstanding */
        for (unsigned t = 1; t <= ntags; t++) {
            const char *argv[] = {"GET", "k"};
            size_t lens[] = {3, 1};
            assert(pool_command(p, 0, t, 2, argv, lens) == 0);
        }
        spin(2);
        drain(fd, NULL, 0, NULL);
    }
    bool dropped = false;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (p->masters[0].ac == NULL || !send_all(fd, bytes + off, n)) {
            dropped = true;
            break;
        }
        spin(2);
        drain(fd, NULL, 0, NULL);
    }
    spin(2);
    struct master *m = &p->masters[0];
    /* A master that broke the protocol is not left UP. */
    if (m->guard.error != NULL) assert(m->state != MASTER_UP);
    (void)dropped;
    close(fd);
    pool_free(p); /* commands still outstanding get their one "no reply" */
    for (unsigned t = 1; t <= ntags; t++) assert(answered[t] == 1);
    for (unsigned t = ntags + 1; t <= NTAGS; t++) assert(answered[t] == 0);
    return 0;
}
