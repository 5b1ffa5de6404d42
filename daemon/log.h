/*
 * log.h - one line per event to stderr (journald adds the timestamp and
 * unit), as "level=info msg=\"...\" key=value ...". Callers pass the
 * key=value fields inside the format.
 */
#ifndef REDLOCKD_LOG_H
#define REDLOCKD_LOG_H

#include <stdbool.h>

#include "config.h"

void log_set_level(enum log_level level);
/* Send lines to syslog (facility daemon, ident redlockd) instead of stderr. */
void log_use_syslog(bool on);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { \
        if (log_get_level() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
