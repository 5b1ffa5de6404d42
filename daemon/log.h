/*
 * log.h - one line per event to stderr, as "level=info msg=\"...\" key=value
 * ...". When stderr is the journal (JOURNAL_STREAM names it) journald adds the
 * time stamp and unit; anywhere else (a file, a terminal) each line begins
 * with "ts=<UTC time, ms> ". Callers pass the key=value fields inside the
 * format.
 */
#ifndef REDLOCKD_LOG_H
#define REDLOCKD_LOG_H

#include <stdbool.h>

#include "config.h"

void log_set_level(enum log_level level);
/* Send lines to syslog (facility daemon, ident redlockd) instead of stderr. */
void log_use_syslog(bool on);
enum log_level log_get_level(void);
/* Decide again whether stderr is the journal (decided at the first line
 * otherwise). */
void log_detect_journal(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { \
        if (log_get_level() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
