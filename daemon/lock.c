/* lock.c - see lock.h. */
#include "lock.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void lock_tables_init(struct lock_tables *t)
{
    table_init(&t->locks);
    table_init(&t->resources);
    LIST_INIT(&t->all);
}

void lock_tables_destroy(struct lock_tables *t)
{
    table_destroy(&t->locks);
    table_destroy(&t->resources);
}

static struct resource *resource_ref(struct lock_tables *t, const char *prefix, size_t plen,
                                     const struct proto_slice *name)
{
    char stackkey[PROTO_MAX_RESOURCE_BYTES + 512];
    size_t klen = plen + name->len;
    char *key = klen <= sizeof stackkey ? stackkey : malloc(klen);
    if (key == NULL) return NULL;
    memcpy(key, prefix, plen);
    memcpy(key + plen, name->ptr, name->len);
    struct resource *r = resource_find(t, key, klen);
    if (r == NULL) {
        r = malloc(sizeof *r + klen);
        if (r != NULL) {
            memset(r, 0, sizeof *r);
            TAILQ_INIT(&r->waiters);
            memcpy(r->key, key, klen);
            r->prefix_len = (unsigned)plen;
            r->keylen = klen;
            r->node.key = r->key;
            r->node.klen = klen;
            if (table_insert(&t->resources, &r->node) != 0) {
                free(r);
                r = NULL;
            }
        }
    }
    if (key != stackkey) free(key);
    if (r != NULL) r->refs++;
    return r;
}

static void resource_unref(struct lock_tables *t, struct resource *r)
{
    if (--r->refs > 0) return;
    table_remove(&t->resources, &r->node);
    free(r);
}

struct lock *lock_new(struct lock_tables *t, const char *prefix, const struct proto_slice *names, size_t n)
{
    size_t plen = strlen(prefix);
    struct lock *lk = calloc(1, sizeof *lk + n * sizeof lk->res[0]);
    if (lk == NULL) return NULL;
    LIST_INSERT_HEAD(&t->all, lk, all_link);
    unsigned char raw[PROTO_LOCK_ID_LEN / 2];
    if (random_bytes(raw, sizeof raw) != 0) goto fail;
    hex_encode(raw, sizeof raw, lk->id);
    memset(raw, 0, sizeof raw);
    lk->node.key = lk->id;
    lk->node.klen = PROTO_LOCK_ID_LEN;
    lk->state = LOCK_ACQUIRING;
    for (size_t i = 0; i < n; i++) {
        lk->res[i] = resource_ref(t, prefix, plen, &names[i]);
        if (lk->res[i] == NULL) goto fail;
        lk->nres = i + 1;
    }
    return lk;
fail:
    lock_free(t, lk);
    return NULL;
}

void lock_free(struct lock_tables *t, struct lock *lk)
{
    LIST_REMOVE(lk, all_link);
    for (size_t i = 0; i < lk->nres; i++) resource_unref(t, lk->res[i]);
    free(lk->owner_id);
    free(lk);
}

struct lock *lock_find(struct lock_tables *t, const char *id, size_t len)
{
    struct table_node *n = table_find(&t->locks, id, len);
    return n ? table_entry(n, struct lock, node) : NULL;
}

struct resource *resource_find(struct lock_tables *t, const char *key, size_t len)
{
    struct table_node *n = table_find(&t->resources, key, len);
    return n ? table_entry(n, struct resource, node) : NULL;
}
