/*
 * frame.c: immutable reference-counted byte blocks (sse_frame), the unit of fan-out.
 *
 * A frame built from an sse_buf takes its allocation over: the bytes are encoded once and never
 * copied again, however many subscribers hold a reference. The count is atomic because a frame
 * may be handed from the thread that published it to the worker loops that write it.
 */
#include "common/alloc.h"

#include <sse/buf.h>
#include <stdatomic.h>
#include <string.h>

struct sse_frame {
    atomic_uint refs; /* references held by queues, stores and the creator */
    size_t len;       /* bytes at data */
    char *data;       /* owned; points to inline_bytes when copied at creation */
    char inline_bytes[];
};

int sse_frame_new(sse_frame **out, const void *bytes, size_t len)
{
    if (len > (size_t)-1 - sizeof(sse_frame))
        return SSE_ENOMEM;
    sse_frame *f = sse__malloc(sizeof(*f) + len);
    if (!f)
        return SSE_ENOMEM;
    atomic_init(&f->refs, 1);
    f->len = len;
    f->data = f->inline_bytes;
    if (len)
        memcpy(f->data, bytes, len);
    *out = f;
    return 0;
}

int sse_frame_from_buf(sse_frame **out, sse_buf *buf)
{
    sse_frame *f = sse__malloc(sizeof(*f));
    if (!f)
        return SSE_ENOMEM;
    atomic_init(&f->refs, 1);
    f->len = buf->len;
    f->data = buf->data;
    if (!f->data) { /* an empty buffer never allocated: point at the (empty) inline tail */
        f->data = f->inline_bytes;
    }
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    *out = f;
    return 0;
}

const char *sse_frame_data(const sse_frame *f)
{
    return f->data;
}

size_t sse_frame_len(const sse_frame *f)
{
    return f->len;
}

sse_frame *sse_frame_ref(sse_frame *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void sse_frame_unref(sse_frame *f)
{
    if (!f)
        return;
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (f->data != f->inline_bytes)
        sse__free(f->data);
    sse__free(f);
}
