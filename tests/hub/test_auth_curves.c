/*
 * test_auth_curves.c: ES256 / ES384 / ES512 take only keys on their named curve (P-256, P-384,
 * P-521), as docs/SECURITY.md promises. Issue 9: any EC key of the right size was accepted, so
 * secp256k1 and brainpoolP256r1 keys configured for ES256 were taken. Keys are generated here
 * with OpenSSL; a key on the right curve must also verify a token it signed.
 */
#include "harness/check.h"
#include "hub/auth.h"
#include "hub/jws.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sse/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A verifier for alg with the public half of a fresh key on curve; its status, *priv the PEM. */
static int configure(const char *alg, const char *curve, char **priv)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    if (!k) {
        fprintf(stderr, "  OpenSSL cannot generate a %s key\n", curve);
        return SSE_ENOMEM;
    }
    char *pub = sse__jws_pem(k, 0);
    if (priv)
        *priv = sse__jws_pem(k, 1);
    EVP_PKEY_free(k);
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = pub;
    cfg.publisher_alg = alg;
    struct sse__auth *a = NULL;
    int rc = pub ? sse__auth_new(&a, &cfg) : SSE_ENOMEM;
    if (!rc && priv && *priv) { /* the accepted key verifies what it signed */
        static const char head[] = "{\"alg\":\"%s\",\"typ\":\"JWT\"}";
        static const char claims[] = "{\"mercure\":{\"subscribe\":[\"*\"]}}";
        char h[64], tok[4096];
        snprintf(h, sizeof(h), head, alg);
        const struct sse__grants *g = NULL;
        const char *why = NULL;
        if (sse__jws_encode(tok, sizeof(tok), NULL, alg, *priv, h, strlen(h), claims,
                            strlen(claims), &why) ||
            sse__auth_verify(a, SSE__AUTH_SUBSCRIBE, tok, strlen(tok), 1700000000, &g, &why)) {
            fprintf(stderr, "  %s on %s: %s\n", alg, curve, why ? why : "?");
            rc = -1;
        }
        sse__grants_release(g);
    }
    sse__auth_free(a);
    free(pub);
    return rc;
}

static int test_named_curves_accepted(void)
{
    char *priv = NULL;
    CHECK_EQ_INT(configure("ES256", "P-256", &priv), 0);
    free(priv);
    CHECK_EQ_INT(configure("ES384", "P-384", &priv), 0);
    free(priv);
    CHECK_EQ_INT(configure("ES512", "P-521", &priv), 0);
    free(priv);
    return 0;
}

static int test_other_curves_refused(void)
{
    /* same size, other curve */
    CHECK_EQ_INT(configure("ES256", "secp256k1", NULL), SSE_EINVAL);
    CHECK_EQ_INT(configure("ES256", "brainpoolP256r1", NULL), SSE_EINVAL);
    CHECK_EQ_INT(configure("ES384", "brainpoolP384r1", NULL), SSE_EINVAL);
    CHECK_EQ_INT(configure("ES512", "brainpoolP512r1", NULL), SSE_EINVAL);
    /* a named curve of another algorithm */
    CHECK_EQ_INT(configure("ES256", "P-384", NULL), SSE_EINVAL);
    CHECK_EQ_INT(configure("ES384", "P-256", NULL), SSE_EINVAL);
    CHECK_EQ_INT(configure("ES512", "P-384", NULL), SSE_EINVAL);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_named_curves_accepted), CHECK_TEST(test_other_curves_refused))
