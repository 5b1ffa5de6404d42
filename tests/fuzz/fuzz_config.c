/*
 * fuzz_config.c - libFuzzer target for the config loader: any text either
 * loads (and frees cleanly) or fails with a message naming the source.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0'; /* inih reads a C string: the text stops at the first NUL */
    struct config cfg;
    char err[CONFIG_ERR_MAX];
    err[0] = '\0';
    if (config_load_string(text, "fuzz.ini", &cfg, err, sizeof err) == 0) {
        assert(cfg.nmasters <= CONFIG_MAX_MASTERS);
        assert(cfg.key_prefix != NULL);
        for (size_t i = 0; i < cfg.nmasters; i++)
            assert(cfg.masters[i].host != NULL && cfg.masters[i].port >= 1 && cfg.masters[i].port <= 65535);
        config_free(&cfg);
    } else {
        assert(strncmp(err, "fuzz.ini", 8) == 0);
    }
    free(text);
    return 0;
}
