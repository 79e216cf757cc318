/*
 * cli_json.h: the JSON-lines output shared by `ssehub parse` and `ssehub sub --json`.
 *
 * One dispatched event is one line {"type":"...","data":"...","id":"..."} (all three keys, in
 * that order, id = the last event id at dispatch); an accepted retry field is one line
 * {"retry":N}. Strings are escaped for every code point: '"' and '\\' with a backslash, every
 * control character (U+0000..U+001F and U+007F) as \u00XX, everything else as raw UTF-8 (U+2028
 * and U+2029 included). Bytes that are not valid UTF-8 (the parser never produces them, other
 * callers might) are written as \ufffd, so the output is always valid UTF-8 and valid JSON.
 */
#ifndef SSE_CLI_JSON_H
#define SSE_CLI_JSON_H

#include <sse/format.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Write s[0..len) as a quoted, escaped JSON string (no newline). s may hold NUL bytes. */
void sse_cli_json_string(FILE *out, const char *s, size_t len);
/* Write one event line: {"type":...,"data":...,"id":...} and '\n'. ev is borrowed. */
void sse_cli_json_event(FILE *out, const sse_parsed_event *ev);
/* Write one retry line: {"retry":N} and '\n'. */
void sse_cli_json_retry(FILE *out, uint64_t ms);

#endif
