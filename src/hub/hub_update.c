/*
 * hub_update.c: the path of one accepted update, from submission to the subscribers' queues.
 *
 *   submit ──(no bus)──────────────────────────────┐
 *      └──(bus) encode a bus message, publish ──► receive (every hub, the bus's order)
 *                                                  ▼
 *                              store append (asynchronous) ──► released in submission order:
 *                              fan out + answer the publisher 200, or answer 503 (not stored)
 *
 * The update is encoded once into a frame by the hub that accepted it; a bus message carries
 * those bytes, and a receiving hub turns them into its one frame. An update is fanned out, and
 * its publisher answered, only after the store reported it kept: the store contract of store.h.
 * Updates are released in the order they were handed to the store even when a store completes
 * out of turn, so subscribers see the history's order.
 *
 * Not owned here: validation and authorization (hub_publish.c), the subscribers (hub_subscriber.c),
 * matching (index.c).
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <sse/bus.h>
#include <sse/format.h>
#include <string.h>
#include <sys/random.h>

/* A publisher waiting for its update to come back over the bus. */
struct sse__hub_pending {
    struct sse__hub_pending *next, *prev;
    sse_hub *hub;
    sse_request *req; /* NULL: the publisher went away, or its update came back */
    uint64_t token;
    int received; /* its message came back through receive */
    int bus_done; /* the bus reported on the publish */
};

/* An update handed to the store, waiting to be released in order. */
struct sse__hub_inflight {
    struct sse__hub_inflight *next;
    sse_hub *hub;
    sse_frame *frame;
    const char **topics; /* n_topics NUL-terminated copies, then the id, in this block */
    size_t n_topics;
    const char *id;
    int is_private;
    int fanout;        /* 0: history handed to a new bus member (stored only) */
    sse_request *req;  /* the publisher to answer (NULL: none, or it went away) */
    int done;          /* the store has reported */
    int status;        /* its report */
    int in_submit;     /* the submitting call still holds it (see store_update) */
    uint64_t position; /* where the store put it (0: not stored) */
    int released;
};

/* ---------------------------------------------------------------- fan-out */

struct fanout {
    sse_hub *h;
    const char *const *topics;
    size_t n_topics;
    int is_private;
    sse_frame *frame;
    uint64_t seq;
    uint64_t position;
};

static void deliver(void *ud, struct sse__isub *is)
{
    struct fanout *f = ud;
    struct sse__hub_subscriber *s = ((struct sse__hub_sub *)is)->owner;
    if (s->last_seq == f->seq)
        return;
    s->last_seq = f->seq; /* the grants check is per subscriber: do it at most once */
    if (f->position && f->position <= s->replayed_pos)
        return; /* it has this one already (its replay, or the id it resumed from) */
    if (f->is_private && !sse__hub_can_read(s, f->topics, f->n_topics))
        return;
    if (!s->st || s->replay) {
        sse__hub_hold(s, f->frame, f->position); /* replaying: sent after the replay */
        return;
    }
    if (sse_stream_send_frame(s->st, f->frame) == 0)
        f->h->st.deliveries_total++;
}

static void fan_out(sse_hub *h, const struct sse__hub_inflight *u)
{
    struct fanout f = {h, u->topics, u->n_topics, u->is_private, u->frame, ++h->seq, u->position};
    for (size_t i = 0; i < u->n_topics; i++)
        sse__index_match(h->index, u->topics[i], strlen(u->topics[i]), deliver, &f);
    h->st.updates_total++;
}

/* ---------------------------------------------------------------- store, in order */

static void answer(sse_hub *h, sse_request *req, int status, const char *id)
{
    if (status) {
        sse__hub_fail(req, 503, NULL, "the update could not be stored");
        return;
    }
    sse_request_add_header(req, "Cache-Control", "no-store");
    if (h->instance)
        sse_request_add_header(req, "X-Ssehub-Worker", h->instance);
    sse_request_respond(req, 200, "text/plain; charset=utf-8", id, strlen(id));
}

static void inflight_free(struct sse__hub_inflight *u)
{
    sse_frame_unref(u->frame);
    sse__free(u);
}

static void publisher_gone(sse_request *req, void *ud)
{
    struct sse__hub_inflight *u = ud;
    (void)req;
    u->req = NULL; /* the update is still stored and fanned out */
}

/* Release every update at the head whose store report is in. */
static void release(sse_hub *h)
{
    while (h->inflight && h->inflight->done) {
        struct sse__hub_inflight *u = h->inflight;
        h->inflight = u->next;
        if (!h->inflight)
            h->inflight_tail = NULL;
        if (u->status)
            sse__hub_log(h, SSE_LOG_WARN, "update %s not stored (%s): refused", u->id,
                         sse_strerror(u->status));
        else if (u->fanout && !h->closing)
            fan_out(h, u);
        if (u->req) {
            sse_request_on_abort(u->req, NULL, NULL);
            answer(h, u->req, u->status, u->id);
        }
        u->released = 1;
        if (!u->in_submit)
            inflight_free(u);
    }
}

static void appended(void *ud, int status, uint64_t position)
{
    struct sse__hub_inflight *u = ud;
    u->position = position;
    u->done = 1;
    u->status = status;
    release(u->hub);
}

/*
 * Hand one encoded update to the store. req (may be NULL) is answered when the update is
 * released: 200 with the id, or 503. Returns, with req: SSE_DEFERRED (answered later), 0
 * (answered already), or a negative error (not stored and req NOT answered: the caller answers).
 * Without req: 0 (stored now, or on its way), or the error that kept it from being stored.
 */
static int store_update(sse_hub *h, sse_frame *frame, const char *const *topics, size_t n_topics,
                        const char *id, int is_private, int no_history, long long time_ms,
                        int fanout, sse_request *req, uint64_t position)
{
    size_t blk = n_topics * sizeof(char *), id_len = strlen(id);
    for (size_t i = 0; i < n_topics; i++)
        blk += strlen(topics[i]) + 1;
    struct sse__hub_inflight *u = sse__calloc(1, sizeof(*u) + blk + id_len + 1);
    if (!u)
        return SSE_ENOMEM;
    u->hub = h;
    u->frame = sse_frame_ref(frame);
    u->topics = (const char **)(void *)(u + 1);
    char *w = (char *)(u->topics + n_topics);
    for (size_t i = 0; i < n_topics; i++) {
        size_t n = strlen(topics[i]);
        memcpy(w, topics[i], n + 1);
        u->topics[i] = w;
        w += n + 1;
    }
    memcpy(w, id, id_len + 1);
    u->id = w;
    u->n_topics = n_topics;
    u->is_private = is_private;
    u->fanout = fanout;
    u->req = req;
    if (h->inflight_tail)
        h->inflight_tail->next = u;
    else
        h->inflight = u;
    h->inflight_tail = u;

    sse_store_entry e = {0};
    e.id = u->id;
    e.id_len = id_len;
    e.topics = u->topics;
    e.n_topics = n_topics;
    e.is_private = is_private;
    e.frame = frame;
    e.time_ms = time_ms;
    e.position = position; /* the bus's (a follower store appends there), else 0 */
    u->in_submit = 1;
    int rc = 0;
    if (no_history ||
        h->o.no_history) /* in the queue all the same: released in order with the others */
        appended(u, 0, 0);
    else
        rc = sse_store_append(h->store, &e, appended, u);
    u->in_submit = 0;
    if (rc) { /* no report will come: take it out (still waiting, so neither released) */
        struct sse__hub_inflight **pp = &h->inflight, *prev = NULL;
        while (*pp != u)
            prev = *pp, pp = &(*pp)->next;
        *pp = u->next;
        if (h->inflight_tail == u)
            h->inflight_tail = prev;
        inflight_free(u);
        release(h); /* those behind it may be ready now */
        return rc;
    }
    if (u->released) {
        rc = req ? 0 : u->status;
        inflight_free(u);
        return rc;
    }
    if (!req)
        return 0;
    sse_request_on_abort(req, publisher_gone, u);
    return SSE_DEFERRED;
}

/* ---------------------------------------------------------------- the bus */

static struct sse__hub_pending *pending_find(sse_hub *h, uint64_t token)
{
    struct sse__hub_pending *p = h->pending;
    while (p && p->token != token)
        p = p->next;
    return p;
}

static void pending_unlink(struct sse__hub_pending *p)
{
    sse_hub *h = p->hub;
    if (p->prev)
        p->prev->next = p->next;
    else
        h->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void pending_gone(sse_request *req, void *ud)
{
    struct sse__hub_pending *p = ud;
    (void)req;
    p->req = NULL; /* kept until the bus answers: the token must still be recognised */
}

/*
 * The bus took the message (0: it comes back through receive, before or after this report) or
 * refused it (it will not come back: the publisher gets a 503). The entry lives until both the
 * report and, on success, the message are in, so a late message is still recognised as ours.
 */
static void bus_published(void *ud, int status)
{
    struct sse__hub_pending *p = ud;
    if (p->hub == NULL) { /* the hub closed meanwhile */
        sse__free(p);
        return;
    }
    p->bus_done = 1;
    if (!status && !p->received)
        return; /* receive finishes it */
    pending_unlink(p);
    if (p->req && status) {
        sse_request_on_abort(p->req, NULL, NULL);
        sse__hub_fail(p->req, 503, NULL, "the update could not be published");
    }
    sse__free(p);
}

static void bus_receive(void *ud, const void *msg, size_t len, unsigned flags)
{
    sse_hub *h = ud;
    sse_bus_msg *m = NULL;
    sse_frame *frame = NULL;
    int rc = sse_bus_msg_decode(msg, len, &m);
    if (!rc)
        rc = sse_frame_new(&frame, m->frame, m->frame_len);
    if (rc) {
        sse__hub_log(h, SSE_LOG_ERROR, "bus message dropped: %s", sse_strerror(rc));
        sse_bus_msg_free(m);
        return;
    }
    sse_request *req = NULL;
    struct sse__hub_pending *p = NULL;
    if (m->origin == h->bus_origin && m->token && !(flags & SSE_BUS_HISTORY) &&
        (p = pending_find(h, m->token)) != NULL) {
        req = p->req;
        if (req)
            sse_request_on_abort(req, NULL, NULL);
        p->req = NULL; /* answered from the store's report now */
        p->received = 1;
        if (p->bus_done) {
            pending_unlink(p);
            sse__free(p);
        }
    }
    rc = store_update(h, frame, m->topics, m->n_topics, m->id, m->is_private, m->no_history,
                      m->time_ms, !(flags & SSE_BUS_HISTORY), req,
                      sse_bus_received_position(h->o.bus));
    /* 0: released at once, and store_update answered req; SSE_DEFERRED: answered later. */
    if (rc && rc != SSE_DEFERRED && req)
        sse__hub_fail(req, 503, NULL, "the update could not be stored");
    sse_frame_unref(frame);
    sse_bus_msg_free(m);
}

int sse__hub_bus_init(sse_hub *h)
{
    if (!h->o.bus)
        return 0;
    if (getrandom(&h->bus_origin, sizeof(h->bus_origin), 0) != (ssize_t)sizeof(h->bus_origin))
        return SSE_EIO;
    h->bus_max = sse_hub_bus_max_message(&h->o);
    int rc = sse_bus_start(h->o.bus, bus_receive, h);
    return rc ? rc : sse__hub_presence_start(h);
}

void sse__hub_bus_close(sse_hub *h)
{
    while (h->pending) {
        struct sse__hub_pending *p = h->pending;
        pending_unlink(p);
        if (p->req) {
            sse_request_on_abort(p->req, NULL, NULL);
            sse__hub_fail(p->req, 503, NULL, "the hub is shutting down");
        }
        if (p->bus_done)
            sse__free(p);
        else
            p->hub = NULL; /* freed by bus_published when the bus reports */
    }
    for (struct sse__hub_inflight *u = h->inflight; u; u = u->next)
        if (u->req) {
            sse_request_on_abort(u->req, NULL, NULL);
            sse__hub_fail(u->req, 503, NULL, "the hub is shutting down");
            u->req = NULL;
        }
}

void sse__hub_update_free(sse_hub *h)
{
    while (h->inflight) {
        struct sse__hub_inflight *u = h->inflight;
        h->inflight = u->next;
        inflight_free(u);
    }
    h->inflight_tail = NULL;
}

size_t sse_hub_bus_max_message(const sse_hub_options *o)
{
    size_t upd = o && o->max_update ? o->max_update : (1u << 20);
    size_t sel = o && o->max_selector_len ? o->max_selector_len : 1024;
    size_t nt = o && o->max_topics ? o->max_topics : 16;
    /* The frame of an update is at most its fields plus the field names and line ends of each
       data line (a line may be one byte); subscription events carry a JSON document. */
    return SSE_BUS_MSG_HEADER + 3 * upd + nt * (sel + 4) + 4 * sel + 64 * 1024;
}

/* ---------------------------------------------------------------- submit */

int sse__hub_submit(sse_hub *h, const struct sse__hub_pub *p, sse_buf *id_out, sse_request *req)
{
    char uuid[46];
    const char *id = p->id;
    int rc;
    if (h->closing)
        return SSE_ECLOSED;
    if (!id) {
        if ((rc = sse__hub_uuid4(uuid)))
            return rc;
        id = uuid;
    }
    if (id_out) {
        sse_buf_reset(id_out);
        if ((rc = sse_buf_append_str(id_out, id)))
            return rc;
    }
    sse_event ev = SSE_EVENT_INIT;
    ev.id = id;
    ev.id_len = strlen(id);
    ev.type = p->type;
    ev.type_len = p->type ? strlen(p->type) : 0;
    ev.data = p->has_data ? (p->data ? p->data : "") : "";
    ev.data_len = p->has_data ? p->data_len : 0;
    ev.retry = p->retry;
    sse_buf b;
    sse_frame *frame = NULL;
    sse_buf_init(&b, 0);
    if ((rc = sse_encode_event(&b, &ev)) || (rc = sse_frame_from_buf(&frame, &b))) {
        sse_buf_free(&b);
        return rc;
    }
    sse_buf_free(&b);
    long long now = sse__now_ms();
    if (!h->o.bus) {
        rc = store_update(h, frame, p->topics, p->n_topics, id, p->is_private, p->no_history, now,
                          1, req, 0);
        sse_frame_unref(frame);
        return rc;
    }

    /* With a bus: the update is applied when the bus hands it back, here as everywhere. */
    struct sse__hub_pending *pend = sse__calloc(1, sizeof(*pend));
    sse_bus_msg m = {.origin = h->bus_origin,
                     .time_ms = now,
                     .is_private = p->is_private,
                     .no_history = p->no_history,
                     .id = id,
                     .id_len = ev.id_len,
                     .topics = p->topics,
                     .n_topics = p->n_topics,
                     .frame = sse_frame_data(frame),
                     .frame_len = sse_frame_len(frame)};
    sse_buf_init(&b, h->bus_max);
    rc = pend ? 0 : SSE_ENOMEM;
    if (!rc) {
        pend->hub = h;
        pend->req = req;
        pend->token = m.token = ++h->bus_token;
        rc = sse_bus_msg_encode(&b, &m);
    }
    sse_frame_unref(frame);
    if (!rc) {
        pend->next = h->pending;
        if (h->pending)
            h->pending->prev = pend;
        h->pending = pend;
        rc = sse_bus_publish(h->o.bus, b.data, b.len, bus_published, pend);
        if (rc) {
            pending_unlink(pend);
            rc = rc == SSE_ELIMIT ? SSE_ELIMIT : SSE_EBUSY;
        }
    }
    sse_buf_free(&b);
    if (rc) {
        sse__free(pend);
        return rc;
    }
    if (!req)
        return 0;
    sse_request_on_abort(req, pending_gone, pend);
    return SSE_DEFERRED;
}
