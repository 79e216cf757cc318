/*
 * form.c: application/x-www-form-urlencoded decoding (sse_form_next, declared in <sse/form.h>).
 *
 * Used for POST bodies (the Mercure publish form) and query strings. Decodes one pair per call
 * into caller-owned buffers, so a form of any length needs no more memory than its longest pair.
 */
#include "http/http_parser.h"

#include <sse/form.h>
#include <string.h>

/* Decode in[0..len) onto the end of out: '+' is a space, %XX a byte (http_parser.c decodes). */
static int sse__form_decode(const char *in, size_t len, sse_buf *out)
{
    size_t n;
    if (len == 0) /* nothing to decode, and out->data may still be NULL */
        return 0;
    int rc = sse_buf_reserve(out, len); /* the output is never longer than the input */
    if (rc)
        return rc;
    rc = sse__http_pct_decode(in, len, out->data + out->len, &n, SSE__PCT_PLUS_SPACE);
    if (rc)
        return rc;
    out->len += n;
    return 0;
}

int sse_form_next(const char **cursor, const char *end, sse_buf *name, sse_buf *value)
{
    const char *p = *cursor;
    if (!p || !end)
        return SSE_EINVAL;
    while (p < end && *p == '&') /* empty pairs ("a=1&&b=2") are skipped */
        p++;
    if (p >= end) {
        *cursor = p;
        return 0;
    }
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    const char *nend = eq ? eq : stop;
    sse_buf_reset(name);
    sse_buf_reset(value);
    int rc = sse__form_decode(p, (size_t)(nend - p), name);
    if (!rc && eq)
        rc = sse__form_decode(eq + 1, (size_t)(stop - eq - 1), value);
    if (rc)
        return rc;
    sse_buf_cstr(name);
    sse_buf_cstr(value);
    *cursor = amp ? amp + 1 : end;
    return 1;
}
