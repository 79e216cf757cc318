/*
 * hub_subscribe.c: GET /.well-known/mercure — the subscribe path of the hub.
 *
 * Reads the selectors (draft-07 `topic`, draft-08 `match` / `match_exact` / `match_urlpattern`,
 * with the earlier snapshot's `matchExact` / `matchURLPattern` kept as aliases),
 * the token and the last event id; compiles the selectors through the shared cache and the
 * token's subscribe grants once; replays the missed history (private updates re-checked); sets
 * the Last-Event-ID response header; opens the stream; indexes the subscriptions; publishes the
 * subscription events. Also the expiry sweep (one timer for every subscriber) and the close path.
 *
 * Not owned here: the fan-out (hub.c), the HTTP server, JWT checks (auth.c).
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <limits.h>
#include <sse/format.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int sse__hub_sub_topic_of(sse_buf *b, int form, const char *text, size_t len, const char *id,
                          size_t id_len)
{
    int rc = sse_buf_append_str(b, "/.well-known/mercure/subscriptions/");
    if (!rc && form != SSE__FORM_TOPIC)
        rc = sse_buf_append_str(b, form == SSE__FORM_URLPATTERN ? "urlpattern/" : "exact/");
    if (!rc)
        rc = sse__hub_pct_encode(b, text, len);
    if (!rc)
        rc = sse_buf_append_byte(b, '/');
    if (!rc)
        rc = sse__hub_pct_encode(b, id, id_len);
    return rc;
}

int sse__hub_sub_topic(sse_buf *b, const struct sse__hub_sub *sub)
{
    return sse__hub_sub_topic_of(b, sub->form, sub->text, sub->len, sub->owner->id,
                                 strlen(sub->owner->id));
}

/* The payload for sub: draft-07 mercure.payload; draft-08 the first matching subscribe detail. */
static const char *sub_payload(const struct sse__hub_sub *sub)
{
    const struct sse__hub_subscriber *s = sub->owner;
    const struct sse__grants *g = s->grants;
    if (!g)
        return NULL;
    if (g->draft != SSE__DRAFT_08 || !g->subscribe_payloads)
        return g->payload_json;
    for (size_t i = 0; i < s->n_gsel && i < g->n_subscribe; i++)
        if (sse__selector_match(s->gsel[i], sub->text, sub->len))
            return g->subscribe_payloads[i];
    return NULL;
}

int sse__hub_sub_json(sse_buf *b, const struct sse__hub_sub *sub, int active, int top)
{
    int d08 = sub->form != SSE__FORM_TOPIC;
    int rc = sse_buf_append_byte(b, '{');
    if (!rc && top && !d08) /* draft-07: JSON-LD; draft-08: plain JSON */
        rc = sse_buf_append_str(b, "\"@context\":\"https://mercure.rocks/\",");
    if (!rc)
        rc = sse_buf_append_str(b, "\"id\":");
    if (!rc) {
        sse_buf t;
        sse_buf_init(&t, 0);
        rc = sse__hub_sub_topic(&t, sub);
        if (!rc)
            rc = sse__hub_json_str(b, t.data, t.len);
        sse_buf_free(&t);
    }
    if (!rc)
        rc = sse_buf_append_str(b, d08 ? ",\"type\":\"subscription\","
                                       : ",\"type\":\"Subscription\",");
    if (!rc && !d08) {
        rc = sse_buf_append_str(b, "\"topic\":");
    } else if (!rc) { /* the matcher type's canonical (lower-case) name */
        rc = sse_buf_printf(b, "\"match_type\":\"%s\",\"match\":",
                            sub->form == SSE__FORM_URLPATTERN ? "urlpattern" : "exact");
    }
    if (!rc)
        rc = sse__hub_json_str(b, sub->text, sub->len);
    if (!rc)
        rc = sse_buf_append_str(b, ",\"subscriber\":");
    if (!rc)
        rc = sse__hub_json_str(b, sub->owner->id, strlen(sub->owner->id));
    if (!rc)
        rc = sse_buf_printf(b, ",\"active\":%s", active ? "true" : "false");
    const char *payload = sub_payload(sub);
    if (!rc && payload) {
        rc = sse_buf_append_str(b, ",\"payload\":");
        if (!rc)
            rc = sse_buf_append_str(b, payload);
    }
    if (!rc)
        rc = sse_buf_append_byte(b, '}');
    return rc;
}

static void publish_sub_events(sse_hub *h, struct sse__hub_subscriber *s, int active)
{
    if (!h->o.subscriptions)
        return;
    sse__hub_presence_update(h, s, active);
    for (size_t i = 0; i < s->n_subs; i++) {
        sse_buf topic, doc;
        sse_buf_init(&topic, 0);
        sse_buf_init(&doc, 0);
        if (!sse__hub_sub_topic(&topic, &s->subs[i]) &&
            !sse__hub_sub_json(&doc, &s->subs[i], active, 1)) {
            const char *topics[1] = {sse_buf_cstr(&topic)};
            /* draft-08: SSE event type "mercure", which publishers may not use */
            const char *type = s->subs[i].form != SSE__FORM_TOPIC ? "mercure" : NULL;
            struct sse__hub_pub p = {topics, 1, doc.data, doc.len, 1, NULL, type, -1, 1, 1};
            int rc = sse__hub_submit(h, &p, NULL, NULL);
            if (rc)
                sse__hub_log(h, SSE_LOG_WARN, "subscription event: %s", sse_strerror(rc));
        }
        sse_buf_free(&topic);
        sse_buf_free(&doc);
    }
}

/* ---------------------------------------------------------------- close and expiry */

static void on_stream_close(sse_stream *st, int reason, void *ud)
{
    struct sse__hub_subscriber *s = sse_stream_get_data(st);
    sse_hub *h = ud;
    if (!s)
        return; /* the hub was freed first */
    s->st = NULL;
    if (reason >= 0 && reason < SSE__HUB_REASONS)
        h->closed_by_reason[reason]++;
    for (size_t i = 0; i < s->n_subs; i++)
        sse__index_remove(h->index, &s->subs[i].isub);
    h->st.subscribers--;
    h->st.subscriptions -= s->n_subs;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->subscribers = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (!h->closing)
        publish_sub_events(h, s, 0);
    sse__hub_subscriber_free(h, s);
}

void sse__hub_sweep_cb(uv_timer_t *t)
{
    sse_hub *h = t->data;
    /* Close no later than exp: anything expiring before the next sweep is closed now. */
    long long limit = sse__now_ms() + h->o.expiry_sweep_ms;
    long long old = h->o.max_lifetime_ms ? limit - h->o.expiry_sweep_ms - h->o.max_lifetime_ms : 0;
    struct sse__hub_subscriber *next;
    /* next is read first: should a close ever run its callback at once, s would be gone. */
    for (struct sse__hub_subscriber *s = h->subscribers; s; s = next) {
        next = s->next;
        if (!s->st || s->exp_ms < 0)
            continue;
        if (s->exp_ms && s->exp_ms <= limit) {
            s->exp_ms = -1; /* close once */
            h->st.expired_total++;
            h->closed_by_reason[5]++;
            sse__hub_log(h, SSE_LOG_INFO, "subscriber %s: token expired, closing", s->id);
            sse_stream_close(s->st);
        } else if (old && s->opened_ms <= old) {
            s->exp_ms = -1;
            sse__hub_log(h, SSE_LOG_DEBUG, "subscriber %s: maximum lifetime reached, closing",
                         s->id);
            sse_stream_close(s->st);
        }
    }
}

void sse__hub_close_subscribers(sse_hub *h)
{
    struct sse__hub_subscriber *next;
    for (struct sse__hub_subscriber *s = h->subscribers; s; s = next) {
        next = s->next;
        if (s->st)
            sse_stream_close(s->st);
    }
}

/* ---------------------------------------------------------------- replay */

/*
 * One subscribe and its replay. The replay goes in two phases:
 *
 * 1. Before the stream opens: the first slice of the replay (at most SLICE_ENTRIES entries, so
 *    its frames are few) is kept in `frames`, because the answer depends on it: the store says
 *    whether the asked id is known, then the backward scan finds the Last-Event-ID response
 *    header (and whether the asked id is a private update hidden from this subscriber). These
 *    may complete later (a disk or network store); the request is then answered from the
 *    store's callback (SSE_DEFERRED).
 * 2. Once the stream is open: the rest is streamed, one slice per loop turn, each matching
 *    entry sent at once (nothing of the history is collected). A slice also stops when the
 *    subscriber's queue passes REPLAY_QUEUE_HIGH; the replay then waits, parked on the hub's
 *    wait list with a drain callback armed on the stream (sse_stream_on_drain), until the
 *    server reports the queue at REPLAY_QUEUE_LOW: so a subscriber that reads slowly (or not at
 *    all) costs at most that much hub memory however long its replay, instead of being dropped
 *    for passing the server's queue bound, and a stalled replay costs no CPU (nothing polls).
 *
 * The matching budget (replay_steps_max, --replay-budget) still bounds the work of one
 * subscribe request: spent within the first slice, the answer is 429; spent later, the stream is
 * closed (its subscriber may reconnect with the last id it got, as after any close).
 *
 * Throughout, the subscriber is indexed, and live updates that match are held
 * (sse__hub_hold: s->replay is set) and sent after the replay, those the replay already sent
 * (by store position) left out, so that nothing published during the replay is lost or sent
 * twice. r and its subscriber point at each other (s->replay, r->s) until either goes: a stream
 * that closes mid-replay marks r aborted and r is freed where it waits (the store's callback,
 * the slice queue; one parked on the wait list is moved to the slice queue, since its drain
 * callback will not come), never touching the subscriber again.
 */
struct sse__hub_replay {
    sse_hub *h;
    struct sse__hub_subscriber *s; /* NULL once the subscriber is gone (aborted) */
    sse_request *req;              /* until the stream opens */
    sse_frame **frames;            /* phase 1: the first slice's matching frames */
    size_t n, cap;
    size_t sent; /* frames replayed to the stream */
    int err;
    int found;
    char *want; /* the asked id (NULL: none asked; "earliest" included) */
    size_t want_len;
    int earliest;
    char *visible_copy; /* Last-Event-ID response: newest visible at/before the asked id */
    int scanned;        /* entries seen by the backward scan (the first is the asked id) */
    int hidden;         /* the asked id is a private update this subscriber cannot read */
    int in_handler;     /* still inside the route handler (answer synchronously) */
    int finished;       /* the request was answered (or aborted) */
    int aborted;        /* the connection closed (request aborted or stream closed) */
    int streaming;      /* phase 2: the stream is open and the replay goes on (owns r) */
    int *answered;      /* while in the handler: set to 2 once r belongs to the streamed replay */
    /* Slices: a replay stops when its slice's matching budget is spent and goes on from the
       next position on a later loop turn (the hub's replay queue), so that no replay, however
       costly its selectors, holds the loop. */
    struct sse__hub_replay *next; /* the hub's queue of replays waiting for their next slice, or
                                     its list of replays waiting for their stream to drain */
    struct sse__hub_replay *prev; /* that list (parked): unlinked when its stream closes */
    int parked;                   /* on the wait list, its stream's drain callback armed */
    uint64_t pos;                 /* position of the last entry visited */
    size_t slice_steps;           /* matching steps spent in the current slice */
    size_t slice_entries;         /* entries visited in the current slice */
    uint64_t total_steps;         /* matching steps spent by this replay in all */
    int more;                     /* stopped at the end of a slice: not done */
    int full;                     /* stopped because the subscriber's queue is full */
    int continuing;               /* a later slice (done's found reports a gap, not the id) */
};

/* One slice: at most this many automaton steps or entries, then the next replay's turn. */
enum { SLICE_STEPS = 1 << 14, SLICE_ENTRIES = 256 };
/* Flow control of a streamed replay: stop sending above HIGH bytes queued for the subscriber,
   go on once the server reports it drained to LOW. HIGH stays well under the server's default
   stream_queue_max (4 MiB), past which a stream is dropped as too slow. */
enum { REPLAY_QUEUE_HIGH = 256 * 1024, REPLAY_QUEUE_LOW = 64 * 1024 };

/* Whether the entry matches one of the subscriber's selectors; the steps spent go to *steps. */
static int entry_matches(const struct sse__hub_subscriber *s, const sse_store_entry *e,
                         size_t *steps)
{
    for (size_t i = 0; i < s->n_subs; i++)
        for (size_t k = 0; k < e->n_topics; k++) {
            size_t n = 0;
            int m = sse__selector_match_steps(s->subs[i].isub.sel, e->topics[k],
                                              strlen(e->topics[k]), &n);
            *steps += n + 1; /* + 1: an exact or wildcard selector costs a comparison */
            if (m)
                return 1;
        }
    return 0;
}

static int entry_visible(const struct sse__hub_subscriber *s, const sse_store_entry *e)
{
    return !e->is_private || sse__hub_can_read(s, e->topics, e->n_topics);
}

static int replay_each(void *ud, const sse_store_entry *e)
{
    struct sse__hub_replay *r = ud;
    if (r->aborted)
        return 1; /* r->s may be gone: touch nothing */
    /* A store that cannot go on from a position (no replay_from) replays in one piece. */
    int sliced = r->h->store->ops->replay_from != NULL;
    if (sliced && r->streaming && sse_stream_queued_bytes(r->s->st) > REPLAY_QUEUE_HIGH) {
        r->more = r->full = 1; /* wait for the subscriber to read; go on from this entry */
        return 1;
    }
    if (sliced && (r->slice_steps >= SLICE_STEPS || r->slice_entries >= SLICE_ENTRIES)) {
        r->more = 1; /* the next slice starts at this entry */
        return 1;
    }
    size_t steps = 0;
    r->pos = e->position;
    r->slice_entries++;
    int m = entry_matches(r->s, e, &steps);
    r->slice_steps += steps;
    r->total_steps += steps;
    if (r->h->o.replay_steps_max && r->total_steps > r->h->o.replay_steps_max) {
        r->err = SSE_ELIMIT; /* this request has had its share of the loop */
        return 1;
    }
    if (!m || !entry_visible(r->s, e))
        return 0;
    if (r->streaming) { /* phase 2: straight to the subscriber */
        int rc = sse_stream_send_frame(r->s->st, e->frame);
        if (rc) { /* closed, or dropped by the server's queue bound: on_stream_close follows */
            r->err = rc;
            return 1;
        }
        r->sent++;
        r->h->st.deliveries_total++;
        r->h->st.replayed_total++;
        return 0;
    }
    if (r->n == r->cap) { /* phase 1: at most one slice of frames */
        size_t nc = r->cap ? r->cap * 2 : 16;
        sse_frame **a = sse__realloc(r->frames, nc * sizeof(*a));
        if (!a) {
            r->err = SSE_ENOMEM;
            return 1;
        }
        r->frames = a;
        r->cap = nc;
    }
    r->frames[r->n++] = sse_frame_ref(e->frame);
    return 0;
}

static void subscribe_finish(struct sse__hub_replay *r);
static void replay_step(struct sse__hub_replay *r);
static void replay_end(struct sse__hub_replay *r);
static void replay_slice(struct sse__hub_replay *r);

static void replay_done(void *ud, int status, int found)
{
    struct sse__hub_replay *r = ud;
    if (status && !r->err)
        r->err = status;
    if (!r->continuing)
        r->found = found;
    else if (!found && !r->aborted) /* trimmed while the replay went on: go on with the rest */
        sse__hub_log(r->h, SSE_LOG_WARN, "subscriber %s: history trimmed during its replay",
                     r->s->id);
}

static void frames_drop(struct sse__hub_replay *r)
{
    for (size_t i = 0; i < r->n; i++)
        sse_frame_unref(r->frames[i]);
    r->n = 0;
}

static void replay_free(struct sse__hub_replay *r)
{
    if (r->s && r->s->replay == r)
        r->s->replay = NULL;
    frames_drop(r);
    sse__free(r->frames);
    sse__free(r->visible_copy);
    sse__free(r->want);
    sse__free(r);
}

/* Queue r for its next slice on a later loop turn. */
static void replay_defer(struct sse__hub_replay *r)
{
    sse_hub *h = r->h;
    r->next = NULL;
    if (h->replay_tail)
        h->replay_tail->next = r;
    else
        h->replay_head = r;
    h->replay_tail = r;
    uv_idle_start(h->replay_idle, sse__hub_replay_turn);
}

/* Take r off the wait list (it is parked). */
static void wait_unlink(struct sse__hub_replay *r)
{
    sse_hub *h = r->h;
    if (r->prev)
        r->prev->next = r->next;
    else
        h->replay_waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    r->parked = 0;
}

/* The server reports a parked replay's stream drained to LOW: its next slice, now. */
static void replay_drained(sse_stream *st, void *data)
{
    (void)st;
    struct sse__hub_subscriber *s = data; /* the stream's data: NULL once the hub is freed */
    struct sse__hub_replay *r = s ? s->replay : NULL;
    if (!r || !r->parked)
        return;
    wait_unlink(r);
    replay_step(r);
}

/*
 * Park r until its subscriber's queue drains to LOW: the server calls replay_drained then. A
 * queue already there goes on at the next turn; a stream that takes no more frames (closing)
 * or a drain that cannot be armed ends the replay (the subscriber reconnects from its last id).
 */
static void replay_wait(struct sse__hub_replay *r)
{
    sse_hub *h = r->h;
    int rc = sse_stream_on_drain(r->s->st, REPLAY_QUEUE_LOW, replay_drained);
    if (rc == SSE_DRAINED) {
        replay_defer(r);
        return;
    }
    if (rc) {
        r->err = rc;
        replay_end(r);
        return;
    }
    r->parked = 1;
    r->prev = NULL;
    r->next = h->replay_waiting;
    if (r->next)
        r->next->prev = r;
    h->replay_waiting = r;
}

/*
 * The streamed replay has ended (or failed, or its stream closed): send the held live updates
 * the replay did not reach, and the subscriber is live from now on. Frees r.
 */
static void replay_end(struct sse__hub_replay *r)
{
    sse_hub *h = r->h;
    struct sse__hub_subscriber *s = r->s;
    if (r->aborted || !s) {
        replay_free(r);
        return;
    }
    s->replay = NULL;
    if (h->closing) {
        /* the hub closes this stream with the others */
    } else if (r->err || s->pending_overflow) {
        /* The stream is open: the only way to say so is to close it; the subscriber reconnects
           with the last id it got, and the replay goes on from there. */
        sse__hub_log(h, SSE_LOG_WARN, "subscriber %s: replay stopped after %zu update(s): %s",
                     s->id, r->sent,
                     s->pending_overflow    ? "too many live updates held during it"
                     : r->err == SSE_ELIMIT ? "too costly"
                                            : sse_strerror(r->err));
        if (s->st)
            sse_stream_close(s->st);
    } else {
        for (size_t i = 0; i < s->n_pending; i++) {
            /* Held live while the replay ran: the replay already sent what it visited
               (positions up to r->pos), whatever frame object the store made of it. */
            struct sse__hub_held *hd = &s->pending[i];
            if ((!hd->position || hd->position > r->pos) &&
                sse_stream_send_frame(s->st, hd->frame) == 0)
                h->st.deliveries_total++;
        }
        sse__hub_log(h, SSE_LOG_DEBUG, "subscriber %s: %zu replayed", s->id, r->sent);
        s->replayed_pos = r->pos;
    }
    for (size_t i = 0; i < s->n_pending; i++)
        sse_frame_unref(s->pending[i].frame);
    s->n_pending = 0;
    replay_free(r);
}

/* The next slice of a streamed replay, or its end. */
static void replay_step(struct sse__hub_replay *r)
{
    sse_hub *h = r->h;
    if (r->aborted || h->closing || r->err || !r->more || !r->s->st || r->s->pending_overflow) {
        if (h->closing && !r->err)
            r->err = SSE_ECLOSED;
        replay_end(r);
        return;
    }
    if (r->full) {
        r->full = 0;
        if (sse_stream_queued_bytes(r->s->st) > REPLAY_QUEUE_LOW) {
            r->full = 1;
            replay_wait(r);
            return;
        }
    }
    r->more = 0;
    r->continuing = 1;
    r->slice_steps = r->slice_entries = 0;
    replay_slice(r);
}

static int scan_each(void *ud, const sse_store_entry *e)
{
    struct sse__hub_replay *r = ud;
    if (r->aborted)
        return 1;
    if (!entry_visible(r->s, e)) {
        r->hidden |= r->scanned++ == 0;
        return r->hidden; /* the asked id itself: no need to look further */
    }
    if (r->scanned == 0 && e->position > r->pos)
        r->pos = e->position; /* the asked id: the subscriber has it (held copies are dropped) */
    r->scanned++;
    r->visible_copy = sse__strndup(e->id, e->id_len);
    if (!r->visible_copy)
        r->err = SSE_ENOMEM;
    return 1;
}

/* Both phase-1 steps report through these, then the subscribe goes on (now or later). */
static void after_scan(void *ud, int status, int found)
{
    struct sse__hub_replay *r = ud;
    (void)found;
    if (status && !r->err)
        r->err = status;
    if (r->hidden) {
        /* An id the subscriber cannot read is answered exactly as an unknown one (nothing
           replayed, "earliest"): otherwise its existence could be probed. */
        frames_drop(r);
        r->more = 0;
        r->pos = 0; /* nothing was sent: every held live update goes */
        r->found = 0;
        sse__free(r->visible_copy);
        r->visible_copy = NULL;
    }
    subscribe_finish(ud);
}

static void after_replay(void *ud, int status, int found)
{
    struct sse__hub_replay *r = ud;
    replay_done(ud, status, found);
    if (r->streaming) { /* a phase-2 slice */
        if (r->more && !r->aborted && !r->err && !r->h->closing)
            r->full ? replay_wait(r) : replay_defer(r);
        else
            replay_end(r);
        return;
    }
    if (!r->err && r->found && !r->earliest && !r->aborted) {
        int rc = sse_store_scan_back(r->h->store, r->want, r->want_len, r->h->o.replay_scan,
                                     scan_each, after_scan, r);
        if (rc == SSE_EUNSUPPORTED) /* a store without scan: the asked id is our best answer */
            r->visible_copy = sse__strndup(r->want, r->want_len);
        else if (rc)
            r->err = rc;
        if (!rc)
            return; /* after_scan goes on */
    }
    subscribe_finish(r);
}

void sse__hub_replay_turn(uv_idle_t *idle)
{
    sse_hub *h = idle->data;
    /* One slice for each replay waiting now; those re-queued wait for the next turn. */
    struct sse__hub_replay *r = h->replay_head, *last = h->replay_tail;
    h->replay_head = h->replay_tail = NULL;
    uv_idle_stop(idle);
    while (r) {
        struct sse__hub_replay *next = r == last ? NULL : r->next;
        replay_step(r);
        r = next;
    }
}

/* A later slice: from the position reached (the store calls after_replay). */
static void replay_slice(struct sse__hub_replay *r)
{
    int rc = sse_store_replay_from(r->h->store, r->pos, replay_each, after_replay, r);
    if (rc) {
        if (!r->err)
            r->err = rc;
        replay_end(r);
    }
}

void sse__hub_replay_detach(struct sse__hub_replay *r)
{
    r->aborted = 1;
    r->s = NULL;
    if (r->parked) { /* its drain callback will not come: end it at the next turn */
        wait_unlink(r);
        replay_defer(r);
    }
}

void sse__hub_replay_close(sse_hub *h)
{
    struct sse__hub_replay *r = h->replay_head;
    h->replay_head = h->replay_tail = NULL;
    while (r) { /* streamed ones end (their stream closes with the hub's subscribers) */
        struct sse__hub_replay *next = r->next;
        replay_end(r);
        r = next;
    }
    while ((r = h->replay_waiting)) {
        wait_unlink(r);
        if (r->s && r->s->st) /* the subscriber outlives r: its stream must not call back */
            sse_stream_on_drain(r->s->st, 0, NULL);
        replay_end(r);
    }
}

static void on_abort(sse_request *req, void *ud)
{
    struct sse__hub_replay *r = ud;
    (void)req;
    r->aborted = 1;
}

/*
 * End of phase 1: answer the subscribe. Refusals, or the Last-Event-ID header, the stream, the
 * first slice; then the streamed rest of the replay (phase 2), or the held updates at once.
 */
static void subscribe_finish(struct sse__hub_replay *r)
{
    sse_hub *h = r->h;
    struct sse__hub_subscriber *s = r->s;
    const char *why = NULL;
    if (r->finished)
        return;
    r->finished = 1;
    if (r->aborted || h->closing) {
        h->st.subscribe_rejected_total++;
        sse__hub_subscriber_free(h, s);
        r->s = NULL;
        if (!r->aborted)
            sse__hub_fail(r->req, 503, NULL, "shutting down");
        goto out;
    }
    if (r->err == SSE_ELIMIT) {
        h->st.subscribe_rejected_total++;
        sse__hub_subscriber_free(h, s);
        r->s = NULL;
        sse_request_add_header(r->req, "Retry-After", "10");
        sse__hub_fail(r->req, 429, NULL,
                      "the replay is too costly: use fewer or simpler selectors, or a more "
                      "recent Last-Event-ID");
        goto out;
    }
    if (r->err || s->pending_overflow) {
        why = r->err == SSE_ENOMEM ? "out of memory" : "history unavailable";
        goto fail;
    }
    /* The cursor the replay resumed from: draft-08 names the response field
       Mercure-Last-Event-ID (Last-Event-ID is a request field); draft-07 clients read
       Last-Event-ID, kept in every mode. */
    const char *cursor = r->visible_copy ? r->visible_copy : "earliest";
    if (r->want && (sse_request_add_header(r->req, "Last-Event-ID", cursor) ||
                    ((h->drafts & SSE_HUB_DRAFT_08) &&
                     sse_request_add_header(r->req, "Mercure-Last-Event-ID", cursor)))) {
        why = "out of memory";
        goto fail;
    }
    if (h->instance && sse_request_add_header(r->req, "X-Ssehub-Worker", h->instance)) {
        why = "out of memory";
        goto fail;
    }
    sse_stream *st;
    if (sse_request_open_stream(r->req, &st)) {
        why = "cannot open the stream";
        goto fail;
    }
    r->req = NULL;
    s->st = st;
    s->opened_ms = sse__now_ms();
    sse_stream_set_data(st, s);
    sse_stream_on_close(st, on_stream_close, h);
    s->next = h->subscribers;
    if (h->subscribers)
        h->subscribers->prev = s;
    h->subscribers = s;
    h->st.subscribers++;
    h->st.subscriptions += s->n_subs;
    for (size_t i = 0; i < r->n; i++)
        if (sse_stream_send_frame(st, r->frames[i]) == 0) {
            r->sent++;
            h->st.deliveries_total++;
            h->st.replayed_total++;
        }
    frames_drop(r);
    sse__hub_log(h, SSE_LOG_DEBUG, "subscriber %s: %zu selector(s), %s, replay %s", s->id,
                 s->n_subs, s->grants ? "token" : "anonymous", r->more ? "streaming" : "done");
    /* Phase 2: r now belongs to the replay (freed when it ends, maybe before this returns); the
       subscription events are held like any live update, and sent after the replay. */
    r->streaming = 1;
    s->replay = r;
    if (r->answered)
        *r->answered = 2; /* (the handler's local: cleared at once) */
    r->answered = NULL;
    publish_sub_events(h, s, 1);
    if (r->more)
        replay_step(r);
    else
        replay_end(r);
    return;

fail:
    h->st.subscribe_rejected_total++;
    sse__hub_subscriber_free(h, s);
    r->s = NULL;
    sse__hub_fail(r->req, 503, NULL, why);
out:
    if (!r->in_handler)
        replay_free(r);
}

/* ---------------------------------------------------------------- GET /.well-known/mercure */

struct sel_arg {
    char *text;
    size_t len;
    int form;
};

static int is_match_family(const char *n)
{
    return !strncasecmp(n, "match", 5);
}

static int compile_grants(sse_hub *h, struct sse__hub_subscriber *s)
{
    const struct sse__grants *g = s->grants;
    if (!g || !g->n_subscribe)
        return 0;
    s->gsel = sse__calloc(g->n_subscribe, sizeof(*s->gsel));
    if (!s->gsel)
        return SSE_ENOMEM;
    for (size_t i = 0; i < g->n_subscribe; i++) {
        int kind = g->subscribe_kinds ? g->subscribe_kinds[i] : g->kind;
        int rc = sse__selector_cache_get(h->selcache, g->subscribe[i], strlen(g->subscribe[i]),
                                         kind, &s->gsel[s->n_gsel]);
        if (rc == SSE_ENOMEM || rc == SSE_EBUSY)
            return rc;
        if (rc)
            return SSE_EAUTH; /* a grant that does not compile: the token is invalid */
        s->n_gsel++;
    }
    return 0;
}

/* Why a subscribe is refused: the status, the RFC 6750 error code (may be NULL), the text. */
struct refusal {
    int status;
    const char *errcode;
    const char *why;
};

static int refuse(struct refusal *f, int status, const char *errcode, const char *why)
{
    f->status = status;
    f->errcode = errcode;
    f->why = why;
    return -1;
}

/* What a subscribe request asks for: its selectors and the id to resume after. */
struct ask {
    struct sel_arg *args; /* max_selectors entries */
    size_t nargs;
    sse_buf lei; /* Last-Event-ID (header, else the lastEventID query parameter) */
    int have_lei;
};

/* The selectors and the last event id of the query string and headers. 0 or -1 (f set). */
static int read_ask(sse_hub *h, sse_request *req, struct ask *a, struct refusal *f)
{
    sse_buf name, value;
    int rc = -1;
    sse_buf_init(&name, 256);
    /* Values also carry tokens (authorization / access_token): room for the largest. */
    sse_buf_init(&value, (h->o.max_selector_len > 65536 ? h->o.max_selector_len : 65536) + 1);
    const char *q = sse_request_query(req);
    const char *cur = q ? q : "", *end = cur + strlen(cur);
    for (;;) {
        int rr = sse_form_next(&cur, end, &name, &value);
        if (rr == 0)
            break;
        const char *n = rr > 0 ? sse_buf_cstr(&name) : "";
        if (rr == SSE_ELIMIT) {
            refuse(f, 400, "invalid_request", "a selector or parameter is too long");
            goto out;
        }
        if (rr < 0) {
            refuse(f, 400, "invalid_request", "malformed query string");
            goto out;
        }
        int form = -1;
        if (!strcmp(n, "topic") && (h->drafts & SSE_HUB_DRAFT_07)) {
            form = SSE__FORM_TOPIC;
        } else if ((h->drafts & SSE_HUB_DRAFT_08) && is_match_family(n)) {
            /* case-sensitive names; the camelCase ones are the earlier snapshot's (aliases) */
            if (!strcmp(n, "match") || !strcmp(n, "match_exact") || !strcmp(n, "matchExact")) {
                form = SSE__FORM_EXACT;
            } else if (!strcmp(n, "match_urlpattern") || !strcmp(n, "matchURLPattern")) {
                form = SSE__FORM_URLPATTERN;
            } else {
                refuse(f, 400, "invalid_request", "unknown matcher type");
                goto out;
            }
        } else if (!strcmp(n, "lastEventID") || !strcmp(n, "last_event_id")) {
            if (!a->have_lei) { /* the header, read below, takes precedence anyway */
                sse_buf_reset(&a->lei);
                int ar = value.len ? sse_buf_append(&a->lei, value.data, value.len) : 0;
                if (ar == SSE_ELIMIT) { /* over the 4096 bytes of any id */
                    refuse(f, 400, "invalid_request", "lastEventID too long");
                    goto out;
                } else if (ar) {
                    refuse(f, 503, NULL, "out of memory");
                    goto out;
                }
                a->have_lei = 1;
            }
            continue;
        } else {
            continue; /* authorization / access_token and anything else */
        }
        if (a->nargs >= h->o.max_selectors) {
            refuse(f, 400, "invalid_request", "too many selectors");
            goto out;
        }
        if (value.len > h->o.max_selector_len) {
            refuse(f, 400, "invalid_request", "selector too long");
            goto out;
        }
        if (!value.len || !sse__hub_text_ok(value.data, value.len)) {
            refuse(f, 400, "invalid_request",
                   "invalid selector (empty, not UTF-8 or control characters)");
            goto out;
        }
        struct sel_arg *arg = &a->args[a->nargs];
        if (!(arg->text = sse__strndup(value.data, value.len))) {
            refuse(f, 503, NULL, "out of memory");
            goto out;
        }
        arg->len = value.len;
        arg->form = form;
        a->nargs++;
    }
    if (!a->nargs) {
        refuse(f, 400, "invalid_request",
               h->drafts == SSE_HUB_DRAFT_08   ? "missing \"match\" parameter"
               : h->drafts == SSE_HUB_DRAFT_07 ? "missing \"topic\" parameter"
                                               : "missing \"topic\" or \"match\" parameter");
        goto out;
    }
    const char *hdr = sse_request_header(req, "Last-Event-ID");
    if (!hdr)
        hdr = sse_request_header(req, "Mercure-Last-Event-ID");
    if (hdr) {
        sse_buf_reset(&a->lei);
        if (sse_buf_append_str(&a->lei, hdr)) {
            refuse(f, 400, "invalid_request", "Last-Event-ID too long");
            goto out;
        }
        a->have_lei = 1;
    }
    rc = 0;
out:
    sse_buf_free(&name);
    sse_buf_free(&value);
    return rc;
}

/* The request's token checked for subscribing: *g (NULL: anonymous). 0, -1 (f set), or
   SSE_DEFERRED (an unknown kid whose key set is being refetched: the request waits for it and
   this handler runs again, hub_jwks_wait.c). */
static int authorize(sse_hub *h, sse_request *req, const struct sse__grants **g, struct refusal *f)
{
    const char *tok;
    size_t tlen;
    int from_cookie, rc = 0;
    sse_buf scratch;
    sse_buf_init(&scratch, 64 * 1024);
    *g = NULL;
    int found = sse__hub_find_token(h, req, &tok, &tlen, &from_cookie, &scratch);
    if (found < 0) {
        rc = refuse(f, 400, sse__hub_token_request_error, SSE__HUB_TOKEN_IN_URL);
    } else if (found) {
        const char *reason = NULL;
        h->jwks_may_wait = 0;
        int vr = h->auth ? sse__auth_verify(h->auth, SSE__AUTH_SUBSCRIBE, tok, tlen,
                                            sse__now_ms() / 1000, g, &reason)
                         : SSE_EAUTH;
        if (vr == SSE_EAUTH && sse__hub_jwks_park(h, req, 1)) {
            rc = SSE_DEFERRED;
        } else if (vr == SSE_ENOMEM) {
            rc = refuse(f, 503, NULL, "out of memory");
        } else if (vr) {
            sse__hub_log(h, SSE_LOG_INFO, "subscribe refused from %s: token %s",
                         sse_request_remote_addr(req), reason ? reason : "not accepted");
            rc = refuse(f, 401, "invalid_token", "invalid token");
        }
    } else if (!h->o.anonymous) {
        rc = refuse(f, 401, NULL, "a subscriber token is required");
    }
    sse_buf_free(&scratch);
    return rc;
}

/* A subscriber for grants g (taken over, also on failure) and the asked selectors (their texts
   taken over). 0 and *out, or -1 (f set). */
static int subscriber_new(sse_hub *h, const struct sse__grants *g, struct ask *a,
                          struct sse__hub_subscriber **out, struct refusal *f)
{
    struct sse__hub_subscriber *s = sse__calloc(1, sizeof(*s));
    if (!s) {
        sse__grants_release(g);
        return refuse(f, 503, NULL, "out of memory");
    }
    s->hub = h;
    s->grants = g;
    /* exp comes from the token and may be near LLONG_MAX: saturate instead of overflowing */
    s->exp_ms = !g || g->exp <= 0 ? 0 : g->exp > LLONG_MAX / 1000 ? LLONG_MAX : g->exp * 1000;
    s->subs = sse__calloc(a->nargs, sizeof(*s->subs));
    if (!s->subs) {
        refuse(f, 503, NULL, "out of memory");
        goto out_free;
    }
    int crc = compile_grants(h, s);
    if (crc) {
        if (crc == SSE_EAUTH)
            refuse(f, 401, "invalid_token", "invalid token (a granted selector does not compile)");
        else if (crc == SSE_EBUSY)
            refuse(f, 429, NULL, "too many distinct selector patterns in use: retry later");
        else
            refuse(f, 503, NULL, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < a->nargs; i++) {
        struct sse__hub_sub *sub = &s->subs[i];
        int kind = a->args[i].form == SSE__FORM_TOPIC   ? SSE__SEL_AUTO
                   : a->args[i].form == SSE__FORM_EXACT ? SSE__SEL_EXACT
                                                        : SSE__SEL_URLPATTERN;
        int rc = sse__selector_cache_get(h->selcache, a->args[i].text, a->args[i].len, kind,
                                         &sub->isub.sel);
        if (rc == SSE_EBUSY) { /* the hub's pattern budget (max_pattern_nodes) is spent */
            refuse(f, 429, NULL, "too many distinct selector patterns in use: retry later");
            goto out_free;
        }
        if (rc) {
            refuse(f, rc == SSE_ENOMEM ? 503 : 400, rc == SSE_ENOMEM ? NULL : "invalid_request",
                   rc == SSE_ELIMIT   ? "selector too long or too complex"
                   : rc == SSE_ENOMEM ? "out of memory"
                                      : "invalid selector");
            goto out_free;
        }
        sub->owner = s;
        sub->text = a->args[i].text;
        sub->len = a->args[i].len;
        sub->form = a->args[i].form;
        a->args[i].text = NULL;
        s->n_subs++;
    }
    /* The subscriber id. draft-07: the token's sub when it is unique among active subscribers.
       draft-08: always a random urn:uuid per connection, as the draft recommends (sub alone is
       not unique across issuers, iss + sub not across connections, and a random id does not
       show sub to the other subscribers of subscription events). */
    if (g && g->draft != SSE__DRAFT_08 && g->sub && *g->sub) {
        int taken = 0;
        for (struct sse__hub_subscriber *o = h->subscribers; o && !taken; o = o->next)
            taken = !strcmp(o->id, g->sub);
        if (!taken && !(s->id = sse__strdup(g->sub))) {
            refuse(f, 503, NULL, "out of memory");
            goto out_free;
        }
    }
    if (!s->id) {
        char uuid[46];
        if (sse__hub_uuid4(uuid) || !(s->id = sse__strdup(uuid))) {
            refuse(f, 503, NULL, "out of memory");
            goto out_free;
        }
    }
    *out = s;
    return 0;
out_free:
    sse__hub_subscriber_free(h, s);
    return -1;
}

/*
 * Index the subscriber (live updates are held until the stream opens) and replay what it
 * missed; the request is answered now or from the store's callback. Takes s over. Returns 0
 * (answered), SSE_DEFERRED, or -1 (f set; s freed; the request not answered).
 */
static int start(sse_hub *h, sse_request *req, struct sse__hub_subscriber *s, struct ask *a,
                 struct refusal *f)
{
    for (size_t i = 0; i < s->n_subs; i++)
        if (sse__index_add(h->index, &s->subs[i].isub)) {
            sse__hub_subscriber_free(h, s);
            return refuse(f, 503, NULL, "out of memory");
        }
    struct sse__hub_replay *r = sse__calloc(1, sizeof(*r));
    if (!r ||
        (a->have_lei && !(r->want = sse__strndup(a->lei.data ? a->lei.data : "", a->lei.len)))) {
        sse__free(r);
        sse__hub_subscriber_free(h, s);
        return refuse(f, 503, NULL, "out of memory");
    }
    r->h = h;
    r->s = s;
    r->req = req;
    r->in_handler = 1;
    int answered = 0; /* 2: the stream is open and r belongs to its replay */
    r->answered = &answered;
    if (!a->have_lei) {
        subscribe_finish(r);
    } else {
        r->want_len = a->lei.len;
        r->earliest = !strcmp(r->want, "earliest");
        /* The first slice; the rest is streamed once the stream is open. */
        int rc = sse_store_replay(h->store, r->earliest ? NULL : r->want,
                                  r->earliest ? 0 : r->want_len, replay_each, after_replay, r);
        if (rc) {
            r->err = rc;
            subscribe_finish(r);
        }
    }
    if (answered == 2)
        return 0; /* r may be gone already */
    r->in_handler = 0;
    r->answered = NULL;
    if (r->finished) {
        replay_free(r);
        return 0;
    }
    sse_request_on_abort(req, on_abort, r);
    return SSE_DEFERRED;
}

int sse__hub_on_subscribe(sse_request *req, sse_hub *h)
{
    struct ask a = {0};
    struct refusal f = {0};
    const struct sse__grants *g = NULL;
    struct sse__hub_subscriber *s = NULL;
    int rc = -1;
    sse_buf_init(&a.lei, 4096);
    if (h->closing)
        refuse(&f, 503, NULL, "shutting down");
    else if (!(a.args = sse__calloc(h->o.max_selectors, sizeof(*a.args))))
        refuse(&f, 503, NULL, "out of memory");
    else if (!read_ask(h, req, &a, &f)) {
        int ar = authorize(h, req, &g, &f);
        if (ar == SSE_DEFERRED) {
            rc = SSE_DEFERRED; /* waits for a key set (hub_jwks_wait.c) */
        } else if (ar) {
            /* refused: f is set */
        } else if (h->o.max_subscribers && h->st.subscribers >= h->o.max_subscribers) {
            sse__grants_release(g);
            refuse(&f, 429, NULL, "too many subscribers");
        } else if (!subscriber_new(h, g, &a, &s, &f)) {
            rc = start(h, req, s, &a, &f);
        }
    }
    if (rc < 0 && rc != SSE_DEFERRED) {
        h->st.subscribe_rejected_total++;
        sse__hub_fail(req, f.status, f.errcode, f.why);
    }
    for (size_t i = 0; i < a.nargs; i++)
        sse__free(a.args[i].text);
    sse__free(a.args);
    sse_buf_free(&a.lei);
    return rc == SSE_DEFERRED ? SSE_DEFERRED : 0;
}
