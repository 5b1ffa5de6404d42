/* inspect.c - see inspect.h. */
#include "inspect.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "redis_pool.h"
#include "redlock_engine.h"
#include "textbuf.h"

#define SHOWN_ID_CHARS 8
#define FOREIGN_WORD "foreign" /* shown for a value that is not a token's */
/* A master line without its address: "master.<i> " + " held <pttl> <id8>\r\n"
 * or " error <text>\r\n" (text under 64 bytes). */
#define MASTER_LINE_MAX 128
/* The four fixed lines without the resource name. */
#define FIXED_LINES_MAX 128

struct master_view {
    enum { VIEW_NOREPLY, VIEW_FREE, VIEW_HELD, VIEW_ERROR } kind;
    long long pttl_ms;
    char value[PROTO_LOCK_ID_LEN + 1]; /* a token, or "~<digest>" (cut to 32 bytes) of a
                                          value or type that is not a token's: never shown */
    char error[64];
};

struct inspect {
    struct server *server;
    struct lock_request *req;
    char resource[PROTO_MAX_RESOURCE_BYTES + 1];
    size_t nmasters;
    struct master_view view[];
};

/* What INSPECT shows of a value: the first 8 characters of a token, or
 * "foreign" for anything else (the script sent only its digest). */
static const char *shown(const char *value, char out[SHOWN_ID_CHARS + 1])
{
    if (value[0] == '~') return FOREIGN_WORD;
    snprintf(out, SHOWN_ID_CHARS + 1, "%s", value);
    return out;
}

static void on_each(void *ctx, size_t master, const struct pool_reply *r)
{
    struct inspect *in = ctx;
    if (master >= in->nmasters) return;
    struct master_view *v = &in->view[master];
    if (r->kind == POOL_REPLY_STRING && r->len == 0) {
        v->kind = VIEW_FREE;
    } else if (r->kind == POOL_REPLY_STRING) {
        const char *sp = memchr(r->str, ' ', r->len);
        if (sp == NULL) return;
        v->kind = VIEW_HELD;
        v->pttl_ms = strtoll(r->str, NULL, 10);
        size_t n = r->len - (size_t)(sp + 1 - r->str);
        if (n > PROTO_LOCK_ID_LEN) n = PROTO_LOCK_ID_LEN;
        memcpy(v->value, sp + 1, n);
        v->value[n] = '\0';
        for (size_t i = 0; i < n; i++) /* the script sends tokens or digests; keep it printable anyway */
            if (v->value[i] < 0x21 || v->value[i] > 0x7e) v->value[i] = '?';
    } else if (r->kind == POOL_REPLY_ERROR) {
        v->kind = VIEW_ERROR;
        snprintf(v->error, sizeof v->error, "%.*s", (int)(r->len < 60 ? r->len : 60), r->str);
    }
}

/* Answer the INSPECT with ERR INTERNAL and free it. */
static void reply_internal(struct inspect *in, const char *text)
{
    char line[96];
    in->req->ops->reply(in->req, line, proto_fmt_err(line, sizeof line, PROTO_ERR_INTERNAL, "%s", text));
    free(in);
}

static void on_done(void *ctx, const struct rl_outcome *out)
{
    struct inspect *in = ctx;
    struct server *s = in->server;
    struct pool *p = rl_engine_pool(s->rl);
    (void)out;
    if (pool_size(p) != in->nmasters) { /* a reload changed the master list meanwhile */
        reply_internal(in, "the master list was reloaded during INSPECT; try again");
        return;
    }
    /* The holder is the value a majority agrees on. */
    const char *holder = NULL;
    for (size_t i = 0; i < in->nmasters && holder == NULL; i++) {
        if (in->view[i].kind != VIEW_HELD) continue;
        size_t same = 0;
        for (size_t j = 0; j < in->nmasters; j++)
            same += in->view[j].kind == VIEW_HELD && strcmp(in->view[j].value, in->view[i].value) == 0;
        if (same >= pool_quorum(p)) holder = in->view[i].value;
    }
    size_t nfree = 0;
    for (size_t i = 0; i < in->nmasters; i++) nfree += in->view[i].kind == VIEW_FREE;
    const char *state = holder ? "held" : nfree >= pool_quorum(p) ? "free" : "unknown";
    bool local = holder && holder[0] != '~' && lock_find(&s->tables, holder, strlen(holder)) != NULL;
    char id8[SHOWN_ID_CHARS + 1];

    /* Sized from what goes in (the resource is up to 512 bytes, a master's
     * address up to its 300), and every append is bounded by what is left:
     * a block that would not fit is answered ERR INTERNAL, never cut short
     * under a DATA header that announces more lines. */
    size_t cap = 32 + FIXED_LINES_MAX + strlen(in->resource);
    for (size_t i = 0; i < in->nmasters; i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        cap += strlen(ms.addr) + MASTER_LINE_MAX;
    }
    struct textbuf b;
    tb_init(&b, cap);
    tb_printf(&b, "DATA %zu\r\n", 4 + in->nmasters);
    tb_printf(&b, "resource %s\r\n", in->resource);
    tb_printf(&b, "state %s\r\n", state);
    tb_printf(&b, "holder %s\r\n", holder ? shown(holder, id8) : "-");
    tb_printf(&b, "local %s\r\n", local ? "yes" : "no");
    for (size_t i = 0; i < in->nmasters; i++) {
        struct master_status ms;
        const struct master_view *v = &in->view[i];
        pool_master_status(p, i, &ms);
        if (v->kind == VIEW_HELD)
            tb_printf(&b, "master.%zu %s held %lld %s\r\n", i, ms.addr, v->pttl_ms, shown(v->value, id8));
        else if (v->kind == VIEW_FREE)
            tb_printf(&b, "master.%zu %s free\r\n", i, ms.addr);
        else if (v->kind == VIEW_ERROR)
            tb_printf(&b, "master.%zu %s error %s\r\n", i, ms.addr, v->error);
        else
            tb_printf(&b, "master.%zu %s noreply\r\n", i, ms.addr);
    }
    if (!tb_ok(&b)) { /* out of memory, or a bug in the sizing above: never send a short block */
        const char *why = b.failed ? "out of memory" : "INSPECT reply too long";
        tb_free(&b);
        reply_internal(in, why);
        return;
    }
    in->req->ops->reply(in->req, tb_text(&b), b.len);
    tb_free(&b);
    free(in);
}

void inspect_start(struct server *s, struct lock_request *req, const struct proto_request *pr)
{
    size_t n = pool_size(rl_engine_pool(s->rl));
    struct inspect *in = calloc(1, sizeof *in + n * sizeof in->view[0]);
    size_t plen = strlen(s->cfg.key_prefix);
    char *key = in ? malloc(plen + pr->resources[0].len) : NULL;
    if (key == NULL) {
        char line[64];
        free(in);
        req->ops->reply(req, line, proto_fmt_err(line, sizeof line, PROTO_ERR_INTERNAL, "out of memory"));
        return;
    }
    in->server = s;
    in->req = req;
    in->nmasters = n;
    memcpy(in->resource, pr->resources[0].ptr, pr->resources[0].len);
    memcpy(key, s->cfg.key_prefix, plen);
    memcpy(key + plen, pr->resources[0].ptr, pr->resources[0].len);
    const char *keys[1] = {key};
    size_t keylens[1] = {plen + pr->resources[0].len};
    struct rl_target t = {.keys = keys, .keylens = keylens, .nkeys = 1, .token = "", .ttl_ms = 0};
    int rc = rl_inspect(s->rl, &t, on_each, on_done, in);
    free(key);
    if (rc != 0) {
        char line[64];
        free(in);
        req->ops->reply(req, line, proto_fmt_err(line, sizeof line, PROTO_ERR_INTERNAL, "out of memory"));
    }
}
