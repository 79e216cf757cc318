/*
 * hub_publish.c: POST /.well-known/mercure and sse_hub_publish: the publish request checked
 * (content type, token, cookie origin, the form, the token's publish grants) and handed to the
 * update path (hub_update.c), which answers it once the store has the update.
 *
 * Not owned here: JWT verification (auth.c), form parsing (hub_util.c), storing and fan-out.
 */
#include "common/clock.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <string.h>
#include <strings.h>

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
        if ((h->drafts & SSE_HUB_DRAFT_08) && !strcmp(u->topics[i], "*"))
            return SSE_EINVAL; /* the wildcard matcher, not an addressable topic */
    }
    if ((u->id && !sse__hub_id_ok(u->id, strlen(u->id))) ||
        (u->type && !sse__hub_type_ok(u->type, strlen(u->type))))
        return SSE_EINVAL;
    if ((h->drafts & SSE_HUB_DRAFT_08) &&
        ((u->id && !strcmp(u->id, "earliest")) || (u->type && !strcmp(u->type, "mercure"))))
        return SSE_EINVAL; /* reserved: replay cursor, the hub's own subscription events */
    if (u->data && !sse__hub_utf8_ok(u->data, u->data_len))
        return SSE_EINVAL;
    if (u->data_len > h->o.max_update)
        return SSE_ELIMIT;
    struct sse__hub_pub p = {u->topics, u->n_topics, u->data,  u->data_len,   u->data != NULL,
                             u->id,     u->type,     u->retry, u->is_private, 0};
    return sse__hub_submit(h, &p, id_out, NULL);
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

int sse__hub_on_publish(sse_request *req, sse_hub *h)
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
        int found = sse__hub_find_token(h, req, &tok, &len, &from_cookie, &scratch);
        if (found < 0) {
            rc = sse__hub_fail(req, 400, sse__hub_token_request_error, SSE__HUB_TOKEN_IN_URL);
            goto out_rejected;
        }
        if (!found) {
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
        long long now = sse__now_ms() / 1000;
        h->jwks_may_wait = 0;
        int vr = sse__auth_verify(h->auth, SSE__AUTH_PUBLISH, tok, len, now, &g, &reason);
        if (vr == SSE_ENOMEM) {
            rc = sse__hub_fail(req, 503, NULL, "out of memory");
            goto out;
        }
        if (vr == SSE_EAUTH && sse__hub_jwks_park(h, req, 0)) {
            /* an unknown kid while its key set is being refetched: this handler runs again
               once the set is in (hub_jwks_wait.c) */
            rc = SSE_DEFERRED;
            goto out;
        }
        if (vr) {
            sse__hub_log(h, SSE_LOG_INFO, "publish refused from %s: token %s",
                         sse_request_remote_addr(req), reason ? reason : "invalid");
            rc = sse__hub_fail(req, 401, "invalid_token", "invalid token");
            goto out_rejected;
        }
    }

    /* draft-08's reserved values are refused whenever the hub serves draft-08 subscribers. */
    struct sse__pub_limits lim = {h->o.max_topics, h->o.max_selector_len, h->o.max_update, 0};
    lim.draft08 = (h->drafts & SSE_HUB_DRAFT_08) != 0;
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
                             f.is_private,
                             0};
    /* Answered by the update path once the store has it (now or later), unless it fails here. */
    int pr = sse__hub_submit(h, &p, &idb, req);
    if (pr == 0 || pr == SSE_DEFERRED)
        sse__hub_log(h, SSE_LOG_DEBUG, "published %s to %s%s%s from %s", sse_buf_cstr(&idb),
                     f.topics[0], f.n_topics > 1 ? " (+ alternates)" : "",
                     f.is_private ? " (private)" : "", sse_request_remote_addr(req));
    sse__pub_form_free(&f);
    if (pr == SSE_DEFERRED || pr == 0) {
        rc = pr;
        goto out;
    }
    rc = sse__hub_fail(req, 503, NULL, sse_strerror(pr));
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
