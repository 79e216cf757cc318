/**
 * token.h: signing compact JWS tokens (JWTs), the counterpart of the hub's verifier.
 *
 * Owned by the hub module (src/hub/jws.c, OpenSSL). The hub itself never signs: this is for
 * programs that mint tokens for a hub (`ssehub token`, `ssehub pub`, tests). The caller writes
 * the header and claims JSON texts (what they say is its business, e.g. "typ":"at+jwt" for
 * Mercure draft-08); this call base64url-encodes them and signs "header.claims" with HS256/384/512
 * (HMAC), RS256/384/512 (RSA PKCS#1 v1.5) or ES256/384/512 (ECDSA, R || S per RFC 7518 3.4).
 */
#ifndef SSE_TOKEN_H
#define SSE_TOKEN_H

#include <sse/error.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Bytes of out that sse_token_sign needs at most for a header and claims of these lengths, the
 * NUL included (room for the largest signature supported: an RSA key of 8192 bits).
 */
SSE_API size_t sse_token_max_len(size_t header_len, size_t claims_len);

/**
 * Write the compact JWS base64url(header) "." base64url(claims) "." base64url(signature) into
 * out[0..cap), NUL-terminated. header and claims are any bytes (borrowed; normally JSON texts,
 * not checked). alg is one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512 and
 * is used as given, whatever the header says. key (borrowed, NUL-terminated) is the HMAC secret
 * for HS (a PEM text is refused) or a PEM private key of the algorithm's family for RS and ES.
 * Returns 0 and *out_len (if not NULL) the token's length; or SSE_EUNSUPPORTED (unknown alg),
 * SSE_EINVAL (no key, or a key that does not fit alg), SSE_ELIMIT (cap too small: give it
 * sse_token_max_len()), SSE_ENOMEM (OpenSSL could not sign: out of memory, or for RS a key too
 * short for the digest). On failure *why (if why is not NULL) is a short static reason and out
 * holds no token.
 */
SSE_API int sse_token_sign(char *out, size_t cap, size_t *out_len, const char *alg, const char *key,
                           const char *header, size_t header_len, const char *claims,
                           size_t claims_len, const char **why);

#ifdef __cplusplus
}
#endif
#endif
