/*
 * auth.h: JWT verification for Mercure publishers and subscribers (internal to the hub).
 *
 * Checks a compact JWS against the configured key and algorithm (the configured algorithm is the
 * only one accepted: "none" and algorithm confusion are refused before any cryptography), the
 * time claims, the draft-08 access-token profile (typ "at+jwt", aud, iss, exp required) and turns
 * the claims into grants: which selectors the token may publish to and subscribe to. Verified
 * tokens are cached (token text -> grants), bounded and expiry-aware, so a subscriber that
 * reconnects with the same token costs one hash lookup.
 *
 * This file does not own: where the token comes from (header, cookie, query: the hub), compiling
 * or matching the grants' selectors (selector.h), what the hub does with a refusal.
 */
#ifndef SSE__HUB_AUTH_H
#define SSE__HUB_AUTH_H

#include <stddef.h>

enum { SSE__AUTH_PUBLISH = 1, SSE__AUTH_SUBSCRIBE = 2 }; /* the role a token is checked for */
enum { SSE__DRAFT_07 = 1, SSE__DRAFT_08 = 2 };           /* bitmask of accepted generations */

struct sse__auth_config {
    const char *publisher_key;  /* HMAC secret, or PEM public key (SPKI) for RS and ES */
    const char *publisher_alg;  /* "HS256" (default), "HS384", "HS512", "RS256", "ES256" */
    const char *subscriber_key; /* NULL: the publisher's key and algorithm are used */
    const char *subscriber_alg; /* NULL: the publisher's algorithm */
    int drafts;                 /* SSE__DRAFT_07 | SSE__DRAFT_08; 0 = both */
    const char *resource; /* draft-08 expected "aud" (the hub's resource id); NULL = no check */
    const char *issuer;   /* expected "iss" (both drafts) or NULL = no check */
    /* More accepted issuers (an issuer being rotated or a hub migrated from): "iss" must then
       equal issuer or one of these. Copied; NULL entries are not allowed. */
    const char *const *issuers;
    size_t n_issuers;
    size_t max_token_len;    /* longer tokens refused before parsing; 0 = 8 KiB */
    size_t cache_entries;    /* verified-token cache; 0 = 1024 */
    long leeway;             /* seconds of clock skew allowed on exp / nbf; 0 = none */
    size_t max_grants;       /* most selectors per token (each role); 0 = 128 */
    size_t max_selector_len; /* longest granted selector; 0 = 1024 */
    /* Key sets (JWKS): a role in jwks_roles (SSE__AUTH_PUBLISH / _SUBSCRIBE bits) takes its keys
       from sse__auth_set_jwks, not from *_key / *_alg; until a set arrives it refuses every
       token. A role without key nor set refuses every token too. */
    int jwks_roles;
    /* Called (role) when a token names a "kid" its role's set lacks: the caller may fetch a
       fresh set. It must not call sse__auth_set_jwks from inside (the verification is running);
       NULL = nobody is told. */
    void (*on_unknown_kid)(void *data, int role);
    void *on_unknown_kid_data;
};

/*
 * What a verified token allows. Refcounted and immutable: read it freely, release it with
 * sse__grants_release when done. Selector texts are NUL-terminated copies.
 */
struct sse__grants {
    char **publish; /* selector texts granted for publishing */
    size_t n_publish;
    char **subscribe; /* selector texts granted for subscribing (private updates) */
    size_t n_subscribe;
    int kind;           /* SSE__SEL_AUTO (draft-07 token) or SSE__SEL_URLPATTERN (draft-08) */
    char *payload_json; /* draft-07 mercure.payload, or draft-08 first subscribe payload */
    long long exp;      /* expiry, seconds since epoch; 0 = none */
    /* Added after the first draft of this header: */
    int draft;                 /* SSE__DRAFT_07 or SSE__DRAFT_08: which profile the token used */
    int *publish_kinds;        /* per publish entry: SSE__SEL_AUTO (07), _EXACT or _URLPATTERN */
    int *subscribe_kinds;      /* per subscribe entry, same */
    char **subscribe_payloads; /* per subscribe entry: its detail's payload JSON or NULL (08) */
    char *sub;                 /* the "sub" claim or NULL */
    unsigned refs_;            /* private: reference count */
};

struct sse__auth; /* one verifier: keys, options, the verified-token cache. Not thread-safe. */

/*
 * Create a verifier. cfg is copied (strings too). 0 and *out, or SSE_EINVAL (unknown algorithm,
 * missing key, a PEM key that does not parse or does not fit its algorithm, an HMAC secret that
 * looks like a PEM key), SSE_ENOMEM. *out written on success only.
 */
int sse__auth_new(struct sse__auth **out, const struct sse__auth_config *cfg);

/*
 * Verify token[0..len) for role (SSE__AUTH_PUBLISH / SSE__AUTH_SUBSCRIBE) at time now (seconds
 * since epoch). On success 0 and *out holds a new reference (sse__grants_release it). On refusal
 * SSE_EAUTH and *why (if why is not NULL) a short static reason such as "expired", "bad
 * signature", "alg not allowed"; SSE_ENOMEM if memory ran out. *out is written on success only.
 */
int sse__auth_verify(struct sse__auth *a, int role, const char *token, size_t len, long long now,
                     const struct sse__grants **out, const char **why);

struct sse__jwks;
/*
 * Replace the key set of role (one of cfg.jwks_roles); the verifier takes ownership of set (also
 * on failure). The verified-token cache is emptied: a key removed from the set no longer admits
 * its tokens. Returns 0, SSE_EINVAL (role is not a key-set role), SSE_ENOMEM (the old set stays).
 */
int sse__auth_set_jwks(struct sse__auth *a, int role, struct sse__jwks *set);

/*
 * Hand src's key sets to dst, for each role that is a key-set role in both and has no set in
 * dst yet (a verifier rebuilt with new issuers keeps the sets fetched so far). src keeps its
 * keys otherwise and is still freed with sse__auth_free.
 */
void sse__auth_move_jwks(struct sse__auth *dst, struct sse__auth *src);

/* Take another reference to g (returns g). */
const struct sse__grants *sse__grants_ref(const struct sse__grants *g);
/* Drop a reference; frees on the last one. NULL is ignored. */
void sse__grants_release(const struct sse__grants *g);

/* Counters for tests and /metrics: cache entries, hits, misses. NULL outputs skipped. */
void sse__auth_cache_stats(const struct sse__auth *a, size_t *entries, size_t *hits,
                           size_t *misses);

/* Free the verifier and its cache (grants still referenced elsewhere live on). NULL ok. */
void sse__auth_free(struct sse__auth *a);

#endif
