/*
 * hub.c: the Mercure hub object, its routes and the publish path (see include/sse/hub.h).
 *
 * The path of one update: the form is decoded and validated (hub_util.c), the token checked
 * (auth.c, cached per token), the update encoded once into a frame, appended to the store, then
 * matched through the index (exact hash, wildcards, cached pattern matches) and the same frame
 * queued on every matching subscriber's stream; the server flushes once per loop turn.
 *
 * Not owned here: the subscribe path (hub_subscribe.c), the subscriptions API and metrics
 * (hub_api.c), JWT and selectors (auth.c, selector.c), the HTTP server and its writes.
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <sse/format.h>
#include <sse/hub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void sse__hub_log(sse_hub *h, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (h->o.log) {
        h->o.log(h->o.log_data, level, line);
    } else {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        if (level <= SSE_LOG_INFO)
            fprintf(stderr, "ssehub %s: %s\n", names[level & 3], line);
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sse__hub_fail(sse_request *req, int status, const char *error_code, const char *why)
{
    char chal[256];
    if (status == 401 || status == 403) {
        /* RFC 6750 + RFC 9728: where the protected resource metadata is (draft-08). */
        static const char md[] =
            "resource_metadata=\"/.well-known/oauth-protected-resource/.well-known/mercure\"";
        if (error_code)
            snprintf(chal, sizeof(chal), "Bearer error=\"%s\", %s", error_code, md);
        else
            snprintf(chal, sizeof(chal), "Bearer %s", md);
        sse_request_add_header(req, "WWW-Authenticate", chal);
    }
    sse_buf b;
    sse_buf_init(&b, 4096);
    sse_buf_printf(&b, "%s\n", why ? why : "error");
    int rc = sse_request_respond(req, status, "text/plain; charset=utf-8", b.data, b.len);
    sse_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- token lookup */

static int query_param(const char *q, const char *name, sse_buf *out)
{
    const char *cur = q, *end = q + strlen(q);
    sse_buf n, v;
    int found = 0;
    sse_buf_init(&n, 256);
    sse_buf_init(&v, 64 * 1024);
    for (;;) {
        int r = sse_form_next(&cur, end, &n, &v);
        if (r == 0)
            break;
        if (r < 0)
            break; /* sse_form_next does not advance past a bad pair: stop here */
        if (!strcmp(sse_buf_cstr(&n), name)) {
            sse_buf_reset(out);
            if (sse_buf_append(out, v.data ? v.data : "", v.len) == 0)
                found = 1;
            break;
        }
    }
    sse_buf_free(&n);
    sse_buf_free(&v);
    return found;
}

int sse__hub_find_token(sse_hub *h, const sse_request *req, const char **tok, size_t *len,
                        int *from_cookie, sse_buf *scratch)
{
    *from_cookie = 0;
    const char *auth = sse_request_header(req, "Authorization");
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        const char *t = auth + 7;
        while (*t == ' ')
            t++;
        *tok = t;
        *len = strlen(t);
        while (*len && t[*len - 1] == ' ')
            (*len)--;
        return 1;
    }
    const char *q = sse_request_query(req);
    if (q && *q) {
        if (((h->drafts & SSE_HUB_DRAFT_08) && query_param(q, "access_token", scratch)) ||
            ((h->drafts & SSE_HUB_DRAFT_07) && query_param(q, "authorization", scratch))) {
            *tok = sse_buf_cstr(scratch);
            *len = scratch->len;
            return 1;
        }
    }
    const char *cookie = sse_request_header(req, "Cookie");
    if (cookie) {
        static const char *const names[] = {"__Secure-mercureAuthorization", "mercureAuthorization",
                                            "__Secure-mercureAccessToken", "mercureAccessToken"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (sse__hub_cookie_get(cookie, names[i], tok, len) && *len) {
                *from_cookie = 1;
                return 1;
            }
    }
    return 0;
}

/* ---------------------------------------------------------------- fan-out */

struct fanout {
    sse_hub *h;
    const char *const *topics;
    size_t n_topics;
    int is_private;
    sse_frame *frame;
    uint64_t seq;
};

int sse__hub_can_read(const struct sse__hub_subscriber *s, const char *const *topics, size_t n)
{
    for (size_t g = 0; g < s->n_gsel; g++)
        for (size_t i = 0; i < n; i++)
            if (sse__selector_match(s->gsel[g], topics[i], strlen(topics[i])))
                return 1;
    return 0;
}

static void deliver(void *ud, struct sse__isub *is)
{
    struct fanout *f = ud;
    struct sse__hub_subscriber *s = ((struct sse__hub_sub *)is)->owner;
    if (s->last_seq == f->seq)
        return;
    s->last_seq = f->seq; /* the grants check is per subscriber: do it at most once */
    if (f->is_private && !sse__hub_can_read(s, f->topics, f->n_topics))
        return;
    if (!s->st) {
        sse__hub_hold(s, f->frame); /* subscribing: sent after the replay */
        return;
    }
    if (sse_stream_send_frame(s->st, f->frame) == 0)
        f->h->st.deliveries_total++;
}

int sse__hub_publish_core(sse_hub *h, const struct sse__hub_pub *p, sse_buf *id_out)
{
    return sse__hub_apply(h, p, now_ms(), 1, id_out);
}

int sse__hub_apply(sse_hub *h, const struct sse__hub_pub *p, long long time_ms, int fanout,
                   sse_buf *id_out)
{
    char uuid[46];
    const char *id = p->id;
    int rc;
    if (!id) {
        if ((rc = sse__hub_uuid4(uuid)))
            return rc;
        id = uuid;
    }
    sse_event ev = SSE_EVENT_INIT;
    ev.id = id;
    ev.id_len = strlen(id);
    ev.type = p->type;
    ev.type_len = p->type ? strlen(p->type) : 0;
    ev.data = p->has_data ? (p->data ? p->data : "") : "";
    ev.data_len = p->has_data ? p->data_len : 0;
    ev.retry = p->retry;

    sse_buf b;
    sse_frame *frame = NULL;
    sse_buf_init(&b, 0);
    if ((rc = sse_encode_event(&b, &ev)) || (rc = sse_frame_from_buf(&frame, &b))) {
        sse_buf_free(&b);
        return rc;
    }
    sse_buf_free(&b);

    sse_store_entry e = {0};
    e.id = id;
    e.id_len = ev.id_len;
    e.topics = p->topics;
    e.n_topics = p->n_topics;
    e.is_private = p->is_private;
    e.frame = frame;
    e.time_ms = time_ms;
    rc = sse_store_append(h->store, &e, NULL, NULL);
    if (rc) {
        sse__hub_log(h, SSE_LOG_WARN, "history append failed: %s", sse_strerror(rc));
        /* Live delivery still happens: history is best effort (the update is not lost live). */
    }

    struct fanout f = {h, p->topics, p->n_topics, p->is_private, frame, ++h->seq};
    for (size_t i = 0; i < p->n_topics && fanout; i++)
        sse__index_match(h->index, p->topics[i], strlen(p->topics[i]), deliver, &f);
    h->st.updates_total += fanout != 0;
    sse_frame_unref(frame);
    if (id_out) {
        sse_buf_reset(id_out);
        if ((rc = sse_buf_append_str(id_out, id)))
            return rc;
    }
    return 0;
}

int sse_hub_publish(sse_hub *h, const sse_hub_update *u, sse_buf *id_out)
{
    if (!u->n_topics)
        return SSE_EINVAL;
    for (size_t i = 0; i < u->n_topics; i++) {
        size_t n = strlen(u->topics[i]);
        if (!n || !sse__hub_text_ok(u->topics[i], n))
            return SSE_EINVAL;
        if (n > h->o.max_selector_len)
            return SSE_ELIMIT;
        int r = sse__hub_topic_reserved(u->topics[i], n);
        if (r)
            return r < 0 ? r : SSE_EINVAL; /* only the hub itself publishes there */
    }
    if ((u->id && !sse__hub_id_ok(u->id, strlen(u->id))) ||
        (u->type && !sse__hub_type_ok(u->type, strlen(u->type))))
        return SSE_EINVAL;
    if (u->data && !sse__hub_utf8_ok(u->data, u->data_len))
        return SSE_EINVAL;
    if (u->data_len > h->o.max_update)
        return SSE_ELIMIT;
    struct sse__hub_pub p = {u->topics, u->n_topics, u->data,  u->data_len,  u->data != NULL,
                             u->id,     u->type,     u->retry, u->is_private};
    return sse__hub_publish(h, &p, id_out, NULL);
}

/* ---------------------------------------------------------------- POST /.well-known/mercure */

static int grants_allow_publish(const struct sse__grants *g, sse_hub *h, char **topics, size_t n,
                                int *bad)
{
    *bad = 0;
    if (!g->n_publish)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int ok = 0;
        for (size_t k = 0; k < g->n_publish && !ok; k++) {
            int kind = g->publish_kinds ? g->publish_kinds[k] : g->kind;
            struct sse__selector *sel;
            int rc = sse__selector_cache_get(h->selcache, g->publish[k], strlen(g->publish[k]),
                                             kind, &sel);
            if (rc == SSE_ENOMEM) {
                *bad = rc;
                return 0;
            }
            if (rc)
                continue; /* a granted selector that does not compile grants nothing */
            ok = sse__selector_match(sel, topics[i], strlen(topics[i]));
            sse__selector_unref(sel);
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static int on_publish(sse_request *req, sse_hub *h)
{
    const struct sse__grants *g = NULL;
    struct sse__pub_form f;
    sse_buf scratch, idb;
    const char *why = NULL;
    int rc = 0, status;
    sse_buf_init(&scratch, 64 * 1024);
    sse_buf_init(&idb, 4096);

    const char *ct = sse_request_header(req, "Content-Type");
    if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        rc = sse__hub_fail(req, 400, "invalid_request",
                           "the body must be application/x-www-form-urlencoded");
        goto out_rejected;
    }
    if (!h->o.publish_anonymous) {
        const char *tok;
        size_t len;
        int from_cookie;
        if (!sse__hub_find_token(h, req, &tok, &len, &from_cookie, &scratch)) {
            rc = sse__hub_fail(req, 401, NULL, "a publisher token is required");
            goto out_rejected;
        }
        if (from_cookie &&
            !sse__hub_origin_allowed(h->publish_origins, sse_request_header(req, "Origin"),
                                     sse_request_header(req, "Referer"))) {
            rc = sse__hub_fail(req, 403, "insufficient_scope",
                               "cookie-authenticated publish from an origin not allowed");
            goto out_rejected;
        }
        if (!h->auth) {
            rc = sse__hub_fail(req, 401, "invalid_token", "no publisher key is configured");
            goto out_rejected;
        }
        const char *reason = NULL;
        long long now = now_ms() / 1000;
        int vr = sse__auth_verify(h->auth, SSE__AUTH_PUBLISH, tok, len, now, &g, &reason);
        if (vr == SSE_ENOMEM) {
            rc = sse__hub_fail(req, 503, NULL, "out of memory");
            goto out;
        }
        if (vr) {
            sse__hub_log(h, SSE_LOG_INFO, "publish refused from %s: token %s",
                         sse_request_remote_addr(req), reason ? reason : "invalid");
            rc = sse__hub_fail(req, 401, "invalid_token", "invalid token");
            goto out_rejected;
        }
    }

    /* draft-08 rules when the hub speaks only draft-08 or the token is a draft-08 one. */
    struct sse__pub_limits lim = {h->o.max_topics, h->o.max_selector_len, h->o.max_update, 0};
    lim.single_topic = h->drafts == SSE_HUB_DRAFT_08 || (g && g->draft == SSE__DRAFT_08);
    size_t blen;
    const char *body = sse_request_body(req, &blen);
    status = sse__pub_form_parse(&f, body, blen, &lim, &why);
    if (status == SSE_ENOMEM) {
        rc = sse__hub_fail(req, 503, NULL, "out of memory");
        goto out;
    }
    if (status) {
        rc = sse__hub_fail(req, status, status == 400 ? "invalid_request" : NULL, why);
        goto out_rejected;
    }
    if (g) {
        int bad;
        if (!grants_allow_publish(g, h, f.topics, f.n_topics, &bad)) {
            sse__pub_form_free(&f);
            rc = bad ? sse__hub_fail(req, 503, NULL, "out of memory")
                     : sse__hub_fail(req, 403, "insufficient_scope",
                                     "the token does not allow publishing to every topic");
            goto out_rejected;
        }
    }
    struct sse__hub_pub p = {(const char *const *)f.topics,
                             f.n_topics,
                             f.data.data,
                             f.data.len,
                             f.has_data,
                             f.id,
                             f.type,
                             f.retry,
                             f.is_private};
    int pr = sse__hub_publish(h, &p, &idb, req);
    if (pr == SSE_DEFERRED) { /* answered when the bus hands the update back (hub_bus.c) */
        sse__pub_form_free(&f);
        rc = SSE_DEFERRED;
        goto out;
    }
    if (!pr)
        sse__hub_log(h, SSE_LOG_DEBUG, "published %s to %s%s%s from %s", sse_buf_cstr(&idb),
                     f.topics[0], f.n_topics > 1 ? " (+ alternates)" : "",
                     f.is_private ? " (private)" : "", sse_request_remote_addr(req));
    sse__pub_form_free(&f);
    if (pr) {
        rc = sse__hub_fail(req, 503, NULL, sse_strerror(pr));
        goto out;
    }
    sse_request_add_header(req, "Cache-Control", "no-store");
    rc = sse_request_respond(req, 200, "text/plain; charset=utf-8", idb.data, idb.len);
    goto out;

out_rejected:
    h->st.publish_rejected_total++;
out:
    sse__grants_release(g);
    sse_buf_free(&scratch);
    sse_buf_free(&idb);
    /* a failed answer is the server's to log; the request is finished either way */
    return rc == SSE_DEFERRED ? SSE_DEFERRED : 0;
}

static int on_hub(sse_request *req, void *ud)
{
    sse_hub *h = ud;
    const char *m = sse_request_method(req);
    char link[] = "</.well-known/mercure>; rel=\"mercure\"";
    sse_request_add_header(req, "Link", link);
    if (!strcmp(m, "POST"))
        return on_publish(req, h);
    if (!strcmp(m, "GET"))
        return sse__hub_on_subscribe(req, h);
    if (!strcmp(m, "OPTIONS")) /* CORS preflight without the server's own handling */
        return sse_request_respond(req, 204, NULL, "", 0);
    sse_request_add_header(req, "Allow", "GET, POST, OPTIONS");
    return sse__hub_fail(req, 405, NULL, "method not allowed");
}

/* ---------------------------------------------------------------- lifecycle */

static char *dup_opt(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = sse__strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

int sse_hub_new(sse_hub **out, sse_server *server, const sse_hub_options *opts)
{
    static const sse_hub_options defaults = SSE_HUB_OPTIONS_INIT;
    const sse_hub_options *o = opts ? opts : &defaults;
    int rc = SSE_ENOMEM, oom = 0;
    sse_hub *h = sse__calloc(1, sizeof(*h));
    if (!h)
        return SSE_ENOMEM;
    h->o = *o;
    h->server = server;
    h->drafts = o->drafts ? o->drafts & SSE_HUB_DRAFT_BOTH : SSE_HUB_DRAFT_BOTH;
    if (!h->drafts || !o->loop || !server) {
        rc = SSE_EINVAL;
        goto out_free;
    }
    if (!h->o.max_selectors)
        h->o.max_selectors = 64;
    if (!h->o.max_selector_len)
        h->o.max_selector_len = 1024;
    if (!h->o.max_topics)
        h->o.max_topics = 16;
    if (!h->o.max_update)
        h->o.max_update = 1u << 20;
    if (!h->o.replay_scan)
        h->o.replay_scan = 100;
    if (!h->o.expiry_sweep_ms)
        h->o.expiry_sweep_ms = 250;
    h->o.publisher_key = h->o.subscriber_key = NULL; /* not kept: auth holds its own copies */
    h->o.publisher_alg = h->o.subscriber_alg = h->o.resource = h->o.issuer = NULL;
    h->o.publish_origins = NULL;
    h->publish_origins = dup_opt(o->publish_origins, &oom);
    h->resource = dup_opt(o->resource, &oom);
    if (oom)
        goto out_free;

    if (o->publisher_key || o->subscriber_key) {
        struct sse__auth_config ac = {0};
        ac.publisher_key = o->publisher_key ? o->publisher_key : o->subscriber_key;
        ac.publisher_alg = o->publisher_alg;
        ac.subscriber_key = o->subscriber_key;
        ac.subscriber_alg = o->subscriber_alg;
        ac.drafts = (h->drafts & SSE_HUB_DRAFT_07 ? SSE__DRAFT_07 : 0) |
                    (h->drafts & SSE_HUB_DRAFT_08 ? SSE__DRAFT_08 : 0);
        ac.resource = o->resource;
        ac.issuer = o->issuer;
        ac.max_selector_len = h->o.max_selector_len;
        if ((rc = sse__auth_new(&h->auth, &ac)))
            goto out_free;
    }
    struct sse__selector_limits sl = {h->o.max_selector_len, 0};
    if ((rc = sse__selector_cache_new(&h->selcache, 0, &sl)))
        goto out_free;
    if ((rc = sse__index_new(&h->index, o->pattern_cache)))
        goto out_free;
    if (o->store) {
        h->store = o->store;
    } else {
        sse_store_limits lim = {o->history_count ? o->history_count : 1000,
                                o->history_bytes ? o->history_bytes : (16u << 20), 0};
        if (lim.max_count == SIZE_MAX)
            lim.max_count = 0;
        if ((rc = sse_store_memory_new(&h->store, &lim)))
            goto out_free;
        h->own_store = 1;
    }
    h->loop = o->loop;
    h->o.instance = NULL;
    h->instance = dup_opt(o->instance, &oom);
    if (oom || (rc = sse__hub_bus_init(h))) {
        rc = oom ? SSE_ENOMEM : rc;
        goto out_free;
    }
    h->sweep = sse__calloc(1, sizeof(*h->sweep));
    if (!h->sweep) {
        rc = SSE_ENOMEM;
        goto out_free;
    }
    if ((rc = sse_server_route(server, NULL, "/.well-known/mercure", on_hub, h)) ||
        (rc = sse_server_route(server, "GET", "/.well-known/mercure/subscriptions*",
                               sse__hub_on_subscriptions_api, h)) ||
        (rc = sse_server_route(server, "GET",
                               "/.well-known/oauth-protected-resource/.well-known/mercure",
                               sse__hub_on_metadata, h)) ||
        (rc = sse_server_route(server, "GET", "/healthz", sse__hub_on_healthz, h)) ||
        (rc = sse_server_route(server, "GET", "/metrics", sse__hub_on_metrics, h)))
        goto out_free;
    uv_timer_init(h->loop, h->sweep);
    h->sweep->data = h;
    uv_timer_start(h->sweep, sse__hub_sweep_cb, h->o.expiry_sweep_ms, h->o.expiry_sweep_ms);
    uv_unref((uv_handle_t *)h->sweep); /* the sweep alone does not keep the loop running */
    *out = h;
    return 0;

out_free:
    if (h->own_store)
        sse_store_free(h->store);
    sse__free(h->sweep);
    sse__index_free(h->index);
    sse__selector_cache_free(h->selcache);
    sse__auth_free(h->auth);
    sse__free(h->publish_origins);
    sse__free(h->resource);
    sse__free(h->instance);
    sse__free(h);
    return rc;
}

void sse_hub_get_stats(const sse_hub *h, sse_hub_stats *out)
{
    *out = h->st;
    size_t c = 0, b = 0;
    sse_store_stats(h->store, &c, &b);
    out->history_count = c;
    out->history_bytes = b;
}

static void sweep_closed(uv_handle_t *t)
{
    sse__free(t);
}

void sse_hub_close(sse_hub *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    uv_timer_stop(h->sweep);
    uv_close((uv_handle_t *)h->sweep, sweep_closed);
    h->sweep = NULL;
    sse__hub_bus_close(h);
    sse__hub_close_subscribers(h);
}

void sse_hub_free(sse_hub *h)
{
    if (!h)
        return;
    if (!h->closing)
        sse_hub_close(h);
    /* Streams not yet closed by the server lose their subscriber object here. */
    while (h->subscribers) {
        struct sse__hub_subscriber *s = h->subscribers;
        h->subscribers = s->next;
        if (s->st)
            sse_stream_set_data(s->st, NULL);
        for (size_t i = 0; i < s->n_subs; i++) {
            sse__index_remove(h->index, &s->subs[i].isub);
            sse__selector_unref(s->subs[i].isub.sel);
            sse__free(s->subs[i].text);
        }
        for (size_t i = 0; i < s->n_gsel; i++)
            sse__selector_unref(s->gsel[i]);
        sse__free(s->gsel);
        sse__free(s->subs);
        sse__free(s->id);
        sse__grants_release(s->grants);
        sse__free(s);
    }
    if (h->own_store)
        sse_store_free(h->store);
    sse__index_free(h->index);
    sse__selector_cache_free(h->selcache);
    sse__auth_free(h->auth);
    sse__free(h->publish_origins);
    sse__free(h->resource);
    sse__free(h->instance);
    sse__free(h);
}
