/* textbuf.c - see textbuf.h. */
#include "textbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TB_MIN_SIZE 256 /* first allocation, NUL included */

static void *(*tb_realloc)(void *, size_t) = realloc;

void tb_set_realloc(void *(*fn)(void *, size_t))
{
    tb_realloc = fn != NULL ? fn : realloc;
}

void tb_init(struct textbuf *tb, size_t cap)
{
    memset(tb, 0, sizeof *tb);
    tb->cap = cap < SIZE_MAX / 2 ? cap : SIZE_MAX / 2; /* so that cap + 1 never wraps */
}

bool tb_ok(const struct textbuf *tb)
{
    return !tb->truncated && !tb->failed;
}

const char *tb_text(const struct textbuf *tb)
{
    return tb->buf != NULL ? tb->buf : "";
}

void tb_free(struct textbuf *tb)
{
    free(tb->buf);
    tb_init(tb, tb->cap);
}

/*
 * Make room for n more bytes of text and the NUL. Returns 0, or -1 with
 * truncated (past the cap) or failed (no memory) set. Sizes double from
 * TB_MIN_SIZE, clamped to cap + 1, so a builder never allocates much more
 * than it holds.
 */
static int reserve(struct textbuf *tb, size_t n)
{
    if (n > tb->cap - tb->len) {
        tb->truncated = true;
        return -1;
    }
    size_t need = tb->len + n + 1;
    if (need <= tb->size) return 0;
    size_t size = tb->size ? tb->size : TB_MIN_SIZE;
    while (size < need && size <= SIZE_MAX / 2) size *= 2;
    if (size < need || size > tb->cap + 1) size = tb->cap + 1; /* need <= cap + 1, checked above */
    char *p = tb_realloc(tb->buf, size);
    if (p == NULL) {
        tb->failed = true;
        return -1;
    }
    tb->buf = p;
    tb->size = size;
    return 0;
}

int tb_append(struct textbuf *tb, const void *bytes, size_t n)
{
    if (!tb_ok(tb) || reserve(tb, n) != 0) return -1;
    memcpy(tb->buf + tb->len, bytes, n);
    tb->len += n;
    tb->buf[tb->len] = '\0';
    return 0;
}

int tb_vprintf(struct textbuf *tb, const char *fmt, va_list ap)
{
    if (!tb_ok(tb)) return -1;
    va_list again;
    va_copy(again, ap);
    size_t room = tb->size > tb->len ? tb->size - tb->len : 0;
    int n = vsnprintf(room ? tb->buf + tb->len : NULL, room, fmt, ap);
    int rc = 0;
    if (n < 0) {
        tb->failed = true;
        rc = -1;
    } else if ((size_t)n < room) { /* it fitted in what was allocated; the cap still rules */
        if ((size_t)n > tb->cap - tb->len) {
            tb->buf[tb->len] = '\0';
            tb->truncated = true;
            rc = -1;
        } else {
            tb->len += (size_t)n;
        }
    } else if (reserve(tb, (size_t)n) != 0) {
        if (tb->buf != NULL) tb->buf[tb->len] = '\0';
        rc = -1;
    } else {
        vsnprintf(tb->buf + tb->len, (size_t)n + 1, fmt, again);
        tb->len += (size_t)n;
    }
    va_end(again);
    return rc;
}

int tb_printf(struct textbuf *tb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tb_vprintf(tb, fmt, ap);
    va_end(ap);
    return rc;
}
