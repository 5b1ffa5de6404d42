/*
 * table.h - an intrusive hash table keyed by byte strings. The caller
 * embeds a struct table_node in its object and owns both the object and
 * the key bytes; the table owns only its bucket array.
 */
#ifndef REDLOCKD_TABLE_H
#define REDLOCKD_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct table_node {
    struct table_node *next; /* bucket chain */
    uint64_t hash;
    const char *key; /* points into the caller's object */
    size_t klen;
};

struct table {
    struct table_node **buckets;
    size_t mask;  /* bucket count - 1 (a power of two), 0 before first insert */
    size_t count; /* nodes in the table */
};

void table_init(struct table *t);
/* Free the bucket array (the nodes belong to the caller). */
void table_destroy(struct table *t);
/* The node with this key, or NULL. */
struct table_node *table_find(const struct table *t, const char *key, size_t klen);
/* Insert node, whose key/klen the caller has set; the key must not be
 * present. Returns 0, or -1 when memory for growing ran out (not inserted). */
int table_insert(struct table *t, struct table_node *node);
/* Remove node, which must be in the table. */
void table_remove(struct table *t, struct table_node *node);

/* container_of for embedded nodes. */
#define table_entry(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
