/*
 * hub_presence.c: the subscriptions of every node, for the subscriptions API (issue 11).
 *
 * With a bus that shares presence (bus.h; the Redis bus), each active subscription of this hub
 * is one presence entry: the key identifies it (its form, selector text and subscriber id,
 * which is what the API's URLs are resolved against), the value is its JSON object exactly as
 * this hub writes it in the API. Entries are written when a subscription becomes active or
 * inactive (beside its subscription event) and whenever the bus asks for the whole set. The
 * API lists the other nodes' entries through the bus and merges them with the local ones.
 *
 * Only with `subscriptions` on: without the API nothing is written, so presence costs nothing.
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"

#include <sse/bus.h>
#include <string.h>

/* The key: one byte of form ('0' + SSE__FORM_*), the selector text, a NUL, the subscriber id. */
static int presence_key(sse_buf *b, const struct sse__hub_sub *sub)
{
    int rc = sse_buf_append_byte(b, (char)('0' + sub->form));
    if (!rc)
        rc = sse_buf_append(b, sub->text, sub->len);
    if (!rc)
        rc = sse_buf_append_byte(b, '\0');
    if (!rc)
        rc = sse_buf_append_str(b, sub->owner->id);
    return rc;
}

int sse__hub_presence_decode(const char *key, size_t len, struct sse__hub_remote_sub *out)
{
    if (len < 2 || key[0] < '0' + SSE__FORM_TOPIC || key[0] > '0' + SSE__FORM_URLPATTERN)
        return -1;
    const char *nul = memchr(key + 1, '\0', len - 1);
    if (!nul || nul + 1 == key + len || memchr(nul + 1, '\0', (size_t)(key + len - nul - 1)))
        return -1;
    out->form = key[0] - '0';
    out->text = key + 1;
    out->len = (size_t)(nul - key - 1);
    out->id = nul + 1;
    out->id_len = (size_t)(key + len - nul - 1);
    return 0;
}

static int enabled(const sse_hub *h)
{
    return h->o.subscriptions && h->o.bus && sse_bus_has_presence(h->o.bus);
}

static void put_sub(sse_hub *h, const struct sse__hub_sub *sub, int active,
                    sse_bus_presence_put_cb put, void *ctx)
{
    sse_buf key, val;
    sse_buf_init(&key, 0);
    sse_buf_init(&val, 0);
    int rc = presence_key(&key, sub);
    if (!rc && active)
        rc = sse__hub_sub_json(&val, sub, 1, 0);
    if (rc)
        sse__hub_log(h, SSE_LOG_WARN, "presence: %s", sse_strerror(rc));
    else if (put)
        put(ctx, key.data, key.len, val.data, val.len);
    else if ((rc = sse_bus_presence_set(h->o.bus, key.data, key.len, active ? val.data : NULL,
                                        val.len)))
        sse__hub_log(h, SSE_LOG_WARN, "presence: %s", sse_strerror(rc));
    sse_buf_free(&key);
    sse_buf_free(&val);
}

/* The bus asks for every entry: the active subscriptions of open subscribers. */
static void dump(void *ud, sse_bus_presence_put_cb put, void *ctx)
{
    sse_hub *h = ud;
    for (struct sse__hub_subscriber *s = h->subscribers; s; s = s->next)
        if (s->st)
            for (size_t i = 0; i < s->n_subs; i++)
                put_sub(h, &s->subs[i], 1, put, ctx);
}

int sse__hub_presence_start(sse_hub *h)
{
    return enabled(h) ? sse_bus_presence_start(h->o.bus, dump, h) : 0;
}

void sse__hub_presence_update(sse_hub *h, const struct sse__hub_subscriber *s, int active)
{
    if (!enabled(h) || h->closing)
        return;
    for (size_t i = 0; i < s->n_subs; i++)
        put_sub(h, &s->subs[i], active, NULL, NULL);
}

/* ---------------------------------------------------------------- listing */

struct listing {
    sse_hub *h;
    void (*done)(void *ud, struct sse__hub_remote_sub *subs, size_t n, int status);
    void *ud;
    struct sse__hub_remote_sub *subs;
    size_t n, cap;
    int oom;
};

static void each(void *ud, const char *key, size_t key_len, const char *val, size_t val_len)
{
    struct listing *l = ud;
    struct sse__hub_remote_sub r;
    if (l->oom || sse__hub_presence_decode(key, key_len, &r) || !val_len || val[0] != '{')
        return; /* not an entry of ours: skipped */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct sse__hub_remote_sub *v = sse__realloc(l->subs, cap * sizeof(*v));
        if (!v) {
            l->oom = 1;
            return;
        }
        l->subs = v, l->cap = cap;
    }
    /* One allocation holds the key and the value; the slices point into it. */
    char *copy = sse__malloc(key_len + val_len + 1);
    if (!copy) {
        l->oom = 1;
        return;
    }
    memcpy(copy, key, key_len);
    memcpy(copy + key_len, val, val_len);
    copy[key_len + val_len] = '\0';
    sse__hub_presence_decode(copy, key_len, &r);
    r.json = copy + key_len;
    r.json_len = val_len;
    l->subs[l->n++] = r;
}

static void listed(void *ud, int status)
{
    struct listing *l = ud;
    if (!status && l->oom)
        status = SSE_ENOMEM;
    if (status)
        sse__hub_log(l->h, SSE_LOG_WARN, "presence: the other nodes' subscriptions: %s",
                     sse_strerror(status));
    l->done(l->ud, l->subs, l->n, status);
    for (size_t i = 0; i < l->n; i++)
        sse__free((void *)l->subs[i].text - 1);
    sse__free(l->subs);
    sse__free(l);
}

int sse__hub_presence_list(sse_hub *h,
                           void (*done)(void *ud, struct sse__hub_remote_sub *subs, size_t n,
                                        int status),
                           void *ud)
{
    if (!enabled(h))
        return SSE_EUNSUPPORTED;
    struct listing *l = sse__calloc(1, sizeof(*l));
    if (!l)
        return SSE_ENOMEM;
    l->h = h, l->done = done, l->ud = ud;
    int rc = sse_bus_presence_list(h->o.bus, each, listed, l);
    if (rc)
        sse__free(l);
    return rc;
}
