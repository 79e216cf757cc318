/*
 * transport_tcp.c: the plain TCP transport (see transport.h): a uv_tcp_t per connection, kept
 * in the connection's transport state area, so the connection is still one allocation.
 *
 * It owns the socket calls of a connection and nothing else: no buffering (try_writev is one
 * uv_try_write, writev one uv_write), no HTTP. The uv_write_t and uv_shutdown_t it needs are
 * allocated only while a write waits for the socket or a shutdown runs, never while idle.
 * Listening sockets stay in server.c; accept takes a connection from one of them.
 */
#include "common/alloc.h"
#include "server/internal.h"

static uv_tcp_t *sse__tcp(struct sse__conn *c)
{
    return sse__conn_tp_state(c);
}

static void sse__tcp_closed_cb(uv_handle_t *h)
{
    sse__conn_closed(h->data);
}

static int sse__tcp_accept(struct sse__conn *c, uv_stream_t *listener)
{
    uv_tcp_t *h = sse__tcp(c);
    int rc = uv_tcp_init(c->srv->loop, h);
    if (rc) { /* nothing to close: the handle was never initialised */
        sse__conn_closed(c);
        return rc;
    }
    h->data = c;
    rc = uv_accept(listener, (uv_stream_t *)h);
    if (rc) {
        uv_close((uv_handle_t *)h, sse__tcp_closed_cb);
        return rc;
    }
    uv_tcp_nodelay(h, 1);
    return 0;
}

static void sse__tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    *buf = sse__conn_read_buf(h->data);
}

static void sse__tcp_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    if (nread == 0) /* EAGAIN: nothing this time */
        return;
    sse__conn_on_read(h->data, nread > 0 ? buf->base : NULL, nread);
}

static int sse__tcp_read_start(struct sse__conn *c)
{
    return uv_read_start((uv_stream_t *)sse__tcp(c), sse__tcp_alloc_cb, sse__tcp_read_cb);
}

static void sse__tcp_read_stop(struct sse__conn *c)
{
    uv_read_stop((uv_stream_t *)sse__tcp(c));
}

static int sse__tcp_try_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    int r = uv_try_write((uv_stream_t *)sse__tcp(c), bufs, n);
    return r == UV_EAGAIN || r == UV_ENOSYS ? 0 : r;
}

static void sse__tcp_write_cb(uv_write_t *w, int status)
{
    struct sse__conn *c = w->data;
    sse__free(w);
    sse__conn_write_done(c, status);
}

static int sse__tcp_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    uv_write_t *w = sse__malloc(sizeof(*w));
    if (!w)
        return UV_ENOMEM;
    w->data = c;
    int rc = uv_write(w, (uv_stream_t *)sse__tcp(c), bufs, n, sse__tcp_write_cb);
    if (rc)
        sse__free(w);
    return rc;
}

static void sse__tcp_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct sse__conn *c = req->data;
    sse__free(req);
    sse__conn_shutdown_done(c, status);
}

static int sse__tcp_shutdown(struct sse__conn *c)
{
    uv_shutdown_t *req = sse__malloc(sizeof(*req));
    if (!req)
        return UV_ENOMEM;
    req->data = c;
    int rc = uv_shutdown(req, (uv_stream_t *)sse__tcp(c), sse__tcp_shutdown_cb);
    if (rc)
        sse__free(req);
    return rc;
}

static void sse__tcp_close(struct sse__conn *c)
{
    uv_close((uv_handle_t *)sse__tcp(c), sse__tcp_closed_cb);
}

static int sse__tcp_peer_addr(struct sse__conn *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    out[0] = '\0';
    int rc = uv_tcp_getpeername(sse__tcp(c), (struct sockaddr *)&ss, &sl);
    if (rc)
        return rc;
    if (ss.ss_family == AF_INET6)
        return uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
    return uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
}

const struct sse__transport sse__transport_tcp = {
    .name = "tcp",
    .state_size = sizeof(uv_tcp_t),
    .accept = sse__tcp_accept,
    .read_start = sse__tcp_read_start,
    .read_stop = sse__tcp_read_stop,
    .try_writev = sse__tcp_try_writev,
    .writev = sse__tcp_writev,
    .shutdown = sse__tcp_shutdown,
    .close = sse__tcp_close,
    .peer_addr = sse__tcp_peer_addr,
};
