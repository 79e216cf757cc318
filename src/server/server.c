/*
 * server.c: the server object: options, listening sockets, accepting, routes, the sweep timer
 * (heartbeats and every timeout, one timer for all connections), logging, stats and shutdown.
 *
 * Everything hangs off struct sse_server and belongs to one loop; there is no global state, so
 * several servers (one per loop and thread, SO_REUSEPORT on the same port) can run side by side.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SSE__READ_BUF_SIZE 65536
#define SSE__LINGER_MS 2000

void sse__log(sse_server *s, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (s->o.log) {
        s->o.log(s->o.log_data, level, line);
        return;
    }
    if (level > SSE_LOG_INFO)
        return; /* stderr gets no debug lines; a log callback sees every level */
    sse_log_stderr(level, NULL, line); /* the one line format (<sse/log.h>) */
}

const char *sse__server_date(sse_server *s)
{
    time_t now = time(NULL);
    if ((int64_t)now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = (int64_t)now;
    }
    return s->date;
}

static void sse__walk_check_cb(uv_check_t *h)
{
    sse__server_walk(h->data);
}

static void sse__walk_prepare_cb(uv_prepare_t *h)
{
    sse__server_walk(h->data);
}

/* One timer for every connection: heartbeats, request / keep-alive / write timeouts, linger. */
static void sse__sweep_cb(uv_timer_t *t)
{
    sse_server *s = t->data;
    uint32_t now = sse__now(s);
    for (struct sse__conn *c = s->conns; c; c = c->next) {
        int writing = sse__conn_writing(c);
        switch (c->state) {
        case SSE__ST_READ:
            if (writing) {
                if (now - c->t_act > s->o.write_timeout_ms)
                    sse__conn_close(c, SSE_CLOSE_TIMEOUT);
            } else if (c->pend) {
                if (now - c->t_mark > s->o.request_timeout_ms) {
                    sse__log(s, SSE_LOG_DEBUG, "request timeout");
                    sse__conn_pend_free(c);
                    sse__conn_reject(c, 408, NULL); /* 408, then close */
                }
            } else if (sse__conn_tp(c)->handshaking && sse__conn_tp(c)->handshaking(c)) {
                if (now - c->t_mark > sse__tls_handshake_timeout(s)) { /* t_mark: accepted */
                    sse__log(s, SSE_LOG_DEBUG, "handshake timeout");
                    sse__conn_close(c, SSE_CLOSE_TIMEOUT);
                }
            } else if (now - c->t_mark > ((c->flags & SSE__F_SERVED) ? s->o.keepalive_timeout_ms
                                                                     : s->o.request_timeout_ms)) {
                sse__conn_close(c, SSE_CLOSE_TIMEOUT);
            }
            break;
        case SSE__ST_STREAM:
            if (writing) {
                if (now - c->t_act > s->o.write_timeout_ms)
                    sse__conn_close(c, SSE_CLOSE_TIMEOUT);
            } else if (s->o.heartbeat_ms != UINT32_MAX && now - c->t_act >= s->o.heartbeat_ms &&
                       !(c->flags & (SSE__F_CLOSE_FLUSH | SSE__F_KILL))) {
                if (sse__stream_enqueue(&c->st, sse_frame_ref(s->hb)) != 0)
                    sse_frame_unref(s->hb);
            }
            break;
        case SSE__ST_DONE:
            if (writing && now - c->t_act > s->o.write_timeout_ms)
                sse__conn_close(c, SSE_CLOSE_TIMEOUT);
            break;
        case SSE__ST_LINGER:
            if (now - c->t_mark > SSE__LINGER_MS)
                sse__conn_close(c, c->st.reason);
            break;
        case SSE__ST_H2:
            sse__h2_sweep(c, now);
            break;
        default:
            break;
        }
    }
}

static unsigned sse__min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

/* How often the sweep timer looks at the connections: a quarter of the shortest timeout. */
static unsigned sweep_tick(const sse_server *s)
{
    unsigned tick = sse__min_u(sse__min_u(s->o.write_timeout_ms, s->o.request_timeout_ms),
                               sse__min_u(s->o.keepalive_timeout_ms, s->o.heartbeat_ms)) /
                    4;
    return tick < 5 ? 5 : tick > 1000 ? 1000 : tick;
}

int sse_server_new(sse_server **out, uv_loop_t *loop, const sse_server_options *opts)
{
    if (!out || !loop)
        return SSE_EINVAL;
    if (opts && opts->version != SSE_SERVER_OPTIONS_VERSION)
        return SSE_EINVAL;
    sse_server *s = sse__calloc(1, sizeof(*s));
    if (!s)
        return SSE_ENOMEM;
    if (opts)
        s->o = *opts;
    s->o.version = SSE_SERVER_OPTIONS_VERSION;
    s->o.cors_origins = NULL;
    s->o.cors_expose_headers = NULL;
    if (opts && opts->cors_expose_headers && strpbrk(opts->cors_expose_headers, "\r\n"))
        goto out_einval; /* a header value, copied into every CORS answer */
    if (!s->o.max_request_line)
        s->o.max_request_line = 8192;
    if (!s->o.max_header_bytes)
        s->o.max_header_bytes = 16384;
    if (!s->o.max_headers)
        s->o.max_headers = 100;
    if (!s->o.max_body)
        s->o.max_body = 1 << 20;
    if (!s->o.request_timeout_ms)
        s->o.request_timeout_ms = 10000;
    if (!s->o.max_buffered)
        s->o.max_buffered = (size_t)64 << 20;
    if (!s->o.keepalive_timeout_ms)
        s->o.keepalive_timeout_ms = 60000;
    if (!s->o.heartbeat_ms)
        s->o.heartbeat_ms = 15000;
    if (!s->o.write_timeout_ms)
        s->o.write_timeout_ms = 30000;
    if (!s->o.stream_queue_max)
        s->o.stream_queue_max = 4u << 20;
    /* HTTP/2 */
    if (!s->o.h2_max_streams)
        s->o.h2_max_streams = 100;
    if (!s->o.h2_header_table_size)
        s->o.h2_header_table_size = 4096;
    if (!s->o.h2_reset_burst)
        s->o.h2_reset_burst = 200;
    if (!s->o.h2_reset_rate)
        s->o.h2_reset_rate = 33;
    if (!s->o.h2_control_max)
        s->o.h2_control_max = 1000;
    s->alpn_h2 = s->o.h2 != 0;
    if (s->o.max_request_line > 1u << 30 || s->o.max_header_bytes > 1u << 30 ||
        s->o.max_body > ((size_t)1 << 40) || s->o.max_headers > 1u << 20)
        goto out_einval;
    s->lim.max_request_line = s->o.max_request_line;
    s->lim.max_header_bytes = s->o.max_header_bytes;
    s->lim.max_headers = s->o.max_headers;
    s->lim.max_body = s->o.max_body;
    s->loop = loop;
    s->routes_tail = &s->routes;
    s->date_sec = -1;
    s->port = -1;
    s->rbuf_size = SSE__READ_BUF_SIZE;
    s->tps[0].ops = &sse__transport_tcp;
    s->ntps = 1;
    if (opts && opts->cors_origins && !(s->o.cors_origins = sse__strdup(opts->cors_origins)))
        goto out_free;
    if (opts && opts->cors_expose_headers &&
        !(s->o.cors_expose_headers = sse__strdup(opts->cors_expose_headers)))
        goto out_free;
    s->hdrs = sse__calloc(s->o.max_headers, sizeof(*s->hdrs));
    s->rbuf = sse__malloc(s->rbuf_size);
    if (!s->hdrs || !s->rbuf)
        goto out_free;
    if (sse_frame_new(&s->hb, ":\n", 2))
        goto out_free;
    uv_check_init(loop, &s->check);
    uv_prepare_init(loop, &s->prepare);
    uv_timer_init(loop, &s->sweep);
    uv_timer_init(loop, &s->close_timer);
    s->check.data = s->prepare.data = s->sweep.data = s->close_timer.data = s;
    s->handles_open = 4;
    uv_check_start(&s->check, sse__walk_check_cb);
    uv_prepare_start(&s->prepare, sse__walk_prepare_cb);
    unsigned tick = sweep_tick(s);
    uv_timer_start(&s->sweep, sse__sweep_cb, tick, tick);
    /* The server's own handles never keep the loop alive: listeners and connections do. */
    uv_unref((uv_handle_t *)&s->check);
    uv_unref((uv_handle_t *)&s->prepare);
    uv_unref((uv_handle_t *)&s->sweep);
    *out = s;
    return 0;
out_einval:
    sse__free(s);
    return SSE_EINVAL;
out_free:
    sse_frame_unref(s->hb);
    sse__free(s->rbuf);
    sse__free(s->hdrs);
    sse__free((char *)s->o.cors_origins);
    sse__free((char *)s->o.cors_expose_headers);
    sse__free(s);
    return SSE_ENOMEM;
}

static void sse__listener_closed_cb(uv_handle_t *h)
{
    struct sse__listener *l = (struct sse__listener *)h;
    sse_server *s = l->srv;
    sse__free(l);
    s->handles_open--;
    sse__server_conn_freed(s);
}

static void sse__oom_closed_cb(uv_handle_t *h)
{
    sse_server *s = h->data;
    s->oom_busy = 0;
    s->handles_open--;
    sse__server_conn_freed(s);
}

static void sse__on_connection(uv_stream_t *ls, int status)
{
    struct sse__listener *l = (struct sse__listener *)ls;
    sse_server *s = l->srv;
    if (status < 0) {
        sse__log(s, SSE_LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    if (s->closing)
        return;
    const struct sse__transport *tp = s->tps[l->tp].ops;
    struct sse__conn *c = sse__calloc(1, sizeof(*c) + tp->state_size);
    if (!c) {
        /* accept and drop it, or libuv would stop accepting until the next accept */
        if (!s->oom_busy && uv_tcp_init(s->loop, &s->oom_tcp) == 0) {
            s->oom_busy = 1;
            s->handles_open++;
            s->oom_tcp.data = s;
            uv_accept(ls, (uv_stream_t *)&s->oom_tcp);
            uv_close((uv_handle_t *)&s->oom_tcp, sse__oom_closed_cb);
        }
        sse__log(s, SSE_LOG_ERROR, "accept: out of memory");
        return;
    }
    c->srv = s;
    c->tp = l->tp;
    c->st.conn = c;
    /* counted and linked first, as closed: a failed accept frees it through sse__conn_closed */
    c->state = SSE__ST_CLOSED;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->st.connections++;
    if (tp->accept(c, ls) != 0)
        return;
    c->state = SSE__ST_READ;
    s->st.accepted_total++;
    c->t_mark = c->t_act = sse__now(s);
    sse__conn_start(c, s->o.max_connections && s->st.connections > s->o.max_connections);
}

int sse_server_listen(sse_server *s, const char *host, int port)
{
    return sse__server_listen_tp(s, host, port, &sse__transport_tcp, NULL);
}

int sse__server_listen_tp(sse_server *s, const char *host, int port,
                          const struct sse__transport *tp, void *ctx)
{
    char name[64];
    struct sockaddr_storage ss;
    if (!s || !tp || port < 0 || port > 65535 || s->closing)
        return SSE_EINVAL;
    unsigned tpi = 0;
    while (tpi < s->ntps && (s->tps[tpi].ops != tp || s->tps[tpi].ctx != ctx))
        tpi++;
    if (tpi == SSE__TP_MAX)
        return SSE_ELIMIT;
    if (!host || !*host)
        host = "0.0.0.0";
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    size_t n = strlen(host);
    if (n >= sizeof(name))
        return SSE_EINVAL;
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        memcpy(name, host + 1, n - 2);
        name[n - 2] = '\0';
    } else {
        memcpy(name, host, n + 1);
    }
    int family;
    if (uv_ip4_addr(name, port, (struct sockaddr_in *)&ss) == 0)
        family = AF_INET;
    else if (uv_ip6_addr(name, port, (struct sockaddr_in6 *)&ss) == 0)
        family = AF_INET6;
    else
        return SSE_EINVAL;
    struct sse__listener *l = sse__calloc(1, sizeof(*l));
    if (!l)
        return SSE_ENOMEM;
    l->srv = s;
    l->tp = (uint8_t)tpi;
    if (tpi == s->ntps) { /* a new transport entry, kept for the server's life */
        s->tps[tpi].ops = tp;
        s->tps[tpi].ctx = ctx;
        s->ntps++;
    }
    int rc = uv_tcp_init_ex(s->loop, &l->tcp, (unsigned)family);
    if (rc) {
        sse__free(l);
        return rc;
    }
    s->handles_open++;
    uv_os_fd_t fd;
    if (s->o.reuse_port && uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0) {
        int one = 1;
        /* one listening socket per loop on the same port: the kernel spreads connections */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&l->tcp, 1024, sse__on_connection);
    int len = sizeof(ss);
    if (!rc)
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    if (rc) {
        uv_close((uv_handle_t *)&l->tcp, sse__listener_closed_cb);
        return rc;
    }
    int bound = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
    if (s->port < 0)
        s->port = bound;
    l->next = s->listeners;
    s->listeners = l;
    sse__log(s, SSE_LOG_INFO, "listening on %s%s%s:%d", family == AF_INET6 ? "[" : "", name,
             family == AF_INET6 ? "]" : "", bound);
    return 0;
}

int sse_split_host_port(const char *addr, char *host, size_t host_size, int *port)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || !colon[1])
        return SSE_EINVAL;
    unsigned long p = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9' || (p = p * 10 + (unsigned long)(*d - '0')) > 65535)
            return SSE_EINVAL;
    }
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { /* [v6]:port */
        h++;
        n -= 2;
    } else if (memchr(h, '[', n) || memchr(h, ']', n)) {
        return SSE_EINVAL;
    }
    if (n == 0) {
        h = "0.0.0.0";
        n = 7;
    }
    if (n >= host_size)
        return SSE_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

int sse_server_port(const sse_server *s)
{
    return s ? s->port : -1;
}

static int sse__add_route(sse_server *s, const char *method, const char *path, int kind,
                          sse_request_cb cb, sse_stream_cb scb, void *user_data, const char *dir)
{
    if (!s || !path || path[0] != '/')
        return SSE_EINVAL;
    struct sse__route *rt = sse__calloc(1, sizeof(*rt));
    if (!rt)
        return SSE_ENOMEM;
    size_t n = strlen(path);
    rt->prefix = n > 0 && path[n - 1] == '*';
    rt->path_len = rt->prefix ? n - 1 : n;
    rt->path = sse__strndup(path, rt->path_len);
    if (!rt->path)
        goto out_free;
    if (method && !(rt->method = sse__strdup(method)))
        goto out_free;
    if (dir) {
        char *real = realpath(dir, NULL); /* libc's malloc: copied into ours below */
        if (!real) {
            int err = -errno;
            sse__free(rt->method);
            sse__free(rt->path);
            sse__free(rt);
            return err;
        }
        rt->root = sse__strdup(real);
        free(real);
        if (!rt->root)
            goto out_free;
        rt->root_len = strlen(rt->root);
        while (rt->root_len > 1 && rt->root[rt->root_len - 1] == '/')
            rt->root[--rt->root_len] = '\0';
    }
    rt->kind = kind;
    rt->cb = cb;
    rt->stream_cb = scb;
    rt->user_data = user_data;
    *s->routes_tail = rt;
    s->routes_tail = &rt->next;
    return 0;
out_free:
    sse__free(rt->root);
    sse__free(rt->method);
    sse__free(rt->path);
    sse__free(rt);
    return SSE_ENOMEM;
}

int sse_server_route(sse_server *s, const char *method, const char *path, sse_request_cb cb,
                     void *user_data)
{
    if (!cb)
        return SSE_EINVAL;
    return sse__add_route(s, method, path, SSE__ROUTE_HANDLER, cb, NULL, user_data, NULL);
}

int sse_server_route_stream(sse_server *s, const char *path, sse_stream_cb cb, void *user_data)
{
    if (!cb)
        return SSE_EINVAL;
    return sse__add_route(s, "GET", path, SSE__ROUTE_STREAM, NULL, cb, user_data, NULL);
}

int sse_server_static(sse_server *s, const char *url_prefix, const char *dir)
{
    char path[1024];
    if (!s || !url_prefix || !dir || url_prefix[0] != '/')
        return SSE_EINVAL;
    size_t n = strlen(url_prefix);
    if (n + 2 > sizeof(path))
        return SSE_EINVAL;
    memcpy(path, url_prefix, n + 1);
    if (path[n - 1] != '*') {
        path[n] = '*';
        path[n + 1] = '\0';
    }
    return sse__add_route(s, "GET", path, SSE__ROUTE_STATIC, NULL, NULL, NULL, dir);
}

void sse__server_dirty_remove(sse_server *s, struct sse__conn *c)
{
    for (struct sse__conn **pp = &s->dirty; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    c->flags &= (uint16_t)~SSE__F_DIRTY;
}

static void sse__internal_closed_cb(uv_handle_t *h)
{
    sse_server *s = h->data;
    if (--s->handles_open == 0 && s->done)
        s->done(s, s->done_data);
}

void sse__server_conn_freed(sse_server *s)
{
    if (!s->closing || s->finalizing || s->conns)
        return;
    /* every connection is gone and no listener is left open but the internal handles */
    if (s->handles_open != 4)
        return;
    s->finalizing = 1;
    sse__server_walk(s); /* frees answered requests */
    uv_close((uv_handle_t *)&s->check, sse__internal_closed_cb);
    uv_close((uv_handle_t *)&s->prepare, sse__internal_closed_cb);
    uv_close((uv_handle_t *)&s->sweep, sse__internal_closed_cb);
    uv_close((uv_handle_t *)&s->close_timer, sse__internal_closed_cb);
}

static void sse__close_timer_cb(uv_timer_t *t)
{
    sse_server *s = t->data;
    sse__log(s, SSE_LOG_WARN, "shutdown: timeout, closing the remaining connections");
    for (struct sse__conn *c = s->conns; c; c = c->next)
        sse__conn_close(c, c->state == SSE__ST_STREAM ? SSE_CLOSE_LOCAL : c->st.reason);
}

void sse_server_close(sse_server *s, unsigned timeout_ms,
                      void (*done)(sse_server *s, void *user_data), void *user_data)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->done = done;
    s->done_data = user_data;
    struct sse__listener *l = s->listeners;
    s->listeners = NULL;
    while (l) {
        struct sse__listener *next = l->next;
        uv_close((uv_handle_t *)&l->tcp, sse__listener_closed_cb);
        l = next;
    }
    for (struct sse__conn *c = s->conns; c; c = c->next) {
        switch (c->state) {
        case SSE__ST_STREAM:
            sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
            break;
        case SSE__ST_READ:
            if (sse__conn_writing(c))
                sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
            else
                sse__conn_close(c, SSE_CLOSE_LOCAL);
            break;
        case SSE__ST_H2:
            sse__h2_shutdown(c);
            break;
        default: /* deferred requests finish (then close); DONE / LINGER close on their own */
            break;
        }
    }
    uv_timer_start(&s->close_timer, sse__close_timer_cb, timeout_ms ? timeout_ms : 1, 0);
    uv_unref((uv_handle_t *)&s->close_timer);
    sse__log(s, SSE_LOG_INFO, "shutdown: %llu connections to close",
             (unsigned long long)s->st.connections);
    if (!s->conns)
        sse__server_conn_freed(s);
}

void sse_server_free(sse_server *s)
{
    if (!s)
        return;
    sse_request *r;
    while ((r = s->free_reqs)) {
        s->free_reqs = r->next_free;
        sse__request_free(r);
    }
    struct sse__route *rt = s->routes;
    while (rt) {
        struct sse__route *next = rt->next;
        sse__free(rt->method);
        sse__free(rt->path);
        sse__free(rt->root);
        sse__free(rt);
        rt = next;
    }
    sse_frame_unref(s->hb);
    sse__free(s->rbuf);
    sse__free(s->hdrs);
    sse__free((char *)s->o.cors_origins);
    sse__tls_free(s->tls);
    sse__free((char *)s->o.cors_expose_headers);
    sse__free(s);
}

int sse_server_set_live(sse_server *s, const sse_server_options *opts)
{
    if (!s || !opts || opts->version != SSE_SERVER_OPTIONS_VERSION || s->closing)
        return SSE_EINVAL;
    char *cors = NULL;
    if (opts->cors_origins && !(cors = sse__strdup(opts->cors_origins)))
        return SSE_ENOMEM;
    sse__free((char *)s->o.cors_origins); /* read per request only, never kept */
    s->o.cors_origins = cors;
    s->o.cors_credentials = opts->cors_credentials;
    s->o.max_connections = opts->max_connections; /* checked at accept: open ones stay */
    s->o.heartbeat_ms = opts->heartbeat_ms ? opts->heartbeat_ms : 15000;
    unsigned tick = sweep_tick(s); /* a shorter heartbeat needs a faster sweep */
    if (uv_timer_get_repeat(&s->sweep) != tick)
        uv_timer_start(&s->sweep, sse__sweep_cb, tick, tick);
    return 0;
}

void sse_server_get_stats(const sse_server *s, sse_server_stats *out)
{
    if (!s || !out)
        return;
    *out = s->st;
}
