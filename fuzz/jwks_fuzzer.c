/*
 * jwks_fuzzer.c: libFuzzer target for the JSON Web Key Set decoder (src/hub/jwks.c) and the
 * verifier's key-set path (src/hub/auth.c, sse__auth_set_jwks and key selection by kid).
 *
 * The input is a key set document. Checks: only 0 / SSE_EINVAL / SSE_ENOMEM come back, a
 * refusal carries a reason; an accepted set holds 1..64 keys, each with a public key, one of the
 * algorithms we verify, and a kid of at most 256 bytes without NUL that sse__jwks_find finds
 * (the first key of that kid); the set is then handed to a verifier, and a token naming each
 * kid (with a junk signature) is refused, never accepted, without a crash.
 */
#include "hub/auth.h"
#include "hub/jwks.h"

#include <openssl/evp.h>
#include <sse/error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "jwks_fuzzer: %s\n", what);
        abort();
    }
}

static int alg_known(const char *a)
{
    static const char *const algs[] = {"RS256", "RS384", "RS512", "ES256",
                                       "ES384", "ES512", "EdDSA"};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (a && !strcmp(a, algs[i]))
            return 1;
    return 0;
}

/* base64url of s (no padding) into out. */
static size_t b64u(const char *s, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = t[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = t[v & 63];
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sse__jwks *set = NULL;
    const char *why = NULL;
    int rc = sse__jwks_parse((const char *)data, size, &set, &why);
    must(rc == 0 || rc == SSE_EINVAL || rc == SSE_ENOMEM, "unexpected error code");
    if (rc) {
        must(rc == SSE_ENOMEM || why != NULL, "a refusal without a reason");
        return 0;
    }
    must(set && set->n >= 1 && set->n <= SSE__JWKS_MAX_KEYS, "key count out of bounds");
    for (size_t i = 0; i < set->n; i++) {
        const struct sse__jwk *k = &set->keys[i];
        must(k->pkey != NULL, "a key without its public key");
        must(alg_known(k->alg), "a key of an algorithm we do not verify");
        if (k->kid) {
            size_t kl = strlen(k->kid);
            must(kl <= SSE__JWKS_MAX_KID, "kid too long");
            const struct sse__jwk *f = sse__jwks_find(set, k->kid, kl);
            must(f && f <= k && !strcmp(f->kid, k->kid), "kid not found (or not the first)");
        }
    }

    /* The verifier takes the set; a token per kid with a junk signature is refused. */
    struct sse__auth_config cfg = {0};
    struct sse__auth *a = NULL;
    cfg.jwks_roles = SSE__AUTH_PUBLISH | SSE__AUTH_SUBSCRIBE;
    if (sse__auth_new(&a, &cfg)) {
        sse__jwks_free(set);
        return 0;
    }
    char kids[SSE__JWKS_MAX_KEYS][SSE__JWKS_MAX_KID + 1];
    const char *algs[SSE__JWKS_MAX_KEYS];
    size_t n = set->n;
    for (size_t i = 0; i < n; i++) {
        snprintf(kids[i], sizeof(kids[i]), "%s", set->keys[i].kid ? set->keys[i].kid : "");
        algs[i] = set->keys[i].alg;
    }
    if (sse__auth_set_jwks(a, SSE__AUTH_PUBLISH, set) == 0) {
        for (size_t i = 0; i < n; i++) {
            char header[600], tok[1400];
            const struct sse__grants *g = NULL;
            int hl = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i],
                              kids[i]);
            if (hl < 0 || (size_t)hl >= sizeof(header) || strpbrk(kids[i], "\"\\"))
                continue;
            size_t o = b64u(header, (size_t)hl, tok);
            o += (size_t)snprintf(tok + o, sizeof(tok) - o, ".eyJleHAiOjF9.AAAA");
            rc = sse__auth_verify(a, SSE__AUTH_PUBLISH, tok, o, 0, &g, &why);
            must(rc == SSE_EAUTH || rc == SSE_ENOMEM, "a junk signature was accepted");
        }
    }
    sse__auth_free(a);
    return 0;
}
