/*
 * jwks.h: decoding a JSON Web Key Set (RFC 7517) into OpenSSL public keys (internal to the hub).
 *
 * The keys a hub verifies tokens with when --publisher-jwks-url / --subscriber-jwks-url are set:
 * RSA (RS256/384/512, 2048 bits at least), EC (ES256/384/512 on P-256/384/521) and OKP Ed25519
 * (EdDSA, RFC 8037). Symmetric ("oct") keys are not taken from a key set, as the reference hub
 * accepts only asymmetric algorithms there; keys for another use ("use" other than "sig") or of
 * an algorithm we do not verify are skipped, so a set shared with encryption keys still loads.
 *
 * This file does not own: fetching the document (src/cli/cli_jwks.c), choosing a key for a
 * token and verifying with it (auth.c).
 */
#ifndef SSE__HUB_JWKS_H
#define SSE__HUB_JWKS_H

#include <openssl/types.h>
#include <stddef.h>

#define SSE__JWKS_MAX_BYTES ((size_t)1 << 20) /* hard bound on a document, whatever asked */
#define SSE__JWKS_MAX_KEYS 64                 /* entries of "keys" (usable or not) */
#define SSE__JWKS_MAX_KID 256                 /* bytes of a "kid" */

struct sse__jwk {
    char *kid;       /* NUL-terminated copy, or NULL: the key has no "kid" */
    const char *alg; /* static: "RS256".."RS512", "ES256".."ES512" or "EdDSA" */
    EVP_PKEY *pkey;  /* the public key (owned) */
};

struct sse__jwks {
    struct sse__jwk *keys; /* n usable keys, in document order */
    size_t n;
};

/*
 * Decode json[0..len) (any bytes; need not be NUL-terminated). Returns 0 and *out (free with
 * sse__jwks_free) holding at least one usable key; SSE_EINVAL with *why (a short static reason,
 * if why is not NULL) for a document that is too long (over SSE__JWKS_MAX_BYTES), not JSON, has
 * no "keys" array, too many entries, a malformed member of a key it would use (bad base64url, an
 * RSA key under 2048 bits, a point not on its curve), or no usable key at all; SSE_ENOMEM.
 * *out written on success only.
 */
int sse__jwks_parse(const char *json, size_t len, struct sse__jwks **out, const char **why);

/* The first key whose kid is kid[0..kid_len), or NULL. */
const struct sse__jwk *sse__jwks_find(const struct sse__jwks *set, const char *kid, size_t kid_len);

/* Free a set and its keys. NULL is ignored. */
void sse__jwks_free(struct sse__jwks *set);

#endif
