/*
 * config.c - the ini loader. See config.h.
 *
 * One table (config_keys) describes every key: where it lives in struct
 * config, its type, bounds and default. Defaults, parsing, validation and
 * the documentation test all read that table.
 */
#include "config.h"

#include "proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <netdb.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

enum key_type {
    KEY_STRING,   /* char *, copied */
    KEY_U32,      /* uint32_t in [min, max] */
    KEY_MODE,     /* uint32_t, octal permission bits */
    KEY_DOUBLE,   /* double in [min, max] (scaled by 1e6 in the bounds) */
    KEY_LOGLEVEL, /* enum log_level */
    KEY_MASTERS,  /* the master list */
    KEY_BOOL,     /* bool: yes/no, true/false, on/off, 1/0 */
};

struct config_key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    uint64_t min, max; /* KEY_U32; KEY_DOUBLE in millionths; KEY_STRING: max length */
    const char *dflt;
    bool reloadable;
};

#define OFF(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
    {"server", "listen", KEY_STRING, OFF(listen), 0, 300, "127.0.0.1:7379", false},
    {"server", "unix_socket", KEY_STRING, OFF(unix_socket), 0, 107, "/run/redlockd/redlockd.sock", false},
    {"server", "unix_socket_mode", KEY_MODE, OFF(unix_socket_mode), 0, 0777, "0660", false},
    {"server", "max_line_bytes", KEY_U32, OFF(max_line_bytes), 64, 1048576, "65536", true},
    {"server", "max_resources_per_lock", KEY_U32, OFF(max_resources_per_lock), 1, PROTO_MAX_RESOURCES, "64",
     true},
    {"server", "max_clients", KEY_U32, OFF(max_clients), 1, 1000000, "10000", true},
    {"server", "max_locks_per_client", KEY_U32, OFF(max_locks_per_client), 1, 1000000, "1000", true},
    {"server", "max_waiters", KEY_U32, OFF(max_waiters), 0, 1000000, "10000", true},
    {"server", "max_waiters_per_client", KEY_U32, OFF(max_waiters_per_client), 0, 1000000, "1000", true},
    {"server", "max_output_bytes", KEY_U32, OFF(max_output_bytes), 4096, 1073741824, "1048576", true},
    {"server", "tcp_keepalive_s", KEY_U32, OFF(tcp_keepalive_s), 0, 7200, "15", true},
    {"server", "client_stall_ms", KEY_U32, OFF(client_stall_ms), 0, 3600000, "5000", true},
    {"server", "auth_token_file", KEY_STRING, OFF(auth_token_file), 0, 4096, "", true},
    {"server", "max_auth_failures_per_s", KEY_U32, OFF(max_auth_failures_per_s), 1, 1000000, "10", true},
    {"server", "auth_timeout_ms", KEY_U32, OFF(auth_timeout_ms), 0, 600000, "5000", true},
    {"redis", "masters", KEY_MASTERS, OFF(masters), 0, 0, "", true},
    {"redis", "master_timeout_ms", KEY_U32, OFF(master_timeout_ms), 1, 60000, "50", true},
    {"redis", "max_backlog", KEY_U32, OFF(max_backlog), 1, 100000000, "16384", true},
    {"redis", "password_file", KEY_STRING, OFF(password_file), 0, 4096, "", true},
    {"redis", "backend", KEY_STRING, OFF(backend), 0, 16, "redis", false},
    {"lock", "default_ttl_ms", KEY_U32, OFF(default_ttl_ms), 1, 2147483647, "30000", true},
    {"lock", "max_ttl_ms", KEY_U32, OFF(max_ttl_ms), 1, 2147483647, "600000", true},
    {"lock", "max_hold_ms", KEY_U32, OFF(max_hold_ms), 0, 2147483647, "0", true},
    {"lock", "max_priority", KEY_U32, OFF(max_priority), 0, 2147483647, "1000", true},
    {"lock", "retry_count", KEY_U32, OFF(retry_count), 0, 1000, "3", true},
    {"lock", "retry_delay_ms", KEY_U32, OFF(retry_delay_ms), 0, 600000, "200", true},
    {"lock", "retry_jitter_ms", KEY_U32, OFF(retry_jitter_ms), 0, 600000, "100", true},
    {"lock", "drift_factor", KEY_DOUBLE, OFF(drift_factor), 0, 500000, "0.01", true},
    {"lock", "key_prefix", KEY_STRING, OFF(key_prefix), 0, CONFIG_MAX_KEY_PREFIX, "", true},
    {"lock", "fencing", KEY_BOOL, OFF(fencing), 0, 0, "yes", true},
    {"lock", "lock_delay_ms", KEY_U32, OFF(lock_delay_ms), 0, 3600000, "0", true},
    {"lock", "fleet_waiting", KEY_BOOL, OFF(fleet_waiting), 0, 0, "yes", true},
    {"log", "level", KEY_LOGLEVEL, OFF(log_level), 0, 0, "info", true},
    {"log", "syslog", KEY_BOOL, OFF(log_syslog), 0, 0, "no", false},
    {"metrics", "listen", KEY_STRING, OFF(metrics_listen), 0, 300, "", false},
    {"metrics", "max_connections", KEY_U32, OFF(metrics_max_connections), 1, 1024, "16", true},
    {"metrics", "timeout_ms", KEY_U32, OFF(metrics_timeout_ms), 100, 600000, "5000", true},
};

#define NKEYS (sizeof config_keys / sizeof config_keys[0])

const char *config_key_name(size_t i)
{
    static char name[64];
    if (i >= NKEYS) return NULL;
    snprintf(name, sizeof name, "%s.%s", config_keys[i].section, config_keys[i].name);
    return name;
}

bool config_key_reloadable(size_t i)
{
    return i < NKEYS && config_keys[i].reloadable;
}

static bool str_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Whether key k holds the same value in *a and *b (masters are compared by
 * the caller: the list is reloadable). */
static bool key_value_same(const struct config_key *k, const struct config *a, const struct config *b)
{
    const void *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
    switch (k->type) {
    case KEY_STRING: return str_same(*(char *const *)x, *(char *const *)y);
    case KEY_U32:
    case KEY_MODE: return *(const uint32_t *)x == *(const uint32_t *)y;
    case KEY_DOUBLE: return *(const double *)x == *(const double *)y;
    case KEY_LOGLEVEL: return *(const enum log_level *)x == *(const enum log_level *)y;
    case KEY_BOOL: return *(const bool *)x == *(const bool *)y;
    case KEY_MASTERS: return true;
    }
    return true;
}

/* Give next key k's value from cur. Strings are swapped, not copied, so
 * nothing is allocated: cur then owns next's string and frees it with itself. */
static void key_value_take(const struct config_key *k, struct config *next, struct config *cur)
{
    void *x = (char *)next + k->offset, *y = (char *)cur + k->offset;
    switch (k->type) {
    case KEY_STRING: {
        char *tmp = *(char **)x;
        *(char **)x = *(char **)y;
        *(char **)y = tmp;
        return;
    }
    case KEY_U32:
    case KEY_MODE: *(uint32_t *)x = *(const uint32_t *)y; return;
    case KEY_DOUBLE: *(double *)x = *(const double *)y; return;
    case KEY_LOGLEVEL: *(enum log_level *)x = *(const enum log_level *)y; return;
    case KEY_BOOL: *(bool *)x = *(const bool *)y; return;
    case KEY_MASTERS: return;
    }
}

size_t config_keep_restart_only(struct config *next, struct config *cur, config_changed_fn *changed, void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->reloadable || k->type == KEY_MASTERS || key_value_same(k, next, cur)) continue;
        key_value_take(k, next, cur);
        n++;
        if (changed != NULL) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", k->section, k->name);
            changed(name, arg);
        }
    }
    return n;
}

/* ---- value parsers: 0 on success, else -1 with a reason ---- */

static int parse_u64(const char *v, uint64_t *out)
{
    if (*v < '0' || *v > '9') return -1; /* no sign, no space */
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
    *out = n;
    return 0;
}

int config_parse_hostport(const char *s, char **host, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') { /* [v6addr]:port */
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) return -1;
        hlen = (size_t)(colon - s);
    }
    uint64_t p;
    if (hlen == 0 || parse_u64(colon + 1, &p) != 0 || p < 1 || p > 65535) return -1;
    for (size_t i = 0; i < hlen; i++)
        if (h[i] <= ' ' || h[i] > '~' || h[i] == '/' || h[i] == '@') return -1;
    *host = strndup(h, hlen);
    if (*host == NULL) return -1;
    *port = (int)p;
    return 0;
}

static void master_free(struct master_addr *m)
{
    free(m->host);
    free(m->user);
    if (m->password != NULL) {
        memset(m->password, 0, strlen(m->password));
        free(m->password);
    }
    memset(m, 0, sizeof *m);
}

/* One entry: "host:port" or "redis://[user[:password]@]host:port". */
static int parse_master(const char *s, struct master_addr *m, const char **why)
{
    memset(m, 0, sizeof *m);
    if (strncmp(s, "redis://", 8) == 0) {
        s += 8;
        const char *at = strrchr(s, '@');
        if (at != NULL) {
            const char *colon = memchr(s, ':', (size_t)(at - s));
            size_t ulen = colon ? (size_t)(colon - s) : (size_t)(at - s);
            if (ulen > 0) m->user = strndup(s, ulen);
            if (colon != NULL) m->password = strndup(colon + 1, (size_t)(at - colon - 1));
            else if (ulen > 0) { /* "redis://pass@host" is the password alone, as redis-cli reads it */
                m->password = m->user;
                m->user = NULL;
            }
            s = at + 1;
        }
        const char *slash = strchr(s, '/');
        if (slash != NULL && slash[1] != '\0' && strcmp(slash, "/0") != 0) {
            *why = "a database number is not supported";
            master_free(m);
            return -1;
        }
        if (slash != NULL) {
            char hp[300];
            snprintf(hp, sizeof hp, "%.*s", (int)(slash - s), s);
            if (config_parse_hostport(hp, &m->host, &m->port) != 0) goto bad;
            return 0;
        }
    }
    if (config_parse_hostport(s, &m->host, &m->port) != 0) goto bad;
    return 0;
bad:
    *why = "want host:port or redis://[user[:password]@]host:port";
    master_free(m);
    return -1;
}

static int parse_masters(const char *v, struct config *cfg, const char **why)
{
    for (size_t i = 0; i < cfg->nmasters; i++) master_free(&cfg->masters[i]);
    cfg->nmasters = 0;
    if (v[strspn(v, " \t")] == '\0') return 0; /* blank: validate() says no masters */
    char *copy = strdup(v);
    if (copy == NULL) {
        *why = "out of memory";
        return -1;
    }
    int rc = 0;
    char *rest = copy;
    for (char *tok = strsep(&rest, ","); tok != NULL; tok = strsep(&rest, ",")) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t n = strlen(tok);
        while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) tok[--n] = '\0';
        if (n == 0) {
            *why = "empty entry in the master list";
            rc = -1;
            break;
        }
        if (cfg->nmasters == CONFIG_MAX_MASTERS) {
            *why = "too many masters (at most 64)";
            rc = -1;
            break;
        }
        struct master_addr *m = &cfg->masters[cfg->nmasters];
        if (parse_master(tok, m, why) != 0) {
            rc = -1;
            break;
        }
        cfg->nmasters++;
        for (size_t i = 0; i + 1 < cfg->nmasters; i++) {
            if (cfg->masters[i].port == m->port && strcmp(cfg->masters[i].host, m->host) == 0) {
                *why = "the same master is listed twice";
                rc = -1;
                break;
            }
        }
        if (rc != 0) break;
    }
    memset(copy, 0, strlen(v)); /* it may hold passwords */
    free(copy);
    return rc;
}

static int set_value(struct config *cfg, const struct config_key *k, const char *v, const char **why)
{
    void *field = (char *)cfg + k->offset;
    uint64_t n;
    switch (k->type) {
    case KEY_STRING: {
        if (strlen(v) > k->max) {
            *why = "value too long";
            return -1;
        }
        char *copy = strdup(v);
        if (copy == NULL) {
            *why = "out of memory";
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case KEY_U32:
        if (parse_u64(v, &n) != 0) {
            *why = "not a whole number";
            return -1;
        }
        if (n < k->min || n > k->max) {
            *why = "out of range";
            return -1;
        }
        *(uint32_t *)field = (uint32_t)n;
        return 0;
    case KEY_MODE: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(v, &end, 8);
        if (*v < '0' || *v > '7' || *end != '\0' || errno != 0 || m > k->max) {
            *why = "want octal permission bits such as 0660";
            return -1;
        }
        *(uint32_t *)field = (uint32_t)m;
        return 0;
    }
    case KEY_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno != 0 || !(d >= (double)k->min / 1e6) ||
            !(d <= (double)k->max / 1e6)) {
            *why = "want a number from 0 to 0.5";
            return -1;
        }
        *(double *)field = d;
        return 0;
    }
    case KEY_LOGLEVEL: {
        static const char *const levels[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(v, levels[i]) == 0) {
                *(enum log_level *)field = (enum log_level)i;
                return 0;
            }
        }
        *why = "want error, warn, info or debug";
        return -1;
    }
    case KEY_MASTERS: return parse_masters(v, cfg, why);
    case KEY_BOOL: {
        static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
                *(bool *)field = strcasecmp(v, yes[i]) == 0;
                return 0;
            }
        }
        *why = "want yes or no";
        return -1;
    }
    }
    *why = "unknown key type";
    return -1;
}

void config_init_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        const char *why;
        if (k->type == KEY_MASTERS) continue;
        if (set_value(cfg, k, k->dflt, &why) != 0) abort(); /* the table itself is wrong */
    }
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (config_keys[i].type == KEY_STRING) free(*(char **)((char *)cfg + config_keys[i].offset));
    for (size_t i = 0; i < cfg->nmasters; i++) master_free(&cfg->masters[i]);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- loading ---- */

struct load_ctx {
    struct config *cfg;
    char reason[CONFIG_ERR_MAX / 2]; /* the first error's "section.key: why" */
    bool seen[NKEYS];
};

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        if (strcasecmp(section, k->section) != 0 || strcasecmp(name, k->name) != 0) continue;
        if (ctx->seen[i]) {
            snprintf(ctx->reason, sizeof ctx->reason, "%s.%s: given twice", section, name);
            return 0;
        }
        ctx->seen[i] = true;
        const char *why = NULL;
        if (set_value(ctx->cfg, k, value ? value : "", &why) != 0) {
            snprintf(ctx->reason, sizeof ctx->reason, "%s.%s: %s", section, name, why);
            return 0;
        }
        return 1;
    }
    bool known_section = false;
    for (size_t i = 0; i < NKEYS; i++) known_section |= strcasecmp(section, config_keys[i].section) == 0;
    snprintf(ctx->reason, sizeof ctx->reason,
             known_section ? "%s.%s: unknown key" : "[%s]: unknown section (key %s)", section, name);
    return 0;
}

/* Checks that involve several keys. */
static int validate(struct config *cfg, char *reason, size_t len)
{
    if (strcmp(cfg->backend, "redis") != 0 && strcmp(cfg->backend, "memory") != 0) {
        snprintf(reason, len, "redis.backend: want redis or memory");
        return -1;
    }
    cfg->backend_memory = strcmp(cfg->backend, "memory") == 0;
    if (cfg->backend_memory) {
        if (cfg->nmasters != 0) {
            snprintf(reason, len, "redis.masters: must be empty with backend = memory");
            return -1;
        }
    } else if (cfg->nmasters == 0) {
        snprintf(reason, len, "redis.masters: no masters configured");
        return -1;
    }
    if (strchr(cfg->key_prefix, ',') != NULL) {
        /* ',' marks the daemon's own keys (",prio", the ",fence" counter). */
        snprintf(reason, len, "lock.key_prefix: must not contain ','");
        return -1;
    }
    if (cfg->default_ttl_ms > cfg->max_ttl_ms) {
        snprintf(reason, len, "lock.default_ttl_ms: above lock.max_ttl_ms (%u)", cfg->max_ttl_ms);
        return -1;
    }
    return 0;
}

typedef int ini_runner(const void *src, ini_handler handler, void *user);

static int run_file(const void *src, ini_handler h, void *user)
{
    return ini_parse(src, h, user);
}
static int run_string(const void *src, ini_handler h, void *user)
{
    return ini_parse_string(src, h, user);
}

static int load_with(ini_runner *run, const void *src, const char *name, struct config *cfg, char *err,
                     size_t errlen)
{
    /* Debian's inih reads these at run time: long master lists need long lines. */
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_max_line = CONFIG_MAX_LINE;
    ini_stop_on_first_error = true;

    struct load_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    config_init_defaults(cfg);
    ctx->cfg = cfg;
    int line = run(src, on_ini_entry, ctx);
    int rc = 0;
    if (line == -1) {
        snprintf(err, errlen, "%s: %s", name, strerror(errno ? errno : ENOENT));
        rc = -1;
    } else if (line == -2) {
        snprintf(err, errlen, "%s: out of memory", name);
        rc = -1;
    } else if (line > 0) {
        snprintf(err, errlen, "%s:%d: %s", name, line,
                 ctx->reason[0] ? ctx->reason : "syntax error (want key = value or [section])");
        rc = -1;
    } else if (validate(cfg, ctx->reason, sizeof ctx->reason) != 0) {
        snprintf(err, errlen, "%s: %s", name, ctx->reason);
        rc = -1;
    }
    free(ctx);
    if (rc != 0) config_free(cfg);
    return rc;
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
    return load_with(run_file, path, path, cfg, err, errlen);
}

int config_load_string(const char *text, const char *name, struct config *cfg, char *err, size_t errlen)
{
    return load_with(run_string, text, name, cfg, err, errlen);
}

/* ---- masters under two names ---- */

#define RESOLVED_MAX 16 /* addresses kept per master name */

/* One resolved address, IPv4 as v4-mapped IPv6 so both compare alike. */
struct resolved {
    unsigned char addr[16];
    uint32_t scope;
    int port;
};

struct resolved_set {
    size_t n;
    struct resolved a[RESOLVED_MAX];
};

static void resolve_master(const struct master_addr *m, struct resolved_set *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    out->n = 0;
    snprintf(port, sizeof port, "%d", m->port);
    if (getaddrinfo(m->host, port, &hints, &res) != 0) return; /* checked again at run time */
    for (struct addrinfo *ai = res; ai != NULL && out->n < RESOLVED_MAX; ai = ai->ai_next) {
        struct resolved r = {.port = m->port};
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
            r.addr[10] = r.addr[11] = 0xff;
            memcpy(r.addr + 12, &sin->sin_addr, 4);
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ai->ai_addr;
            memcpy(r.addr, &sin6->sin6_addr, 16);
            r.scope = sin6->sin6_scope_id;
        } else {
            continue;
        }
        out->a[out->n++] = r;
    }
    freeaddrinfo(res);
}

static void resolved_text(const struct resolved *r, char *out, size_t len)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char ip[INET6_ADDRSTRLEN] = "?";
    bool v4 = memcmp(r->addr, mapped, sizeof mapped) == 0;
    inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? (const void *)(r->addr + 12) : (const void *)r->addr, ip,
              sizeof ip);
    snprintf(out, len, v4 ? "%s:%d" : "[%s]:%d", ip, r->port);
}

int config_check_masters_distinct(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->nmasters < 2) return 0;
    struct resolved_set *sets = calloc(cfg->nmasters, sizeof *sets);
    if (sets == NULL) {
        snprintf(err, errlen, "redis.masters: out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->nmasters; i++) resolve_master(&cfg->masters[i], &sets[i]);
    int rc = 0;
    for (size_t i = 0; i < cfg->nmasters && rc == 0; i++) {
        for (size_t j = i + 1; j < cfg->nmasters && rc == 0; j++) {
            for (size_t x = 0; x < sets[i].n && rc == 0; x++) {
                for (size_t y = 0; y < sets[j].n && rc == 0; y++) {
                    const struct resolved *a = &sets[i].a[x], *b = &sets[j].a[y];
                    if (a->port != b->port || a->scope != b->scope || memcmp(a->addr, b->addr, 16) != 0)
                        continue;
                    char both[INET6_ADDRSTRLEN + 16];
                    resolved_text(a, both, sizeof both);
                    snprintf(err, errlen,
                             "redis.masters: entries %zu (%.100s:%d) and %zu (%.100s:%d) are the same "
                             "master (both reach %s): it would vote twice",
                             i + 1, cfg->masters[i].host, cfg->masters[i].port, j + 1, cfg->masters[j].host,
                             cfg->masters[j].port, both);
                    rc = -1;
                }
            }
        }
    }
    free(sets);
    return rc;
}
