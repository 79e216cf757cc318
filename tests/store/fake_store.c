/*
 * fake_store.c: the asynchronous and the failing fake stores of fake_store.h.
 *
 * One struct serves both. Every call that completes later is a `struct call` with its own
 * timer (started, or in hold mode left for fake_async_complete); it is freed in the timer's
 * close callback, and close waits for every such handle before it fires done. Not owned here:
 * the history itself (the inner memory store).
 */
#include "store/fake_store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { K_APPEND, K_REPLAY, K_SCAN, K_FROM };

struct fake;

struct call {
    struct call *next;
    uv_timer_t t; /* t.data: this call */
    struct fake *f;
    int kind;
    size_t k;     /* append number */
    uint64_t pos; /* the inner store's position of that append */
    sse_store_append_cb cb;
    char *id;       /* replay / scan: the id asked for (NULL: earliest) */
    uint64_t after; /* replay_from: the position */
    size_t id_len, max;
    sse_store_entry_cb each;
    sse_store_done_cb done;
    void *ud;
    size_t seen; /* scan: entries passed on */
};

struct fake {
    sse_store base; /* must be first */
    sse_store *inner;
    uv_loop_t *loop;
    int fail;       /* -1: the asynchronous fake; else an enum fake_fail_mode */
    int hold;       /* appends wait for fake_async_complete */
    int sync_reads; /* replays and scans complete before they return (appends stay late) */
    size_t n;       /* appends called (and taken) */
    char **ids;     /* per append: its id */
    unsigned char *reported;
    size_t *order, n_order;
    size_t cap;
    size_t reads;       /* replays and scans so far (their delays alternate) */
    struct call *calls; /* in flight */
    void (*on_append)(void *ud, size_t n);
    void *on_append_ud;
    uv_timer_t closer; /* the fake's own handle, closed by close */
    size_t open;       /* handles not yet through their close callback */
    void (*close_done)(void *ud);
    void *close_ud;
    int closing;
};

static void fake_free(struct fake *f)
{
    void (*done)(void *ud) = f->close_done;
    void *ud = f->close_ud;
    for (size_t i = 0; i < f->n; i++)
        free(f->ids[i]);
    free(f->ids);
    free(f->reported);
    free(f->order);
    free(f);
    if (done)
        done(ud);
}

static void handle_gone(struct fake *f)
{
    if (--f->open == 0 && f->closing)
        fake_free(f);
}

static void call_closed(uv_handle_t *h)
{
    struct call *c = h->data;
    struct fake *f = c->f;
    free(c->id);
    free(c);
    handle_gone(f);
}

static void closer_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void unlink_call(struct call *c)
{
    struct call **pp = &c->f->calls;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
}

static struct call *call_new(struct fake *f, int kind)
{
    struct call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->f = f;
    c->kind = kind;
    uv_timer_init(f->loop, &c->t);
    c->t.data = c;
    f->open++;
    /* appended at the tail: close fails them in call order */
    struct call **pp = &f->calls;
    while (*pp)
        pp = &(*pp)->next;
    *pp = c;
    return c;
}

/* A replayed entry is passed on only once its append has reported. */
static int visible(const struct fake *f, uint64_t pos)
{
    return pos >= 1 && pos <= f->n && f->reported[pos - 1];
}

static int filter_each(void *ud, const sse_store_entry *e)
{
    struct call *c = ud;
    if (!visible(c->f, e->position))
        return 0;
    if (c->kind == K_SCAN && c->seen++ >= c->max)
        return 1;
    return c->each ? c->each(c->ud, e) : 0;
}

static void filter_done(void *ud, int status, int found)
{
    struct call *c = ud;
    if (c->done)
        c->done(c->ud, status, found);
}

/* Carry out call c now (it is already off the list), then release it. */
static void run_call(struct call *c)
{
    struct fake *f = c->f;
    if (c->kind == K_APPEND) {
        int status = f->fail >= 0 ? SSE_EIO : 0;
        if (!status) {
            f->reported[c->k] = 1;
            f->order[f->n_order++] = c->k;
        }
        if (c->cb)
            c->cb(c->ud, status, status ? 0 : c->pos);
    } else if (c->kind == K_REPLAY) {
        sse_store_replay(f->inner, c->id, c->id_len, filter_each, filter_done, c);
    } else if (c->kind == K_FROM) {
        sse_store_replay_from(f->inner, c->after, filter_each, filter_done, c);
    } else {
        sse_store_scan_back(f->inner, c->id, c->id_len, SIZE_MAX, filter_each, filter_done, c);
    }
    uv_close((uv_handle_t *)&c->t, call_closed);
}

static void fire(uv_timer_t *t)
{
    struct call *c = t->data;
    unlink_call(c);
    run_call(c);
}

static int grow(struct fake *f)
{
    if (f->n < f->cap)
        return 0;
    size_t cap = f->cap ? f->cap * 2 : 16;
    char **ids = realloc(f->ids, cap * sizeof(*ids));
    if (!ids)
        return SSE_ENOMEM;
    f->ids = ids;
    unsigned char *r = realloc(f->reported, cap);
    if (!r)
        return SSE_ENOMEM;
    f->reported = r;
    size_t *o = realloc(f->order, cap * sizeof(*o));
    if (!o)
        return SSE_ENOMEM;
    f->order = o;
    f->cap = cap;
    return 0;
}

static void took_position(void *ud, int status, uint64_t pos)
{
    *(uint64_t *)ud = status ? 0 : pos;
}

static int f_append(sse_store *s, const sse_store_entry *e, sse_store_append_cb cb, void *ud)
{
    struct fake *f = (struct fake *)s;
    if (f->closing)
        return SSE_ECLOSED;
    if (!e->frame)
        return SSE_EINVAL;
    if (f->fail == FAKE_FAIL_RETURN)
        return SSE_EIO;
    if (f->fail == FAKE_FAIL_CB_NOW) {
        if (cb)
            cb(ud, SSE_EIO, 0);
        return 0;
    }
    uint64_t pos = 0;
    int rc = grow(f);
    if (!rc && f->fail < 0) /* taken now (positions in call order), visible once reported */
        rc = sse_store_append(f->inner, e, took_position, &pos);
    if (rc)
        return rc;
    struct call *c = call_new(f, K_APPEND);
    char *id = malloc(e->id_len + 1);
    if (!c || !id)
        abort(); /* test code: the system allocator does not fail here */
    memcpy(id, e->id, e->id_len);
    id[e->id_len] = '\0';
    c->k = f->n;
    c->pos = pos;
    c->cb = cb;
    c->ud = ud;
    f->ids[f->n] = id;
    f->reported[f->n] = 0;
    f->n++;
    /* Out of turn: in a burst the even calls take longer, so #2 reports before #1. */
    if (!f->hold)
        uv_timer_start(&c->t, fire, c->k % 2 == 0 ? 20 : 2, 0);
    if (f->on_append)
        f->on_append(f->on_append_ud, f->n);
    return 0;
}

static int defer_read(struct fake *f, int kind, const char *id, size_t id_len, size_t max,
                      sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    if (f->closing)
        return SSE_ECLOSED;
    if (f->fail >= 0 || f->sync_reads) { /* read synchronously (the failing fake holds nothing) */
        if (kind == K_REPLAY)
            return sse_store_replay(f->inner, id, id_len, each, done, ud);
        if (kind == K_FROM)
            return sse_store_replay_from(f->inner, max, each, done, ud);
        return sse_store_scan_back(f->inner, id, id_len, max, each, done, ud);
    }
    struct call *c = call_new(f, kind);
    if (!c || (id && !(c->id = malloc(id_len + 1))))
        abort(); /* test code: the system allocator does not fail here */
    if (id) {
        memcpy(c->id, id, id_len);
        c->id[id_len] = '\0';
    }
    c->id_len = id_len;
    c->max = max;
    c->after = max; /* replay_from: the position rides in max */
    c->each = each;
    c->done = done;
    c->ud = ud;
    uv_timer_start(&c->t, fire, f->reads++ % 2 == 0 ? 15 : 1, 0);
    return 0;
}

static int f_replay(sse_store *s, const char *after_id, size_t after_len, sse_store_entry_cb each,
                    sse_store_done_cb done, void *ud)
{
    return defer_read((struct fake *)s, K_REPLAY, after_id, after_len, 0, each, done, ud);
}

static int f_scan_back(sse_store *s, const char *id, size_t id_len, size_t max,
                       sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    return defer_read((struct fake *)s, K_SCAN, id, id_len, max, each, done, ud);
}

static int f_replay_from(sse_store *s, uint64_t after, sse_store_entry_cb each,
                         sse_store_done_cb done, void *ud)
{
    return defer_read((struct fake *)s, K_FROM, NULL, 0, (size_t)after, each, done, ud);
}

static int f_last_id(sse_store *s, sse_buf *out)
{
    return sse_store_last_id(((struct fake *)s)->inner, out);
}

static int f_trim(sse_store *s, const sse_store_limits *lim, long long now_ms)
{
    return sse_store_trim(((struct fake *)s)->inner, lim, now_ms);
}

static void f_stats(const sse_store *s, size_t *count, size_t *bytes)
{
    sse_store_stats(((const struct fake *)s)->inner, count, bytes);
}

static void f_close(sse_store *s, void (*done)(void *ud), void *ud)
{
    struct fake *f = (struct fake *)s;
    f->closing = 1;
    f->close_done = done;
    f->close_ud = ud;
    /* Fail what is in flight, oldest first, then free (from the handles' close callbacks). */
    while (f->calls) {
        struct call *c = f->calls;
        f->calls = c->next;
        if (c->kind == K_APPEND && c->cb)
            c->cb(c->ud, SSE_ECLOSED, 0);
        else if (c->kind != K_APPEND && c->done)
            c->done(c->ud, SSE_ECLOSED, 0);
        uv_close((uv_handle_t *)&c->t, call_closed);
    }
    sse_store_free(f->inner);
    f->inner = NULL;
    uv_close((uv_handle_t *)&f->closer, closer_closed);
}

#define FAKE_OPS(from)                                                                             \
    {                                                                                              \
        .version = SSE_STORE_OPS_VERSION, .name = "fake", .append = f_append, .replay = f_replay,  \
        .scan_back = f_scan_back, .last_id = f_last_id, .trim = f_trim, .stats = f_stats,          \
        .close = f_close, .replay_from = from,                                                     \
    }
static const sse_store_ops fake_ops = FAKE_OPS(f_replay_from);
static const sse_store_ops fake_ops_without_from = FAKE_OPS(NULL); /* an optional op left out */

static int fake_new(sse_store **out, const sse_store_limits *lim, uv_loop_t *loop, int fail,
                    const sse_store_ops *ops)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (!f)
        return SSE_ENOMEM;
    int rc = sse_store_memory_new(&f->inner, lim);
    if (rc) {
        free(f);
        return rc;
    }
    f->base.ops = ops;
    f->loop = loop;
    f->fail = fail;
    uv_timer_init(loop, &f->closer);
    f->closer.data = f;
    f->open = 1;
    *out = &f->base;
    return 0;
}

int fake_async_new(sse_store **out, const sse_store_limits *lim, uv_loop_t *loop)
{
    return fake_new(out, lim, loop, -1, &fake_ops);
}

int fake_async_new_without_replay_from(sse_store **out, const sse_store_limits *lim,
                                       uv_loop_t *loop)
{
    return fake_new(out, lim, loop, -1, &fake_ops_without_from);
}

int fake_fail_new(sse_store **out, enum fake_fail_mode mode, uv_loop_t *loop)
{
    return fake_new(out, NULL, loop, (int)mode, &fake_ops);
}

void fake_async_set_sync_reads(sse_store *s, int sync)
{
    ((struct fake *)s)->sync_reads = sync;
}

void fake_async_set_hold(sse_store *s, int hold)
{
    ((struct fake *)s)->hold = hold;
}

int fake_async_complete(sse_store *s, size_t k)
{
    struct fake *f = (struct fake *)s;
    for (struct call *c = f->calls; c; c = c->next)
        if (c->kind == K_APPEND && c->k == k) {
            unlink_call(c);
            uv_timer_stop(&c->t);
            run_call(c);
            return 0;
        }
    return SSE_ENOTFOUND;
}

size_t fake_async_calls(const sse_store *s)
{
    return ((const struct fake *)s)->n;
}

size_t fake_async_reported(const sse_store *s)
{
    return ((const struct fake *)s)->n_order;
}

const char *fake_async_id(const sse_store *s, size_t k)
{
    const struct fake *f = (const struct fake *)s;
    return k < f->n && f->ids[k] ? f->ids[k] : "";
}

size_t fake_async_report_order(const sse_store *s, size_t *out, size_t max)
{
    const struct fake *f = (const struct fake *)s;
    size_t n = f->n_order < max ? f->n_order : max;
    memcpy(out, f->order, n * sizeof(*out));
    return n;
}

void fake_async_on_append(sse_store *s, void (*cb)(void *ud, size_t n), void *ud)
{
    struct fake *f = (struct fake *)s;
    f->on_append = cb;
    f->on_append_ud = ud;
}
