/*
 * jws.h: signing compact JWS tokens (JWTs) with OpenSSL (internal to the hub module).
 *
 * The one signer of the project: `ssehub token` / `ssehub pub` mint their tokens with it through
 * its public face, sse_token_sign() (include/sse/token.h), and the tests, fuzzers and benchmarks
 * of the verifier (auth.h) sign their valid tokens with it.
 * The caller writes the header and claims JSON texts; this file base64url-encodes them, signs
 * "header.claims" with HS256/384/512 (HMAC), RS256/384/512 (RSA PKCS#1 v1.5) or ES256/384/512
 * (ECDSA, R || S as RFC 7518 section 3.4 wants) or EdDSA (Ed25519, RFC 8037) and appends the
 * signature.
 *
 * This file does not own: verification (auth.h), what the claims say (the caller), reading keys
 * from files. The library itself never signs.
 */
#ifndef SSE__HUB_JWS_H
#define SSE__HUB_JWS_H

#include <openssl/types.h>
#include <stddef.h>

/* Most bytes of a signature (an RSA key of up to 8192 bits). */
#define SSE__JWS_MAX_SIG 1024

/* Characters of the base64url text (no padding) of n bytes. */
#define SSE__B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Room sse__jws_encode needs for a header and claims of these lengths, the NUL included. */
#define SSE__JWS_MAX_LEN(header_len, claims_len)                                                   \
    (SSE__B64URL_LEN(header_len) + SSE__B64URL_LEN(claims_len) +                                   \
     SSE__B64URL_LEN(SSE__JWS_MAX_SIG) + 3)

/*
 * Base64url-encode in[0..len) without padding into out (room for SSE__B64URL_LEN(len) + 1),
 * NUL-terminated. Returns the length written, the NUL not counted. Cannot fail.
 */
size_t sse__b64url_encode(const void *in, size_t len, char *out);

/*
 * Build the compact JWS base64url(header) "." base64url(claims) "." base64url(signature) into
 * out[0..cap), NUL-terminated; header and claims are any bytes (borrowed; normally JSON texts,
 * which are not checked). alg is one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384,
 * ES512, EdDSA and is used as given, whatever the header says. key (borrowed, NUL-terminated) is
 * the HMAC secret for HS (a PEM text is refused) or a PEM private key of the algorithm's family
 * for RS, ES and EdDSA (an Ed25519 key).
 * Returns 0 and *out_len (if not NULL) the token's length; or SSE_EUNSUPPORTED (unknown alg),
 * SSE_EINVAL (no key, or a key that does not fit alg), SSE_ELIMIT (cap below SSE__JWS_MAX_LEN
 * and the token did not fit), SSE_ENOMEM (OpenSSL could not sign: out of memory, or for RS a key
 * too short for the digest). On failure *why (if why is not NULL) is a short static reason and
 * out holds no token. *out_len written on success only.
 */
int sse__jws_encode(char *out, size_t cap, size_t *out_len, const char *alg, const char *key,
                    const char *header, size_t header_len, const char *claims, size_t claims_len,
                    const char **why);

/*
 * The PEM text of key (borrowed): its PKCS#8 private key if private_part, else its public key
 * (SPKI, what auth.h verifies with). For tools and tests that generate keys with OpenSSL.
 * Returns a NUL-terminated copy (caller frees with sse__free), or NULL if OpenSSL or memory
 * failed.
 */
char *sse__jws_pem(EVP_PKEY *key, int private_part);

#endif
