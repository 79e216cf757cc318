/*
 * bus.c: the generic side of include/sse/bus.h: the dispatch helpers and the one message format
 * (version 1, big-endian, documented in bus.h) that every bus backend carries as opaque bytes.
 *
 * Not owned here: moving bytes (the backends beside this file), what a message means (the hub).
 */
#include "bus/bus_internal.h"
#include "common/alloc.h"

#include <sse/bus.h>
#include <string.h>

enum { MAGIC = 0x53534542u /* "SSEB" */, F_PRIVATE = 1, F_NO_HISTORY = 2 };

int sse_bus_start(sse_bus *b, sse_bus_receive_cb receive, void *ud)
{
    return b->ops->start(b, receive, ud);
}

int sse_bus_publish(sse_bus *b, const void *msg, size_t len, sse_bus_publish_cb done, void *ud)
{
    return b->ops->publish(b, msg, len, done, ud);
}

int sse_bus_healthy(const sse_bus *b, const char **why)
{
    return !b->ops->healthy || b->ops->healthy(b, why);
}

uint64_t sse_bus_received_position(const sse_bus *b)
{
    return b ? b->rx_position : 0;
}

void sse_bus_close(sse_bus *b, sse_bus_close_cb done, void *ud)
{
    if (b)
        b->ops->close(b, done, ud);
}

int sse_bus_has_presence(const sse_bus *b)
{
    return b && b->ops->version >= 2 && b->ops->presence_start && b->ops->presence_set &&
           b->ops->presence_list;
}

int sse_bus_presence_start(sse_bus *b, sse_bus_presence_dump_cb dump, void *ud)
{
    if (!sse_bus_has_presence(b))
        return SSE_EUNSUPPORTED;
    return dump ? b->ops->presence_start(b, dump, ud) : SSE_EINVAL;
}

int sse_bus_presence_set(sse_bus *b, const char *key, size_t key_len, const char *val,
                         size_t val_len)
{
    if (!sse_bus_has_presence(b))
        return SSE_EUNSUPPORTED;
    return key ? b->ops->presence_set(b, key, key_len, val, val_len) : SSE_EINVAL;
}

int sse_bus_presence_list(sse_bus *b, sse_bus_presence_each_cb each, sse_bus_presence_done_cb done,
                          void *ud)
{
    if (!sse_bus_has_presence(b))
        return SSE_EUNSUPPORTED;
    return each && done ? b->ops->presence_list(b, each, done, ud) : SSE_EINVAL;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

size_t sse_bus_msg_size(size_t n_topics, size_t topic_bytes, size_t id_len, size_t frame_len)
{
    return SSE_BUS_MSG_HEADER + 4 * n_topics + topic_bytes + id_len + frame_len;
}

int sse_bus_msg_encode(sse_buf *out, const sse_bus_msg *m)
{
    size_t tb = 0;
    if (!m->n_topics || m->n_topics > UINT16_MAX || m->id_len > UINT32_MAX ||
        m->frame_len > UINT32_MAX)
        return SSE_ELIMIT;
    for (size_t i = 0; i < m->n_topics; i++) {
        size_t n = strlen(m->topics[i]);
        if (n > UINT32_MAX)
            return SSE_ELIMIT;
        tb += n;
    }
    int rc = sse_buf_reserve(out, sse_bus_msg_size(m->n_topics, tb, m->id_len, m->frame_len));
    if (rc)
        return rc;
    unsigned char h[SSE_BUS_MSG_HEADER];
    put_be(h, MAGIC, 4);
    h[4] = SSE_BUS_MSG_VERSION;
    h[5] = (unsigned char)((m->is_private ? F_PRIVATE : 0) | (m->no_history ? F_NO_HISTORY : 0));
    put_be(h + 6, m->n_topics, 2);
    put_be(h + 8, m->origin, 8);
    put_be(h + 16, m->token, 8);
    put_be(h + 24, (uint64_t)m->time_ms, 8);
    put_be(h + 32, m->id_len, 4);
    put_be(h + 36, m->frame_len, 4);
    sse_buf_append(out, h, sizeof(h)); /* room reserved above: these cannot fail */
    for (size_t i = 0; i < m->n_topics; i++) {
        unsigned char l[4];
        size_t n = strlen(m->topics[i]);
        put_be(l, n, 4);
        sse_buf_append(out, l, 4);
        sse_buf_append(out, m->topics[i], n);
    }
    sse_buf_append(out, m->id, m->id_len);
    sse_buf_append(out, m->frame, m->frame_len);
    return 0;
}

int sse_bus_msg_decode(const void *msg, size_t len, sse_bus_msg **out)
{
    const unsigned char *p = msg;
    if (len < SSE_BUS_MSG_HEADER || get_be(p, 4) != MAGIC || p[4] != SSE_BUS_MSG_VERSION ||
        (p[5] & ~(F_PRIVATE | F_NO_HISTORY)))
        return SSE_EPROTO;
    size_t nt = (size_t)get_be(p + 6, 2);
    size_t id_len = (size_t)get_be(p + 32, 4), frame_len = (size_t)get_be(p + 36, 4);
    if (!nt)
        return SSE_EPROTO;
    /* Walk the topics first: every length is checked against what is left before it is used. */
    size_t off = SSE_BUS_MSG_HEADER, tb = 0;
    for (size_t i = 0; i < nt; i++) {
        if (len - off < 4)
            return SSE_EPROTO;
        size_t n = (size_t)get_be(p + off, 4);
        off += 4;
        if (len - off < n || memchr(p + off, 0, n)) /* topics are C strings once decoded */
            return SSE_EPROTO;
        off += n;
        tb += n;
    }
    if (len - off != id_len + frame_len || id_len + frame_len < id_len ||
        memchr(p + off, 0, id_len))
        return SSE_EPROTO;
    /* One block: the struct, the topic pointers, NUL-terminated topics and id, the frame. */
    size_t need = sizeof(sse_bus_msg) + nt * sizeof(char *) + tb + nt + id_len + 1 + frame_len;
    char *blk = sse__malloc(need);
    if (!blk)
        return SSE_ENOMEM;
    sse_bus_msg *m = (sse_bus_msg *)(void *)blk;
    const char **topics = (const char **)(void *)(blk + sizeof(*m));
    char *w = (char *)(topics + nt);
    off = SSE_BUS_MSG_HEADER;
    for (size_t i = 0; i < nt; i++) {
        size_t n = (size_t)get_be(p + off, 4);
        memcpy(w, p + off + 4, n);
        w[n] = '\0';
        topics[i] = w;
        w += n + 1;
        off += 4 + n;
    }
    memcpy(w, p + off, id_len);
    w[id_len] = '\0';
    m->id = w;
    w += id_len + 1;
    memcpy(w, p + off + id_len, frame_len);
    m->frame = w;
    m->frame_len = frame_len;
    m->id_len = id_len;
    m->topics = topics;
    m->n_topics = nt;
    m->origin = get_be(p + 8, 8);
    m->token = get_be(p + 16, 8);
    m->time_ms = (long long)get_be(p + 24, 8);
    m->is_private = p[5] & F_PRIVATE;
    m->no_history = (p[5] & F_NO_HISTORY) != 0;
    *out = m;
    return 0;
}

void sse_bus_msg_free(sse_bus_msg *m)
{
    sse__free(m);
}

int sse__bus_msg_store(sse_store *store, const sse_bus_msg *m, sse_store_append_cb cb, void *ud)
{
    sse_frame *frame = NULL;
    int rc = sse_frame_new(&frame, m->frame, m->frame_len);
    if (rc)
        return rc;
    sse_store_entry e = {0};
    e.id = m->id;
    e.id_len = m->id_len;
    e.topics = m->topics;
    e.n_topics = m->n_topics;
    e.is_private = m->is_private;
    e.frame = frame;
    e.time_ms = m->time_ms;
    rc = sse_store_append(store, &e, cb, ud);
    sse_frame_unref(frame);
    return rc;
}
