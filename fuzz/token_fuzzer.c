/*
 * token_fuzzer.c: libFuzzer target for JWT verification (src/hub/auth.c), fixed HS256 key.
 *
 * Byte 0 picks the mode and the role (other bits: issuer check, drafts, a 60 s leeway, several
 * accepted issuers):
 *  - even: the rest is a raw token string, verified as is (base64, structure, header, signature
 *    paths; almost all such inputs must be refused);
 *  - odd: the rest is "HEADER\nCLAIMS" (JSON texts); the fuzzer signs them correctly with the
 *    key (src/hub/jws.c), so the claim parsing behind the signature check (exp/nbf, draft-07
 *    "mercure", draft-08 authorization_details, aud/iss) gets exercised too.
 * Checks: only 0 / SSE_EAUTH / SSE_ENOMEM come back; a refusal carries a reason; accepted grants
 * are well formed (counts match non-NULL strings, kinds valid); a token whose header alg is not
 * exactly HS256 is never accepted; verifying twice (cache) gives the same answer.
 */
#include "hub/auth.h"
#include "hub/jws.h"
#include "hub/selector.h"

#include <jansson.h>
#include <sse/error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "fuzz-key-0123456789abcdef0123456789"
#define NOW 1700000000LL

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "token_fuzzer: %s\n", what);
        abort();
    }
}

static void check_grants(const struct sse__grants *g)
{
    must(g->draft == SSE__DRAFT_07 || g->draft == SSE__DRAFT_08, "bad draft");
    for (size_t i = 0; i < g->n_publish; i++) {
        must(g->publish[i] != NULL, "NULL publish selector");
        must(g->publish_kinds[i] >= SSE__SEL_AUTO && g->publish_kinds[i] <= SSE__SEL_URLPATTERN,
             "bad kind");
    }
    for (size_t i = 0; i < g->n_subscribe; i++) {
        must(g->subscribe[i] != NULL, "NULL subscribe selector");
        must(g->subscribe_kinds[i] >= SSE__SEL_AUTO && g->subscribe_kinds[i] <= SSE__SEL_URLPATTERN,
             "bad kind");
    }
    if (g->exp)
        must(NOW < g->exp, "expired token accepted");
}

static void verify(struct sse__auth *a, int role, const char *tok, size_t len)
{
    const struct sse__grants *g = NULL, *g2 = NULL;
    const char *why = NULL;
    int rc = sse__auth_verify(a, role, tok, len, NOW, &g, &why);
    must(rc == 0 || rc == SSE_EAUTH || rc == SSE_ENOMEM, "odd error code");
    if (rc == SSE_EAUTH)
        must(why && *why, "refusal without a reason");
    if (rc)
        return;
    check_grants(g);
    int rc2 = sse__auth_verify(a, role, tok, len, NOW, &g2, &why);
    must(rc2 == 0 && g2 == g, "cache disagrees");
    sse__grants_release(g2);
    sse__grants_release(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char tok[65536];
    if (size < 1 || size > 16384)
        return 0;
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = KEY;
    cfg.resource = "https://hub.example/.well-known/mercure";
    cfg.issuer = (data[0] & 4) ? "https://issuer.example" : NULL;
    static const char *const more_issuers[] = {"https://old-hub.example", "urn:ssehub:token"};
    if (data[0] & 0x40) { /* several accepted issuers (--issuer repeated) */
        cfg.issuers = more_issuers;
        cfg.n_issuers = 2;
    }
    cfg.drafts = (data[0] >> 3) & 3; /* 0 = both */
    cfg.cache_entries = 4;
    cfg.leeway = (data[0] & 0x20) ? 60 : 0;
    struct sse__auth *a;
    if (sse__auth_new(&a, &cfg))
        return 0;
    int role = (data[0] & 2) ? SSE__AUTH_SUBSCRIBE : SSE__AUTH_PUBLISH;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if (!(data[0] & 1)) {
        verify(a, role, in, n);
    } else {
        const char *nl = memchr(in, '\n', n);
        size_t hl = nl ? (size_t)(nl - in) : n;
        const char *claims = nl ? nl + 1 : "";
        size_t cl = nl ? n - hl - 1 : 0;
        size_t o = 0;
        must(sse__jws_encode(tok, sizeof(tok), &o, "HS256", KEY, in, hl, claims, cl, NULL) == 0,
             "signing failed");
        const struct sse__grants *g = NULL;
        const char *why = NULL;
        int rc = sse__auth_verify(a, role, tok, o, NOW, &g, &why);
        must(rc == 0 || rc == SSE_EAUTH || rc == SSE_ENOMEM, "odd error code");
        if (rc == 0) {
            /* only an HS256 header can have been accepted */
            json_t *h = json_loadb(in, hl, 0, NULL);
            json_t *alg = h ? json_object_get(h, "alg") : NULL;
            must(json_is_string(alg) && !strcmp(json_string_value(alg), "HS256"),
                 "accepted a non-HS256 header");
            json_decref(h);
            check_grants(g);
            sse__grants_release(g);
        } else if (rc == SSE_EAUTH) {
            must(why && *why, "refusal without a reason");
        }
    }
    sse__auth_free(a);
    return 0;
}
