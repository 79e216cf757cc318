/*
 * test_jwks.c: EdDSA (Ed25519) tokens and JSON Web Key Sets in the verifier: the key set
 * decoder (src/hub/jwks.c: RSA, EC, Ed25519 keys, what is skipped, what refuses the set) and
 * key selection by kid in src/hub/auth.c (a set of one key without kid, an unknown kid told to
 * the caller, a token whose alg is not its key's, a replaced set emptying the token cache).
 * Keys are generated at test time with OpenSSL; tokens are signed by src/hub/jws.c.
 */
#include "harness/check.h"
#include "hub/auth.h"
#include "hub/jwks.h"
#include "hub/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sse/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL
#define CLAIMS "{\"mercure\":{\"publish\":[\"*\"]}}"

/* A token of header {"alg":alg[,"kid":kid]} signed with priv (PEM) as alg. Static buffer. */
static const char *sign(const char *alg, const char *kid, const char *priv)
{
    static char buf[4][8192];
    static int next;
    char *out = buf[next++ % 4];
    char header[256];
    if (kid)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\"}", alg);
    const char *why = NULL;
    if (sse__jws_encode(out, sizeof(buf[0]), NULL, alg, priv, header, strlen(header), CLAIMS,
                        strlen(CLAIMS), &why)) {
        fprintf(stderr, "cannot sign %s: %s\n", alg, why);
        abort();
    }
    return out;
}

/* The JWK (public part) of an Ed25519 or P-256 key, into out. */
static void jwk_of(EVP_PKEY *k, const char *kid, char *out, size_t cap)
{
    unsigned char raw[65];
    size_t len = sizeof(raw);
    char x[64], y[64];
    if (EVP_PKEY_base_id(k) == EVP_PKEY_ED25519) {
        EVP_PKEY_get_raw_public_key(k, raw, &len);
        sse__b64url_encode(raw, len, x);
        snprintf(out, cap, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\"}", x,
                 kid);
        return;
    }
    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, raw, sizeof(raw), &len);
    sse__b64url_encode(raw + 1, 32, x);
    sse__b64url_encode(raw + 33, 32, y);
    snprintf(out, cap,
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\"}", x, y,
             kid);
}

static int verify(struct sse__auth *a, const char *tok, const char **why)
{
    const struct sse__grants *g = NULL;
    int rc = sse__auth_verify(a, SSE__AUTH_PUBLISH, tok, strlen(tok), NOW, &g, why);
    sse__grants_release(g);
    return rc;
}

static int test_eddsa_pem(void)
{
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *ec = EVP_EC_gen("P-256");
    char *pub = sse__jws_pem(ed, 0), *priv = sse__jws_pem(ed, 1), *ec_pub = sse__jws_pem(ec, 0);
    struct sse__auth_config cfg = {0};
    struct sse__auth *a = NULL;
    const char *why = NULL;
    cfg.publisher_key = pub;
    cfg.publisher_alg = "EdDSA";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    const char *tok = sign("EdDSA", NULL, priv);
    CHECK_EQ_INT(verify(a, tok, &why), 0);
    char bad[8192];
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(verify(a, bad, &why), SSE_EAUTH);
    CHECK_EQ_STR(why, "bad signature");
    sse__auth_free(a);
    /* an EC key is not an EdDSA key, and an HS256 token never reaches an EdDSA verifier */
    cfg.publisher_key = ec_pub;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_key = pub;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    char hs[8192];
    CHECK_EQ_INT(sse__jws_encode(hs, sizeof(hs), NULL, "HS256", "secret-not-pem",
                                 "{\"alg\":\"HS256\"}", 15, CLAIMS, strlen(CLAIMS), &why),
                 0);
    CHECK_EQ_INT(verify(a, hs, &why), SSE_EAUTH);
    CHECK_EQ_STR(why, "alg not allowed");
    sse__auth_free(a);
    free(pub);
    free(priv);
    free(ec_pub);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
    return 0;
}

static int unknown_kid_calls, unknown_kid_role;
static void on_unknown(void *data, int role)
{
    (void)data;
    unknown_kid_calls++;
    unknown_kid_role = role;
}

static int test_key_set_by_kid(void)
{
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *ec = EVP_EC_gen("P-256");
    char *ed_priv = sse__jws_pem(ed, 1), *ec_priv = sse__jws_pem(ec, 1);
    char jed[512], jec[512], doc[2048];
    jwk_of(ed, "k-ed", jed, sizeof(jed));
    jwk_of(ec, "k-ec", jec, sizeof(jec));
    struct sse__auth_config cfg = {0};
    struct sse__auth *a = NULL;
    struct sse__jwks *set = NULL;
    const char *why = NULL;
    cfg.jwks_roles = SSE__AUTH_PUBLISH;
    cfg.subscriber_key = "a-subscriber-secret";
    cfg.on_unknown_kid = on_unknown;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    /* copies: sign() reuses its buffers */
    char *t_ed = strdup(sign("EdDSA", "k-ed", ed_priv)),
         *t_ec = strdup(sign("ES256", "k-ec", ec_priv));

    /* no set yet: refused, and the caller is told (it may be fetching the first one) */
    CHECK_EQ_INT(verify(a, t_ed, &why), SSE_EAUTH);
    CHECK_EQ_STR(why, "unknown kid");
    CHECK_EQ_INT(unknown_kid_calls, 1);
    CHECK_EQ_INT(unknown_kid_role, SSE__AUTH_PUBLISH);

    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", jed, jec);
    CHECK_EQ_INT(sse__jwks_parse(doc, strlen(doc), &set, &why), 0);
    CHECK_EQ_INT((int)set->n, 2);
    CHECK_EQ_INT(sse__auth_set_jwks(a, SSE__AUTH_PUBLISH, set), 0);
    CHECK_EQ_INT(verify(a, t_ed, &why), 0);
    CHECK_EQ_INT(verify(a, t_ec, &why), 0);
    /* a kid pointing at a key of another algorithm, a missing kid with several keys */
    CHECK_EQ_INT(verify(a, sign("EdDSA", "k-ec", ed_priv), &why), SSE_EAUTH);
    CHECK_EQ_STR(why, "alg not allowed");
    CHECK_EQ_INT(verify(a, sign("EdDSA", NULL, ed_priv), &why), SSE_EAUTH);
    CHECK_EQ_STR(why, "kid required (the key set holds several keys)");
    unknown_kid_calls = 0;
    CHECK_EQ_INT(verify(a, sign("EdDSA", "k-new", ed_priv), &why), SSE_EAUTH);
    CHECK_EQ_STR(why, "unknown kid");
    CHECK_EQ_INT(unknown_kid_calls, 1);
    /* the subscriber role has its own key and is not a key-set role */
    set = NULL;
    CHECK_EQ_INT(sse__jwks_parse(doc, strlen(doc), &set, &why), 0);
    CHECK_EQ_INT(sse__auth_set_jwks(a, SSE__AUTH_SUBSCRIBE, set), SSE_EINVAL);

    /* rotation: k-ed goes; its token was verified (and cached) before, and is refused now */
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jec);
    set = NULL;
    CHECK_EQ_INT(sse__jwks_parse(doc, strlen(doc), &set, &why), 0);
    CHECK_EQ_INT(sse__auth_set_jwks(a, SSE__AUTH_PUBLISH, set), 0);
    CHECK_EQ_INT(verify(a, t_ed, &why), SSE_EAUTH);
    CHECK_EQ_INT(verify(a, t_ec, &why), 0);
    /* a set of one key serves a token without kid */
    CHECK_EQ_INT(verify(a, sign("ES256", NULL, ec_priv), &why), 0);
    sse__auth_free(a);
    free(t_ed);
    free(t_ec);
    free(ed_priv);
    free(ec_priv);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
    return 0;
}

static int refused(const char *doc, const char *want)
{
    struct sse__jwks *set = NULL;
    const char *why = NULL;
    int rc = sse__jwks_parse(doc, strlen(doc), &set, &why);
    if (rc != SSE_EINVAL || !why || !strstr(why, want)) {
        fprintf(stderr, "  %s -> %d %s (want %s)\n", doc, rc, why ? why : "-", want);
        sse__jwks_free(set);
        return 1;
    }
    return 0;
}

static int test_bad_sets(void)
{
    EVP_PKEY *ec = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(1024);
    char jec[512], doc[4096];
    jwk_of(ec, "e", jec, sizeof(jec));
    CHECK(!refused("", "not JSON"));
    CHECK(!refused("{\"keys\":3}", "no \"keys\" array"));
    CHECK(!refused("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "no usable"));
    CHECK(!refused("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                   "size"));
    CHECK(!refused("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"A+A\"}]}", "32"));
    CHECK(!refused("{\"keys\":[{\"kid\":7,\"kty\":\"OKP\"}]}", "kid"));
    /* an EC key whose alg is not its curve's */
    snprintf(doc, sizeof(doc), "{\"keys\":[%.*s,\"alg\":\"ES384\"}]}", (int)strlen(jec) - 1, jec);
    CHECK(!refused(doc, "alg"));
    /* y of another point: off the curve */
    char *y = strstr(jec, "\"y\":\"") + 5, y0 = y[0];
    y[0] = y0 == 'A' ? 'B' : 'A';
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jec);
    CHECK(!refused(doc, "curve"));
    /* RSA under 2048 bits */
    BIGNUM *n = NULL;
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n);
    unsigned char nb[256];
    int nl = BN_bn2bin(n, nb);
    char n64[400];
    sse__b64url_encode(nb, (size_t)nl, n64);
    snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n64);
    CHECK(!refused(doc, "2048"));
    /* 65 keys; a document over 1 MiB */
    size_t o = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, "%s{}", i ? "," : "");
    snprintf(doc + o, sizeof(doc) - o, "]}");
    CHECK(!refused(doc, "too many"));
    char *big = malloc(SSE__JWKS_MAX_BYTES + 2);
    memset(big, ' ', SSE__JWKS_MAX_BYTES + 1);
    big[SSE__JWKS_MAX_BYTES + 1] = '\0';
    CHECK(!refused(big, "too long"));
    free(big);
    /* skipped, not refused: another use, an algorithm we do not verify, beside a good key */
    y[0] = y0; /* the point back on the curve */
    snprintf(doc, sizeof(doc),
             "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"x\",\"e\":\"x\"},"
             "{\"kty\":\"RSA\",\"alg\":\"PS256\",\"n\":\"x\",\"e\":\"x\"},"
             "{\"kty\":\"EC\",\"crv\":\"secp256k1\"},%s]}",
             jec);
    struct sse__jwks *set = NULL;
    const char *why = NULL;
    CHECK_EQ_INT(sse__jwks_parse(doc, strlen(doc), &set, &why), 0);
    CHECK_EQ_INT((int)set->n, 1);
    CHECK_EQ_STR(set->keys[0].alg, "ES256");
    CHECK(sse__jwks_find(set, "e", 1) == &set->keys[0]);
    CHECK(sse__jwks_find(set, "f", 1) == NULL);
    sse__jwks_free(set);
    BN_free(n);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_eddsa_pem), CHECK_TEST(test_key_set_by_kid), CHECK_TEST(test_bad_sets))
