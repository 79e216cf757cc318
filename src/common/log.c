/*
 * log.c: the one log line format (see include/sse/log.h).
 */
#include <sse/log.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *sse_log_level_name(int level)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    return level >= 0 && level <= 3 ? names[level] : "?";
}

size_t sse_log_format(char *out, size_t cap, int level, const char *who, const char *msg)
{
    if (cap < 2) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(out, cap - 1, "%s %-5s %s%s%s", ts, sse_log_level_name(level), who ? who : "",
                     who ? ": " : "", msg ? msg : "");
    size_t len = n < 0 ? 0 : (size_t)n >= cap - 1 ? cap - 2 : (size_t)n;
    out[len++] = '\n';
    out[len] = '\0';
    return len;
}

void sse_log_stderr(int level, const char *who, const char *msg)
{
    char line[1024];
    size_t len = sse_log_format(line, sizeof(line), level, who, msg);
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}
