/* key=value log lines on stderr, one write(2) each so that threads and
 * processes sharing a terminal or a journal never interleave a line. */
#include "clock.h"
#include "logging.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int level_min = -1; /* set lazily by whichever thread logs first */
static atomic_ulong dropped[4];

void schakel_log_set_level(int level)
{
    level_min = level;
}

static int current_level(void)
{
    int l = level_min;
    if (l < 0) {
        const char *e = getenv("SCHAKEL_LOG");
        l = SCHAKEL_LOG_INFO;
        if (e && strcasecmp(e, "debug") == 0) l = SCHAKEL_LOG_DEBUG;
        else if (e && strcasecmp(e, "warn") == 0) l = SCHAKEL_LOG_WARN;
        else if (e && strcasecmp(e, "error") == 0) l = SCHAKEL_LOG_ERROR;
        level_min = l;
    }
    return l;
}

unsigned long schakel_log_dropped(int level)
{
    return atomic_load(&dropped[level & 3]);
}

void schakel_log(int level, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < current_level()) {
        atomic_fetch_add(&dropped[level & 3], 1);
        return;
    }
    char line[1024];
    int64_t ms = schakel_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s component=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(ms % 1000), names[level & 3], component);
    if (n < 0 || (size_t)n >= sizeof line) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
