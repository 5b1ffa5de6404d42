/* table.c - see table.h. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define TABLE_MIN_BUCKETS 64

void table_init(struct table *t)
{
    memset(t, 0, sizeof *t);
}

void table_destroy(struct table *t)
{
    free(t->buckets);
    table_init(t);
}

struct table_node *table_find(const struct table *t, const char *key, size_t klen)
{
    if (t->buckets == NULL) return NULL;
    uint64_t h = hash_bytes(key, klen);
    for (struct table_node *n = t->buckets[h & t->mask]; n != NULL; n = n->next)
        if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0) return n;
    return NULL;
}

static int table_grow(struct table *t)
{
    size_t nb = t->buckets ? (t->mask + 1) * 2 : TABLE_MIN_BUCKETS;
    struct table_node **b = calloc(nb, sizeof *b);
    if (b == NULL) return -1;
    if (t->buckets != NULL) {
        for (size_t i = 0; i <= t->mask; i++) {
            struct table_node *n = t->buckets[i];
            while (n != NULL) {
                struct table_node *next = n->next;
                n->next = b[n->hash & (nb - 1)];
                b[n->hash & (nb - 1)] = n;
                n = next;
            }
        }
        free(t->buckets);
    }
    t->buckets = b;
    t->mask = nb - 1;
    return 0;
}

int table_insert(struct table *t, struct table_node *node)
{
    if ((t->buckets == NULL || t->count >= t->mask + 1) && table_grow(t) != 0) {
        if (t->buckets == NULL) return -1; /* a full table still chains fine */
    }
    node->hash = hash_bytes(node->key, node->klen);
    struct table_node **slot = &t->buckets[node->hash & t->mask];
    node->next = *slot;
    *slot = node;
    t->count++;
    return 0;
}

void table_remove(struct table *t, struct table_node *node)
{
    struct table_node **p = &t->buckets[node->hash & t->mask];
    while (*p != node) p = &(*p)->next;
    *p = node->next;
    node->next = NULL;
    t->count--;
}
