/*
 * hub_internal.h: the hub's object and its subscribers (internal to src/hub).
 *
 * hub.c owns the object; hub_publish.c the POST; hub_update.c the path of an update (bus, store,
 * fan-out); hub_subscribe.c the subscribe path, replay, expiry and subscription events;
 * hub_subscriber.c one subscriber; hub_http.c errors, tokens and the log; hub_api.c the
 * subscriptions API, metadata, /healthz and /metrics. Everything runs on the server's loop thread.
 */
#ifndef SSE__HUB_INTERNAL_H
#define SSE__HUB_INTERNAL_H

#include "hub/auth.h"
#include "hub/index.h"
#include "hub/selector.h"

#include <sse/hub.h>
#include <stdarg.h>
#include <stdint.h>

/* How a subscription was asked for: draft-07 "topic", or a draft-08 matcher type. */
enum { SSE__FORM_TOPIC = 0, SSE__FORM_EXACT = 1, SSE__FORM_URLPATTERN = 2 };

struct sse__hub_sub {      /* one selector of one subscriber */
    struct sse__isub isub; /* must be first: the index link */
    struct sse__hub_subscriber *owner;
    char *text; /* the selector as given (owned) */
    size_t len;
    int form; /* SSE__FORM_* */
};

/* A live update held for a subscriber whose replay is in flight. */
struct sse__hub_held {
    sse_frame *frame;
    uint64_t position; /* its store position (0: not stored, e.g. a subscription event) */
};

struct sse__hub_subscriber {
    struct sse__hub_subscriber *next, *prev; /* hub->subscribers */
    sse_hub *hub;
    sse_stream *st;                   /* NULL until the stream is open */
    const struct sse__grants *grants; /* NULL: anonymous */
    struct sse__selector **gsel;      /* compiled subscribe grants */
    size_t n_gsel;
    long long exp_ms;      /* token expiry (0 = none) */
    long long opened_ms;   /* when the stream opened (max_lifetime_ms) */
    uint64_t last_seq;     /* the last update delivered (dedupe across selectors) */
    uint64_t replayed_pos; /* store positions up to this reached it by its replay (or were the
                              asked id): a live update at or before it is a copy (an LMDB
                              follower worker can be relayed an update after a subscriber
                              resumed from it on another worker) */
    char *id;              /* subscriber IRI (sub claim or urn:uuid) */
    int indexed;
    struct sse__hub_held *pending; /* live updates matched while the replay is in flight */
    size_t n_pending, cap_pending;
    int pending_overflow;           /* more than SSE__HUB_PENDING_MAX: the subscribe fails */
    struct sse__hub_replay *replay; /* its replay while streamed (live updates are held) */
    size_t n_subs;
    struct sse__hub_sub *subs; /* n_subs entries */
};

enum { SSE__HUB_REASONS = 6 };
enum { SSE__HUB_PENDING_MAX = 4096 };
/* live updates held for a subscriber not yet open */ /* server close reasons 0..4, plus 5 =
                                                         token expired */

struct sse_hub {
    sse_server *server;
    uv_loop_t *loop;
    sse_hub_options o; /* copy; strings below are owned copies */
    char *publish_origins;
    char *resource;            /* draft-08 resource identifier (copy) or NULL */
    char *instance;            /* opts.instance (copy) or NULL */
    char *cookie_name;         /* opts.cookie_name (copy) or NULL */
    uint64_t jwks_asked_ms[2]; /* when a fresh key set was last asked for, per role (loop ms) */
    uint64_t jwks_refreshes;   /* key sets asked for (/metrics) */
    /* Requests whose token named an unknown kid, waiting for their role's refetch
       (hub_jwks_wait.c), per role: 0 publisher, 1 subscriber. */
    struct sse__hub_jwks_waiter *jwks_waiters[2];
    size_t jwks_n_waiting[2];
    int jwks_pending[2];       /* a refetch was asked and has not landed, failed or timed out */
    uv_timer_t *jwks_timer[2]; /* the wait's deadline, or 0 ms to wake the waiters (lazy) */
    int jwks_may_wait;         /* set during a verification: 1 + role of the unknown kid whose
                                  refetch is in flight (the request may wait for it) */
    int jwks_resuming;         /* re-running a waiter's handler: it does not wait again */
    int drafts;
    sse_store *store;
    int own_store;
    struct sse__auth *auth; /* NULL: no key configured */
    struct sse__selector_cache *selcache;
    struct sse__index *index;
    struct sse__hub_subscriber *subscribers;
    uv_timer_t *sweep; /* expiry sweep (separately allocated: freed on close) */
    uint64_t seq;      /* update sequence for delivery dedupe */
    int closing;
    sse_hub_stats st;
    uint64_t closed_by_reason[SSE__HUB_REASONS];
    uint64_t bus_origin;              /* random: tells this hub's bus messages */
    uint64_t bus_token;               /* last publish token sent on the bus */
    size_t bus_max;                   /* largest bus message */
    struct sse__hub_pending *pending; /* publishes waiting for their message to come back */
    struct sse__hub_inflight *inflight, *inflight_tail; /* handed to the store, in order */
    struct sse__hub_replay *replay_head, *replay_tail;  /* replays waiting for a slice */
    uv_idle_t *replay_idle; /* runs their slices, one per loop turn (separately allocated) */
    struct sse__hub_replay *replay_waiting; /* replays waiting for their subscriber to read
                                               (each with a drain callback on its stream) */
};

/* Log one line (printf format, truncated at 1 KiB) through opts.log, else to stderr (<= info). */
void sse__hub_log(sse_hub *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Core publish: validated fields in, encoded once, stored, fanned out. */
struct sse__hub_pub {
    const char *const *topics;
    size_t n_topics;
    const char *data;
    size_t data_len;
    int has_data;
    const char *id; /* NULL: generated */
    const char *type;
    long long retry;
    int is_private;
    int no_history; /* fanned out but never stored (subscription events): presence churn must
                       not evict updates from the replay history */
};
/*
 * The one entry of the update path (hub_update.c): encode once, then through the bus (when the
 * hub has one) and the store, then fan out. req (may be NULL) is the publisher to answer.
 * Returns SSE_DEFERRED (req is answered later), 0 (req answered already; without req: accepted),
 * or a negative error (nothing stored; req not answered). id_out (may be NULL) gets the id.
 */
int sse__hub_submit(sse_hub *h, const struct sse__hub_pub *p, sse_buf *id_out, sse_request *req);
/* Set up the bus side of a new hub (origin nonce, start receiving); 0 or an error. */
int sse__hub_bus_init(sse_hub *h);
/* Free the updates still waiting for a store that never reported (the hub is being freed). */
void sse__hub_update_free(sse_hub *h);
/* Answer the publishers still waiting (bus or store) with 503 (hub closing). */
void sse__hub_bus_close(sse_hub *h);

/* Free a subscriber: its selectors leave the index; everything it holds is released. */
void sse__hub_subscriber_free(sse_hub *h, struct sse__hub_subscriber *s);

/* Hold a live update for a subscriber whose replay is in flight (stream not open, or open
   and the replay streamed): sent after the replay. */
void sse__hub_hold(struct sse__hub_subscriber *s, sse_frame *frame, uint64_t position);

/* 1 if the subscriber may read an update with these topics (its grants match one). */
int sse__hub_can_read(const struct sse__hub_subscriber *s, const char *const *topics, size_t n);

/* The cookie draft-08 recommends (also read, and named in the metadata's mercure_cookie). */
#define SSE__HUB_COOKIE_08 "__Secure-mercure_access_token"

/*
 * The token of a request for the drafts enabled: Authorization: Bearer, then the draft-07
 * authorization query parameter, then the cookies. *from_cookie tells which. 1 if found, 0 if
 * none, -1 if the request carries a draft-08 access_token query parameter (refused: answer
 * 400 with sse__hub_token_request_error).
 */
int sse__hub_find_token(sse_hub *h, const sse_request *req, const char **tok, size_t *len,
                        int *from_cookie, sse_buf *scratch);

/* The error code for a 400 about the token's presentation: sse__hub_fail adds the challenge
   when given this very pointer. */
extern const char sse__hub_token_request_error[];
#define SSE__HUB_TOKEN_IN_URL                                                                      \
    "access tokens in the URL are not accepted: use the Authorization header or the cookie"

/* Answer an error with a short text reason (and the RFC 6750 challenge for 401/403). */
int sse__hub_fail(sse_request *req, int status, const char *error_code, const char *why);

/* Route handlers. */
int sse__hub_on_publish(sse_request *req, sse_hub *h);
int sse__hub_on_subscribe(sse_request *req, sse_hub *h);

/* hub_jwks_wait.c. The verifier met an unknown kid of role (0 publisher, 1 subscriber) and the
   hub just asked for a refetch (asked) or one is in flight: note that the request being
   verified may wait. */
void sse__hub_jwks_unknown_kid(sse_hub *h, int role, int asked);
/* After a refused verification (SSE_EAUTH): park req until its role's refetch lands, if the
   verification met an unknown kid with a refetch in flight and there is room; subscribe says
   which handler runs it again (0 publish, 1 subscribe). 1: parked (the handler returns
   SSE_DEFERRED), 0: answer now. Clears the note either way. */
int sse__hub_jwks_park(sse_hub *h, sse_request *req, int subscribe);
/* The role's set was replaced, or its refetch failed: the waiters are verified again soon. */
void sse__hub_jwks_wake(sse_hub *h, int role);
/* Hub close: waiters get 503, the timers close. */
void sse__hub_jwks_close(sse_hub *h);
int sse__hub_on_subscriptions_api(sse_request *req, void *ud);
int sse__hub_on_metrics(sse_request *req, void *ud);
int sse__hub_on_healthz(sse_request *req, void *ud);
int sse__hub_on_readyz(sse_request *req, void *ud); /* GET /readyz (hub_api.c) */
int sse__hub_on_metadata(sse_request *req, void *ud);
void sse__hub_sweep_cb(uv_timer_t *t);
/* The replay slices of one loop turn (the hub's replay_idle), and answering those still queued
   when the hub closes. */
void sse__hub_replay_turn(uv_idle_t *idle);
void sse__hub_replay_close(sse_hub *h);
/* The subscriber of a streamed replay goes: the replay is marked aborted and forgets it. */
void sse__hub_replay_detach(struct sse__hub_replay *r);
void sse__hub_close_subscribers(sse_hub *h);

/* Subscription event topic of sub (the draft form it was asked in) into b. */
int sse__hub_sub_topic(sse_buf *b, const struct sse__hub_sub *sub);
/* The same from its parts (a subscription of another node). */
int sse__hub_sub_topic_of(sse_buf *b, int form, const char *text, size_t len, const char *id,
                          size_t id_len);
/* The JSON-LD document of sub into b (with @context when top is set). */
int sse__hub_sub_json(sse_buf *b, const struct sse__hub_sub *sub, int active, int top);

/* hub_presence.c: the subscriptions of the other nodes (bus presence). */
struct sse__hub_remote_sub {
    int form; /* SSE__FORM_* */
    const char *text;
    size_t len;
    const char *id; /* the subscriber id (not NUL-terminated in a key) */
    size_t id_len;
    const char *json; /* its JSON object as its node writes it in the API (NUL-terminated) */
    size_t json_len;
};
/* Split a presence key into form, text and id (json left unset); 0 or -1 (not a key). */
int sse__hub_presence_decode(const char *key, size_t len, struct sse__hub_remote_sub *out);
/* Start sharing (after the bus started; nothing without `subscriptions` or bus presence). */
int sse__hub_presence_start(sse_hub *h);
/* s's subscriptions became active or inactive. */
void sse__hub_presence_update(sse_hub *h, const struct sse__hub_subscriber *s, int active);
/* List the other nodes' subscriptions: done(ud, subs, n, status) once, later (subs borrowed for
   the call; status < 0: partial). Returns 0, SSE_EUNSUPPORTED (no shared presence) or an error. */
int sse__hub_presence_list(sse_hub *h,
                           void (*done)(void *ud, struct sse__hub_remote_sub *subs, size_t n,
                                        int status),
                           void *ud);

#endif
