/*
 * selector_cache.c: a bounded LRU cache of compiled selectors, keyed by (text, kind), shared by
 * every subscriber and token of a hub so that one selector text is compiled once.
 */
#include "hub/selector_nfa.h"

/* ---- the LRU cache ---------------------------------------------------------------------- */

struct cache_entry {
    struct cache_entry *hnext;       /* hash chain */
    struct cache_entry *prev, *next; /* LRU list: head = most recent */
    uint64_t hash;
    int kind;  /* the kind asked for (AUTO stays AUTO) */
    char *key; /* the text asked for */
    size_t key_len;
    struct sse__selector *sel; /* one reference held by the cache */
};

void sse__selector_budget_release(struct sse__selector *sel)
{
    struct sse__selector_budget *b = sel->budget;
    if (!b)
        return;
    b->nodes_live -= sel->n_nodes;
    sel->budget = NULL;
    if (--b->refs == 0)
        sse__free(b);
}

struct sse__selector_cache {
    struct cache_entry **buckets;
    size_t n_buckets;                /* power of two */
    struct cache_entry *head, *tail; /* LRU list */
    size_t n, capacity;
    struct sse__selector_limits lim;
    char *base; /* URL patterns resolve against it (sse__selector_cache_set_base) */
    struct sse__selector_budget *budget; /* the nodes of the patterns alive (lim.max_nodes) */
    size_t hits, misses, evictions;
};

static uint64_t fnv1a(const char *s, size_t n, int kind)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(unsigned)kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int sse__selector_cache_new(struct sse__selector_cache **out, size_t capacity,
                            const struct sse__selector_limits *lim)
{
    if (!out)
        return SSE_EINVAL;
    struct sse__selector_cache *c = sse__calloc(1, sizeof(*c));
    if (!c)
        return SSE_ENOMEM;
    c->capacity = capacity ? capacity : 4096;
    c->n_buckets = 16;
    while (c->n_buckets < c->capacity && c->n_buckets < ((size_t)1 << 20))
        c->n_buckets <<= 1;
    c->buckets = sse__calloc(c->n_buckets, sizeof(*c->buckets));
    c->budget = sse__calloc(1, sizeof(*c->budget));
    if (!c->buckets || !c->budget) {
        sse__free(c->buckets);
        sse__free(c->budget);
        sse__free(c);
        return SSE_ENOMEM;
    }
    c->budget->refs = 1;
    if (lim)
        c->lim = *lim;
    *out = c;
    return 0;
}

static void lru_unlink(struct sse__selector_cache *c, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct sse__selector_cache *c, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void entry_free(struct cache_entry *e)
{
    sse__selector_unref(e->sel);
    sse__free(e->key);
    sse__free(e);
}

static void cache_remove(struct sse__selector_cache *c, struct cache_entry *e)
{
    struct cache_entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    entry_free(e);
    c->n--;
    c->evictions++;
}

static void cache_evict_tail(struct sse__selector_cache *c)
{
    cache_remove(c, c->tail);
}

size_t sse__selector_cache_nodes(const struct sse__selector_cache *c)
{
    return c->budget->nodes_live;
}

int sse__selector_cache_get(struct sse__selector_cache *c, const char *text, size_t len, int kind,
                            struct sse__selector **out)
{
    if (!c || !out || (!text && len))
        return SSE_EINVAL;
    uint64_t h = fnv1a(text, len, kind);
    struct cache_entry **bucket = &c->buckets[h & (c->n_buckets - 1)];
    for (struct cache_entry *e = *bucket; e; e = e->hnext) {
        if (e->hash == h && e->kind == kind && e->key_len == len &&
            (len == 0 || !memcmp(e->key, text, len))) {
            c->hits++;
            lru_unlink(c, e);
            lru_push_front(c, e);
            *out = sse__selector_ref(e->sel);
            return 0;
        }
    }
    c->misses++;
    struct sse__selector *sel;
    int rc = sse__selector_compile_base(&sel, text, len, kind, &c->lim, c->base);
    if (rc)
        return rc;
    if (sel->n_nodes && c->lim.max_nodes) {
        /* Over the budget: first drop cached patterns nobody else holds, oldest first. */
        struct cache_entry *v = c->tail;
        while (c->budget->nodes_live + sel->n_nodes > c->lim.max_nodes && v) {
            struct cache_entry *prev = v->prev;
            if (v->sel->refs == 1 && v->sel->n_nodes)
                cache_remove(c, v);
            v = prev;
        }
        if (c->budget->nodes_live + sel->n_nodes > c->lim.max_nodes) {
            sse__selector_unref(sel);
            return SSE_EBUSY;
        }
    }
    if (sel->n_nodes) {
        sel->budget = c->budget;
        c->budget->refs++;
        c->budget->nodes_live += sel->n_nodes;
    }
    struct cache_entry *e = sse__calloc(1, sizeof(*e));
    if (!e)
        goto out_unref;
    e->key = sse__strndup(text ? text : "", len);
    if (!e->key)
        goto out_free_entry;
    e->hash = h;
    e->kind = kind;
    e->key_len = len;
    e->sel = sse__selector_ref(sel);
    if (c->n == c->capacity)
        cache_evict_tail(c);
    e->hnext = *bucket;
    *bucket = e;
    lru_push_front(c, e);
    c->n++;
    *out = sel;
    return 0;

out_free_entry:
    sse__free(e);
out_unref:
    sse__selector_unref(sel);
    return SSE_ENOMEM;
}

int sse__selector_cache_set_base(struct sse__selector_cache *c, const char *base)
{
    char *copy = NULL;
    if (!c)
        return SSE_EINVAL;
    if (base && !(copy = sse__strdup(base)))
        return SSE_ENOMEM;
    sse__free(c->base);
    c->base = copy;
    return 0;
}

void sse__selector_cache_stats(const struct sse__selector_cache *c, size_t *entries, size_t *hits,
                               size_t *misses, size_t *evictions)
{
    if (entries)
        *entries = c ? c->n : 0;
    if (hits)
        *hits = c ? c->hits : 0;
    if (misses)
        *misses = c ? c->misses : 0;
    if (evictions)
        *evictions = c ? c->evictions : 0;
}

void sse__selector_cache_free(struct sse__selector_cache *c)
{
    if (!c)
        return;
    struct cache_entry *e = c->head;
    while (e) {
        struct cache_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    sse__free(c->buckets);
    sse__free(c->base);
    if (--c->budget->refs == 0) /* else the selectors still alive free it */
        sse__free(c->budget);
    sse__free(c);
}
