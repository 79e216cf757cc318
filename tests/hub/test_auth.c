/*
 * test_auth.c: JWT verification: every algorithm (RSA and EC keys generated at test time with
 * OpenSSL), forged and wrong-key signatures, exp / nbf / leeway, alg none, algorithm confusion,
 * oversized and malformed tokens, draft-07 vs draft-08 claim shapes, iss / aud, the cache.
 * Tokens meant to be well signed come from src/hub/jws.c (the signer `ssehub token` uses).
 * Forged and confused ones (wrong secret, another HMAC algorithm, a PEM public key as HMAC
 * secret, a header that lies about the algorithm, alg none) are built here with OpenSSL's own
 * base64 and HMAC, independently of the code under test.
 */
#include "common/alloc.h"
#include "harness/check.h"
#include "harness/failalloc.h"
#include "hub/auth.h"
#include "hub/jws.h"
#include "hub/selector.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <sse/error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL
#define SECRET "!ChangeThisMercureHubJWTSecretKey!"

static char *rsa_pub, *rsa_priv, *ec_pub, *ec_priv, *rsa2_pub;

/* ---- helpers: keys, signing, forging ------------------------------------------------- */

static void make_keys(void)
{
    if (rsa_pub)
        return;
    EVP_PKEY *r = EVP_RSA_gen(2048), *r2 = EVP_RSA_gen(2048), *e = EVP_EC_gen("P-256");
    rsa_pub = sse__jws_pem(r, 0);
    rsa_priv = sse__jws_pem(r, 1);
    rsa2_pub = sse__jws_pem(r2, 0);
    ec_pub = sse__jws_pem(e, 0);
    ec_priv = sse__jws_pem(e, 1);
    EVP_PKEY_free(r);
    EVP_PKEY_free(r2);
    EVP_PKEY_free(e);
}

/* Sign header.payload with alg and key (secret or private PEM); returns a malloc'd token. */
static char *sign(const char *alg, const char *key, const char *header, const char *payload)
{
    static char buf[65536];
    const char *why = NULL;
    if (sse__jws_encode(buf, sizeof(buf), NULL, alg, key, header, strlen(header), payload,
                        strlen(payload), &why)) {
        fprintf(stderr, "test_auth: cannot sign a %s token: %s\n", alg, why);
        abort(); /* every test below relies on its tokens */
    }
    return strdup(buf);
}

/* Base64url without padding by way of OpenSSL's base64 (not jws.c's encoder); NUL-terminated. */
static size_t b64url_ossl(const char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[len] = '\0';
    return (size_t)len;
}

/*
 * A forged or confused token, built without jws.c: header.payload with an HMAC signature by
 * hs_alg's digest and secret, whatever the header claims and whatever the secret looks like
 * (jws.c refuses a PEM text as an HMAC secret). Returns a malloc'd token.
 */
static char *forge(const char *hs_alg, const char *secret, const char *header, const char *payload)
{
    static char buf[65536];
    size_t n = b64url_ossl(header, strlen(header), buf);
    buf[n++] = '.';
    n += b64url_ossl(payload, strlen(payload), buf + n);
    const EVP_MD *md = strstr(hs_alg, "384")   ? EVP_sha384()
                       : strstr(hs_alg, "512") ? EVP_sha512()
                                               : EVP_sha256();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int l = 0;
    HMAC(md, secret, (int)strlen(secret), (unsigned char *)buf, n, mac, &l);
    buf[n++] = '.';
    b64url_ossl((const char *)mac, l, buf + n);
    return strdup(buf);
}

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
    static char bufs[4][32768]; /* a few rotating buffers: several fmt() in one call */
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

static struct sse__auth *new_auth(const char *key, const char *alg, int drafts)
{
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = key;
    cfg.publisher_alg = alg;
    cfg.drafts = drafts;
    cfg.resource = "https://hub.example.com/.well-known/mercure";
    struct sse__auth *a = NULL;
    if (sse__auth_new(&a, &cfg))
        return NULL;
    return a;
}

/* Verify; returns 0 on success (and releases the grants), else the error; *why kept. */
static const char *last_why;
static int verify(struct sse__auth *a, int role, const char *tok, long long now)
{
    const struct sse__grants *g = NULL;
    last_why = NULL;
    int rc = sse__auth_verify(a, role, tok, strlen(tok), now, &g, &last_why);
    if (!rc)
        sse__grants_release(g);
    return rc;
}

#define H_JWT "{\"alg\":\"%s\",\"typ\":\"JWT\"}"
#define H_AT "{\"alg\":\"%s\",\"typ\":\"at+jwt\"}"
#define P07                                                                                        \
    "{\"mercure\":{\"publish\":[\"*\"],\"subscribe\":[\"https://ex.com/{id}\","                    \
    "\"/a\"],\"payload\":{\"user\":\"u1\"}},\"exp\":%lld,\"sub\":\"alice\"}"

/* ---- tests ------------------------------------------------------------------------------ */

static int test_hs_algorithms(void)
{
    static const char *algs[] = {"HS256", "HS384", "HS512"};
    for (int i = 0; i < 3; i++) {
        struct sse__auth *a = new_auth(SECRET, algs[i], 0);
        CHECK(a);
        char hdr[64];
        snprintf(hdr, sizeof(hdr), H_JWT, algs[i]);
        char *tok = sign(algs[i], SECRET, hdr, fmt(P07, NOW + 60));
        const struct sse__grants *g = NULL;
        const char *why = NULL;
        CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, tok, strlen(tok), NOW, &g, &why), 0);
        CHECK_EQ_INT(g->draft, SSE__DRAFT_07);
        CHECK_EQ_INT(g->kind, SSE__SEL_AUTO);
        CHECK_EQ_UINT(g->n_publish, 1);
        CHECK_EQ_STR(g->publish[0], "*");
        CHECK_EQ_UINT(g->n_subscribe, 2);
        CHECK_EQ_STR(g->subscribe[0], "https://ex.com/{id}");
        CHECK_EQ_STR(g->subscribe[1], "/a");
        CHECK_EQ_INT(g->subscribe_kinds[1], SSE__SEL_AUTO);
        CHECK_EQ_STR(g->payload_json, "{\"user\":\"u1\"}");
        CHECK_EQ_STR(g->sub, "alice");
        CHECK_EQ_INT(g->exp, NOW + 60);
        sse__grants_release(g);
        /* another algorithm of the same family with the same secret is refused */
        char hdr2[64];
        const char *other = algs[(i + 1) % 3];
        snprintf(hdr2, sizeof(hdr2), H_JWT, other);
        char *tok2 = forge(other, SECRET, hdr2, fmt(P07, NOW + 60));
        CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tok2, NOW), SSE_EAUTH);
        CHECK_EQ_STR(last_why, "alg not allowed");
        free(tok);
        free(tok2);
        sse__auth_free(a);
    }
    return 0;
}

static int test_rs_es(void)
{
    make_keys();
    struct sse__auth *rs = new_auth(rsa_pub, "RS256", 0);
    struct sse__auth *es = new_auth(ec_pub, "ES256", 0);
    CHECK(rs && es);
    char *t_rs = sign("RS256", rsa_priv, fmt(H_JWT, "RS256"), fmt(P07, NOW + 60));
    char *t_es = sign("ES256", ec_priv, fmt(H_JWT, "ES256"), fmt(P07, NOW + 60));
    CHECK_EQ_INT(verify(rs, SSE__AUTH_SUBSCRIBE, t_rs, NOW), 0);
    CHECK_EQ_INT(verify(es, SSE__AUTH_SUBSCRIBE, t_es, NOW), 0);
    /* cross: each refused by the other */
    CHECK_EQ_INT(verify(rs, SSE__AUTH_SUBSCRIBE, t_es, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "alg not allowed");
    CHECK_EQ_INT(verify(es, SSE__AUTH_SUBSCRIBE, t_rs, NOW), SSE_EAUTH);
    /* a token signed by another RSA key */
    struct sse__auth *rs2 = new_auth(rsa2_pub, "RS256", 0);
    CHECK(rs2);
    CHECK_EQ_INT(verify(rs2, SSE__AUTH_SUBSCRIBE, t_rs, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "bad signature");
    /* tampered payload keeps the signature: refused */
    char *dot = strchr(t_es, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(verify(es, SSE__AUTH_SUBSCRIBE, t_es, NOW), SSE_EAUTH);
    free(t_rs);
    free(t_es);
    sse__auth_free(rs);
    sse__auth_free(rs2);
    sse__auth_free(es);
    return 0;
}

#define P08                                                                                        \
    "{\"iss\":\"https://issuer.example\",\"aud\":%s,\"exp\":%lld,\"sub\":\"bob\","                 \
    "\"authorization_details\":[{\"type\":\"other\",\"whatever\":1},"                              \
    "{\"type\":\"mercure\",\"actions\":[\"publish\",\"subscribe\"],\"topics\":["                   \
    "{\"match\":\"https://ex.com/books/1\"},"                                                      \
    "{\"match\":\"https://ex.com/books/:id\",\"matchType\":\"URLPattern\"}],"                      \
    "\"payload\":{\"p\":1}},"                                                                      \
    "{\"type\":\"mercure\",\"actions\":[\"subscribe\"],\"topics\":[{\"match\":\"*\"}]}]}"

/* Draft-08 access tokens (typ at+jwt) with RS / ES keys; key sizes and curves; ECDSA encodings. */
static int test_rs_es_more(void)
{
    make_keys();
    struct sse__auth *rs = new_auth(rsa_pub, "RS256", 0);
    struct sse__auth *es = new_auth(ec_pub, "ES256", 0);
    const char *aud = "\"https://hub.example.com/.well-known/mercure\"";
    char *t = sign("RS256", rsa_priv, fmt(H_AT, "RS256"), fmt(P08, aud, NOW + 60));
    CHECK_EQ_INT(verify(rs, SSE__AUTH_PUBLISH, t, NOW), 0);
    free(t);
    t = sign("ES256", ec_priv, fmt(H_AT, "ES256"), fmt(P08, aud, NOW + 60));
    CHECK_EQ_INT(verify(es, SSE__AUTH_PUBLISH, t, NOW), 0);
    /* the same ECDSA signature in DER instead of R || S: refused (wrong length) */
    char *dot = strrchr(t, '.');
    CHECK(strlen(dot + 1) == 86); /* 64 bytes */
    dot[1 + 80] = '\0';           /* 60 bytes */
    CHECK_EQ_INT(verify(es, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "bad signature");
    free(t);
    /* RS256 signature with an RS384 header: refused (alg pinned), ES384 with a P-256 key */
    t = sign("RS384", rsa_priv, fmt(H_JWT, "RS384"), "{}");
    CHECK_EQ_INT(verify(rs, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    free(t);
    struct sse__auth *a = NULL;
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = ec_pub;
    cfg.publisher_alg = "ES384"; /* a P-256 key does not fit ES384 */
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    EVP_PKEY *small = EVP_RSA_gen(1024);
    char *small_pem = sse__jws_pem(small, 0);
    EVP_PKEY_free(small);
    CHECK(small_pem);
    cfg.publisher_key = small_pem;
    cfg.publisher_alg = "RS256"; /* RFC 7518: RSA keys of at least 2048 bits */
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    sse__free(small_pem);
    /* a private key where a public one is expected is refused too */
    cfg.publisher_key = rsa_priv;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    sse__auth_free(rs);
    sse__auth_free(es);
    return 0;
}

static int test_bad_keys_config(void)
{
    make_keys();
    struct sse__auth *a = NULL;
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = rsa_pub; /* a PEM text as an HMAC secret: refused */
    cfg.publisher_alg = "HS256";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_alg = "ES256"; /* RSA key for ES256 */
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_key = ec_pub;
    cfg.publisher_alg = "RS256";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_key = "not a pem";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_key = SECRET;
    cfg.publisher_alg = "none";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_alg = "HS257";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_alg = NULL;
    cfg.publisher_key = "";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    cfg.publisher_key = NULL;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), SSE_EINVAL);
    CHECK(a == NULL);
    return 0;
}

static int test_forged_and_wrong_key(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    char *tok = forge("HS256", "another secret", fmt(H_JWT, "HS256"), fmt(P07, NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tok, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "bad signature");
    free(tok);
    tok = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt(P07, NOW + 60));
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'a' ? 'b' : 'a'; /* flip a signature byte */
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tok, NOW), SSE_EAUTH);
    tok[n - 2] = '\0';
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tok, NOW), SSE_EAUTH); /* truncated signature */
    free(tok);
    /* payload swapped from another valid token: signature no longer matches */
    char *t1 = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"mercure\":{\"publish\":[]}}");
    char *t2 = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"mercure\":{\"publish\":[\"*\"]}}");
    char mix[4096];
    const char *p1 = strchr(t1, '.'), *s1 = strrchr(t1, '.');
    const char *p2 = strchr(t2, '.'), *s2 = strrchr(t2, '.');
    snprintf(mix, sizeof(mix), "%.*s%.*s%s", (int)(p1 - t1), t1, (int)(s2 - p2), p2, s1);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, mix, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "bad signature");
    free(t1);
    free(t2);
    sse__auth_free(a);
    return 0;
}

static int test_time_claims(void)
{
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = SECRET;
    struct sse__auth *a;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    char *t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt(P07, NOW));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH); /* exp == now: expired */
    CHECK_EQ_STR(last_why, "expired");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW - 1), 0);
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt("{\"nbf\":%lld}", NOW + 30));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "not yet valid");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW + 30), 0);
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"exp\":\"tomorrow\"}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt("{\"exp\":%lld.5}", NOW + 10));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), 0); /* fractional NumericDate */
    free(t);
    sse__auth_free(a);
    /* leeway */
    cfg.leeway = 60;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt("{\"exp\":%lld}", NOW - 30));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), 0);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW + 31), SSE_EAUTH); /* cached, still checked */
    CHECK_EQ_STR(last_why, "expired");
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt("{\"nbf\":%lld}", NOW + 30));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), 0);
    free(t);
    /* extreme NumericDates: no overflow (UBSan would abort), far future is simply valid */
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"exp\":9223372036854775807}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), 0);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW + 1), 0); /* cached path */
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"),
             "{\"exp\":-9223372036854775807,\"nbf\":-9223372036854775807}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"exp\":1e300}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH); /* not representable */
    free(t);
    sse__auth_free(a);
    return 0;
}

static int test_alg_none(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    static const char *hdrs[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}",
                                 "{\"alg\":\"NONE\"}", "{\"typ\":\"JWT\"}", "{\"alg\":null}"};
    for (int i = 0; i < 5; i++) {
        char h[256], p[256], tok[600];
        b64url_ossl(hdrs[i], strlen(hdrs[i]), h);
        const char *pl = "{\"mercure\":{\"publish\":[\"*\"]}}";
        b64url_ossl(pl, strlen(pl), p);
        snprintf(tok, sizeof(tok), "%s.%s.", h, p);
        CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tok, NOW), SSE_EAUTH);
        /* with a signature attached too */
        snprintf(tok, sizeof(tok), "%s.%s.c2lnbmF0dXJl", h, p);
        CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tok, NOW), SSE_EAUTH);
    }
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH,
                        "eyJhbGciOiJub25lIn0.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdfX0.", NOW),
                 SSE_EAUTH);
    CHECK_EQ_STR(last_why, "alg none refused");
    sse__auth_free(a);
    return 0;
}

/* The classic: RS256 configured, attacker signs HS256 with the public key PEM as secret. */
static int test_algorithm_confusion(void)
{
    make_keys();
    struct sse__auth *a = new_auth(rsa_pub, "RS256", 0);
    CHECK(a);
    char *t = forge("HS256", rsa_pub, fmt(H_JWT, "HS256"), fmt(P07, NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "alg not allowed");
    free(t);
    /* even if the header lies ("RS256") over an HMAC signature */
    t = forge("HS256", rsa_pub, fmt(H_JWT, "RS256"), fmt(P07, NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "bad signature");
    free(t);
    sse__auth_free(a);
    /* and the other way round: HS256 configured, a well-signed RS256 token */
    a = new_auth(SECRET, "HS256", 0);
    t = sign("RS256", rsa_priv, fmt(H_JWT, "RS256"), fmt(P07, NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "alg not allowed");
    free(t);
    sse__auth_free(a);
    return 0;
}

static int test_oversized(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    char *big = malloc(20000);
    memset(big, 'a', 19999);
    big[19999] = '\0';
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, big, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "token too long");
    /* a huge but valid-shaped token just over 8 KiB */
    char pl[12000];
    int n = snprintf(pl, sizeof(pl), "{\"mercure\":{\"publish\":[\"");
    memset(pl + n, 'x', 7000);
    snprintf(pl + n + 7000, sizeof(pl) - (size_t)n - 7000, "\"]}}");
    char *t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), pl);
    CHECK(strlen(t) > 8192);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "token too long");
    free(t);
    /* too many grants, and a grant longer than the selector limit */
    n = snprintf(pl, sizeof(pl), "{\"mercure\":{\"subscribe\":[");
    for (int i = 0; i < 200; i++)
        n += snprintf(pl + n, sizeof(pl) - (size_t)n, "%s\"t%d\"", i ? "," : "", i);
    snprintf(pl + n, sizeof(pl) - (size_t)n, "]}}");
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), pl);
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "too many grants");
    free(t);
    n = snprintf(pl, sizeof(pl), "{\"mercure\":{\"publish\":[\"");
    memset(pl + n, 'y', 1500);
    snprintf(pl + n + 1500, sizeof(pl) - (size_t)n - 1500, "\"]}}");
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), pl);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    free(t);
    free(big);
    sse__auth_free(a);
    return 0;
}

static int test_malformed(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    char *good = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, good, NOW), 0);
    static const char *bad[] = {"",
                                "abc",
                                "a.b",
                                "a.b.c.d",
                                ".b.c",
                                "a..c",
                                "....",
                                "eyJhbGciOiJIUzI1NiJ9.e30",
                                "e*J.e30.abc",
                                "eyJ=.e30.abc",
                                "eyJhbGciOiJIUzI1NiJ9.e30=.abc",
                                "\xff\xfe.e30.abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const struct sse__grants *g = (const struct sse__grants *)1;
        const char *why = NULL;
        int rc = sse__auth_verify(a, SSE__AUTH_PUBLISH, bad[i], strlen(bad[i]), NOW, &g, &why);
        if (rc != SSE_EAUTH || !why || g != (const struct sse__grants *)1) {
            fprintf(stderr, "  token %zu: rc %d\n", i, rc);
            return 1;
        }
    }
    /* header not JSON / not an object; claims not JSON / an array; duplicate keys */
    static const char *hdr_bad[] = {"not json", "[\"HS256\"]",
                                    "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
                                    "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}"};
    for (int i = 0; i < 4; i++) {
        char *t = sign("HS256", SECRET, hdr_bad[i], "{}");
        CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
        free(t);
    }
    static const char *pl_bad[] = {"not json", "[1,2]", "{\"a\":1,\"a\":2}", "{\"mercure\":[]}",
                                   "{\"mercure\":{\"publish\":\"*\"}}",
                                   "{\"mercure\":{\"subscribe\":[1]}}",
                                   "{\"mercure\":{\"publish\":[\"\"]}}",
                                   /* NUL inside a string would truncate a selector: refused */
                                   "{\"mercure\":{\"publish\":[\"https://a/x\\u0000y\"]}}"};
    for (int i = 0; i < 8; i++) {
        char *t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), pl_bad[i]);
        if (verify(a, SSE__AUTH_PUBLISH, t, NOW) != SSE_EAUTH) {
            fprintf(stderr, "  payload %d accepted\n", i);
            return 1;
        }
        free(t);
    }
    /* non-canonical base64 in the signature (trailing bits set) */
    size_t n = strlen(good);
    char *nc = strdup(good);
    /* HS256 signatures are 43 chars: the last one carries 2 padding bits */
    char last = nc[n - 1];
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(tbl, last) - tbl);
    nc[n - 1] = tbl[v | 1];
    if (nc[n - 1] != last) {
        CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, nc, NOW), SSE_EAUTH);
    }
    free(nc);
    /* a deeply nested claims document */
    char deep[9000];
    size_t d = 0;
    for (int i = 0; i < 2000; i++)
        deep[d++] = '[';
    deep[d] = '\0';
    char *t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), deep);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    free(t);
    free(good);
    sse__auth_free(a);
    return 0;
}

static int test_draft08(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    const char *aud = "\"https://hub.example.com/.well-known/mercure\"";
    char *t = sign("HS256", SECRET, fmt(H_AT, "HS256"), fmt(P08, aud, NOW + 60));
    const struct sse__grants *g;
    const char *why;
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_SUBSCRIBE, t, strlen(t), NOW, &g, &why), 0);
    CHECK_EQ_INT(g->draft, SSE__DRAFT_08);
    CHECK_EQ_UINT(g->n_publish, 2);
    CHECK_EQ_STR(g->publish[1], "https://ex.com/books/:id");
    CHECK_EQ_INT(g->publish_kinds[0], SSE__SEL_EXACT);
    CHECK_EQ_INT(g->publish_kinds[1], SSE__SEL_URLPATTERN);
    CHECK_EQ_UINT(g->n_subscribe, 3);
    CHECK_EQ_STR(g->subscribe[2], "*");
    CHECK_EQ_STR(g->subscribe_payloads[0], "{\"p\":1}");
    CHECK_EQ_STR(g->subscribe_payloads[1], "{\"p\":1}");
    CHECK(g->subscribe_payloads[2] == NULL);
    CHECK_EQ_STR(g->payload_json, "{\"p\":1}");
    CHECK_EQ_STR(g->sub, "bob");
    sse__grants_release(g);
    free(t);
    /* aud as an array containing the resource */
    t = sign("HS256", SECRET, fmt(H_AT, "HS256"),
             fmt(P08, "[\"x\",\"https://hub.example.com/.well-known/mercure\"]", NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t, NOW), 0);
    free(t);
    /* wrong aud, no aud */
    t = sign("HS256", SECRET, fmt(H_AT, "HS256"), fmt(P08, "\"https://other-hub\"", NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "wrong audience");
    free(t);
    t = sign("HS256", SECRET, fmt(H_AT, "HS256"), fmt(P08, "null", NOW + 60));
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t, NOW), SSE_EAUTH);
    free(t);
    /* exp required in draft-08 */
    t = sign("HS256", SECRET, fmt(H_AT, "HS256"),
             "{\"aud\":\"https://hub.example.com/.well-known/mercure\"}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "exp required");
    free(t);
    /* the same draft-07 token without exp is fine */
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"mercure\":{\"subscribe\":[\"x\"]}}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t, NOW), 0);
    free(t);
    sse__auth_free(a);
    return 0;
}

static int test_draft08_details_refused(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    static const char *details[] = {
        "{\"type\":\"mercure\",\"actions\":[],\"topics\":[{\"match\":\"a\"}]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[\"a\"]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"a\","
        "\"matchType\":\"Regex\"}]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"a\","
        "\"matchType\":\"exact\"}]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"/b/(\\\\d+)\","
        "\"matchType\":\"URLPattern\"}]}",
        "{\"type\":\"mercure\",\"actions\":[\"subscribe\"],\"topics\":[{\"match\":\"a\"}],"
        "\"payload\":\"not an object\"}",
        "{\"type\":\"mercure\",\"actions\":\"publish\",\"topics\":[{\"match\":\"a\"}]}",
        "\"mercure\"",
        "{\"actions\":[\"publish\"],\"topics\":[{\"match\":\"a\"}]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"a\\nb\"}]}",
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"a\\u0085b\"}]}",
        /* draft-08 head: a Cf format character (U+200B), an unknown or miscased match_type */
        "{\"type\":\"mercure\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"a\\u200bb\"}]}",
        "{\"type\":\"https://mercure.rocks/authorization-detail\",\"actions\":[\"publish\"],"
        "\"topics\":[{\"match\":\"a\",\"match_type\":\"URLPattern\"}]}",
        "{\"type\":\"https://mercure.rocks/authorization-detail\",\"actions\":[\"publish\"],"
        "\"topics\":[{\"match\":\"a\",\"match_type\":\"regex\"}]}",
        "{\"type\":\"https://mercure.rocks/authorization-detail\",\"actions\":[\"publish\", 7],"
        "\"topics\":[{\"match\":\"a\"}]}",
    };
    for (size_t i = 0; i < sizeof(details) / sizeof(details[0]); i++) {
        /* a good detail first: partial acceptance is forbidden */
        char *pl = fmt("{\"iss\":\"https://issuer.example\","
                       "\"aud\":\"https://hub.example.com/.well-known/mercure\",\"exp\":%lld,"
                       "\"authorization_details\":[{\"type\":\"mercure\",\"actions\":[\"publish\"],"
                       "\"topics\":[{\"match\":\"*\"}]},%s]}",
                       NOW + 60, details[i]);
        char *t = sign("HS256", SECRET, fmt(H_AT, "HS256"), pl);
        if (verify(a, SSE__AUTH_PUBLISH, t, NOW) != SSE_EAUTH ||
            strcmp(last_why, "malformed authorization_details") != 0) {
            fprintf(stderr, "  detail %zu accepted (or refused for another reason)\n", i);
            return 1;
        }
        free(t);
    }
    sse__auth_free(a);
    return 0;
}

/* The draft-08 head: the authorization-detail type URI with match_type, unknown actions
   ignored (the token stays valid), iss required on every draft-08 token. */
static int test_draft08_head(void)
{
    struct sse__auth *a = new_auth(SECRET, "HS256", 0);
    const struct sse__grants *g = NULL;
    const char *why = NULL;
    char *pl = fmt("{\"iss\":\"https://issuer.example\","
                   "\"aud\":\"https://hub.example.com/.well-known/mercure\",\"exp\":%lld,"
                   "\"authorization_details\":[{\"type\":\"https://mercure.rocks/"
                   "authorization-detail\",\"actions\":[\"publish\",\"archive\"],\"topics\":["
                   "{\"match\":\"/b/:id\",\"match_type\":\"urlpattern\"},{\"match\":\"/c\","
                   "\"match_type\":\"exact\"},{\"match\":\"/d\"}]},{\"type\":\"https://"
                   "mercure.rocks/authorization-detail\",\"actions\":[\"archive\"],\"topics\":["
                   "{\"match\":\"*\"}]}]}",
                   NOW + 60);
    char *t = sign("HS256", SECRET, fmt(H_AT, "HS256"), pl);
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, t, strlen(t), NOW, &g, &why), 0);
    CHECK_EQ_UINT(g->n_publish, 3); /* the "archive"-only detail grants nothing */
    CHECK_EQ_INT(g->publish_kinds[0], SSE__SEL_URLPATTERN);
    CHECK_EQ_INT(g->publish_kinds[1], SSE__SEL_EXACT);
    CHECK_EQ_INT(g->publish_kinds[2], SSE__SEL_EXACT);
    sse__grants_release(g);
    free(t);
    /* the same claims without iss: refused */
    pl = fmt("{\"aud\":\"https://hub.example.com/.well-known/mercure\",\"exp\":%lld,"
             "\"authorization_details\":[]}",
             NOW + 60);
    t = sign("HS256", SECRET, fmt(H_AT, "HS256"), pl);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "iss required");
    free(t);
    sse__auth_free(a);
    return 0;
}

static int test_drafts_config(void)
{
    const char *aud = "\"https://hub.example.com/.well-known/mercure\"";
    char *t07 = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt(P07, NOW + 60));
    char *t08 = sign("HS256", SECRET, fmt(H_AT, "HS256"), fmt(P08, aud, NOW + 60));
    char *t08b = sign("HS256", SECRET, "{\"alg\":\"HS256\",\"typ\":\"application/at+jwt\"}",
                      fmt(P08, aud, NOW + 60));
    struct sse__auth *a7 = new_auth(SECRET, "HS256", SSE__DRAFT_07);
    struct sse__auth *a8 = new_auth(SECRET, "HS256", SSE__DRAFT_08);
    struct sse__auth *ab = new_auth(SECRET, "HS256", SSE__DRAFT_07 | SSE__DRAFT_08);
    CHECK_EQ_INT(verify(a7, SSE__AUTH_PUBLISH, t07, NOW), 0);
    CHECK_EQ_INT(verify(a7, SSE__AUTH_PUBLISH, t08, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "draft-08 tokens not accepted");
    CHECK_EQ_INT(verify(a8, SSE__AUTH_PUBLISH, t07, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "typ must be at+jwt");
    CHECK_EQ_INT(verify(a8, SSE__AUTH_PUBLISH, t08, NOW), 0);
    CHECK_EQ_INT(verify(a8, SSE__AUTH_PUBLISH, t08b, NOW), 0);
    CHECK_EQ_INT(verify(ab, SSE__AUTH_PUBLISH, t07, NOW), 0);
    CHECK_EQ_INT(verify(ab, SSE__AUTH_PUBLISH, t08, NOW), 0);
    /* a draft-08-shaped claim set without typ at+jwt is read as draft-07: no grants from it */
    char *t_mixed = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt(P08, aud, NOW + 60));
    const struct sse__grants *g;
    CHECK_EQ_INT(sse__auth_verify(ab, SSE__AUTH_PUBLISH, t_mixed, strlen(t_mixed), NOW, &g, NULL),
                 0);
    CHECK_EQ_UINT(g->n_publish, 0);
    CHECK_EQ_UINT(g->n_subscribe, 0);
    sse__grants_release(g);
    free(t_mixed);
    free(t07);
    free(t08);
    free(t08b);
    sse__auth_free(a7);
    sse__auth_free(a8);
    sse__auth_free(ab);
    return 0;
}

static int test_issuer(void)
{
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = SECRET;
    cfg.issuer = "https://issuer.example";
    struct sse__auth *a;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    char *t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"iss\":\"https://issuer.example\"}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), 0);
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"iss\":\"https://evil.example\"}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "wrong issuer");
    free(t);
    t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), SSE_EAUTH);
    free(t);
    sse__auth_free(a);
    return 0;
}

/* Several accepted issuers (issuer plus issuers, or issuers alone): any of them verifies, a
   prefix or extension of one does not, and neither does a token without iss. */
static int test_issuers(void)
{
    static const char *const more[] = {"https://b.example", "https://c.example"};
    for (int with_single = 0; with_single < 2; with_single++) {
        struct sse__auth_config cfg = {0};
        cfg.publisher_key = SECRET;
        cfg.issuer = with_single ? "https://a.example" : NULL;
        cfg.issuers = more;
        cfg.n_issuers = 2;
        struct sse__auth *a;
        CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
        static const char *const claims[] = {"{\"iss\":\"https://a.example\"}",
                                             "{\"iss\":\"https://b.example\"}",
                                             "{\"iss\":\"https://c.example\"}",
                                             "{\"iss\":\"https://c.exampl\"}",
                                             "{\"iss\":\"https://b.example/\"}",
                                             "{\"iss\":\"https://d.example\"}",
                                             "{\"iss\":7}",
                                             "{}"};
        for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
            char *t = sign("HS256", SECRET, fmt(H_JWT, "HS256"), claims[i]);
            int want = (i == 0 && with_single) || i == 1 || i == 2 ? 0 : SSE_EAUTH;
            CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t, NOW), want);
            if (want)
                CHECK_EQ_STR(last_why, "wrong issuer");
            free(t);
        }
        sse__auth_free(a);
    }
    return 0;
}

/* Publisher and subscriber keys are separate; the role picks the key. */
static int test_roles(void)
{
    make_keys();
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = SECRET;
    cfg.subscriber_key = ec_pub;
    cfg.subscriber_alg = "ES256";
    struct sse__auth *a;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    char *tp = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{}");
    char *ts = sign("ES256", ec_priv, fmt(H_JWT, "ES256"), "{}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, tp, NOW), 0);
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, tp, NOW), SSE_EAUTH); /* not the cached entry */
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, ts, NOW), 0);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, ts, NOW), SSE_EAUTH);
    free(tp);
    free(ts);
    sse__auth_free(a);
    /* a subscriber key without its own algorithm uses the publisher's */
    struct sse__auth_config c2 = {0};
    c2.publisher_key = SECRET;
    c2.publisher_alg = "HS384";
    c2.subscriber_key = "subscriber-secret";
    CHECK_EQ_INT(sse__auth_new(&a, &c2), 0);
    char *t384 = sign("HS384", "subscriber-secret", fmt(H_JWT, "HS384"), "{}");
    char *t256 = sign("HS256", "subscriber-secret", fmt(H_JWT, "HS256"), "{}");
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t384, NOW), 0);
    CHECK_EQ_INT(verify(a, SSE__AUTH_SUBSCRIBE, t256, NOW), SSE_EAUTH);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t384, NOW), SSE_EAUTH); /* other key */
    free(t384);
    free(t256);
    sse__auth_free(a);
    return 0;
}

static int test_cache(void)
{
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = SECRET;
    cfg.cache_entries = 2;
    struct sse__auth *a;
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    char *t1 = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt("{\"exp\":%lld}", NOW + 10));
    char *t2 = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"a\":2}");
    char *t3 = sign("HS256", SECRET, fmt(H_JWT, "HS256"), "{\"a\":3}");
    const struct sse__grants *g1, *g2;
    size_t entries, hits, misses;
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, t1, strlen(t1), NOW, &g1, NULL), 0);
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, t1, strlen(t1), NOW, &g2, NULL), 0);
    CHECK(g1 == g2); /* the cached grants */
    sse__grants_release(g1);
    sse__grants_release(g2);
    sse__auth_cache_stats(a, &entries, &hits, &misses);
    CHECK_EQ_UINT(entries, 1);
    CHECK_EQ_UINT(hits, 1);
    CHECK_EQ_UINT(misses, 1);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t2, NOW), 0);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t1, NOW), 0); /* t1 most recent */
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t3, NOW), 0); /* evicts t2 */
    sse__auth_cache_stats(a, &entries, &hits, &misses);
    CHECK_EQ_UINT(entries, 2);
    CHECK_EQ_UINT(hits, 2);
    CHECK_EQ_UINT(misses, 3);
    /* expiry-aware: a cached token stops working at exp and leaves the cache */
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t1, NOW + 10), SSE_EAUTH);
    CHECK_EQ_STR(last_why, "expired");
    sse__auth_cache_stats(a, &entries, &hits, &misses);
    CHECK_EQ_UINT(entries, 1);
    CHECK_EQ_UINT(hits, 2);
    CHECK_EQ_UINT(misses, 3);
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t2, NOW), 0); /* t2 was evicted: a miss */
    sse__auth_cache_stats(a, &entries, NULL, &misses);
    CHECK_EQ_UINT(misses, 4);
    CHECK_EQ_UINT(entries, 2);
    /* refusals are not cached: a bad token costs a verification each time */
    CHECK_EQ_INT(verify(a, SSE__AUTH_PUBLISH, t1, NOW + 10), SSE_EAUTH);
    sse__auth_cache_stats(a, &entries, NULL, &misses);
    CHECK_EQ_UINT(entries, 2);
    CHECK_EQ_UINT(misses, 5);
    free(t1);
    free(t2);
    free(t3);
    sse__auth_free(a);
    return 0;
}

static int test_alloc_failures(void)
{
    const char *aud = "\"https://hub.example.com/.well-known/mercure\"";
    char *toks[2];
    toks[0] = sign("HS256", SECRET, fmt(H_JWT, "HS256"), fmt(P07, NOW + 60));
    toks[1] = sign("HS256", SECRET, fmt(H_AT, "HS256"), fmt(P08, aud, NOW + 60));
    for (int k = 0; k < 2; k++) {
        for (long n = 1; n < 200; n++) {
            struct sse__auth *a = NULL;
            const struct sse__grants *g = NULL;
            struct sse__auth_config cfg = {0};
            cfg.publisher_key = SECRET;
            cfg.resource = "https://hub.example.com/.well-known/mercure";
            failalloc_arm(n);
            int rc = sse__auth_new(&a, &cfg);
            if (!rc)
                rc =
                    sse__auth_verify(a, SSE__AUTH_PUBLISH, toks[k], strlen(toks[k]), NOW, &g, NULL);
            int hit = failalloc_was_hit();
            failalloc_arm(0);
            if (!hit) {
                CHECK_EQ_INT(rc, 0);
                sse__grants_release(g);
                sse__auth_free(a);
                break;
            }
            if (rc == 0) /* only the cache insert failed: verification still stands */
                sse__grants_release(g);
            else
                CHECK_EQ_INT(rc, SSE_ENOMEM);
            sse__auth_free(a);
        }
    }
    free(toks[0]);
    free(toks[1]);
    return 0;
}

static int cleanup(void)
{
    sse__free(rsa_pub);
    sse__free(rsa_priv);
    sse__free(rsa2_pub);
    sse__free(ec_pub);
    sse__free(ec_priv);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_hs_algorithms), CHECK_TEST(test_rs_es), CHECK_TEST(test_rs_es_more),
           CHECK_TEST(test_bad_keys_config), CHECK_TEST(test_forged_and_wrong_key),
           CHECK_TEST(test_time_claims), CHECK_TEST(test_alg_none),
           CHECK_TEST(test_algorithm_confusion), CHECK_TEST(test_oversized),
           CHECK_TEST(test_malformed), CHECK_TEST(test_draft08),
           CHECK_TEST(test_draft08_details_refused), CHECK_TEST(test_draft08_head),
           CHECK_TEST(test_drafts_config), CHECK_TEST(test_issuer), CHECK_TEST(test_issuers),
           CHECK_TEST(test_roles), CHECK_TEST(test_cache), CHECK_TEST(test_alloc_failures),
           CHECK_TEST(cleanup))
