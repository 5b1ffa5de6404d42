/*
 * proto.h - the redlockd line protocol: framing, request parsing, reply
 * formatting and reply parsing.
 *
 * Shared by the daemon and the client library. Pure libc: nothing here reads
 * or writes a socket, so every function can be unit-tested by feeding bytes.
 * protocol/PROTOCOL.md is the normative description of what this code does.
 */
#ifndef REDLOCK_PROTO_H
#define REDLOCK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MAX_RESOURCE_BYTES 512 /* longest resource name */
#define PROTO_LOCK_ID_LEN 32         /* lock ids are 32 lowercase hex digits */
#define PROTO_MAX_OWNER_BYTES 128    /* longest OWNER id */
#define PROTO_MAX_RESOURCES 1024     /* most resources in one ACQUIRE, whatever the config */
#define PROTO_MAX_MS 2147483647u     /* largest number of milliseconds accepted */
#define PROTO_REPLY_MAX 1024         /* a formatted reply line (not INFO) fits here */
#define PROTO_MAX_REPLY_TOKENS 16    /* tokens kept by proto_parse_reply() */

/* ---- Framing ------------------------------------------------------------ */

enum proto_frame_status {
    PROTO_FRAME_LINE,      /* a complete line was found */
    PROTO_FRAME_NEED_MORE, /* no line terminator yet and still within the limit */
    PROTO_FRAME_TOOLONG,   /* no terminator within max_line bytes: close after ERR TOOLONG */
};

/*
 * Find the first line in buf[0, len). Lines end in "\n" or "\r\n".
 * On PROTO_FRAME_LINE, *line_len is the length without the terminator and
 * *consumed the number of bytes to drop (line plus terminator).
 * A line whose content is longer than max_line bytes is PROTO_FRAME_TOOLONG,
 * whether or not its terminator has arrived.
 */
enum proto_frame_status proto_frame(const char *buf, size_t len, size_t max_line, size_t *line_len,
                                    size_t *consumed);

/* ---- Errors ------------------------------------------------------------- */

/* Error codes, sent as "ERR <CODE> <text>". Keep in step with PROTOCOL.md. */
enum proto_err {
    PROTO_OK = 0,
    PROTO_ERR_BUSY,     /* held elsewhere after the retries / wait */
    PROTO_ERR_NOQUORUM, /* fewer than N/2+1 masters answered in time */
    PROTO_ERR_NOTHELD,  /* unknown, expired or lost lock id */
    PROTO_ERR_BADREQ,   /* malformed request, bad number, out of range */
    PROTO_ERR_TOOLONG,  /* line over max_line_bytes; connection is closed */
    PROTO_ERR_LIMIT,    /* a configured limit was reached */
    PROTO_ERR_AUTH,     /* authentication required or failed */
    PROTO_ERR_SHUTDOWN, /* the daemon is shutting down */
    PROTO_ERR_INTERNAL, /* a bug or resource exhaustion inside the daemon */
    PROTO_ERR__COUNT
};

/* "BUSY", "NOQUORUM", ...; NULL for PROTO_OK or out of range. */
const char *proto_err_name(enum proto_err err);
/* The inverse, for clients: PROTO_ERR__COUNT when unknown. */
enum proto_err proto_err_from_name(const char *name, size_t len);

/* ---- Requests ----------------------------------------------------------- */

enum proto_verb {
    PROTO_VERB_PING,
    PROTO_VERB_ACQUIRE,
    PROTO_VERB_EXTEND,
    PROTO_VERB_RELEASE,
    PROTO_VERB_QUIT,
    PROTO_VERB_INFO,
    PROTO_VERB_INSPECT,
    PROTO_VERB_AUTH,
    PROTO_VERB_LOCKS,
};

/* A view into the caller's line buffer; not NUL-terminated. */
struct proto_slice {
    const char *ptr;
    size_t len;
};

/* ACQUIRE option flags. */
#define PROTO_OPT_TTL (1u << 0)        /* ttl_ms given */
#define PROTO_OPT_WAIT (1u << 1)       /* WAIT <ms> */
#define PROTO_OPT_AUTOEXTEND (1u << 2) /* AUTOEXTEND */
#define PROTO_OPT_DETACH (1u << 3)     /* DETACH */
#define PROTO_OPT_MAXHOLD (1u << 4)    /* MAXHOLD <ms> */
#define PROTO_OPT_PRIORITY (1u << 5)   /* PRIORITY <n> */
#define PROTO_OPT_OWNER (1u << 6)      /* OWNER <id> */
#define PROTO_OPT_SHARED (1u << 7)     /* SHARED: a reader of a read/write lock */
#define PROTO_OPT_PERMITS (1u << 8)    /* PERMITS <n>: one of at most n holders */
#define PROTO_MAX_PERMITS 1000u        /* largest PERMITS n */

struct proto_request {
    enum proto_verb verb;
    unsigned opts;                 /* PROTO_OPT_* present on the line */
    struct proto_slice *resources; /* ACQUIRE, INSPECT: caller's array */
    size_t nresources;
    struct proto_slice lock_id; /* EXTEND, RELEASE */
    struct proto_slice token;   /* AUTH */
    struct proto_slice owner;   /* OWNER */
    uint32_t ttl_ms;            /* ACQUIRE, EXTEND when PROTO_OPT_TTL */
    uint32_t wait_ms;           /* WAIT */
    uint32_t maxhold_ms;        /* MAXHOLD */
    uint32_t priority;          /* PRIORITY */
    uint32_t permits;           /* PERMITS (1..PROTO_MAX_PERMITS) */
};

/*
 * Parse one request line (without terminator) of length len.
 * Slices in *req point into line, so line must outlive *req.
 * resources/res_cap is caller storage for the resource list; more than
 * res_cap resources is PROTO_ERR_LIMIT.
 * Returns PROTO_OK, or PROTO_ERR_BADREQ / PROTO_ERR_LIMIT with a short
 * human-readable reason written to errbuf (always NUL-terminated).
 * Verbs and option names are case-insensitive; resource names are 1 to
 * PROTO_MAX_RESOURCE_BYTES bytes of printable ASCII without space or comma.
 * Semantic checks (AUTOEXTEND with DETACH, TTL against config) are the
 * caller's: the parser only checks syntax and number ranges.
 */
enum proto_err proto_parse_request(const char *line, size_t len, struct proto_request *req,
                                   struct proto_slice *resources, size_t res_cap, char *errbuf,
                                   size_t errlen);

/* True when s is a well-formed lock id (PROTO_LOCK_ID_LEN lowercase hex). */
bool proto_valid_lock_id(const char *s, size_t len);

/* The decimal digits of v written at p (no NUL; at most PROTO_U64_DIGITS of
 * them); returns how many. snprintf's cost, per request, showed in profiles. */
#define PROTO_U64_DIGITS 20
size_t proto_put_u64(char *p, uint64_t v);

/* ---- Reply formatting (daemon side) --------------------------------------
 * Each writes one complete line ending in "\r\n" into buf (capacity cap,
 * NUL-terminated) and returns its length without the NUL, or 0 if it did
 * not fit. */

size_t proto_fmt_pong(char *buf, size_t cap);
size_t proto_fmt_ok(char *buf, size_t cap);
/* "OK <lock_id> <validity_ms>[ <fence>]"; fence 0 means none is sent. */
size_t proto_fmt_ok_lock(char *buf, size_t cap, const char *lock_id, uint64_t validity_ms,
                         uint64_t fence);
/* The "OK <lock_id> <validity_ms>[ <fence>]" line in line[len] again with
 * another validity (a reply that waited behind earlier ones reports what is
 * left when it is written); 0 when line is not of that form or does not fit. */
size_t proto_refmt_ok_lock(char *buf, size_t cap, const char *line, size_t len,
                           uint64_t validity_ms);
/* "ERR <CODE> <text>"; text is printf-style and is cut to fit, never
 * containing CR or LF. */
size_t proto_fmt_err(char *buf, size_t cap, enum proto_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "EVENT LOST <lock_id> <reason>" */
size_t proto_fmt_event_lost(char *buf, size_t cap, const char *lock_id, const char *reason);

/* ---- Reply parsing (client side) ---------------------------------------- */

enum proto_reply_kind {
    PROTO_REPLY_OK,    /* "OK ..." */
    PROTO_REPLY_PONG,  /* "PONG" */
    PROTO_REPLY_ERR,   /* "ERR <CODE> <text>" */
    PROTO_REPLY_EVENT, /* "EVENT <NAME> ..." pushed by the daemon */
    PROTO_REPLY_DATA,  /* a multi-line block header "DATA <nlines>" (INFO, INSPECT) */
    PROTO_REPLY_BAD,   /* anything else */
};

struct proto_reply {
    enum proto_reply_kind kind;
    enum proto_err err; /* for PROTO_REPLY_ERR (PROTO_ERR__COUNT if unknown code) */
    const char *text;   /* ERR: the text after the code, NUL-terminated ("" if none) */
    size_t ntokens;     /* tokens after the first word (OK/EVENT/DATA) */
    const char *tokens[PROTO_MAX_REPLY_TOKENS];
};

/*
 * Parse one reply line in place (the line is modified: tokens are
 * NUL-terminated inside it). Extra tokens beyond PROTO_MAX_REPLY_TOKENS are
 * ignored, as clients must ignore tokens they do not know.
 */
void proto_parse_reply(char *line, struct proto_reply *out);

/* Parse a decimal number in [0, max]; false on anything else. */
bool proto_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

#endif
