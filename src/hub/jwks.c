/*
 * jwks.c: decode a JSON Web Key Set into OpenSSL public keys (see jwks.h).
 *
 * jansson reads the JSON (it refuses duplicate object keys and bounds nothing else, so the
 * document's length and the number of keys are bounded here first); each key's members are
 * base64url-decoded into fixed buffers and turned into an EVP_PKEY with OpenSSL's fromdata API,
 * which checks an EC point lies on its curve. A key is "usable" if we could verify a JWS with
 * it; the others are skipped, a malformed usable key refuses the whole set (a half-loaded set
 * would fail later, on some tokens only, which is harder to diagnose than a refusal now).
 *
 * This file does not own: where the document comes from, key selection by "kid" (auth.c).
 */
#include "hub/jwks.h"

#include "common/alloc.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sse/error.h>
#include <string.h>

#define JWK_MAX_MEMBER 1100 /* decoded bytes of one member: an RSA modulus of 8192 bits */

/* Strict base64url (no padding, no whitespace) of a JSON string into out[0..cap). Returns the
   decoded length, or -1 (not a string, bad character, impossible length, too long). */
static long b64url_member(json_t *v, unsigned char *out, size_t cap)
{
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
        return -1;
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int d = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (d < 0)
            return -1;
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

/* An EVP_PKEY of type name from params (public part only); NULL if OpenSSL refused it. */
static EVP_PKEY *pkey_fromdata(const char *name, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, name, NULL) : NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pk) { /* an EC point off its curve, an RSA exponent of 1: refused now */
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        int ok = c && EVP_PKEY_public_check(c) == 1;
        EVP_PKEY_CTX_free(c);
        if (!ok) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
    }
    return pk;
}

static EVP_PKEY *rsa_key(json_t *k, const char **why)
{
    unsigned char n[JWK_MAX_MEMBER], e[16];
    long nl = b64url_member(json_object_get(k, "n"), n, sizeof(n));
    long el = b64url_member(json_object_get(k, "e"), e, sizeof(e));
    if (nl <= 0 || el <= 0) {
        *why = "RSA key: bad n or e";
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1)
        pk = pkey_fromdata("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    if (pk && EVP_PKEY_get_bits(pk) < 2048) {
        EVP_PKEY_free(pk);
        pk = NULL;
        *why = "RSA key under 2048 bits";
    } else if (!pk) {
        *why = "RSA key refused by OpenSSL";
    }
    return pk;
}

static EVP_PKEY *ec_key(json_t *k, size_t size, const char *group, const char **why)
{
    unsigned char pt[1 + 2 * 66];
    pt[0] = 0x04; /* uncompressed point: 04 || x || y, each of the curve's size */
    long xl = b64url_member(json_object_get(k, "x"), pt + 1, size);
    long yl = b64url_member(json_object_get(k, "y"), pt + 1 + size, size);
    if (xl != (long)size || yl != (long)size) {
        *why = "EC key: x or y not of the curve's size";
        return NULL;
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * size) == 1)
        pk = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pk)
        *why = "EC key: not a point on its curve";
    return pk;
}

/* Does the key's optional "alg" agree with want? */
static int alg_ok(json_t *k, const char *want)
{
    json_t *a = json_object_get(k, "alg");
    return !a || (json_is_string(a) && !strcmp(json_string_value(a), want));
}

/*
 * One JWK. 1 and *pk / *alg for a usable key; 0 for a key skipped (another use, type or
 * algorithm); -1 and *why for a malformed usable key.
 */
static int one_key(json_t *k, EVP_PKEY **pk, const char **alg, const char **why)
{
    static const char *const rs[] = {"RS256", "RS384", "RS512"};
    json_t *kty = json_object_get(k, "kty"), *use = json_object_get(k, "use");
    json_t *a = json_object_get(k, "alg"), *crv = json_object_get(k, "crv");
    if (!json_is_object(k) || !json_is_string(kty)) {
        *why = "a key without kty";
        return -1;
    }
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig")))
        return 0;
    if (a && !json_is_string(a)) {
        *why = "alg not a string";
        return -1;
    }
    const char *t = json_string_value(kty), *c = json_is_string(crv) ? json_string_value(crv) : "";
    if (!strcmp(t, "RSA")) {
        *alg = "RS256"; /* RFC 7518 names no default: RS256 is what every issuer means */
        if (a) {
            *alg = NULL;
            for (size_t i = 0; i < 3; i++)
                if (!strcmp(json_string_value(a), rs[i]))
                    *alg = rs[i];
            if (!*alg)
                return 0; /* PS256, RSA-OAEP...: not verified here */
        }
        return (*pk = rsa_key(k, why)) ? 1 : -1;
    }
    if (!strcmp(t, "EC")) {
        size_t size = !strcmp(c, "P-256")   ? 32
                      : !strcmp(c, "P-384") ? 48
                      : !strcmp(c, "P-521") ? 66
                                            : 0;
        if (!size)
            return 0; /* secp256k1 and others */
        *alg = size == 32 ? "ES256" : size == 48 ? "ES384" : "ES512";
        if (!alg_ok(k, *alg)) {
            *why = "EC key: alg does not match its curve";
            return -1;
        }
        const char *group = size == 32 ? "prime256v1" : size == 48 ? "secp384r1" : "secp521r1";
        return (*pk = ec_key(k, size, group, why)) ? 1 : -1;
    }
    if (!strcmp(t, "OKP")) {
        if (strcmp(c, "Ed25519"))
            return 0; /* Ed448, X25519 */
        *alg = "EdDSA";
        if (!alg_ok(k, "EdDSA") && !alg_ok(k, "Ed25519")) {
            *why = "OKP key: alg is not EdDSA";
            return -1;
        }
        unsigned char x[32];
        if (b64url_member(json_object_get(k, "x"), x, sizeof(x)) != 32) {
            *why = "Ed25519 key: x is not 32 bytes";
            return -1;
        }
        *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, sizeof(x));
        if (!*pk)
            *why = "Ed25519 key refused by OpenSSL";
        return *pk ? 1 : -1;
    }
    return 0; /* "oct" (no shared secrets from a key set) and unknown types */
}

int sse__jwks_parse(const char *json, size_t len, struct sse__jwks **out, const char **why)
{
    const char *dummy;
    json_error_t jerr;
    int rc = SSE_EINVAL;
    struct sse__jwks *set = NULL;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!json || len > SSE__JWKS_MAX_BYTES) {
        *why = "key set document too long";
        return SSE_EINVAL;
    }
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *keys = json_object_get(doc, "keys");
    if (!doc) {
        *why = "key set is not JSON";
        goto out;
    }
    if (!json_is_array(keys)) {
        *why = "key set has no \"keys\" array";
        goto out;
    }
    if (json_array_size(keys) > SSE__JWKS_MAX_KEYS) {
        *why = "key set has too many keys";
        goto out;
    }
    rc = SSE_ENOMEM;
    set = sse__calloc(1, sizeof(*set));
    if (!set || !(set->keys = sse__calloc(json_array_size(keys) + 1, sizeof(*set->keys))))
        goto out;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i), *kid = json_object_get(k, "kid");
        EVP_PKEY *pk = NULL;
        const char *alg = NULL;
        if (kid && (!json_is_string(kid) || json_string_length(kid) > SSE__JWKS_MAX_KID ||
                    memchr(json_string_value(kid), 0, json_string_length(kid)))) {
            *why = "kid not a string of at most 256 bytes";
            rc = SSE_EINVAL;
            goto out;
        }
        int r = one_key(k, &pk, &alg, why);
        if (r < 0) {
            rc = SSE_EINVAL;
            goto out;
        }
        if (!r)
            continue;
        struct sse__jwk *j = &set->keys[set->n++];
        j->pkey = pk;
        j->alg = alg;
        if (kid && !(j->kid = sse__strndup(json_string_value(kid), json_string_length(kid))))
            goto out;
    }
    if (!set->n) {
        *why = "key set has no usable signing key (RSA, EC P-256/384/521, Ed25519)";
        rc = SSE_EINVAL;
        goto out;
    }
    *out = set;
    set = NULL;
    rc = 0;
out:
    sse__jwks_free(set);
    json_decref(doc);
    return rc;
}

const struct sse__jwk *sse__jwks_find(const struct sse__jwks *set, const char *kid, size_t kid_len)
{
    for (size_t i = 0; set && i < set->n; i++) {
        const char *k = set->keys[i].kid;
        if (k && strlen(k) == kid_len && !memcmp(k, kid, kid_len))
            return &set->keys[i];
    }
    return NULL;
}

void sse__jwks_free(struct sse__jwks *set)
{
    if (!set)
        return;
    for (size_t i = 0; set->keys && i < set->n; i++) {
        EVP_PKEY_free(set->keys[i].pkey);
        sse__free(set->keys[i].kid);
    }
    sse__free(set->keys);
    sse__free(set);
}
