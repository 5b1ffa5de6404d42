/* locks.c - see locks.h. */
#include "locks.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "lock.h"
#include "server.h"
#include "textbuf.h"
#include "util.h"

#define LOCK_LINE_MAX 1024 /* one "lock ..." line, CR LF included */
#define RES_SHOWN_MAX 512  /* bytes of resource names per line; nres= tells the count */

/* "held", "waiting" (queued behind another lock of this daemon) or
 * "acquiring" (making Redlock attempts); NULL for locks not to list. */
static const char *state_word(const struct lock *lk)
{
    if (lk->state == LOCK_HELD) return "held";
    if (lk->state != LOCK_ACQUIRING || lk->req == NULL) return NULL; /* dead, or cancelled */
    return lk->waiting_on != NULL ? "waiting" : "acquiring";
}

static uint64_t left_ms(uint64_t end, uint64_t now)
{
    return end > now ? end - now : 0;
}

/*
 * Format lk as one "lock ..." line ending in CR LF into line (LOCK_LINE_MAX).
 * Returns its length, or 0 if the lock is not listed.
 */
static size_t format_lock(const struct lock *lk, uint64_t now, uint64_t now_micro, char *line)
{
    const char *state = state_word(lk);
    if (state == NULL) return 0;
    size_t n = 0, cap = LOCK_LINE_MAX - 2;
#define PUT(...) \
    do { \
        int w_ = snprintf(line + n, cap - n, __VA_ARGS__); \
        n += w_ > 0 ? ((size_t)w_ < cap - n ? (size_t)w_ : cap - n - 1) : 0; \
    } while (0)
    PUT("lock id=%.8s state=%s res=", lk->id, state);
    size_t shown = 0;
    for (size_t i = 0; i < lk->nres; i++) {
        const struct resource *r = lk->res[i];
        size_t len = r->keylen - r->prefix_len;
        if (shown + len + (i > 0) > RES_SHOWN_MAX) break; /* whole names only */
        PUT("%s%.*s", i > 0 ? "," : "", (int)len, r->key + r->prefix_len);
        shown += len + (i > 0);
    }
    PUT(" nres=%zu", lk->nres);
    const struct lock_owner *o = lk->state == LOCK_HELD ? lk->owner : lk->req->owner;
    const struct conn *c = o != NULL ? conn_of_owner(o) : NULL;
    if (c != NULL) PUT(" conn=%llu", (unsigned long long)c->id);
    else PUT(" conn=-");
    PUT(" ttl_ms=%u", lk->ttl_ms);
    if (lk->state == LOCK_HELD) {
        PUT(" validity_ms=%llu age_ms=%llu fence=%llu holds=%u",
            (unsigned long long)left_ms(lk->validity_end_ms, now),
            (unsigned long long)(now > lk->acquired_ms ? now - lk->acquired_ms : 0),
            (unsigned long long)lk->fence, lk->holds);
    } else {
        uint64_t waited = now_micro > lk->req->started_us ? (now_micro - lk->req->started_us) / 1000 : 0;
        PUT(" waited_ms=%llu wait_left_ms=%llu attempts=%u", (unsigned long long)waited,
            (unsigned long long)left_ms(lk->wait_deadline_ms, now), lk->attempts);
    }
    bool ae = lk->flags & LOCK_F_AUTOEXTEND, de = lk->flags & LOCK_F_DETACH, dl = lk->flags & LOCK_F_DELAYED;
    PUT(" flags=%s%s%s%s%s%s", ae ? "autoextend" : "", ae && de ? "," : "", de ? "detach" : "",
        (ae || de) && dl ? "," : "", dl ? "delayed" : "", ae || de || dl ? "" : "-");
    PUT(" priority=%u", lk->priority);
    if (lk->owner_id != NULL) PUT(" owner=%s", lk->owner_id);
    if (lk->mode == LOCK_SHARED) PUT(" mode=shared");
    else if (lk->mode == LOCK_PERMITS) PUT(" mode=permits:%u", lk->permits);
#undef PUT
    line[n++] = '\r';
    line[n++] = '\n';
    return n;
}

int locks_render(struct server *s, struct evbuffer *out)
{
    size_t budget = s->cfg.max_output_bytes / 4;
    if (budget > LOCKS_MAX_BYTES) budget = LOCKS_MAX_BYTES;
    struct textbuf body;
    tb_init(&body, budget);
    uint64_t now = now_ms(), now_micro = now_us();
    unsigned shown = 0;
    char line[LOCK_LINE_MAX];
    /* Held locks first, then the ACQUIREs that wait; stop at the budget. */
    for (int pass = 0; pass < 2 && tb_ok(&body); pass++) {
        struct lock *lk;
        LIST_FOREACH(lk, &s->tables.all, all_link)
        {
            if ((lk->state == LOCK_HELD) != (pass == 0)) continue;
            size_t len = format_lock(lk, now, now_micro, line);
            if (len == 0) continue;
            if (tb_append(&body, line, len) != 0) break; /* past the budget (truncated) or out of memory */
            shown++;
        }
    }
    int rc = -1;
    if (!body.failed &&
        evbuffer_add_printf(out, "DATA %u\r\nlocks_held %u\r\nwaiters %u\r\nshown %u\r\ntruncated %s\r\n",
                            shown + 4, s->nheld, s->nwaiters, shown, body.truncated ? "yes" : "no") > 0 &&
        evbuffer_add(out, tb_text(&body), body.len) == 0)
        rc = 0;
    tb_free(&body);
    return rc;
}
