/*
 * inproc.c: the in-process bus of include/sse/bus.h. Members of one group (several hubs on one
 * loop) receive every message any of them published, in one order (the order of publish calls),
 * always from the loop and never inside publish, as a real bus would. It is the test fake of
 * the bus seam and the way an embedder runs several hubs in one process.
 *
 * Not owned here: the message format (bus.c).
 */
#include "common/alloc.h"

#include <sse/bus.h>
#include <string.h>

struct inproc_msg {
    struct inproc_msg *next;
    sse_bus_publish_cb done;
    void *ud;
    struct inproc_member *from; /* NULL once that member closed */
    size_t len;
    unsigned char data[];
};

struct inproc_member {
    sse_bus base; /* must be first */
    struct sse_bus_inproc_group *g;
    struct inproc_member *next;
    sse_bus_receive_cb receive;
    void *ud;
};

struct sse_bus_inproc_group {
    uv_loop_t *loop;
    uv_idle_t *idle; /* delivers the queued messages on the next loop turn */
    struct inproc_member *members;
    struct inproc_msg *head, *tail;
    int fail;
};

static void deliver(uv_idle_t *idle)
{
    struct sse_bus_inproc_group *g = idle->data;
    uv_idle_stop(idle);
    /* Only what is queued now: messages published by a receiver go out on the next turn. */
    struct inproc_msg *m = g->head;
    g->head = g->tail = NULL;
    while (m) {
        struct inproc_msg *next = m->next;
        if (m->done && m->from)
            m->done(m->ud, 0);
        for (struct inproc_member *b = g->members; b; b = b->next)
            if (b->receive)
                b->receive(b->ud, m->data, m->len, 0);
        sse__free(m);
        m = next;
    }
}

static int inproc_start(sse_bus *bus, sse_bus_receive_cb receive, void *ud)
{
    struct inproc_member *b = (struct inproc_member *)bus;
    if (b->receive || !receive)
        return SSE_EINVAL;
    b->receive = receive;
    b->ud = ud;
    return 0;
}

static int inproc_publish(sse_bus *bus, const void *msg, size_t len, sse_bus_publish_cb done,
                          void *ud)
{
    struct inproc_member *b = (struct inproc_member *)bus;
    struct sse_bus_inproc_group *g = b->g;
    if (g->fail)
        return g->fail;
    struct inproc_msg *m = sse__malloc(sizeof(*m) + len);
    if (!m)
        return SSE_ENOMEM;
    m->next = NULL;
    m->done = done;
    m->ud = ud;
    m->from = b;
    m->len = len;
    memcpy(m->data, msg, len);
    if (g->tail)
        g->tail->next = m;
    else
        g->head = m;
    g->tail = m;
    uv_idle_start(g->idle, deliver);
    return 0;
}

static void inproc_close(sse_bus *bus, sse_bus_close_cb done, void *ud)
{
    struct inproc_member *b = (struct inproc_member *)bus;
    struct sse_bus_inproc_group *g = b->g;
    for (struct inproc_member **pp = &g->members; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    /* Its messages still in flight reach the others; their publisher is told nothing more. */
    for (struct inproc_msg *m = g->head; m; m = m->next)
        if (m->from == b) {
            if (m->done)
                m->done(m->ud, SSE_ECLOSED);
            m->from = NULL;
            m->done = NULL;
        }
    sse__free(b);
    if (done)
        done(ud);
}

static const sse_bus_ops inproc_ops = {SSE_BUS_OPS_VERSION,
                                       "inproc",
                                       inproc_start,
                                       inproc_publish,
                                       inproc_close,
                                       NULL,
                                       NULL,
                                       NULL,
                                       NULL};

static void idle_closed(uv_handle_t *h)
{
    sse__free(h);
}

int sse_bus_inproc_group_new(sse_bus_inproc_group **out, uv_loop_t *loop)
{
    if (!loop)
        return SSE_EINVAL;
    struct sse_bus_inproc_group *g = sse__calloc(1, sizeof(*g));
    if (!g)
        return SSE_ENOMEM;
    g->idle = sse__calloc(1, sizeof(*g->idle));
    if (!g->idle) {
        sse__free(g);
        return SSE_ENOMEM;
    }
    g->loop = loop;
    uv_idle_init(loop, g->idle);
    g->idle->data = g;
    *out = g;
    return 0;
}

void sse_bus_inproc_group_free(sse_bus_inproc_group *g)
{
    if (!g)
        return;
    while (g->head) {
        struct inproc_msg *m = g->head;
        g->head = m->next;
        sse__free(m);
    }
    uv_close((uv_handle_t *)g->idle, idle_closed);
    sse__free(g);
}

void sse_bus_inproc_group_fail(sse_bus_inproc_group *g, int err)
{
    g->fail = err;
}

int sse_bus_inproc_new(sse_bus **out, sse_bus_inproc_group *g)
{
    struct inproc_member *b = sse__calloc(1, sizeof(*b));
    if (!b)
        return SSE_ENOMEM;
    b->base.ops = &inproc_ops;
    b->g = g;
    b->next = g->members;
    g->members = b;
    *out = &b->base;
    return 0;
}
