/*
 * hub.c: the Mercure hub object: options, its routes, stats, close and free
 * (see include/sse/hub.h).
 *
 * The files of the hub, each using only those listed after it: hub.c (this) -> hub_publish.c
 * (POST) and hub_subscribe.c (GET, replay, expiry) -> hub_update.c (the path of one update:
 * bus, store, fan-out) -> hub_subscriber.c (one subscriber) -> hub_http.c (errors, tokens,
 * log), hub_util.c (validation), index.c, auth.c, selector.c. hub_api.c (subscriptions API,
 * metadata, /healthz, /metrics) reads the hub's state.
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"
#include "hub/jwks.h"

#include <sse/format.h>
#include <sse/hub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int on_hub(sse_request *req, void *ud)
{
    sse_hub *h = ud;
    const char *m = sse_request_method(req);
    char link[] = "</.well-known/mercure>; rel=\"mercure\"";
    sse_request_add_header(req, "Link", link);
    if (!strcmp(m, "POST"))
        return sse__hub_on_publish(req, h);
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

/* What sse_hub_new made, freed (the one teardown of the hub object). */
static void hub_release(sse_hub *h)
{
    if (h->own_store)
        sse_store_free(h->store);
    sse__index_free(h->index);
    sse__selector_cache_free(h->selcache);
    sse__auth_free(h->auth);
    sse__free(h->publish_origins);
    sse__free(h->resource);
    sse__free(h->instance);
    sse__free(h->cookie_name);
    sse__free(h);
}

/* auth.c met a token whose kid its role's key set lacks: ask for a fresh set, at most once per
   jwks_refresh_min_ms per role, so a flood of made-up kids costs one fetch per interval. While
   a refetch is in flight the request may wait for it (hub_jwks_wait.c). */
static void hub_unknown_kid(void *data, int role)
{
    sse_hub *h = data;
    int i = role == SSE__AUTH_PUBLISH ? 0 : 1;
    uint64_t now = uv_now(h->loop) + 1; /* + 1: 0 means "never asked" */
    uint64_t min = h->o.jwks_refresh_min_ms ? h->o.jwks_refresh_min_ms : 5000;
    if (!h->o.jwks_refresh)
        return;
    if (h->jwks_asked_ms[i] && now - h->jwks_asked_ms[i] < min) {
        sse__hub_jwks_unknown_kid(h, i, 0); /* the request may wait for one in flight */
        return;
    }
    h->jwks_asked_ms[i] = now;
    h->jwks_refreshes++;
    sse__hub_log(h, SSE_LOG_INFO, "%s token with an unknown kid: asking for a fresh key set",
                 i ? "subscriber" : "publisher");
    sse__hub_jwks_unknown_kid(h, i, 1); /* before asking: the set may come back at once */
    h->o.jwks_refresh(h->o.jwks_refresh_data, i ? SSE_HUB_SUBSCRIBER : SSE_HUB_PUBLISHER);
}

void sse_hub_jwks_refresh_failed(sse_hub *h, int role)
{
    if (h && !h->closing && (role == SSE_HUB_PUBLISHER || role == SSE_HUB_SUBSCRIBER))
        sse__hub_jwks_wake(h, role == SSE_HUB_PUBLISHER ? 0 : 1);
}

int sse_hub_set_jwks(sse_hub *h, int role, const char *json, size_t len, const char **why)
{
    const char *dummy;
    struct sse__jwks *set = NULL;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!h || !h->auth || (role != SSE_HUB_PUBLISHER && role != SSE_HUB_SUBSCRIBER) ||
        !(h->o.jwks_roles & role)) {
        *why = "not a key-set role of this hub";
        return SSE_EINVAL;
    }
    int rc = sse__jwks_parse(json, len, &set, why);
    if (rc)
        return rc;
    size_t n = set->n;
    rc = sse__auth_set_jwks(
        h->auth, role == SSE_HUB_PUBLISHER ? SSE__AUTH_PUBLISH : SSE__AUTH_SUBSCRIBE, set);
    if (!rc) {
        sse__hub_log(h, SSE_LOG_INFO, "%s key set loaded: %zu key%s",
                     role == SSE_HUB_PUBLISHER ? "publisher" : "subscriber", n, n == 1 ? "" : "s");
        if (!h->closing) /* the requests waiting for it are verified again (soon, not here) */
            sse__hub_jwks_wake(h, role == SSE_HUB_PUBLISHER ? 0 : 1);
    }
    return rc;
}

/* A verifier for h from the keys, algorithms and issuers of o, with the hub's fixed settings
   (drafts, resource, key-set roles, selector length): for sse_hub_new and sse_hub_set_auth. */
static int hub_auth_build(sse_hub *h, const sse_hub_options *o, struct sse__auth **out)
{
    struct sse__auth_config ac = {0};
    for (size_t i = 0; o->issuers && i < o->n_issuers; i++)
        if (!o->issuers[i] || !o->issuers[i][0]) /* an empty issuer would match nothing */
            return SSE_EINVAL;
    ac.jwks_roles = (h->o.jwks_roles & SSE_HUB_PUBLISHER ? SSE__AUTH_PUBLISH : 0) |
                    (h->o.jwks_roles & SSE_HUB_SUBSCRIBER ? SSE__AUTH_SUBSCRIBE : 0);
    ac.on_unknown_kid = hub_unknown_kid;
    ac.on_unknown_kid_data = h;
    ac.publisher_key = o->publisher_key ? o->publisher_key : o->subscriber_key;
    ac.publisher_alg = o->publisher_alg;
    ac.subscriber_key = o->subscriber_key;
    ac.subscriber_alg = o->subscriber_alg;
    ac.drafts = (h->drafts & SSE_HUB_DRAFT_07 ? SSE__DRAFT_07 : 0) |
                (h->drafts & SSE_HUB_DRAFT_08 ? SSE__DRAFT_08 : 0);
    ac.resource = h->resource;
    ac.issuer = o->issuer;
    ac.issuers = o->issuers;
    ac.n_issuers = o->issuers ? o->n_issuers : 0;
    ac.max_selector_len = h->o.max_selector_len;
    return sse__auth_new(out, &ac);
}

int sse_hub_set_auth(sse_hub *h, const sse_hub_options *o)
{
    struct sse__auth *a = NULL;
    if (!h || !o || h->closing)
        return SSE_EINVAL;
    if (!o->publisher_key && !o->subscriber_key && !h->o.jwks_roles)
        return SSE_EINVAL; /* no verifier at all: a restart (sse_hub_new) decides that */
    int rc = hub_auth_build(h, o, &a);
    if (rc)
        return rc; /* the old verifier stays */
    if (h->auth)   /* the key sets fetched for the key-set roles go on serving */
        sse__auth_move_jwks(a, h->auth);
    sse__auth_free(h->auth); /* its cache too: the old keys' tokens are verified again */
    h->auth = a;
    sse__hub_log(h, SSE_LOG_INFO, "the JWT verification keys and issuers were replaced");
    return 0;
}

int sse_hub_set_limits(sse_hub *h, const sse_hub_options *o)
{
    if (!h || !o)
        return SSE_EINVAL;
    size_t max_update = o->max_update ? o->max_update : 1u << 20;
    if (h->o.bus) { /* the bus's messages were sized for the limit at start */
        sse_hub_options sized = h->o;
        sized.max_update = max_update;
        if (sse_hub_bus_max_message(&sized) > h->bus_max)
            return SSE_EINVAL;
    }
    h->o.max_update = max_update;              /* checked when a publish is parsed */
    h->o.max_subscribers = o->max_subscribers; /* checked when a stream opens */
    h->o.replay_steps_max = o->replay_steps_max ? o->replay_steps_max : (uint64_t)1 << 24;
    return 0;
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
    if (!h->o.replay_steps_max)
        h->o.replay_steps_max = (uint64_t)1 << 24;
    h->o.publisher_key = h->o.subscriber_key = NULL; /* not kept: auth holds its own copies */
    h->o.publisher_alg = h->o.subscriber_alg = h->o.resource = h->o.issuer = NULL;
    h->o.issuers = NULL; /* borrowed for this call: auth keeps its own copies */
    h->o.n_issuers = 0;
    h->o.publish_origins = NULL;
    h->publish_origins = dup_opt(o->publish_origins, &oom);
    h->resource = dup_opt(o->resource, &oom);
    h->o.cookie_name = NULL;
    h->cookie_name = dup_opt(o->cookie_name, &oom);
    if (oom)
        goto out_free;
    if (h->cookie_name && !sse__hub_cookie_name_ok(h->cookie_name)) {
        rc = SSE_EINVAL;
        goto out_free;
    }

    for (size_t i = 0; o->issuers && i < o->n_issuers; i++)
        if (!o->issuers[i] || !o->issuers[i][0]) { /* an empty issuer would match nothing */
            rc = SSE_EINVAL;
            goto out_free;
        }
    if (o->jwks_roles & ~(SSE_HUB_PUBLISHER | SSE_HUB_SUBSCRIBER)) {
        rc = SSE_EINVAL;
        goto out_free;
    }
    if ((o->publisher_key || o->subscriber_key || o->jwks_roles) &&
        (rc = hub_auth_build(h, o, &h->auth)))
        goto out_free;
    if (!h->o.max_pattern_nodes)
        h->o.max_pattern_nodes = (size_t)1 << 18;
    struct sse__selector_limits sl = {h->o.max_selector_len, 0, h->o.max_pattern_nodes};
    if ((rc = sse__selector_cache_new(&h->selcache, 0, &sl)))
        goto out_free;
    if ((rc = sse__index_new(&h->index, o->pattern_cache)))
        goto out_free;
    if (o->store) {
        h->store = o->store;
    } else { /* the default: a memory store with its default limits */
        if ((rc = sse_store_memory_new(&h->store, NULL)))
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
    h->replay_idle = sse__calloc(1, sizeof(*h->replay_idle));
    if (!h->sweep || !h->replay_idle) {
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
        (rc = sse_server_route(server, "GET", "/livez", sse__hub_on_healthz, h)) ||
        (rc = sse_server_route(server, "GET", "/readyz", sse__hub_on_readyz, h)) ||
        (rc = sse_server_route(server, "GET", "/metrics", sse__hub_on_metrics, h)))
        goto out_free;
    uv_idle_init(h->loop, h->replay_idle);
    h->replay_idle->data = h;
    uv_timer_init(h->loop, h->sweep);
    h->sweep->data = h;
    uv_timer_start(h->sweep, sse__hub_sweep_cb, h->o.expiry_sweep_ms, h->o.expiry_sweep_ms);
    uv_unref((uv_handle_t *)h->sweep); /* the sweep alone does not keep the loop running */
    *out = h;
    return 0;

out_free: /* the timers were never started: their memory goes at once */
    sse__free(h->sweep);
    sse__free(h->replay_idle);
    hub_release(h);
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
    uv_idle_stop(h->replay_idle);
    uv_close((uv_handle_t *)h->replay_idle, sweep_closed);
    h->replay_idle = NULL;
    sse__hub_replay_close(h);
    sse__hub_jwks_close(h);
    sse__hub_bus_close(h);
    sse__hub_close_subscribers(h);
}

void sse_hub_free(sse_hub *h)
{
    if (!h)
        return;
    if (!h->closing)
        sse_hub_close(h);
    sse__hub_update_free(h);
    /* Streams not yet closed by the server lose their subscriber object here. */
    while (h->subscribers) {
        struct sse__hub_subscriber *s = h->subscribers;
        h->subscribers = s->next;
        if (s->st)
            sse_stream_set_data(s->st, NULL);
        sse__hub_subscriber_free(h, s);
    }
    hub_release(h);
}
