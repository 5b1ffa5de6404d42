/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <stdlib.h>

#include <check.h>
#include <string.h>

#include "harness.h"

void raw_send(int fd, const char *line)
{
    ck_assert_int_eq(h_send_str(fd, line), 0);
    ck_assert_int_eq(h_send_str(fd, "\r\n"), 0);
}

bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

bool is_err(const char *reply, const char *code)
{
    size_t n = strlen(code);
    return starts(reply, "ERR ") && strncmp(reply + 4, code, n) == 0 && (reply[4 + n] == '\0' || reply[4 + n] == ' ');
}

int run_test_groups(const char *suite_name, const struct test_group *groups, size_t ngroups,
                    void (*setup)(void), void (*teardown)(void))
{
    Suite *s = suite_create(suite_name);
    for (size_t g = 0; g < ngroups; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        for (size_t i = 0; groups[g].tests[i]; i++) tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
