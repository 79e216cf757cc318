/*
 * cli_log.c: the JSON log line of `ssehub serve --log-format json` (see cli_log.h). The message
 * is escaped by the library's one JSON escaper (sse_json_escape, format.h).
 */
#include "cli_log.h"

#include <sse/format.h>
#include <sse/log.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

size_t cli_log_json(char *out, size_t cap, int level, int worker, const char *msg)
{
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
    const char *p = msg ? msg : "";
    size_t left = strlen(p);
    /* through the library's escaper (format.h), in pieces that surely fit; near the end of the
       room one byte at a time, so that the message is cut exactly where it stops fitting */
    while (left) {
        size_t room = cap - o - tail, k = room > 8 ? (room - 8) / 6 : 0;
        if (k > left)
            k = left;
        if (k) {
            o += sse_json_escape(out + o, p, k);
        } else {
            char e[SSE_JSON_ESCAPE_ROOM(1)];
            size_t el = sse_json_escape(e, p, 1);
            if (el > room)
                break;
            memcpy(out + o, e, el);
            o += el;
            k = 1;
        }
        p += k;
        left -= k;
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
