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
#include "conn.h"
#include "lock.h"
#include "timer.h"

struct event_base;
struct event;
struct rl_engine;
struct listener;

/* Counters reported by INFO and /metrics. */
struct stats {
    uint64_t connections_total;
    uint64_t connections_rejected; /* over max_clients */
    uint64_t requests;
    uint64_t acquire_ok, acquire_busy, acquire_noquorum, acquire_error;
    uint64_t extend_ok, extend_fail;
    uint64_t release_ok, release_notheld;
    uint64_t lost;                 /* EVENT LOST pushed */
    uint64_t auto_released;        /* locks released because their connection closed */
    uint64_t overload_pauses;      /* clients not read for a moment: a majority of masters was behind */
    uint64_t expired;              /* locks whose validity ran out unreleased */
    uint64_t handoffs;             /* releases that woke a local waiter */
    uint64_t handoffs_cas;         /* ... of which the key went straight to it (one round trip) */
    uint64_t errors_badreq, errors_toolong, errors_limit;
    uint64_t auth_failures;
};

struct server {
    struct event_base *base;
    struct config cfg;                /* the config in force */
    const char *config_path;          /* where cfg came from, for reloads */
    char *auth_token;                 /* from auth_token_file; NULL = no client AUTH */
    struct auth_budget auth_budget;   /* failed AUTHs, daemon-wide */
    struct rl_engine *rl;             /* Redlock over the masters */
    struct lock_tables tables;        /* locks and resources */
    struct timers timers;             /* the locks' timers */
    TAILQ_HEAD(, conn) conns;         /* open connections */
    TAILQ_HEAD(, conn) closed;        /* closed, waiting to be freed */
    TAILQ_HEAD(, request) orphans;    /* requests whose connection closed while their op runs */
    struct event *reaper;             /* activated to free closed connections */
    unsigned nconns;
    unsigned nwaiters;                /* ACQUIRING locks queued behind others */
    unsigned nheld;                   /* HELD locks */
    uint64_t next_conn_id;
    uint64_t started_ms;
    bool shutting_down;
    struct stats stats;
};

#endif
