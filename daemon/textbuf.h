/*
 * textbuf.h - a bounded text builder for the replies redlockd renders as
 * text (INFO, INSPECT, LOCKS, /metrics): printf-style appends into one
 * growing buffer that never holds more than a hard cap of bytes.
 *
 * An append is all or nothing: one that would take the text past the cap is
 * dropped and marks the buffer truncated; one that cannot get memory marks
 * it failed. Either mark is sticky (later appends do nothing), so the text
 * is always a whole prefix of what was asked for, never a cut line.
 */
#ifndef REDLOCKD_TEXTBUF_H
#define REDLOCKD_TEXTBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct textbuf {
    char *buf;      /* owned; NUL-terminated once anything was appended; NULL before */
    size_t len;     /* bytes of text, the NUL not counted; never above cap */
    size_t size;    /* bytes allocated at buf */
    size_t cap;     /* hard limit on len */
    bool truncated; /* an append did not fit under cap and was dropped */
    bool failed;    /* an allocation failed (or vsnprintf did): the append was dropped */
};

/* An empty builder that will hold at most cap bytes. Allocates nothing. */
void tb_init(struct textbuf *tb, size_t cap);

/* Append n bytes. Returns 0, or -1 (nothing appended) when the buffer is
 * already truncated or failed, when they do not fit under the cap
 * (truncated), or when out of memory (failed). */
int tb_append(struct textbuf *tb, const void *bytes, size_t n);

/* Append formatted text, with the same all-or-nothing contract. */
int tb_printf(struct textbuf *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tb_vprintf(struct textbuf *tb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Whether every append so far went in (neither truncated nor failed). */
bool tb_ok(const struct textbuf *tb);

/* The text (always a valid string, "" when empty); owned by tb. */
const char *tb_text(const struct textbuf *tb);

/* Free the text and make tb empty again, with the same cap. */
void tb_free(struct textbuf *tb);

/* For tests: the allocator tb uses (realloc by default); NULL restores it. */
void tb_set_realloc(void *(*fn)(void *, size_t));

#endif
