/*
 * jws.c: sign compact JWS tokens with OpenSSL (see jws.h): base64url encoding, HMAC / RSA /
 * ECDSA signatures, PEM export of generated keys; sse_token_sign(), its public face (token.h).
 *
 * Not libjwt: libjwt 1.10's jwt_encode_str always rewrites the "typ" header to "JWT", and
 * draft-08 access tokens must say "at+jwt" (RFC 9068). Here the caller's header is signed as is.
 *
 * This file does not own: verification (auth.c), the claims, where keys come from.
 */
#include "hub/jws.h"

#include "common/alloc.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <sse/error.h>
#include <sse/token.h>
#include <string.h>

size_t sse__b64url_encode(const void *in, size_t len, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = tbl[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* The digest of one of the nine algorithm names, or NULL for anything else (EdDSA too: it has
   no separate digest, sse__jws_encode tells it apart first). */
static const EVP_MD *jws_md(const char *alg)
{
    if (!alg || strlen(alg) != 5 || (alg[0] != 'H' && alg[0] != 'R' && alg[0] != 'E') ||
        alg[1] != 'S')
        return NULL;
    return !strcmp(alg + 2, "256")   ? EVP_sha256()
           : !strcmp(alg + 2, "384") ? EVP_sha384()
           : !strcmp(alg + 2, "512") ? EVP_sha512()
                                     : NULL;
}

/* HMAC of msg with the secret key (not a PEM text: that is the algorithm-confusion setup). */
static int jws_sign_hmac(const EVP_MD *md, const char *key, const unsigned char *msg, size_t len,
                         unsigned char *sig, size_t *sig_len, const char **why)
{
    unsigned int l = 0;
    if (strstr(key, "-----BEGIN")) {
        *why = "a PEM key is not an HMAC secret";
        return SSE_EINVAL;
    }
    if (!HMAC(md, key, (int)strlen(key), msg, len, sig, &l)) {
        *why = "HMAC failed";
        return SSE_ENOMEM;
    }
    *sig_len = l;
    return 0;
}

/* RSA PKCS#1 v1.5 or ECDSA with the PEM private key; ECDSA's DER turned into R || S. */
static int jws_sign_pkey(const char *alg, const EVP_MD *md, const char *key,
                         const unsigned char *msg, size_t len, unsigned char *sig, size_t *sig_len,
                         const char **why)
{
    int rc = SSE_ENOMEM;
    BIO *bio = BIO_new_mem_buf(key, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[SSE__JWS_MAX_SIG];
    size_t der_len = sizeof(der);
    *why = "signing failed";
    int want = alg[0] == 'R'                    ? EVP_PKEY_RSA
               : alg[0] == 'E' && alg[1] == 'S' ? EVP_PKEY_EC
                                                : EVP_PKEY_ED25519;
    if (!pk || EVP_PKEY_base_id(pk) != want) {
        *why = "not a PEM private key of the algorithm's type";
        rc = SSE_EINVAL;
        goto out;
    }
    if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, pk) != 1 ||
        EVP_DigestSign(ctx, der, &der_len, msg, len) != 1)
        goto out;
    if (alg[0] == 'R' || want == EVP_PKEY_ED25519) { /* Ed25519: R || S already, 64 bytes */
        memcpy(sig, der, der_len);
        *sig_len = der_len;
    } else {
        /* DER ECDSA-Sig-Value -> fixed-size R || S (RFC 7518 section 3.4) */
        int half = (EVP_PKEY_get_bits(pk) + 7) / 8;
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        int ok = es && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, half) == half &&
                 BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, half) == half;
        ECDSA_SIG_free(es);
        if (!ok)
            goto out;
        *sig_len = (size_t)half * 2;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return rc;
}

int sse__jws_encode(char *out, size_t cap, size_t *out_len, const char *alg, const char *key,
                    const char *header, size_t header_len, const char *claims, size_t claims_len,
                    const char **why)
{
    const char *reason = NULL;
    unsigned char sig[SSE__JWS_MAX_SIG];
    size_t sig_len = 0;
    int rc;
    int eddsa = alg && !strcmp(alg, "EdDSA"); /* Ed25519 (RFC 8037): no digest of its own */
    const EVP_MD *md = eddsa ? NULL : jws_md(alg);
    if (!md && !eddsa) {
        reason = "unknown algorithm";
        rc = SSE_EUNSUPPORTED;
        goto out_fail;
    }
    if (!key) {
        reason = "no key";
        rc = SSE_EINVAL;
        goto out_fail;
    }
    /* header "." claims "." and the NUL, before the signature's length is known */
    if (cap < SSE__B64URL_LEN(header_len) + SSE__B64URL_LEN(claims_len) + 3) {
        reason = "token buffer too small";
        rc = SSE_ELIMIT;
        goto out_fail;
    }
    size_t n = sse__b64url_encode(header, header_len, out);
    out[n++] = '.';
    n += sse__b64url_encode(claims, claims_len, out + n);
    if (alg[0] == 'H' && !eddsa)
        rc = jws_sign_hmac(md, key, (const unsigned char *)out, n, sig, &sig_len, &reason);
    else
        rc = jws_sign_pkey(alg, md, key, (const unsigned char *)out, n, sig, &sig_len, &reason);
    if (rc)
        goto out_fail;
    if (cap < n + 1 + SSE__B64URL_LEN(sig_len) + 1) {
        reason = "token buffer too small";
        rc = SSE_ELIMIT;
        goto out_fail;
    }
    out[n++] = '.';
    n += sse__b64url_encode(sig, sig_len, out + n);
    if (out_len)
        *out_len = n;
    return 0;
out_fail:
    if (cap)
        out[0] = '\0';
    if (why)
        *why = reason;
    return rc;
}

char *sse__jws_pem(EVP_PKEY *key, int private_part)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *s = NULL;
    if (!b)
        return NULL;
    int ok = private_part ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(b, key);
    long n = ok == 1 ? BIO_get_mem_data(b, &data) : 0;
    if (n > 0)
        s = sse__strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

/* The public face of the signer (include/sse/token.h). */
size_t sse_token_max_len(size_t header_len, size_t claims_len)
{
    return SSE__JWS_MAX_LEN(header_len, claims_len);
}

int sse_token_sign(char *out, size_t cap, size_t *out_len, const char *alg, const char *key,
                   const char *header, size_t header_len, const char *claims, size_t claims_len,
                   const char **why)
{
    return sse__jws_encode(out, cap, out_len, alg, key, header, header_len, claims, claims_len,
                           why);
}
