/*
 * memory.c: the in-memory history backend of store.h.
 *
 * A ring (deque) of entry pointers in append order, plus a chained hash id -> entry so that
 * Last-Event-ID finds its position in O(1). Each entry is one allocation holding its metadata,
 * its topic strings and its id, and a reference to the shared frame (the wire bytes are never
 * copied). Trimming by count, bytes and age happens after every append, oldest first.
 * Every call completes before it returns (callbacks fire synchronously).
 *
 * Not owned here: what an entry means (the hub), thread safety (one loop owns the store).
 */
#include "common/alloc.h"

#include <sse/store.h>
#include <stdint.h>
#include <string.h>

struct mem_entry {
    struct mem_entry *hnext; /* hash chain */
    uint64_t pos;            /* append position (1-based, consecutive) */
    uint32_t hash;           /* hash of the id */
    size_t bytes;            /* accounted size: frame + this block */
    sse_store_entry pub;     /* what callbacks see; strings point into this block */
};

struct mem_store {
    sse_store base;          /* must be first */
    sse_store_limits lim;    /* applied after every append */
    struct mem_entry **ring; /* ring[(head + i) % cap], i < count, oldest first */
    size_t cap, head, count;
    struct mem_entry **buckets; /* nbuckets is a power of two */
    size_t nbuckets;
    size_t bytes;      /* sum of entries' bytes */
    uint64_t next_pos; /* position of the next append */
};

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static struct mem_entry *ring_at(const struct mem_store *m, size_t i)
{
    return m->ring[(m->head + i) % m->cap];
}

static struct mem_entry *lookup(const struct mem_store *m, const char *id, size_t len)
{
    if (!m->nbuckets)
        return NULL;
    uint32_t h = hash_bytes(id, len);
    struct mem_entry *found = NULL;
    /* Chains are newest first; an id published twice resolves to its EARLIEST copy (draft-08:
       the replay then sends everything after it, the later copy included), so the last match. */
    for (struct mem_entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->pub.id_len == len && !memcmp(e->pub.id, id, len))
            found = e;
    return found;
}

static void hash_remove(struct mem_store *m, struct mem_entry *e)
{
    struct mem_entry **pp = &m->buckets[e->hash & (m->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
}

static int hash_grow(struct mem_store *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    struct mem_entry **b = sse__calloc(n, sizeof(*b));
    if (!b)
        return SSE_ENOMEM;
    /* Re-insert oldest first so that each chain stays newest-first. */
    for (size_t i = 0; i < m->count; i++) {
        struct mem_entry *e = ring_at(m, i);
        e->hnext = b[e->hash & (n - 1)];
        b[e->hash & (n - 1)] = e;
    }
    sse__free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

static int ring_grow(struct mem_store *m)
{
    size_t n = m->cap ? m->cap * 2 : 64;
    struct mem_entry **r = sse__malloc(n * sizeof(*r));
    if (!r)
        return SSE_ENOMEM;
    for (size_t i = 0; i < m->count; i++)
        r[i] = ring_at(m, i);
    sse__free(m->ring);
    m->ring = r;
    m->cap = n;
    m->head = 0;
    return 0;
}

static void drop_oldest(struct mem_store *m)
{
    struct mem_entry *e = ring_at(m, 0);
    m->head = (m->head + 1) % m->cap;
    m->count--;
    m->bytes -= e->bytes;
    hash_remove(m, e);
    sse_frame_unref(e->pub.frame);
    sse__free(e);
}

static int mem_trim(sse_store *s, const sse_store_limits *lim, long long now_ms)
{
    struct mem_store *m = (struct mem_store *)s;
    while (m->count) {
        const struct mem_entry *old = ring_at(m, 0);
        int over = (lim->max_count && m->count > lim->max_count) ||
                   (lim->max_bytes && m->bytes > lim->max_bytes) ||
                   (lim->max_age_ms > 0 && now_ms - old->pub.time_ms > lim->max_age_ms);
        if (!over)
            break;
        drop_oldest(m);
    }
    return 0;
}

static int mem_append(sse_store *s, const sse_store_entry *in, sse_store_append_cb cb, void *ud)
{
    struct mem_store *m = (struct mem_store *)s;
    if (!in->frame || (!in->id && in->id_len))
        return SSE_EINVAL;
    size_t strings = in->id_len + 1;
    for (size_t i = 0; i < in->n_topics; i++)
        strings += strlen(in->topics[i]) + 1;
    size_t hdr = sizeof(struct mem_entry) + in->n_topics * sizeof(char *);
    struct mem_entry *e = sse__malloc(hdr + strings);
    if (!e)
        return SSE_ENOMEM;
    if ((m->count == m->cap && ring_grow(m)) || (m->count >= m->nbuckets && hash_grow(m))) {
        sse__free(e);
        return SSE_ENOMEM;
    }
    char **topics = (char **)(e + 1);
    char *p = (char *)e + hdr;
    e->pub = *in;
    e->pub.topics = (const char *const *)topics;
    for (size_t i = 0; i < in->n_topics; i++) {
        size_t n = strlen(in->topics[i]) + 1;
        memcpy(p, in->topics[i], n);
        topics[i] = p;
        p += n;
    }
    if (in->id_len)
        memcpy(p, in->id, in->id_len);
    p[in->id_len] = '\0';
    e->pub.id = p;
    e->pub.frame = sse_frame_ref(in->frame);
    e->pub.position = e->pos = m->next_pos++;
    e->hash = hash_bytes(e->pub.id, e->pub.id_len);
    e->bytes = hdr + strings + sse_frame_len(in->frame);
    m->ring[(m->head + m->count) % m->cap] = e;
    m->count++;
    m->bytes += e->bytes;
    e->hnext = m->buckets[e->hash & (m->nbuckets - 1)];
    m->buckets[e->hash & (m->nbuckets - 1)] = e;
    uint64_t pos = e->pos;
    mem_trim(s, &m->lim, in->time_ms);
    if (cb)
        cb(ud, 0, pos);
    return 0;
}

/* Index in the ring of the entry with this id, or -1. */
static long long find_index(const struct mem_store *m, const char *id, size_t len)
{
    const struct mem_entry *e = lookup(m, id, len);
    if (!e || !m->count)
        return -1;
    return (long long)(e->pos - ring_at(m, 0)->pos);
}

static int mem_replay(sse_store *s, const char *after_id, size_t after_len, sse_store_entry_cb each,
                      sse_store_done_cb done, void *ud)
{
    struct mem_store *m = (struct mem_store *)s;
    size_t start = 0;
    if (after_id) {
        long long i = find_index(m, after_id, after_len);
        if (i < 0) {
            if (done)
                done(ud, 0, 0);
            return 0;
        }
        start = (size_t)i + 1;
    }
    for (size_t i = start; i < m->count; i++)
        if (each && each(ud, &ring_at(m, i)->pub))
            break;
    if (done)
        done(ud, 0, 1);
    return 0;
}

static int mem_replay_from(sse_store *s, uint64_t after, sse_store_entry_cb each,
                           sse_store_done_cb done, void *ud)
{
    struct mem_store *m = (struct mem_store *)s;
    /* Positions are consecutive in the ring: the start is one subtraction away. */
    uint64_t first = m->count ? ring_at(m, 0)->pos : m->next_pos;
    size_t start = after + 1 >= first ? (size_t)(after + 1 - first) : 0;
    for (size_t i = start; i < m->count; i++)
        if (each && each(ud, &ring_at(m, i)->pub))
            break;
    if (done)
        done(ud, 0, after + 1 >= first);
    return 0;
}

static int mem_scan_back(sse_store *s, const char *id, size_t id_len, size_t max,
                         sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    struct mem_store *m = (struct mem_store *)s;
    long long i = find_index(m, id, id_len);
    if (i < 0) {
        if (done)
            done(ud, 0, 0);
        return 0;
    }
    for (size_t n = 0; i >= 0 && n < max; i--, n++)
        if (each && each(ud, &ring_at(m, (size_t)i)->pub))
            break;
    if (done)
        done(ud, 0, 1);
    return 0;
}

static int mem_last_id(sse_store *s, sse_buf *out)
{
    struct mem_store *m = (struct mem_store *)s;
    if (!m->count)
        return SSE_ENOTFOUND;
    const struct mem_entry *e = ring_at(m, m->count - 1);
    sse_buf_reset(out);
    return sse_buf_append(out, e->pub.id, e->pub.id_len);
}

static void mem_stats(const sse_store *s, size_t *count, size_t *bytes)
{
    const struct mem_store *m = (const struct mem_store *)s;
    if (count)
        *count = m->count;
    if (bytes)
        *bytes = m->bytes;
}

static void mem_close(sse_store *s, void (*done)(void *ud), void *ud)
{
    struct mem_store *m = (struct mem_store *)s;
    while (m->count)
        drop_oldest(m);
    sse__free(m->ring);
    sse__free(m->buckets);
    sse__free(m);
    if (done) /* nothing is ever in flight: every call completed before it returned */
        done(ud);
}

static const sse_store_ops mem_ops = {
    SSE_STORE_OPS_VERSION,
    "memory",
    mem_append,
    mem_replay,
    mem_scan_back,
    mem_last_id,
    mem_trim,
    mem_stats,
    mem_close,
    mem_replay_from,
    NULL, /* always healthy */
};

int sse_store_memory_new(sse_store **out, const sse_store_limits *lim)
{
    struct mem_store *m = sse__calloc(1, sizeof(*m));
    if (!m)
        return SSE_ENOMEM;
    m->base.ops = &mem_ops;
    if (lim) {
        m->lim = *lim;
    } else {
        m->lim.max_count = 1000;
        m->lim.max_bytes = 16u << 20;
    }
    m->next_pos = 1;
    *out = &m->base;
    return 0;
}
