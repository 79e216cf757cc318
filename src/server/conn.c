/*
 * conn.c: the read path of a connection, and requests.
 *
 * Reads land in the server's one read buffer (handed out by the alloc callback; reads are
 * handled synchronously), so an idle connection owns no buffer. Complete requests are parsed
 * where they landed; only the unfinished tail of a read is copied into a per-connection pending
 * buffer, freed once that request is complete. A parsed request is copied into one allocation
 * (sse_request) for its handler, and dropped when it is answered, so a stream keeps nothing of
 * the request that opened it. An answer is a head (described as a struct sse__head, serialised
 * by h1.c) and a body frame, handed to the stream's write path (stream.c); HTTP/1.1 answers one
 * request at a time, so pipelined requests wait until the answer before them is out. Bytes come
 * from the connection's transport (transport.h) through sse__conn_on_read.
 *
 * This file is the HTTP/1.1 half of the protocols; h2.c is the HTTP/2 half. The request API
 * (respond, open_stream, headers) and routing are shared: a request knows the stream it is
 * answered on (r->st), and the HTTP/2 connection hands its requests to sse__conn_dispatch too.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <string.h>
#include <strings.h>

/* Slack for chunk framing on top of the body limit, for the pending buffer's bound. */
#define SSE__PEND_SLACK 65536

uv_buf_t sse__conn_read_buf(struct sse__conn *c)
{
    return uv_buf_init(c->srv->rbuf, (unsigned)c->srv->rbuf_size);
}

/* The peer's address as text into out ("" when unknown). */
static void sse__conn_peer(struct sse__conn *c, char *out, size_t cap)
{
    if (sse__conn_tp(c)->peer_addr(c, out, cap) != 0)
        out[0] = '\0';
}

void sse__conn_reject(struct sse__conn *c, int status, const char *allow)
{
    sse_server *s = c->srv;
    const char *reason = sse__http_reason(status);
    char body[64];
    s->st.rejected_total++;
    if (c->state == SSE__ST_CLOSED || (c->flags & SSE__F_CLOSE_FLUSH))
        return;
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    struct sse__field allow_field = {"Allow", allow};
    struct sse__head h = {status,       "text/plain; charset=utf-8",
                          (uint64_t)n,  SSE__HEAD_LENGTH | SSE__HEAD_CLOSE,
                          &allow_field, allow ? 1 : 0,
                          NULL,         0};
    int rc = sse__stream_answer(&c->st, &h, body, (size_t)n);
    if (s->o.access_log) {
        char peer[48];
        sse__conn_peer(c, peer, sizeof(peer));
        sse__log(s, SSE_LOG_INFO, "%s - - %d %s (rejected by the server)", peer, status, reason);
    }
    if (rc)
        sse__conn_kill(c, SSE_CLOSE_ERROR);
    sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
}

/* Send "100 Continue" once for a request that asked for it and whose body is still coming. */
static void sse__conn_continue(struct sse__conn *c, const struct sse__http_head *h,
                               struct sse__pstate *ps)
{
    struct sse__head interim = {100, NULL, 0, 0, NULL, 0, NULL, 0};
    if (!h->expect_continue || ps->continued || h->minor == 0)
        return;
    ps->continued = 1;
    (void)sse__stream_answer(&c->st, &interim, NULL, 0); /* best effort, as before */
}

void sse__request_free(sse_request *r)
{
    if (!r)
        return;
    sse_buf_free(&r->extra);
    sse__free(r);
}

static int sse__method_match(const struct sse__route *rt, const char *method)
{
    if (!rt->method || strcmp(rt->method, method) == 0)
        return 1;
    return strcmp(rt->method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static int sse__path_match(const struct sse__route *rt, const char *path)
{
    if (rt->prefix)
        return strncmp(path, rt->path, rt->path_len) == 0;
    return strcmp(path, rt->path) == 0;
}

static int sse__known_method(const char *m)
{
    static const char *const known[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                        "PATCH", "OPTIONS", "CONNECT", "TRACE"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return 1;
    return 0;
}

/* Whether origin is in the configured list ("*" allows every origin). */
static int sse__cors_allowed(const sse_server *s, const char *origin)
{
    const char *p = s->o.cors_origins;
    size_t olen = strlen(origin);
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ' ' && *p != ',' && *p != '\t')
            p++;
        size_t n = (size_t)(p - start);
        if ((n == 1 && *start == '*') || (n == olen && n && strncasecmp(start, origin, n) == 0))
            return 1;
    }
    return 0;
}

/* The CORS response fields for r into f[0..SSE__CORS_FIELDS), in order; returns how many (0 when
 * CORS is off or the origin is not allowed). The values are borrowed from r and s. */
#define SSE__CORS_FIELDS 4 /* the most sse__cors_fields writes */
static unsigned sse__cors_fields(const sse_request *r, struct sse__field *f)
{
    const sse_server *s = r->srv;
    if (!s->o.cors_origins)
        return 0;
    const char *origin = sse_request_header(r, "Origin");
    if (!origin || !sse__cors_allowed(s, origin))
        return 0;
    unsigned n = 0;
    f[n].name = "Access-Control-Allow-Origin";
    if (strcmp(s->o.cors_origins, "*") == 0 && !s->o.cors_credentials) {
        f[n++].value = "*";
    } else {
        f[n++].value = origin;
        f[n].name = "Vary";
        f[n++].value = "Origin";
        if (s->o.cors_credentials) {
            f[n].name = "Access-Control-Allow-Credentials";
            f[n++].value = "true";
        }
    }
    /* Without it a cross-origin fetch() reads only the CORS-safelisted response headers: the
       Mercure Link (hub discovery) and Last-Event-ID answers would read as null. */
    if (s->o.cors_expose_headers && *s->o.cors_expose_headers) {
        f[n].name = "Access-Control-Expose-Headers";
        f[n++].value = s->o.cors_expose_headers;
    }
    return n;
}

/*
 * The query string q as the access log writes it, into out[0..cap): the values of the
 * parameters that carry bearer tokens (Mercure's "authorization", OAuth's "access_token", in
 * any letter case) become "REDACTED", so a token never reaches a log file. Cut at cap.
 */
static void sse__redact_query(const char *q, char *out, size_t cap)
{
    static const char *const secret[] = {"authorization", "access_token"};
    size_t o = 0;
    while (*q && o + 1 < cap) {
        size_t plen = strcspn(q, "&"), nlen = strcspn(q, "=&");
        int hide = 0;
        for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
            hide |= nlen == strlen(secret[i]) && !strncasecmp(q, secret[i], nlen);
        const char *v = hide && nlen < plen ? "REDACTED" : q + nlen;
        size_t vlen = hide && nlen < plen ? 8 : plen - nlen;
        int n = snprintf(out + o, cap - o, "%.*s%s%.*s%s", (int)nlen, q,
                         hide && nlen < plen ? "=" : "", (int)vlen, v, q[plen] ? "&" : "");
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
        q += plen + (q[plen] ? 1 : 0);
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static void sse__access_log(const sse_request *r, int status, size_t bytes, const char *what)
{
    sse_server *s = r->srv;
    if (!s->o.access_log)
        return;
    double ms = (double)(uv_hrtime() - r->t_start) / 1e6;
    char query[768];
    sse__redact_query(r->query, query, sizeof(query));
    sse__log(s, SSE_LOG_INFO, "%s %s %s%s%s %d %zu %.3fms%s", r->remote, r->method, r->path,
             r->query[0] ? "?" : "", query, status, bytes, ms, what);
}

/* The request is answered: the connection goes on with the next request, or closes. */
static void sse__request_answered(sse_request *r, int keep)
{
    struct sse__conn *c = r->conn;
    sse_server *s = r->srv;
    r->flags |= SSE__R_ANSWERED;
    if (c->flags & SSE__F_H2)
        ((struct sse__h2s *)r->st)->req = NULL;
    else
        c->req = NULL;
    if (c->state == SSE__ST_HANDLE) {
        if (keep) {
            c->state = SSE__ST_READ;
            c->flags |= SSE__F_SERVED;
            /* idle since now; or, with pipelined bytes waiting, their request counts from
               when they came (not renewed by the time this answer took) */
            c->t_mark = c->pend ? c->pend->t_read : sse__now(s);
            if (c->pend && !(r->flags & SSE__R_IN_HANDLER)) {
                c->flags |= SSE__F_PROCESS; /* pipelined bytes wait: parse them at the walk */
                sse__conn_mark_dirty(c);
            }
        } else {
            sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
        }
    }
    if (!(r->flags & SSE__R_IN_HANDLER)) { /* a deferred answer: free at the next walk */
        r->next_free = s->free_reqs;
        s->free_reqs = r;
    }
}

int sse_request_respond(sse_request *r, int status, const char *content_type, const void *body,
                        size_t len)
{
    if (!r || status < 100 || status > 999 || (!body && len))
        return SSE_EINVAL;
    if (r->flags & SSE__R_ANSWERED)
        return SSE_EINVAL;
    struct sse__conn *c = r->conn;
    if (!c || c->state == SSE__ST_CLOSED)
        return SSE_ECLOSED;
    if (content_type && strpbrk(content_type, "\r\n"))
        return SSE_EINVAL;
    sse_server *s = r->srv;
    int h2 = (c->flags & SSE__F_H2) != 0;
    /* after the peer's EOF only requests that arrived before it are answered (from pend);
       HTTP/2 says nothing about the connection in a head */
    int keep =
        h2 || ((r->flags & SSE__R_KEEP) && !s->closing && !((c->flags & SSE__F_EOF) && !c->pend));
    int bodyless = status == 204 || status == 304 || status < 200;
    struct sse__field fields[SSE__CORS_FIELDS];
    struct sse__head h = {status,        content_type, len, 0, fields, sse__cors_fields(r, fields),
                          r->extra.data, r->extra.len};
    if (!bodyless)
        h.flags |= SSE__HEAD_LENGTH;
    if (!keep)
        h.flags |= SSE__HEAD_CLOSE;
    else if ((r->flags & SSE__R_HTTP10) && !h2)
        h.flags |= SSE__HEAD_KEEPALIVE;
    int send_body = !bodyless && !(r->flags & SSE__R_HEAD);
    int rc = h2 ? sse__h2_answer(r, &h, send_body ? body : NULL, send_body ? len : 0, 0)
                : sse__stream_answer(&c->st, &h, send_body ? body : NULL, send_body ? len : 0);
    if (rc)
        return rc;
    sse__access_log(r, status, len, "");
    sse__request_answered(r, keep);
    /* Write the answer now rather than at the loop turn's flush: a publisher's "200 + id" must
     * not wait behind the fan-out of its own update to thousands of streams (the dirty list is
     * walked newest first, so it would come last). */
    sse__conn_flush(c);
    return 0;
}

int sse_request_open_stream(sse_request *r, sse_stream **out)
{
    if (!r || !out || (r->flags & SSE__R_ANSWERED))
        return SSE_EINVAL;
    struct sse__conn *c = r->conn;
    if (!c || c->state == SSE__ST_CLOSED)
        return SSE_ECLOSED;
    sse_server *s = r->srv;
    if (s->closing)
        return SSE_ECLOSED;
    struct sse__field fields[2 + SSE__CORS_FIELDS] = {{"Cache-Control", "no-cache"},
                                                      {"X-Accel-Buffering", "no"}};
    /* Close-delimited body (no chunked framing): see docs/SERVER.md, "Framing". */
    struct sse__head h = {200,
                          "text/event-stream",
                          0,
                          SSE__HEAD_CLOSE,
                          fields,
                          2 + sse__cors_fields(r, fields + 2),
                          r->extra.data,
                          r->extra.len};
    int rc = 0, h2 = (c->flags & SSE__F_H2) != 0;
    if (h2)
        h.flags = 0; /* the stream ends with END_STREAM, not with the connection */
    char *logline = NULL;
    if (s->o.access_log) {
        size_t n = strlen(r->remote) + strlen(r->method) + strlen(r->path) + 3;
        logline = sse__malloc(n);
        if (!logline)
            rc = SSE_ENOMEM;
        else
            snprintf(logline, n, "%s %s %s", r->remote, r->method, r->path);
    }
    if (!rc)
        rc = h2 ? sse__h2_answer(r, &h, NULL, 0, 1) : sse__stream_answer(&c->st, &h, NULL, 0);
    if (rc) {
        sse__free(logline);
        return rc;
    }
    r->st->logline = logline;
    if (h2) { /* the connection goes on carrying other streams */
        sse__access_log(r, 200, 0, " stream open");
        r->flags |= SSE__R_ANSWERED;
        ((struct sse__h2s *)r->st)->req = NULL;
        r->st->sflags |= SSE__S_WAS_STREAM;
        s->st.streams++;
        if (!(r->flags & SSE__R_IN_HANDLER)) {
            r->next_free = s->free_reqs;
            s->free_reqs = r;
        }
        if (r->flags & SSE__R_HEAD)
            sse__h2_stream_end(r->st, SSE_CLOSE_LOCAL);
        sse__conn_mark_dirty(c); /* the head goes out at this turn's walk */
        *out = r->st;
        return 0;
    }
    sse__access_log(r, 200, 0, " stream open");
    r->flags |= SSE__R_ANSWERED;
    c->req = NULL;
    c->state = SSE__ST_STREAM;
    c->t_mark = sse__now(s); /* while a stream: when it opened (for the access log) */
    c->st.sflags |= SSE__S_WAS_STREAM;
    c->flags &= (uint16_t)~SSE__F_PROCESS;
    s->st.streams++;
    if (!(r->flags & SSE__R_IN_HANDLER)) {
        sse__conn_pend_free(c); /* pipelined bytes after a stream request are dropped */
        r->next_free = s->free_reqs;
        s->free_reqs = r;
    }
    sse__conn_flush(c);         /* the head goes out now: the browser's onopen waits for it */
    if (r->flags & SSE__R_HEAD) /* after the flush: on_close must run from the walk, not here */
        sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
    *out = &c->st;
    return 0;
}

void sse_request_on_abort(sse_request *r, void (*cb)(sse_request *r, void *user_data),
                          void *user_data)
{
    if (!r)
        return;
    r->on_abort = cb;
    r->abort_data = user_data;
}

int sse_request_add_header(sse_request *r, const char *name, const char *value)
{
    if (!r || !name || !value || !*name || (r->flags & SSE__R_ANSWERED))
        return SSE_EINVAL;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == ':' || (unsigned char)*p >= 0x7f)
            return SSE_EINVAL;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            return SSE_EINVAL;
    /* kept as "name\0value\0": each protocol writes fields its own way (h1.c) */
    size_t mark = r->extra.len;
    int rc = sse_buf_append(&r->extra, name, strlen(name) + 1);
    if (!rc)
        rc = sse_buf_append(&r->extra, value, strlen(value) + 1);
    if (rc)
        r->extra.len = mark;
    return rc;
}

const char *sse_request_method(const sse_request *r)
{
    return r->method;
}

const char *sse_request_path(const sse_request *r)
{
    return r->path;
}

const char *sse_request_query(const sse_request *r)
{
    return r->query;
}

const char *sse_request_header(const sse_request *r, const char *name)
{
    for (unsigned i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

int sse_request_header_at(const sse_request *r, size_t i, const char **name, const char **value)
{
    if (i >= r->nheaders)
        return SSE_ENOTFOUND;
    if (name)
        *name = r->headers[i].name;
    if (value)
        *value = r->headers[i].value;
    return 0;
}

const char *sse_request_body(const sse_request *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body;
}

const char *sse_request_remote_addr(const sse_request *r)
{
    return r->remote;
}

sse_server *sse_request_server(const sse_request *r)
{
    return r->srv;
}

/* Answer a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method). */
static void sse__preflight(sse_request *r)
{
    static const char allow_headers[] =
        "Authorization, Last-Event-ID, Cache-Control, Content-Type, Accept";
    const char *origin = sse_request_header(r, "Origin");
    if (origin && sse__cors_allowed(r->srv, origin)) {
        sse_request_add_header(r, "Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS");
        sse_request_add_header(r, "Access-Control-Allow-Headers", allow_headers);
        sse_request_add_header(r, "Access-Control-Max-Age", "600");
    }
    sse_request_respond(r, 204, NULL, NULL, 0);
}

/* Find the route for r and run it. On return r is answered, deferred, or freed. */
static void sse__conn_route(struct sse__conn *c, sse_request *r)
{
    sse_server *s = c->srv;
    const struct sse__route *rt, *match = NULL;
    int path_matched = 0, rc = 0;
    char allow[128] = "";
    size_t alen = 0;

    for (rt = s->routes; rt; rt = rt->next) {
        if (!sse__path_match(rt, r->path))
            continue;
        path_matched = 1;
        if (sse__method_match(rt, r->method)) {
            match = rt;
            break;
        }
        const char *m = rt->method ? rt->method : "";
        if (!strstr(allow, m) && alen + strlen(m) + 8 < sizeof(allow)) {
            alen +=
                (size_t)snprintf(allow + alen, sizeof(allow) - alen, "%s%s", alen ? ", " : "", m);
            if (strcmp(m, "GET") == 0)
                alen += (size_t)snprintf(allow + alen, sizeof(allow) - alen, ", HEAD");
        }
    }
    r->flags |= SSE__R_IN_HANDLER;
    if (s->o.cors_origins && strcmp(r->method, "OPTIONS") == 0 && (!match || !match->method) &&
        sse_request_header(r, "Origin") && sse_request_header(r, "Access-Control-Request-Method")) {
        sse__preflight(r);
    } else if (!match && strcmp(r->method, "OPTIONS") == 0 &&
               (path_matched || strcmp(r->path, "*") == 0)) {
        /* OPTIONS without a route of its own: say which methods the path takes */
        char opts[160];
        snprintf(opts, sizeof(opts), "%s%sOPTIONS", allow, alen ? ", " : "");
        sse_request_add_header(r, "Allow", path_matched ? opts : "GET, HEAD, POST, OPTIONS");
        sse_request_respond(r, 204, NULL, NULL, 0);
    } else if (!match) {
        const char *why;
        int status;
        if (!sse__known_method(r->method)) {
            status = 501;
            why = "501 Not Implemented\n";
        } else if (path_matched) {
            status = 405;
            why = "405 Method Not Allowed\n";
            sse_request_add_header(r, "Allow", allow);
        } else {
            status = 404;
            why = "404 Not Found\n";
        }
        s->st.rejected_total++;
        sse_request_respond(r, status, "text/plain; charset=utf-8", why, strlen(why));
    } else if (match->kind == SSE__ROUTE_STREAM) {
        sse_stream *st;
        rc = sse_request_open_stream(r, &st);
        if (rc == 0)
            match->stream_cb(st, r, match->user_data);
    } else if (match->kind == SSE__ROUTE_STATIC) {
        sse__static_serve(r, match);
    } else {
        rc = match->cb(r, match->user_data);
    }
    if (r->flags & SSE__R_ANSWERED) {
        sse__request_free(r);
        return;
    }
    if (rc == SSE_DEFERRED && r->conn) {
        r->flags &= ~(unsigned)SSE__R_IN_HANDLER; /* answered later: freed then */
        return;
    }
    /* still flagged as in its handler: an answer below must not queue r for a later free */
    /* neither answered nor deferred: the handler failed */
    static const char err[] = "500 Internal Server Error\n";
    if (r->conn && c->state != SSE__ST_CLOSED) {
        r->flags &= ~(unsigned)SSE__R_KEEP;
        int failed = sse_request_respond(r, 500, "text/plain; charset=utf-8", err, sizeof(err) - 1);
        if (failed && (c->flags & SSE__F_H2)) {
            ((struct sse__h2s *)r->st)->req = NULL;
            sse__h2_stream_end(r->st, SSE_CLOSE_ERROR);
        } else if (failed) {
            c->req = NULL;
            c->state = SSE__ST_DONE;
            sse__conn_kill(c, SSE_CLOSE_ERROR);
        }
    }
    sse__request_free(r);
}

/* A request-level error on st: HTTP/1.1 answers and closes the connection, HTTP/2 the stream. */
static void sse__reject_on(struct sse__conn *c, struct sse_stream *st, int status)
{
    if (c->flags & SSE__F_H2)
        sse__h2_reject(st, status);
    else
        sse__conn_reject(c, status, NULL);
}

void sse__conn_dispatch(struct sse__conn *c, struct sse_stream *st, const struct sse__http_head *h,
                        const char *body, size_t body_len)
{
    sse_server *s = c->srv;
    s->st.requests_total++;
    size_t strings = h->method.len + h->path.len + h->query.len + body_len + 4;
    for (unsigned i = 0; i < h->nheaders; i++)
        strings += h->headers[i].name.len + h->headers[i].value.len + 2;
    size_t hdr_bytes = h->nheaders * sizeof(((sse_request *)0)->headers[0]);
    sse_request *r = sse__malloc(sizeof(*r) + hdr_bytes + strings);
    if (!r) {
        sse__reject_on(c, st, 503);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->st = st;
    r->srv = s;
    r->headers = (void *)(r + 1);
    r->nheaders = h->nheaders;
    char *w = (char *)(r + 1) + hdr_bytes;
    r->method = w;
    memcpy(w, h->method.p, h->method.len);
    w += h->method.len;
    *w++ = '\0';
    size_t dl;
    if (sse__http_decode_path(h->path.p, h->path.len, w, &dl) != 0) {
        sse__free(r);
        sse__reject_on(c, st, 400);
        return;
    }
    r->path = w;
    w += dl + 1;
    r->query = w;
    memcpy(w, h->query.p, h->query.len);
    w += h->query.len;
    *w++ = '\0';
    for (unsigned i = 0; i < h->nheaders; i++) {
        const struct sse__http_header *hd = &h->headers[i];
        r->headers[i].name = w;
        memcpy(w, hd->name.p, hd->name.len);
        w += hd->name.len;
        *w++ = '\0';
        r->headers[i].value = w;
        memcpy(w, hd->value.p, hd->value.len);
        w += hd->value.len;
        *w++ = '\0';
    }
    r->body = w;
    r->body_len = body_len;
    if (body_len)
        memcpy(w, body, body_len);
    w[body_len] = '\0';
    if (h->keep_alive)
        r->flags |= SSE__R_KEEP;
    if (h->minor == 0)
        r->flags |= SSE__R_HTTP10;
    if (strcmp(r->method, "HEAD") == 0)
        r->flags |= SSE__R_HEAD;
    sse_buf_init(&r->extra, 16384);
    r->t_start = uv_hrtime();
    sse__conn_peer(c, r->remote, sizeof(r->remote));
    if (c->flags & SSE__F_H2) {
        ((struct sse__h2s *)st)->req = r;
    } else {
        c->req = r;
        c->state = SSE__ST_HANDLE;
    }
    sse__conn_route(c, r);
}

/*
 * Parse and dispatch the requests in buf[0..len); ps is the state of the first (partial)
 * request. Returns the bytes consumed: the start of an unfinished request, or len when the
 * rest is to be dropped (the connection is closing or became a stream).
 */
static size_t sse__conn_parse(struct sse__conn *c, char *buf, size_t len, struct sse__pstate *ps)
{
    sse_server *s = c->srv;
    size_t base = 0;
    c->flags &= (uint16_t)~SSE__F_PROCESS;
    while (base < len && c->state == SSE__ST_READ && !(c->flags & SSE__F_KILL)) {
        if (s->closing) {
            sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
            break;
        }
        if (sse__conn_writing(c)) {
            /* HTTP/1.1 answers in order, one at a time (one head slot per stream): the next
             * request waits until this answer is out (sse__conn_finish_if_flushed) */
            c->flags |= SSE__F_PROCESS;
            return base;
        }
        char *p = buf + base;
        size_t n = len - base;
        int rc;
        if (!ps->head_len) {
            size_t hl;
            rc = sse__http_scan_head(&ps->scan, p, n, &s->lim, &hl);
            if (rc < 0) {
                sse__conn_reject(c, -rc, NULL);
                break;
            }
            if (rc == 0)
                return base;
            ps->head_len = hl;
        }
        struct sse__http_head h;
        rc = sse__http_parse_head(p, ps->head_len, &h, s->hdrs, s->o.max_headers);
        if (rc < 0) {
            sse__conn_reject(c, -rc, NULL);
            break;
        }
        size_t avail = n - ps->head_len, body_len = 0, total = ps->head_len;
        if (h.chunked) {
            rc = sse__http_chunked_decode(&ps->chunk, p + ps->head_len, avail, s->o.max_body,
                                          s->o.max_header_bytes);
            if (rc < 0) {
                sse__conn_reject(c, -rc, NULL);
                break;
            }
            if (rc == 0) {
                sse__conn_continue(c, &h, ps);
                return base;
            }
            body_len = ps->chunk.out;
            total += ps->chunk.in;
        } else if (h.content_length > 0) {
            if ((uint64_t)h.content_length > s->o.max_body) {
                sse__conn_reject(c, 413, NULL);
                break;
            }
            if (avail < (size_t)h.content_length) {
                sse__conn_continue(c, &h, ps);
                return base;
            }
            body_len = (size_t)h.content_length;
            total += body_len;
        }
        const char *body = p + ps->head_len; /* the chunked decoder moved the body here */
        memset(ps, 0, sizeof(*ps));
        sse__conn_dispatch(c, &c->st, &h, body, body_len);
        base += total;
    }
    return c->state == SSE__ST_READ || c->state == SSE__ST_HANDLE ? base : len;
}

/* The bound on buffered bytes of one unfinished request. */
static size_t sse__pend_limit(const sse_server *s)
{
    return s->o.max_request_line + s->o.max_header_bytes + s->o.max_body + SSE__PEND_SLACK;
}

static void sse__conn_after_eof(struct sse__conn *c);

/*
 * The buffer of unfinished request bytes, taken from the server's budget (max_buffered): the
 * bytes unauthenticated clients can make the server hold are bounded by configuration, not by
 * the number of connections. NULL when the budget or the allocator says no.
 */
static struct sse__pend *pend_resize(struct sse__conn *c, struct sse__pend *pd, size_t cap)
{
    sse_server *s = c->srv;
    size_t old = pd ? pd->cap : 0;
    if (cap > old && s->pend_bytes - old + cap > s->o.max_buffered) {
        sse__log(s, SSE_LOG_DEBUG, "buffered request bytes at the limit (%zu): refused",
                 s->o.max_buffered);
        return NULL;
    }
    struct sse__pend *np = sse__realloc(pd, sizeof(*np) + cap);
    if (!np)
        return NULL;
    s->pend_bytes = s->pend_bytes - old + cap;
    np->cap = cap;
    return np;
}

void sse__conn_pend_free(struct sse__conn *c)
{
    if ((c->flags & SSE__F_H2) || !c->pend)
        return;
    c->srv->pend_bytes -= c->pend->cap;
    sse__free(c->pend);
    c->pend = NULL;
}

/* Reading was paused while pipelined requests waited for an answer: go on once they fit. */
static void sse__conn_resume_read(struct sse__conn *c)
{
    if (!(c->flags & SSE__F_RSTOP) || c->state == SSE__ST_CLOSED || (c->flags & SSE__F_EOF) ||
        (c->pend && c->pend->len > sse__pend_limit(c->srv)))
        return;
    c->flags &= (uint16_t)~SSE__F_RSTOP;
    if (sse__conn_tp(c)->read_start(c) != 0)
        sse__conn_kill(c, SSE_CLOSE_ERROR);
}

void sse__conn_process_pending(struct sse__conn *c)
{
    struct sse__pend *pd = c->pend;
    if (!pd)
        return;
    size_t used = sse__conn_parse(c, pd->data, pd->len, &pd->ps);
    pd = c->pend;
    if (pd && (used >= pd->len || c->state == SSE__ST_STREAM || c->state == SSE__ST_DONE ||
               c->state == SSE__ST_CLOSED)) {
        sse__conn_pend_free(c);
    } else if (pd && used) {
        /* The rest arrived at the latest with the last read: its request timeout counts from
           then, not from now (the time the server took answering what came before is not the
           client's: a client that stops reading cannot stretch it by pipelining). */
        memmove(pd->data, pd->data + used, pd->len - used);
        pd->len -= used;
        c->t_mark = pd->t_read;
    }
    if (c->flags & SSE__F_EOF)
        sse__conn_after_eof(c); /* what came before the EOF is answered: now the EOF */
    else
        sse__conn_resume_read(c);
}

static void sse__conn_on_data(struct sse__conn *c, char *data, size_t n)
{
    sse_server *s = c->srv;
    struct sse__pend *pd = c->pend;
    if (!pd) {
        struct sse__pstate ps;
        memset(&ps, 0, sizeof(ps));
        size_t used = c->state == SSE__ST_READ ? sse__conn_parse(c, data, n, &ps) : 0;
        if (used >= n || (c->state != SSE__ST_READ && c->state != SSE__ST_HANDLE))
            return;
        size_t cap = n - used < 512 ? 512 : n - used;
        pd = pend_resize(c, NULL, cap);
        if (!pd) {
            if (c->state == SSE__ST_HANDLE)
                sse__conn_close(c, SSE_CLOSE_ERROR); /* the deferred request is aborted */
            else
                sse__conn_reject(c, 503, NULL);
            return;
        }
        pd->ps = ps;
        pd->len = n - used;
        pd->t_read = sse__now(s);
        memcpy(pd->data, data + used, n - used);
        c->pend = pd;
        if (c->state == SSE__ST_READ)
            c->t_mark = sse__now(s); /* the request timeout counts from its first bytes */
        return;
    }
    if (pd->len + n > sse__pend_limit(s)) {
        if (c->state == SSE__ST_HANDLE) { /* too much pipelined behind a deferred request */
            sse__conn_close(c, SSE_CLOSE_ERROR);
            return;
        }
        if ((c->flags & SSE__F_PROCESS) && sse__conn_writing(c)) {
            /* complete requests wait for the answer before them to be written (a client
             * that sends but does not read): keep these bytes, read no more until then */
            if (!(c->flags & SSE__F_RSTOP)) {
                sse__conn_tp(c)->read_stop(c);
                c->flags |= SSE__F_RSTOP;
                sse__log(s, SSE_LOG_DEBUG, "pipelined requests wait for an answer: reading paused");
            }
        } else {
            sse__conn_reject(c, pd->ps.head_len ? 413 : 431, NULL);
            sse__conn_pend_free(c);
            return;
        }
    }
    if (pd->len + n > pd->cap) {
        size_t cap = pd->cap * 2;
        while (cap < pd->len + n)
            cap *= 2;
        struct sse__pend *np = pend_resize(c, pd, cap);
        if (!np) {
            if (c->state == SSE__ST_HANDLE) {
                sse__conn_close(c, SSE_CLOSE_ERROR);
                return;
            }
            sse__conn_reject(c, 503, NULL);
            sse__conn_pend_free(c);
            return;
        }
        pd = c->pend = np;
    }
    memcpy(pd->data + pd->len, data, n);
    pd->len += n;
    pd->t_read = sse__now(s);
    if (c->state == SSE__ST_READ)
        sse__conn_process_pending(c);
}

/*
 * What the peer's EOF means in c's state. Pipelined requests that came before it and wait
 * behind an answer being written (F_PROCESS) are answered first: sse__conn_process_pending
 * calls this again once they are parsed.
 */
static void sse__conn_after_eof(struct sse__conn *c)
{
    switch (c->state) {
    case SSE__ST_STREAM:
        sse__conn_close(c, (c->flags & SSE__F_CLOSE_FLUSH) ? c->st.reason : SSE_CLOSE_PEER);
        break;
    case SSE__ST_LINGER:
        sse__conn_close(c, c->st.reason);
        break;
    case SSE__ST_DONE:
        if (!sse__conn_writing(c))
            sse__conn_close(c, c->st.reason);
        break;
    case SSE__ST_READ:
        if (c->flags & SSE__F_PROCESS)
            break;
        if (sse__conn_writing(c))
            sse__conn_close_after_flush(c, SSE_CLOSE_LOCAL);
        else
            sse__conn_close(c, SSE_CLOSE_PEER);
        break;
    case SSE__ST_CLOSED:
        break;
    default:
        sse__conn_close(c, SSE_CLOSE_PEER);
        break;
    }
}

static void sse__conn_on_eof(struct sse__conn *c)
{
    c->flags |= SSE__F_EOF;
    sse__conn_tp(c)->read_stop(c);
    sse__conn_after_eof(c);
}

/*
 * HTTP/2 by prior knowledge (o.h2c): a connection whose first bytes are the HTTP/2 preface
 * switches to HTTP/2 (the bytes go to nghttp2); anything else is HTTP/1.1. A preface split
 * over reads waits, unparsed, in the pending buffer. Returns 1 when the bytes were taken
 * (switched, or kept as the start of a preface).
 */
static int sse__conn_try_h2c(struct sse__conn *c, char *data, size_t n)
{
    struct sse__pend *pd = c->pend;
    size_t have = pd ? pd->len : 0;
    char head[24];
    size_t k = have < sizeof(head) ? have : sizeof(head);
    if (pd)
        memcpy(head, pd->data, k);
    size_t add = n < sizeof(head) - k ? n : sizeof(head) - k;
    memcpy(head + k, data, add);
    int pf = sse__h2_preface(head, k + add);
    if (pf == 0)
        return 0;
    if (pf == 2) {
        /* the start of the preface, which is itself a complete HTTP/1.1 head after 18 bytes:
           keep the bytes unparsed until the rest (or something else) arrives */
        size_t len = have + n;
        pd = pend_resize(c, pd, pd && pd->cap >= len ? pd->cap : 512);
        if (!pd) {
            sse__conn_close(c, SSE_CLOSE_ERROR);
            return 1;
        }
        if (!have) {
            memset(&pd->ps, 0, sizeof(pd->ps));
            c->t_mark = sse__now(c->srv);
        }
        memcpy(pd->data + have, data, n);
        pd->len = len;
        pd->t_read = sse__now(c->srv);
        c->pend = pd;
        return 1;
    }
    char *old = NULL;
    if (pd && have) { /* the start of the preface came in an earlier read */
        old = sse__malloc(have);
        if (!old) {
            sse__conn_close(c, SSE_CLOSE_ERROR);
            return 1;
        }
        memcpy(old, pd->data, have);
    }
    sse__conn_pend_free(c);
    sse__conn_start_h2(c);
    if (old && c->state != SSE__ST_CLOSED)
        sse__h2_on_read(c, old, (ssize_t)have);
    sse__free(old);
    if (c->state != SSE__ST_CLOSED)
        sse__h2_on_read(c, data, (ssize_t)n);
    return 1;
}

void sse__conn_on_read(struct sse__conn *c, char *data, ssize_t n)
{
    if (c->state == SSE__ST_CLOSED)
        return;
    if (c->flags & SSE__F_H2) {
        sse__h2_on_read(c, data, n);
        return;
    }
    if (n < 0) {
        sse__conn_on_eof(c);
        return;
    }
    if (c->srv->o.h2c && c->state == SSE__ST_READ && !(c->flags & SSE__F_SERVED) &&
        sse__conn_try_h2c(c, data, (size_t)n))
        return;
    if (c->state == SSE__ST_READ || c->state == SSE__ST_HANDLE)
        sse__conn_on_data(c, data, (size_t)n);
    /* streams, finished and lingering connections: bytes are read only to notice the EOF */
}

void sse__conn_start(struct sse__conn *c, int over_limit)
{
    int rc = sse__conn_tp(c)->read_start(c);
    if (rc) {
        sse__conn_close(c, SSE_CLOSE_ERROR);
        return;
    }
    if (!over_limit)
        return;
    if (sse__conn_tp(c) == &sse__transport_tls && sse__conn_tp(c)->handshaking(c)) {
        /* TLS: the 503 needs a handshake first; a small budget of them (transport_tls.c),
           each bounded by the handshake timeout; past the budget, closed without an answer */
        if (!sse__tls_refuse_after_handshake(c)) {
            sse__log(c->srv, SSE_LOG_DEBUG, "over the connection limit: closed (TLS)");
            sse__conn_close(c, SSE_CLOSE_LOCAL);
        }
        return;
    }
    sse__conn_reject(c, 503, NULL);
}
