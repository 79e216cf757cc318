/*
 * index.c: the subscription index of the hub (see index.h): exact hash, wildcard list, pattern
 * list and the bounded per-topic cache of pattern matches.
 */
#include "hub/index.h"

#include "common/alloc.h"
#include "hub/selector.h"

#include <sse/error.h>
#include <string.h>

enum { WHERE_NONE = 0, WHERE_EXACT, WHERE_WILD, WHERE_PATTERN };

struct sse__index_node { /* one exact topic */
    struct sse__index_node *hnext;
    uint32_t hash;
    size_t len;
    struct sse__isub *subs; /* list head */
    char key[];             /* NUL-terminated copy of the topic */
};

struct sse__index_group {                 /* every subscription of one compiled pattern */
    struct sse__index_group *next, *prev; /* idx->groups */
    struct sse__index_group *hnext;       /* hash by selector pointer */
    struct sse__selector *sel;            /* borrowed from the subscriptions (alive while n > 0) */
    struct sse__isub *subs;               /* list head */
    size_t n;
};

struct cache_entry {                         /* one topic's pattern matches */
    struct cache_entry *hnext;               /* hash chain */
    struct cache_entry *lru_prev, *lru_next; /* most recent at lru_head */
    uint32_t hash;
    uint64_t gen; /* generation it was computed at */
    size_t len, n, cap;
    struct sse__index_group **groups; /* matching pattern groups */
    char key[];
};

struct sse__index {
    struct sse__index_node **buckets;
    size_t nbuckets, nkeys;
    struct sse__isub *wild;             /* "*" list */
    struct sse__index_group *groups;    /* pattern groups */
    struct sse__index_group **gbuckets; /* selector pointer -> group, ngbuckets (power of 2) */
    size_t ngbuckets, ngroups;
    size_t nwild, npatterns;
    uint64_t gen;                  /* bumped when a group appears or disappears */
    struct cache_entry **cbuckets; /* cache hash, ccap buckets */
    size_t ccap, ccount;
    struct cache_entry *lru_head, *lru_tail;
    uint64_t hits, misses;
};

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int sse__index_new(struct sse__index **out, size_t pattern_cache)
{
    struct sse__index *idx = sse__calloc(1, sizeof(*idx));
    if (!idx)
        return SSE_ENOMEM;
    idx->ccap = pattern_cache ? pattern_cache : 4096;
    idx->cbuckets = sse__calloc(idx->ccap, sizeof(*idx->cbuckets));
    if (!idx->cbuckets) {
        sse__free(idx);
        return SSE_ENOMEM;
    }
    *out = idx;
    return 0;
}

static void list_push(struct sse__isub **head, struct sse__isub *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

static void list_unlink(struct sse__isub **head, struct sse__isub *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static struct sse__index_node *find_node(const struct sse__index *idx, const char *k, size_t len,
                                         uint32_t h)
{
    if (!idx->nbuckets)
        return NULL;
    for (struct sse__index_node *n = idx->buckets[h & (idx->nbuckets - 1)]; n; n = n->hnext)
        if (n->hash == h && n->len == len && !memcmp(n->key, k, len))
            return n;
    return NULL;
}

static int grow_buckets(struct sse__index *idx)
{
    size_t nb = idx->nbuckets ? idx->nbuckets * 2 : 64;
    struct sse__index_node **b = sse__calloc(nb, sizeof(*b));
    if (!b)
        return SSE_ENOMEM;
    for (size_t i = 0; i < idx->nbuckets; i++) {
        struct sse__index_node *n = idx->buckets[i], *next;
        for (; n; n = next) {
            next = n->hnext;
            n->hnext = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    sse__free(idx->buckets);
    idx->buckets = b;
    idx->nbuckets = nb;
    return 0;
}

static size_t ptr_hash(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    v ^= v >> 17;
    v *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(v ^ (v >> 29));
}

static struct sse__index_group *find_group(const struct sse__index *idx,
                                           const struct sse__selector *sel)
{
    if (!idx->ngbuckets)
        return NULL;
    for (struct sse__index_group *g = idx->gbuckets[ptr_hash(sel) & (idx->ngbuckets - 1)]; g;
         g = g->hnext)
        if (g->sel == sel)
            return g;
    return NULL;
}

static int grow_groups(struct sse__index *idx)
{
    size_t nb = idx->ngbuckets ? idx->ngbuckets * 2 : 16;
    struct sse__index_group **b = sse__calloc(nb, sizeof(*b));
    if (!b)
        return SSE_ENOMEM;
    for (struct sse__index_group *g = idx->groups; g; g = g->next) {
        size_t k = ptr_hash(g->sel) & (nb - 1);
        g->hnext = b[k];
        b[k] = g;
    }
    sse__free(idx->gbuckets);
    idx->gbuckets = b;
    idx->ngbuckets = nb;
    return 0;
}

int sse__index_add(struct sse__index *idx, struct sse__isub *s)
{
    const char *text;
    size_t len;
    s->node = NULL;
    s->group = NULL;
    if (sse__selector_is_wildcard(s->sel)) {
        list_push(&idx->wild, s);
        idx->nwild++;
        s->where = WHERE_WILD;
        return 0;
    }
    if (sse__selector_exact(s->sel, &text, &len)) {
        uint32_t h = hash_bytes(text, len);
        struct sse__index_node *n = find_node(idx, text, len, h);
        if (!n) {
            if (idx->nkeys >= idx->nbuckets && grow_buckets(idx))
                return SSE_ENOMEM;
            n = sse__malloc(sizeof(*n) + len + 1);
            if (!n)
                return SSE_ENOMEM;
            n->hash = h;
            n->len = len;
            n->subs = NULL;
            memcpy(n->key, text, len);
            n->key[len] = '\0';
            n->hnext = idx->buckets[h & (idx->nbuckets - 1)];
            idx->buckets[h & (idx->nbuckets - 1)] = n;
            idx->nkeys++;
        }
        list_push(&n->subs, s);
        s->node = n;
        s->where = WHERE_EXACT;
        return 0;
    }
    struct sse__index_group *g = find_group(idx, s->sel);
    if (!g) {
        if (idx->ngroups >= idx->ngbuckets && grow_groups(idx))
            return SSE_ENOMEM;
        g = sse__calloc(1, sizeof(*g));
        if (!g)
            return SSE_ENOMEM;
        g->sel = s->sel;
        size_t b = ptr_hash(s->sel) & (idx->ngbuckets - 1);
        g->hnext = idx->gbuckets[b];
        idx->gbuckets[b] = g;
        g->next = idx->groups;
        if (idx->groups)
            idx->groups->prev = g;
        idx->groups = g;
        idx->ngroups++;
        idx->gen++; /* a new pattern: cached answers may miss it */
    }
    list_push(&g->subs, s);
    g->n++;
    s->group = g;
    idx->npatterns++;
    s->where = WHERE_PATTERN;
    return 0;
}

void sse__index_remove(struct sse__index *idx, struct sse__isub *s)
{
    switch (s->where) {
    case WHERE_WILD:
        list_unlink(&idx->wild, s);
        idx->nwild--;
        break;
    case WHERE_PATTERN: {
        struct sse__index_group *g = s->group;
        list_unlink(&g->subs, s);
        idx->npatterns--;
        s->group = NULL;
        if (--g->n == 0) {
            struct sse__index_group **pp = &idx->gbuckets[ptr_hash(g->sel) & (idx->ngbuckets - 1)];
            while (*pp != g)
                pp = &(*pp)->hnext;
            *pp = g->hnext;
            if (g->prev)
                g->prev->next = g->next;
            else
                idx->groups = g->next;
            if (g->next)
                g->next->prev = g->prev;
            idx->ngroups--;
            idx->gen++; /* cached entries may point at g: recomputed before use */
            sse__free(g);
        }
        break;
    }
    case WHERE_EXACT: {
        struct sse__index_node *n = s->node;
        list_unlink(&n->subs, s);
        if (!n->subs) {
            struct sse__index_node **pp = &idx->buckets[n->hash & (idx->nbuckets - 1)];
            while (*pp != n)
                pp = &(*pp)->hnext;
            *pp = n->hnext;
            idx->nkeys--;
            sse__free(n);
        }
        s->node = NULL;
        break;
    }
    default:
        return;
    }
    s->where = WHERE_NONE;
}

static void lru_unlink(struct sse__index *idx, struct cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        idx->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        idx->lru_tail = e->lru_prev;
}

static void lru_front(struct sse__index *idx, struct cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = idx->lru_head;
    if (idx->lru_head)
        idx->lru_head->lru_prev = e;
    idx->lru_head = e;
    if (!idx->lru_tail)
        idx->lru_tail = e;
}

static void cache_drop(struct sse__index *idx, struct cache_entry *e)
{
    struct cache_entry **pp = &idx->cbuckets[e->hash % idx->ccap];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(idx, e);
    idx->ccount--;
    sse__free(e->groups);
    sse__free(e);
}

/* (Re)compute e's list against the pattern groups (one match per distinct pattern). */
static int cache_fill(struct sse__index *idx, struct cache_entry *e)
{
    e->n = 0;
    for (struct sse__index_group *g = idx->groups; g; g = g->next) {
        if (!sse__selector_match(g->sel, e->key, e->len))
            continue;
        if (e->n == e->cap) {
            size_t nc = e->cap ? e->cap * 2 : 4;
            struct sse__index_group **a = sse__realloc(e->groups, nc * sizeof(*a));
            if (!a)
                return SSE_ENOMEM;
            e->groups = a;
            e->cap = nc;
        }
        e->groups[e->n++] = g;
    }
    e->gen = idx->gen;
    return 0;
}

static void report_group(struct sse__index_group *g, void (*cb)(void *ud, struct sse__isub *s),
                         void *ud)
{
    for (struct sse__isub *s = g->subs; s; s = s->next)
        cb(ud, s);
}

static void match_uncached(struct sse__index *idx, const char *topic, size_t len,
                           void (*cb)(void *ud, struct sse__isub *s), void *ud)
{
    for (struct sse__index_group *g = idx->groups; g; g = g->next)
        if (sse__selector_match(g->sel, topic, len))
            report_group(g, cb, ud);
}

int sse__index_match(struct sse__index *idx, const char *topic, size_t len,
                     void (*cb)(void *ud, struct sse__isub *s), void *ud)
{
    uint32_t h = hash_bytes(topic, len);
    struct sse__index_node *n = find_node(idx, topic, len, h);
    if (n)
        for (struct sse__isub *s = n->subs; s; s = s->next)
            cb(ud, s);
    for (struct sse__isub *s = idx->wild; s; s = s->next)
        cb(ud, s);
    if (!idx->groups)
        return 0;

    struct cache_entry *e = idx->cbuckets[h % idx->ccap];
    while (e && !(e->hash == h && e->len == len && !memcmp(e->key, topic, len)))
        e = e->hnext;
    if (e) {
        lru_unlink(idx, e);
        lru_front(idx, e);
        if (e->gen == idx->gen) {
            idx->hits++;
        } else {
            idx->misses++;
            if (cache_fill(idx, e)) {
                cache_drop(idx, e);
                match_uncached(idx, topic, len, cb, ud);
                return SSE_ENOMEM;
            }
        }
    } else {
        idx->misses++;
        if (idx->ccount >= idx->ccap)
            cache_drop(idx, idx->lru_tail);
        e = sse__calloc(1, sizeof(*e) + len + 1);
        if (!e) {
            match_uncached(idx, topic, len, cb, ud);
            return SSE_ENOMEM;
        }
        e->hash = h;
        e->len = len;
        memcpy(e->key, topic, len);
        e->hnext = idx->cbuckets[h % idx->ccap];
        idx->cbuckets[h % idx->ccap] = e;
        lru_front(idx, e);
        idx->ccount++;
        if (cache_fill(idx, e)) {
            cache_drop(idx, e);
            match_uncached(idx, topic, len, cb, ud);
            return SSE_ENOMEM;
        }
    }
    for (size_t i = 0; i < e->n; i++)
        report_group(e->groups[i], cb, ud);
    return 0;
}

void sse__index_get_stats(const struct sse__index *idx, struct sse__index_stats *out)
{
    out->exact_keys = idx->nkeys;
    out->wildcards = idx->nwild;
    out->patterns = idx->npatterns;
    out->pattern_groups = idx->ngroups;
    out->cache_entries = idx->ccount;
    out->cache_hits = idx->hits;
    out->cache_misses = idx->misses;
}

void sse__index_free(struct sse__index *idx)
{
    if (!idx)
        return;
    while (idx->lru_head)
        cache_drop(idx, idx->lru_head);
    for (size_t i = 0; i < idx->nbuckets; i++) {
        struct sse__index_node *n = idx->buckets[i], *next;
        for (; n; n = next) {
            next = n->hnext;
            for (struct sse__isub *s = n->subs; s; s = s->next)
                s->where = WHERE_NONE;
            sse__free(n);
        }
    }
    while (idx->groups) {
        struct sse__index_group *g = idx->groups;
        idx->groups = g->next;
        for (struct sse__isub *s = g->subs; s; s = s->next)
            s->where = WHERE_NONE;
        sse__free(g);
    }
    sse__free(idx->gbuckets);
    sse__free(idx->buckets);
    sse__free(idx->cbuckets);
    sse__free(idx);
}
