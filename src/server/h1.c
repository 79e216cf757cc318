/*
 * h1.c: HTTP/1.1 response heads. Every head the server sends (answers, stream heads, its own
 * errors, the 408 of the sweep, "100 Continue") is described as a struct sse__head and turned
 * into bytes here and nowhere else, so another protocol (HTTP/2: HEADERS frames through
 * nghttp2) serialises the same description its own way.
 *
 * Not owned here: where the bytes go. The caller makes a frame of them and sets it as the
 * pending head of its stream; the connection's flush writes it before the stream's body frames.
 */
#include "server/internal.h"

#include <string.h>

int sse__h1_head(sse_buf *b, const struct sse__head *h, const char *date)
{
    int rc = sse_buf_printf(b, "HTTP/1.1 %d %s\r\n", h->status, sse__http_reason(h->status));
    if (h->status < 200) /* an interim answer ("100 Continue"): the status line only */
        return rc ? rc : sse_buf_append(b, "\r\n", 2);
    if (!rc)
        rc = sse_buf_printf(b, "Date: %s\r\n", date);
    if (!rc && h->content_type)
        rc = sse_buf_printf(b, "Content-Type: %s\r\n", h->content_type);
    if (!rc && (h->flags & SSE__HEAD_LENGTH))
        rc = sse_buf_printf(b, "Content-Length: %llu\r\n", (unsigned long long)h->content_length);
    for (unsigned i = 0; !rc && i < h->nfields; i++)
        rc = sse_buf_printf(b, "%s: %s\r\n", h->fields[i].name, h->fields[i].value);
    if (!rc && (h->flags & SSE__HEAD_CLOSE))
        rc = sse_buf_append_str(b, "Connection: close\r\n");
    else if (!rc && (h->flags & SSE__HEAD_KEEPALIVE))
        rc = sse_buf_append_str(b, "Connection: keep-alive\r\n");
    /* the added fields, "name\0value\0" each (checked for CR/LF when they were added) */
    for (size_t off = 0; !rc && off < h->extra_len;) {
        const char *name = h->extra + off;
        const char *value = name + strlen(name) + 1;
        off = (size_t)(value + strlen(value) + 1 - h->extra);
        rc = sse_buf_printf(b, "%s: %s\r\n", name, value);
    }
    if (!rc)
        rc = sse_buf_append(b, "\r\n", 2);
    return rc;
}
