/*
 * form.c: application/x-www-form-urlencoded decoding (sse_form_next, declared in server.h).
 *
 * Used for POST bodies (the Mercure publish form) and query strings. Decodes one pair per call
 * into caller-owned buffers, so a form of any length needs no more memory than its longest pair.
 */
#include <sse/server.h>
#include <string.h>

static int sse__form_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode in[0..len) into out: '+' is a space, %XX a byte. */
static int sse__form_decode(const char *in, size_t len, sse_buf *out)
{
    int rc = sse_buf_reserve(out, len);
    if (rc)
        return rc;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = len - i >= 3 ? sse__form_hex((unsigned char)in[i + 1]) : -1;
            int lo = len - i >= 3 ? sse__form_hex((unsigned char)in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return SSE_EINVAL;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        out->data[out->len++] = (char)c; /* room reserved above: output <= input */
    }
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
