/* info.c - see info.h. */
#include "info.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_pool.h"
#include "redlock_engine.h"
#include "server.h"
#include "textbuf.h"
#include "util.h"

#define INFO_LINE_MAX 512

#define INFO_MAX_BYTES (1024 * 1024) /* far above 64 masters' lines; past it, ERR INTERNAL */

struct lines {
    struct textbuf text;
    unsigned n;
};

static void add(struct lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append one line, cut to INFO_LINE_MAX, with any CR or LF in it made a
 * space and CR LF after it. A line that does not fit is dropped and marks
 * l->text (info_render then fails). */
static void add(struct lines *l, const char *fmt, ...)
{
    char line[INFO_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof line - 2 ? (size_t)n : sizeof line - 3;
    /* Values (master errors) never carry line breaks into the reply. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\r' || line[i] == '\n') line[i] = ' ';
    line[len++] = '\r';
    line[len++] = '\n';
    if (tb_append(&l->text, line, len) == 0) l->n++;
}

static const char *state_word(enum master_state st)
{
    return st == MASTER_UP ? "up" : st == MASTER_CONNECTING ? "connecting" : "down";
}

int info_render(struct server *s, struct evbuffer *out)
{
    struct lines l = {.n = 0};
    tb_init(&l.text, INFO_MAX_BYTES);
    const struct stats *st = &s->stats;
    struct pool *p = rl_engine_pool(s->rl);
    add(&l, "version %s", REDLOCKD_VERSION);
    add(&l, "protocol %d", PROTO_VERSION);
    add(&l, "uptime_ms %llu", (unsigned long long)(now_ms() - s->started_ms));
    add(&l, "clients %u", s->nconns);
    add(&l, "locks_held %u", s->nheld);
    add(&l, "waiters %u", s->nwaiters);
    for (size_t i = 0; i < stats_ndescs; i++)
        add(&l, "%s %llu", stats_descs[i].key, (unsigned long long)stats_value(st, &stats_descs[i]));
    add(&l, "masters %zu", pool_size(p));
    add(&l, "quorum %zu", pool_quorum(p));
    add(&l, "masters_up %zu", pool_up_count(p));
    for (size_t i = 0; i < pool_size(p); i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        add(&l, "master.%zu.addr %s", i, ms.addr);
        add(&l, "master.%zu.state %s", i, state_word(ms.state));
        add(&l, "master.%zu.latency_us %llu", i, (unsigned long long)ms.latency_us);
        add(&l, "master.%zu.pending %llu", i, (unsigned long long)ms.pending);
        add(&l, "master.%zu.last_error %s", i, ms.last_error[0] ? ms.last_error : "-");
        add(&l, "master.%zu.restarts %llu", i, (unsigned long long)ms.restarts);
        add(&l, "master.%zu.quarantine_ms %llu", i, (unsigned long long)ms.quarantine_ms);
        if (ms.same_as != 0) add(&l, "master.%zu.same_as %u", i, (unsigned)(ms.same_as - 1));
        else add(&l, "master.%zu.same_as -", i);
    }
    int rc = -1;
    if (tb_ok(&l.text) && evbuffer_add_printf(out, "DATA %u\r\n", l.n) > 0 &&
        evbuffer_add(out, tb_text(&l.text), l.text.len) == 0)
        rc = 0;
    tb_free(&l.text);
    return rc;
}
