/* auth.c - see auth.h. */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* The first byte of buf[0..len) a secret of this kind cannot hold, or len. */
static size_t first_bad_byte(const char *buf, size_t len, enum auth_secret_kind kind)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)buf[i];
        if (b == 0 || (kind == AUTH_SECRET_TOKEN && (b < 0x21 || b > 0x7e))) return i;
    }
    return len;
}

char *auth_read_secret(const char *path, enum auth_secret_kind kind, char *err, size_t errlen, char *warn,
                       size_t warnlen)
{
    warn[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
        snprintf(warn, warnlen, "%s is readable by %s (mode %04o): make it 0600 or 0400", path,
                 (st.st_mode & S_IROTH) ? "everyone" : "its group", (unsigned)(st.st_mode & 07777));
    char buf[AUTH_SECRET_MAX + 2];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t len = 0;
    while (len < n && buf[len] != '\r' && buf[len] != '\n') len++;
    size_t bad = first_bad_byte(buf, len, kind);
    char *secret = NULL;
    if (len == 0 || len > AUTH_SECRET_MAX) {
        snprintf(err, errlen, "%s: the secret must be one line of 1 to %d bytes", path, AUTH_SECRET_MAX);
    } else if (bad < len && kind == AUTH_SECRET_TOKEN) {
        snprintf(err, errlen,
                 "%s: byte 0x%02x at offset %zu cannot be sent in AUTH: a token is made of the bytes 0x21 to "
                 "0x7e (no spaces, tabs, control bytes or UTF-8)",
                 path, (unsigned)(unsigned char)buf[bad], bad);
    } else if (bad < len) {
        snprintf(err, errlen, "%s: a NUL byte at offset %zu: a password cannot hold one", path, bad);
    } else if ((secret = strndup(buf, len)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
    }
    memset(buf, 0, sizeof buf);
    return secret;
}

int auth_apply_password_file(struct config *cfg, char *err, size_t errlen, char *warn, size_t warnlen)
{
    warn[0] = '\0';
    if (cfg->password_file == NULL || cfg->password_file[0] == '\0') return 0;
    char *pw = auth_read_secret(cfg->password_file, AUTH_SECRET_PASSWORD, err, errlen, warn, warnlen);
    if (pw == NULL) return -1;
    int rc = 0;
    for (size_t i = 0; i < cfg->nmasters; i++) {
        if (cfg->masters[i].password != NULL) continue;
        cfg->masters[i].password = strdup(pw);
        if (cfg->masters[i].password == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
    }
    auth_free_secret(pw);
    return rc;
}

bool auth_token_equal(const char *expected, const char *given, size_t given_len)
{
    size_t exp_len = strlen(expected);
    /* Always walk the whole expected token, so timing says nothing of
     * how much of it matched. */
    unsigned char diff = (unsigned char)(exp_len != given_len);
    for (size_t i = 0; i < exp_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)expected[i]);
    }
    return diff == 0;
}

void auth_free_secret(char *secret)
{
    if (secret == NULL) return;
    volatile char *p = secret;
    while (*p) *p++ = 0;
    free(secret);
}

bool auth_budget_allows(struct auth_budget *b, uint32_t per_s, uint64_t now_ms)
{
    if (b->refill_ms == 0) {
        b->tokens = per_s;
    } else if (now_ms > b->refill_ms) {
        b->tokens += (double)(now_ms - b->refill_ms) * per_s / 1000.0;
        if (b->tokens > per_s) b->tokens = per_s;
    }
    b->refill_ms = now_ms;
    if (b->tokens > per_s) b->tokens = per_s; /* the rate was lowered by a reload */
    return b->tokens >= 1.0;
}

void auth_budget_fail(struct auth_budget *b, uint64_t now_ms)
{
    b->tokens -= 1.0;
    b->failures++;
    auth_budget_log(b, now_ms);
}

void auth_budget_refuse(struct auth_budget *b, uint64_t now_ms)
{
    b->refused++;
    auth_budget_log(b, now_ms);
}

#define AUTH_LOG_WINDOW_MS 1000

void auth_budget_log(struct auth_budget *b, uint64_t now_ms)
{
    if (b->since_ms != 0 && now_ms - b->since_ms < AUTH_LOG_WINDOW_MS) return;
    if (b->failures + b->refused == 0) {
        b->since_ms = 0; /* quiet: the next failure is logged at once */
        return;
    }
    if (b->since_ms == 0)
        log_warn("msg=\"client AUTH failed\" failures=%llu refused=%llu", (unsigned long long)b->failures,
                 (unsigned long long)b->refused);
    else
        log_warn("msg=\"client AUTH failures\" failures=%llu refused=%llu window_ms=%llu",
                 (unsigned long long)b->failures, (unsigned long long)b->refused,
                 (unsigned long long)(now_ms - b->since_ms));
    b->failures = b->refused = 0;
    b->since_ms = now_ms;
}
