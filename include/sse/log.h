/**
 * log.h: log levels and the one log line format of libsse and ssehub.
 *
 * A line is "<UTC time, ISO 8601, seconds> <level, padded to 5> [<who>: ]<message>", e.g.
 *   2026-12-06T13:16:38Z warn  worker 2: demo publish failed
 * The server writes its lines this way to stderr when no log callback is set; programs with
 * their own callback (ssehub serve) use the same functions, so every line looks alike.
 * Owned by the common module (src/common/log.c).
 */
#ifndef SSE_LOG_H
#define SSE_LOG_H

#include <sse/error.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels (of the server's and the hub's log callbacks). */
enum { SSE_LOG_ERROR = 0, SSE_LOG_WARN = 1, SSE_LOG_INFO = 2, SSE_LOG_DEBUG = 3 };

/** "error", "warn", "info", "debug", or "?" for any other level. Static. */
SSE_API const char *sse_log_level_name(int level);

/**
 * Format one log line, stamped with the current time, into out[0..cap), newline and NUL
 * included; who (e.g. "worker 2") may be NULL. A line that does not fit is cut and still ends
 * with a newline. Returns its length (the NUL not counted); 0 if cap < 2.
 */
SSE_API size_t sse_log_format(char *out, size_t cap, int level, const char *who, const char *msg);

/** Write one such line to stderr in a single write (lines of several processes do not mix). */
SSE_API void sse_log_stderr(int level, const char *who, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
