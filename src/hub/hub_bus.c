/*
 * hub_bus.c: the hub's side of a bus (several processes sharing one global order of updates;
 * docs/WORKERS.md).
 *
 * Without a bus (sse_hub_options.bus_publish NULL) an update is applied at once. With one, the
 * update is serialized into a bus message and handed to the bus; the hub applies it (history
 * append + local fan-out) only when the bus hands it back through sse_hub_bus_receive, so every
 * process applies every update in the bus's single order. A POST waits (SSE_DEFERRED) until its
 * own message comes back; the message carries this hub's random origin nonce and a per-request
 * token so that only the origin answers, and a restarted process never answers a stale one.
 *
 * Message layout (native byte order: the bus never leaves the machine):
 *   u32 magic | u8 flags | u8 0 | u16 n_topics | u64 origin | u64 token | i64 retry | i64 time_ms
 *   | u32 id_len | u32 type_len | u32 data_len | u32 0 | n_topics x (u32 len, bytes) | id | type
 *   | data
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"
#include "hub/hub_util.h"

#include <sse/hub.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

enum {
    BUS_MAGIC = 0x42455353u, /* "SSEB" */
    BUS_HDR = 56,
    F_PRIVATE = 1,
    F_HAS_DATA = 2,
    F_HISTORY = 4,
    F_HAS_TYPE = 8
};

struct sse__hub_pending {
    struct sse__hub_pending *next, *prev;
    sse_hub *hub;
    sse_request *req;
    uint64_t token;
};

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t sse_hub_bus_max_message(const sse_hub_options *o)
{
    size_t upd = o && o->max_update ? o->max_update : (1u << 20);
    size_t sel = o && o->max_selector_len ? o->max_selector_len : 1024;
    size_t nt = o && o->max_topics ? o->max_topics : 16;
    /* Subscription events carry a JSON document bigger than the topic: allow for it. */
    return BUS_HDR + upd + nt * (sel + 4) + 4 * sel + 64 * 1024;
}

int sse__hub_bus_init(sse_hub *h)
{
    if (!h->o.bus_publish)
        return 0;
    if (getrandom(&h->bus_origin, sizeof(h->bus_origin), 0) != (ssize_t)sizeof(h->bus_origin))
        return SSE_EIO;
    h->bus_max = sse_hub_bus_max_message(&h->o);
    return 0;
}

static void put32(sse_buf *b, uint32_t v, int *rc)
{
    if (!*rc)
        *rc = sse_buf_append(b, &v, 4);
}

static void put64(sse_buf *b, uint64_t v, int *rc)
{
    if (!*rc)
        *rc = sse_buf_append(b, &v, 8);
}

static void pending_abort(sse_request *req, void *ud)
{
    struct sse__hub_pending *p = ud;
    sse_hub *h = p->hub;
    (void)req;
    if (p->prev)
        p->prev->next = p->next;
    else
        h->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    sse__free(p);
}

int sse__hub_publish(sse_hub *h, const struct sse__hub_pub *p, sse_buf *id_out, sse_request *req)
{
    if (!h->o.bus_publish)
        return sse__hub_publish_core(h, p, id_out);
    char uuid[46];
    const char *id = p->id;
    int rc = 0;
    if (!id) {
        if ((rc = sse__hub_uuid4(uuid)))
            return rc;
        id = uuid;
    }
    size_t id_len = strlen(id), type_len = p->type ? strlen(p->type) : 0;
    size_t data_len = p->has_data && p->data ? p->data_len : 0;
    if (p->n_topics > UINT16_MAX || id_len > UINT32_MAX || type_len > UINT32_MAX ||
        data_len > UINT32_MAX)
        return SSE_ELIMIT;
    struct sse__hub_pending *pend = NULL;
    if (req) {
        pend = sse__calloc(1, sizeof(*pend));
        if (!pend)
            return SSE_ENOMEM;
        pend->hub = h;
        pend->req = req;
        pend->token = ++h->bus_token;
    }
    sse_buf b;
    sse_buf_init(&b, h->bus_max);
    uint32_t magic = BUS_MAGIC;
    unsigned char fl[4] = {(unsigned char)((p->is_private ? F_PRIVATE : 0) |
                                           (p->has_data ? F_HAS_DATA : 0) |
                                           (p->type ? F_HAS_TYPE : 0)),
                           0, 0, 0};
    uint16_t nt = (uint16_t)p->n_topics;
    memcpy(fl + 2, &nt, 2);
    put32(&b, magic, &rc);
    if (!rc)
        rc = sse_buf_append(&b, fl, 4);
    put64(&b, h->bus_origin, &rc);
    put64(&b, pend ? pend->token : 0, &rc);
    put64(&b, (uint64_t)p->retry, &rc);
    put64(&b, (uint64_t)wall_ms(), &rc);
    put32(&b, (uint32_t)id_len, &rc);
    put32(&b, (uint32_t)type_len, &rc);
    put32(&b, (uint32_t)data_len, &rc);
    put32(&b, 0, &rc);
    for (size_t i = 0; i < p->n_topics && !rc; i++) {
        size_t n = strlen(p->topics[i]);
        put32(&b, (uint32_t)n, &rc);
        if (!rc)
            rc = sse_buf_append(&b, p->topics[i], n);
    }
    if (!rc)
        rc = sse_buf_append(&b, id, id_len);
    if (!rc && type_len)
        rc = sse_buf_append(&b, p->type, type_len);
    if (!rc && data_len)
        rc = sse_buf_append(&b, p->data, data_len);
    if (!rc && b.len > h->bus_max)
        rc = SSE_ELIMIT;
    if (!rc && h->o.bus_publish(h->o.bus_data, b.data, b.len))
        rc = SSE_EBUSY;
    sse_buf_free(&b);
    if (!rc && id_out) {
        sse_buf_reset(id_out);
        rc = sse_buf_append_str(id_out, id);
    }
    if (rc) {
        sse__free(pend);
        return rc;
    }
    if (!pend)
        return 0;
    pend->next = h->pending;
    if (h->pending)
        h->pending->prev = pend;
    h->pending = pend;
    sse_request_on_abort(req, pending_abort, pend);
    return SSE_DEFERRED;
}

void sse_hub_bus_mark_history(void *msg, size_t len)
{
    if (len >= BUS_HDR)
        ((unsigned char *)msg)[4] |= F_HISTORY;
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void answer_pending(sse_hub *h, uint64_t token, const char *id, size_t id_len)
{
    struct sse__hub_pending *p = h->pending;
    while (p && p->token != token)
        p = p->next;
    if (!p)
        return; /* the publisher went away */
    sse_request *req = p->req;
    sse_request_on_abort(req, NULL, NULL);
    pending_abort(req, p);
    sse_request_add_header(req, "Cache-Control", "no-store");
    if (h->instance)
        sse_request_add_header(req, "X-Ssehub-Worker", h->instance);
    sse_request_respond(req, 200, "text/plain; charset=utf-8", id, id_len);
}

int sse_hub_bus_receive(sse_hub *h, const void *msg, size_t len)
{
    const unsigned char *m = msg;
    if (len < BUS_HDR || get32(m) != BUS_MAGIC)
        return SSE_EPROTO;
    int flags = m[4];
    uint16_t nt;
    memcpy(&nt, m + 6, 2);
    uint64_t origin = get64(m + 8), token = get64(m + 16);
    long long retry = (long long)get64(m + 24), time_ms = (long long)get64(m + 32);
    size_t id_len = get32(m + 40), type_len = get32(m + 44), data_len = get32(m + 48);
    if (!nt || (!(flags & F_HAS_TYPE) && type_len))
        return SSE_EPROTO;
    /* One block: the topic pointers, then NUL-terminated topics, id and type. */
    size_t strings = len - BUS_HDR + 3u + nt;
    size_t need = nt * sizeof(char *) + strings;
    char *blk = sse__malloc(need);
    if (!blk)
        return SSE_ENOMEM;
    const char **topics = (const char **)(void *)blk;
    char *w = blk + nt * sizeof(char *);
    size_t off = BUS_HDR;
    int rc = SSE_EPROTO;
    for (size_t i = 0; i < nt; i++) {
        if (len - off < 4)
            goto out_free;
        size_t n = get32(m + off);
        off += 4;
        if (len - off < n)
            goto out_free;
        memcpy(w, m + off, n);
        w[n] = '\0';
        topics[i] = w;
        w += n + 1;
        off += n;
    }
    if (len - off != id_len + type_len + data_len || id_len + type_len + data_len < id_len)
        goto out_free;
    char *id = w;
    memcpy(id, m + off, id_len);
    id[id_len] = '\0';
    off += id_len;
    w += id_len + 1;
    char *type = NULL;
    if (flags & F_HAS_TYPE) {
        type = w;
        memcpy(type, m + off, type_len);
        type[type_len] = '\0';
        off += type_len;
    }
    struct sse__hub_pub p = {
        topics, nt,    (const char *)m + off, data_len, (flags & F_HAS_DATA) != 0, id,
        type,   retry, flags & F_PRIVATE};
    rc = sse__hub_apply(h, &p, time_ms, !(flags & F_HISTORY), NULL);
    if (!rc && origin == h->bus_origin && token && !(flags & F_HISTORY))
        answer_pending(h, token, id, id_len);
out_free:
    sse__free(blk);
    return rc;
}

void sse__hub_bus_close(sse_hub *h)
{
    while (h->pending) {
        sse_request *req = h->pending->req;
        sse_request_on_abort(req, NULL, NULL);
        pending_abort(req, h->pending);
        sse__hub_fail(req, 503, NULL, "the hub is shutting down");
    }
}
