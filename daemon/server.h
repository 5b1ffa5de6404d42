/*
 * server.h - the daemon's state, one instance, owned by main.c.
 */
#ifndef REDLOCKD_SERVER_H
#define REDLOCKD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "auth.h"
#include "config.h"
#include "lock.h"
#include "stats.h"
#include "timer.h"

struct conn;
struct request;
struct mgr_engine;
struct event_base;
struct event;
struct rl_engine;
struct listener;

struct server {
    struct event_base *base;
    struct config cfg;               /* the config in force */
    const char *config_path;         /* where cfg came from, for reloads */
    char node_id[17];                /* fleet waiting: this run's id (POOL_NODE_ID_LEN hex); "" = none */
    char *auth_token;                /* from auth_token_file; NULL = no client AUTH */
    struct auth_budget auth_budget;  /* failed AUTHs, daemon-wide */
    struct rl_engine *rl;            /* Redlock over the masters */
    const struct mgr_engine *engine; /* the lock manager's masters and clock; NULL: the real ones */
    struct lock_tables tables;       /* locks and resources */
    struct timers timers;            /* the locks' timers */
    TAILQ_HEAD(, conn) conns;        /* open connections */
    TAILQ_HEAD(, conn) closed;       /* closed, waiting to be freed */
    TAILQ_HEAD(, request) orphans;   /* requests whose connection closed while their op runs */
    struct event *reaper;            /* activated to free closed connections */
    unsigned nconns;
    unsigned nwaiters; /* ACQUIRING locks queued behind others */
    unsigned nheld;    /* HELD locks */
    uint64_t next_conn_id;
    uint64_t started_ms;
    bool shutting_down;
    struct stats stats;   /* counters (stats.h) */
    int64_t started_unix; /* wall-clock start, for process_start_time_seconds */
};

#endif
