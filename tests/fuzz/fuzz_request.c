/*
 * fuzz_request.c - libFuzzer target for the request side of the protocol:
 * framing over arbitrary chunking, then parsing of every framed line, with
 * the invariants the daemon relies on checked on each result.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define MAX_LINE 4096
#define RES_CAP 8

static void check_slice(const char *line, size_t len, struct proto_slice s)
{
    if (s.len == 0) return;
    assert(s.ptr >= line && s.ptr + s.len <= line + len);
}

static void parse_line(const char *line, size_t len)
{
    struct proto_slice res[RES_CAP];
    struct proto_request req;
    char err[160];
    enum proto_err rc = proto_parse_request(line, len, &req, res, RES_CAP, err, sizeof err);
    assert(memchr(err, '\0', sizeof err) != NULL);
    if (rc != PROTO_OK) {
        assert(rc == PROTO_ERR_BADREQ || rc == PROTO_ERR_LIMIT);
        return;
    }
    if (req.verb == PROTO_VERB_ACQUIRE || req.verb == PROTO_VERB_INSPECT) {
        assert(req.nresources >= 1 && req.nresources <= RES_CAP);
        for (size_t i = 0; i < req.nresources; i++) {
            check_slice(line, len, req.resources[i]);
            assert(req.resources[i].len >= 1 && req.resources[i].len <= PROTO_MAX_RESOURCE_BYTES);
            assert(memchr(req.resources[i].ptr, ',', req.resources[i].len) == NULL);
            assert(memchr(req.resources[i].ptr, ' ', req.resources[i].len) == NULL);
        }
    }
    if (req.opts & PROTO_OPT_TTL) assert(req.ttl_ms >= 1 && req.ttl_ms <= PROTO_MAX_MS);
    check_slice(line, len, req.lock_id);
    check_slice(line, len, req.owner);
    check_slice(line, len, req.token);
    if (req.opts & PROTO_OPT_OWNER) assert(req.owner.len >= 1 && req.owner.len <= PROTO_MAX_OWNER_BYTES);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks a chunk size, as reads of any size may split lines. */
    if (size == 0) return 0;
    size_t chunk = 1 + data[0] % 64;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    char *buf = malloc(len + 1);
    size_t have = 0, fed = 0;
    while (fed < len || have > 0) {
        size_t n = len - fed < chunk ? len - fed : chunk;
        memcpy(buf + have, in + fed, n);
        have += n;
        fed += n;
        size_t line_len, consumed;
        enum proto_frame_status st = proto_frame(buf, have, MAX_LINE, &line_len, &consumed);
        while (st == PROTO_FRAME_LINE) {
            assert(line_len < consumed && consumed <= have && line_len <= MAX_LINE);
            /* A heap copy of exactly the line, so reading past it is caught. */
            char *line = malloc(line_len ? line_len : 1);
            memcpy(line, buf, line_len);
            parse_line(line, line_len);
            free(line);
            memmove(buf, buf + consumed, have - consumed);
            have -= consumed;
            st = proto_frame(buf, have, MAX_LINE, &line_len, &consumed);
        }
        if (st == PROTO_FRAME_TOOLONG) {
            assert(have > MAX_LINE);
            break;
        }
        if (n == 0) break; /* all fed, a partial line remains */
    }
    free(buf);
    return 0;
}
