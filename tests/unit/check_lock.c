/* check_lock.c - unit tests for the validity math, the hash table, and the
 * lock/resource tables (no I/O). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "redlock_engine.h"
#include "table.h"
#include "util.h"

START_TEST(validity_formula)
{
    /* validity = ttl - elapsed - (ttl * drift + 2) */
    ck_assert_uint_eq(rl_validity_ms(10000, 0, 0.01), 10000 - 100 - 2);
    ck_assert_uint_eq(rl_validity_ms(10000, 500, 0.01), 10000 - 500 - 100 - 2);
    ck_assert_uint_eq(rl_validity_ms(1000, 0, 0.0), 998);
    /* Never negative: a slow majority leaves no validity. */
    ck_assert_uint_eq(rl_validity_ms(100, 99, 0.01), 0);
    ck_assert_uint_eq(rl_validity_ms(100, 1000, 0.01), 0);
    ck_assert_uint_eq(rl_validity_ms(1, 0, 0.0), 0);
}
END_TEST

START_TEST(clock_is_monotonic)
{
    uint64_t a = now_ms(), b = now_ms();
    ck_assert_uint_ge(b, a);
    ck_assert_uint_ge(now_us() / 1000, a);
}
END_TEST

START_TEST(random_tokens_differ)
{
    unsigned char x[16], y[16];
    ck_assert_int_eq(random_bytes(x, sizeof x), 0);
    ck_assert_int_eq(random_bytes(y, sizeof y), 0);
    ck_assert(memcmp(x, y, sizeof x) != 0);
    /* Across a refill of the 4 KiB pool too. */
    for (int i = 0; i < 600; i++) ck_assert_int_eq(random_bytes(x, sizeof x), 0);
    char hex[33];
    hex_encode(x, 16, hex);
    ck_assert_uint_eq(strlen(hex), 32);
    for (int i = 0; i < 32; i++) ck_assert(strchr("0123456789abcdef", hex[i]) != NULL);
    for (int i = 0; i < 1000; i++) ck_assert_uint_le(random_jitter(100), 100);
    ck_assert_uint_eq(random_jitter(0), 0);
}
END_TEST

struct item {
    struct table_node node;
    char key[16];
};

START_TEST(table_insert_find_remove)
{
    struct table t;
    table_init(&t);
    enum { N = 5000 };
    struct item *items = calloc(N, sizeof *items);
    for (int i = 0; i < N; i++) {
        int n = snprintf(items[i].key, sizeof items[i].key, "k%d", i);
        items[i].node.key = items[i].key;
        items[i].node.klen = (size_t)n;
        ck_assert_int_eq(table_insert(&t, &items[i].node), 0);
    }
    ck_assert_uint_eq(t.count, N);
    for (int i = 0; i < N; i++) {
        struct table_node *n = table_find(&t, items[i].key, strlen(items[i].key));
        ck_assert_ptr_eq(n, &items[i].node);
        ck_assert_ptr_eq(table_entry(n, struct item, node), &items[i]);
    }
    ck_assert_ptr_null(table_find(&t, "nope", 4));
    ck_assert_ptr_null(table_find(&t, "k1", 1)); /* prefix is not a match */
    for (int i = 0; i < N; i += 2) table_remove(&t, &items[i].node);
    ck_assert_uint_eq(t.count, N / 2);
    for (int i = 0; i < N; i++) {
        struct table_node *n = table_find(&t, items[i].key, strlen(items[i].key));
        if (i % 2 == 0) ck_assert_ptr_null(n);
        else ck_assert_ptr_nonnull(n);
    }
    table_destroy(&t);
    free(items);
}
END_TEST

static struct proto_slice slice(const char *s)
{
    struct proto_slice sl = {s, strlen(s)};
    return sl;
}

START_TEST(locks_share_resources)
{
    struct lock_tables t;
    lock_tables_init(&t);
    struct proto_slice ab[2] = {slice("a"), slice("b")};
    struct proto_slice b[1] = {slice("b")};
    struct lock *l1 = lock_new(&t, "pfx:", ab, 2);
    struct lock *l2 = lock_new(&t, "pfx:", b, 1);
    ck_assert_ptr_nonnull(l1);
    ck_assert_ptr_nonnull(l2);
    ck_assert_uint_eq(strlen(l1->id), PROTO_LOCK_ID_LEN);
    ck_assert_str_ne(l1->id, l2->id);
    ck_assert_int_eq(l1->state, LOCK_ACQUIRING);
    /* Keys carry the prefix, and know its length (the fence counter is the
     * prefix's); both locks name the same entry for "b". */
    ck_assert_uint_eq(l1->res[0]->keylen, 5);
    ck_assert_uint_eq(l1->res[0]->prefix_len, 4);
    ck_assert(memcmp(l1->res[0]->key, "pfx:a", 5) == 0);
    ck_assert_ptr_eq(l1->res[1], l2->res[0]);
    ck_assert_uint_eq(l2->res[0]->refs, 2);
    ck_assert_uint_eq(t.resources.count, 2);
    ck_assert_ptr_eq(resource_find(&t, "pfx:b", 5), l2->res[0]);
    /* HELD locks are found by id. */
    ck_assert_int_eq(table_insert(&t.locks, &l1->node), 0);
    ck_assert_ptr_eq(lock_find(&t, l1->id, PROTO_LOCK_ID_LEN), l1);
    ck_assert_ptr_null(lock_find(&t, l2->id, PROTO_LOCK_ID_LEN));
    table_remove(&t.locks, &l1->node);
    lock_free(&t, l1);
    ck_assert_uint_eq(t.resources.count, 1);
    ck_assert_ptr_null(resource_find(&t, "pfx:a", 5));
    lock_free(&t, l2);
    ck_assert_uint_eq(t.resources.count, 0);
    ck_assert(LIST_EMPTY(&t.all));
    lock_tables_destroy(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lock");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, validity_formula);
    tcase_add_test(tc, clock_is_monotonic);
    tcase_add_test(tc, random_tokens_differ);
    tcase_add_test(tc, table_insert_find_remove);
    tcase_add_test(tc, locks_share_resources);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
