/* reply_pool.c - see reply_pool.h. */
#include "reply_pool.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define INLINE_STR_BYTES 48 /* a lock id, a sha, "OK", an integer as text */
#define MAX_KEPT 1024       /* free objects kept for reuse */

struct pooled_reply {
    redisReply r; /* first: hiredis and our callbacks see a redisReply */
    struct pooled_reply *next_free;
    char inline_str[INLINE_STR_BYTES];
};

static struct pooled_reply *free_list;
static size_t nfree;

static void free_reply(void *obj);

/* Fail the reader (the caller returns NULL) with a reason for the owner. */
static void *refuse(const redisReadTask *task, const char *why)
{
    struct reply_guard *g = task->privdata;
    if (g != NULL && g->error == NULL) g->error = why;
    return NULL;
}

/* Count bytes into the reply being built; false past REPLY_MAX_BYTES. */
static bool charge(const redisReadTask *task, size_t bytes)
{
    struct reply_guard *g = task->privdata;
    if (g == NULL) return true;
    if (bytes > REPLY_MAX_BYTES - g->reply_bytes) return false;
    g->reply_bytes += bytes;
    return true;
}

/* Does the object of this task (a scalar, or an empty array) finish its
 * top-level reply? It does when it is the last element of its array, and
 * that array the last of its own, and so on up to the root. */
static bool completes_reply(const redisReadTask *task)
{
    const redisReadTask *t = task;
    while (t->parent != NULL) {
        if (t->idx != t->parent->elements - 1) return false;
        t = t->parent;
    }
    return true;
}

/* Before a scalar or an empty array is made: if it completes a reply, is
 * that reply expected? Returns NULL when it may be made, else the reason. */
static const char *check_complete(const redisReadTask *task)
{
    struct reply_guard *g = task->privdata;
    if (g == NULL || !completes_reply(task)) return NULL;
    if (g->answered >= g->limit) return "unsolicited reply";
    g->answered++;
    g->reply_bytes = 0;
    return NULL;
}

/* A zeroed reply of the task's type. */
static redisReply *new_reply(const redisReadTask *task)
{
    struct pooled_reply *p = free_list;
    if (p != NULL) {
        free_list = p->next_free;
        nfree--;
    } else {
        p = malloc(sizeof *p);
        if (p == NULL) return NULL;
    }
    memset(&p->r, 0, sizeof p->r);
    p->r.type = task->type;
    return &p->r;
}

/* A finished reply goes into its parent array, if it has one. */
static void *attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    if (!charge(task, sizeof(struct pooled_reply) + len)) return refuse(task, "reply too large");
    const char *why = check_complete(task);
    if (why != NULL) return refuse(task, why);
    redisReply *r = new_reply(task);
    if (r == NULL) return NULL;
    struct pooled_reply *p = (struct pooled_reply *)r;
    if (len < INLINE_STR_BYTES) {
        r->str = p->inline_str;
    } else if ((r->str = malloc(len + 1)) == NULL) {
        free_reply(r);
        return NULL;
    }
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return attach(task, r);
}

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements > REPLY_MAX_ELEMENTS) /* the reader fails: see reply_pool.h */
        return refuse(task, "array reply too long");
    if (!charge(task,
                sizeof(struct pooled_reply) + (size_t)(elements > 0 ? elements : 0) * sizeof(redisReply *)))
        return refuse(task, "reply too large");
    if (elements <= 0) {
        const char *why = check_complete(task);
        if (why != NULL) return refuse(task, why);
    }
    redisReply *r = new_reply(task);
    if (r == NULL) return NULL;
    if (elements > 0 && (r->element = calloc((size_t)elements, sizeof *r->element)) == NULL) {
        free_reply(r);
        return NULL;
    }
    r->elements = elements > 0 ? (size_t)elements : 0;
    return attach(task, r);
}

static void *create_integer(const redisReadTask *task, long long value)
{
    if (!charge(task, sizeof(struct pooled_reply))) return refuse(task, "reply too large");
    const char *why = check_complete(task);
    if (why != NULL) return refuse(task, why);
    redisReply *r = new_reply(task);
    if (r == NULL) return NULL;
    r->integer = value;
    return attach(task, r);
}

static void *create_nil(const redisReadTask *task)
{
    if (!charge(task, sizeof(struct pooled_reply))) return refuse(task, "reply too large");
    const char *why = check_complete(task);
    if (why != NULL) return refuse(task, why);
    redisReply *r = new_reply(task);
    if (r == NULL) return NULL;
    r->type = REDIS_REPLY_NIL; /* the task says '$' or '*' */
    return attach(task, r);
}

static void free_reply(void *obj)
{
    redisReply *r = obj;
    if (r == NULL) return;
    struct pooled_reply *p = (struct pooled_reply *)r;
    if (r->type == REDIS_REPLY_ARRAY && r->element != NULL) {
        for (size_t i = 0; i < r->elements; i++) free_reply(r->element[i]);
        free(r->element);
    }
    if (r->str != NULL && r->str != p->inline_str) free(r->str);
    if (nfree >= MAX_KEPT) {
        free(p);
        return;
    }
    p->next_free = free_list;
    free_list = p;
    nfree++;
}

redisReplyObjectFunctions reply_pool_functions = {
    create_string, create_array, create_integer, create_nil, free_reply,
};

void reply_pool_free_all(void)
{
    while (free_list != NULL) {
        struct pooled_reply *p = free_list;
        free_list = p->next_free;
        free(p);
    }
    nfree = 0;
}
