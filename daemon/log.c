/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static bool to_syslog;

void log_use_syslog(bool on)
{
    if (on && !to_syslog) openlog("redlockd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    if (!on && to_syslog) closelog();
    to_syslog = on;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level) { current_level = level; }

enum log_level log_get_level(void) { return current_level; }

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > current_level) return;
    /* Format into one buffer so the line reaches stderr in one write. */
    char line[1024];
    int n = snprintf(line, sizeof line, "level=%s ", level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    if (to_syslog) {
        static const int priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        line[len] = '\0';
        syslog(priority[level], "%s", line);
        return;
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
