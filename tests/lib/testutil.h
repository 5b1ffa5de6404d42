/*
 * testutil.h - small helpers shared by the integration tests (they assert
 * with the check framework, so they live apart from the process harness).
 */
#ifndef REDLOCK_TESTUTIL_H
#define REDLOCK_TESTUTIL_H

#include <stdbool.h>

/* Send one request line (CRLF added) on a raw connection; asserts it went out. */
void raw_send(int fd, const char *line);
/* s begins with prefix. */
bool starts(const char *s, const char *prefix);
/* reply is "ERR <code>", alone or followed by a space and text. */
bool is_err(const char *reply, const char *code);

#endif
