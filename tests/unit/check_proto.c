/*
 * check_proto.c - unit tests for protocol/proto.c: framing, request
 * parsing, reply formatting and reply parsing.
 *
 * Request lines are copied into heap buffers of exactly their length, so
 * a sanitizer or valgrind run catches any read past len.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* ---- Helpers -------------------------------------------------------------- */

#define RES_CAP 4 /* resources[] capacity used by parse(): a 5th is LIMIT */

static struct proto_request req;
static struct proto_slice res[RES_CAP];
static char errbuf[128];
static char *line_copy; /* the current parsed line, exactly len bytes */

static void teardown(void)
{
    free(line_copy);
    line_copy = NULL;
}

/* Parse len bytes of line from an exact-size heap copy. */
static enum proto_err parse_n(const char *line, size_t len)
{
    teardown();
    line_copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(line_copy);
    memcpy(line_copy, line, len);
    return proto_parse_request(line_copy, len, &req, res, RES_CAP, errbuf, sizeof errbuf);
}

static enum proto_err parse(const char *line)
{
    return parse_n(line, strlen(line));
}

static bool slice_is(struct proto_slice s, const char *str)
{
    return s.len == strlen(str) && memcmp(s.ptr, str, s.len) == 0;
}

/* prefix + n copies of c + suffix (static storage). */
static const char *line_with(const char *prefix, char c, size_t n, const char *suffix)
{
    static char buf[2048];
    size_t plen = strlen(prefix), slen = strlen(suffix);
    ck_assert_uint_lt(plen + n + slen, sizeof buf);
    memcpy(buf, prefix, plen);
    memset(buf + plen, c, n);
    memcpy(buf + plen + n, suffix, slen + 1);
    return buf;
}

#define ID "0123456789abcdef0123456789abcdef"

/* ---- Framing -------------------------------------------------------------- */

static enum proto_frame_status frame(const char *buf, size_t len, size_t max, size_t *ll, size_t *used)
{
    *ll = *used = (size_t)-1;
    return proto_frame(buf, len, max, ll, used);
}

START_TEST(frame_lf_and_crlf)
{
    size_t ll, used;
    ck_assert_int_eq(frame("PING\n", 5, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 4);
    ck_assert_uint_eq(used, 5);
    ck_assert_int_eq(frame("PING\r\n", 6, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 4);
    ck_assert_uint_eq(used, 6);
}
END_TEST

START_TEST(frame_split_mid_line)
{
    size_t ll, used;
    ck_assert_int_eq(frame("", 0, 100, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("PI", 2, 100, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("PING\r", 5, 100, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("PING\r\nQU", 8, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 4);
    ck_assert_uint_eq(used, 6);
    ck_assert_int_eq(frame("QU", 2, 100, &ll, &used), PROTO_FRAME_NEED_MORE);
}
END_TEST

START_TEST(frame_two_lines_in_one_buffer)
{
    const char *buf = "A\nBC\r\n";
    size_t ll, used;
    ck_assert_int_eq(frame(buf, 6, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 1);
    ck_assert_uint_eq(used, 2);
    ck_assert_int_eq(frame(buf + 2, 4, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 2);
    ck_assert_uint_eq(used, 4);
}
END_TEST

START_TEST(frame_empty_lines)
{
    size_t ll, used;
    ck_assert_int_eq(frame("\n", 1, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 0);
    ck_assert_uint_eq(used, 1);
    ck_assert_int_eq(frame("\r\n", 2, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 0);
    ck_assert_uint_eq(used, 2);
    ck_assert_int_eq(frame("\r", 1, 100, &ll, &used), PROTO_FRAME_NEED_MORE);
}
END_TEST

/* A CR not followed by LF and a NUL byte are line content. */
START_TEST(frame_odd_bytes_are_content)
{
    size_t ll, used;
    ck_assert_int_eq(frame("a\rb\n", 4, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 3);
    ck_assert_int_eq(frame("a\0b\r\n", 5, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 3);
    ck_assert_int_eq(frame("ab\r\r\n", 5, 100, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 3);
    ck_assert_uint_eq(used, 5);
}
END_TEST

START_TEST(frame_exactly_max_line)
{
    size_t ll, used;
    ck_assert_int_eq(frame("12345678", 8, 8, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("12345678\r", 9, 8, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("12345678\n", 9, 8, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 8);
    ck_assert_uint_eq(used, 9);
    ck_assert_int_eq(frame("12345678\r\n", 10, 8, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 8);
    ck_assert_uint_eq(used, 10);
    /* The same with the next request already buffered behind it. */
    ck_assert_int_eq(frame("12345678\r\nPING\r\n", 16, 8, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 8);
    ck_assert_uint_eq(used, 10);
}
END_TEST

START_TEST(frame_oversized_with_terminator)
{
    size_t ll, used;
    ck_assert_int_eq(frame("123456789\n", 10, 8, &ll, &used), PROTO_FRAME_TOOLONG);
    ck_assert_int_eq(frame("123456789\r\n", 11, 8, &ll, &used), PROTO_FRAME_TOOLONG);
    ck_assert_int_eq(frame("12345678\r\r\n", 11, 8, &ll, &used), PROTO_FRAME_TOOLONG);
    /* Outputs are untouched on TOOLONG. */
    ck_assert_uint_eq(ll, (size_t)-1);
    ck_assert_uint_eq(used, (size_t)-1);
}
END_TEST

START_TEST(frame_oversized_without_terminator)
{
    size_t ll, used;
    ck_assert_int_eq(frame("123456789", 9, 8, &ll, &used), PROTO_FRAME_TOOLONG);
    ck_assert_int_eq(frame("12345678\rx", 10, 8, &ll, &used), PROTO_FRAME_TOOLONG);
    ck_assert_int_eq(frame("12345678\r\r", 10, 8, &ll, &used), PROTO_FRAME_TOOLONG);

    /* A megabyte without a newline is refused, at the default limit. */
    size_t big = 1 << 20;
    char *buf = malloc(big);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'x', big);
    ck_assert_int_eq(frame(buf, big, 65536, &ll, &used), PROTO_FRAME_TOOLONG);
    ck_assert_int_eq(frame(buf, 65536, 65536, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame(buf, 65537, 65536, &ll, &used), PROTO_FRAME_TOOLONG);
    buf[65536] = '\n';
    ck_assert_int_eq(frame(buf, big, 65536, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 65536);
    free(buf);
}
END_TEST

START_TEST(frame_extreme_limits)
{
    size_t ll, used;
    ck_assert_int_eq(frame("\n", 1, 0, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_uint_eq(ll, 0);
    ck_assert_int_eq(frame("\r", 1, 0, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("a", 1, 0, &ll, &used), PROTO_FRAME_TOOLONG);
    ck_assert_int_eq(frame("abc", 3, SIZE_MAX, &ll, &used), PROTO_FRAME_NEED_MORE);
    ck_assert_int_eq(frame("abc\n", 4, SIZE_MAX, &ll, &used), PROTO_FRAME_LINE);
    ck_assert_int_eq(frame("abc\n", 4, SIZE_MAX - 1, &ll, &used), PROTO_FRAME_LINE);
}
END_TEST

/*
 * Feed a stream to a connection-style buffer in chunks of `chunk` bytes,
 * extracting lines as they complete; returns the lines joined by '|'.
 */
static void feed_stream(const char *stream, size_t chunk, char *out, size_t outcap)
{
    char buf[256];
    size_t have = 0, total = strlen(stream), fed = 0;
    out[0] = '\0';
    while (fed < total) {
        size_t n = total - fed < chunk ? total - fed : chunk;
        memcpy(buf + have, stream + fed, n);
        have += n;
        fed += n;
        size_t ll, used;
        enum proto_frame_status st;
        while ((st = proto_frame(buf, have, 32, &ll, &used)) == PROTO_FRAME_LINE) {
            strncat(out, buf, ll);
            strncat(out, "|", outcap - strlen(out) - 1);
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        ck_assert_int_eq(st, PROTO_FRAME_NEED_MORE);
    }
    ck_assert_uint_eq(have, 0);
}

START_TEST(frame_byte_by_byte_and_chunks)
{
    const char *stream = "PING\r\nACQUIRE a 100\n\n\r\nQUIT\r\nRELEASE x\n";
    const char *want = "PING|ACQUIRE a 100|||QUIT|RELEASE x|";
    char out[256];
    for (size_t chunk = 1; chunk <= strlen(stream); chunk++) {
        feed_stream(stream, chunk, out, sizeof out);
        ck_assert_msg(strcmp(out, want) == 0, "chunk %zu: got '%s'", chunk, out);
    }
}
END_TEST

/* ---- Request parsing: verbs --------------------------------------------- */

START_TEST(req_simple_verbs)
{
    ck_assert_int_eq(parse("PING"), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_PING);
    ck_assert_int_eq(parse("QUIT"), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_QUIT);
    ck_assert_int_eq(parse("INFO"), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_INFO);
    ck_assert_int_eq(parse("PING extra"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("QUIT now"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("INFO all"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("LOCKS"), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_LOCKS);
    ck_assert_int_eq(parse("locks"), PROTO_OK);
    ck_assert_int_eq(parse("LOCKS all"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_case_insensitive)
{
    static const char *lines[] = {"ping",        "Ping", "pInG", "acquire a", "Acquire a", "extend " ID,
                                  "release " ID, "quit", "info", "inspect a", "auth x"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(parse(lines[i]) == PROTO_OK, "'%s': %s", lines[i], errbuf);
    ck_assert_int_eq(parse("acquire a autoextend Detach wait 5 MaxHold 6 priority 7 owner o"), PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_AUTOEXTEND | PROTO_OPT_DETACH | PROTO_OPT_WAIT | PROTO_OPT_MAXHOLD |
                                    PROTO_OPT_PRIORITY | PROTO_OPT_OWNER);
}
END_TEST

START_TEST(req_unknown_and_empty)
{
    ck_assert_int_eq(parse("FOO bar"), PROTO_ERR_BADREQ);
    ck_assert_ptr_nonnull(strstr(errbuf, "FOO"));
    ck_assert_int_eq(parse(""), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("   \t  "), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("PINGX"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("PIN"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse_n("PING\0", 5), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse_n("PING\r", 5), PROTO_ERR_BADREQ);
    /* Only len bytes count. */
    ck_assert_int_eq(parse_n("PING", 2), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse_n("PING extra", 4), PROTO_OK);
}
END_TEST

START_TEST(req_spaces_and_tabs)
{
    ck_assert_int_eq(parse("  ACQUIRE   a,b   100   WAIT  5   "), PROTO_OK);
    ck_assert_uint_eq(req.nresources, 2);
    ck_assert_uint_eq(req.ttl_ms, 100);
    ck_assert_uint_eq(req.wait_ms, 5);
    ck_assert_int_eq(parse("ACQUIRE\ta\t100\tWAIT\t5\t"), PROTO_OK);
    ck_assert(slice_is(req.resources[0], "a"));
    ck_assert_uint_eq(req.ttl_ms, 100);
    ck_assert_uint_eq(req.wait_ms, 5);
    ck_assert_int_eq(parse("PING \t "), PROTO_OK);
    ck_assert_int_eq(parse("RELEASE \t" ID "  "), PROTO_OK);
}
END_TEST

/* ---- Request parsing: ACQUIRE --------------------------------------------- */

START_TEST(req_acquire_minimal)
{
    ck_assert_int_eq(parse("ACQUIRE orders:42"), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_ACQUIRE);
    ck_assert_uint_eq(req.opts, 0);
    ck_assert_uint_eq(req.nresources, 1);
    ck_assert_ptr_eq(req.resources, res);
    ck_assert(slice_is(res[0], "orders:42"));
    /* Slices point into the line itself. */
    ck_assert_ptr_eq(res[0].ptr, line_copy + 8);
    ck_assert_int_eq(parse("ACQUIRE"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE   "), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_acquire_ttl)
{
    ck_assert_int_eq(parse("ACQUIRE a,b,c 5000"), PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_TTL);
    ck_assert_uint_eq(req.ttl_ms, 5000);
    ck_assert_uint_eq(req.nresources, 3);
    ck_assert(slice_is(res[2], "c"));
    ck_assert_int_eq(parse("ACQUIRE a 2147483647"), PROTO_OK);
    ck_assert_uint_eq(req.ttl_ms, 2147483647u);
    ck_assert_int_eq(parse("ACQUIRE a 0001"), PROTO_OK);
    ck_assert_uint_eq(req.ttl_ms, 1);
    /* ttl is read only from len bytes. */
    ck_assert_int_eq(parse_n("ACQUIRE a 123", 11), PROTO_OK);
    ck_assert_uint_eq(req.ttl_ms, 1);
}
END_TEST

START_TEST(req_acquire_all_options)
{
    ck_assert_int_eq(parse("ACQUIRE a,b 100 WAIT 200 AUTOEXTEND DETACH MAXHOLD 300 PRIORITY 4 OWNER me"),
                     PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_TTL | PROTO_OPT_WAIT | PROTO_OPT_AUTOEXTEND | PROTO_OPT_DETACH |
                                    PROTO_OPT_MAXHOLD | PROTO_OPT_PRIORITY | PROTO_OPT_OWNER);
    ck_assert_uint_eq(req.ttl_ms, 100);
    ck_assert_uint_eq(req.wait_ms, 200);
    ck_assert_uint_eq(req.maxhold_ms, 300);
    ck_assert_uint_eq(req.priority, 4);
    ck_assert(slice_is(req.owner, "me"));
}
END_TEST

START_TEST(req_acquire_options_any_order)
{
    ck_assert_int_eq(parse("ACQUIRE a OWNER x PRIORITY 0 MAXHOLD 0 WAIT 0 AUTOEXTEND"), PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_OWNER | PROTO_OPT_PRIORITY | PROTO_OPT_MAXHOLD | PROTO_OPT_WAIT |
                                    PROTO_OPT_AUTOEXTEND);
    ck_assert_uint_eq(req.wait_ms, 0);
    ck_assert_uint_eq(req.ttl_ms, 0);
    ck_assert_int_eq(parse("ACQUIRE a WAIT 2147483647 PRIORITY 2147483647"), PROTO_OK);
    ck_assert_uint_eq(req.wait_ms, 2147483647u);
    ck_assert_uint_eq(req.priority, 2147483647u);
    ck_assert_int_eq(parse("ACQUIRE a DETACH"), PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_DETACH);
}
END_TEST

/* The parser only checks syntax: AUTOEXTEND with DETACH is the daemon's to refuse. */
START_TEST(req_acquire_autoextend_detach_parses)
{
    ck_assert_int_eq(parse("ACQUIRE a AUTOEXTEND DETACH"), PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_AUTOEXTEND | PROTO_OPT_DETACH);
}
END_TEST

START_TEST(req_acquire_repeated_option)
{
    ck_assert_int_eq(parse("ACQUIRE a WAIT 1 WAIT 2"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a DETACH detach"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a AUTOEXTEND 100 AUTOEXTEND"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a OWNER x OWNER x"), PROTO_ERR_BADREQ);
    ck_assert_ptr_nonnull(strstr(errbuf, "repeated"));
}
END_TEST

START_TEST(req_acquire_unknown_option)
{
    ck_assert_int_eq(parse("ACQUIRE a FOREVER"), PROTO_ERR_BADREQ);
    ck_assert_ptr_nonnull(strstr(errbuf, "FOREVER"));
    ck_assert_int_eq(parse("ACQUIRE a 100 WAITX 5"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a TTL 100"), PROTO_ERR_BADREQ);
    /* The ttl is only accepted right after the resources. */
    ck_assert_int_eq(parse("ACQUIRE a WAIT 5 100"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a 100 200"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a AUTOEXTEND 100"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_acquire_missing_option_value)
{
    ck_assert_int_eq(parse("ACQUIRE a WAIT"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a MAXHOLD   "), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a PRIORITY"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a OWNER"), PROTO_ERR_BADREQ);
    /* An option name is not a value. */
    ck_assert_int_eq(parse("ACQUIRE a WAIT DETACH"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_acquire_bad_ttl)
{
    static const char *bad[] = {"-1", "1x",  "99999999999", "0",   "2147483648", "+5",
                                "00", "1.5", "0x10",        "1e3", "4294967297"};
    char line[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "ACQUIRE a %s", bad[i]);
        ck_assert_msg(parse(line) == PROTO_ERR_BADREQ, "ttl '%s' accepted", bad[i]);
    }
    ck_assert_int_eq(parse("ACQUIRE a 0"), PROTO_ERR_BADREQ);
    ck_assert_ptr_nonnull(strstr(errbuf, "ttl"));
}
END_TEST

START_TEST(req_acquire_bad_option_numbers)
{
    static const char *opts[] = {"WAIT", "MAXHOLD", "PRIORITY"};
    static const char *bad[] = {"-1", "1x", "99999999999", "2147483648", "+1", "x", "1 0"};
    char line[64];
    for (size_t o = 0; o < sizeof opts / sizeof opts[0]; o++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            snprintf(line, sizeof line, "ACQUIRE a %s %s", opts[o], bad[i]);
            ck_assert_msg(parse(line) == PROTO_ERR_BADREQ, "'%s' accepted", line);
        }
        snprintf(line, sizeof line, "ACQUIRE a %s 0", opts[o]);
        ck_assert_msg(parse(line) == PROTO_OK, "'%s': %s", line, errbuf);
    }
}
END_TEST

START_TEST(req_acquire_empty_resource)
{
    ck_assert_int_eq(parse("ACQUIRE a,,b"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE ,a"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a,"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE ,"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE , a"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_acquire_duplicate_resource)
{
    ck_assert_int_eq(parse("ACQUIRE a,b,a"), PROTO_ERR_BADREQ);
    ck_assert_ptr_nonnull(strstr(errbuf, "duplicate"));
    ck_assert_int_eq(parse("ACQUIRE x,x"), PROTO_ERR_BADREQ);
    /* Names are case-sensitive, and prefixes are different names. */
    ck_assert_int_eq(parse("ACQUIRE a,A,ab,b"), PROTO_OK);
    ck_assert_uint_eq(req.nresources, 4);
}
END_TEST

START_TEST(req_acquire_resource_length)
{
    ck_assert_int_eq(parse(line_with("ACQUIRE ", 'r', 512, "")), PROTO_OK);
    ck_assert_uint_eq(res[0].len, 512);
    ck_assert_int_eq(parse(line_with("ACQUIRE a,", 'r', 512, ",b 100")), PROTO_OK);
    ck_assert_uint_eq(res[1].len, 512);
    ck_assert_int_eq(parse(line_with("ACQUIRE ", 'r', 513, "")), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse(line_with("ACQUIRE a,", 'r', 513, " 100")), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse(line_with("INSPECT ", 'r', 512, "")), PROTO_OK);
    ck_assert_int_eq(parse(line_with("INSPECT ", 'r', 513, "")), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_acquire_non_printable)
{
    ck_assert_int_eq(parse("ACQUIRE a\x01"
                           "b"),
                     PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse_n("ACQUIRE a\0b", 11), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse_n("ACQUIRE a\0", 10), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a\x7f"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE caf\xc3\xa9"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE \xff"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a\r"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a\n"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE ok,b\x1b[0m"), PROTO_ERR_BADREQ);
    /* The quoted token in the error text is sanitised. */
    ck_assert_ptr_null(strchr(errbuf, '\x1b'));
    /* Every printable byte but ',' is allowed. */
    ck_assert_int_eq(parse("ACQUIRE !\"#$%&'()*+-./0:;<=>?@[\\]^_`{|}~"), PROTO_OK);
}
END_TEST

START_TEST(req_acquire_too_many_resources)
{
    ck_assert_int_eq(parse("ACQUIRE a,b,c,d"), PROTO_OK);
    ck_assert_uint_eq(req.nresources, RES_CAP);
    ck_assert_int_eq(parse("ACQUIRE a,b,c,d,e"), PROTO_ERR_LIMIT);
    ck_assert_int_eq(parse("ACQUIRE a,b,c,d,e 100 WAIT 5"), PROTO_ERR_LIMIT);
    /* No write past the caller's array with a zero capacity. */
    ck_assert_int_eq(proto_parse_request("ACQUIRE a", 9, &req, NULL, 0, errbuf, sizeof errbuf),
                     PROTO_ERR_LIMIT);
}
END_TEST

START_TEST(req_owner)
{
    ck_assert_int_eq(parse(line_with("ACQUIRE a OWNER ", 'o', 128, "")), PROTO_OK);
    ck_assert_uint_eq(req.owner.len, 128);
    ck_assert_int_eq(parse(line_with("ACQUIRE a OWNER ", 'o', 129, "")), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a OWNER w\x01x"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("ACQUIRE a OWNER host-1:pid,42"), PROTO_OK);
    ck_assert(slice_is(req.owner, "host-1:pid,42"));
}
END_TEST

/* ---- Request parsing: other verbs ----------------------------------------- */

START_TEST(req_extend)
{
    ck_assert_int_eq(parse("EXTEND " ID), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_EXTEND);
    ck_assert(slice_is(req.lock_id, ID));
    ck_assert_uint_eq(req.opts, 0);
    ck_assert_int_eq(parse("EXTEND " ID " 5000"), PROTO_OK);
    ck_assert_uint_eq(req.opts, PROTO_OPT_TTL);
    ck_assert_uint_eq(req.ttl_ms, 5000);
    ck_assert_int_eq(parse("EXTEND"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("EXTEND " ID " 0"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("EXTEND " ID " -1"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("EXTEND " ID " 99999999999"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("EXTEND " ID " 100 200"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("EXTEND " ID " WAIT 5"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_release)
{
    ck_assert_int_eq(parse("RELEASE " ID), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_RELEASE);
    ck_assert(slice_is(req.lock_id, ID));
    ck_assert_int_eq(parse("RELEASE"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("RELEASE " ID " 100"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_malformed_lock_id)
{
    static const char *bad[] = {
        "0123456789ABCDEF0123456789abcdef",  /* upper case */
        "0123456789abcdef0123456789abcde",   /* 31 */
        "0123456789abcdef0123456789abcdef0", /* 33 */
        "0123456789abcdeg0123456789abcdef",  /* not hex */
        "x",
    };
    char line[80];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "RELEASE %s", bad[i]);
        ck_assert_msg(parse(line) == PROTO_ERR_BADREQ, "'%s' accepted", line);
        snprintf(line, sizeof line, "EXTEND %s 100", bad[i]);
        ck_assert_msg(parse(line) == PROTO_ERR_BADREQ, "'%s' accepted", line);
    }
    ck_assert_int_eq(parse_n("RELEASE 0123456789abcdef\0"
                             "123456789abcdef",
                             40),
                     PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_valid_lock_id)
{
    ck_assert(proto_valid_lock_id(ID, 32));
    ck_assert(proto_valid_lock_id("ffffffffffffffffffffffffffffffff", 32));
    ck_assert(!proto_valid_lock_id(ID, 31));
    ck_assert(!proto_valid_lock_id("", 0));
    ck_assert(!proto_valid_lock_id("0123456789abcdef0123456789abcdeF", 32));
    ck_assert(!proto_valid_lock_id("0123456789abcdef0123456789abcde ", 32));
}
END_TEST

START_TEST(req_auth)
{
    ck_assert_int_eq(parse("AUTH s3cr3t/+="), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_AUTH);
    ck_assert(slice_is(req.token, "s3cr3t/+="));
    ck_assert_int_eq(parse("AUTH"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("AUTH a b"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("AUTH a\x01"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_inspect)
{
    ck_assert_int_eq(parse("INSPECT orders:42"), PROTO_OK);
    ck_assert_int_eq(req.verb, PROTO_VERB_INSPECT);
    ck_assert_uint_eq(req.nresources, 1);
    ck_assert(slice_is(res[0], "orders:42"));
    ck_assert_int_eq(parse("INSPECT"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("INSPECT a,b"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("INSPECT a b"), PROTO_ERR_BADREQ);
    ck_assert_int_eq(parse("INSPECT a\x02"), PROTO_ERR_BADREQ);
}
END_TEST

START_TEST(req_errbuf_always_terminated)
{
    char small[8];
    memset(small, 'z', sizeof small);
    ck_assert_int_eq(proto_parse_request("BOGUS", 5, &req, res, RES_CAP, small, sizeof small),
                     PROTO_ERR_BADREQ);
    ck_assert_uint_lt(strlen(small), sizeof small);
    ck_assert_int_eq(proto_parse_request("BOGUS", 5, &req, res, RES_CAP, NULL, 0), PROTO_ERR_BADREQ);
    memset(small, 'z', sizeof small);
    ck_assert_int_eq(proto_parse_request("PING", 4, &req, res, RES_CAP, small, sizeof small), PROTO_OK);
    ck_assert_str_eq(small, "");
}
END_TEST

/* ---- Numbers and error names ---------------------------------------------- */

START_TEST(num_parse_u64)
{
    uint64_t v = 7;
    ck_assert(proto_parse_u64("0", 1, 10, &v));
    ck_assert_uint_eq(v, 0);
    ck_assert(proto_parse_u64("10", 2, 10, &v));
    ck_assert_uint_eq(v, 10);
    ck_assert(!proto_parse_u64("11", 2, 10, &v));
    ck_assert(proto_parse_u64("18446744073709551615", 20, UINT64_MAX, &v));
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert(!proto_parse_u64("18446744073709551616", 20, UINT64_MAX, &v));
    ck_assert(!proto_parse_u64("99999999999999999999999", 23, UINT64_MAX, &v));
    ck_assert(proto_parse_u64("2147483647", 10, PROTO_MAX_MS, &v));
    ck_assert(!proto_parse_u64("2147483648", 10, PROTO_MAX_MS, &v));
    v = 7;
    ck_assert(!proto_parse_u64("", 0, 10, &v));
    ck_assert(!proto_parse_u64(" 1", 2, 10, &v));
    ck_assert(!proto_parse_u64("1 ", 2, 10, &v));
    ck_assert(!proto_parse_u64("-1", 2, 10, &v));
    ck_assert_uint_eq(v, 7); /* untouched on failure */
    ck_assert(proto_parse_u64("123", 1, 10, &v));
    ck_assert_uint_eq(v, 1);
}
END_TEST

START_TEST(err_names)
{
    for (int e = PROTO_ERR_BUSY; e < PROTO_ERR__COUNT; e++) {
        const char *name = proto_err_name((enum proto_err)e);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_eq(proto_err_from_name(name, strlen(name)), e);
    }
    ck_assert_ptr_null(proto_err_name(PROTO_OK));
    ck_assert_ptr_null(proto_err_name(PROTO_ERR__COUNT));
    ck_assert_str_eq(proto_err_name(PROTO_ERR_NOQUORUM), "NOQUORUM");
    ck_assert_int_eq(proto_err_from_name("BUS", 3), PROTO_ERR__COUNT);
    ck_assert_int_eq(proto_err_from_name("BUSYX", 5), PROTO_ERR__COUNT);
    ck_assert_int_eq(proto_err_from_name("", 0), PROTO_ERR__COUNT);
    ck_assert_int_eq(proto_err_from_name("BUSY trailing", 4), PROTO_ERR_BUSY);
}
END_TEST

/* ---- Reply formatting ----------------------------------------------------- */

START_TEST(fmt_simple)
{
    char buf[64];
    ck_assert_uint_eq(proto_fmt_pong(buf, sizeof buf), 6);
    ck_assert_str_eq(buf, "PONG\r\n");
    ck_assert_uint_eq(proto_fmt_ok(buf, sizeof buf), 4);
    ck_assert_str_eq(buf, "OK\r\n");
    ck_assert_uint_eq(proto_fmt_event_lost(buf, sizeof buf, ID, "TAKEN"), 51);
    ck_assert_str_eq(buf, "EVENT LOST " ID " TAKEN\r\n");
}
END_TEST

START_TEST(fmt_put_u64)
{
    char buf[PROTO_U64_DIGITS + 1];
    static const struct {
        uint64_t v;
        const char *want;
    } cases[] = {
        {0, "0"}, {9, "9"}, {10, "10"}, {30000, "30000"}, {18446744073709551615ull, "18446744073709551615"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = proto_put_u64(buf, cases[i].v);
        buf[n] = '\0';
        ck_assert_str_eq(buf, cases[i].want);
    }
}
END_TEST

START_TEST(fmt_ok_lock)
{
    char buf[64];
    ck_assert_uint_eq(proto_fmt_ok_lock(buf, sizeof buf, ID, 9898, 0), 42);
    ck_assert_str_eq(buf, "OK " ID " 9898\r\n");
    proto_fmt_ok_lock(buf, sizeof buf, ID, 0, 18446744073709551615ull);
    ck_assert_str_eq(buf, "OK " ID " 0 18446744073709551615\r\n");
}
END_TEST

/* A deferred reply reformatted with the validity left when it is written. */
START_TEST(fmt_refmt_ok_lock)
{
    char buf[64];
    const char *two = "OK " ID " 9898\r\n", *three = "OK " ID " 9898 17\r\n";
    ck_assert_uint_eq(proto_refmt_ok_lock(buf, sizeof buf, two, strlen(two), 7000), 42);
    ck_assert_str_eq(buf, "OK " ID " 7000\r\n");
    ck_assert_uint_gt(proto_refmt_ok_lock(buf, sizeof buf, three, strlen(three), 0), 0);
    ck_assert_str_eq(buf, "OK " ID " 0 17\r\n");
    /* Anything else is not touched (0). */
    const char *bad[] = {"OK\r\n",          "PONG\r\n",          "OK " ID "\r\n",  "OK nothex 5\r\n",
                         "OK " ID " x\r\n", "OK " ID " 5 0\r\n", "OK " ID " 5 17", "ERR BUSY held\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(proto_refmt_ok_lock(buf, sizeof buf, bad[i], strlen(bad[i]), 1) == 0, "'%s'", bad[i]);
}
END_TEST

START_TEST(fmt_does_not_fit)
{
    char buf[64];
    ck_assert_uint_eq(proto_fmt_pong(buf, 6), 0); /* no room for the NUL */
    ck_assert_str_eq(buf, "");
    ck_assert_uint_eq(proto_fmt_pong(buf, 7), 6);
    ck_assert_uint_eq(proto_fmt_ok(buf, 0), 0);
    ck_assert_uint_eq(proto_fmt_ok(NULL, 0), 0);
    ck_assert_uint_eq(proto_fmt_ok_lock(buf, 42, ID, 9898, 0), 0);
    ck_assert_str_eq(buf, "");
    ck_assert_uint_eq(proto_fmt_ok_lock(buf, 43, ID, 9898, 0), 42);
    ck_assert_uint_eq(proto_fmt_event_lost(buf, 20, ID, "TAKEN"), 0);
    ck_assert_uint_eq(proto_fmt_err(buf, 12, PROTO_ERR_BADREQ, "x"), 0);
    ck_assert_str_eq(buf, "");
    ck_assert_uint_eq(proto_fmt_err(NULL, 0, PROTO_ERR_BADREQ, "x"), 0);
}
END_TEST

START_TEST(fmt_err)
{
    char buf[PROTO_REPLY_MAX];
    size_t n = proto_fmt_err(buf, sizeof buf, PROTO_ERR_BUSY, "held elsewhere (granted %d/%d)", 1, 3);
    ck_assert_str_eq(buf, "ERR BUSY held elsewhere (granted 1/3)\r\n");
    ck_assert_uint_eq(n, strlen(buf));
    proto_fmt_err(buf, sizeof buf, PROTO_ERR_NOTHELD, "%s", "");
    ck_assert_str_eq(buf, "ERR NOTHELD\r\n");
    /* An invalid code is reported as INTERNAL. */
    proto_fmt_err(buf, sizeof buf, PROTO_OK, "oops");
    ck_assert_str_eq(buf, "ERR INTERNAL oops\r\n");
    proto_fmt_err(buf, sizeof buf, PROTO_ERR__COUNT, "oops");
    ck_assert_str_eq(buf, "ERR INTERNAL oops\r\n");
}
END_TEST

START_TEST(fmt_err_strips_controls)
{
    char buf[128];
    size_t n = proto_fmt_err(buf, sizeof buf, PROTO_ERR_INTERNAL, "line1\r\nline2\n%s", "\x01tab\there\x7f\r");
    ck_assert_str_eq(buf, "ERR INTERNAL line1line2tabhere\r\n");
    ck_assert_uint_eq(n, strlen(buf));
    /* A text made only of control bytes leaves no trailing space. */
    proto_fmt_err(buf, sizeof buf, PROTO_ERR_LIMIT, "\r\n\r\n");
    ck_assert_str_eq(buf, "ERR LIMIT\r\n");
    /* Bytes of 0x80 and above are left alone. */
    proto_fmt_err(buf, sizeof buf, PROTO_ERR_BADREQ, "caf\xc3\xa9");
    ck_assert_str_eq(buf, "ERR BADREQ caf\xc3\xa9\r\n");
}
END_TEST

START_TEST(fmt_err_cut_to_fit)
{
    char buf[64];
    const char *longtext = line_with("", 't', 500, "");
    /* Every capacity from too small to plenty gives one well-formed line. */
    for (size_t cap = 0; cap <= sizeof buf; cap++) {
        memset(buf, 'z', sizeof buf);
        size_t n = proto_fmt_err(buf, cap, PROTO_ERR_BADREQ, "%s", longtext);
        if (cap < 13) {
            ck_assert_uint_eq(n, 0);
            continue;
        }
        ck_assert_uint_eq(n, cap < 15 ? 12 : cap - 1);
        ck_assert_uint_eq(strlen(buf), n);
        ck_assert_mem_eq(buf, "ERR BADREQ", 10);
        ck_assert_mem_eq(buf + n - 2, "\r\n", 2);
        ck_assert_ptr_null(memchr(buf, '\n', n - 1));
    }
    proto_fmt_err(buf, 15, PROTO_ERR_BADREQ, "xyz");
    ck_assert_str_eq(buf, "ERR BADREQ x\r\n");
    /* A CR/LF right at the cut is still removed. */
    proto_fmt_err(buf, 16, PROTO_ERR_BADREQ, "x\r\nyz");
    ck_assert_str_eq(buf, "ERR BADREQ x\r\n");
}
END_TEST

/* ---- Reply parsing -------------------------------------------------------- */

static struct proto_reply reply;
static char reply_line[512];

static void parse_reply(const char *line)
{
    snprintf(reply_line, sizeof reply_line, "%s", line);
    proto_parse_reply(reply_line, &reply);
}

START_TEST(reply_ok)
{
    parse_reply("OK");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_OK);
    ck_assert_uint_eq(reply.ntokens, 0);
    ck_assert_str_eq(reply.text, "");
    parse_reply("OK\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_OK);
    ck_assert_uint_eq(reply.ntokens, 0);
    parse_reply("OK " ID " 9898\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_OK);
    ck_assert_uint_eq(reply.ntokens, 2);
    ck_assert_str_eq(reply.tokens[0], ID);
    ck_assert_str_eq(reply.tokens[1], "9898");
    parse_reply("PONG\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_PONG);
}
END_TEST

START_TEST(reply_extra_tokens_ignored)
{
    parse_reply("OK " ID " 9898 17 future  \tthings");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_OK);
    ck_assert_uint_eq(reply.ntokens, 5);
    ck_assert_str_eq(reply.tokens[2], "17");
    ck_assert_str_eq(reply.tokens[4], "things");

    char line[256] = "OK";
    for (int i = 0; i < 40; i++) strcat(line, " t");
    parse_reply(line);
    ck_assert_int_eq(reply.kind, PROTO_REPLY_OK);
    ck_assert_uint_eq(reply.ntokens, PROTO_MAX_REPLY_TOKENS);
    ck_assert_str_eq(reply.tokens[PROTO_MAX_REPLY_TOKENS - 1], "t");
    parse_reply("PONG extra");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_PONG);
}
END_TEST

START_TEST(reply_err)
{
    parse_reply("ERR BUSY held elsewhere (granted 1/3)\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_ERR);
    ck_assert_int_eq(reply.err, PROTO_ERR_BUSY);
    ck_assert_str_eq(reply.text, "held elsewhere (granted 1/3)");
    parse_reply("ERR NOQUORUM   1/3 masters answered  ");
    ck_assert_int_eq(reply.err, PROTO_ERR_NOQUORUM);
    ck_assert_str_eq(reply.text, "1/3 masters answered");
    parse_reply("ERR NOTHELD\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_ERR);
    ck_assert_int_eq(reply.err, PROTO_ERR_NOTHELD);
    ck_assert_str_eq(reply.text, "");
}
END_TEST

START_TEST(reply_err_unknown_code)
{
    parse_reply("ERR TEAPOT short and stout");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_ERR);
    ck_assert_int_eq(reply.err, PROTO_ERR__COUNT);
    ck_assert_str_eq(reply.tokens[0], "TEAPOT");
    ck_assert_str_eq(reply.text, "short and stout");
    parse_reply("ERR");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_ERR);
    ck_assert_int_eq(reply.err, PROTO_ERR__COUNT);
    ck_assert_str_eq(reply.text, "");
    parse_reply("ERR busy lower case");
    ck_assert_int_eq(reply.err, PROTO_ERR__COUNT);
}
END_TEST

START_TEST(reply_event)
{
    parse_reply("EVENT LOST " ID " NOQUORUM\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_EVENT);
    ck_assert_uint_eq(reply.ntokens, 3);
    ck_assert_str_eq(reply.tokens[0], "LOST");
    ck_assert_str_eq(reply.tokens[1], ID);
    ck_assert_str_eq(reply.tokens[2], "NOQUORUM");
    parse_reply("EVENT LOST " ID " TAKEN more to come");
    ck_assert_uint_eq(reply.ntokens, 6);
    ck_assert_str_eq(reply.tokens[2], "TAKEN");
}
END_TEST

START_TEST(reply_data)
{
    parse_reply("DATA 3\r\n");
    ck_assert_int_eq(reply.kind, PROTO_REPLY_DATA);
    ck_assert_uint_eq(reply.ntokens, 1);
    ck_assert_str_eq(reply.tokens[0], "3");
}
END_TEST

START_TEST(reply_bad)
{
    static const char *bad[] = {"", "\r\n", "   ", "HELLO", "ok", "Ok 1 2", "OKAY", "ERRBUSY", "EVENTS LOST"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse_reply(bad[i]);
        ck_assert_msg(reply.kind == PROTO_REPLY_BAD, "'%s' not BAD", bad[i]);
        ck_assert_str_eq(reply.text, "");
    }
}
END_TEST

/* What the daemon formats, the client parses back. */
START_TEST(reply_round_trip)
{
    char buf[PROTO_REPLY_MAX];
    proto_fmt_err(buf, sizeof buf, PROTO_ERR_LIMIT, "more than %d resources", 64);
    proto_parse_reply(buf, &reply);
    ck_assert_int_eq(reply.kind, PROTO_REPLY_ERR);
    ck_assert_int_eq(reply.err, PROTO_ERR_LIMIT);
    ck_assert_str_eq(reply.text, "more than 64 resources");
    proto_fmt_ok_lock(buf, sizeof buf, ID, 1234, 99);
    proto_parse_reply(buf, &reply);
    ck_assert_int_eq(reply.kind, PROTO_REPLY_OK);
    ck_assert_uint_eq(reply.ntokens, 3);
    ck_assert_str_eq(reply.tokens[2], "99");
    proto_fmt_event_lost(buf, sizeof buf, ID, "MAXHOLD");
    proto_parse_reply(buf, &reply);
    ck_assert_int_eq(reply.kind, PROTO_REPLY_EVENT);
    ck_assert_str_eq(reply.tokens[2], "MAXHOLD");
}
END_TEST

/* ---- Suite ---------------------------------------------------------------- */

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");

    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, frame_lf_and_crlf);
    tcase_add_test(tc, frame_split_mid_line);
    tcase_add_test(tc, frame_two_lines_in_one_buffer);
    tcase_add_test(tc, frame_empty_lines);
    tcase_add_test(tc, frame_odd_bytes_are_content);
    tcase_add_test(tc, frame_exactly_max_line);
    tcase_add_test(tc, frame_oversized_with_terminator);
    tcase_add_test(tc, frame_oversized_without_terminator);
    tcase_add_test(tc, frame_extreme_limits);
    tcase_add_test(tc, frame_byte_by_byte_and_chunks);
    suite_add_tcase(s, tc);

    tc = tcase_create("request");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, req_simple_verbs);
    tcase_add_test(tc, req_case_insensitive);
    tcase_add_test(tc, req_unknown_and_empty);
    tcase_add_test(tc, req_spaces_and_tabs);
    tcase_add_test(tc, req_acquire_minimal);
    tcase_add_test(tc, req_acquire_ttl);
    tcase_add_test(tc, req_acquire_all_options);
    tcase_add_test(tc, req_acquire_options_any_order);
    tcase_add_test(tc, req_acquire_autoextend_detach_parses);
    tcase_add_test(tc, req_acquire_repeated_option);
    tcase_add_test(tc, req_acquire_unknown_option);
    tcase_add_test(tc, req_acquire_missing_option_value);
    tcase_add_test(tc, req_acquire_bad_ttl);
    tcase_add_test(tc, req_acquire_bad_option_numbers);
    tcase_add_test(tc, req_acquire_empty_resource);
    tcase_add_test(tc, req_acquire_duplicate_resource);
    tcase_add_test(tc, req_acquire_resource_length);
    tcase_add_test(tc, req_acquire_non_printable);
    tcase_add_test(tc, req_acquire_too_many_resources);
    tcase_add_test(tc, req_owner);
    tcase_add_test(tc, req_extend);
    tcase_add_test(tc, req_release);
    tcase_add_test(tc, req_malformed_lock_id);
    tcase_add_test(tc, req_valid_lock_id);
    tcase_add_test(tc, req_auth);
    tcase_add_test(tc, req_inspect);
    tcase_add_test(tc, req_errbuf_always_terminated);
    suite_add_tcase(s, tc);

    tc = tcase_create("numbers");
    tcase_add_test(tc, num_parse_u64);
    tcase_add_test(tc, err_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, fmt_simple);
    tcase_add_test(tc, fmt_put_u64);
    tcase_add_test(tc, fmt_ok_lock);
    tcase_add_test(tc, fmt_refmt_ok_lock);
    tcase_add_test(tc, fmt_does_not_fit);
    tcase_add_test(tc, fmt_err);
    tcase_add_test(tc, fmt_err_strips_controls);
    tcase_add_test(tc, fmt_err_cut_to_fit);
    suite_add_tcase(s, tc);

    tc = tcase_create("reply");
    tcase_add_test(tc, reply_ok);
    tcase_add_test(tc, reply_extra_tokens_ignored);
    tcase_add_test(tc, reply_err);
    tcase_add_test(tc, reply_err_unknown_code);
    tcase_add_test(tc, reply_event);
    tcase_add_test(tc, reply_data);
    tcase_add_test(tc, reply_bad);
    tcase_add_test(tc, reply_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
