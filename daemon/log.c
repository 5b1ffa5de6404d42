/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static bool to_syslog;
static int stamp_lines = -1; /* -1: not decided yet; 0: stderr is the journal; 1: add ts= */

/* systemd sets JOURNAL_STREAM=<device>:<inode> of the stream it connected to
 * stdout/stderr (systemd.exec(5)); stderr is the journal only if it is still
 * that very file. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_detect_journal(void)
{
    stamp_lines = stderr_is_journal() ? 0 : 1;
}

void log_use_syslog(bool on)
{
    if (on && !to_syslog) openlog("redlockd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    if (!on && to_syslog) closelog();
    to_syslog = on;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > current_level) return;
    /* Format into one buffer so the line reaches stderr in one write. */
    char line[1024];
    int n = 0;
    if (stamp_lines < 0) log_detect_journal();
    if (stamp_lines == 1 && !to_syslog) {
        /* The journal and syslog stamp lines themselves; a file or a terminal does not. */
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = (int)strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ ", ts.tv_nsec / 1000000);
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "level=%s ", level_names[level]);
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
