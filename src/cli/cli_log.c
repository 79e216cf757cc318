/*
 * cli_log.c: the JSON log line of `ssehub serve --log-format json` (see cli_log.h).
 */
#include "cli_log.h"

#include <sse/log.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

size_t cli_log_json(char *out, size_t cap, int level, int worker, const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    if (cap < 128) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = worker >= 0 ? snprintf(out, cap,
                                   "{\"time\":\"%s\",\"level\":\"%s\",\"worker\":%d,"
                                   "\"msg\":\"",
                                   ts, sse_log_level_name(level), worker)
                        : snprintf(out, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                                   sse_log_level_name(level));
    size_t o = (size_t)n;
    const size_t tail = 4; /* "}\n and the NUL */
    for (const unsigned char *p = (const unsigned char *)(msg ? msg : ""); *p; p++) {
        char e[6];
        size_t el = 0;
        if (*p == '"' || *p == '\\') {
            e[el++] = '\\';
            e[el++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            el = 6;
        } else {
            e[el++] = (char)*p;
        }
        if (o + el + tail > cap)
            break;
        memcpy(out + o, e, el);
        o += el;
    }
    memcpy(out + o, "\"}\n", 4);
    return o + 3;
}

void cli_log_json_stderr(int level, int worker, const char *msg)
{
    char line[2048];
    size_t len = cli_log_json(line, sizeof(line), level, worker, msg);
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}
