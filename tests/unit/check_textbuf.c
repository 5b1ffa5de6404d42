/*
 * check_textbuf.c - unit tests for daemon/textbuf.c: the cap (an append that
 * would pass it is dropped whole and marks the buffer truncated), an exact
 * fit, growth across many appends, the sticky marks, and the out-of-memory
 * path through an injected allocator.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "textbuf.h"

START_TEST(empty)
{
    struct textbuf tb;
    tb_init(&tb, 16);
    ck_assert_str_eq(tb_text(&tb), "");
    ck_assert_uint_eq(tb.len, 0);
    ck_assert(tb_ok(&tb));
    ck_assert_int_eq(tb_append(&tb, "", 0), 0);
    ck_assert_str_eq(tb_text(&tb), "");
    tb_free(&tb);
}
END_TEST

START_TEST(exact_fit)
{
    struct textbuf tb;
    tb_init(&tb, 10);
    ck_assert_int_eq(tb_printf(&tb, "%s", "abcd"), 0);
    ck_assert_int_eq(tb_printf(&tb, "%d", 123456), 0); /* 4 + 6 = 10, the cap exactly */
    ck_assert_str_eq(tb_text(&tb), "abcd123456");
    ck_assert_uint_eq(tb.len, 10);
    ck_assert(tb_ok(&tb));
    ck_assert_int_eq(tb_append(&tb, "", 0), 0); /* nothing still fits */
    ck_assert_int_eq(tb_append(&tb, "x", 1), -1);
    ck_assert(tb.truncated && !tb.failed);
    ck_assert_str_eq(tb_text(&tb), "abcd123456");
    ck_assert_uint_le(tb.size, 11); /* never allocates past cap + NUL */
    tb_free(&tb);
}
END_TEST

START_TEST(over_cap_dropped_whole)
{
    struct textbuf tb;
    tb_init(&tb, 10);
    ck_assert_int_eq(tb_printf(&tb, "line %d\n", 1), 0);  /* 7 bytes */
    ck_assert_int_eq(tb_printf(&tb, "line %d\n", 2), -1); /* would be 14 */
    ck_assert(tb.truncated);
    ck_assert_str_eq(tb_text(&tb), "line 1\n");
    ck_assert_uint_eq(tb.len, 7);
    /* Sticky: a later append that would fit is refused too (no holes). */
    ck_assert_int_eq(tb_printf(&tb, "x"), -1);
    ck_assert_int_eq(tb_append(&tb, "y", 1), -1);
    ck_assert_str_eq(tb_text(&tb), "line 1\n");
    ck_assert(!tb_ok(&tb));
    tb_free(&tb);
    ck_assert(tb_ok(&tb));
    ck_assert_uint_eq(tb.cap, 10);
}
END_TEST

/* A formatted append that fits in the memory already allocated but not
 * under the cap is refused, and leaves the text as it was. */
START_TEST(cap_below_allocation)
{
    struct textbuf tb;
    tb_init(&tb, 300);
    char big[290];
    memset(big, 'a', sizeof big);
    ck_assert_int_eq(tb_append(&tb, big, sizeof big), 0);      /* size now 301 */
    ck_assert_int_eq(tb_printf(&tb, "%s", "0123456789!"), -1); /* 301 */
    ck_assert(tb.truncated);
    ck_assert_uint_eq(tb.len, sizeof big);
    ck_assert_uint_eq(strlen(tb_text(&tb)), sizeof big);
    tb_free(&tb);

    tb_init(&tb, 5);
    ck_assert_int_eq(tb_printf(&tb, "%s", "abc"), 0); /* allocation 6: "abcde" would fit in memory */
    ck_assert_int_eq(tb_printf(&tb, "%s", "de!"), -1);
    ck_assert_str_eq(tb_text(&tb), "abc");
    tb_free(&tb);
}
END_TEST

START_TEST(grows)
{
    struct textbuf tb;
    tb_init(&tb, 1 << 20);
    for (int i = 0; i < 10000; i++) ck_assert_int_eq(tb_printf(&tb, "%05d\n", i), 0);
    ck_assert_uint_eq(tb.len, 60000);
    ck_assert(strncmp(tb_text(&tb) + 6 * 9999, "09999\n", 6) == 0);
    ck_assert_uint_eq(strlen(tb_text(&tb)), 60000);
    /* One long formatted append, past the first allocation at once. */
    tb_free(&tb);
    ck_assert_int_eq(tb_printf(&tb, "%5000d", 7), 0);
    ck_assert_uint_eq(tb.len, 5000);
    ck_assert_str_eq(tb_text(&tb) + 4999, "7");
    tb_free(&tb);
}
END_TEST

static int allocs_left;

static void *limited_realloc(void *p, size_t n)
{
    if (allocs_left-- <= 0) return NULL;
    return realloc(p, n);
}

START_TEST(out_of_memory)
{
    struct textbuf tb;
    tb_set_realloc(limited_realloc);
    allocs_left = 0;
    tb_init(&tb, 4096);
    ck_assert_int_eq(tb_printf(&tb, "hello %d", 1), -1);
    ck_assert(tb.failed && !tb.truncated);
    ck_assert_str_eq(tb_text(&tb), "");
    tb_free(&tb);

    allocs_left = 1; /* the first block, then nothing */
    ck_assert_int_eq(tb_printf(&tb, "%s", "first"), 0);
    char big[1000];
    memset(big, 'b', sizeof big);
    ck_assert_int_eq(tb_append(&tb, big, sizeof big), -1);
    ck_assert(tb.failed);
    ck_assert_str_eq(tb_text(&tb), "first");
    ck_assert_int_eq(tb_printf(&tb, "x"), -1); /* sticky */
    ck_assert_str_eq(tb_text(&tb), "first");
    tb_free(&tb);

    allocs_left = 1;
    ck_assert_int_eq(tb_append(&tb, "ab", 2), 0);
    ck_assert_int_eq(tb_printf(&tb, "%1000d", 5), -1); /* needs a second allocation */
    ck_assert(tb.failed);
    ck_assert_str_eq(tb_text(&tb), "ab");
    tb_free(&tb);
    tb_set_realloc(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("textbuf");
    TCase *tc = tcase_create("textbuf");
    tcase_add_test(tc, empty);
    tcase_add_test(tc, exact_fit);
    tcase_add_test(tc, over_cap_dropped_whole);
    tcase_add_test(tc, cap_below_allocation);
    tcase_add_test(tc, grows);
    tcase_add_test(tc, out_of_memory);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
