/*
 * main.c - redlockd: arguments, configuration, signals, the event loop and
 * an orderly shutdown.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "listener.h"
#include "lockmgr.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "redis_pool.h"
#include "redlock_engine.h"
#include "server.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/redlockd/redlockd.ini"
#define SHUTDOWN_TICK_MS 10
#define SHUTDOWN_MIN_MS 1000 /* graceful shutdown gives up after max(this, 10 master timeouts) */

#define STATUS_TICK_MS 1000
#define EXIT_USAGE 64 /* EX_USAGE */

static struct server server;
static struct event *shutdown_timer;
static struct event *status_timer; /* systemd STATUS= on change, and WATCHDOG=1 */
static size_t last_masters_up = SIZE_MAX;
static uint64_t shutdown_deadline_ms;
static bool conns_closed;

static void usage(FILE *out)
{
    fprintf(out, "usage: redlockd [-c FILE] [-t] [-h|--help] [-V|--version]\n"
                 "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
                 "  -t       check the configuration and exit (0 when valid)\n"
                 "  -h, --help     this help\n"
                 "  -V, --version  print the version\n"
                 "exit status: 0 clean shutdown or valid config; 1 error; 64 bad usage\n");
}

/* A master's wake-up for a released key (fleet waiting). */
static void on_fleet_wake(void *ctx, const char *key, size_t len)
{
    mgr_fleet_wake(ctx, key, len);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_reap_closed(arg);
}

static bool outputs_flushed(struct server *s)
{
    struct conn *c;
    TAILQ_FOREACH(c, &s->conns, link)
    if (!TAILQ_EMPTY(&c->pending) || c->flush_scheduled) return false;
    return true;
}

/* Shutdown proceeds in ticks: first let replies and releases go out, then
 * close the clients, then wait for the masters to answer the releases. */
static void on_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    (void)fd;
    (void)what;
    bool late = now_ms() >= shutdown_deadline_ms;
    if (!conns_closed && (late || outputs_flushed(s))) {
        struct conn *c;
        while ((c = TAILQ_FIRST(&s->conns)) != NULL) conn_close(c, "shutdown");
        conns_closed = true;
    }
    /* Releases nobody waits for have no op: wait for the masters' answers. */
    uint64_t pending = pool_pending(rl_engine_pool(s->rl));
    if (conns_closed && (late || (rl_engine_inflight(s->rl) == 0 && pending == 0))) {
        if (late)
            log_warn("msg=\"shutdown deadline reached\" inflight=%u pending=%llu", rl_engine_inflight(s->rl),
                     (unsigned long long)pending);
        event_base_loopexit(s->base, NULL);
        return;
    }
    struct timeval tv = {0, SHUTDOWN_TICK_MS * 1000};
    evtimer_add(shutdown_timer, &tv);
}

/* Keep systemd told: WATCHDOG=1 every tick (the tick is at most half the
 * watchdog period), STATUS= when the number of masters up changes. */
static void on_status_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    (void)fd;
    (void)what;
    struct pool *p = rl_engine_pool(s->rl);
    size_t up = pool_up_count(p);
    if (up != last_masters_up) {
        notify_send("STATUS=%zu/%zu masters up (quorum %zu), %u clients, %u locks", up, pool_size(p),
                    pool_quorum(p), s->nconns, s->nheld);
        last_masters_up = up;
    }
    auth_budget_log(&s->auth_budget, now_ms()); /* the end of a burst of AUTH failures */
    if (notify_watchdog_interval_usec() > 0) notify_send("WATCHDOG=1");
}

static void begin_shutdown(struct server *s, int sig)
{
    if (s->shutting_down) {
        log_warn("msg=\"second signal: exiting at once\" signal=%d", sig);
        _exit(1);
    }
    log_info("msg=\"shutting down\" signal=%d clients=%u locks=%u", sig, s->nconns, s->nheld);
    notify_send("STOPPING=1");
    listeners_close(s);
    mgr_shutdown(s);
    conn_shutdown_all(s);
    uint64_t budget = (uint64_t)s->cfg.master_timeout_ms * 10;
    shutdown_deadline_ms = now_ms() + (budget > SHUTDOWN_MIN_MS ? budget : SHUTDOWN_MIN_MS);
    shutdown_timer = evtimer_new(s->base, on_shutdown_tick, s);
    struct timeval tv = {0, 0};
    evtimer_add(shutdown_timer, &tv);
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool master_addr_equal(const struct master_addr *x, const struct master_addr *y)
{
    return x->port == y->port && str_eq(x->host, y->host) && str_eq(x->user, y->user) &&
           str_eq(x->password, y->password);
}

/* The same masters with the same credentials, in any order: a reload that
 * only reorders the list keeps the connections (a master's index is only
 * where INFO lists it). Lists have no duplicates (config.c refuses them). */
static bool masters_same_set(const struct config *a, const struct config *b)
{
    if (a->nmasters != b->nmasters) return false;
    for (size_t i = 0; i < a->nmasters; i++) {
        bool found = false;
        for (size_t j = 0; j < b->nmasters && !found; j++)
            found = master_addr_equal(&a->masters[i], &b->masters[j]);
        if (!found) return false;
    }
    return true;
}

static void swap_masters(struct config *a, struct config *b)
{
    struct master_addr tmp[CONFIG_MAX_MASTERS];
    size_t ntmp = a->nmasters;
    memcpy(tmp, a->masters, sizeof tmp);
    memcpy(a->masters, b->masters, sizeof tmp);
    a->nmasters = b->nmasters;
    memcpy(b->masters, tmp, sizeof tmp);
    b->nmasters = ntmp;
}

/* Redlock needs N/2+1 votes: say so when the count gives no or no extra
 * fault tolerance. */
static void warn_master_count(const struct config *cfg)
{
    size_t n = cfg->nmasters;
    if (cfg->backend_memory || n == 0) return;
    if (n == 1)
        log_warn(
            "msg=\"a single master: no fault tolerance; when it is down no lock can be taken, and when it "
            "restarts without its data the locks it granted are forgotten; use 3 or 5 independent masters\" "
            "masters=1 quorum=1");
    else if (n == 2)
        log_warn(
            "msg=\"two masters: the quorum is 2, so either one down stops all locking (less available than "
            "one master); use 3\" masters=2 quorum=2");
    else if (n % 2 == 0)
        log_warn(
            "msg=\"an even number of masters: the quorum is %zu, so it survives %zu failures, no more than "
            "%zu masters would; use an odd number\" masters=%zu quorum=%zu",
            n / 2 + 1, (n - 1) / 2, n - 1, n, n / 2 + 1);
}

/* Everything a config needs beyond parsing: no master under two names
 * (resolved here, so a reload with one is refused), secrets from their files.
 * On success *token is the client token (NULL when AUTH is off). */
static int load_config(const char *path, struct config *cfg, char **token, char *err, size_t errlen)
{
    char warn[CONFIG_ERR_MAX];
    *token = NULL;
    if (config_load(path, cfg, err, errlen) != 0) return -1;
    char why[CONFIG_ERR_MAX];
    if (!cfg->backend_memory && config_check_masters_distinct(cfg, why, sizeof why) != 0) {
        snprintf(err, errlen, "%.100s: %.400s", path, why);
        goto fail;
    }
    if (auth_apply_password_file(cfg, err, errlen, warn, sizeof warn) != 0) goto fail;
    if (warn[0] != '\0') log_warn("msg=\"password_file: %s\"", warn);
    if (cfg->auth_token_file != NULL && cfg->auth_token_file[0] != '\0') {
        *token = auth_read_secret(cfg->auth_token_file, AUTH_SECRET_TOKEN, err, errlen, warn, sizeof warn);
        if (*token == NULL) goto fail;
        if (warn[0] != '\0') log_warn("msg=\"auth_token_file: %s\"", warn);
    }
    return 0;
fail:
    config_free(cfg);
    return -1;
}

static void log_restart_only(const char *key, void *arg)
{
    (void)arg;
    log_warn("msg=\"reload: this key changes only on restart; the running value stays\" key=%s", key);
}

/* SIGHUP: read the config again and apply it without dropping clients or
 * locks. A config that does not load leaves the running one in force.
 * Keys the config table marks restart-only keep their running values (and
 * are named in the log); a change of backend refuses the whole reload. */
static void reload(struct server *s)
{
    struct config next;
    char *token;
    char err[CONFIG_ERR_MAX];
    log_info("msg=\"reloading configuration\" path=%s", s->config_path);
    notify_reloading();
    if (load_config(s->config_path, &next, &token, err, sizeof err) != 0) {
        log_error("msg=\"reload refused: the running configuration stays in force\" error=\"%s\"", err);
        notify_send("READY=1\nSTATUS=reload refused: %s", err);
        return;
    }
    if (next.backend_memory != s->cfg.backend_memory) {
        log_error("msg=\"reload refused: redis.backend changes only on restart\"");
        auth_free_secret(token);
        config_free(&next);
        notify_send("READY=1\nSTATUS=reload refused: backend changes need a restart");
        return;
    }
    /* The config table says which keys need a restart: those keep their
     * running values (listeners, syslog, the metrics address ...). */
    config_keep_restart_only(&next, &s->cfg, log_restart_only, NULL);

    bool new_masters = !masters_same_set(&s->cfg, &next);
    /* The same set, perhaps reordered: keep the running order, which is the pool's. */
    if (!new_masters) swap_masters(&s->cfg, &next);
    struct config old = s->cfg;
    s->cfg = next;
    if (new_masters && rl_engine_set_masters(s->rl, &s->cfg) != 0) {
        log_error("msg=\"reload: cannot connect the new masters; keeping the old list\"");
        /* Swap the master lists back so cfg describes what is in use. */
        swap_masters(&s->cfg, &old);
        new_masters = false;
    }
    config_free(&old);
    rl_engine_configure(s->rl, &s->cfg);
    log_set_level(s->cfg.log_level);
    bool token_changed = !str_eq(s->auth_token, token);
    auth_free_secret(s->auth_token);
    s->auth_token = token;
    if (token_changed) conn_auth_changed(s);
    log_info("msg=\"configuration reloaded\" masters=%zu masters_changed=%s", s->cfg.nmasters,
             new_masters ? "yes" : "no");
    if (new_masters) warn_master_count(&s->cfg);
    last_masters_up = SIZE_MAX; /* re-announce the status */
    notify_send("READY=1");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;
    (void)what;
    if (sig == SIGHUP) {
        reload(s);
        return;
    }
    begin_shutdown(s, (int)sig);
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    bool check_only = false;
    static const struct option longs[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0; /* usage errors: one line of our own, exit 64 (EX_USAGE) */
    while ((opt = getopt_long(argc, argv, ":c:thV", longs, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check_only = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("redlockd %s\n", REDLOCKD_VERSION); return 0;
        case ':':
            fprintf(stderr, "redlockd: -%c needs a value (see redlockd --help)\n", optopt);
            return EXIT_USAGE;
        default:
            if (optopt) fprintf(stderr, "redlockd: unknown option -%c (see redlockd --help)\n", optopt);
            else fprintf(stderr, "redlockd: unknown option %s (see redlockd --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "redlockd: unexpected argument '%s' (see redlockd --help)\n", argv[optind]);
        return EXIT_USAGE;
    }

    struct server *s = &server;
    char err[CONFIG_ERR_MAX];
    s->config_path = path;
    if (load_config(path, &s->cfg, &s->auth_token, err, sizeof err) != 0) {
        fprintf(stderr, "redlockd: %s\n", err);
        return 1;
    }
    if (check_only) {
        warn_master_count(&s->cfg);
        printf("redlockd: %s: configuration ok (%zu masters)\n", path, s->cfg.nmasters);
        auth_free_secret(s->auth_token);
        config_free(&s->cfg);
        return 0;
    }
    log_set_level(s->cfg.log_level);
    log_use_syslog(s->cfg.log_syslog);
    notify_init();
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    struct event *sigs[3] = {NULL, NULL, NULL};
    s->base = event_base_new();
    if (s->base == NULL) {
        fprintf(stderr, "redlockd: cannot create the event loop\n");
        goto out;
    }
    s->started_ms = now_ms();
    s->started_unix = (int64_t)time(NULL);
    TAILQ_INIT(&s->conns);
    TAILQ_INIT(&s->closed);
    TAILQ_INIT(&s->orphans);
    lock_tables_init(&s->tables);
    if (timers_init(&s->timers, s->base) != 0) {
        fprintf(stderr, "redlockd: out of memory\n");
        goto out;
    }
    s->reaper = event_new(s->base, -1, 0, on_reap, s);
    s->rl = rl_engine_new(s->base, &s->cfg);
    static struct mgr_engine engine; /* the Redlock engine, reporting to /metrics */
    engine = mgr_engine_redlock;
    engine.acquired = metrics_observe_acquire;
    engine.acquire_failed = metrics_note_acquire_failure;
    s->engine = &engine;
    if (s->reaper == NULL || s->rl == NULL) {
        fprintf(stderr, "redlockd: out of memory\n");
        goto out;
    }
    /* Fleet waiting: a random node id for this run; wake-ups to the lock core. */
    unsigned char raw[POOL_NODE_ID_LEN / 2];
    if (random_bytes(raw, sizeof raw) == 0) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < sizeof raw; i++) {
            s->node_id[2 * i] = hex[raw[i] >> 4];
            s->node_id[2 * i + 1] = hex[raw[i] & 15];
        }
        s->node_id[POOL_NODE_ID_LEN] = '\0';
    } else {
        log_warn("msg=\"no randomness for a node id: fleet waiting is off\"");
    }
    rl_engine_set_wake(s->rl, on_fleet_wake, s);
    if (listeners_open(s, err, sizeof err) != 0 || metrics_open(s, err, sizeof err) != 0) {
        fprintf(stderr, "redlockd: %s\n", err);
        goto out;
    }
    const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(s->base, signums[i], on_signal, s);
        if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0) {
            fprintf(stderr, "redlockd: cannot handle signal %d\n", signums[i]);
            goto out;
        }
    }
    uint64_t tick_us = notify_watchdog_interval_usec();
    if (tick_us == 0 || tick_us > STATUS_TICK_MS * 1000) tick_us = STATUS_TICK_MS * 1000;
    status_timer = event_new(s->base, -1, EV_PERSIST, on_status_tick, s);
    struct timeval tick = {(time_t)(tick_us / 1000000), (suseconds_t)(tick_us % 1000000)};
    if (status_timer == NULL || event_add(status_timer, &tick) != 0) {
        fprintf(stderr, "redlockd: cannot start the status timer\n");
        goto out;
    }
    log_info("msg=started version=%s backend=%s masters=%zu quorum=%zu", REDLOCKD_VERSION, s->cfg.backend,
             pool_size(rl_engine_pool(s->rl)), pool_quorum(rl_engine_pool(s->rl)));
    warn_master_count(&s->cfg);
    notify_send("READY=1\nSTATUS=started, connecting to %zu masters", s->cfg.nmasters);
    event_base_dispatch(s->base);
    log_info("msg=stopped");
    rc = 0;

out:
    if (!s->shutting_down && s->base != NULL) listeners_close(s);
    metrics_close(s);
    struct conn *c;
    while ((c = TAILQ_FIRST(&s->conns)) != NULL) conn_close(c, "exit");
    conn_reap_closed(s);
    rl_engine_free(s->rl); /* no op calls back after this */
    mgr_free_all(s);
    if (s->base) conn_free_orphans(s);
    conn_free_request_pool();
    timers_destroy(&s->timers);
    lock_tables_destroy(&s->tables);
    for (int i = 0; i < 3; i++)
        if (sigs[i]) event_free(sigs[i]);
    if (shutdown_timer) event_free(shutdown_timer);
    if (status_timer) event_free(status_timer);
    if (s->reaper) event_free(s->reaper);
    if (s->base) event_base_free(s->base);
    auth_free_secret(s->auth_token);
    config_free(&s->cfg);
    return rc;
}
