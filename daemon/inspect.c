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

#define SHARED_SHOWN_MAX 64 /* holders of a SHARED / PERMITS key listed per master and in all */

struct master_view {
    enum { VIEW_NOREPLY, VIEW_FREE, VIEW_HELD, VIEW_ERROR, VIEW_SHARED } kind;
    long long pttl_ms;
    char value[PROTO_LOCK_ID_LEN + 1]; /* a token, or "~<digest>" (cut to 32 bytes) of a
                                          value or type that is not a token's: never shown */
    char error[64];
    /* VIEW_SHARED: the mode ("shared", "permits <n>") and the live holders'
     * tokens (the first SHARED_SHOWN_MAX), nholders counting them all. */
    char mode[24];
    unsigned nholders, nshown;
    char (*holders)[PROTO_LOCK_ID_LEN + 1];
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

/* "<pttl> =<mode with ':'> <token>:<ms> ..." of a SHARED / PERMITS key. */
static void parse_shared(struct master_view *v, const char *p, const char *end)
{
    v->kind = VIEW_SHARED;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    const char *mend = sp != NULL ? sp : end;
    size_t n = (size_t)(mend - (p + 1));
    if (n >= sizeof v->mode) n = sizeof v->mode - 1;
    for (size_t i = 0; i < n; i++) {
        char c = p[1 + i];
        v->mode[i] = c == ':' ? ' ' : (c < 0x21 || c > 0x7e) ? '?' : c;
    }
    v->mode[n] = '\0';
    free(v->holders);
    v->holders = calloc(SHARED_SHOWN_MAX, sizeof *v->holders);
    v->nholders = v->nshown = 0;
    for (p = mend; p < end;) {
        while (p < end && *p == ' ') p++;
        const char *tend = memchr(p, ' ', (size_t)(end - p));
        if (tend == NULL) tend = end;
        if (tend - p > PROTO_LOCK_ID_LEN && p[PROTO_LOCK_ID_LEN] == ':' &&
            proto_valid_lock_id(p, PROTO_LOCK_ID_LEN)) {
            if (v->holders != NULL && v->nshown < SHARED_SHOWN_MAX) {
                memcpy(v->holders[v->nshown], p, PROTO_LOCK_ID_LEN);
                v->holders[v->nshown++][PROTO_LOCK_ID_LEN] = '\0';
            }
            v->nholders++;
        }
        p = tend;
    }
}

static void on_each(void *ctx, size_t master, const struct pool_reply *r)
{
    struct inspect *in = ctx;
    if (master >= in->nmasters) return;
    struct master_view *v = &in->view[master];
    const char *sp0 = r->kind == POOL_REPLY_STRING ? memchr(r->str, ' ', r->len) : NULL;
    if (sp0 != NULL && sp0 + 1 < r->str + r->len && sp0[1] == '=') {
        v->pttl_ms = strtoll(r->str, NULL, 10);
        parse_shared(v, sp0 + 1, r->str + r->len);
    } else if (r->kind == POOL_REPLY_STRING && r->len == 0) {
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

static void inspect_free(struct inspect *in)
{
    for (size_t i = 0; i < in->nmasters; i++) free(in->view[i].holders);
    free(in);
}

/* Answer the INSPECT with ERR INTERNAL and free it. */
static void reply_internal(struct inspect *in, const char *text)
{
    char line[96];
    in->req->ops->reply(in->req, line, proto_fmt_err(line, sizeof line, PROTO_ERR_INTERNAL, "%s", text));
    inspect_free(in);
}

/* The holders of a SHARED / PERMITS key over every master (the first
 * SHARED_SHOWN_MAX distinct ones), each with how many masters list it. */
struct shared_summary {
    const char *mode;  /* the mode most masters report */
    unsigned nmasters; /* masters reporting a shared key */
    unsigned n;
    const char *token[SHARED_SHOWN_MAX];
    unsigned on[SHARED_SHOWN_MAX];
};

static void summarise_shared(const struct inspect *in, struct shared_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    unsigned best = 0;
    for (size_t i = 0; i < in->nmasters; i++) {
        const struct master_view *v = &in->view[i];
        if (v->kind != VIEW_SHARED) continue;
        sum->nmasters++;
        unsigned same = 0;
        for (size_t j = 0; j < in->nmasters; j++)
            same += in->view[j].kind == VIEW_SHARED && strcmp(in->view[j].mode, v->mode) == 0;
        if (same > best) {
            best = same;
            sum->mode = v->mode;
        }
        for (unsigned h = 0; h < v->nshown && v->holders != NULL; h++) {
            unsigned k = 0;
            while (k < sum->n && strcmp(sum->token[k], v->holders[h]) != 0) k++;
            if (k == sum->n) {
                if (sum->n == SHARED_SHOWN_MAX) continue;
                sum->token[sum->n++] = v->holders[h];
            }
            sum->on[k]++;
        }
    }
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
    struct shared_summary sum;
    summarise_shared(in, &sum);
    const char *state = holder ? "held" : nfree >= pool_quorum(p) ? "free" : "unknown";
    bool local = holder && holder[0] != '~' && lock_find(&s->tables, holder, strlen(holder)) != NULL;
    if (sum.nmasters >= pool_quorum(p)) state = "held";
    for (unsigned k = 0; k < sum.n; k++)
        local = local || lock_find(&s->tables, sum.token[k], PROTO_LOCK_ID_LEN) != NULL;
    char id8[SHOWN_ID_CHARS + 1];

    /* Sized from what goes in (the resource is up to 512 bytes, a master's
     * address up to its 300), and every append is bounded by what is left:
     * a block that would not fit is answered ERR INTERNAL, never cut short
     * under a DATA header that announces more lines. */
    size_t cap = 32 + FIXED_LINES_MAX + strlen(in->resource) + (sum.nmasters > 0 ? 96 + 64 * (size_t)sum.n : 0);
    for (size_t i = 0; i < in->nmasters; i++) {
        struct master_status ms;
        pool_master_status(p, i, &ms);
        cap += strlen(ms.addr) + MASTER_LINE_MAX;
    }
    struct textbuf b;
    tb_init(&b, cap);
    tb_printf(&b, "DATA %zu\r\n", 4 + in->nmasters + (sum.nmasters > 0 ? 2 + (size_t)sum.n : 0));
    tb_printf(&b, "resource %s\r\n", in->resource);
    tb_printf(&b, "state %s\r\n", state);
    tb_printf(&b, "holder %s\r\n", holder ? shown(holder, id8) : "-");
    tb_printf(&b, "local %s\r\n", local ? "yes" : "no");
    if (sum.nmasters > 0) { /* SHARED / PERMITS: the mode and every holder (PROTOCOL.md 8.8) */
        tb_printf(&b, "mode %s\r\n", sum.mode);
        tb_printf(&b, "holders %u\r\n", sum.n);
        for (unsigned k = 0; k < sum.n; k++)
            tb_printf(&b, "holder.%u %s %u/%zu%s\r\n", k, shown(sum.token[k], id8), sum.on[k], in->nmasters,
                      lock_find(&s->tables, sum.token[k], PROTO_LOCK_ID_LEN) != NULL ? " local" : "");
    }
    for (size_t i = 0; i < in->nmasters; i++) {
        struct master_status ms;
        const struct master_view *v = &in->view[i];
        pool_master_status(p, i, &ms);
        if (v->kind == VIEW_HELD)
            tb_printf(&b, "master.%zu %s held %lld %s\r\n", i, ms.addr, v->pttl_ms, shown(v->value, id8));
        else if (v->kind == VIEW_SHARED)
            tb_printf(&b, "master.%zu %s held %lld %s:%u\r\n", i, ms.addr, v->pttl_ms,
                      strncmp(v->mode, "permits", 7) == 0 ? "permits" : "shared", v->nholders);
        else if (v->kind == VIEW_FREE) tb_printf(&b, "master.%zu %s free\r\n", i, ms.addr);
        else if (v->kind == VIEW_ERROR) tb_printf(&b, "master.%zu %s error %s\r\n", i, ms.addr, v->error);
        else tb_printf(&b, "master.%zu %s noreply\r\n", i, ms.addr);
    }
    if (!tb_ok(&b)) { /* out of memory, or a bug in the sizing above: never send a short block */
        const char *why = b.failed ? "out of memory" : "INSPECT reply too long";
        tb_free(&b);
        reply_internal(in, why);
        return;
    }
    in->req->ops->reply(in->req, tb_text(&b), b.len);
    tb_free(&b);
    inspect_free(in);
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
