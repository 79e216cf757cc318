/*
 * client.c: the EventSource client (include/sse/client.h) on curl's multi interface and libuv.
 *
 * A group owns one CURLM; curl's socket callback becomes one uv_poll_t per socket and its timer
 * callback one uv_timer_t, so every client of the group runs on the loop's thread. A client owns
 * one CURL easy handle (re-added to the multi for each attempt), one parser (reset per attempt,
 * which keeps the last event id), one uv_timer_t (the reconnection wait, or the read timeout while
 * a request runs: never both) and its request header list.
 *
 * Re-entrancy: curl forbids curl_multi_remove_handle from inside its callbacks and user callbacks
 * may close or free any client. So every entry from the loop counts in g->busy; while it is
 * non-zero, removals and frees are queued on g->pending and done by group_settle() once the
 * outermost entry returns. A client closed from inside its own curl callback aborts the transfer
 * by returning an error from that callback.
 *
 * Not owned here: the event-stream grammar (src/format), the loop (the embedder's, or a private
 * one for sse_client_run).
 */
#include "common/alloc.h"

#include <curl/curl.h>
#include <sse/client.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_RECONNECT_MS 3000u
#define DEFAULT_BACKOFF_MAX_MS 30000u
#define DEFAULT_MAX_REDIRECTS 10u
#define DEFAULT_BUFFER_SIZE 1024L /* curl's minimum; see docs/performance/client.md */

enum phase {
    PHASE_WAIT,    /* CONNECTING, the timer counts down to the next request */
    PHASE_REQUEST, /* a request is on the multi (CONNECTING or OPEN); timer = read timeout */
    PHASE_DONE     /* CLOSED */
};

enum abort_kind {
    ABORT_NONE,
    ABORT_FAIL,     /* fail the connection: CLOSED with an error */
    ABORT_NO_RETRY, /* 204: CLOSED, the server asked for it */
};

struct sock_ctx {
    uv_poll_t poll; /* must stay first: the close callback frees the struct */
    curl_socket_t fd;
    struct sse_client_group *g;
    struct sock_ctx *next, *prev; /* g->socks */
};

struct listener {
    struct listener *next;
    sse_client_listener_cb cb;
    void *user_data;
    char type[]; /* NUL-terminated */
};

struct sse_client_group {
    uv_loop_t *loop; /* borrowed (or owned by a private client) */
    CURLM *multi;
    uv_timer_t timer;           /* curl's timeout */
    unsigned busy;              /* nesting depth of entries from the loop */
    struct sse_client *clients; /* every live client */
    struct sse_client *pending; /* clients with a queued removal or free */
    struct sock_ctx *socks;     /* polled sockets */
    size_t count;
};

struct sse_client {
    struct sse_client_group *g;
    struct sse_client *next, *prev;  /* g->clients */
    struct sse_client *pending_next; /* g->pending */
    CURL *easy;
    sse_parser *parser;
    struct curl_slist *headers;  /* base headers, then Last-Event-ID as the tail */
    struct curl_slist *lei_prev; /* node before the Last-Event-ID node (NULL = none) */
    char *url;
    struct listener *listeners;
    sse_client_callbacks cb;
    void *user_data;
    uv_timer_t timer;
    uv_loop_t *own_loop; /* private loop (group NULL at creation), else NULL */
    uint64_t retry_ms;   /* the reconnection time */
    uint64_t delay_ms;   /* the delay of the current wait */
    uint64_t last_rx;    /* uv_now() of the last byte received */
    uint64_t rng;        /* xorshift state for jitter */
    uint64_t backoff_max_ms;
    unsigned max_failures, read_timeout_ms, fails, connections;
    int state; /* SSE_CLIENT_* */
    enum phase phase;
    enum abort_kind abort_kind;
    int abort_code;
    char *abort_msg; /* heap, only on the failure path */
    int status;      /* status code of the current header block */
    unsigned char ct_ok, has_location, opened, attached, pending_remove, pending_free, no_jitter;
    unsigned char dispatching, purge; /* inside on_parsed_event; listeners to free after it */
    unsigned char pending_oom;        /* the socket could not be watched: end the request */
    unsigned char queued;             /* on g->pending */
    char errbuf[CURL_ERROR_SIZE];
};

static void client_release(struct sse_client *c);
static void start_request(struct sse_client *c);
static void request_ended(struct sse_client *c, CURLcode res);

/* ---------------------------------------------------------------- small helpers */

static uint64_t next_rand(struct sse_client *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Remember why the current request is being aborted from a curl callback (msg copied). */
static void set_abort(struct sse_client *c, enum abort_kind kind, int code, const char *msg)
{
    c->abort_kind = kind;
    c->abort_code = code;
    sse__free(c->abort_msg);
    c->abort_msg = sse__strdup(msg); /* NULL on OOM: sse_strerror(code) is used instead */
}

/* Add c to the pending list once (O(1): closing thousands of clients from a callback must not
 * scan the list each time). */
static void queue_pending(struct sse_client *c)
{
    if (c->queued)
        return;
    c->queued = 1;
    c->pending_next = c->g->pending;
    c->g->pending = c;
}

/* Take the request off the multi now (only outside curl's callbacks). */
static void detach(struct sse_client *c)
{
    if (c->attached) {
        curl_multi_remove_handle(c->g->multi, c->easy);
        c->attached = 0;
    }
}

/* Do the removals and frees queued while the loop was inside curl or a user callback. */
static void group_settle(struct sse_client_group *g)
{
    if (g->busy)
        return;
    while (g->pending) {
        struct sse_client *c = g->pending;
        g->pending = c->pending_next;
        c->pending_next = NULL;
        c->queued = 0;
        if (c->pending_remove) {
            c->pending_remove = 0;
            detach(c);
        }
        if (c->pending_oom) {
            /* curl 7.88 ignores an error from the socket callback: without this the request
             * would wait forever on a socket nobody polls. */
            c->pending_oom = 0;
            if (c->attached && !c->pending_free && c->state != SSE_CLIENT_CLOSED) {
                detach(c);
                g->busy++;
                request_ended(c, CURLE_OUT_OF_MEMORY);
                g->busy--;
            }
        }
        if (c->pending_free)
            client_release(c);
    }
}

/* ---------------------------------------------------------------- state changes */

/* Enter CLOSED for good and report it (unless the user closed). */
static void finish_closed(struct sse_client *c, int code, const char *msg)
{
    c->state = SSE_CLIENT_CLOSED;
    c->phase = PHASE_DONE;
    uv_timer_stop(&c->timer);
    if (c->cb.on_error)
        c->cb.on_error(c, code, msg, c->user_data);
}

static void on_client_timer(uv_timer_t *t);

/* A connection ended (code, msg): wait and reconnect, or give up at the failure cap. */
static void schedule_reconnect(struct sse_client *c, int code, const char *msg)
{
    uint64_t d;
    if (c->opened) {
        c->fails = 0;
        d = c->retry_ms;
    } else {
        c->fails++;
        if (c->max_failures && c->fails >= c->max_failures) {
            char buf[400];
            snprintf(buf, sizeof(buf), "gave up after %u failed connection attempts: %s", c->fails,
                     msg);
            finish_closed(c, code, buf);
            return;
        }
        /* Exponential backoff from the reconnection time, capped; "equal jitter" from the
         * second consecutive failure on: the delay is uniform in [d/2, d]. */
        d = c->retry_ms ? c->retry_ms : 1; /* `retry: 0` must still back off */
        for (unsigned i = 1; i < c->fails && d < c->backoff_max_ms; i++)
            d *= 2;
        if (d > c->backoff_max_ms)
            d = c->backoff_max_ms > c->retry_ms ? c->backoff_max_ms : c->retry_ms;
        if (c->fails >= 2 && !c->no_jitter && d >= 2)
            d = d / 2 + next_rand(c) % (d / 2 + 1);
    }
    c->delay_ms = d;
    c->state = SSE_CLIENT_CONNECTING;
    c->phase = PHASE_WAIT;
    uv_timer_start(&c->timer, on_client_timer, d, 0);
    if (c->cb.on_error)
        c->cb.on_error(c, code, msg, c->user_data);
}

/* The request is off the multi; res is curl's result. Decide what comes next. */
static void request_ended(struct sse_client *c, CURLcode res)
{
    char buf[400];
    uv_timer_stop(&c->timer);
    sse_parser_end(c->parser); /* a partial event is never dispatched */
    if (c->state == SSE_CLIENT_CLOSED)
        return; /* closed by the user: no callback */
    if (c->abort_kind != ABORT_NONE) {
        const char *m = c->abort_msg ? c->abort_msg : sse_strerror(c->abort_code);
        /* An oversized event would come again on every reconnect: failing is final too. */
        snprintf(buf, sizeof(buf), "%s", m);
        finish_closed(c, c->abort_code, buf);
        return;
    }
    if (res == CURLE_OK && c->opened) {
        schedule_reconnect(c, SSE_ECLOSED, "the server ended the stream");
        return;
    }
    if (res == CURLE_OK) {
        schedule_reconnect(c, SSE_EPROTO, "the response ended before its headers were complete");
        return;
    }
    snprintf(buf, sizeof(buf), "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
    schedule_reconnect(c, res == CURLE_OPERATION_TIMEDOUT ? SSE_ETIMEDOUT : SSE_EIO, buf);
}

/* ---------------------------------------------------------------- curl callbacks (per client) */

/* Trim spaces and tabs from both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
                  (*s)[*n - 1] == '\n'))
        (*n)--;
}

/* Whether the Content-Type value's MIME type (before any ';') is text/event-stream. */
static int is_event_stream(const char *v, size_t n)
{
    const char *semi = memchr(v, ';', n);
    if (semi)
        n = (size_t)(semi - v);
    trim(&v, &n);
    return n == 17 && !strncasecmp(v, "text/event-stream", 17);
}

/* Headers end: open, or decide the answer is not an event stream. Returns 0 to go on. */
static int headers_complete(struct sse_client *c)
{
    int st = c->status;
    if (st >= 100 && st < 200)
        return 0; /* interim answer; the real one follows */
    if (st >= 300 && st < 400 && c->has_location)
        return 0; /* curl follows it (CURLE_TOO_MANY_REDIRECTS past the bound) */
    char msg[256];
    if (st == 204) {
        set_abort(c, ABORT_NO_RETRY, SSE_ECLOSED,
                  "HTTP status 204: the server asked the client not to reconnect");
        return -1;
    }
    if (st != 200) {
        snprintf(msg, sizeof(msg), "HTTP status %d: an event stream needs 200", st);
        set_abort(c, ABORT_FAIL, SSE_EPROTO, msg);
        return -1;
    }
    if (!c->ct_ok) {
        char *ct = NULL;
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
            snprintf(msg, sizeof(msg), "Content-Type '%.100s' is not text/event-stream", ct);
        else
            snprintf(msg, sizeof(msg), "no Content-Type: an event stream needs text/event-stream");
        set_abort(c, ABORT_FAIL, SSE_EPROTO, msg);
        return -1;
    }
    c->opened = 1;
    c->fails = 0;
    c->state = SSE_CLIENT_OPEN;
    if (c->cb.on_open)
        c->cb.on_open(c, c->user_data);
    return c->state == SSE_CLIENT_CLOSED ? -1 : 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    struct sse_client *c = ud;
    size_t len = size * n;
    c->last_rx = uv_now(c->g->loop);
    if (c->state != SSE_CLIENT_CONNECTING)
        return c->state == SSE_CLIENT_OPEN ? len : 0; /* trailers; or closed: abort */
    if (len >= 5 && !memcmp(buf, "HTTP/", 5)) {
        const char *sp = memchr(buf, ' ', len);
        c->status = 0;
        c->ct_ok = c->has_location = 0;
        if (sp) /* three digits at most: a hostile status line cannot overflow */
            for (const char *p = sp + 1; p < buf + len && p < sp + 4 && *p >= '0' && *p <= '9'; p++)
                c->status = c->status * 10 + (*p - '0');
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n'))
        return headers_complete(c) ? 0 : len;
    const char *colon = memchr(buf, ':', len);
    if (colon) {
        size_t nlen = (size_t)(colon - buf);
        const char *v = colon + 1;
        size_t vlen = len - nlen - 1;
        if (nlen == 12 && !strncasecmp(buf, "Content-Type", 12))
            c->ct_ok = (unsigned char)is_event_stream(v, vlen);
        else if (nlen == 8 && !strncasecmp(buf, "Location", 8)) {
            trim(&v, &vlen);
            c->has_location = vlen > 0;
        }
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    struct sse_client *c = ud;
    size_t len = size * n;
    c->last_rx = uv_now(c->g->loop);
    if (c->state == SSE_CLIENT_CLOSED)
        return 0;
    if (c->state != SSE_CLIENT_OPEN)
        return len; /* body of an interim or redirect answer */
    int rc = sse_parser_feed(c->parser, buf, len);
    if (rc == 0)
        return len;
    if (rc == SSE_ELIMIT)
        set_abort(c, ABORT_FAIL, SSE_ELIMIT,
                  "an event or a line exceeds the size limit (max_event / max_line)");
    else if (rc == SSE_ENOMEM)
        set_abort(c, ABORT_FAIL, SSE_ENOMEM, "out of memory while parsing the stream");
    /* SSE_ECANCELED: a callback closed the client */
    return 0;
}

/* ---------------------------------------------------------------- parser callbacks */

/* Free the listeners removed while events were being dispatched. */
static void purge_listeners(struct sse_client *c)
{
    struct listener **pp = &c->listeners;
    while (*pp) {
        struct listener *l = *pp;
        if (l->cb) {
            pp = &l->next;
        } else {
            *pp = l->next;
            sse__free(l);
        }
    }
    c->purge = 0;
}

static int on_parsed_event(void *ud, const sse_parsed_event *ev)
{
    struct sse_client *c = ud;
    int stop = 0;
    c->dispatching++;
    if (c->cb.on_message) {
        c->cb.on_message(c, ev, c->user_data);
        stop = c->state == SSE_CLIENT_CLOSED;
    }
    for (struct listener *l = c->listeners; l && !stop; l = l->next) {
        if (!l->cb || strcmp(l->type, ev->type) != 0)
            continue;
        l->cb(c, ev, l->user_data);
        stop = c->state == SSE_CLIENT_CLOSED;
    }
    if (--c->dispatching == 0 && c->purge)
        purge_listeners(c);
    return stop;
}

static int on_parsed_retry(void *ud, uint64_t ms)
{
    struct sse_client *c = ud;
    c->retry_ms = ms;
    if (c->cb.on_retry) {
        c->cb.on_retry(c, ms, c->user_data);
        if (c->state == SSE_CLIENT_CLOSED)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- requests */

/* Put Last-Event-ID (when known) at the tail of the header list. Returns 0 or SSE_ENOMEM. */
static int update_last_event_id(struct sse_client *c)
{
    size_t idlen;
    const char *id = sse_parser_last_event_id(c->parser, &idlen);
    struct curl_slist *tail = c->lei_prev ? c->lei_prev->next : NULL;
    if (tail) {
        c->lei_prev->next = NULL;
        curl_slist_free_all(tail);
    }
    c->lei_prev = NULL;
    if (!idlen)
        return 0;
    char *line = sse__malloc(idlen + 16);
    if (!line)
        return SSE_ENOMEM;
    memcpy(line, "Last-Event-ID: ", 15);
    memcpy(line + 15, id, idlen + 1);
    struct curl_slist *last = c->headers;
    while (last->next)
        last = last->next;
    struct curl_slist *h = curl_slist_append(c->headers, line);
    sse__free(line);
    if (!h)
        return SSE_ENOMEM;
    c->lei_prev = last;
    return 0;
}

static void start_request(struct sse_client *c)
{
    c->abort_kind = ABORT_NONE;
    c->abort_code = 0;
    c->status = 0;
    c->ct_ok = c->has_location = c->opened = 0;
    c->errbuf[0] = '\0';
    sse_parser_reset(c->parser);
    int rc = update_last_event_id(c);
    CURLMcode mc = CURLM_OK;
    if (rc == 0)
        mc = curl_multi_add_handle(c->g->multi, c->easy);
    c->connections++;
    c->state = SSE_CLIENT_CONNECTING;
    if (rc || mc != CURLM_OK) {
        /* Treated like a network failure: backoff and try again. */
        c->opened = 0;
        schedule_reconnect(c, rc ? rc : SSE_EIO,
                           rc ? "out of memory building the request" : curl_multi_strerror(mc));
        return;
    }
    c->attached = 1;
    c->phase = PHASE_REQUEST;
    c->last_rx = uv_now(c->g->loop);
    if (c->read_timeout_ms)
        uv_timer_start(&c->timer, on_client_timer, c->read_timeout_ms, 0);
}

/* The client's one timer: end of the reconnection wait, or a read-timeout check. */
static void on_client_timer(uv_timer_t *t)
{
    struct sse_client *c = t->data;
    struct sse_client_group *g = c->g;
    g->busy++;
    if (c->phase == PHASE_WAIT) {
        start_request(c);
    } else if (c->phase == PHASE_REQUEST) {
        uint64_t now = uv_now(g->loop), idle = now - c->last_rx;
        if (idle < c->read_timeout_ms) {
            uv_timer_start(&c->timer, on_client_timer, c->read_timeout_ms - idle, 0);
        } else {
            char buf[128];
            detach(c); /* not inside curl: safe */
            snprintf(buf, sizeof(buf), "no bytes received for %u ms (read timeout)",
                     c->read_timeout_ms);
            uv_timer_stop(&c->timer);
            sse_parser_end(c->parser);
            schedule_reconnect(c, SSE_ETIMEDOUT, buf);
        }
    }
    g->busy--;
    group_settle(g);
}

/* ---------------------------------------------------------------- multi + libuv glue */

static void check_multi_info(struct sse_client_group *g)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(g->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct sse_client *c = NULL;
        CURLcode res = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (!c)
            continue;
        detach(c); /* outside curl's callbacks here */
        c->pending_remove = 0;
        if (c->pending_free)
            continue; /* freed from a callback: group_settle releases it */
        request_ended(c, res);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *sc = (struct sock_ctx *)h;
    struct sse_client_group *g = sc->g;
    curl_socket_t fd = sc->fd;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    g->busy++;
    curl_multi_socket_action(g->multi, fd, flags, &running);
    check_multi_info(g);
    g->busy--;
    group_settle(g);
}

static void on_group_timer(uv_timer_t *t)
{
    struct sse_client_group *g = t->data;
    int running;
    g->busy++;
    curl_multi_socket_action(g->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(g);
    g->busy--;
    group_settle(g);
}

static void free_handle_cb(uv_handle_t *h)
{
    sse__free(h);
}

/* Close callback of a handle whose data is the heap object that embeds it. */
static void free_data_cb(uv_handle_t *h)
{
    sse__free(h->data);
}

static void sock_close(struct sse_client_group *g, struct sock_ctx *sc)
{
    uv_poll_stop(&sc->poll);
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        g->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    uv_close((uv_handle_t *)&sc->poll, free_handle_cb);
}

/* A socket of easy handle e cannot be watched: end its request once curl has returned. */
static int sock_failed(struct sse_client_group *g, CURL *e)
{
    struct sse_client *c = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
    if (c) {
        c->pending_oom = 1;
        queue_pending(c);
    }
    return -1;
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct sse_client_group *g = userp;
    struct sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            curl_multi_assign(g->multi, s, NULL);
            sock_close(g, sc);
        }
        return 0;
    }
    if (!sc) {
        sc = sse__malloc(sizeof(*sc));
        if (!sc)
            return sock_failed(g, e);
        if (uv_poll_init_socket(g->loop, &sc->poll, s) != 0) {
            sse__free(sc);
            return sock_failed(g, e);
        }
        sc->fd = s;
        sc->g = g;
        sc->prev = NULL;
        sc->next = g->socks;
        if (g->socks)
            g->socks->prev = sc;
        g->socks = sc;
        curl_multi_assign(g->multi, s, sc);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&sc->poll, ev, on_poll) == 0 ? 0 : sock_failed(g, e);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct sse_client_group *g = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&g->timer);
    else
        uv_timer_start(&g->timer, on_group_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---------------------------------------------------------------- groups */

int sse_client_group_new(sse_client_group **out, uv_loop_t *loop)
{
    if (!out || !loop)
        return SSE_EINVAL;
    struct sse_client_group *g = sse__calloc(1, sizeof(*g));
    if (!g)
        return SSE_ENOMEM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto out_free_g;
    g->loop = loop;
    g->multi = curl_multi_init();
    if (!g->multi)
        goto out_cleanup_global;
    curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g);
    curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g);
    uv_timer_init(loop, &g->timer); /* cannot fail on Unix */
    g->timer.data = g;
    *out = g;
    return 0;

out_cleanup_global:
    curl_global_cleanup();
out_free_g:
    sse__free(g);
    return g ? SSE_EIO : SSE_ENOMEM;
}

void sse_client_group_free(sse_client_group *g)
{
    if (!g)
        return;
    g->busy = 0; /* not called from a callback (documented): nothing is in flight */
    g->pending = NULL;
    while (g->clients) {
        struct sse_client *c = g->clients;
        sse_client_close(c);
        client_release(c); /* unlinks c */
    }
    curl_multi_cleanup(g->multi); /* may report CURL_POLL_REMOVE for cached connections */
    while (g->socks)
        sock_close(g, g->socks);
    curl_global_cleanup();
    uv_close((uv_handle_t *)&g->timer, free_data_cb); /* frees g */
}

size_t sse_client_group_count(const sse_client_group *g)
{
    return g ? g->count : 0;
}

/* ---------------------------------------------------------------- clients */

/* Free everything of c (already closed and off the multi); the struct goes in the timer's
 * close callback. */
static void client_release(struct sse_client *c)
{
    struct sse_client_group *g = c->g;
    detach(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->count--;
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    sse_parser_free(c->parser);
    while (c->listeners) {
        struct listener *l = c->listeners;
        c->listeners = l->next;
        sse__free(l);
    }
    sse__free(c->url);
    sse__free(c->abort_msg);
    uv_close((uv_handle_t *)&c->timer, free_data_cb);
}

/* Whether a header line is acceptable: "Name: value", no CR/LF, a non-empty name. */
static int header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    return colon && colon != h && !has_crlf(h);
}

/* Whether curl can parse url (a malformed one would otherwise fail every request). */
static int url_ok(const char *url)
{
    CURLU *u = curl_url();
    if (!u)
        return 1; /* out of memory: let the request report it */
    int ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
    curl_url_cleanup(u);
    return ok;
}

/* Free a private loop and the group on it, after its handles have closed. */
static void free_private(sse_client_group *g, uv_loop_t *loop)
{
    if (g)
        sse_client_group_free(g);
    if (loop) {
        uv_run(loop, UV_RUN_DEFAULT); /* only closing handles are left */
        uv_loop_close(loop);
        sse__free(loop);
    }
}

int sse_client_new(sse_client **out, sse_client_group *group, const char *url,
                   const sse_client_options *opts, const sse_client_callbacks *cb, void *user_data)
{
    static const sse_client_options defaults = SSE_CLIENT_OPTIONS_INIT;
    uv_loop_t *own_loop = NULL;
    int rc;

    if (!out || !url)
        return SSE_EINVAL;
    if (!opts)
        opts = &defaults;
    if (opts->version != SSE_CLIENT_OPTIONS_VERSION)
        return SSE_EINVAL; /* not initialised with SSE_CLIENT_OPTIONS_INIT */
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
        return SSE_EINVAL;
    if (has_crlf(url) || (opts->last_event_id && has_crlf(opts->last_event_id)))
        return SSE_EINVAL;
    for (const char *const *h = opts->headers; h && *h; h++)
        if (!header_ok(*h))
            return SSE_EINVAL;
    if (!url_ok(url))
        return SSE_EINVAL;

    if (!group) {
        own_loop = sse__malloc(sizeof(*own_loop));
        if (!own_loop)
            return SSE_ENOMEM;
        if (uv_loop_init(own_loop) != 0) {
            sse__free(own_loop);
            return SSE_ENOMEM;
        }
        rc = sse_client_group_new(&group, own_loop);
        if (rc) {
            uv_loop_close(own_loop);
            sse__free(own_loop);
            return rc;
        }
    }

    rc = SSE_ENOMEM;
    struct sse_client *c = sse__calloc(1, sizeof(*c));
    if (!c)
        goto out_free_private;
    c->g = group;
    c->own_loop = own_loop;
    c->url = sse__strdup(url);
    if (!c->url)
        goto out_free_c;
    sse_parser_options po = SSE_PARSER_OPTIONS_INIT;
    po.max_event = opts->max_event;
    po.max_line = opts->max_line;
    sse_parser_callbacks pcb = {on_parsed_event, on_parsed_retry, NULL};
    rc = sse_parser_new(&c->parser, &po, &pcb, c);
    if (rc)
        goto out_free_url;
    rc = SSE_ENOMEM;
    if (opts->last_event_id) {
        rc = sse_parser_set_last_event_id(c->parser, opts->last_event_id,
                                          strlen(opts->last_event_id));
        if (rc)
            goto out_free_parser;
        rc = SSE_ENOMEM;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
    if (!h)
        goto out_free_parser;
    c->headers = h;
    if (!curl_slist_append(c->headers, "Cache-Control: no-cache"))
        goto out_free_headers;
    for (const char *const *uh = opts->headers; uh && *uh; uh++)
        if (!curl_slist_append(c->headers, *uh))
            goto out_free_headers;
    c->easy = curl_easy_init();
    if (!c->easy)
        goto out_free_headers;

    long bufsize = opts->buffer_size ? opts->buffer_size : DEFAULT_BUFFER_SIZE;
    CURLcode e = CURLE_OK;
    e |= curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    e |= curl_easy_setopt(c->easy, CURLOPT_PRIVATE, (char *)c);
    e |= curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
    e |= curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
    e |= curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    e |= curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    e |= curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    e |= curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 1L);
    e |=
        curl_easy_setopt(c->easy, CURLOPT_MAXREDIRS,
                         (long)(opts->max_redirects ? opts->max_redirects : DEFAULT_MAX_REDIRECTS));
    e |= curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    e |= curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    e |= curl_easy_setopt(c->easy, CURLOPT_BUFFERSIZE, bufsize);
    e |= curl_easy_setopt(c->easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    e |= curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    e |= curl_easy_setopt(c->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (opts->connect_timeout_ms)
        e |= curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)opts->connect_timeout_ms);
    if (opts->ca_file) /* https: trust these CAs (curl keeps its own copy of the path) */
        e |= curl_easy_setopt(c->easy, CURLOPT_CAINFO, opts->ca_file);
    if (opts->insecure) {
        e |= curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYPEER, 0L);
        e |= curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (e != CURLE_OK) {
        rc = SSE_EINVAL;
        goto out_free_easy;
    }

    c->cb = cb ? *cb : (sse_client_callbacks){NULL, NULL, NULL, NULL};
    c->user_data = user_data;
    c->retry_ms = opts->reconnect_ms ? opts->reconnect_ms : DEFAULT_RECONNECT_MS;
    c->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    c->max_failures = opts->max_failures;
    c->read_timeout_ms = opts->read_timeout_ms;
    c->no_jitter = (unsigned char)(opts->no_jitter != 0);
    c->rng = (uint64_t)(uintptr_t)c ^ uv_hrtime() ^ 0x9e3779b97f4a7c15ull;
    if (!c->rng)
        c->rng = 1;
    c->state = SSE_CLIENT_CONNECTING;
    c->phase = PHASE_WAIT;
    uv_timer_init(group->loop, &c->timer); /* cannot fail on Unix */
    c->timer.data = c;
    c->next = group->clients;
    if (group->clients)
        group->clients->prev = c;
    group->clients = c;
    group->count++;
    /* The first request starts from the loop, never from inside a caller's curl callback. */
    uv_timer_start(&c->timer, on_client_timer, 0, 0);
    *out = c;
    return 0;

out_free_easy:
    curl_easy_cleanup(c->easy);
out_free_headers:
    curl_slist_free_all(c->headers);
out_free_parser:
    sse_parser_free(c->parser);
out_free_url:
    sse__free(c->url);
out_free_c:
    sse__free(c);
out_free_private:
    if (own_loop)
        free_private(group, own_loop);
    return rc;
}

int sse_client_add_listener(sse_client *c, const char *type, sse_client_listener_cb cb,
                            void *user_data)
{
    if (!c || !type || !cb)
        return SSE_EINVAL;
    size_t n = strlen(type);
    struct listener *l = sse__malloc(sizeof(*l) + n + 1);
    if (!l)
        return SSE_ENOMEM;
    l->next = NULL;
    l->cb = cb;
    l->user_data = user_data;
    memcpy(l->type, type, n + 1);
    struct listener **pp = &c->listeners;
    while (*pp)
        pp = &(*pp)->next;
    *pp = l;
    return 0;
}

struct run_state {
    int expired; /* the time limit ran out */
    int closed;  /* the limit timer's close callback ran */
};

int sse_client_remove_listener(sse_client *c, const char *type, sse_client_listener_cb cb,
                               void *user_data)
{
    if (!c || !type || !cb)
        return SSE_EINVAL;
    for (struct listener *l = c->listeners; l; l = l->next) {
        if (l->cb != cb || l->user_data != user_data || strcmp(l->type, type) != 0)
            continue;
        l->cb = NULL; /* skipped from now on; freed now or after the current dispatch */
        c->purge = 1;
        if (!c->dispatching)
            purge_listeners(c);
        return 0;
    }
    return SSE_ENOTFOUND;
}

static void on_run_timeout(uv_timer_t *t)
{
    ((struct run_state *)t->data)->expired = 1;
}

static void on_run_timer_closed(uv_handle_t *h)
{
    ((struct run_state *)h->data)->closed = 1;
}

int sse_client_run(sse_client *c, unsigned timeout_ms)
{
    if (!c || !c->own_loop)
        return SSE_EINVAL;
    uv_loop_t *loop = c->own_loop;
    struct run_state rs = {0, 0};
    uv_timer_t t;
    int rc = 0;
    uv_timer_init(loop, &t);
    t.data = &rs;
    if (timeout_ms)
        uv_timer_start(&t, on_run_timeout, timeout_ms, 0);
    while (c->state != SSE_CLIENT_CLOSED && !rs.expired)
        if (!uv_run(loop, UV_RUN_ONCE) && c->state != SSE_CLIENT_CLOSED && !timeout_ms) {
            rc = SSE_EIO; /* nothing left to wait for: cannot happen while not CLOSED */
            break;
        }
    /* t lives on this stack frame: wait for its close callback before returning. */
    uv_close((uv_handle_t *)&t, on_run_timer_closed);
    while (!rs.closed)
        uv_run(loop, UV_RUN_NOWAIT);
    if (!rc && c->state != SSE_CLIENT_CLOSED)
        rc = SSE_ETIMEDOUT;
    return rc;
}

void sse_client_close(sse_client *c)
{
    if (!c)
        return;
    c->state = SSE_CLIENT_CLOSED;
    c->phase = PHASE_DONE;
    uv_timer_stop(&c->timer);
    if (c->attached) {
        if (c->g->busy) {
            c->pending_remove = 1;
            queue_pending(c);
        } else {
            detach(c);
        }
    }
}

void sse_client_free(sse_client *c)
{
    if (!c || c->pending_free)
        return;
    sse_client_close(c);
    if (c->own_loop) {
        sse_client_group *g = c->g;
        uv_loop_t *loop = c->own_loop;
        client_release(c);
        free_private(g, loop);
        return;
    }
    if (c->g->busy) {
        c->pending_free = 1;
        queue_pending(c);
        return;
    }
    client_release(c);
}

int sse_client_ready_state(const sse_client *c)
{
    return c->state;
}

uint64_t sse_client_retry_ms(const sse_client *c)
{
    return c->retry_ms;
}

uint64_t sse_client_next_delay_ms(const sse_client *c)
{
    return c->delay_ms;
}

const char *sse_client_last_event_id(const sse_client *c)
{
    return sse_parser_last_event_id(c->parser, NULL);
}

const char *sse_client_url(const sse_client *c)
{
    return c->url;
}

unsigned sse_client_connections(const sse_client *c)
{
    return c->connections;
}
