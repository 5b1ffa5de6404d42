/*
 * reply_tree.h - comparing two hiredis reply trees, for the tests and the
 * fuzz target that check daemon/reply_pool.c against hiredis' own objects.
 */
#ifndef REDLOCKD_TEST_REPLY_TREE_H
#define REDLOCKD_TEST_REPLY_TREE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <string.h>

/* Same types, values, strings (with their NUL) and elements, recursively. */
static inline bool reply_trees_equal(const redisReply *a, const redisReply *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->type != b->type || a->integer != b->integer || a->len != b->len ||
        a->elements != b->elements)
        return false;
    if ((a->str == NULL) != (b->str == NULL))
        return false;
    if (a->str != NULL && memcmp(a->str, b->str, a->len + 1) != 0)
        return false;
    for (size_t i = 0; i < a->elements; i++)
        if (!reply_trees_equal(a->element[i], b->element[i]))
            return false;
    return true;
}

#endif
