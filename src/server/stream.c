/*
 * stream.c: the write path of every connection, and the event-stream API.
 *
 * Nothing is written when something is queued: sse__stream_enqueue appends a frame reference to
 * the stream's ring and puts its connection on the server's dirty list. Once per loop turn
 * (uv_check after I/O callbacks, uv_prepare before the loop blocks) sse__server_walk visits the
 * dirty connections and writes each one's pending output - the stream's response head, if it
 * has not gone out yet, then its queued frames - with a single try_writev of its transport (a
 * writev over up to SSE__IOV_BATCH buffers). What the socket refuses stays queued and goes out
 * through one transport writev, which waits for writability; the frames stay referenced until
 * it completes. Closes that the API asks for (sse_stream_close, the queue bound) are also done
 * by the walk, so user callbacks never run inside a send.
 *
 * Response heads are not frames of the queue: sse__stream_answer has the protocol serialise
 * one (h1.c) into the stream's head slot, which the flush writes first.
 *
 * Drain callbacks (sse_stream_on_drain) are noticed where the queue shrinks (sse__stream_consume:
 * one compare) and run by the walk, never from inside a write or a call of the API: the stream is
 * flagged (SSE__S_DRAIN_DUE), its connection (SSE__F_DRAIN) put back on the dirty list, and its
 * next visit in the same walk runs the callback before flushing what the callback queued.
 *
 * HTTP/2 connections (SSE__F_H2) share the queues, the bound and the stream API, but their
 * flush and write completion are h2.c's: there the walk hands each stream's frames to nghttp2
 * and writes nghttp2's output, and a stream ends by END_STREAM / RST_STREAM, not by a close.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <string.h>

/* Buffers per writev. Linux's IOV_MAX is 1024; this bounds the stack used by the walk. */
#define SSE__IOV_BATCH 256
/* Bytes per writev, so that the count in flight fits struct sse__conn's 32-bit inflight. */
#define SSE__WRITE_MAX (1u << 30)

void sse__conn_mark_dirty(struct sse__conn *c)
{
    if (c->flags & SSE__F_DIRTY)
        return;
    c->flags |= SSE__F_DIRTY;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

void sse__conn_kill(struct sse__conn *c, int reason)
{
    c->st.reason = (uint8_t)reason;
    c->flags |= SSE__F_KILL;
    sse__conn_mark_dirty(c);
}

/*
 * Slot i (0 = the head) of the queue. A queue of one frame, the usual case when a subscriber
 * keeps up, lives inline in the stream: the fan-out path then allocates nothing per subscriber
 * per event. Only a subscriber with two or more frames pending gets a ring.
 */
static inline sse_frame **sse__stream_slot(struct sse_stream *st, uint32_t i)
{
    if (st->qcap == 1)
        return &st->q.one;
    return &st->q.ring[(st->qhead + i) & (st->qcap - 1)];
}

sse_frame *sse__stream_at(struct sse_stream *st, uint32_t i)
{
    return *sse__stream_slot(st, i);
}

/* Bytes are now pending on an idle stream: the write timeout counts from here. */
static void sse__stream_pending(struct sse_stream *st, size_t len)
{
    struct sse__conn *c = st->conn;
    if (sse__stream_is_h2(st)) { /* the stream's own clock: other streams may be flowing */
        if (st->qbytes == 0)
            ((struct sse__h2s *)st)->t_act = sse__now(c->srv);
    } else if (st->qbytes == 0 && !(c->flags & SSE__F_WRITING)) {
        c->t_act = sse__now(c->srv);
    }
    st->qbytes += len;
    sse__conn_mark_dirty(c);
}

int sse__stream_enqueue(struct sse_stream *st, sse_frame *f)
{
    if (st->qcap == 0) {
        st->qcap = 1; /* the inline slot */
        st->qhead = 0;
    } else if (st->qcount == st->qcap) {
        uint32_t ncap = st->qcap == 1 ? 4 : st->qcap * 2;
        sse_frame **nq = sse__malloc(ncap * sizeof(*nq));
        if (!nq)
            return SSE_ENOMEM;
        for (uint32_t i = 0; i < st->qcount; i++)
            nq[i] = *sse__stream_slot(st, i);
        if (st->qcap > 1)
            sse__free(st->q.ring);
        st->q.ring = nq;
        st->qhead = 0;
        st->qcap = ncap;
    }
    *sse__stream_slot(st, st->qcount) = f;
    st->qcount++;
    sse__stream_pending(st, sse_frame_len(f));
    if (sse__stream_is_h2(st))
        sse__h2_stream_queued(st);
    return 0;
}

int sse__stream_answer(struct sse_stream *st, const struct sse__head *h, const void *body,
                       size_t len)
{
    struct sse__conn *c = st->conn;
    if (st->head || st->qcount)
        return SSE_EBUSY; /* HTTP/1.1 answers one request at a time: see sse__conn_parse */
    sse_buf b;
    sse_buf_init(&b, 0);
    sse_frame *hf = NULL, *bf = NULL;
    int rc = sse__h1_head(&b, h, sse__server_date(c->srv));
    if (!rc)
        rc = sse_frame_from_buf(&hf, &b);
    sse_buf_free(&b);
    if (!rc && len)
        rc = sse_frame_new(&bf, body, len);
    if (!rc && bf)
        rc = sse__stream_enqueue(st, bf); /* into an empty queue: the inline slot, no failure */
    if (rc) {
        sse_frame_unref(bf);
        sse_frame_unref(hf);
        return rc;
    }
    st->head = hf;
    sse__stream_pending(st, sse_frame_len(hf));
    return 0;
}

/* Drop the frame at the head of the queue (written, or the stream is going). */
static void sse__stream_pop(struct sse_stream *st)
{
    sse_frame_unref(*sse__stream_slot(st, 0));
    st->qhead = (st->qhead + 1) & (st->qcap - 1);
    st->qcount--;
    st->qoff = 0;
}

/* n bytes of the pending output were written (HTTP/2: handed to nghttp2): drop the head and
 * frames they finish. */
void sse__stream_consume(struct sse_stream *st, size_t n)
{
    struct sse__conn *c = st->conn;
    sse_server *s = c->srv;
    st->qbytes -= n;
    if (st->drain_fn && st->qbytes <= st->drain_low && !(st->sflags & SSE__S_DRAIN_DUE)) {
        st->sflags |= SSE__S_DRAIN_DUE; /* run by the walk: never from inside a write */
        c->flags |= SSE__F_DRAIN;
        sse__conn_mark_dirty(c);
    }
    st->bytes_out += n;
    s->st.bytes_written_total += n;
    if (sse__stream_is_h2(st))
        ((struct sse__h2s *)st)->t_act = sse__now(s);
    else
        c->t_act = sse__now(s);
    if (st->head) {
        size_t left = sse_frame_len(st->head) - st->qoff;
        if (n < left) {
            st->qoff += (uint32_t)n;
            return;
        }
        n -= left;
        st->qoff = 0;
        sse_frame_unref(st->head);
        st->head = NULL;
    }
    while (n > 0 && st->qcount > 0) {
        size_t left = sse_frame_len(*sse__stream_slot(st, 0)) - st->qoff;
        if (n < left) {
            st->qoff += (uint32_t)n;
            return;
        }
        n -= left;
        sse__stream_pop(st);
        s->st.frames_written_total++;
    }
    /* empty frames at the head are done too */
    while (st->qcount > 0 && sse_frame_len(*sse__stream_slot(st, 0)) == st->qoff) {
        sse__stream_pop(st);
        s->st.frames_written_total++;
    }
    if (st->qcount == 0) { /* idle streams hold no ring */
        if (st->qcap > 1)
            sse__free(st->q.ring);
        st->q.ring = NULL;
        st->qcap = st->qhead = st->qoff = 0;
    }
}

/* Fill bufs from the pending output; returns the count and the byte total in *total. */
static unsigned sse__stream_bufs(struct sse_stream *st, uv_buf_t *bufs, size_t *total)
{
    unsigned n = 0;
    size_t sum = 0, off = st->qoff;
    if (st->head) {
        sum = sse_frame_len(st->head) - off;
        bufs[n++] = uv_buf_init((char *)sse_frame_data(st->head) + off, (unsigned)sum);
        off = 0;
    }
    for (uint32_t i = 0; i < st->qcount && n < SSE__IOV_BATCH; i++) {
        sse_frame *f = *sse__stream_slot(st, i);
        size_t len = sse_frame_len(f) - off;
        off = 0;
        if (!len)
            continue;
        if (n && sum + len > SSE__WRITE_MAX)
            break;
        bufs[n++] =
            uv_buf_init((char *)sse_frame_data(f) + (sse_frame_len(f) - len), (unsigned)len);
        sum += len;
    }
    *total = sum;
    return n;
}

static void sse__conn_finish_if_flushed(struct sse__conn *c);

/* The close reason for a failed write: the peer went away, or an error; a close the API asked
 * for stays reported as such. */
static int sse__write_error_reason(const struct sse__conn *c, int err)
{
    if (c->flags & SSE__F_CLOSE_FLUSH)
        return c->st.reason;
    return sse__write_error_close(err);
}

/* The stream part of a connection ends: count it, log it, run on_close (once). */
void sse__stream_closed(struct sse_stream *st, int reason)
{
    sse_server *s = st->conn->srv;
    uint32_t t_open = sse__stream_is_h2(st) ? ((struct sse__h2s *)st)->t_open : st->conn->t_mark;
    st->drain_fn = 0; /* a closed stream is never told it drained */
    st->sflags &= (uint8_t)~SSE__S_DRAIN_DUE;
    if (!(st->sflags & SSE__S_WAS_STREAM) || (st->sflags & SSE__S_CLOSE_CB))
        return;
    st->sflags |= SSE__S_CLOSE_CB;
    s->st.streams--;
    if (reason == SSE_CLOSE_SLOW)
        s->st.closed_slow_total++;
    else if (reason == SSE_CLOSE_TIMEOUT)
        s->st.closed_timeout_total++;
    if (st->logline && s->o.access_log)
        sse__log(s, SSE_LOG_INFO, "%s stream closed (%s) %llu bytes %.3fs", st->logline,
                 sse_close_reason_name(reason), (unsigned long long)st->bytes_out,
                 (double)(uint32_t)(sse__now(s) - t_open) / 1e3);
    if (st->on_close)
        st->on_close(st, reason, st->on_close_data);
}

void sse__conn_write_done(struct sse__conn *c, int status)
{
    if (c->flags & SSE__F_H2) {
        sse__h2_write_done(c, status);
        return;
    }
    c->flags &= (uint16_t)~SSE__F_WRITING;
    if (c->state == SSE__ST_CLOSED)
        return;
    if (status < 0) {
        sse__conn_close(c, sse__write_error_reason(c, status));
        return;
    }
    size_t n = c->inflight;
    c->inflight = 0;
    sse__stream_consume(&c->st, n);
    if (c->st.head || c->st.qcount)
        sse__conn_flush(c);
    else
        sse__conn_finish_if_flushed(c);
}

void sse__conn_shutdown_done(struct sse__conn *c, int status)
{
    if (c->state == SSE__ST_CLOSED)
        return;
    if (status < 0 || (c->flags & SSE__F_EOF))
        sse__conn_close(c, c->st.reason);
}

/*
 * Nothing is left to write. If the connection was to close, shut it down and linger for the
 * EOF; if pipelined requests wait for this answer to be out, have the walk parse them.
 */
static void sse__conn_finish_if_flushed(struct sse__conn *c)
{
    if (sse__conn_writing(c) || c->state == SSE__ST_LINGER || c->state == SSE__ST_CLOSED)
        return;
    if (!(c->flags & SSE__F_CLOSE_FLUSH)) {
        if ((c->flags & SSE__F_PROCESS) && c->state == SSE__ST_READ)
            sse__conn_mark_dirty(c);
        return;
    }
    sse__stream_closed(&c->st, c->st.reason);
    if (c->flags & SSE__F_EOF) {
        sse__conn_close(c, c->st.reason);
        return;
    }
    if (sse__conn_tp(c)->shutdown(c) != 0) {
        sse__conn_close(c, c->st.reason);
        return;
    }
    c->state = SSE__ST_LINGER;
    c->t_mark = sse__now(c->srv);
}

void sse__conn_flush(struct sse__conn *c)
{
    sse_server *s = c->srv;
    struct sse_stream *st = &c->st;
    uv_buf_t bufs[SSE__IOV_BATCH];
    if (c->flags & SSE__F_H2) {
        sse__h2_flush(c);
        return;
    }
    if (c->state == SSE__ST_CLOSED || (c->flags & SSE__F_WRITING))
        return;
    while (st->head || st->qcount) {
        size_t total;
        unsigned n = sse__stream_bufs(st, bufs, &total);
        if (n == 0) { /* only empty frames */
            sse__stream_consume(st, 0);
            break;
        }
        int r = sse__conn_tp(c)->try_writev(c, bufs, n);
        s->st.writes_total++;
        if (r < 0) {
            sse__conn_kill(c, sse__write_error_reason(c, r));
            return;
        }
        if (r > 0)
            sse__stream_consume(st, (size_t)r);
        if ((size_t)r == total)
            continue; /* all of this batch went out; more frames may follow */
        /* the socket is full: hand the rest to one writev, which waits for writability */
        n = sse__stream_bufs(st, bufs, &total);
        if (sse__conn_tp(c)->writev(c, bufs, n) != 0) {
            sse__conn_kill(c, SSE_CLOSE_ERROR);
            return;
        }
        s->st.writes_total++;
        c->flags |= SSE__F_WRITING;
        c->inflight = (uint32_t)total;
        return;
    }
    sse__conn_finish_if_flushed(c);
}

void sse__conn_closed(struct sse__conn *c)
{
    sse_server *s = c->srv;
    struct sse_stream *st = &c->st;
    while (st->qcount)
        sse__stream_pop(st);
    if (st->qcap > 1)
        sse__free(st->q.ring);
    sse_frame_unref(st->head);
    sse__free(st->logline);
    if (c->flags & SSE__F_H2)
        sse__h2_free(c);
    else
        sse__conn_pend_free(c);
    if (c->flags & SSE__F_DIRTY)
        sse__server_dirty_remove(s, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sse__free(c);
    s->st.connections--;
    sse__server_conn_freed(s);
}

void sse__conn_close(struct sse__conn *c, int reason)
{
    if (c->state == SSE__ST_CLOSED)
        return;
    c->state = SSE__ST_CLOSED;
    if (c->flags & SSE__F_H2)
        sse__h2_close_streams(c, reason);
    else
        sse__stream_closed(&c->st, reason);
    if (c->req) { /* a deferred request whose connection goes first */
        sse_request *r = c->req;
        c->req = NULL;
        r->conn = NULL;
        if (r->on_abort)
            r->on_abort(r, r->abort_data);
        if (!(r->flags & SSE__R_IN_HANDLER))
            sse__request_free(r);
    }
    sse__conn_tp(c)->close(c);
}

void sse__conn_close_after_flush(struct sse__conn *c, int reason)
{
    if (c->state == SSE__ST_CLOSED || (c->flags & SSE__F_CLOSE_FLUSH))
        return;
    c->flags |= SSE__F_CLOSE_FLUSH;
    c->st.reason = (uint8_t)reason;
    if (c->state != SSE__ST_STREAM)
        c->state = SSE__ST_DONE;
    sse__conn_mark_dirty(c);
}

void sse__server_walk(sse_server *s)
{
    struct sse__conn *c;
    sse_request *r;
    while ((r = s->free_reqs)) {
        s->free_reqs = r->next_free;
        sse__request_free(r);
    }
    while ((c = s->dirty)) {
        s->dirty = c->dirty_next;
        c->flags &= (uint16_t)~SSE__F_DIRTY;
        c->dirty_next = NULL;
        if (c->state == SSE__ST_CLOSED)
            continue;
        if (c->flags & SSE__F_KILL) {
            sse__conn_close(c, c->st.reason);
            continue;
        }
        if ((c->flags & SSE__F_PROCESS) && c->state == SSE__ST_READ && !sse__conn_writing(c)) {
            c->flags &= (uint16_t)~SSE__F_PROCESS;
            sse__conn_process_pending(c);
            if (c->state == SSE__ST_CLOSED)
                continue;
        }
        if (c->flags & SSE__F_DRAIN) { /* before the flush: it sends what the callbacks queue */
            sse__stream_drains(c);
            if (c->state == SSE__ST_CLOSED)
                continue;
        }
        sse__conn_flush(c);
        if (c->state != SSE__ST_CLOSED && (c->flags & SSE__F_KILL) && !(c->flags & SSE__F_DIRTY))
            sse__conn_close(c, c->st.reason);
    }
}

/* ---------------------------------------------------------------- drain callbacks */

/* Whether the stream still takes frames. */
static int sse__stream_open(const sse_stream *st); /* below, with the stream API */

void sse__stream_drain_fire(struct sse_stream *st)
{
    if (!(st->sflags & SSE__S_DRAIN_DUE))
        return;
    st->sflags &= (uint8_t)~SSE__S_DRAIN_DUE;
    unsigned slot = st->drain_fn;
    st->drain_fn = 0; /* one-shot: the callback may arm it again */
    if (slot && sse__stream_open(st))
        st->conn->srv->drain_fns[slot - 1](st, st->data);
}

void sse__stream_drains(struct sse__conn *c)
{
    c->flags &= (uint16_t)~SSE__F_DRAIN;
    if (c->flags & SSE__F_H2)
        sse__h2_drains(c);
    else
        sse__stream_drain_fire(&c->st);
}

/* The slot (1-based) of fn in s's table of drain functions, added if new; 0 when full. */
static unsigned sse__drain_slot(sse_server *s, sse_stream_drain_cb fn)
{
    for (unsigned i = 0; i < s->n_drain_fns; i++)
        if (s->drain_fns[i] == fn)
            return i + 1;
    if (s->n_drain_fns == SSE__DRAIN_FNS)
        return 0;
    s->drain_fns[s->n_drain_fns++] = fn;
    return s->n_drain_fns;
}

int sse_stream_on_drain(sse_stream *st, size_t low_watermark, sse_stream_drain_cb cb)
{
    if (!st || low_watermark > UINT32_MAX)
        return SSE_EINVAL;
    st->sflags &= (uint8_t)~SSE__S_DRAIN_DUE; /* a fall seen before this call is not this arm's */
    st->drain_fn = 0;
    if (!cb)
        return 0;
    if (!sse__stream_open(st))
        return SSE_ECLOSED;
    if (st->qbytes <= low_watermark)
        return SSE_DRAINED; /* edge-triggered: armed only above the mark, so no fall is missed */
    unsigned slot = sse__drain_slot(st->conn->srv, cb);
    if (!slot)
        return SSE_ELIMIT;
    st->drain_fn = (uint8_t)slot;
    st->drain_low = (uint32_t)low_watermark;
    return 0;
}

/* ---------------------------------------------------------------- the stream API */

const char *sse_close_reason_name(int reason)
{
    switch (reason) {
    case SSE_CLOSE_LOCAL:
        return "local";
    case SSE_CLOSE_PEER:
        return "peer";
    case SSE_CLOSE_SLOW:
        return "slow";
    case SSE_CLOSE_TIMEOUT:
        return "timeout";
    case SSE_CLOSE_ERROR:
        return "error";
    default:
        return "unknown";
    }
}

/* Whether the stream still takes frames. */
static int sse__stream_open(const sse_stream *st)
{
    if (sse__stream_is_h2(st))
        return sse__h2_stream_open(st);
    return st->conn->state == SSE__ST_STREAM && !(st->sflags & SSE__S_CLOSE_CB) &&
           !(st->conn->flags & (SSE__F_CLOSE_FLUSH | SSE__F_KILL));
}

int sse_stream_send_frame(sse_stream *st, sse_frame *frame)
{
    if (!st || !frame)
        return SSE_EINVAL;
    if (!sse__stream_open(st))
        return SSE_ECLOSED;
    size_t len = sse_frame_len(frame);
    if (st->qbytes + len > st->conn->srv->o.stream_queue_max) {
        /* a subscriber that cannot keep up: drop it (it reconnects with Last-Event-ID) */
        if (sse__stream_is_h2(st))
            sse__h2_stream_end(st, SSE_CLOSE_SLOW); /* that stream only */
        else
            sse__conn_kill(st->conn, SSE_CLOSE_SLOW);
        return SSE_ELIMIT;
    }
    int rc = sse__stream_enqueue(st, sse_frame_ref(frame));
    if (rc)
        sse_frame_unref(frame);
    return rc;
}

/* Queue the bytes of buf as a frame private to st (buf is emptied on success). */
static int sse__stream_send_buf(sse_stream *st, sse_buf *buf)
{
    sse_frame *f;
    int rc = sse_frame_from_buf(&f, buf);
    if (rc)
        return rc;
    rc = sse_stream_send_frame(st, f);
    sse_frame_unref(f);
    return rc;
}

int sse_stream_send(sse_stream *st, const sse_event *ev)
{
    if (!st || !ev)
        return SSE_EINVAL;
    if (!sse__stream_open(st))
        return SSE_ECLOSED;
    sse_buf b;
    sse_buf_init(&b, st->conn->srv->o.stream_queue_max);
    int rc = sse_encode_event(&b, ev);
    if (!rc)
        rc = sse__stream_send_buf(st, &b);
    sse_buf_free(&b);
    return rc;
}

int sse_stream_comment(sse_stream *st, const char *text)
{
    if (!st || !text)
        return SSE_EINVAL;
    if (!sse__stream_open(st))
        return SSE_ECLOSED;
    sse_buf b;
    sse_buf_init(&b, st->conn->srv->o.stream_queue_max);
    int rc = sse_encode_comment(&b, text, strlen(text));
    if (!rc)
        rc = sse__stream_send_buf(st, &b);
    sse_buf_free(&b);
    return rc;
}

int sse_stream_retry(sse_stream *st, unsigned ms)
{
    if (!st)
        return SSE_EINVAL;
    if (!sse__stream_open(st))
        return SSE_ECLOSED;
    sse_buf b;
    sse_buf_init(&b, 64);
    int rc = sse_encode_retry(&b, ms);
    if (!rc)
        rc = sse__stream_send_buf(st, &b);
    sse_buf_free(&b);
    return rc;
}

void sse_stream_close(sse_stream *st)
{
    if (st && sse__stream_is_h2(st)) {
        if (sse__h2_stream_open(st))
            sse__h2_stream_end(st, SSE_CLOSE_LOCAL);
        return;
    }
    if (!st || st->conn->state != SSE__ST_STREAM)
        return;
    sse__conn_close_after_flush(st->conn, SSE_CLOSE_LOCAL);
}

size_t sse_stream_queued_bytes(const sse_stream *st)
{
    return st ? st->qbytes : 0;
}

void sse_stream_on_close(sse_stream *st, void (*cb)(sse_stream *st, int reason, void *user_data),
                         void *user_data)
{
    if (!st)
        return;
    st->on_close = cb;
    st->on_close_data = user_data;
}

void sse_stream_set_data(sse_stream *st, void *data)
{
    if (st)
        st->data = data;
}

void *sse_stream_get_data(const sse_stream *st)
{
    return st ? st->data : NULL;
}

sse_server *sse_stream_server(const sse_stream *st)
{
    return st ? st->conn->srv : NULL;
}
