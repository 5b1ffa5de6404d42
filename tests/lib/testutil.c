/* testutil.c - see testutil.h. */
#include "testutil.h"

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
