/**
 * hub.h: a Mercure hub on top of an sse_server.
 *
 * The hub adds the Mercure routes to a server: publish (POST /.well-known/mercure), subscribe
 * (GET /.well-known/mercure), the subscriptions API, the protected-resource metadata, /healthz
 * and /metrics. It speaks draft-07 (topic selectors, URI templates, the `mercure` claim) and
 * draft-08 (match / matchURLPattern, access tokens with authorization_details), or both at once.
 * Updates are encoded once into a shared frame and fanned out by reference; history and replay
 * go through a store (include/sse/store.h; an in-memory one by default).
 *
 * A hub belongs to the loop of its server and is only touched from that thread.
 */
#ifndef SSE_HUB_H
#define SSE_HUB_H

#include <sse/bus.h>
#include <sse/error.h>
#include <sse/server.h>
#include <sse/store.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sse_hub sse_hub;

/** Which protocol generations the hub speaks. */
enum { SSE_HUB_DRAFT_07 = 1, SSE_HUB_DRAFT_08 = 2, SSE_HUB_DRAFT_BOTH = 3 };

/** Hub options; zero fields take the defaults shown. Strings are copied. */
typedef struct sse_hub_options {
    int version;                 /* SSE_HUB_OPTIONS_VERSION */
    uv_loop_t *loop;             /* the server's loop (required: token expiry timer) */
    int drafts;                  /* SSE_HUB_DRAFT_*; 0 = both */
    const char *publisher_key;   /* JWT key (HS secret or PEM public key); NULL = nobody may
                                    publish over HTTP (unless publish_anonymous) */
    const char *publisher_alg;   /* "HS256" (default) ... "RS256", "ES256" */
    const char *subscriber_key;  /* NULL = the publisher's key */
    const char *subscriber_alg;  /* NULL = the publisher's algorithm */
    const char *resource;        /* draft-08 resource identifier (expected "aud"); NULL = none */
    const char *issuer;          /* expected "iss"; NULL = not checked */
    int anonymous;               /* 1: subscribers without a token are accepted */
    int publish_anonymous;       /* 1: publishing needs no token (trusted networks only) */
    int subscriptions;           /* 1: subscription events and the subscriptions API */
    const char *publish_origins; /* space/comma list allowed for cookie-authenticated
                                    publishers ("*" = any); NULL = cookie publishing refused */
    sse_store *store;            /* history backend (borrowed, with its own limits); NULL = a
                                    memory store with its defaults (sse_store_memory_new) */
    size_t max_selectors;        /* selectors per subscribe request (64); more -> 400 */
    size_t max_selector_len;     /* bytes per selector/topic (1024); longer -> 400 / 413 */
    size_t max_topics;           /* topics per update (draft-07; 16); more -> 413 */
    size_t max_update;           /* bytes of data + id + type of one update (1 MiB) -> 413 */
    size_t max_subscribers;      /* concurrent subscribers (0 = unlimited); more -> 429 */
    size_t replay_scan;          /* draft-08 Last-Event-ID backward-scan limit (100) */
    uint64_t replay_steps_max;   /* selector-matching steps one replay may spend (2^24); more
                                    -> 429 before the stream opens, a closed stream after.
                                    Replays run in slices either way (docs/SECURITY.md) */
    size_t pattern_cache;        /* topics cached in the pattern-match cache (4096) */
    size_t max_pattern_nodes;    /* automaton nodes of all distinct compiled selector patterns
                                    alive (2^18, ~3 MiB): bounds their memory and the cost of
                                    matching a new topic; a new pattern past it -> 429 */
    unsigned expiry_sweep_ms;    /* how often expired subscribers are closed (250) */
    unsigned max_lifetime_ms;    /* close streams older than this (0 = never); the client
                                    reconnects with Last-Event-ID and re-authenticates */
    void (*log)(void *log_data, int level, const char *line); /* NULL = the server's */
    void *log_data;
    /*
     * The bus (include/sse/bus.h; borrowed, not yet started: the hub starts it). NULL (the
     * default): an update is stored and fanned out by this hub alone. Otherwise every update
     * (HTTP, sse_hub_publish, subscription events) is published on the bus, and the hub stores
     * and fans out what the bus hands back, in the bus's order; a POST is answered then.
     */
    sse_bus *bus;
    const char *instance; /* NULL; else /metrics lines get worker="instance", and subscribe
                             and bus-published POST responses the header X-Ssehub-Worker */
    /* Added for operators of the reference hub (docs/OPERATIONS.md): */
    const char *cookie_name; /* the cookie carrying the subscriber's token; NULL = the drafts'
                                mercureAuthorization (and __Secure- / mercureAccessToken) */
    int no_history;          /* 1: updates are fanned out but never stored, so a replay
                                (Last-Event-ID) finds nothing (the reference's "local") */
    int jwks_roles;          /* SSE_HUB_PUBLISHER | SSE_HUB_SUBSCRIBER: that role's keys are a
                                key set handed in by sse_hub_set_jwks (selected by "kid"),
                                not publisher_key / subscriber_key */
    /* A token whose "kid" is not in its role's key set: the hub asks for a fresh set (at most
       once per jwks_refresh_min_ms per role, 5000 by default). While that refetch is in flight
       the request waits for it (see jwks_wait_ms below), then is verified again with the set
       sse_hub_set_jwks installed; with no refetch allowed now, it is refused at once (401).
       NULL: never asked (and nobody waits). */
    void (*jwks_refresh)(void *data, int role);
    void *jwks_refresh_data;
    unsigned jwks_refresh_min_ms;
    /* Requests waiting for a refetch asked by jwks_refresh: they are verified again when
       sse_hub_set_jwks installs the role's set or sse_hub_jwks_refresh_failed says none comes,
       and at the latest jwks_wait_ms (10000, the CLI's fetch timeout) after the refetch was
       asked (then: 401). At most jwks_max_waiting (1024) per role wait; more get 401 at once. */
    unsigned jwks_wait_ms;
    size_t jwks_max_waiting;
    /* Added in version 3: more accepted issuers (an issuer being rotated, a hub migrated
       from). "iss" must then equal issuer or one of these; both unset: "iss" is not checked
       (draft-08 tokens still need one). Borrowed for the call only (copied); no NULL entries. */
    const char *const *issuers;
    size_t n_issuers;
} sse_hub_options;

/** Roles (bitmask) of sse_hub_options.jwks_roles and sse_hub_set_jwks. */
enum { SSE_HUB_PUBLISHER = 1, SSE_HUB_SUBSCRIBER = 2 };

#define SSE_HUB_OPTIONS_VERSION 3
#define SSE_HUB_OPTIONS_INIT                                                                       \
    {                                                                                              \
        SSE_HUB_OPTIONS_VERSION, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, \
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, 0, \
            0, NULL, 0                                                                             \
    }

/**
 * Create a hub and add its routes to server (call before any other route that could shadow
 * /.well-known/mercure). opts is required (zero fields = defaults; opts->loop must be set). Returns
 * 0 and *out (free with sse_hub_free before the server is freed), SSE_EINVAL (a bad key or option)
 * or SSE_ENOMEM. On failure some routes may already point at the failed hub: close and free the
 * server without running it.
 */
SSE_API int sse_hub_new(sse_hub **out, sse_server *server, const sse_hub_options *opts);

/** One update to publish from inside the process (the demo publisher, embedders). */
typedef struct sse_hub_update {
    const char *const *topics; /* NUL-terminated; the first is canonical */
    size_t n_topics;
    const char *data; /* may be NULL; may hold several lines */
    size_t data_len;
    const char *id;   /* NULL = a generated urn:uuid */
    const char *type; /* NULL = none */
    long long retry;  /* < 0 = none */
    int is_private;
} sse_hub_update;

/**
 * Publish an update without HTTP and without authorization checks (the caller is trusted), but
 * with the same validation as over HTTP (topics in /.well-known/mercure are refused). The id used
 * is copied into id_out if not NULL. Returns 0 once the update is accepted (a synchronous store
 * without a bus: stored and fanned out; otherwise on its way, a later failure is logged),
 * SSE_EINVAL (invalid field or reserved topic), SSE_ELIMIT, SSE_EBUSY (the bus refused it), or
 * the store's error (not stored).
 */
SSE_API int sse_hub_publish(sse_hub *hub, const sse_hub_update *u, sse_buf *id_out);

/**
 * Replace the key set of role (SSE_HUB_PUBLISHER or SSE_HUB_SUBSCRIBER, one of
 * opts.jwks_roles) with the JSON Web Key Set json[0..len) (RFC 7517: {"keys":[...]}; at most
 * 1 MiB and 64 keys). Usable keys: RSA (2048 bits at least; "alg" RS256/384/512, RS256 when
 * absent), EC P-256/384/521 (ES256/384/512) and OKP Ed25519 (EdDSA); other keys ("oct", another
 * "use" or algorithm) are skipped. A token is then checked with the key its header names by
 * "kid" (a set of one key also serves tokens without kid), with that key's algorithm only. The
 * verified-token cache is emptied, so a key removed from the set stops admitting its tokens.
 * The requests of that role waiting for a refetch (see jwks_refresh) are then verified again
 * (from the loop, soon after this returns).
 * Call it from the loop's thread, never from inside jwks_refresh (a verification is running).
 * Returns 0; SSE_EINVAL (role not a key-set role, or a bad document or one without a usable
 * key: *why, if why is not NULL, a static reason; the old set stays); SSE_ENOMEM.
 */
SSE_API int sse_hub_set_jwks(sse_hub *hub, int role, const char *json, size_t len,
                             const char **why);

/**
 * The refetch of role's key set asked by jwks_refresh ended without a new set (the fetch failed
 * or sse_hub_set_jwks refused the document): the requests waiting for it are verified again
 * with the set in place (and refused, 401, if their kid is still unknown) without waiting for
 * jwks_wait_ms. From the loop's thread, not from inside jwks_refresh. Other roles are ignored.
 */
SSE_API void sse_hub_jwks_refresh_failed(sse_hub *hub, int role);

/**
 * Replace the JWT verification (a reload, e.g. on SIGHUP): a new verifier is built from
 * opts->publisher_key, publisher_alg, subscriber_key, subscriber_alg, issuer and issuers /
 * n_issuers, with the same meaning as in sse_hub_new (the other fields of opts are ignored;
 * the drafts, resource and key-set roles stay as created, and the key sets already installed
 * by sse_hub_set_jwks go on serving). It takes the old one's place at once: tokens are
 * verified with the new keys from the next request on (the verified-token cache starts
 * empty, so a token of a withdrawn key stops working), while the streams already open keep
 * the grants they were admitted with. Call it from the loop's thread. Returns 0; SSE_EINVAL
 * (a key that does not load or does not fit its algorithm, an unknown algorithm, an empty
 * issuer, no key at all on a hub without key sets, or a closing hub: the old verification
 * stays); SSE_ENOMEM (likewise). The keys are copied and never logged.
 */
SSE_API int sse_hub_set_auth(sse_hub *hub, const sse_hub_options *opts);

/**
 * Change, while running, the limits that may change live (a reload): only
 * opts->max_subscribers, max_update and replay_steps_max are read, with their sse_hub_new
 * meaning (0 = unlimited subscribers, the default size and budget). A lower max_subscribers
 * refuses new subscribers only (429): the streams already open stay. max_update applies to
 * the next publish; the replay budget at once, to the replays under way too (at their next
 * slice). From the loop's thread. Returns 0; SSE_EINVAL (hub or opts NULL, or, on a hub with
 * a bus, a max_update whose messages would not fit the bus as sized at start: nothing
 * changed).
 */
SSE_API int sse_hub_set_limits(sse_hub *hub, const sse_hub_options *opts);

/** The largest bus message a hub with these options makes (the bus's message bound). */
SSE_API size_t sse_hub_bus_max_message(const sse_hub_options *opts);

/** Counters for /metrics and tests. */
typedef struct sse_hub_stats {
    uint64_t subscribers;            /* open subscriber streams */
    uint64_t subscriptions;          /* selectors of open subscribers */
    uint64_t updates_total;          /* updates published */
    uint64_t deliveries_total;       /* events queued to subscribers (live + replay) */
    uint64_t replayed_total;         /* of which replayed from history */
    uint64_t publish_rejected_total; /* publish requests refused (4xx) */
    uint64_t subscribe_rejected_total;
    uint64_t expired_total; /* streams closed because their token expired */
    uint64_t history_count, history_bytes;
} sse_hub_stats;
SSE_API void sse_hub_get_stats(const sse_hub *hub, sse_hub_stats *out);

/**
 * Stop: close every subscriber stream and the timers, answer the publishers still waiting with
 * 503. Call before sse_server_close. No new update is submitted after it.
 */
SSE_API void sse_hub_close(sse_hub *hub);
/**
 * Free the hub (after the server's close completed, or before it starts). Accepts NULL. With an
 * asynchronous store or a bus, close them first (sse_store_close, sse_bus_close: what they have
 * in flight completes or fails, and their callbacks still reach the hub), then free the hub.
 */
SSE_API void sse_hub_free(sse_hub *hub);

#ifdef __cplusplus
}
#endif
#endif
