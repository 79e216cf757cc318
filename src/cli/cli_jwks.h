/*
 * cli_jwks.h: fetching the JSON Web Key Sets of --publisher-jwks-url / --subscriber-jwks-url
 * for `ssehub serve`, and handing them to the hub (sse_hub_set_jwks).
 *
 * Why here and not in the hub: the hub library links no HTTP client (cmake/layers.txt: the hub
 * sits below the client, which owns libcurl), and where keys come from is deployment policy.
 * The hub decodes and uses a key set it is given and says when it wants a fresh one (a token
 * with an unknown kid, rate-limited: sse_hub_options.jwks_refresh); this file fetches it.
 *
 * Fetches: file:// read from disk, http:// and https:// with libcurl (TLS verified, at most 3
 * redirects within http/https, 10 s, the document bounded by --jwks-max-bytes). The first fetch
 * at start blocks (the loop is not running yet, and a hub without its keys must not start);
 * every refresh runs on libuv's thread pool (uv_queue_work), never on the loop, and its result
 * is handed to the hub on the loop thread.
 */
#ifndef SSE_CLI_JWKS_H
#define SSE_CLI_JWKS_H

#include <sse/hub.h>
#include <stddef.h>
#include <uv.h>

struct cli_jwks;

/*
 * Read url (file://, http://, https://) into a malloc'ed buffer *doc / *len (caller frees), at
 * most max_bytes. Blocking. 0, or -1 with a message in err[0..errlen).
 */
int cli_jwks_fetch(const char *url, size_t max_bytes, char **doc, size_t *len, char *err,
                   size_t errlen);

/*
 * A fetcher for the roles of a hub on loop: urls[0] publisher, urls[1] subscriber (NULL: that
 * role has no key set). Fetches both now (blocking) and keeps the documents for
 * cli_jwks_attach. log (may be NULL) reports refreshes. 0 and *out, or -1 (message in err).
 */
int cli_jwks_new(struct cli_jwks **out, uv_loop_t *loop, const char *const urls[2],
                 size_t max_bytes, void (*log)(void *data, int level, const char *line),
                 void *log_data, char *err, size_t errlen);

/* The hub's roles with a key set (SSE_HUB_PUBLISHER | SSE_HUB_SUBSCRIBER). */
int cli_jwks_roles(const struct cli_jwks *j);

/* What sse_hub_options.jwks_refresh is set to, with the fetcher as its data. */
void cli_jwks_refresh(void *data, int role);

/* Hand the documents fetched at start to hub. 0, or -1 (a document the hub refused: err). */
int cli_jwks_attach(struct cli_jwks *j, sse_hub *hub, char *err, size_t errlen);

/*
 * Forget the hub (before it is freed): a refresh still running completes on the thread pool and
 * its result is dropped on the loop. Then free j: at once if nothing is in flight, else from
 * the loop when the last fetch completes (the loop runs until then). NULL is ignored.
 */
void cli_jwks_free(struct cli_jwks *j);

#endif
