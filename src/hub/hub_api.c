/*
 * hub_api.c: the hub's read-only endpoints: the subscriptions API (draft-07 JSON-LD with
 * lastEventID in the body; draft-08 JSON with the cursor on the Link header), the draft-08
 * protected resource metadata, GET /healthz and GET /metrics (Prometheus text format).
 *
 * The server hands us the percent-decoded path, so a subscriptions URL is resolved against the
 * active subscriptions (a subscription's own {topic}/{subscriber} shape), and the canonical
 * encoded form is rebuilt for the authorization check and the document's id.
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <string.h>
#include <time.h>

static const char k_prefix[] = "/.well-known/mercure/subscriptions";

/*
 * The draft-08 matcher type that starts the decoded path rest ("exact/", "urlpattern/", or the
 * earlier snapshot's "Exact/" / "URLPattern/", kept as aliases): SSE__FORM_EXACT or
 * SSE__FORM_URLPATTERN with *skip the bytes it takes, or -1.
 */
static int matcher_segment(const char *rest, size_t n, size_t *skip)
{
    static const struct {
        const char *seg;
        int form;
    } segs[] = {{"exact/", SSE__FORM_EXACT},
                {"urlpattern/", SSE__FORM_URLPATTERN},
                {"Exact/", SSE__FORM_EXACT},
                {"URLPattern/", SSE__FORM_URLPATTERN}};
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        size_t l = strlen(segs[i].seg);
        if (n >= l && !memcmp(rest, segs[i].seg, l)) {
            *skip = l;
            return segs[i].form;
        }
    }
    return -1;
}

/* Does a subscription (form, selector text, subscriber id) fit the decoded rest of the path
   (after the prefix and '/')? 2 single, 1 collection, 0 no. */
static int fits(int form, const char *text, size_t len, const char *id, size_t id_len,
                const char *rest, size_t n)
{
    const char *p = rest;
    size_t left = n;
    if (form != SSE__FORM_TOPIC) {
        size_t tl = 0;
        if (matcher_segment(p, left, &tl) != form)
            return 0;
        p += tl, left -= tl;
    }
    if (left < len || memcmp(p, text, len))
        return 0;
    if (left == len)
        return 1;
    p += len, left -= len;
    if (left == id_len + 1 && p[0] == '/' && !memcmp(p + 1, id, id_len))
        return 2;
    return 0;
}

static int sub_fits(const struct sse__hub_sub *sub, const char *rest, size_t n)
{
    return fits(sub->form, sub->text, sub->len, sub->owner->id, strlen(sub->owner->id), rest, n);
}

static int remote_fits(const struct sse__hub_remote_sub *r, const char *rest, size_t n)
{
    return fits(r->form, r->text, r->len, r->id, r->id_len, rest, n);
}

/* The members of a collection: this node's subscriptions that fit the rest of the path (all
   when it is empty), then the other nodes', comma-separated. */
static int append_subscriptions(sse_buf *doc, sse_hub *h, const char *rest, size_t rlen,
                                const struct sse__hub_remote_sub *remote, size_t n_remote)
{
    int rc = 0, first = 1;
    for (struct sse__hub_subscriber *s = h->subscribers; s && !rc; s = s->next)
        for (size_t i = 0; i < s->n_subs && !rc; i++) {
            if (rlen && sub_fits(&s->subs[i], rest, rlen) != 1)
                continue;
            if (!first)
                rc = sse_buf_append_byte(doc, ',');
            first = 0;
            if (!rc)
                rc = sse__hub_sub_json(doc, &s->subs[i], 1, 0);
        }
    for (size_t i = 0; i < n_remote && !rc; i++) {
        if (rlen && remote_fits(&remote[i], rest, rlen) != 1)
            continue;
        if (!first)
            rc = sse_buf_append_byte(doc, ',');
        first = 0;
        if (!rc)
            rc = sse_buf_append(doc, remote[i].json, remote[i].json_len);
    }
    return rc;
}

static int authorized_for(sse_hub *h, const struct sse__hub_subscriber *tmp, const char *path)
{
    const char *topics[1] = {path};
    (void)h;
    return sse__hub_can_read(tmp, topics, 1);
}

/*
 * lastEventID for a reader: the newest update it may read (public, or private with a matching
 * grant), found by a bounded backward scan from the newest; "earliest" when none is in reach. A
 * private update's id is never shown to a token that cannot read it (issue 9, finding 7).
 */
struct last_visible {
    const struct sse__hub_subscriber *who; /* NULL: abandoned (the store answers later) */
    char *id;                              /* the answer, or NULL */
    int done;
};

static int lv_each(void *ud, const sse_store_entry *e)
{
    struct last_visible *v = ud;
    if (!v->who)
        return 1;
    if (e->is_private && !sse__hub_can_read(v->who, e->topics, e->n_topics))
        return 0;
    v->id = sse__strndup(e->id, e->id_len); /* NULL (out of memory): "earliest", still safe */
    return 1;
}

static void lv_done(void *ud, int status, int found)
{
    struct last_visible *v = ud;
    (void)status, (void)found;
    v->done = 1;
    if (!v->who) { /* completed after the request was answered */
        sse__free(v->id);
        sse__free(v);
    }
}

static int last_visible_id(sse_hub *h, const struct sse__hub_subscriber *who, sse_buf *out)
{
    sse_buf newest;
    sse_buf_init(&newest, 0);
    struct last_visible *v = NULL;
    if (!sse_store_last_id(h->store, &newest) && (v = sse__calloc(1, sizeof(*v)))) {
        v->who = who;
        if (sse_store_scan_back(h->store, newest.data, newest.len, h->o.replay_scan, lv_each,
                                lv_done, v)) {
            sse__free(v); /* failed: no callback will come */
            v = NULL;
        } else if (!v->done) {
            v->who = NULL; /* lv_done frees it */
            v = NULL;
        }
    }
    sse_buf_free(&newest);
    int rc = sse_buf_append_str(out, v && v->id ? v->id : "earliest");
    if (v)
        sse__free(v->id);
    sse__free(v);
    return rc;
}

/*
 * The answer, once the other nodes' subscriptions are known (remote[0..n_remote): none without
 * a bus sharing presence). A subscription of another node is found, authorized and listed as a
 * local one is; its JSON object is the one its node wrote.
 */
static void api_answer(sse_hub *h, sse_request *req, const struct sse__hub_remote_sub *remote,
                       size_t n_remote)
{
    const char *path = sse_request_path(req);
    size_t plen = strlen(path), pl = sizeof(k_prefix) - 1;
    sse_buf scratch, canon, doc, last;
    int rc = 0;
    struct sse__hub_subscriber tmp = {0};
    const struct sse__grants *g = NULL;
    sse_buf_init(&scratch, 64 * 1024);
    sse_buf_init(&canon, 0);
    sse_buf_init(&doc, 0);
    sse_buf_init(&last, 4096);

    const char *rest = plen > pl ? path + pl + 1 : "";
    size_t rlen = plen > pl ? plen - pl - 1 : 0;

    /* Which subscriptions: all, one selector's, or one. */
    const struct sse__hub_sub *single = NULL;
    const struct sse__hub_sub *coll_example = NULL;
    for (struct sse__hub_subscriber *s = h->subscribers; s && rlen && !single; s = s->next)
        for (size_t i = 0; i < s->n_subs; i++) {
            int fit = sub_fits(&s->subs[i], rest, rlen);
            if (fit == 2) {
                single = &s->subs[i];
                break;
            }
            if (fit == 1 && !coll_example)
                coll_example = &s->subs[i];
        }
    const struct sse__hub_remote_sub *single_remote = NULL;
    int remote_coll = 0;
    for (size_t i = 0; i < n_remote && rlen && !single && !single_remote; i++) {
        int fit = remote_fits(&remote[i], rest, rlen);
        if (fit == 2)
            single_remote = &remote[i];
        remote_coll |= fit == 1;
    }

    /* The canonical (encoded) URL of the document, also the topic to authorize. */
    if (!rlen) {
        rc = sse_buf_append_str(&canon, k_prefix);
    } else if (single) {
        rc = sse__hub_sub_topic(&canon, single);
    } else if (single_remote) {
        rc = sse__hub_sub_topic_of(&canon, single_remote->form, single_remote->text,
                                   single_remote->len, single_remote->id, single_remote->id_len);
    } else {
        rc = sse_buf_append_str(&canon, k_prefix);
        if (!rc)
            rc = sse_buf_append_byte(&canon, '/');
        size_t skip = 0;
        int form = (h->drafts & SSE_HUB_DRAFT_08) ? matcher_segment(rest, rlen, &skip) : -1;
        if (!rc && form >= 0) { /* canonical (lower-case) matcher type, then the matcher */
            rc =
                sse_buf_append_str(&canon, form == SSE__FORM_URLPATTERN ? "urlpattern/" : "exact/");
            if (!rc)
                rc = sse__hub_pct_encode(&canon, rest + skip, rlen - skip);
        } else if (!rc) {
            rc = sse__hub_pct_encode(&canon, rest, rlen);
        }
    }
    if (rc) {
        sse__hub_fail(req, 503, NULL, "out of memory");
        goto out;
    }

    /* Authorization: the token's subscribe grants must match the canonical URL. */
    const char *tok;
    size_t tlen;
    int from_cookie;
    int found = sse__hub_find_token(h, req, &tok, &tlen, &from_cookie, &scratch);
    if (found < 0) {
        sse__hub_fail(req, 400, sse__hub_token_request_error, SSE__HUB_TOKEN_IN_URL);
        goto out;
    }
    if (!found) {
        sse__hub_fail(req, 401, NULL, "a token is required");
        goto out;
    }
    const char *reason = NULL;
    if (!h->auth || sse__auth_verify(h->auth, SSE__AUTH_SUBSCRIBE, tok, tlen, (long long)time(NULL),
                                     &g, &reason)) {
        sse__hub_fail(req, 401, "invalid_token", "invalid token");
        goto out;
    }
    tmp.grants = g;
    if (g->n_subscribe) {
        tmp.gsel = sse__calloc(g->n_subscribe, sizeof(*tmp.gsel));
        if (!tmp.gsel) {
            sse__hub_fail(req, 503, NULL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < g->n_subscribe; i++) {
            int kind = g->subscribe_kinds ? g->subscribe_kinds[i] : g->kind;
            if (!sse__selector_cache_get(h->selcache, g->subscribe[i], strlen(g->subscribe[i]),
                                         kind, &tmp.gsel[tmp.n_gsel]))
                tmp.n_gsel++;
        }
    }
    if (!authorized_for(h, &tmp, sse_buf_cstr(&canon))) {
        sse__hub_fail(req, 403, "insufficient_scope", "the token does not grant this URL");
        goto out;
    }
    if (rlen && !single && !coll_example && !single_remote && !remote_coll) {
        /*
         * The decoded path cannot tell "{topic}" from "{topic}/{subscriber}" when the topic holds
         * '/': a URL that names no active subscription and no active selector is a 404.
         */
        sse__hub_fail(req, 404, NULL, "no such subscription");
        goto out;
    }
    last_visible_id(h, &tmp, &last);

    /* draft-08 shape for a draft-08 subscription or matcher URL, or a draft-08 token. */
    size_t seg_skip;
    int d08 = single ? single->form != SSE__FORM_TOPIC
              : single_remote
                  ? single_remote->form != SSE__FORM_TOPIC
                  : (g->draft == SSE__DRAFT_08 || ((h->drafts & SSE_HUB_DRAFT_08) && rlen &&
                                                   matcher_segment(rest, rlen, &seg_skip) >= 0));
    if (d08) {
        /* JSON documents as the subscription events carry them; the cursor on the Link. */
        if (single) {
            rc = sse__hub_sub_json(&doc, single, 1, 1);
        } else if (single_remote) { /* its node's object, as it is */
            rc = sse_buf_append(&doc, single_remote->json, single_remote->json_len);
        } else {
            rc = sse_buf_append_str(&doc, "{\"id\":");
            if (!rc)
                rc = sse__hub_json_str(&doc, canon.data, canon.len);
            if (!rc)
                rc = sse_buf_append_str(&doc, ",\"type\":\"subscriptions\",\"subscriptions\":[");
            if (!rc)
                rc = append_subscriptions(&doc, h, rest, rlen, remote, n_remote);
            if (!rc)
                rc = sse_buf_append_str(&doc, "]}");
        }
        sse_buf link;
        sse_buf_init(&link, 0);
        if (!rc)
            rc = sse_buf_append_str(&link,
                                    "</.well-known/mercure>; rel=\"mercure\"; last-event-id=\"");
        for (size_t i = 0; !rc && i < last.len; i++) { /* a quoted-string: escape " and \ */
            if (last.data[i] == '"' || last.data[i] == '\\')
                rc = sse_buf_append_byte(&link, '\\');
            if (!rc)
                rc = sse_buf_append_byte(&link, last.data[i]);
        }
        if (!rc)
            rc = sse_buf_append_str(&link,
                                    "\"; type=\"mercure\"; content-type=\"application/json\"");
        if (!rc)
            rc = sse_request_add_header(req, "Link", sse_buf_cstr(&link));
        sse_buf_free(&link);
        if (rc) {
            sse__hub_fail(req, 503, NULL, "out of memory");
            goto out;
        }
        sse_request_add_header(req, "Cache-Control", "must-revalidate");
        sse_request_respond(req, 200, "application/json", doc.data, doc.len);
        goto out;
    }

    if (single || single_remote) {
        if (single) {
            rc = sse__hub_sub_json(&doc, single, 1, 1);
        } else { /* its node's object, with the context a top-level document has */
            rc = sse_buf_append_str(&doc, "{\"@context\":\"https://mercure.rocks/\",");
            if (!rc)
                rc = sse_buf_append(&doc, single_remote->json + 1, single_remote->json_len - 1);
        }
        if (!rc && doc.len) {
            doc.len--; /* reopen the object to add lastEventID */
            rc = sse_buf_append_str(&doc, ",\"lastEventID\":");
            if (!rc)
                rc = sse__hub_json_str(&doc, last.data, last.len);
            if (!rc)
                rc = sse_buf_append_byte(&doc, '}');
        }
    } else {
        rc = sse_buf_append_str(&doc, "{\"@context\":\"https://mercure.rocks/\",\"id\":");
        if (!rc)
            rc = sse__hub_json_str(&doc, canon.data, canon.len);
        if (!rc)
            rc = sse_buf_append_str(&doc, ",\"type\":\"Subscriptions\",\"lastEventID\":");
        if (!rc)
            rc = sse__hub_json_str(&doc, last.data, last.len);
        if (!rc)
            rc = sse_buf_append_str(&doc, ",\"subscriptions\":[");
        if (!rc)
            rc = append_subscriptions(&doc, h, rest, rlen, remote, n_remote);
        if (!rc)
            rc = sse_buf_append_str(&doc, "]}");
    }
    if (rc) {
        sse__hub_fail(req, 503, NULL, "out of memory");
        goto out;
    }
    sse_request_add_header(req, "Link", "</.well-known/mercure>; rel=\"mercure\"");
    sse_request_add_header(req, "Cache-Control", "must-revalidate");
    sse_request_respond(req, 200, "application/ld+json", doc.data, doc.len);

out:
    for (size_t i = 0; i < tmp.n_gsel; i++)
        sse__selector_unref(tmp.gsel[i]);
    sse__free(tmp.gsel);
    sse__grants_release(g);
    sse_buf_free(&scratch);
    sse_buf_free(&canon);
    sse_buf_free(&doc);
    sse_buf_free(&last);
}

/* A request waiting for the other nodes' subscriptions (req NULL: its client went away). */
struct api_wait {
    sse_hub *h;
    sse_request *req;
};

static void api_abort(sse_request *req, void *ud)
{
    struct api_wait *w = ud;
    (void)req;
    w->req = NULL;
}

static void api_listed(void *ud, struct sse__hub_remote_sub *subs, size_t n, int status)
{
    struct api_wait *w = ud;
    /* Partial (a node's entry unreadable, Redis gone meanwhile): what was read is shown; the
       error is logged by hub_presence.c. */
    (void)status;
    if (w->req) {
        sse_request_on_abort(w->req, NULL, NULL);
        if (w->h->closing) /* the bus closes after the hub (still allocated until the loop ends) */
            sse__hub_fail(w->req, 503, NULL, "the hub is shutting down");
        else
            api_answer(w->h, w->req, subs, n);
    }
    sse__free(w);
}

int sse__hub_on_subscriptions_api(sse_request *req, void *ud)
{
    sse_hub *h = ud;
    const char *path = sse_request_path(req);
    size_t plen = strlen(path), pl = sizeof(k_prefix) - 1;
    if (!h->o.subscriptions) {
        sse__hub_fail(req, 404, NULL, "the subscriptions API is disabled");
        return 0;
    }
    if (plen < pl || memcmp(path, k_prefix, pl) || (plen > pl && path[pl] != '/')) {
        sse__hub_fail(req, 404, NULL, "not found");
        return 0;
    }
    struct api_wait *w = sse__calloc(1, sizeof(*w));
    if (w) {
        w->h = h;
        w->req = req;
        int rc = sse__hub_presence_list(h, api_listed, w);
        if (rc == 0) {
            sse_request_on_abort(req, api_abort, w);
            return SSE_DEFERRED;
        }
        sse__free(w);
        if (rc != SSE_EUNSUPPORTED) /* Redis down: this node's view, said in the log */
            sse__hub_log(h, SSE_LOG_WARN, "subscriptions API: only this node's subscriptions: %s",
                         sse_strerror(rc));
    }
    api_answer(h, req, NULL, 0);
    return 0;
}

/* ---------------------------------------------------------------- metadata, health, metrics */

int sse__hub_on_metadata(sse_request *req, void *ud)
{
    sse_hub *h = ud;
    sse_buf b;
    sse_buf_init(&b, 0);
    int rc = sse_buf_append_str(&b, "{\"resource\":");
    if (!rc)
        rc = h->resource ? sse__hub_json_str(&b, h->resource, strlen(h->resource))
                         : sse_buf_append_str(&b, "null");
    /* RFC 9728 members as draft-08 defines them: only the header is an RFC 6750 method the
       hub accepts (no token in URLs); the cookie is named in mercure_cookie. No version
       member: the protocol carries none. */
    if (!rc)
        rc = sse_buf_append_str(&b, ",\"bearer_methods_supported\":[\"header\"],"
                                    "\"authorization_details_types_supported\":"
                                    "[\"https://mercure.rocks/authorization-detail\"],"
                                    "\"mercure_cookie\":\"" SSE__HUB_COOKIE_08 "\"");
    if (!rc && h->o.subscriptions)
        rc = sse_buf_append_str(&b, ",\"mercure_subscriptions\":true");
    if (!rc)
        rc = sse_buf_append_byte(&b, '}');
    if (rc)
        sse__hub_fail(req, 503, NULL, "out of memory");
    else
        sse_request_respond(req, 200, "application/json", b.data, b.len);
    sse_buf_free(&b);
    return 0;
}

int sse__hub_on_healthz(sse_request *req, void *ud)
{
    (void)ud;
    return sse_request_respond(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

/*
 * GET /readyz: 200 while updates can be stored and travel, else 503 with the reason, so a load
 * balancer sends no publisher or subscriber here (/livez and /healthz stay 200: restarting the
 * process would not bring the store's disk or the Redis server back). Checks the store's and
 * the bus's health queries (include/sse/store.h, bus.h) and that the hub is not shutting down.
 */
int sse__hub_on_readyz(sse_request *req, void *ud)
{
    sse_hub *h = ud;
    const char *why = NULL;
    int ok = !h->closing && sse_store_healthy(h->store, &why) &&
             (!h->o.bus || sse_bus_healthy(h->o.bus, &why));
    char body[160];
    int n = snprintf(body, sizeof(body), "%s\n", ok ? "ready" : why ? why : "shutting down");
    sse_request_add_header(req, "Cache-Control", "no-store");
    return sse_request_respond(req, ok ? 200 : 503, "text/plain; charset=utf-8", body,
                               (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

/* One metric; with a hub instance (worker) every sample is labelled worker="K". */
static int metric_l(sse_buf *b, const char *inst, const char *name, const char *type,
                    const char *help, unsigned long long v)
{
    if (inst)
        return sse_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s{worker=\"%s\"} %llu\n", name, help,
                              name, type, name, inst, v);
    return sse_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                          v);
}
#define metric(b, ...) metric_l(b, h->instance, __VA_ARGS__)

int sse__hub_on_metrics(sse_request *req, void *ud)
{
    sse_hub *h = ud;
    sse_server_stats ss;
    sse_hub_stats hs;
    sse_server_get_stats(h->server, &ss);
    sse_hub_get_stats(h, &hs);
    struct sse__index_stats is;
    sse__index_get_stats(h->index, &is);
    sse_buf b;
    sse_buf_init(&b, 0);
    int rc = 0;
    rc |= metric(&b, "ssehub_connections", "gauge", "Open TCP connections.", ss.connections);
    rc |= metric(&b, "ssehub_subscribers", "gauge", "Open subscriber streams.", hs.subscribers);
    rc |= metric(&b, "ssehub_subscriptions", "gauge", "Selectors of open subscribers.",
                 hs.subscriptions);
    rc |= metric(&b, "ssehub_connections_accepted_total", "counter", "TCP connections accepted.",
                 ss.accepted_total);
    rc |= metric(&b, "ssehub_requests_total", "counter", "HTTP requests received.",
                 ss.requests_total);
    rc |= metric(&b, "ssehub_updates_published_total", "counter", "Updates published.",
                 hs.updates_total);
    rc |= metric(&b, "ssehub_events_delivered_total", "counter",
                 "Events queued to subscribers (live and replayed).", hs.deliveries_total);
    rc |= metric(&b, "ssehub_events_replayed_total", "counter", "Events replayed from history.",
                 hs.replayed_total);
    rc |= metric(&b, "ssehub_bytes_written_total", "counter", "Bytes written to sockets.",
                 ss.bytes_written_total);
    rc |= metric(&b, "ssehub_publish_rejected_total", "counter", "Publish requests refused.",
                 hs.publish_rejected_total);
    rc |= metric(&b, "ssehub_subscribe_rejected_total", "counter", "Subscribe requests refused.",
                 hs.subscribe_rejected_total);
    rc |=
        metric(&b, "ssehub_history_updates", "gauge", "Updates kept in history.", hs.history_count);
    rc |= metric(&b, "ssehub_history_bytes", "gauge", "Bytes kept in history.", hs.history_bytes);
    rc |= metric(&b, "ssehub_pattern_cache_hits_total", "counter", "Pattern-match cache hits.",
                 is.cache_hits);
    rc |= metric(&b, "ssehub_pattern_cache_misses_total", "counter", "Pattern-match cache misses.",
                 is.cache_misses);
    rc |= metric(&b, "ssehub_jwks_refreshes_total", "counter",
                 "Fresh key sets asked for (tokens with an unknown kid, rate-limited).",
                 h->jwks_refreshes);
    rc |= metric(&b, "ssehub_jwks_waiting", "gauge",
                 "Requests waiting for the refetch of a key set (their token's kid was unknown).",
                 (uint64_t)(h->jwks_n_waiting[0] + h->jwks_n_waiting[1]));
    static const char *const reasons[SSE__HUB_REASONS] = {"local",   "peer",  "slow",
                                                          "timeout", "error", "expired"};
    rc |= sse_buf_append_str(&b, "# HELP ssehub_disconnects_total Subscriber streams closed, by "
                                 "reason.\n# TYPE ssehub_disconnects_total counter\n");
    for (int i = 0; i < SSE__HUB_REASONS; i++) {
        unsigned long long v = h->closed_by_reason[i];
        if (i == 0) /* expired streams close as "local": count them under expired only */
            v -= h->closed_by_reason[5] <= v ? h->closed_by_reason[5] : v;
        rc |= sse_buf_printf(&b, "ssehub_disconnects_total{%s%s%sreason=\"%s\"} %llu\n",
                             h->instance ? "worker=\"" : "", h->instance ? h->instance : "",
                             h->instance ? "\"," : "", reasons[i], v);
    }
    if (rc) {
        sse_buf_free(&b);
        return sse__hub_fail(req, 503, NULL, "out of memory");
    }
    sse_request_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    sse_buf_free(&b);
    return 0;
}
