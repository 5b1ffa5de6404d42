/*
 * testutil.h - small helpers shared by the integration tests (they assert
 * with the check framework, so they live apart from the process harness).
 */
#ifndef REDLOCK_TESTUTIL_H
#define REDLOCK_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>

/* Send one request line (CRLF added) on a raw connection; asserts it went out. */
void raw_send(int fd, const char *line);
/* raw_send, then the next line (events included) into out; asserts one came
 * within 10 s (x h_slowdown()). */
void raw_request(int fd, const char *line, char *out, size_t outlen);
/* s begins with prefix. */
bool starts(const char *s, const char *prefix);
/* reply is "ERR <code>", alone or followed by a space and text. */
bool is_err(const char *reply, const char *code);

/* One HTTP request to 127.0.0.1:port (Connection: close): the status code,
 * or -1, and the body (cut to bodylen). Waits at most 5 s. */
int http_request(int port, const char *method, const char *path, char *body, size_t bodylen);

/* A named group of tests sharing setup/teardown; tests ends with NULL. */
struct test_group {
    const char *name;
    const TTest *tests[24];
};

/* Run the groups as one suite (60 s per test, CK_ENV output). Returns the
 * process exit status: EXIT_SUCCESS when every test passed. */
int run_test_groups(const char *suite_name, const struct test_group *groups, size_t ngroups,
                    void (*setup)(void), void (*teardown)(void));

#endif
