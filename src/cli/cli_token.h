/*
 * cli_token.h: minting Mercure JWTs for the CLI (`ssehub token`, and `ssehub pub` when it signs
 * its own token from a key). Implemented in cmd_token.c (claims with jansson, signed by
 * sse_token_sign(), include/sse/token.h).
 *
 * Development tokens: the key comes from the command line or the environment; hubs verify them
 * with src/hub/auth.c. Nothing here is used by the library.
 */
#ifndef SSE_CLI_TOKEN_H
#define SSE_CLI_TOKEN_H

#include <stddef.h>

struct sse_cli_grant {
    const char *match; /* selector text (borrowed) */
    int url_pattern;   /* draft-08: matchType URLPattern instead of Exact */
};

struct sse_cli_token_spec {
    int draft;                           /* 7 or 8 */
    const struct sse_cli_grant *publish; /* publish grants (borrowed) */
    size_t n_publish;
    const struct sse_cli_grant *subscribe; /* subscribe grants (borrowed) */
    size_t n_subscribe;
    const char *payload_json; /* draft-07 mercure.payload / draft-08 subscribe payload, or NULL */
    const char *aud;          /* "aud" (draft-08 needs the hub's resource id), or NULL */
    const char *iss;          /* "iss" or NULL */
    const char *sub;          /* "sub" or NULL */
    long long exp_seconds;    /* lifetime; 0 = no "exp" (refused for draft-08) */
    const char *alg;          /* "HS256" (NULL), HS384, HS512, RS256..512, ES256..512 */
    const char *key;          /* HMAC secret or PEM private key (borrowed) */
};

/* The default hub URL, also the default draft-08 audience (the hub's resource identifier). */
#define SSE_CLI_DEFAULT_HUB "http://127.0.0.1:8080/.well-known/mercure"

/*
 * Mint a signed token for spec at time now (seconds since epoch). 0 and *out (a malloc'd
 * string, free() it), or -1 and *err a static reason (bad JSON payload, unknown algorithm, key
 * unusable...). *out written on success only.
 */
int sse_cli_token_mint(const struct sse_cli_token_spec *spec, long long now, char **out,
                       const char **err);

/* Read a whole file (a key) into a malloc'd NUL-terminated string; NULL on error (errno set). */
char *sse_cli_read_file(const char *path, size_t max, size_t *len);

#endif
