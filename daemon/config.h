/*
 * config.h - redlockd's configuration: one struct, loaded from an ini file
 * through a single table of keys (section, name, type, bounds, default,
 * reloadable). See conf/redlockd.ini for every key with its documentation.
 */
#ifndef REDLOCKD_CONFIG_H
#define REDLOCKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_ERR_MAX 512
#define CONFIG_MAX_MASTERS 64
#define CONFIG_MAX_LINE 65536 /* longest ini line (raised from inih's 200) */
#define CONFIG_MAX_KEY_PREFIX 256

/* One Redis master, parsed from "host:port" or "redis://[user[:pass]@]host:port". */
struct master_addr {
    char *host; /* owned */
    int port;
    char *user;     /* owned, NULL when none */
    char *password; /* owned, NULL when none */
};

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

struct config {
    /* [server] */
    char *listen;                     /* "host:port"; NULL or "" = no TCP listener */
    char *unix_socket;                /* path; NULL or "" = no Unix socket */
    uint32_t unix_socket_mode;        /* octal permission bits of the socket */
    uint32_t max_line_bytes;          /* longest request line */
    uint32_t max_resources_per_lock;  /* resources in one ACQUIRE */
    uint32_t max_clients;             /* concurrent client connections */
    uint32_t max_locks_per_client;    /* locks one connection may hold (DETACHed ones it took too) */
    uint32_t max_waiters;             /* ACQUIREs waiting at once, daemon-wide */
    uint32_t max_waiters_per_client;  /* ... and of them, from one connection */
    uint32_t max_output_bytes;        /* unread replies buffered before a client is closed */
    uint32_t tcp_keepalive_s;         /* TCP keepalive idle time of accepted sockets; 0 = off */
    uint32_t client_stall_ms;         /* output not drained at all this long closes; 0 = never */
    char *auth_token_file;            /* NULL or "": no client AUTH */
    uint32_t max_auth_failures_per_s; /* failed AUTHs a second, daemon-wide; beyond, AUTH is refused */
    uint32_t auth_timeout_ms;         /* a connection that has not authenticated is closed after; 0 = never */

    /* [redis] */
    struct master_addr masters[CONFIG_MAX_MASTERS];
    size_t nmasters;
    uint32_t master_timeout_ms; /* per-master reply deadline */
    uint32_t max_backlog;       /* commands a majority may owe before clients are paused */
    char *password_file;        /* password for masters without one in their URL */
    char *backend;              /* "redis" or "memory" */
    bool backend_memory;        /* backend = memory: no masters, locks in this process */

    /* [lock] */
    uint32_t default_ttl_ms;
    uint32_t max_ttl_ms;   /* cap on every TTL; also the restart-amnesia quarantine */
    uint32_t max_hold_ms;  /* AUTOEXTEND cap; 0 = unlimited */
    uint32_t max_priority; /* largest PRIORITY a client may ask for; 0 = no preemption */
    uint32_t retry_count;
    uint32_t retry_delay_ms;
    uint32_t retry_jitter_ms;
    double drift_factor;
    char *key_prefix;       /* never NULL after loading ("" = none) */
    bool fencing;           /* hand out fencing tokens with every ACQUIRE */
    uint32_t lock_delay_ms; /* a lock whose connection ended without RELEASE or QUIT
                                        keeps its keys this long (at most its validity); 0 = off */
    bool fleet_waiting;     /* fair waiting across daemons (PROTOCOL.md 8.7) */

    /* [log] */
    enum log_level log_level;
    bool log_syslog; /* log to syslog instead of stderr */

    /* [metrics] */
    char *metrics_listen;             /* "host:port" of /metrics and /healthz; "" = off */
    uint32_t metrics_max_connections; /* open HTTP connections at once; more get 503 */
    uint32_t metrics_timeout_ms;      /* an HTTP connection's whole life, request to reply */
};

/* Set every key to its default (no masters). Frees nothing. */
void config_init_defaults(struct config *cfg);

/*
 * Load path into *cfg (which is first set to defaults). Returns 0 on
 * success; on failure returns -1, writes "FILE:LINE: key: reason" to err
 * (CONFIG_ERR_MAX bytes) and leaves *cfg holding nothing that needs freeing.
 * Unknown sections or keys, malformed or out-of-range values, and an empty
 * master list are errors.
 */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen);

/* The same from a string (for tests and fuzzing); name is used in messages. */
int config_load_string(const char *text, const char *name, struct config *cfg, char *err, size_t errlen);

/*
 * Refuse a master list in which two entries reach the same server under
 * different names ("127.0.0.1:7301" and "127.1:7301", "localhost:7301"):
 * such a master would vote twice. Every host is resolved with getaddrinfo
 * (numeric addresses, /etc/hosts or DNS) and two entries that share any
 * resolved address with the same port are the same master. A name that does
 * not resolve now is skipped (it is retried when connecting; the run_id
 * check of redis_pool.c still catches it at run time). Returns 0, or -1
 * with "redis.masters: ..." naming both entries in err. Called for the
 * daemon's own file (start, -t, reload), not by config_load itself, so
 * that parsing never touches the network.
 */
int config_check_masters_distinct(const struct config *cfg, char *err, size_t errlen);

/* Free everything *cfg owns and reset it to defaults. */
void config_free(struct config *cfg);

/* Parse "host:port" (IPv6 as "[::1]:port") into a newly allocated host and
 * a port; returns 0 or -1. Used for listen addresses and masters. */
int config_parse_hostport(const char *s, char **host, int *port);

/* Iterate over the key table, for the test that every key is documented:
 * returns the i-th "section.name", or NULL past the end. */
const char *config_key_name(size_t i);

/* Whether the i-th key of the table takes effect on a reload (false past
 * the end). Keys that are not need a restart. */
bool config_key_reloadable(size_t i);

typedef void config_changed_fn(const char *key, void *arg);

/*
 * For a reload from *cur (running) to *next (just loaded): every key that is
 * not reloadable and whose value differs gets the running value back in
 * *next (owned strings are swapped between the two, nothing is allocated,
 * so it cannot fail), and changed("section.name", arg) is called for it
 * (changed may be NULL). The master list is reloadable and never touched.
 * Returns the number of keys kept.
 */
size_t config_keep_restart_only(struct config *next, struct config *cur, config_changed_fn *changed, void *arg);

#endif
