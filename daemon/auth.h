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

/* What a secret file holds: the two are checked differently. */
enum auth_secret_kind {
    AUTH_SECRET_TOKEN,    /* the client token: only bytes a client can send in AUTH (0x21-0x7E) */
    AUTH_SECRET_PASSWORD, /* a master's password: any byte but NUL, CR and LF */
};

/*
 * Read a secret file: its first line, without the line ending. Returns a
 * newly allocated string, or NULL with the reason in err (missing file,
 * empty, longer than AUTH_SECRET_MAX, or a byte no client could send / a
 * NUL, named by its offset in the file). warn (warnlen bytes) is set to ""
 * or to a warning for the caller to log: the file is readable by its group
 * or by others.
 */
char *auth_read_secret(const char *path, enum auth_secret_kind kind, char *err, size_t errlen, char *warn,
                       size_t warnlen);

/* Give every master without a password in its URL the one in
 * cfg->password_file (if set). Returns 0, or -1 with the reason in err;
 * warn as for auth_read_secret. */
int auth_apply_password_file(struct config *cfg, char *err, size_t errlen, char *warn, size_t warnlen);

/* Compare a presented token with the expected one in time that does not
 * depend on where they differ. */
bool auth_token_equal(const char *expected, const char *given, size_t given_len);

/*
 * The daemon-wide budget of failed client AUTHs: a token bucket refilled at
 * per_s a second up to per_s. While it is empty an AUTH is refused without
 * being checked, so however many connections guess, at most about per_s
 * tokens a second are tried. It also keeps the log to one line a second.
 */
struct auth_budget {
    double tokens;      /* failures allowed now */
    uint64_t refill_ms; /* when tokens were last refilled; 0 = never (full) */
    uint64_t failures;  /* wrong tokens since the last log line */
    uint64_t refused;   /* AUTHs refused unchecked since the last log line */
    uint64_t since_ms;  /* start of the current log window; 0 = quiet */
};

/* Refill, then true if one more failure fits (an AUTH may be checked). */
bool auth_budget_allows(struct auth_budget *b, uint32_t per_s, uint64_t now_ms);
/* Count a wrong token (spends one), or an AUTH refused unchecked. */
void auth_budget_fail(struct auth_budget *b, uint64_t now_ms);
void auth_budget_refuse(struct auth_budget *b, uint64_t now_ms);
/* Log what was counted, at most once a second: call after counting, and
 * from a periodic tick so that the end of a burst is logged too. */
void auth_budget_log(struct auth_budget *b, uint64_t now_ms);

/* Overwrite and free a secret. NULL is fine. */
void auth_free_secret(char *secret);

#endif
