/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <check.h>
#include <string.h>

#include "harness.h"

void raw_send(int fd, const char *line)
{
    ck_assert_int_eq(h_send_str(fd, line), 0);
    ck_assert_int_eq(h_send_str(fd, "\r\n"), 0);
}

void raw_request(int fd, const char *line, char *out, size_t outlen)
{
    raw_send(fd, line);
    ck_assert_msg(h_read_line(fd, out, outlen, 10000 * h_slowdown()) > 0, "no reply to %s", line);
}

bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool is_err(const char *reply, const char *code)
{
    size_t n = strlen(code);
    return starts(reply, "ERR ") && strncmp(reply + 4, code, n) == 0 &&
           (reply[4 + n] == '\0' || reply[4 + n] == ' ');
}

int run_test_groups(const char *suite_name, const struct test_group *groups, size_t ngroups,
                    void (*setup)(void), void (*teardown)(void))
{
    Suite *s = suite_create(suite_name);
    for (size_t g = 0; g < ngroups; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        for (size_t i = 0; groups[g].tests[i]; i++)
            tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int http_request(int port, const char *method, const char *path, char *body, size_t bodylen)
{
    body[0] = '\0';
    int fd = h_connect_tcp(port);
    if (fd < 0)
        return -1;
    char req[256];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             method, path);
    if (h_send_str(fd, req) != 0) {
        close(fd);
        return -1;
    }
    static char buf[65536];
    size_t len = 0;
    uint64_t deadline = h_now_ms() + 5000;
    while (len < sizeof buf - 1 && h_now_ms() < deadline) {
        if (!h_readable(fd, (uint32_t)(deadline - h_now_ms())))
            break;
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    int code = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
        return -1;
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, bodylen, "%s", b ? b + 4 : "");
    return code;
}
