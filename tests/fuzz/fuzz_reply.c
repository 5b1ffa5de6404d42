/*
 * fuzz_reply.c - libFuzzer target for reply parsing (client side) and reply
 * formatting (daemon side): whatever the daemon is fed, a formatted line is
 * one line ending in CRLF.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Reply parsing works in place on a NUL-terminated line. */
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    struct proto_reply r;
    proto_parse_reply(line, &r);
    assert(r.ntokens <= PROTO_MAX_REPLY_TOKENS);
    for (size_t i = 0; i < r.ntokens; i++) assert(r.tokens[i] >= line && r.tokens[i] <= line + size);

    /* Formatting an error whose text is anything at all. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char out[PROTO_REPLY_MAX];
    size_t cap = 16 + (size ? data[0] : 0) % (sizeof out - 16);
    size_t n = proto_fmt_err(out, cap, PROTO_ERR_BADREQ, "%s", text);
    if (n > 0) {
        assert(n < cap && out[n] == '\0');
        assert(n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n');
        for (size_t i = 0; i + 2 < n; i++) assert(out[i] != '\r' && out[i] != '\n');
    }
    free(text);
    free(line);
    return 0;
}
