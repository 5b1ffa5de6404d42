/*
 * proto.c - the redlockd line protocol: framing, request parsing, reply
 * formatting and reply parsing. See proto.h for the contracts and
 * protocol/PROTOCOL.md for the protocol itself.
 *
 * Pure libc. Request parsing treats the line as untrusted bytes: it never
 * modifies it, never reads past len, and every token is a slice into it.
 * Reply parsing (client side) works in place on a NUL-terminated line.
 */
#include "proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERR_QUOTE_MAX 32 /* bytes of an offending token quoted in an error text */

/* ---- Small helpers ------------------------------------------------------ */

static bool is_sep(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Printable ASCII without space: 0x21..0x7e. */
static bool is_graph(char c)
{
    return c >= 0x21 && c <= 0x7e;
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* True when s equals word (an upper-case keyword), ignoring ASCII case. */
static bool slice_is_word(struct proto_slice s, const char *word)
{
    size_t n = strlen(word);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ascii_upper(s.ptr[i]) != word[i])
            return false;
    }
    return true;
}

static bool slice_all_graph(struct proto_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (!is_graph(s.ptr[i]))
            return false;
    }
    return true;
}

/* ---- Framing ------------------------------------------------------------ */

/*
 * A terminator can only end an acceptable line if it sits within the first
 * max_line + 2 bytes ("<max_line bytes>\r\n"), so the search stops there: a
 * flood of bytes without a newline costs O(max_line), not O(len). Without a
 * terminator the line is too long as soon as more than max_line content
 * bytes are certain; a single '\r' just past the limit may still be the
 * first half of "\r\n", so it waits for one more byte.
 */
enum proto_frame_status proto_frame(const char *buf, size_t len, size_t max_line, size_t *line_len,
                                    size_t *consumed)
{
    if (len == 0)
        return PROTO_FRAME_NEED_MORE;

    size_t scan = len;
    if (max_line <= SIZE_MAX - 2 && scan > max_line + 2)
        scan = max_line + 2;

    const char *nl = memchr(buf, '\n', scan);
    if (nl != NULL) {
        size_t n = (size_t)(nl - buf);
        size_t content = (n > 0 && buf[n - 1] == '\r') ? n - 1 : n;
        if (content > max_line)
            return PROTO_FRAME_TOOLONG;
        *line_len = content;
        *consumed = n + 1;
        return PROTO_FRAME_LINE;
    }

    if (len > max_line) {
        size_t excess = len - max_line;
        if (excess > 1 || buf[max_line] != '\r')
            return PROTO_FRAME_TOOLONG;
    }
    return PROTO_FRAME_NEED_MORE;
}

/* ---- Errors ------------------------------------------------------------- */

static const char *const err_names[PROTO_ERR__COUNT] = {
    [PROTO_OK] = NULL,
    [PROTO_ERR_BUSY] = "BUSY",
    [PROTO_ERR_NOQUORUM] = "NOQUORUM",
    [PROTO_ERR_NOTHELD] = "NOTHELD",
    [PROTO_ERR_BADREQ] = "BADREQ",
    [PROTO_ERR_TOOLONG] = "TOOLONG",
    [PROTO_ERR_LIMIT] = "LIMIT",
    [PROTO_ERR_AUTH] = "AUTH",
    [PROTO_ERR_SHUTDOWN] = "SHUTDOWN",
    [PROTO_ERR_INTERNAL] = "INTERNAL",
};

const char *proto_err_name(enum proto_err err)
{
    if ((unsigned)err >= PROTO_ERR__COUNT)
        return NULL;
    return err_names[err];
}

/* Exact (case-sensitive) match, as the daemon sends codes in upper case. */
enum proto_err proto_err_from_name(const char *name, size_t len)
{
    for (int i = PROTO_ERR_BUSY; i < PROTO_ERR__COUNT; i++) {
        if (strlen(err_names[i]) == len && memcmp(err_names[i], name, len) == 0)
            return (enum proto_err)i;
    }
    return PROTO_ERR__COUNT;
}

/* ---- Numbers and lock ids ----------------------------------------------- */

/* Digits only (no sign, no spaces, at least one digit); overflow-safe. */
bool proto_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > max / 10 || (v == max / 10 && d > max % 10))
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool proto_valid_lock_id(const char *s, size_t len)
{
    if (len != PROTO_LOCK_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    }
    return true;
}

/* ---- Request parsing: context, tokens, error texts ----------------------- */

struct parse_ctx {
    const char *line; /* the request line (not modified) */
    size_t len;
    size_t pos; /* tokenizer position in line */
    struct proto_request *req;
    size_t res_cap; /* capacity of req->resources */
    char *errbuf;
    size_t errlen;
};

/* The next token (a run of bytes other than space and tab), or false. */
static bool next_token(struct parse_ctx *c, struct proto_slice *tok)
{
    while (c->pos < c->len && is_sep(c->line[c->pos]))
        c->pos++;
    if (c->pos == c->len)
        return false;
    size_t start = c->pos;
    while (c->pos < c->len && !is_sep(c->line[c->pos]))
        c->pos++;
    tok->ptr = c->line + start;
    tok->len = c->pos - start;
    return true;
}

/* Record a printf-style reason in the caller's errbuf and return err. */
__attribute__((format(printf, 3, 4))) static enum proto_err
fail(struct parse_ctx *c, enum proto_err err, const char *fmt, ...)
{
    if (c->errbuf != NULL && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errbuf, c->errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}

/*
 * Copy an untrusted token into out (size ERR_QUOTE_MAX + 4) for quoting in
 * an error text: at most ERR_QUOTE_MAX bytes, bytes outside 0x21..0x7e
 * shown as '?', "..." appended when cut.
 */
static const char *quote(struct proto_slice tok, char *out)
{
    size_t n = tok.len < ERR_QUOTE_MAX ? tok.len : ERR_QUOTE_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = is_graph(tok.ptr[i]) ? tok.ptr[i] : '?';
    if (tok.len > n) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* BADREQ "<what> '<token>'". */
static enum proto_err fail_tok(struct parse_ctx *c, const char *what, struct proto_slice tok)
{
    char q[ERR_QUOTE_MAX + 4];
    return fail(c, PROTO_ERR_BADREQ, "%s '%s'", what, quote(tok, q));
}

/* BADREQ unless the line has no more tokens. */
static enum proto_err expect_end(struct parse_ctx *c)
{
    struct proto_slice tok;
    if (next_token(c, &tok))
        return fail_tok(c, "unexpected argument", tok);
    return PROTO_OK;
}

/* Parse tok as a number of milliseconds in [min, PROTO_MAX_MS]. */
static enum proto_err parse_ms(struct parse_ctx *c, struct proto_slice tok, uint32_t min,
                               const char *what, uint32_t *out)
{
    uint64_t v;
    if (!proto_parse_u64(tok.ptr, tok.len, PROTO_MAX_MS, &v) || v < min) {
        char q[ERR_QUOTE_MAX + 4];
        return fail(c, PROTO_ERR_BADREQ, "bad %s '%s' (%u..%u)", what, quote(tok, q), (unsigned)min,
                    (unsigned)PROTO_MAX_MS);
    }
    *out = (uint32_t)v;
    return PROTO_OK;
}

/* ---- Request parsing: resources ------------------------------------------ */

/* Check one resource name: 1..PROTO_MAX_RESOURCE_BYTES bytes of 0x21..0x7e but ','. */
static enum proto_err check_resource(struct parse_ctx *c, struct proto_slice name)
{
    if (name.len == 0)
        return fail(c, PROTO_ERR_BADREQ, "empty resource name");
    if (name.len > PROTO_MAX_RESOURCE_BYTES)
        return fail(c, PROTO_ERR_BADREQ, "resource name longer than %d bytes",
                    PROTO_MAX_RESOURCE_BYTES);
    for (size_t i = 0; i < name.len; i++) {
        if (!is_graph(name.ptr[i]) || name.ptr[i] == ',')
            return fail_tok(c, "bad byte in resource name", name);
    }
    return PROTO_OK;
}

/*
 * Validate name and append it to req->resources: BADREQ for a bad or
 * duplicate name, LIMIT when res_cap names are already stored. The
 * duplicate check compares with every earlier name, so its cost is bounded
 * by res_cap squared (the configured max_resources_per_lock).
 */
static enum proto_err add_resource(struct parse_ctx *c, struct proto_slice name)
{
    struct proto_request *req = c->req;
    enum proto_err err = check_resource(c, name);
    if (err != PROTO_OK)
        return err;
    for (size_t i = 0; i < req->nresources; i++) {
        const struct proto_slice *r = &req->resources[i];
        if (r->len == name.len && memcmp(r->ptr, name.ptr, name.len) == 0)
            return fail_tok(c, "duplicate resource", name);
    }
    if (req->nresources >= c->res_cap)
        return fail(c, PROTO_ERR_LIMIT, "more than %zu resources in one lock", c->res_cap);
    req->resources[req->nresources++] = name;
    return PROTO_OK;
}

/* Split a comma-separated resource list into req->resources. */
static enum proto_err parse_resource_list(struct parse_ctx *c, struct proto_slice list)
{
    size_t start = 0;
    for (;;) {
        const char *comma = memchr(list.ptr + start, ',', list.len - start);
        size_t end = comma != NULL ? (size_t)(comma - list.ptr) : list.len;
        struct proto_slice name = {list.ptr + start, end - start};
        enum proto_err err = add_resource(c, name);
        if (err != PROTO_OK || comma == NULL)
            return err;
        start = end + 1;
    }
}

/* ---- Request parsing: ACQUIRE options ------------------------------------ */

enum opt_arg {
    OPT_ARG_NONE,  /* a flag */
    OPT_ARG_MS,    /* a number 0..PROTO_MAX_MS */
    OPT_ARG_OWNER, /* an owner id */
};

struct opt_def {
    const char *name; /* upper case */
    unsigned flag;    /* PROTO_OPT_* */
    enum opt_arg arg;
};

static const struct opt_def acquire_opts[] = {
    {"WAIT", PROTO_OPT_WAIT, OPT_ARG_MS},
    {"AUTOEXTEND", PROTO_OPT_AUTOEXTEND, OPT_ARG_NONE},
    {"DETACH", PROTO_OPT_DETACH, OPT_ARG_NONE},
    {"MAXHOLD", PROTO_OPT_MAXHOLD, OPT_ARG_MS},
    {"PRIORITY", PROTO_OPT_PRIORITY, OPT_ARG_MS},
    {"OWNER", PROTO_OPT_OWNER, OPT_ARG_OWNER},
    {"SHARED", PROTO_OPT_SHARED, OPT_ARG_NONE},
    {"PERMITS", PROTO_OPT_PERMITS, OPT_ARG_MS},
};

/* Where the number of a numeric option goes. */
static uint32_t *opt_number_field(struct proto_request *req, unsigned flag)
{
    switch (flag) {
    case PROTO_OPT_WAIT:
        return &req->wait_ms;
    case PROTO_OPT_MAXHOLD:
        return &req->maxhold_ms;
    case PROTO_OPT_PERMITS:
        return &req->permits;
    default:
        return &req->priority;
    }
}

static const struct opt_def *find_opt(struct proto_slice tok)
{
    for (size_t i = 0; i < sizeof acquire_opts / sizeof acquire_opts[0]; i++) {
        if (slice_is_word(tok, acquire_opts[i].name))
            return &acquire_opts[i];
    }
    return NULL;
}

/* Parse the argument of option def, which must follow it on the line. */
static enum proto_err parse_opt_arg(struct parse_ctx *c, const struct opt_def *def)
{
    struct proto_slice arg;
    if (def->arg == OPT_ARG_NONE)
        return PROTO_OK;
    if (!next_token(c, &arg))
        return fail(c, PROTO_ERR_BADREQ, "%s needs a value", def->name);
    if (def->flag == PROTO_OPT_PERMITS) {
        enum proto_err err = parse_ms(c, arg, 1, def->name, &c->req->permits);
        if (err == PROTO_OK && c->req->permits > PROTO_MAX_PERMITS)
            return fail(c, PROTO_ERR_BADREQ, "PERMITS %u is above %u", c->req->permits,
                        PROTO_MAX_PERMITS);
        return err;
    }
    if (def->arg == OPT_ARG_MS)
        return parse_ms(c, arg, 0, def->name, opt_number_field(c->req, def->flag));
    if (arg.len > PROTO_MAX_OWNER_BYTES || !slice_all_graph(arg))
        return fail(c, PROTO_ERR_BADREQ, "OWNER must be 1..%d printable bytes",
                    PROTO_MAX_OWNER_BYTES);
    c->req->owner = arg;
    return PROTO_OK;
}

/* One option token (and its argument): unknown or repeated is BADREQ. */
static enum proto_err parse_option(struct parse_ctx *c, struct proto_slice tok)
{
    const struct opt_def *def = find_opt(tok);
    if (def == NULL) {
        if (is_digit(tok.ptr[0]))
            return fail_tok(c, "ttl must come right after the resources:", tok);
        return fail_tok(c, "unknown option", tok);
    }
    if (c->req->opts & def->flag)
        return fail(c, PROTO_ERR_BADREQ, "repeated option %s", def->name);
    c->req->opts |= def->flag;
    return parse_opt_arg(c, def);
}

/* A token that looks like an attempt at a number is taken as the ttl. */
static bool looks_numeric(struct proto_slice tok)
{
    return is_digit(tok.ptr[0]) || tok.ptr[0] == '-' || tok.ptr[0] == '+';
}

/*
 * ACQUIRE <res>[,<res>...] [<ttl_ms>] [options...]: the ttl, if any, is
 * the token right after the resource list; options follow in any order.
 */
static enum proto_err parse_acquire(struct parse_ctx *c)
{
    struct proto_slice tok;
    if (!next_token(c, &tok))
        return fail(c, PROTO_ERR_BADREQ, "ACQUIRE needs a resource");
    enum proto_err err = parse_resource_list(c, tok);
    if (err != PROTO_OK || !next_token(c, &tok))
        return err;
    if (looks_numeric(tok)) {
        err = parse_ms(c, tok, 1, "ttl", &c->req->ttl_ms);
        if (err != PROTO_OK)
            return err;
        c->req->opts |= PROTO_OPT_TTL;
        if (!next_token(c, &tok))
            return PROTO_OK;
    }
    do {
        err = parse_option(c, tok);
    } while (err == PROTO_OK && next_token(c, &tok));
    return err;
}

/* ---- Request parsing: the other verbs ------------------------------------ */

static enum proto_err parse_no_args(struct parse_ctx *c)
{
    return expect_end(c);
}

/* The lock id argument of EXTEND and RELEASE. */
static enum proto_err parse_lock_id_arg(struct parse_ctx *c)
{
    struct proto_slice tok;
    if (!next_token(c, &tok))
        return fail(c, PROTO_ERR_BADREQ, "missing lock id");
    if (!proto_valid_lock_id(tok.ptr, tok.len))
        return fail(c, PROTO_ERR_BADREQ, "malformed lock id (want %d lowercase hex digits)",
                    PROTO_LOCK_ID_LEN);
    c->req->lock_id = tok;
    return PROTO_OK;
}

/* EXTEND <lock_id> [<ttl_ms>] */
static enum proto_err parse_extend(struct parse_ctx *c)
{
    struct proto_slice tok;
    enum proto_err err = parse_lock_id_arg(c);
    if (err != PROTO_OK || !next_token(c, &tok))
        return err;
    err = parse_ms(c, tok, 1, "ttl", &c->req->ttl_ms);
    if (err != PROTO_OK)
        return err;
    c->req->opts |= PROTO_OPT_TTL;
    return expect_end(c);
}

/* RELEASE <lock_id> */
static enum proto_err parse_release(struct parse_ctx *c)
{
    enum proto_err err = parse_lock_id_arg(c);
    return err != PROTO_OK ? err : expect_end(c);
}

/* AUTH <token>: any run of printable bytes. */
static enum proto_err parse_auth(struct parse_ctx *c)
{
    struct proto_slice tok;
    if (!next_token(c, &tok))
        return fail(c, PROTO_ERR_BADREQ, "missing token");
    if (!slice_all_graph(tok))
        return fail(c, PROTO_ERR_BADREQ, "bad byte in token");
    c->req->token = tok;
    return expect_end(c);
}

/* INSPECT <resource>: exactly one name, stored as resources[0]. */
static enum proto_err parse_inspect(struct parse_ctx *c)
{
    struct proto_slice tok;
    if (!next_token(c, &tok))
        return fail(c, PROTO_ERR_BADREQ, "INSPECT needs a resource");
    if (memchr(tok.ptr, ',', tok.len) != NULL)
        return fail(c, PROTO_ERR_BADREQ, "INSPECT takes one resource");
    enum proto_err err = add_resource(c, tok);
    return err != PROTO_OK ? err : expect_end(c);
}

struct verb_def {
    const char *name; /* upper case */
    enum proto_verb verb;
    enum proto_err (*parse)(struct parse_ctx *c); /* the arguments after the verb */
};

static const struct verb_def verbs[] = {
    {"PING", PROTO_VERB_PING, parse_no_args},       {"ACQUIRE", PROTO_VERB_ACQUIRE, parse_acquire},
    {"EXTEND", PROTO_VERB_EXTEND, parse_extend},    {"RELEASE", PROTO_VERB_RELEASE, parse_release},
    {"QUIT", PROTO_VERB_QUIT, parse_no_args},       {"INFO", PROTO_VERB_INFO, parse_no_args},
    {"INSPECT", PROTO_VERB_INSPECT, parse_inspect}, {"AUTH", PROTO_VERB_AUTH, parse_auth},
    {"LOCKS", PROTO_VERB_LOCKS, parse_no_args},
};

/*
 * Tokenise line (slices, nothing copied or modified), look the verb up and
 * let its parser take the arguments. *req is zeroed first; on failure its
 * contents are unspecified. Problems are reported left to right: the first
 * one found decides the error code and errbuf's text.
 */
enum proto_err proto_parse_request(const char *line, size_t len, struct proto_request *req,
                                   struct proto_slice *resources, size_t res_cap, char *errbuf,
                                   size_t errlen)
{
    struct parse_ctx c = {line, len, 0, req, res_cap, errbuf, errlen};
    struct proto_slice tok;

    memset(req, 0, sizeof *req);
    req->resources = resources;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (!next_token(&c, &tok))
        return fail(&c, PROTO_ERR_BADREQ, "empty request");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (slice_is_word(tok, verbs[i].name)) {
            req->verb = verbs[i].verb;
            return verbs[i].parse(&c);
        }
    }
    return fail_tok(&c, "unknown command", tok);
}

/* ---- Reply formatting ---------------------------------------------------- */

/* snprintf's result as a proto_fmt_* return value: 0 when it did not fit. */
static size_t fit(char *buf, size_t cap, int n)
{
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

size_t proto_fmt_pong(char *buf, size_t cap)
{
    return fit(buf, cap, snprintf(buf, cap, "PONG\r\n"));
}

size_t proto_put_u64(char *p, uint64_t v)
{
    if (v < 100) { /* most RESP lengths */
        if (v < 10) {
            p[0] = (char)('0' + v);
            return 1;
        }
        p[0] = (char)('0' + v / 10);
        p[1] = (char)('0' + v % 10);
        return 2;
    }
    char tmp[PROTO_U64_DIGITS];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Copy the n-byte line at src into buf with its NUL, as fit() would. */
static size_t fit_copy(char *buf, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        return fit(buf, cap, -1);
    memcpy(buf, src, n);
    buf[n] = '\0';
    return n;
}

size_t proto_fmt_ok(char *buf, size_t cap)
{
    return fit_copy(buf, cap, "OK\r\n", 4);
}

size_t proto_fmt_ok_lock(char *buf, size_t cap, const char *lock_id, uint64_t validity_ms,
                         uint64_t fence)
{
    char line[3 + PROTO_LOCK_ID_LEN + 2 * (1 + PROTO_U64_DIGITS) + 2];
    size_t idlen = strlen(lock_id);
    if (idlen > PROTO_LOCK_ID_LEN)
        return fit(buf, cap, -1); /* never a lock id */
    char *p = line;
    memcpy(p, "OK ", 3);
    p += 3;
    memcpy(p, lock_id, idlen);
    p += idlen;
    *p++ = ' ';
    p += proto_put_u64(p, validity_ms);
    if (fence != 0) {
        *p++ = ' ';
        p += proto_put_u64(p, fence);
    }
    *p++ = '\r';
    *p++ = '\n';
    return fit_copy(buf, cap, line, (size_t)(p - line));
}

size_t proto_refmt_ok_lock(char *buf, size_t cap, const char *line, size_t len,
                           uint64_t validity_ms)
{
    if (len < 7 || memcmp(line, "OK ", 3) != 0 || line[len - 2] != '\r' || line[len - 1] != '\n')
        return 0;
    const char *id = line + 3, *end = line + len - 2;
    const char *sp = memchr(id, ' ', (size_t)(end - id));
    if (sp == NULL || !proto_valid_lock_id(id, (size_t)(sp - id)))
        return 0;
    char idbuf[PROTO_LOCK_ID_LEN + 1];
    memcpy(idbuf, id, (size_t)(sp - id));
    idbuf[sp - id] = '\0';
    const char *v = sp + 1;
    const char *sp2 = memchr(v, ' ', (size_t)(end - v));
    uint64_t old, fence = 0;
    if (!proto_parse_u64(v, (size_t)((sp2 != NULL ? sp2 : end) - v), UINT64_MAX, &old))
        return 0;
    if (sp2 != NULL &&
        (!proto_parse_u64(sp2 + 1, (size_t)(end - sp2 - 1), UINT64_MAX, &fence) || fence == 0))
        return 0;
    return proto_fmt_ok_lock(buf, cap, idbuf, validity_ms, fence);
}

/* Remove bytes below 0x20 and 0x7f from the NUL-terminated s; returns the new length. */
static size_t strip_controls(char *s)
{
    size_t out = 0;
    for (size_t in = 0; s[in] != '\0'; in++) {
        unsigned char ch = (unsigned char)s[in];
        if (ch >= 0x20 && ch != 0x7f)
            s[out++] = s[in];
    }
    s[out] = '\0';
    return out;
}

/*
 * "ERR <CODE> <text>\r\n". The text is formatted straight into buf after
 * the code, cut to leave room for "\r\n", then cleaned of control bytes so
 * the reply stays one line. An empty text gives "ERR <CODE>\r\n". An
 * invalid err (PROTO_OK, out of range) is sent as INTERNAL. Returns 0 only
 * if not even "ERR <CODE>\r\n" fits.
 */
size_t proto_fmt_err(char *buf, size_t cap, enum proto_err err, const char *fmt, ...)
{
    const char *name = proto_err_name(err);
    if (name == NULL)
        name = err_names[PROTO_ERR_INTERNAL];

    int n = snprintf(buf, cap, "ERR %s", name);
    if (n < 0 || (size_t)n + 2 >= cap)
        return fit(buf, cap, -1);
    size_t pos = (size_t)n;

    /* Room for ' ', at least one text byte, "\r\n" and the NUL. */
    if (cap - pos >= 5) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf + pos + 1, cap - pos - 3, fmt, ap);
        va_end(ap);
        size_t tlen = strip_controls(buf + pos + 1);
        if (tlen > 0) {
            buf[pos] = ' ';
            pos += 1 + tlen;
        }
    }
    memcpy(buf + pos, "\r\n", 3);
    return pos + 2;
}

size_t proto_fmt_event_lost(char *buf, size_t cap, const char *lock_id, const char *reason)
{
    return fit(buf, cap, snprintf(buf, cap, "EVENT LOST %s %s\r\n", lock_id, reason));
}

/* ---- Reply parsing -------------------------------------------------------- */

static bool is_reply_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Take the next word from *p, NUL-terminating it in place (the separator
 * after it is overwritten) and moving *p past it. NULL at the end of line.
 */
static char *take_word(char **p)
{
    char *s = *p;
    while (is_reply_sep(*s))
        s++;
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    char *word = s;
    while (*s != '\0' && !is_reply_sep(*s))
        s++;
    if (*s != '\0')
        *s++ = '\0';
    *p = s;
    return word;
}

/* The rest of the line without leading separators or trailing CR, LF and blanks. */
static char *rest_of_line(char *p)
{
    while (is_reply_sep(*p))
        p++;
    size_t n = strlen(p);
    while (n > 0 && is_reply_sep(p[n - 1]))
        p[--n] = '\0';
    return p;
}

/* "ERR <CODE> <text>": tokens[0] is the code as sent, even when unknown. */
static void parse_err_reply(char *p, struct proto_reply *out)
{
    char *code = take_word(&p);
    out->kind = PROTO_REPLY_ERR;
    out->err = PROTO_ERR__COUNT;
    if (code == NULL)
        return;
    out->err = proto_err_from_name(code, strlen(code));
    out->tokens[0] = code;
    out->ntokens = 1;
    out->text = rest_of_line(p);
}

static const struct {
    const char *word;
    enum proto_reply_kind kind;
} reply_kinds[] = {
    {"OK", PROTO_REPLY_OK},
    {"PONG", PROTO_REPLY_PONG},
    {"EVENT", PROTO_REPLY_EVENT},
    {"DATA", PROTO_REPLY_DATA},
};

/*
 * Classify the line by its first word (exact, upper case) and split the
 * remaining words into out->tokens (at most PROTO_MAX_REPLY_TOKENS; extra
 * ones are left alone). ERR keeps its text whole. Anything unrecognised,
 * including an empty line, is PROTO_REPLY_BAD.
 */
void proto_parse_reply(char *line, struct proto_reply *out)
{
    memset(out, 0, sizeof *out);
    out->kind = PROTO_REPLY_BAD;
    out->err = PROTO_OK;
    out->text = "";

    char *p = line;
    char *first = take_word(&p);
    if (first == NULL)
        return;
    if (strcmp(first, "ERR") == 0) {
        parse_err_reply(p, out);
        return;
    }
    for (size_t i = 0; i < sizeof reply_kinds / sizeof reply_kinds[0]; i++) {
        if (strcmp(first, reply_kinds[i].word) == 0)
            out->kind = reply_kinds[i].kind;
    }
    if (out->kind == PROTO_REPLY_BAD)
        return;
    char *tok;
    while (out->ntokens < PROTO_MAX_REPLY_TOKENS && (tok = take_word(&p)) != NULL)
        out->tokens[out->ntokens++] = tok;
}
