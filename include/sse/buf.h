/**
 * buf.h: the two byte containers every layer shares.
 *
 * sse_buf   — a growable byte buffer with a hard cap, owned by one user. Encoders write into it.
 * sse_frame — an immutable, reference-counted block of bytes. A frame is what fans out: one
 *             update is encoded once, turned into a frame, and every subscriber's queue holds a
 *             reference to the same bytes. The refcount is atomic, so frames may cross threads.
 */
#ifndef SSE_BUF_H
#define SSE_BUF_H

#include <sse/error.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A growable buffer. Open struct, caller-allocated; initialise with sse_buf_init(). */
typedef struct sse_buf {
    char *data; /* owned; NUL-terminated when len > 0 is not guaranteed: use len */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len; appends that would pass it fail with SSE_ELIMIT */
} sse_buf;

/** Initialise an empty buffer whose length may never exceed max (0 = no cap but SIZE_MAX/2). */
SSE_API void sse_buf_init(sse_buf *b, size_t max);
/** Make room for extra more bytes. Returns 0, SSE_ELIMIT or SSE_ENOMEM (buffer unchanged). */
SSE_API int sse_buf_reserve(sse_buf *b, size_t extra);
/** Append len bytes. Returns 0, SSE_ELIMIT or SSE_ENOMEM; on failure nothing is appended. */
SSE_API int sse_buf_append(sse_buf *b, const void *bytes, size_t len);
/** Append a NUL-terminated string (without its NUL). */
SSE_API int sse_buf_append_str(sse_buf *b, const char *s);
/** Append one byte. */
SSE_API int sse_buf_append_byte(sse_buf *b, char c);
/** Append a printf-style formatted string. */
SSE_API int sse_buf_printf(sse_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Return a NUL-terminated view of the contents (appends a NUL past len, len unchanged). */
SSE_API const char *sse_buf_cstr(sse_buf *b);
/** Forget the contents, keep the allocation. */
SSE_API void sse_buf_reset(sse_buf *b);
/** Free the allocation; the buffer is left empty and reusable. Accepts a zeroed buffer. */
SSE_API void sse_buf_free(sse_buf *b);

/** An immutable, reference-counted byte block (opaque). */
typedef struct sse_frame sse_frame;

/** New frame holding a copy of len bytes; *out has one reference (caller releases it). */
SSE_API int sse_frame_new(sse_frame **out, const void *bytes, size_t len);
/**
 * New frame that takes the bytes of *buf without copying them; buf is left empty (and may be
 * reused). On failure buf is unchanged. *out has one reference.
 */
SSE_API int sse_frame_from_buf(sse_frame **out, sse_buf *buf);
/** The frame's bytes (borrowed; valid while the caller holds a reference). */
SSE_API const char *sse_frame_data(const sse_frame *f);
SSE_API size_t sse_frame_len(const sse_frame *f);
/** Take another reference; returns f. */
SSE_API sse_frame *sse_frame_ref(sse_frame *f);
/** Drop a reference; the last one frees the frame. Accepts NULL. */
SSE_API void sse_frame_unref(sse_frame *f);

#ifdef __cplusplus
}
#endif
#endif
