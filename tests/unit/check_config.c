/* check_config.c - the ini loader: defaults, every key, every error class,
 * long lines, and that every key is documented in conf/redlockd.ini. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"

#include <sys/stat.h>
#include <unistd.h>

static struct config cfg;
static char err[CONFIG_ERR_MAX];

static int load(const char *text)
{
    return config_load_string(text, "t.ini", &cfg, err, sizeof err);
}

START_TEST(defaults_need_masters)
{
    ck_assert_int_eq(load(""), -1);
    ck_assert_ptr_nonnull(strstr(err, "redis.masters"));
    ck_assert_int_eq(load("[redis]\nmasters = 127.0.0.1:7001\n"), 0);
    ck_assert_str_eq(cfg.listen, "127.0.0.1:7379");
    ck_assert_str_eq(cfg.unix_socket, "/run/redlockd/redlockd.sock");
    ck_assert_uint_eq(cfg.unix_socket_mode, 0660);
    ck_assert_uint_eq(cfg.max_line_bytes, 65536);
    ck_assert_uint_eq(cfg.max_resources_per_lock, 64);
    ck_assert_uint_eq(cfg.master_timeout_ms, 50);
    ck_assert_uint_eq(cfg.default_ttl_ms, 30000);
    ck_assert_uint_eq(cfg.retry_count, 3);
    ck_assert_uint_eq(cfg.retry_delay_ms, 200);
    ck_assert_uint_eq(cfg.retry_jitter_ms, 100);
    ck_assert(cfg.drift_factor > 0.0099 && cfg.drift_factor < 0.0101);
    ck_assert_str_eq(cfg.key_prefix, "");
    ck_assert_uint_eq(cfg.max_priority, 1000);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
    config_free(&cfg);
}
END_TEST

START_TEST(full_file)
{
    const char *text = "[server]\nlisten = \nunix_socket = /tmp/x.sock\nunix_socket_mode = 0600\n"
                       "max_line_bytes = 1024 ; inline comment\nmax_resources_per_lock = 8\n"
                       "[redis]\nmasters = a:1, b:2 ,redis://u:p@c:3, redis://secret@d:4, [::1]:5\n"
                       "master_timeout_ms = 100\n"
                       "[lock]\ndefault_ttl_ms = 1000\nmax_ttl_ms = 2000\nretry_count = 0\n"
                       "drift_factor = 0\nkey_prefix = lk:\n[log]\nlevel = DEBUG\n";
    ck_assert_msg(load(text) == 0, "%s", err);
    ck_assert_str_eq(cfg.listen, "");
    ck_assert_uint_eq(cfg.unix_socket_mode, 0600);
    ck_assert_uint_eq(cfg.max_line_bytes, 1024);
    ck_assert_uint_eq(cfg.nmasters, 5);
    ck_assert_str_eq(cfg.masters[1].host, "b");
    ck_assert_int_eq(cfg.masters[1].port, 2);
    ck_assert_str_eq(cfg.masters[2].user, "u");
    ck_assert_str_eq(cfg.masters[2].password, "p");
    ck_assert_ptr_null(cfg.masters[3].user);
    ck_assert_str_eq(cfg.masters[3].password, "secret");
    ck_assert_str_eq(cfg.masters[4].host, "::1");
    ck_assert_int_eq(cfg.masters[4].port, 5);
    ck_assert_str_eq(cfg.key_prefix, "lk:");
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    config_free(&cfg);
}
END_TEST

/* Each bad file fails naming the line and the key. */
static const struct {
    const char *text;
    const char *want;
} bad_files[] = {
    {"[redis]\nmasters = a:1\n[lock]\nretry_count = x\n", "t.ini:4: lock.retry_count: not a whole number"},
    {"[redis]\nmasters = a:1\n[lock]\nretry_count = -1\n", "t.ini:4: lock.retry_count"},
    {"[redis]\nmasters = a:1\n[lock]\nretry_count = 1001\n", "out of range"},
    {"[redis]\nmasters = a:1\n[lock]\nretry_count = 99999999999999999999\n", "lock.retry_count"},
    {"[redis]\nmasters = a:1\n[lock]\nretry_count = 3x\n", "lock.retry_count"},
    {"[redis]\nmasters = a:1\nbogus = 1\n", "t.ini:3: redis.bogus: unknown key"},
    {"[nope]\nx = 1\n[redis]\nmasters = a:1\n", "t.ini:2: [nope]: unknown section"},
    {"[redis]\nmasters = a:1, a:1\n", "listed twice"},
    {"[redis]\nmasters = a\n", "t.ini:2: redis.masters"},
    {"[redis]\nmasters = a:0\n", "redis.masters"},
    {"[redis]\nmasters = a:65536\n", "redis.masters"},
    {"[redis]\nmasters = a:1,,b:2\n", "empty entry"},
    {"[redis]\nmasters = a:1\n[lock]\ndrift_factor = 0.6\n", "lock.drift_factor"},
    {"[redis]\nmasters = a:1\n[lock]\ndefault_ttl_ms = 5000\nmax_ttl_ms = 1000\n", "default_ttl_ms"},
    {"[redis]\nmasters = a:1\n[server]\nunix_socket_mode = 0999\n", "server.unix_socket_mode"},
    {"[redis]\nmasters = a:1\n[log]\nlevel = loud\n", "log.level"},
    {"[redis]\nmasters = a:1\nmasters = b:1\n", "given twice"},
    {"[redis]\nmasters = a:1\n[server]\nmax_line_bytes = 63\n", "server.max_line_bytes: out of range"},
    {"[redis]\nmasters = a:1\nthis is not ini\n", "t.ini:3"},
    {"[redis]\nmasters = a:1\n[lock]\nkey_prefix = a,b:\n", "lock.key_prefix: must not contain ','"},
    {"[redis]\nmasters = a:1\n[lock]\nmax_priority = 2147483648\n", "lock.max_priority: out of range"},
    {"[redis]\nmasters = a:1\n[lock]\nmax_priority = -1\n", "lock.max_priority"},
};

START_TEST(bad_file)
{
    ck_assert_int_eq(load(bad_files[_i].text), -1);
    ck_assert_msg(strstr(err, bad_files[_i].want) != NULL, "got '%s', want '%s'", err, bad_files[_i].want);
}
END_TEST

START_TEST(bounds_inclusive)
{
    ck_assert_int_eq(load("[redis]\nmasters = a:1\n[lock]\nretry_count = 0\n"), 0);
    config_free(&cfg);
    ck_assert_int_eq(load("[redis]\nmasters = a:1\n[lock]\nretry_count = 1000\n"), 0);
    config_free(&cfg);
    ck_assert_int_eq(load("[redis]\nmasters = a:1\n[lock]\ndrift_factor = 0.5\n"), 0);
    config_free(&cfg);
}
END_TEST

START_TEST(long_master_line)
{
    char text[4096] = "[redis]\nmasters = ";
    for (int i = 0; i < 40; i++) {
        char m[64];
        snprintf(m, sizeof m, "%sredis-master-%02d.example.internal:%d", i ? ", " : "", i, 7000 + i);
        strcat(text, m);
    }
    strcat(text, "\n");
    ck_assert_uint_gt(strlen(text), 1000);
    ck_assert_msg(load(text) == 0, "%s", err);
    ck_assert_uint_eq(cfg.nmasters, 40);
    ck_assert_int_eq(cfg.masters[39].port, 7039);
    config_free(&cfg);
}
END_TEST

START_TEST(hostport)
{
    char *h;
    int p;
    ck_assert_int_eq(config_parse_hostport("127.0.0.1:80", &h, &p), 0);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(p, 80);
    free(h);
    ck_assert_int_eq(config_parse_hostport("[::1]:6379", &h, &p), 0);
    ck_assert_str_eq(h, "::1");
    free(h);
    ck_assert_int_eq(config_parse_hostport("::1:6379", &h, &p), -1);
    ck_assert_int_eq(config_parse_hostport(":6379", &h, &p), -1);
    ck_assert_int_eq(config_parse_hostport("host:", &h, &p), -1);
    ck_assert_int_eq(config_parse_hostport("host:+1", &h, &p), -1);
}
END_TEST

/* The same master under two names would vote twice: refused (each name is
 * resolved; only loopback names and numeric addresses here, no DNS). */
START_TEST(masters_aliases_refused)
{
    static const char *const same[] = {
        "127.0.0.1:7301, 127.1:7301, 127.0.0.1:7302",
        "localhost:7301, 127.0.0.1:7301",
        "127.0.0.1:7302, 127.0.0.1:7301, redis://u:p@2130706433:7301",
        "[::ffff:127.0.0.1]:7301, 127.0.0.1:7301",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[redis]\nmasters = %s\n", same[i]);
        ck_assert_msg(load(text) == 0, "%s", err); /* parsing alone compares strings */
        err[0] = '\0';
        ck_assert_msg(config_check_masters_distinct(&cfg, err, sizeof err) == -1, "accepted: %s", same[i]);
        ck_assert_msg(strstr(err, "redis.masters: entries ") != NULL && strstr(err, "127.0.0.1:7301") != NULL,
                      "%s: %s", same[i], err);
        config_free(&cfg);
    }
    static const char *const distinct[] = {
        "127.0.0.1:7301, 127.0.0.1:7302, 127.0.0.2:7301", "localhost:7301, 127.0.0.1:7302",
        "127.0.0.1:7301", /* one master: nothing to compare */
    };
    for (size_t i = 0; i < sizeof distinct / sizeof distinct[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[redis]\nmasters = %s\n", distinct[i]);
        ck_assert_msg(load(text) == 0, "%s", err);
        ck_assert_msg(config_check_masters_distinct(&cfg, err, sizeof err) == 0, "%s: %s", distinct[i], err);
        config_free(&cfg);
    }
}
END_TEST

/* Every key in the table is documented, in its section, in the example. */
START_TEST(every_key_documented)
{
    const char *dir = getenv("REDLOCKD_SRCDIR") ? getenv("REDLOCKD_SRCDIR") : ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/conf/redlockd.ini", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; config_key_name(i) != NULL; i++) {
        char name[64], section[80], want[80];
        snprintf(name, sizeof name, "%s", config_key_name(i));
        char *dot = strchr(name, '.');
        *dot = '\0';
        snprintf(section, sizeof section, "\n[%s]", name);
        const char *sec = strstr(text, section);
        ck_assert_msg(sec != NULL, "section [%s] missing from %s", name, path);
        const char *next = strstr(sec + 1, "\n[");
        snprintf(want, sizeof want, "\n%s =", dot + 1);
        const char *at = strstr(sec, want);
        ck_assert_msg(at != NULL && (next == NULL || at < next), "%s.%s is not documented in %s", name, dot + 1,
                      path);
    }
    /* And the example itself loads. */
    ck_assert_msg(config_load(path, &cfg, err, sizeof err) == 0, "%s", err);
    config_free(&cfg);
}
END_TEST

/* Read a source file (relative to REDLOCKD_SRCDIR or .) into a static buffer. */
static const char *read_source(const char *rel)
{
    static char text[131072];
    const char *dir = getenv("REDLOCKD_SRCDIR") ? getenv("REDLOCKD_SRCDIR") : ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n = fread(text, 1, sizeof text - 1, f);
    ck_assert_msg(feof(f), "%s is larger than the test's buffer", path);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Split the i-th key's "section.name" into its two parts. */
static void key_parts(size_t i, char *section, size_t slen, char *name, size_t nlen)
{
    const char *full = config_key_name(i);
    const char *dot = strchr(full, '.');
    snprintf(section, slen, "%.*s", (int)(dot - full), full);
    snprintf(name, nlen, "%s", dot + 1);
}

/* The example ini marks a key "; [reload]" at the start of the comment block
 * above it exactly when the table says a reload applies it. */
START_TEST(reload_markers_match_table)
{
    const char *text = read_source("conf/redlockd.ini");
    for (size_t i = 0; config_key_name(i) != NULL; i++) {
        char section[32], name[64], want[80];
        key_parts(i, section, sizeof section, name, sizeof name);
        snprintf(want, sizeof want, "\n[%s]", section);
        const char *sec = strstr(text, want);
        ck_assert_msg(sec != NULL, "no [%s] in conf/redlockd.ini", section);
        snprintf(want, sizeof want, "\n%s =", name);
        const char *at = strstr(sec, want);
        ck_assert_msg(at != NULL, "%s not in conf/redlockd.ini", config_key_name(i));
        /* Walk back over the comment lines right above the key. */
        const char *block = at + 1;
        while (block > text) {
            const char *prev = block - 1; /* the '\n' ending the line above */
            const char *start = prev;
            while (start > text && start[-1] != '\n') start--;
            if (*start != ';') break;
            block = start;
        }
        bool marked = strncmp(block, "; [reload]", 10) == 0;
        ck_assert_msg(marked == config_key_reloadable(i),
                      "%s: the table says %s, conf/redlockd.ini %s a [reload] marker", config_key_name(i),
                      config_key_reloadable(i) ? "reloadable" : "restart only", marked ? "has" : "lacks");
    }
}
END_TEST

/* The man page says "(restart)" (or "only on restart") in a key's entry
 * exactly when the table says a reload does not apply it. */
START_TEST(man_restart_matches_table)
{
    const char *text = read_source("man/redlockd.ini.5");
    for (size_t i = 0; config_key_name(i) != NULL; i++) {
        char section[32], name[64], want[96];
        key_parts(i, section, sizeof section, name, sizeof name);
        snprintf(want, sizeof want, "\n.SH \"[%s] SECTION\"", section);
        const char *sec = strstr(text, want);
        ck_assert_msg(sec != NULL, "no [%s] section in man/redlockd.ini.5", section);
        snprintf(want, sizeof want, "\n.BR %s \" = \"", name);
        const char *at = strstr(sec, want);
        const char *sec_end = strstr(sec + 1, "\n.SH ");
        ck_assert_msg(at != NULL && (sec_end == NULL || at < sec_end), "%s not in man/redlockd.ini.5",
                      config_key_name(i));
        const char *end = strstr(at + 1, "\n.TP");
        if (end == NULL || (sec_end != NULL && sec_end < end)) end = sec_end;
        if (end == NULL) end = at + strlen(at);
        char entry[4096];
        snprintf(entry, sizeof entry, "%.*s", (int)(end - at), at);
        bool restart = strstr(entry, "(restart)") != NULL || strstr(entry, "only on restart") != NULL;
        ck_assert_msg(restart == !config_key_reloadable(i), "%s: the table says %s, the man page %s",
                      config_key_name(i), config_key_reloadable(i) ? "reloadable" : "restart only",
                      restart ? "says restart" : "does not say (restart)");
    }
}
END_TEST

/* A reload keeps the running value of every restart-only key, names each
 * one that changed, and touches no reloadable key. */
static char changed_keys[512];

static void note_changed(const char *key, void *arg)
{
    (void)arg;
    strncat(changed_keys, key, sizeof changed_keys - strlen(changed_keys) - 2);
    strcat(changed_keys, " ");
}

START_TEST(keep_restart_only)
{
    struct config cur, next;
    ck_assert_msg(config_load_string("[redis]\nmasters = 127.0.0.1:1\n[metrics]\nlisten = 127.0.0.1:9\n", "cur",
                                     &cur, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(config_load_string("[server]\nlisten = 127.0.0.1:8\nmax_clients = 7\n[redis]\nmasters = "
                                     "127.0.0.1:2\n[log]\nsyslog = yes\nlevel = debug\n[metrics]\nlisten = \n"
                                     "timeout_ms = 200\n",
                                     "next", &next, err, sizeof err) == 0,
                  "%s", err);
    changed_keys[0] = '\0';
    ck_assert_uint_eq(config_keep_restart_only(&next, &cur, note_changed, NULL), 3);
    ck_assert_str_eq(changed_keys, "server.listen log.syslog metrics.listen ");
    ck_assert_str_eq(next.listen, "127.0.0.1:7379");
    ck_assert_str_eq(next.metrics_listen, "127.0.0.1:9");
    ck_assert(!next.log_syslog);
    /* Reloadable ones are the new file's. */
    ck_assert_uint_eq(next.max_clients, 7);
    ck_assert_int_eq(next.log_level, LOG_LEVEL_DEBUG);
    ck_assert_uint_eq(next.metrics_timeout_ms, 200);
    ck_assert_int_eq(next.masters[0].port, 2);
    /* The strings were swapped: cur, freed after a reload, holds next's. */
    ck_assert_str_eq(cur.listen, "127.0.0.1:8");
    config_free(&cur);
    config_free(&next);
}
END_TEST

/* ---- secret files (auth.c) ---- */

static char secret_path[256];

/* Write len bytes to a fresh file with mode; its path is secret_path. */
static void secret_file(const void *bytes, size_t len, mode_t mode)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(secret_path, sizeof secret_path, "%s/check_config_secret.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(secret_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_secret(enum auth_secret_kind kind, char *warn, size_t warnlen)
{
    char *secret = auth_read_secret(secret_path, kind, err, sizeof err, warn, warnlen);
    unlink(secret_path);
    return secret;
}

START_TEST(token_file_ok)
{
    char warn[256];
    secret_file("t0k3n-!~{}\r\nsecond line ignored\n", 32, 0600);
    char *t = read_secret(AUTH_SECRET_TOKEN, warn, sizeof warn);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_str_eq(t, "t0k3n-!~{}");
    ck_assert_str_eq(warn, "");
    auth_free_secret(t);
    /* No line ending at all. */
    secret_file("abc", 3, 0400);
    t = read_secret(AUTH_SECRET_TOKEN, warn, sizeof warn);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_str_eq(t, "abc");
    auth_free_secret(t);
}
END_TEST

/* Bytes no client can send in AUTH are refused, naming the file and offset. */
static const struct {
    const char *bytes;
    size_t len;
    const char *offset; /* expected in the message */
} bad_tokens[] = {
    {"has space\n", 10, "0x20 at offset 3"},
    {"tab\there\n", 9, "0x09 at offset 3"},
    {"ctl\001\n", 5, "0x01 at offset 3"},
    {"t\xc3\xb6ken\n", 7, "0xc3 at offset 1"},
    {"del\x7f\n", 5, "0x7f at offset 3"},
    {"abc\0def\n", 8, "0x00 at offset 3"}, /* a NUL used to cut the token to "abc" */
};

START_TEST(token_file_bad_byte)
{
    char warn[256];
    secret_file(bad_tokens[_i].bytes, bad_tokens[_i].len, 0600);
    char path[256];
    snprintf(path, sizeof path, "%s", secret_path);
    char *t = read_secret(AUTH_SECRET_TOKEN, warn, sizeof warn);
    ck_assert_msg(t == NULL, "token %d accepted as '%s'", _i, t ? t : "");
    ck_assert_msg(strstr(err, path) != NULL, "the file is not named: %s", err);
    ck_assert_msg(strstr(err, bad_tokens[_i].offset) != NULL, "want '%s' in: %s", bad_tokens[_i].offset, err);
}
END_TEST

START_TEST(password_file_bytes)
{
    char warn[256];
    /* A master's password may hold spaces and UTF-8, not a NUL. */
    secret_file("pass w\xc3\xb6rd\n", 12, 0600);
    char *p = read_secret(AUTH_SECRET_PASSWORD, warn, sizeof warn);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_str_eq(p, "pass w\xc3\xb6rd");
    auth_free_secret(p);
    secret_file("pa\0ss\n", 6, 0600);
    p = read_secret(AUTH_SECRET_PASSWORD, warn, sizeof warn);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err, "NUL byte at offset 2") != NULL, "%s", err);
    /* Empty, and too long. */
    secret_file("\nx\n", 3, 0600);
    ck_assert_ptr_null(read_secret(AUTH_SECRET_TOKEN, warn, sizeof warn));
    static char longer[AUTH_SECRET_MAX + 2];
    memset(longer, 'a', sizeof longer);
    secret_file(longer, AUTH_SECRET_MAX + 1, 0600);
    ck_assert_ptr_null(read_secret(AUTH_SECRET_TOKEN, warn, sizeof warn));
    secret_file(longer, AUTH_SECRET_MAX, 0600);
    p = read_secret(AUTH_SECRET_TOKEN, warn, sizeof warn);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_uint_eq(strlen(p), AUTH_SECRET_MAX);
    auth_free_secret(p);
}
END_TEST

/* A secret readable by the group or everyone is loaded with a warning. */
START_TEST(secret_file_permissions)
{
    static const struct {
        mode_t mode;
        const char *want;
    } cases[] = {
        {0600, NULL}, {0400, NULL}, {0640, "its group"}, {0604, "everyone"}, {0644, "everyone"}, {0620, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char warn[256];
        secret_file("tok\n", 4, cases[i].mode);
        char *t = read_secret(i % 2 ? AUTH_SECRET_PASSWORD : AUTH_SECRET_TOKEN, warn, sizeof warn);
        ck_assert_msg(t != NULL, "%s", err);
        auth_free_secret(t);
        if (cases[i].want == NULL) {
            ck_assert_msg(warn[0] == '\0', "mode %04o: warned '%s'", (unsigned)cases[i].mode, warn);
        } else {
            ck_assert_msg(strstr(warn, cases[i].want) != NULL, "mode %04o: warning '%s'",
                          (unsigned)cases[i].mode, warn);
            ck_assert_msg(strstr(warn, "readable") != NULL, "%s", warn);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, defaults_need_masters);
    tcase_add_test(tc, full_file);
    tcase_add_loop_test(tc, bad_file, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(tc, bounds_inclusive);
    tcase_add_test(tc, long_master_line);
    tcase_add_test(tc, hostport);
    tcase_add_test(tc, masters_aliases_refused);
    tcase_add_test(tc, every_key_documented);
    tcase_add_test(tc, reload_markers_match_table);
    tcase_add_test(tc, man_restart_matches_table);
    tcase_add_test(tc, keep_restart_only);
    tcase_add_test(tc, token_file_ok);
    tcase_add_loop_test(tc, token_file_bad_byte, 0, (int)(sizeof bad_tokens / sizeof bad_tokens[0]));
    tcase_add_test(tc, password_file_bytes);
    tcase_add_test(tc, secret_file_permissions);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
