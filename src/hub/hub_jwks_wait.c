/*
 * hub_jwks_wait.c: publish and subscribe requests whose token names a kid the role's key set
 * lacks wait for the refetch of that set (asked through opts.jwks_refresh), then run again.
 *
 * Why: a key rotated in at the issuer reaches the hub only through a refetch, and the first
 * token signed with it arrives at the same moment. Refusing it (401) makes every client retry;
 * waiting for the fetch already in flight admits it. Bounded: only while a refetch the rate
 * limit allowed is in flight (a made-up kid after that is refused at once), at most
 * opts.jwks_wait_ms after it was asked, at most opts.jwks_max_waiting requests per role.
 *
 * A waiting request is resumed by running its handler again from the start (the request, its
 * headers and body stay valid while deferred) with jwks_resuming set, so it never waits twice.
 * Wake-ups go through a 0 ms timer: handlers never run inside sse_hub_set_jwks.
 *
 * Not owned here: deciding that a kid is unknown (auth.c), rate-limiting refetches (hub.c),
 * fetching (the embedder: src/cli/cli_jwks.c).
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"

#define JWKS_WAIT_MS_DEFAULT 10000 /* the CLI's fetch timeout */
#define JWKS_MAX_WAITING_DEFAULT 1024

struct sse__hub_jwks_waiter {
    sse_hub *h;
    sse_request *req;
    int role;      /* whose key set it waits for: 0 publisher, 1 subscriber */
    int subscribe; /* its handler: 0 publish, 1 subscribe */
    struct sse__hub_jwks_waiter *prev, *next;
};

static void unlink_waiter(struct sse__hub_jwks_waiter *w)
{
    sse_hub *h = w->h;
    if (w->prev)
        w->prev->next = w->next;
    else
        h->jwks_waiters[w->role] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    h->jwks_n_waiting[w->role]--;
}

static void timer_closed(uv_handle_t *t)
{
    sse__free(t);
}

/* The client left while waiting: the server frees the request after this returns. */
static void waiter_aborted(sse_request *req, void *ud)
{
    struct sse__hub_jwks_waiter *w = ud;
    (void)req;
    unlink_waiter(w);
    sse__free(w);
}

/* The refetch landed, failed or timed out: run every waiter's handler again. */
static void wake_role(uv_timer_t *t)
{
    sse_hub *h = t->data;
    int role = t == h->jwks_timer[0] ? 0 : 1;
    struct sse__hub_jwks_waiter *w;
    uv_timer_stop(t);
    h->jwks_pending[role] = 0;
    /* Resumed handlers cannot park again (jwks_resuming), so the list only shrinks. */
    while ((w = h->jwks_waiters[role]) && !h->closing) {
        sse_request *req = w->req;
        int subscribe = w->subscribe;
        unlink_waiter(w);
        sse__free(w);
        sse_request_on_abort(req, NULL, NULL);
        h->jwks_resuming = 1;
        if (!subscribe)
            (void)sse__hub_on_publish(req, h);
        else
            (void)sse__hub_on_subscribe(req, h);
        h->jwks_resuming = 0;
    }
}

void sse__hub_jwks_unknown_kid(sse_hub *h, int role, int asked)
{
    if (asked) {
        /* The deadline of this refetch's waiters; no timer (no memory): nobody waits. */
        uv_timer_t *t = h->jwks_timer[role];
        if (!t && !h->closing && (t = sse__calloc(1, sizeof(*t)))) {
            uv_timer_init(h->loop, t);
            t->data = h;
            h->jwks_timer[role] = t;
        }
        /* Had a wake just been scheduled (sse__hub_jwks_wake) and a refetch been allowed in the
           same loop turn, the earlier waiters now wait for this newer set: still bounded. */
        h->jwks_pending[role] = t != NULL;
        if (t)
            uv_timer_start(t, wake_role,
                           h->o.jwks_wait_ms ? h->o.jwks_wait_ms : JWKS_WAIT_MS_DEFAULT, 0);
    }
    if (h->jwks_pending[role] && !h->jwks_resuming)
        h->jwks_may_wait = 1 + role;
}

int sse__hub_jwks_park(sse_hub *h, sse_request *req, int subscribe)
{
    int role = h->jwks_may_wait - 1;
    size_t max = h->o.jwks_max_waiting ? h->o.jwks_max_waiting : JWKS_MAX_WAITING_DEFAULT;
    h->jwks_may_wait = 0;
    if (role < 0 || h->closing || !h->jwks_pending[role] || h->jwks_n_waiting[role] >= max)
        return 0;
    struct sse__hub_jwks_waiter *w = sse__calloc(1, sizeof(*w));
    if (!w)
        return 0;
    w->h = h;
    w->req = req;
    w->role = role;
    w->subscribe = subscribe;
    w->next = h->jwks_waiters[role];
    if (w->next)
        w->next->prev = w;
    h->jwks_waiters[role] = w;
    h->jwks_n_waiting[role]++;
    sse_request_on_abort(req, waiter_aborted, w);
    return 1;
}

void sse__hub_jwks_wake(sse_hub *h, int role)
{
    h->jwks_pending[role] = 0;
    if (!h->jwks_timer[role])
        return; /* never asked: nobody waits */
    if (h->jwks_waiters[role])
        uv_timer_start(h->jwks_timer[role], wake_role, 0, 0);
    else
        uv_timer_stop(h->jwks_timer[role]);
}

void sse__hub_jwks_close(sse_hub *h)
{
    for (int role = 0; role < 2; role++) {
        struct sse__hub_jwks_waiter *w;
        while ((w = h->jwks_waiters[role])) {
            sse_request *req = w->req;
            int subscribe = w->subscribe;
            unlink_waiter(w);
            sse__free(w);
            sse_request_on_abort(req, NULL, NULL);
            if (!subscribe)
                h->st.publish_rejected_total++;
            else
                h->st.subscribe_rejected_total++;
            sse__hub_fail(req, 503, NULL, "shutting down");
        }
        h->jwks_pending[role] = 0;
        if (h->jwks_timer[role]) {
            uv_timer_stop(h->jwks_timer[role]);
            uv_close((uv_handle_t *)h->jwks_timer[role], timer_closed);
            h->jwks_timer[role] = NULL;
        }
    }
}
