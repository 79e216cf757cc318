/*
 * auth.c: verify Mercure JWTs (draft-07 "mercure" claim, draft-08 access tokens) into grants.
 *
 * Order of checks, cheapest and most hostile-input-proof first: length cap; exactly three
 * base64url parts (strict alphabet, no padding, canonical trailing bits); the header JSON, whose
 * "alg" must be exactly the configured algorithm ("none" and every other algorithm are refused
 * before any key is touched, which rules out algorithm confusion: an RS256 public key is never
 * used as an HMAC secret, and an HMAC secret is never read as a key); the signature; then the
 * claims (exp / nbf with a configurable leeway, iss, draft-08 typ / aud / exp-required) and the
 * grants, whose shape is validated completely (one bad draft-08 authorization detail refuses the
 * whole token, as the draft demands).
 *
 * Signatures are checked with OpenSSL, not libjwt: HS256/384/512 with HMAC() and CRYPTO_memcmp
 * (constant time; libjwt 1.10 compares HMAC signatures as base64 text with strcmp), RS256/384/512
 * and ES256/384/512 with EVP_DigestVerify on the configured PEM public key (libjwt 1.10's
 * jwt_decode refuses any "typ" other than "JWT", so it cannot read draft-08 "at+jwt" tokens).
 * jansson parses the JSON.
 *
 * Verified tokens are cached by SHA-256(role, token) -> grants (bounded LRU, entries dropped once
 * expired), so the token text itself is not kept and lookups compare fixed-size digests.
 *
 * This file does not own: extracting the token from a request, matching grants against topics.
 */
#include "hub/auth.h"

#include "common/alloc.h"
#include "hub/hub_util.h"
#include "hub/jwks.h"
#include "hub/selector.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <sse/error.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define AUTH_DEFAULT_MAX_TOKEN 8192
#define AUTH_DEFAULT_CACHE 1024
#define AUTH_DEFAULT_MAX_GRANTS 128
#define AUTH_DEFAULT_MAX_SELECTOR 1024
#define AUTH_MAX_DETAILS 64 /* draft-08 mercure authorization details per token */

struct auth_alg {
    const char *name;
    int family;     /* 'H' HMAC, 'R' RSA, 'E' ECDSA, 'O' EdDSA (Ed25519, RFC 8037) */
    const char *md; /* NULL for EdDSA, which hashes inside the signature */
};

static const struct auth_alg auth_algs[] = {
    {"HS256", 'H', "SHA256"}, {"HS384", 'H', "SHA384"}, {"HS512", 'H', "SHA512"},
    {"RS256", 'R', "SHA256"}, {"RS384", 'R', "SHA384"}, {"RS512", 'R', "SHA512"},
    {"ES256", 'E', "SHA256"}, {"ES384", 'E', "SHA384"}, {"ES512", 'E', "SHA512"},
    {"EdDSA", 'O', NULL},
};

struct auth_key {
    const struct auth_alg *alg;
    size_t key_len;   /* HMAC secret length (the secret itself lives in `mac` only) */
    EVP_PKEY *pkey;   /* RS / ES public key */
    EVP_MD *md;       /* the algorithm's digest, fetched once */
    EVP_MAC_CTX *mac; /* HS: an HMAC context keyed once; duplicated per verification */
    /* A key-set role (cfg.jwks_roles): alg is NULL here, the keys are in set (or none yet) */
    int role;                /* SSE__AUTH_PUBLISH or SSE__AUTH_SUBSCRIBE: a key-set role */
    struct auth_keyset *set; /* the role's current set (NULL: none yet) */
};

/* A decoded key set made ready to verify with: one auth_key per usable JWK. */
struct auth_keyset {
    struct sse__jwks *jwks; /* kids and public keys (owned) */
    struct auth_key *keys;  /* keys[i] verifies with jwks->keys[i] (pkey references) */
};

struct cache_entry {
    struct cache_entry *hnext, *prev, *next;
    unsigned char digest[32];         /* SHA-256(role byte, token) */
    const struct sse__grants *grants; /* one reference */
};

struct sse__auth {
    struct auth_key pub, sub;
    void (*on_unknown_kid)(void *data, int role);
    void *on_unknown_kid_data;
    int drafts;
    char *resource;
    char **issuers; /* the accepted "iss" values (config issuer, then issuers); none: unchecked */
    size_t n_issuers;
    size_t max_token_len, max_grants, max_selector_len;
    long leeway;
    /* verified-token cache */
    struct cache_entry **buckets;
    size_t n_buckets, n, capacity;
    struct cache_entry *head, *tail;
    size_t hits, misses;
    EVP_MD *sha256;   /* cache key digest, fetched once */
    EVP_MD_CTX *dctx; /* reused for every cache key */
};

/* ---- grants ---------------------------------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        sse__free(v[i]);
    sse__free(v);
}

static void grants_free(struct sse__grants *g)
{
    strv_free(g->publish, g->n_publish);
    strv_free(g->subscribe, g->n_subscribe);
    strv_free(g->subscribe_payloads, g->n_subscribe);
    sse__free(g->publish_kinds);
    sse__free(g->subscribe_kinds);
    sse__free(g->payload_json);
    sse__free(g->sub);
    sse__free(g);
}

const struct sse__grants *sse__grants_ref(const struct sse__grants *g)
{
    if (g)
        ((struct sse__grants *)g)->refs_++;
    return g;
}

void sse__grants_release(const struct sse__grants *cg)
{
    struct sse__grants *g = (struct sse__grants *)cg;
    if (!g || --g->refs_)
        return;
    grants_free(g);
}

/* Append a selector (and its kind / payload) to one role's lists; arrays are sized up front. */
static int grants_push(char **v, int *kinds, size_t *n, const char *s, size_t len, int kind)
{
    v[*n] = sse__strndup(s, len);
    if (!v[*n])
        return SSE_ENOMEM;
    kinds[*n] = kind;
    (*n)++;
    return 0;
}

/* ---- base64url / JSON ----------------------------------------------------------------- */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict base64url without padding into out (room for len*3/4 bytes). -1 if malformed. */
static long b64url_decode(const char *in, size_t len, unsigned char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= ((uint32_t)1 << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical trailing bits: refuse (no malleable encodings) */
        return -1;
    return (long)o;
}

static json_t *b64_json(const char *in, size_t len, const char **why, const char *bad_b64,
                        const char *bad_json)
{
    unsigned char *buf = sse__malloc(len / 4 * 3 + 3);
    if (!buf) {
        *why = NULL; /* tells the caller it was memory, not the token */
        return NULL;
    }
    long n = b64url_decode(in, len, buf);
    json_t *j = NULL;
    if (n < 0) {
        *why = bad_b64;
        goto out;
    }
    json_error_t err;
    j = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        j = NULL;
        *why = bad_json;
    }
out:
    sse__free(buf);
    return j;
}

/* A NumericDate claim: 1 and *v if present and a number, 0 if absent, -1 if not a number. */
static int numeric_date(json_t *claims, const char *name, long long *v)
{
    json_t *x = json_object_get(claims, name);
    if (!x)
        return 0;
    if (json_is_integer(x)) {
        *v = (long long)json_integer_value(x);
        return 1;
    }
    if (json_is_real(x)) {
        double d = json_real_value(x);
        if (!(d > -9.2e18 && d < 9.2e18))
            return -1;
        *v = (long long)d;
        return 1;
    }
    return -1;
}

/* ---- signature ------------------------------------------------------------------------ */

/* 1 valid, 0 not, -1 out of memory. */
static int verify_hmac(const struct auth_key *k, const char *token, size_t signed_len,
                       const char *sig64, size_t sig64_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE], sig[EVP_MAX_MD_SIZE + 3];
    size_t mac_len = 0;
    if (sig64_len > (EVP_MAX_MD_SIZE * 4 + 2) / 3)
        return 0;
    long n = b64url_decode(sig64, sig64_len, sig);
    if (n < 0)
        return 0;
    /* The keyed context is prepared once (key_init); a copy of it hashes this token. */
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(k->mac);
    if (!c)
        return -1;
    int ok = EVP_MAC_update(c, (const unsigned char *)token, signed_len) == 1 &&
             EVP_MAC_final(c, mac, &mac_len, sizeof(mac)) == 1;
    EVP_MAC_CTX_free(c);
    if (!ok)
        return -1;
    /* Length is public (it is fixed by the algorithm); the bytes are compared in constant time. */
    return (size_t)n == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
}

/*
 * RSA / ECDSA with OpenSSL. libjwt 1.10's jwt_decode cannot be used here: it refuses every token
 * whose "typ" header is not "JWT", and draft-08 access tokens say "at+jwt" (RFC 9068).
 * 1 valid, 0 not, -1 out of memory.
 */
static int verify_pkey(const struct auth_key *k, const char *token, size_t signed_len,
                       const char *sig64, size_t sig64_len)
{
    unsigned char sig[1100], der[256];
    const unsigned char *vsig = sig;
    size_t vlen;
    int ok = 0;
    if (sig64_len > (sizeof(sig) - 3) / 3 * 4)
        return 0;
    long n = b64url_decode(sig64, sig64_len, sig);
    const EVP_MD *md = k->md;
    if (n <= 0)
        return 0;
    vlen = (size_t)n;
    if (k->alg->family == 'E') {
        /* JWS carries R || S (RFC 7518 section 3.4); OpenSSL verifies DER. */
        int half = (EVP_PKEY_get_bits(k->pkey) + 7) / 8;
        if (n != 2 * half)
            return 0;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, half, NULL), *s = BN_bin2bn(sig + half, half, NULL);
        if (!es || !r || !s) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(s);
            return -1;
        }
        ECDSA_SIG_set0(es, r, s);
        unsigned char *p = der;
        int dl = i2d_ECDSA_SIG(es, NULL);
        if (dl > 0 && (size_t)dl <= sizeof(der))
            dl = i2d_ECDSA_SIG(es, &p);
        else
            dl = -1;
        ECDSA_SIG_free(es);
        if (dl <= 0)
            return 0;
        vsig = der;
        vlen = (size_t)dl;
    }
    if (k->alg->family == 'O' && vlen != 64) /* Ed25519: R || S, 64 bytes (RFC 8032) */
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    /* md is NULL for EdDSA: one-shot EVP_DigestVerify, no digest of our own */
    if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
        EVP_DigestVerify(ctx, vsig, vlen, (const unsigned char *)token, signed_len) == 1)
        ok = 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* ---- claims -> grants ------------------------------------------------------------------ */

static int selector_len_ok(const struct sse__auth *a, size_t len)
{
    return len > 0 && len <= a->max_selector_len;
}

/* draft-07: {"mercure": {"publish": [...], "subscribe": [...], "payload": ...}} */
static int grants_07(const struct sse__auth *a, json_t *claims, struct sse__grants *g,
                     const char **why)
{
    json_t *m = json_object_get(claims, "mercure");
    json_t *lists[2] = {NULL, NULL};
    if (!m)
        return 0; /* a valid token with no grants */
    if (!json_is_object(m))
        goto out_malformed;
    lists[0] = json_object_get(m, "publish");
    lists[1] = json_object_get(m, "subscribe");
    for (int r = 0; r < 2; r++) {
        json_t *l = lists[r];
        if (!l || json_is_null(l))
            continue;
        if (!json_is_array(l))
            goto out_malformed;
        size_t n = json_array_size(l);
        if (n > a->max_grants) {
            *why = "too many grants";
            return SSE_EAUTH;
        }
        char ***v = r == 0 ? &g->publish : &g->subscribe;
        int **kinds = r == 0 ? &g->publish_kinds : &g->subscribe_kinds;
        *v = sse__calloc(n + 1, sizeof(char *));
        *kinds = sse__calloc(n + 1, sizeof(int));
        if (r == 1)
            g->subscribe_payloads = sse__calloc(n + 1, sizeof(char *));
        if (!*v || !*kinds || (r == 1 && !g->subscribe_payloads))
            return SSE_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            json_t *s = json_array_get(l, i);
            if (!json_is_string(s))
                goto out_malformed;
            if (!selector_len_ok(a, json_string_length(s))) {
                *why = "bad selector length";
                return SSE_EAUTH;
            }
            int rc = grants_push(*v, *kinds, r == 0 ? &g->n_publish : &g->n_subscribe,
                                 json_string_value(s), json_string_length(s), SSE__SEL_AUTO);
            if (rc)
                return rc;
        }
    }
    json_t *p = json_object_get(m, "payload");
    if (p) {
        char *d = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!d)
            return SSE_ENOMEM;
        g->payload_json = sse__strdup(d);
        free(d);
        if (!g->payload_json)
            return SSE_ENOMEM;
    }
    return 0;
out_malformed:
    *why = "malformed mercure claim";
    return SSE_EAUTH;
}

/* Validate one draft-08 topic matcher object; 0 and its match/kind, or SSE_EAUTH. */
static int matcher_08(const struct sse__auth *a, json_t *t, const char **match, size_t *len,
                      int *kind)
{
    if (!json_is_object(t))
        return SSE_EAUTH;
    json_t *m = json_object_get(t, "match");
    /* "match_type" (draft-08 head: "exact" / "urlpattern", case-sensitive); the older
       "matchType" ("Exact" / "URLPattern") is kept as an alias when "match_type" is absent, so
       a token minted for the earlier snapshot keeps its meaning instead of silently narrowing
       to exact matching. */
    json_t *mt = json_object_get(t, "match_type");
    int legacy = 0;
    if (!mt && (mt = json_object_get(t, "matchType")))
        legacy = 1;
    if (!json_is_string(m) || !selector_len_ok(a, json_string_length(m)))
        return SSE_EAUTH;
    *match = json_string_value(m);
    *len = json_string_length(m);
    /* draft-08 matchers: no C0, DEL, C1 control or Cf format characters, as in topics */
    if (!sse__hub_text_ok(*match, *len))
        return SSE_EAUTH;
    *kind = SSE__SEL_EXACT;
    if (mt) {
        if (!json_is_string(mt))
            return SSE_EAUTH;
        const char *name = json_string_value(mt);
        if (!strcmp(name, legacy ? "URLPattern" : "urlpattern"))
            *kind = SSE__SEL_URLPATTERN;
        else if (strcmp(name, legacy ? "Exact" : "exact") != 0)
            return SSE_EAUTH; /* a matcher type the hub does not know refuses the token */
    }
    if (*kind == SSE__SEL_URLPATTERN) {
        /* A pattern the hub could not compile refuses the whole token (no partial grants). */
        struct sse__selector_limits lim = {a->max_selector_len, 0, 0};
        struct sse__selector *sel;
        int rc = sse__selector_compile(&sel, *match, *len, *kind, &lim);
        if (rc == SSE_ENOMEM)
            return rc;
        if (rc)
            return SSE_EAUTH;
        sse__selector_unref(sel);
    }
    return 0;
}

/* The RFC 9396 type of a Mercure authorization detail (compared byte by byte); "mercure", the
   earlier snapshot's type, is kept as an alias (docs/MERCURE.md). Other types are not ours. */
#define AUTH_DETAIL_TYPE "https://mercure.rocks/authorization-detail"
static int is_mercure_detail(json_t *d)
{
    const char *t = json_string_value(json_object_get(d, "type"));
    return t && (!strcmp(t, AUTH_DETAIL_TYPE) || !strcmp(t, "mercure"));
}

/* draft-08: {"authorization_details": [{"type": AUTH_DETAIL_TYPE, "actions": [...],
   "topics": [...]}]} */
static int grants_08(const struct sse__auth *a, json_t *claims, struct sse__grants *g,
                     const char **why)
{
    json_t *ad = json_object_get(claims, "authorization_details");
    size_t n_pub = 0, n_sub = 0, n_details = 0;
    if (!ad)
        return 0;
    if (!json_is_array(ad))
        goto out_malformed;
    /* Pass 1: validate everything and count, so that nothing is granted from a bad token. */
    for (size_t i = 0; i < json_array_size(ad); i++) {
        json_t *d = json_array_get(ad, i);
        if (!json_is_object(d) || !json_is_string(json_object_get(d, "type")))
            goto out_malformed;
        if (!is_mercure_detail(d))
            continue; /* other RFC 9396 types are not ours */
        if (++n_details > AUTH_MAX_DETAILS) {
            *why = "too many grants";
            return SSE_EAUTH;
        }
        json_t *acts = json_object_get(d, "actions");
        json_t *tops = json_object_get(d, "topics");
        json_t *pl = json_object_get(d, "payload");
        int pub = 0, sub = 0;
        if (!json_is_array(acts) || !json_array_size(acts) || !json_is_array(tops) ||
            !json_array_size(tops) || (pl && !json_is_object(pl)))
            goto out_malformed;
        for (size_t k = 0; k < json_array_size(acts); k++) {
            json_t *x = json_array_get(acts, k);
            if (!json_is_string(x))
                goto out_malformed;
            if (!strcmp(json_string_value(x), "publish"))
                pub = 1;
            else if (!strcmp(json_string_value(x), "subscribe"))
                sub = 1;
            /* any other action grants nothing and does not invalidate the token */
        }
        for (size_t k = 0; k < json_array_size(tops); k++) {
            const char *m;
            size_t len;
            int kind;
            int rc = matcher_08(a, json_array_get(tops, k), &m, &len, &kind);
            if (rc == SSE_ENOMEM)
                return rc;
            if (rc)
                goto out_malformed;
        }
        n_pub += pub ? json_array_size(tops) : 0;
        n_sub += sub ? json_array_size(tops) : 0;
        if (n_pub > a->max_grants || n_sub > a->max_grants) {
            *why = "too many grants";
            return SSE_EAUTH;
        }
    }
    g->publish = sse__calloc(n_pub + 1, sizeof(char *));
    g->publish_kinds = sse__calloc(n_pub + 1, sizeof(int));
    g->subscribe = sse__calloc(n_sub + 1, sizeof(char *));
    g->subscribe_kinds = sse__calloc(n_sub + 1, sizeof(int));
    g->subscribe_payloads = sse__calloc(n_sub + 1, sizeof(char *));
    if (!g->publish || !g->publish_kinds || !g->subscribe || !g->subscribe_kinds ||
        !g->subscribe_payloads)
        return SSE_ENOMEM;
    /* Pass 2: copy (the shape is known to be right). */
    for (size_t i = 0; i < json_array_size(ad); i++) {
        json_t *d = json_array_get(ad, i);
        if (!is_mercure_detail(d))
            continue;
        json_t *acts = json_object_get(d, "actions");
        json_t *tops = json_object_get(d, "topics");
        json_t *pl = json_object_get(d, "payload");
        int pub = 0, sub = 0;
        for (size_t k = 0; k < json_array_size(acts); k++) {
            const char *x = json_string_value(json_array_get(acts, k));
            pub |= !strcmp(x, "publish");
            sub |= !strcmp(x, "subscribe");
        }
        char *pl_text = NULL;
        if (pl && sub) {
            char *dump = json_dumps(pl, JSON_COMPACT);
            if (!dump)
                return SSE_ENOMEM;
            pl_text = sse__strdup(dump);
            free(dump);
            if (!pl_text)
                return SSE_ENOMEM;
        }
        for (size_t k = 0; k < json_array_size(tops); k++) {
            const char *m;
            size_t len;
            int kind, rc;
            rc = matcher_08(a, json_array_get(tops, k), &m, &len, &kind);
            if (!rc && pub)
                rc = grants_push(g->publish, g->publish_kinds, &g->n_publish, m, len, kind);
            if (!rc && sub) {
                if (pl_text) {
                    g->subscribe_payloads[g->n_subscribe] = sse__strdup(pl_text);
                    if (!g->subscribe_payloads[g->n_subscribe])
                        rc = SSE_ENOMEM;
                }
                if (!rc)
                    rc = grants_push(g->subscribe, g->subscribe_kinds, &g->n_subscribe, m, len,
                                     kind);
                if (rc) {
                    sse__free(g->subscribe_payloads[g->n_subscribe]);
                    g->subscribe_payloads[g->n_subscribe] = NULL;
                }
            }
            if (rc) {
                sse__free(pl_text);
                return rc == SSE_ENOMEM ? rc : SSE_EAUTH;
            }
        }
        if (pl_text && !g->payload_json)
            g->payload_json = pl_text;
        else
            sse__free(pl_text);
    }
    return 0;
out_malformed:
    *why = "malformed authorization_details";
    return SSE_EAUTH;
}

static int aud_contains(json_t *aud, const char *resource)
{
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), resource);
    if (json_is_array(aud))
        for (size_t i = 0; i < json_array_size(aud); i++) {
            json_t *x = json_array_get(aud, i);
            if (json_is_string(x) && !strcmp(json_string_value(x), resource))
                return 1;
        }
    return 0;
}

static int typ_is_at_jwt(json_t *header)
{
    json_t *t = json_object_get(header, "typ");
    if (!json_is_string(t))
        return 0;
    const char *s = json_string_value(t);
    /* RFC 9068: "at+jwt", also the full media type; compared case-insensitively (RFC 7515). */
    return !strcasecmp(s, "at+jwt") || !strcasecmp(s, "application/at+jwt");
}

/*
 * The key of a key-set role that the token's header names by "kid" (RFC 7515 4.1.4); a set of
 * one key also serves tokens without a kid. NULL and *why if there is none; an unknown kid tells
 * the caller (on_unknown_kid), who may fetch a fresh set: the key may have just been rotated in.
 */
static const struct auth_key *jwks_pick(struct sse__auth *a, const struct auth_key *role_key,
                                        json_t *header, const char **why)
{
    const struct auth_keyset *ks = role_key->set;
    json_t *kid = json_object_get(header, "kid");
    if (kid && !json_is_string(kid)) {
        *why = "kid not a string";
        return NULL;
    }
    if (!kid) {
        if (ks && ks->jwks->n == 1)
            return &ks->keys[0];
        *why = "kid required (the key set holds several keys)";
        return NULL;
    }
    const struct sse__jwk *j =
        ks ? sse__jwks_find(ks->jwks, json_string_value(kid), json_string_length(kid)) : NULL;
    if (j)
        return &ks->keys[j - ks->jwks->keys];
    if (a->on_unknown_kid)
        a->on_unknown_kid(a->on_unknown_kid_data, role_key->role);
    *why = "unknown kid";
    return NULL;
}

/* Whether the string claim iss (exactly, length included: a NUL inside does not cut it short)
   is one of the accepted issuers. Issuers are public names, not secrets: plain compares. */
static int issuer_accepted(const struct sse__auth *a, const json_t *iss)
{
    const char *v = json_string_value(iss);
    size_t len = json_string_length(iss);
    for (size_t i = 0; i < a->n_issuers; i++)
        if (strlen(a->issuers[i]) == len && memcmp(a->issuers[i], v, len) == 0)
            return 1;
    return 0;
}

/* Full verification (no cache). 0 and *out (one reference), SSE_EAUTH + *why, SSE_ENOMEM. */
static int verify_token(struct sse__auth *a, const struct auth_key *k, const char *token,
                        size_t len, long long now, struct sse__grants **out, const char **why)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    json_t *header = NULL, *claims = NULL;
    struct sse__grants *g = NULL;
    int rc = SSE_EAUTH;

    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        *why = "malformed token (not three parts)";
        return SSE_EAUTH;
    }
    size_t h_len = (size_t)(dot1 - token), p_len = (size_t)(dot2 - dot1 - 1);
    size_t s_len = len - (size_t)(dot2 + 1 - token);
    if (!h_len || !p_len) {
        *why = "malformed token (empty part)";
        return SSE_EAUTH;
    }
    header = b64_json(token, h_len, why, "malformed header base64", "malformed header JSON");
    if (!header)
        return *why ? SSE_EAUTH : SSE_ENOMEM;
    json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg)) {
        *why = "missing alg";
        goto out;
    }
    if (!strcasecmp(json_string_value(alg), "none")) {
        *why = "alg none refused";
        goto out;
    }
    if (k->role && !(k = jwks_pick(a, k, header, why)))
        goto out;
    if (!k->alg) {
        *why = "no key configured for this role";
        goto out;
    }
    if (strcmp(json_string_value(alg), k->alg->name) != 0) {
        *why = "alg not allowed";
        goto out;
    }
    if (json_object_get(header, "crit")) {
        *why = "crit header not supported";
        goto out;
    }
    if (!s_len) {
        *why = "missing signature";
        goto out;
    }
    int draft = typ_is_at_jwt(header) ? SSE__DRAFT_08 : SSE__DRAFT_07;
    if (!(a->drafts & draft)) {
        *why = draft == SSE__DRAFT_08 ? "draft-08 tokens not accepted" : "typ must be at+jwt";
        goto out;
    }
    /* The signature, before the claims are even parsed. */
    int sig_ok = k->alg->family == 'H'
                     ? verify_hmac(k, token, (size_t)(dot2 - token), dot2 + 1, s_len)
                     : verify_pkey(k, token, (size_t)(dot2 - token), dot2 + 1, s_len);
    if (sig_ok < 0) {
        rc = SSE_ENOMEM;
        goto out;
    }
    if (!sig_ok) {
        *why = "bad signature";
        goto out;
    }
    claims = b64_json(dot1 + 1, p_len, why, "malformed claims base64", "malformed claims JSON");
    if (!claims) {
        rc = *why ? SSE_EAUTH : SSE_ENOMEM;
        goto out;
    }
    long long exp = 0, nbf = 0;
    int has_exp = numeric_date(claims, "exp", &exp);
    int has_nbf = numeric_date(claims, "nbf", &nbf);
    if (has_exp < 0 || has_nbf < 0) {
        *why = "exp/nbf not a number";
        goto out;
    }
    if (!has_exp && draft == SSE__DRAFT_08) {
        *why = "exp required";
        goto out;
    }
    /* now +/- leeway, never exp +/- leeway: exp comes from the token and may be LLONG_MAX */
    if (has_exp && now - a->leeway >= exp) {
        *why = "expired";
        goto out;
    }
    if (has_nbf && now + a->leeway < nbf) {
        *why = "not yet valid";
        goto out;
    }
    /* draft-08 requires "iss" on every token (RFC 9068); it must then be the configured
       issuer when one is (draft-07 checks it only when configured). */
    json_t *iss = json_object_get(claims, "iss");
    if (draft == SSE__DRAFT_08 && !json_is_string(iss)) {
        *why = "iss required";
        goto out;
    }
    if (a->n_issuers && (!json_is_string(iss) || !issuer_accepted(a, iss))) {
        *why = "wrong issuer";
        goto out;
    }
    if (draft == SSE__DRAFT_08 && a->resource &&
        !aud_contains(json_object_get(claims, "aud"), a->resource)) {
        *why = "wrong audience";
        goto out;
    }
    g = sse__calloc(1, sizeof(*g));
    if (!g) {
        rc = SSE_ENOMEM;
        goto out;
    }
    g->refs_ = 1;
    g->draft = draft;
    g->kind = draft == SSE__DRAFT_08 ? SSE__SEL_URLPATTERN : SSE__SEL_AUTO;
    g->exp = has_exp ? exp : 0;
    json_t *subj = json_object_get(claims, "sub");
    if (json_is_string(subj)) {
        g->sub = sse__strndup(json_string_value(subj), json_string_length(subj));
        if (!g->sub) {
            rc = SSE_ENOMEM;
            goto out;
        }
    }
    rc = draft == SSE__DRAFT_08 ? grants_08(a, claims, g, why) : grants_07(a, claims, g, why);
    if (rc)
        goto out;
    *out = g;
    g = NULL;
out:
    if (g)
        grants_free(g);
    json_decref(claims);
    json_decref(header);
    return rc;
}

/* ---- cache ---------------------------------------------------------------------------- */

static int token_digest(struct sse__auth *a, int role, const char *token, size_t len,
                        unsigned char d[32])
{
    unsigned char r = (unsigned char)role;
    unsigned int dl = 0;
    int ok = EVP_DigestInit_ex(a->dctx, a->sha256, NULL) && EVP_DigestUpdate(a->dctx, &r, 1) &&
             EVP_DigestUpdate(a->dctx, token, len) && EVP_DigestFinal_ex(a->dctx, d, &dl) &&
             dl == 32;
    return ok ? 0 : SSE_ENOMEM;
}

static size_t bucket_of(const struct sse__auth *a, const unsigned char d[32])
{
    size_t h;
    memcpy(&h, d, sizeof(h));
    return h & (a->n_buckets - 1);
}

static void cache_unlink(struct sse__auth *a, struct cache_entry *e)
{
    struct cache_entry **pp = &a->buckets[bucket_of(a, e->digest)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        a->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        a->tail = e->prev;
    a->n--;
}

static void cache_drop(struct sse__auth *a, struct cache_entry *e)
{
    cache_unlink(a, e);
    sse__grants_release(e->grants);
    sse__free(e);
}

static void cache_front(struct sse__auth *a, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = a->head;
    if (a->head)
        a->head->prev = e;
    a->head = e;
    if (!a->tail)
        a->tail = e;
}

/* ---- public ---------------------------------------------------------------------------- */

static const struct auth_alg *alg_by_name(const char *name)
{
    if (!name)
        name = "HS256";
    for (size_t i = 0; i < sizeof(auth_algs) / sizeof(auth_algs[0]); i++)
        if (!strcmp(auth_algs[i].name, name))
            return &auth_algs[i];
    return NULL;
}

static int key_init(struct auth_key *k, const char *key, const char *alg)
{
    k->alg = alg_by_name(alg);
    if (!k->alg || !key || !*key)
        return SSE_EINVAL;
    int is_pem = strstr(key, "-----BEGIN") != NULL;
    if (k->alg->family == 'H' && is_pem)
        return SSE_EINVAL; /* a PEM text as an HMAC secret: the algorithm-confusion setup */
    k->md = k->alg->md ? EVP_MD_fetch(NULL, k->alg->md, NULL) : NULL;
    if (!k->md && k->alg->md)
        return SSE_ENOMEM;
    if (k->alg->family == 'H') {
        k->key_len = strlen(key);
        EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
        k->mac = m ? EVP_MAC_CTX_new(m) : NULL;
        EVP_MAC_free(m);
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)k->alg->md, 0),
                               OSSL_PARAM_construct_end()};
        if (!k->mac || EVP_MAC_init(k->mac, (const unsigned char *)key, k->key_len, params) != 1)
            return SSE_ENOMEM;
        return 0;
    }
    /* A public key of the algorithm's family and size, refused now rather than at first use. */
    BIO *bio = BIO_new_mem_buf(key, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    int id = pk ? EVP_PKEY_base_id(pk) : 0, bits = pk ? EVP_PKEY_get_bits(pk) : 0;
    int ok = k->alg->family == 'O'   ? id == EVP_PKEY_ED25519
             : k->alg->family == 'R' ? id == EVP_PKEY_RSA && bits >= 2048
                                     : id == EVP_PKEY_EC && bits == (k->alg->md[3] == '2'   ? 256
                                                                     : k->alg->md[3] == '3' ? 384
                                                                                            : 521);
    if (ok && k->alg->family == 'E') {
        /* The named curve, not just its size: ES256 is P-256 (RFC 7518 3.4), so secp256k1 and
           brainpoolP256r1 are refused, and so are keys with explicit curve parameters. */
        int want = k->alg->md[3] == '2'   ? NID_X9_62_prime256v1
                   : k->alg->md[3] == '3' ? NID_secp384r1
                                          : NID_secp521r1;
        char group[80];
        ok = EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) == 1 &&
             OBJ_sn2nid(group) == want;
    }
    if (!ok) {
        EVP_PKEY_free(pk);
        return SSE_EINVAL;
    }
    k->pkey = pk;
    return 0;
}

static void key_clear(struct auth_key *k)
{
    EVP_MAC_CTX_free(k->mac);
    EVP_MD_free(k->md);
    EVP_PKEY_free(k->pkey);
}

static void keyset_free(struct auth_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; ks->keys && i < ks->jwks->n; i++)
        key_clear(&ks->keys[i]);
    sse__free(ks->keys);
    sse__jwks_free(ks->jwks);
    sse__free(ks);
}

/* The key of one role: a key-set role (no key until sse__auth_set_jwks), no key at all (every
   token refused: alg stays NULL), or the configured key and algorithm. */
static int role_key_init(struct auth_key *k, int role, const struct sse__auth_config *cfg,
                         const char *key, const char *alg)
{
    if (cfg->jwks_roles & role) {
        k->role = role;
        return 0;
    }
    if (!key && cfg->jwks_roles)
        return 0;
    return key_init(k, key, alg);
}

int sse__auth_set_jwks(struct sse__auth *a, int role, struct sse__jwks *set)
{
    struct auth_key *rk = role == SSE__AUTH_PUBLISH ? &a->pub : &a->sub;
    struct auth_keyset *ks = NULL;
    if (!set || (role != SSE__AUTH_PUBLISH && role != SSE__AUTH_SUBSCRIBE) || rk->role != role) {
        sse__jwks_free(set);
        return SSE_EINVAL;
    }
    if (!(ks = sse__calloc(1, sizeof(*ks))) || !(ks->keys = sse__calloc(set->n, sizeof(*ks->keys))))
        goto out_nomem;
    ks->jwks = set;
    for (size_t i = 0; i < set->n; i++) {
        struct auth_key *k = &ks->keys[i];
        k->alg = alg_by_name(set->keys[i].alg);
        if (k->alg->md && !(k->md = EVP_MD_fetch(NULL, k->alg->md, NULL)))
            goto out_nomem;
        if (EVP_PKEY_up_ref(set->keys[i].pkey) != 1)
            goto out_nomem;
        k->pkey = set->keys[i].pkey;
    }
    keyset_free(rk->set);
    rk->set = ks;
    while (a->head) /* grants verified with a key that may be gone */
        cache_drop(a, a->head);
    return 0;
out_nomem:
    if (ks && !ks->jwks)
        sse__jwks_free(set);
    keyset_free(ks);
    return SSE_ENOMEM;
}

/* Copy the accepted issuers (cfg->issuer, then cfg->issuers) into a. 0, or -1 out of memory
   (what was copied is freed with a). */
static int issuers_copy(struct sse__auth *a, const struct sse__auth_config *cfg)
{
    size_t n = (cfg->issuer ? 1 : 0) + (cfg->issuers ? cfg->n_issuers : 0);
    if (!n)
        return 0;
    a->issuers = sse__calloc(n, sizeof(*a->issuers));
    if (!a->issuers)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *v = cfg->issuer ? (i ? cfg->issuers[i - 1] : cfg->issuer) : cfg->issuers[i];
        if (!(a->issuers[i] = sse__strdup(v)))
            return -1;
        a->n_issuers++;
    }
    return 0;
}

void sse__auth_move_jwks(struct sse__auth *dst, struct sse__auth *src)
{
    struct auth_key *d[2] = {&dst->pub, &dst->sub}, *s[2] = {&src->pub, &src->sub};
    for (int i = 0; i < 2; i++)
        if (d[i]->role && d[i]->role == s[i]->role && !d[i]->set) {
            d[i]->set = s[i]->set;
            s[i]->set = NULL;
        }
}

int sse__auth_new(struct sse__auth **out, const struct sse__auth_config *cfg)
{
    int rc;
    if (!out || !cfg)
        return SSE_EINVAL;
    struct sse__auth *a = sse__calloc(1, sizeof(*a));
    if (!a)
        return SSE_ENOMEM;
    a->on_unknown_kid = cfg->on_unknown_kid;
    a->on_unknown_kid_data = cfg->on_unknown_kid_data;
    rc = role_key_init(&a->pub, SSE__AUTH_PUBLISH, cfg, cfg->publisher_key, cfg->publisher_alg);
    if (rc)
        goto out_free;
    if (cfg->subscriber_key)
        rc = role_key_init(&a->sub, SSE__AUTH_SUBSCRIBE, cfg, cfg->subscriber_key,
                           cfg->subscriber_alg ? cfg->subscriber_alg : cfg->publisher_alg);
    else
        rc = role_key_init(&a->sub, SSE__AUTH_SUBSCRIBE, cfg, cfg->publisher_key,
                           cfg->publisher_alg);
    if (rc)
        goto out_free;
    a->drafts =
        cfg->drafts ? cfg->drafts & (SSE__DRAFT_07 | SSE__DRAFT_08) : SSE__DRAFT_07 | SSE__DRAFT_08;
    if (!a->drafts) {
        rc = SSE_EINVAL;
        goto out_free;
    }
    a->max_token_len = cfg->max_token_len ? cfg->max_token_len : AUTH_DEFAULT_MAX_TOKEN;
    a->max_grants = cfg->max_grants ? cfg->max_grants : AUTH_DEFAULT_MAX_GRANTS;
    a->max_selector_len = cfg->max_selector_len ? cfg->max_selector_len : AUTH_DEFAULT_MAX_SELECTOR;
    a->leeway = cfg->leeway > 0 ? cfg->leeway : 0;
    a->capacity = cfg->cache_entries ? cfg->cache_entries : AUTH_DEFAULT_CACHE;
    rc = SSE_ENOMEM;
    if (cfg->resource && !(a->resource = sse__strdup(cfg->resource)))
        goto out_free;
    if (issuers_copy(a, cfg))
        goto out_free;
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    a->dctx = EVP_MD_CTX_new();
    if (!a->sha256 || !a->dctx)
        goto out_free;
    a->n_buckets = 16;
    while (a->n_buckets < a->capacity && a->n_buckets < ((size_t)1 << 20))
        a->n_buckets <<= 1;
    a->buckets = sse__calloc(a->n_buckets, sizeof(*a->buckets));
    if (!a->buckets)
        goto out_free;
    *out = a;
    return 0;
out_free:
    sse__auth_free(a);
    return rc;
}

int sse__auth_verify(struct sse__auth *a, int role, const char *token, size_t len, long long now,
                     const struct sse__grants **out, const char **why)
{
    const char *dummy;
    unsigned char d[32];
    struct sse__grants *g = NULL;
    if (!why)
        why = &dummy;
    if (!a || !out || (role != SSE__AUTH_PUBLISH && role != SSE__AUTH_SUBSCRIBE)) {
        *why = "bad arguments";
        return SSE_EINVAL;
    }
    if (!token || !len) {
        *why = "empty token";
        return SSE_EAUTH;
    }
    if (len > a->max_token_len) {
        *why = "token too long";
        return SSE_EAUTH;
    }
    if (token_digest(a, role, token, len, d))
        return SSE_ENOMEM;
    struct cache_entry *e = a->buckets[bucket_of(a, d)];
    while (e && CRYPTO_memcmp(e->digest, d, 32) != 0)
        e = e->hnext;
    if (e) {
        if (e->grants->exp && now - a->leeway >= e->grants->exp) {
            cache_drop(a, e);
            *why = "expired";
            return SSE_EAUTH;
        }
        a->hits++;
        cache_unlink(a, e);
        e->hnext = a->buckets[bucket_of(a, d)];
        a->buckets[bucket_of(a, d)] = e;
        a->n++;
        cache_front(a, e);
        *out = sse__grants_ref(e->grants);
        return 0;
    }
    a->misses++;
    int rc =
        verify_token(a, role == SSE__AUTH_PUBLISH ? &a->pub : &a->sub, token, len, now, &g, why);
    if (rc)
        return rc;
    /* Cache it; if that fails for memory, the verification still stands. */
    e = sse__calloc(1, sizeof(*e));
    if (e) {
        if (a->n == a->capacity)
            cache_drop(a, a->tail);
        memcpy(e->digest, d, 32);
        e->grants = sse__grants_ref(g);
        size_t b = bucket_of(a, d);
        e->hnext = a->buckets[b];
        a->buckets[b] = e;
        a->n++;
        cache_front(a, e);
    }
    *out = g;
    return 0;
}

void sse__auth_cache_stats(const struct sse__auth *a, size_t *entries, size_t *hits, size_t *misses)
{
    if (entries)
        *entries = a ? a->n : 0;
    if (hits)
        *hits = a ? a->hits : 0;
    if (misses)
        *misses = a ? a->misses : 0;
}

void sse__auth_free(struct sse__auth *a)
{
    if (!a)
        return;
    while (a->head)
        cache_drop(a, a->head);
    sse__free(a->buckets);
    key_clear(&a->pub);
    key_clear(&a->sub);
    keyset_free(a->pub.set);
    keyset_free(a->sub.set);
    sse__free(a->resource);
    for (size_t i = 0; i < a->n_issuers; i++)
        sse__free(a->issuers[i]);
    sse__free(a->issuers);
    EVP_MD_CTX_free(a->dctx);
    EVP_MD_free(a->sha256);
    sse__free(a);
}
