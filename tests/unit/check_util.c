/*
 * check_util.c - unit tests for daemon/util.c: SHA1 against the FIPS 180
 * examples and lengths around the 64-byte block and padding boundaries
 * (the daemon checks each master's SCRIPT LOAD answer against it).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void expect_sha1(const void *data, size_t len, const char *want)
{
    char hex[SHA1_HEX + 1];
    sha1_hex(data, len, hex);
    ck_assert_msg(strcmp(hex, want) == 0, "sha1 of %zu bytes: %s, want %s", len, hex, want);
}

START_TEST(sha1_known_answers)
{
    expect_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    expect_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_sha1(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    char *million = malloc(1000000);
    ck_assert_ptr_nonnull(million);
    memset(million, 'a', 1000000);
    expect_sha1(million, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(million);
}
END_TEST

START_TEST(sha1_block_boundaries)
{
    /* Bytes (i * 7 + 3) & 0xff; the answers are Python's hashlib.sha1. */
    static const struct {
        size_t len;
        const char *sha;
    } cases[] = {
        {55, "ddf57317ef34bfee3b6df83d359098930eb278bc"},  {56, "a0d492bb0fc889d0eca3bc137066ab6f4f74f369"},
        {63, "c55856749bef509bdfe6bfebfc7bf4e793e82132"},  {64, "bede92be29c3874e1b54ddc77988d606fc857a8e"},
        {65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f"},  {119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23"},
        {120, "82134b02fb3f702491be9bed581eeab59334acb2"},
    };
    unsigned char buf[128];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((i * 7 + 3) & 0xff);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_sha1(buf, cases[i].len, cases[i].sha);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("sha1");
    tcase_add_test(tc, sha1_known_answers);
    tcase_add_test(tc, sha1_block_boundaries);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
