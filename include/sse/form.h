/**
 * form.h: application/x-www-form-urlencoded decoding (POST bodies and query strings).
 *
 * Owned by the http module (src/http/form.c): no I/O, one pair per call into caller-owned
 * buffers, so a form of any length needs no more memory than its longest pair. server.h
 * includes it, for handlers that read forms and queries.
 */
#ifndef SSE_FORM_H
#define SSE_FORM_H

#include <sse/buf.h>
#include <sse/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Decode the next name=value pair of an application/x-www-form-urlencoded string (also query
 * strings): '+' becomes a space, %XX is decoded, pairs split on '&'. *cursor advances; end is the
 * end of the input. name and value are reset and filled (NUL-terminated via sse_buf_cstr).
 * Returns 1 when a pair was produced, 0 at the end, SSE_EINVAL on a malformed escape,
 * SSE_ELIMIT / SSE_ENOMEM from the buffers.
 */
SSE_API int sse_form_next(const char **cursor, const char *end, sse_buf *name, sse_buf *value);

#ifdef __cplusplus
}
#endif
#endif
