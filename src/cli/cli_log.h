/*
 * cli_log.h: the JSON log line of `ssehub serve --log-format json` (one object per line, for log
 * shippers): {"time":"2026-12-06T13:16:38Z","level":"warn","worker":2,"msg":"..."}.
 * "worker" is present in a worker process only. The text format is sse_log_format's
 * (include/sse/log.h); this is its JSON twin, built from the same message.
 */
#ifndef SSE_CLI_LOG_H
#define SSE_CLI_LOG_H

#include <stddef.h>

/*
 * Format one JSON log line (newline included) into out[0..cap), NUL-terminated; worker < 0: no
 * worker field. msg is any bytes up to its NUL: quotes, backslashes and control characters are
 * escaped, bytes >= 0x80 copied (a log line is not a place to fix UTF-8). A line that does not
 * fit has its message cut, and is still one valid JSON object. Returns its length; 0 if cap is
 * under 128.
 */
size_t cli_log_json(char *out, size_t cap, int level, int worker, const char *msg);

/* Write one such line to stderr in a single write. */
void cli_log_json_stderr(int level, int worker, const char *msg);

#endif
