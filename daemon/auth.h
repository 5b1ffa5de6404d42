/*
 * auth.h - secrets: the client token (auth_token_file) and the masters'
 * password (password_file). Secrets are read from files so that they need
 * not sit in a world-readable config, and are never logged.
 */
#ifndef REDLOCKD_AUTH_H
#define REDLOCKD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define AUTH_SECRET_MAX 512

/*
 * Read a secret file: its first line, without the line ending. Returns a
 * newly allocated string, or NULL with the reason in err (missing file,
 * empty, longer than AUTH_SECRET_MAX).
 */
char *auth_read_secret(const char *path, char *err, size_t errlen);

/* Give every master without a password in its URL the one in
 * cfg->password_file (if set). Returns 0, or -1 with the reason in err. */
int auth_apply_password_file(struct config *cfg, char *err, size_t errlen);

/* Compare a presented token with the expected one in time that does not
 * depend on where they differ. */
bool auth_token_equal(const char *expected, const char *given, size_t given_len);

/* Overwrite and free a secret. NULL is fine. */
void auth_free_secret(char *secret);

#endif
