/*
 * cli_json.c: JSON-lines writer for dispatched events and retry values (see cli_json.h).
 *
 * Speed matters here: `ssehub parse` spends most of its time in this file. A string is first
 * split by the library's UTF-8 validator (sse_utf8_valid_prefix) into valid stretches and the
 * single bytes between them that are not UTF-8 (each written as \ufffd); a valid stretch is
 * escaped by the library's one JSON escaper (sse_json_escape, format.h), in pieces that surely
 * fit the writer's buffer (room reserved up front: at most 6 output bytes per input byte, plus 8),
 * and reaches the FILE in writes of nearly the whole buffer.
 * Output only; it never fails loudly: stdio errors are left for the caller (flush, ferror()).
 */
#include "cli_json.h"

#include <sse/format.h>
#include <string.h>

void sse_cli_jout_init(sse_cli_jout *o, FILE *f, char *buf, size_t cap)
{
    o->f = f;
    o->buf = buf;
    o->len = 0;
    o->cap = cap;
}

int sse_cli_jout_flush(sse_cli_jout *o)
{
    if (o->len) {
        fwrite(o->buf, 1, o->len, o->f);
        o->len = 0;
    }
    return ferror(o->f) ? -1 : 0;
}

/* Make room for n more bytes (n <= cap), flushing what is pending if need be. */
static inline void reserve(sse_cli_jout *o, size_t n)
{
    if (o->cap - o->len < n)
        sse_cli_jout_flush(o);
}

static inline void put(sse_cli_jout *o, const char *s, size_t n)
{
    reserve(o, n);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

#define PUT_LITERAL(o, lit) put((o), (lit), sizeof(lit) - 1)

void sse_cli_jout_string(sse_cli_jout *o, const char *str, size_t len)
{
    size_t i = 0;
    PUT_LITERAL(o, "\"");
    while (i < len) {
        size_t valid_end = i + sse_utf8_valid_prefix(str + i, len - i);
        while (i < valid_end) {
            /* as much as surely fits (SSE_JSON_ESCAPE_ROOM: 6 bytes out per byte in, plus 8
             * of slack); flush first when that is only a little */
            size_t k = valid_end - i, avail = o->cap - o->len;
            size_t room = avail > 8 ? (avail - 8) / 6 : 0;
            if (room < k && room < 64) {
                sse_cli_jout_flush(o);
                room = (o->cap - 8) / 6;
            }
            if (k > room)
                k = room;
            o->len += sse_json_escape(o->buf + o->len, str + i, k);
            i += k;
        }
        if (i < len) { /* str[i] starts no valid sequence: one U+FFFD for this byte */
            PUT_LITERAL(o, "\\ufffd");
            i++;
        }
    }
    PUT_LITERAL(o, "\"");
}

void sse_cli_jout_event(sse_cli_jout *o, const sse_parsed_event *ev)
{
    PUT_LITERAL(o, "{\"type\":");
    sse_cli_jout_string(o, ev->type, ev->type_len);
    PUT_LITERAL(o, ",\"data\":");
    sse_cli_jout_string(o, ev->data, ev->data_len);
    PUT_LITERAL(o, ",\"id\":");
    sse_cli_jout_string(o, ev->id, ev->id_len);
    PUT_LITERAL(o, "}\n");
}

void sse_cli_jout_retry(sse_cli_jout *o, uint64_t ms)
{
    char digits[20]; /* UINT64_MAX has 20 */
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + ms % 10);
        ms /= 10;
    } while (ms);
    PUT_LITERAL(o, "{\"retry\":");
    put(o, digits + sizeof(digits) - n, n);
    PUT_LITERAL(o, "}\n");
}

/* The FILE * forms: one value through a stack buffer (a long string takes a few fwrites). */
#define ONE_SHOT(out, call)                                                                        \
    do {                                                                                           \
        char stack_buf[4096];                                                                      \
        sse_cli_jout o;                                                                            \
        sse_cli_jout_init(&o, (out), stack_buf, sizeof(stack_buf));                                \
        call;                                                                                      \
        sse_cli_jout_flush(&o);                                                                    \
    } while (0)

void sse_cli_json_string(FILE *out, const char *s, size_t len)
{
    ONE_SHOT(out, sse_cli_jout_string(&o, s, len));
}

void sse_cli_json_event(FILE *out, const sse_parsed_event *ev)
{
    ONE_SHOT(out, sse_cli_jout_event(&o, ev));
}

void sse_cli_json_retry(FILE *out, uint64_t ms)
{
    ONE_SHOT(out, sse_cli_jout_retry(&o, ms));
}
