/*
 * hub_http.c: what every hub route shares: answering an error (with the RFC 6750 challenge),
 * finding the request's token (header, query, cookies, per the drafts enabled), and the hub's
 * log line.
 *
 * Not owned here: the routes themselves (hub.c, hub_publish.c, hub_subscribe.c, hub_api.c).
 */
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <sse/log.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
        if (level <= SSE_LOG_INFO)
            sse_log_stderr(level, "hub", line);
    }
}

const char sse__hub_token_request_error[] = "invalid_request";

int sse__hub_fail(sse_request *req, int status, const char *error_code, const char *why)
{
    char chal[256];
    /* a 400 about the token's presentation carries the challenge too (RFC 6750, draft-08) */
    if (status == 401 || status == 403 || error_code == sse__hub_token_request_error) {
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
        /* draft-08 forbids tokens in URLs: access_token is refused, never read (a subscriber
           must not silently become anonymous, a publisher must learn why) */
        if ((h->drafts & SSE_HUB_DRAFT_08) && query_param(q, "access_token", scratch))
            return -1;
        if ((h->drafts & SSE_HUB_DRAFT_07) && query_param(q, "authorization", scratch)) {
            *tok = sse_buf_cstr(scratch);
            *len = scratch->len;
            return 1;
        }
    }
    const char *cookie = sse_request_header(req, "Cookie");
    if (cookie && h->cookie_name) { /* --cookie-name: that cookie only, as the reference hub */
        if (sse__hub_cookie_get(cookie, h->cookie_name, tok, len) && *len) {
            *from_cookie = 1;
            return 1;
        }
        return 0;
    }
    if (cookie) {
        static const char *const names[] = {SSE__HUB_COOKIE_08, "__Secure-mercureAuthorization",
                                            "mercureAuthorization", "__Secure-mercureAccessToken",
                                            "mercureAccessToken"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (sse__hub_cookie_get(cookie, names[i], tok, len) && *len) {
                *from_cookie = 1;
                return 1;
            }
    }
    return 0;
}
