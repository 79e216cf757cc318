/*
 * pipe.c: a member's end of the pipe bus (include/sse/bus.h): the bus of one worker process of
 * `ssehub serve --workers`, connected to the sequencer (sequencer.c) by a Unix stream socket.
 *
 * With followers (an LMDB sequencer whose workers read the history from the file themselves),
 * relayed updates carry the position of their commit ('V' frames): the hub asks for it during
 * receive (sse_bus_received_position) and its follower store appends at that position.
 *
 * Publish writes the message up the socket and waits for the sequencer's word on it: ACK once it
 * is stored and relayed (to this member too: the message comes back through receive first), NACK
 * when it could not be stored. The sequencer answers one member's messages in the order it sent
 * them, so the outstanding publishes are a FIFO. Received updates go to the receive callback as
 * they are read; a lost sequencer is reported once (on_lost) and fails what is outstanding.
 *
 * Not owned here: ordering (the sequencer), process supervision (the CLI).
 */
#include "bus/bus_internal.h"
#include "bus/pipe_frame.h"
#include "common/alloc.h"

#include <errno.h>
#include <sse/bus.h>
#include <sse/store.h>
#include <string.h>
#include <unistd.h>

struct outstanding {
    struct outstanding *next;
    sse_bus_publish_cb done;
    void *ud;
};

struct pipe_bus {
    sse_bus base; /* must be first */
    sse_bus_pipe_options o;
    uv_pipe_t *pipe; /* NULL until started; freed in its close callback */
    int fd;          /* until started */
    unsigned char *in;
    size_t in_len;
    sse_bus_receive_cb receive;
    void *ud;
    struct outstanding *head, *tail;
    int lost;
    uint64_t hist_pos; /* the end mark's position (followers) */
    int has_hist_pos;
    sse_bus_close_cb close_done;
    void *close_ud;
};

struct wreq {
    uv_write_t req;
    unsigned char data[];
};

static void fail_outstanding(struct pipe_bus *b, int err)
{
    while (b->head) {
        struct outstanding *o = b->head;
        b->head = o->next;
        if (!b->head)
            b->tail = NULL;
        if (o->done)
            o->done(o->ud, err);
        sse__free(o);
    }
}

static void lost(struct pipe_bus *b)
{
    if (b->lost)
        return;
    b->lost = 1;
    uv_read_stop((uv_stream_t *)b->pipe);
    fail_outstanding(b, SSE_EIO);
    if (b->o.on_lost)
        b->o.on_lost(b->o.on_lost_data);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a broken pipe shows as EOF on the read side */
    sse__free(req);
}

static int send_frame(struct pipe_bus *b, int type, const void *p, size_t len)
{
    if (len > b->o.max_message)
        return SSE_ELIMIT;
    if (uv_stream_get_write_queue_size((uv_stream_t *)b->pipe) > b->o.queue_max)
        return SSE_EBUSY; /* the sequencer does not keep up: refuse rather than grow */
    struct wreq *r = sse__malloc(sizeof(*r) + SSE__PIPE_HDR + len);
    if (!r)
        return SSE_ENOMEM;
    sse__pipe_put_hdr(r->data, len, type);
    if (len)
        memcpy(r->data + SSE__PIPE_HDR, p, len);
    uv_buf_t buf = uv_buf_init((char *)r->data, (unsigned)(SSE__PIPE_HDR + len));
    if (uv_write(&r->req, (uv_stream_t *)b->pipe, &buf, 1, on_written)) {
        sse__free(r);
        return SSE_EIO;
    }
    return 0;
}

/* One frame from the sequencer. 0, or -1: a protocol error (the pipe is then given up). */
static int on_frame(struct pipe_bus *b, int type, const unsigned char *p, size_t len)
{
    switch (type) {
    case SSE__PIPE_UPDATE:
    case SSE__PIPE_PAST:
        b->receive(b->ud, p, len, type == SSE__PIPE_PAST ? SSE_BUS_HISTORY : 0);
        return 0;
    case SSE__PIPE_UPDATE_AT: /* followers: the store's position first */
        if (len < 8)
            return -1;
        b->base.rx_position = sse__pipe_get_u64(p);
        b->receive(b->ud, p + 8, len - 8, 0);
        b->base.rx_position = 0;
        return 0;
    case SSE__PIPE_ACK:
    case SSE__PIPE_NACK: {
        struct outstanding *o = b->head;
        if (!o || len)
            return -1;
        b->head = o->next;
        if (!b->head)
            b->tail = NULL;
        if (o->done)
            o->done(o->ud, type == SSE__PIPE_ACK ? 0 : SSE_EIO);
        sse__free(o);
        return 0;
    }
    default:
        return -1;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pipe_bus *b = h->data;
    (void)suggested;
    buf->base = (char *)b->in + b->in_len;
    buf->len = SSE__PIPE_HDR + b->o.max_message - b->in_len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pipe_bus *b = s->data;
    (void)buf;
    if (nread < 0) {
        lost(b);
        return;
    }
    b->in_len += (size_t)nread;
    size_t off = 0;
    while (b->in_len - off >= SSE__PIPE_HDR && !b->lost) {
        uint32_t len = sse__pipe_len(b->in + off);
        if (len < 1 || len - 1 > b->o.max_message) {
            lost(b);
            return;
        }
        if (b->in_len - off < 4 + (size_t)len)
            break;
        if (on_frame(b, b->in[off + 4], b->in + off + SSE__PIPE_HDR, len - 1)) {
            lost(b);
            return;
        }
        off += 4 + (size_t)len;
    }
    memmove(b->in, b->in + off, b->in_len - off);
    b->in_len -= off;
}

static int pipe_start(sse_bus *bus, sse_bus_receive_cb receive, void *ud)
{
    struct pipe_bus *b = (struct pipe_bus *)bus;
    int rc;
    if (b->pipe || !receive)
        return SSE_EINVAL;
    if (!(b->pipe = sse__calloc(1, sizeof(*b->pipe))))
        return SSE_ENOMEM;
    b->receive = receive;
    b->ud = ud;
    if ((rc = uv_pipe_init(b->o.loop, b->pipe, 0))) {
        sse__free(b->pipe);
        b->pipe = NULL;
        return rc;
    }
    b->pipe->data = b;
    if (!(rc = uv_pipe_open(b->pipe, b->fd)))
        b->fd = -1; /* the handle owns it now */
    if (rc || (rc = uv_read_start((uv_stream_t *)b->pipe, on_alloc, on_read))) {
        b->lost = 1; /* close() releases the handle */
        return rc;
    }
    return 0;
}

int sse_bus_pipe_ready(sse_bus *bus)
{
    struct pipe_bus *b = (struct pipe_bus *)bus;
    if (!b->pipe || b->lost)
        return SSE_ECLOSED;
    return send_frame(b, SSE__PIPE_READY, NULL, 0);
}

static int pipe_publish(sse_bus *bus, const void *msg, size_t len, sse_bus_publish_cb done,
                        void *ud)
{
    struct pipe_bus *b = (struct pipe_bus *)bus;
    if (!b->pipe || b->lost || b->close_done)
        return SSE_ECLOSED;
    struct outstanding *o = sse__calloc(1, sizeof(*o));
    if (!o)
        return SSE_ENOMEM;
    int rc = send_frame(b, SSE__PIPE_UPDATE, msg, len);
    if (rc) {
        sse__free(o);
        return rc;
    }
    o->done = done;
    o->ud = ud;
    if (b->tail)
        b->tail->next = o;
    else
        b->head = o;
    b->tail = o;
    return 0;
}

static void bus_free(struct pipe_bus *b)
{
    if (b->fd >= 0)
        close(b->fd);
    sse__free(b->in);
    sse__free(b);
}

static void pipe_closed(uv_handle_t *h)
{
    struct pipe_bus *b = h->data;
    sse_bus_close_cb done = b->close_done;
    void *ud = b->close_ud;
    sse__free(h);
    bus_free(b);
    if (done)
        done(ud);
}

static void noop_done(void *ud)
{
    (void)ud;
}

static void pipe_close(sse_bus *bus, sse_bus_close_cb done, void *ud)
{
    struct pipe_bus *b = (struct pipe_bus *)bus;
    b->o.on_lost = NULL;
    fail_outstanding(b, SSE_ECLOSED);
    if (!b->pipe) {
        bus_free(b);
        if (done)
            done(ud);
        return;
    }
    b->close_done = done ? done : noop_done;
    b->close_ud = ud;
    uv_close((uv_handle_t *)b->pipe, pipe_closed);
}

static const sse_bus_ops pipe_ops = {
    SSE_BUS_OPS_VERSION, "pipe", pipe_start, pipe_publish, pipe_close, NULL, NULL, NULL, NULL};

int sse_bus_pipe_new(sse_bus **out, const sse_bus_pipe_options *o)
{
    if (!o || !o->loop || o->fd < 0 || !o->max_message)
        return SSE_EINVAL;
    struct pipe_bus *b = sse__calloc(1, sizeof(*b));
    if (!b)
        return SSE_ENOMEM;
    b->base.ops = &pipe_ops;
    b->o = *o;
    if (!b->o.queue_max)
        b->o.queue_max = 64u << 20;
    b->fd = o->fd;
    if (!(b->in = sse__malloc(SSE__PIPE_HDR + o->max_message))) {
        sse__free(b);
        return SSE_ENOMEM;
    }
    *out = &b->base;
    return 0;
}

static int read_full(int fd, void *p, size_t n)
{
    unsigned char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return SSE_EIO;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One history message into the store. */
static int store_message(sse_store *store, const unsigned char *p, size_t len)
{
    sse_bus_msg *m = NULL;
    int rc = sse_bus_msg_decode(p, len, &m);
    if (!rc)
        rc = sse__bus_msg_store(store, m, NULL, NULL);
    sse_bus_msg_free(m);
    return rc;
}

int sse_bus_pipe_load_history(sse_bus *bus, sse_store *store)
{
    struct pipe_bus *b = (struct pipe_bus *)bus;
    if (b->pipe || b->fd < 0)
        return SSE_EINVAL;
    for (;;) {
        unsigned char h[SSE__PIPE_HDR];
        int rc = read_full(b->fd, h, sizeof(h));
        if (rc)
            return rc;
        uint32_t len = sse__pipe_len(h);
        if (len < 1 || len - 1 > b->o.max_message)
            return SSE_EPROTO;
        if (h[4] == SSE__PIPE_HISTEND && len == 1)
            return 0;
        if (h[4] == SSE__PIPE_HISTEND && len == 9) { /* followers: where the relay starts */
            unsigned char p[8];
            if ((rc = read_full(b->fd, p, 8)))
                return rc;
            b->hist_pos = sse__pipe_get_u64(p);
            b->has_hist_pos = 1;
            return 0;
        }
        if (h[4] != SSE__PIPE_PAST)
            return SSE_EPROTO;
        if ((rc = read_full(b->fd, b->in, len - 1)) || (rc = store_message(store, b->in, len - 1)))
            return rc;
    }
}

int sse_bus_pipe_history_position(const sse_bus *bus, uint64_t *pos)
{
    const struct pipe_bus *b = (const struct pipe_bus *)bus;
    if (!b->has_hist_pos)
        return SSE_ENOTFOUND;
    *pos = b->hist_pos;
    return 0;
}
