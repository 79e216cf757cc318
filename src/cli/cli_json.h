/*
 * cli_json.h: the JSON-lines output shared by `ssehub parse` and `ssehub sub --json`.
 *
 * One dispatched event is one line {"type":"...","data":"...","id":"..."} (all three keys, in
 * that order, id = the last event id at dispatch); an accepted retry field is one line
 * {"retry":N}. Strings are escaped for every code point: '"' and '\\' with a backslash, every
 * control character (U+0000..U+001F and U+007F) as \u00XX, everything else as raw UTF-8 (U+2028
 * and U+2029 included). Bytes that are not valid UTF-8 (the parser never produces them, other
 * callers might) are written as \ufffd, one per byte, so the output is always valid UTF-8 and
 * valid JSON. Validity is decided by the library's one validator, sse_utf8_valid_prefix(), the
 * escaping done by its one escaper, sse_json_escape() (format.h), as for the JSON log line and
 * the hub's documents.
 *
 * Two ways to write: sse_cli_jout, a buffered writer that sends its output to a FILE in large
 * writes (what `ssehub parse` uses: no stdio call per event), and the FILE * functions below,
 * which write one value through a small buffer of their own (one fwrite per call or two).
 */
#ifndef SSE_CLI_JSON_H
#define SSE_CLI_JSON_H

#include <sse/format.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A buffered JSON-lines writer. Open struct so that it can live on the stack; use the calls. */
typedef struct sse_cli_jout {
    FILE *f;    /* where full buffers go (borrowed) */
    char *buf;  /* output not yet written (borrowed, cap bytes) */
    size_t len; /* bytes pending in buf */
    size_t cap; /* size of buf, at least SSE_CLI_JOUT_MIN */
} sse_cli_jout;

#define SSE_CLI_JOUT_MIN 256

/*
 * Start a writer over buf[0..cap) (cap >= SSE_CLI_JOUT_MIN; larger is faster: writes to f are
 * at most cap bytes and at least about cap*5/6 while values keep coming). Nothing is allocated.
 */
void sse_cli_jout_init(sse_cli_jout *o, FILE *f, char *buf, size_t cap);
/* Hand the pending bytes to f with one fwrite. Returns 0, or -1 if f reports an error. */
int sse_cli_jout_flush(sse_cli_jout *o);
/* Append s[0..len) as a quoted, escaped JSON string (no newline). s may hold NUL bytes. */
void sse_cli_jout_string(sse_cli_jout *o, const char *s, size_t len);
/* Append one event line: {"type":...,"data":...,"id":...} and '\n'. ev is borrowed. */
void sse_cli_jout_event(sse_cli_jout *o, const sse_parsed_event *ev);
/* Append one retry line: {"retry":N} and '\n'. */
void sse_cli_jout_retry(sse_cli_jout *o, uint64_t ms);

/* The same values written straight to out (stdio errors are left for ferror()). */
void sse_cli_json_string(FILE *out, const char *s, size_t len);
void sse_cli_json_event(FILE *out, const sse_parsed_event *ev);
void sse_cli_json_retry(FILE *out, uint64_t ms);

#endif
