/*
 * stream.c: the write path of every connection, and the event-stream API.
 *
 * Nothing is written when something is queued: sse__conn_enqueue appends a frame reference to
 * the connection's ring and puts the connection on the server's dirty list. Once per loop turn
 * (uv_check after I/O callbacks, uv_prepare before the loop blocks) sse__server_walk visits the
 * dirty connections and writes each one's whole queue with a single uv_try_write (a writev over
 * up to SSE__IOV_BATCH frames). What the socket refuses stays queued and goes out through one
 * uv_write, which waits for writability; the frames stay referenced until it completes. Closes
 * that the API asks for (sse_stream_close, the queue bound) are also done by the walk, so user
 * callbacks never run inside a send.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <string.h>

/* Frames per writev. Linux's IOV_MAX is 1024; this bounds the stack used by the walk. */
#define SSE__IOV_BATCH 256

void sse__conn_mark_dirty(struct sse_stream *c)
{
    if (c->flags & SSE__F_DIRTY)
        return;
    c->flags |= SSE__F_DIRTY;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

/*
 * Slot i (0 = the head) of the queue. A queue of one frame, the usual case when a subscriber
 * keeps up, lives inline in the connection: the fan-out path then allocates nothing per
 * subscriber per event. Only a subscriber with two or more frames pending gets a ring.
 */
static inline sse_frame **sse__conn_slot(struct sse_stream *c, uint32_t i)
{
    if (c->qcap == 1)
        return &c->q.one;
    return &c->q.ring[(c->qhead + i) & (c->qcap - 1)];
}

int sse__conn_enqueue(struct sse_stream *c, sse_frame *f)
{
    if (c->qcap == 0) {
        c->qcap = 1; /* the inline slot */
        c->qhead = 0;
    } else if (c->qcount == c->qcap) {
        uint32_t ncap = c->qcap == 1 ? 4 : c->qcap * 2;
        sse_frame **nq = sse__malloc(ncap * sizeof(*nq));
        if (!nq)
            return SSE_ENOMEM;
        for (uint32_t i = 0; i < c->qcount; i++)
            nq[i] = *sse__conn_slot(c, i);
        if (c->qcap > 1)
            sse__free(c->q.ring);
        c->q.ring = nq;
        c->qhead = 0;
        c->qcap = ncap;
    }
    *sse__conn_slot(c, c->qcount) = f;
    c->qcount++;
    if (c->qbytes == 0 && !c->wreq)
        c->t_act = sse__now(c->srv); /* the write timeout counts from here */
    c->qbytes += sse_frame_len(f);
    sse__conn_mark_dirty(c);
    return 0;
}

/* n bytes of the queue were written: drop the frames they finish. */
static void sse__conn_consume(struct sse_stream *c, size_t n)
{
    sse_server *s = c->srv;
    c->qbytes -= n;
    c->bytes_out += n;
    s->st.bytes_written_total += n;
    c->t_act = sse__now(s);
    while (n > 0 && c->qcount > 0) {
        sse_frame *f = *sse__conn_slot(c, 0);
        size_t left = sse_frame_len(f) - c->qoff;
        if (n < left) {
            c->qoff += (uint32_t)n;
            return;
        }
        n -= left;
        c->qoff = 0;
        c->qhead = (c->qhead + 1) & (c->qcap - 1);
        c->qcount--;
        s->st.frames_written_total++;
        sse_frame_unref(f);
    }
    /* empty frames at the head are done too */
    while (c->qcount > 0 && sse_frame_len(*sse__conn_slot(c, 0)) == c->qoff) {
        sse_frame_unref(*sse__conn_slot(c, 0));
        c->qhead = (c->qhead + 1) & (c->qcap - 1);
        c->qcount--;
        c->qoff = 0;
        s->st.frames_written_total++;
    }
    if (c->qcount == 0) { /* idle connections hold no ring */
        if (c->qcap > 1)
            sse__free(c->q.ring);
        c->q.ring = NULL;
        c->qcap = c->qhead = c->qoff = 0;
    }
}

/* Fill bufs from the queue; returns the count and the byte total in *total. */
static unsigned sse__conn_bufs(struct sse_stream *c, uv_buf_t *bufs, size_t *total)
{
    unsigned n = 0;
    size_t sum = 0;
    for (uint32_t i = 0; i < c->qcount && n < SSE__IOV_BATCH; i++) {
        sse_frame *f = *sse__conn_slot(c, i);
        size_t off = i == 0 ? c->qoff : 0;
        size_t len = sse_frame_len(f) - off;
        if (!len)
            continue;
        bufs[n++] = uv_buf_init((char *)sse_frame_data(f) + off, (unsigned)len);
        sum += len;
    }
    *total = sum;
    return n;
}

static void sse__conn_finish_if_flushed(struct sse_stream *c);

/* The close reason for a failed write: the peer went away, or an error; a close the API asked
 * for stays reported as such. */
static int sse__write_error_reason(const struct sse_stream *c, int err)
{
    if (c->flags & SSE__F_CLOSE_FLUSH)
        return c->reason;
    return err == UV_EPIPE || err == UV_ECONNRESET ? SSE_CLOSE_PEER : SSE_CLOSE_ERROR;
}

/* The stream part of a connection ends: count it, log it, run on_close (once). */
static void sse__stream_closed(struct sse_stream *c, int reason)
{
    sse_server *s = c->srv;
    if (!(c->flags & SSE__F_WAS_STREAM) || (c->flags & SSE__F_CLOSE_CB))
        return;
    c->flags |= SSE__F_CLOSE_CB;
    s->st.streams--;
    if (reason == SSE_CLOSE_SLOW)
        s->st.closed_slow_total++;
    else if (reason == SSE_CLOSE_TIMEOUT)
        s->st.closed_timeout_total++;
    if (c->logline && s->o.access_log)
        sse__log(s, SSE_LOG_INFO, "%s stream closed (%s) %llu bytes %.3fs", c->logline,
                 sse_close_reason_name(reason), (unsigned long long)c->bytes_out,
                 (double)(uint32_t)(sse__now(s) - c->t_mark) / 1e3);
    if (c->on_close)
        c->on_close(c, reason, c->on_close_data);
}

static void sse__conn_write_cb(uv_write_t *w, int status)
{
    struct sse_stream *c = w->data;
    sse__free(w);
    c->wreq = NULL;
    if (c->state == SSE__ST_CLOSED)
        return;
    if (status < 0) {
        sse__conn_close(c, sse__write_error_reason(c, status));
        return;
    }
    size_t n = c->inflight;
    c->inflight = 0;
    sse__conn_consume(c, n);
    if (c->qcount)
        sse__conn_flush(c);
    else
        sse__conn_finish_if_flushed(c);
}

static void sse__conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct sse_stream *c = req->data;
    sse__free(req);
    if (c->state == SSE__ST_CLOSED)
        return;
    if (status < 0 || (c->flags & SSE__F_EOF))
        sse__conn_close(c, c->reason);
}

/* The queue is empty: if the connection was to close, shut it down and linger for the EOF. */
static void sse__conn_finish_if_flushed(struct sse_stream *c)
{
    if (c->qcount || c->wreq || !(c->flags & SSE__F_CLOSE_FLUSH) || c->state == SSE__ST_LINGER ||
        c->state == SSE__ST_CLOSED)
        return;
    sse__stream_closed(c, c->reason);
    if (c->flags & SSE__F_EOF) {
        sse__conn_close(c, c->reason);
        return;
    }
    uv_shutdown_t *req = sse__malloc(sizeof(*req));
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, sse__conn_shutdown_cb) != 0) {
        sse__free(req);
        sse__conn_close(c, c->reason);
        return;
    }
    req->data = c;
    c->state = SSE__ST_LINGER;
    c->t_mark = sse__now(c->srv);
}

void sse__conn_flush(struct sse_stream *c)
{
    sse_server *s = c->srv;
    uv_buf_t bufs[SSE__IOV_BATCH];
    if (c->state == SSE__ST_CLOSED || c->wreq)
        return;
    while (c->qcount) {
        size_t total;
        unsigned n = sse__conn_bufs(c, bufs, &total);
        if (n == 0) { /* only empty frames */
            sse__conn_consume(c, 0);
            break;
        }
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        s->st.writes_total++;
        if (r == UV_EAGAIN || r == UV_ENOSYS)
            r = 0;
        if (r < 0) {
            c->reason = (uint8_t)sse__write_error_reason(c, r);
            c->flags |= SSE__F_KILL;
            sse__conn_mark_dirty(c);
            return;
        }
        if (r > 0)
            sse__conn_consume(c, (size_t)r);
        if ((size_t)r == total)
            continue; /* all of this batch went out; more frames may follow */
        /* the socket is full: hand the rest to one uv_write, which waits for writability */
        n = sse__conn_bufs(c, bufs, &total);
        uv_write_t *w = sse__malloc(sizeof(*w));
        if (!w) {
            c->reason = SSE_CLOSE_ERROR;
            c->flags |= SSE__F_KILL;
            sse__conn_mark_dirty(c);
            return;
        }
        w->data = c;
        int rc = uv_write(w, (uv_stream_t *)&c->tcp, bufs, n, sse__conn_write_cb);
        if (rc < 0) {
            sse__free(w);
            c->reason = SSE_CLOSE_ERROR;
            c->flags |= SSE__F_KILL;
            sse__conn_mark_dirty(c);
            return;
        }
        s->st.writes_total++;
        c->wreq = w;
        c->inflight = total;
        return;
    }
    sse__conn_finish_if_flushed(c);
}

static void sse__conn_closed_cb(uv_handle_t *h)
{
    struct sse_stream *c = (struct sse_stream *)h;
    sse_server *s = c->srv;
    while (c->qcount) {
        sse_frame_unref(*sse__conn_slot(c, 0));
        c->qhead = (c->qhead + 1) & (c->qcap - 1);
        c->qcount--;
    }
    if (c->qcap > 1)
        sse__free(c->q.ring);
    sse__free(c->pend);
    sse__free(c->logline);
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

void sse__conn_close(struct sse_stream *c, int reason)
{
    if (c->state == SSE__ST_CLOSED)
        return;
    c->state = SSE__ST_CLOSED;
    sse__stream_closed(c, reason);
    if (c->req) { /* a deferred request whose connection goes first */
        sse_request *r = c->req;
        c->req = NULL;
        r->conn = NULL;
        if (r->on_abort)
            r->on_abort(r, r->abort_data);
        if (!(r->flags & SSE__R_IN_HANDLER))
            sse__request_free(r);
    }
    uv_close((uv_handle_t *)&c->tcp, sse__conn_closed_cb);
}

void sse__conn_close_after_flush(struct sse_stream *c, int reason)
{
    if (c->state == SSE__ST_CLOSED || (c->flags & SSE__F_CLOSE_FLUSH))
        return;
    c->flags |= SSE__F_CLOSE_FLUSH;
    c->reason = (uint8_t)reason;
    if (c->state != SSE__ST_STREAM)
        c->state = SSE__ST_DONE;
    sse__conn_mark_dirty(c);
}

void sse__server_walk(sse_server *s)
{
    struct sse_stream *c;
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
            sse__conn_close(c, c->reason);
            continue;
        }
        if ((c->flags & SSE__F_PROCESS) && c->state == SSE__ST_READ) {
            c->flags &= (uint16_t)~SSE__F_PROCESS;
            sse__conn_process_pending(c);
            if (c->state == SSE__ST_CLOSED)
                continue;
        }
        sse__conn_flush(c);
        if (c->state != SSE__ST_CLOSED && (c->flags & SSE__F_KILL) && !(c->flags & SSE__F_DIRTY))
            sse__conn_close(c, c->reason);
    }
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
    return st->state == SSE__ST_STREAM &&
           !(st->flags & (SSE__F_CLOSE_FLUSH | SSE__F_KILL | SSE__F_CLOSE_CB));
}

int sse_stream_send_frame(sse_stream *st, sse_frame *frame)
{
    if (!st || !frame)
        return SSE_EINVAL;
    if (!sse__stream_open(st))
        return SSE_ECLOSED;
    size_t len = sse_frame_len(frame);
    if (st->qbytes + len > st->srv->o.stream_queue_max) {
        /* a subscriber that cannot keep up: drop it (it reconnects with Last-Event-ID) */
        st->reason = SSE_CLOSE_SLOW;
        st->flags |= SSE__F_KILL;
        sse__conn_mark_dirty(st);
        return SSE_ELIMIT;
    }
    int rc = sse__conn_enqueue(st, sse_frame_ref(frame));
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
    sse_buf_init(&b, st->srv->o.stream_queue_max);
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
    sse_buf_init(&b, st->srv->o.stream_queue_max);
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
    if (!st || st->state != SSE__ST_STREAM)
        return;
    sse__conn_close_after_flush(st, SSE_CLOSE_LOCAL);
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
    return st ? st->srv : NULL;
}
