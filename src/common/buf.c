/*
 * buf.c: the capped growable buffer (sse_buf). Frames live in frame.c.
 */
#include "common/alloc.h"

#include <sse/buf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void sse_buf_init(sse_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

int sse_buf_reserve(sse_buf *b, size_t extra)
{
    if (b->max == 0)
        b->max = SIZE_MAX / 2; /* a zeroed struct behaves like sse_buf_init(b, 0) */
    if (extra > b->max - b->len)
        return SSE_ELIMIT;
    size_t need = b->len + extra + 1; /* +1: room for sse_buf_cstr's NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    char *p = sse__realloc(b->data, cap);
    if (!p)
        return SSE_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sse_buf_append(sse_buf *b, const void *bytes, size_t len)
{
    int rc = sse_buf_reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, bytes, len);
    b->len += len;
    return 0;
}

int sse_buf_append_str(sse_buf *b, const char *s)
{
    return sse_buf_append(b, s, strlen(s));
}

int sse_buf_append_byte(sse_buf *b, char c)
{
    if (b->len + 1 < b->cap && b->len < b->max) {
        b->data[b->len++] = c;
        return 0;
    }
    return sse_buf_append(b, &c, 1);
}

int sse_buf_printf(sse_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SSE_EINVAL;
    int rc = sse_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *sse_buf_cstr(sse_buf *b)
{
    if (!b->data && sse_buf_reserve(b, 0))
        return "";
    b->data[b->len] = '\0'; /* reserve always keeps one spare byte */
    return b->data;
}

void sse_buf_reset(sse_buf *b)
{
    b->len = 0;
}

void sse_buf_free(sse_buf *b)
{
    sse__free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
