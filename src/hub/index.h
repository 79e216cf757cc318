/*
 * index.h: the hub's subscription index (internal): which subscriptions match a topic.
 *
 * Exact selectors live in a hash map topic -> list of subscriptions; "*" subscriptions in one
 * list; every other selector (URI templates, URL patterns) in a pattern group, one group per
 * compiled selector (the hub's selector cache hands the same pointer for the same text), holding
 * every subscription that uses it. Matching a topic against the groups is cached per topic
 * (bounded LRU: topic -> matching groups), because real traffic repeats topics. Only a group
 * appearing or disappearing bumps the generation that invalidates the cache (lazily), so
 * subscribers joining or leaving an existing pattern keep the cache warm.
 *
 * Not owned here: compiling selectors (selector.h), what a subscription belongs to (the hub
 * embeds struct sse__isub in its own subscription objects), authorization.
 */
#ifndef SSE__HUB_INDEX_H
#define SSE__HUB_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct sse__selector;
struct sse__index;
struct sse__index_node;
struct sse__index_group;

/* One subscription as the index sees it; embedded in the hub's subscription object. */
struct sse__isub {
    struct sse__selector *sel;      /* borrowed: the owner keeps it alive while indexed */
    struct sse__isub *next, *prev;  /* in the list it is on */
    struct sse__index_node *node;   /* exact bucket, or NULL */
    struct sse__index_group *group; /* pattern group (same compiled selector), or NULL */
    int where;                      /* private: which list (0 = not indexed) */
};

/* pattern_cache: topics cached (0 = 4096). 0 or SSE_ENOMEM. */
int sse__index_new(struct sse__index **out, size_t pattern_cache);
void sse__index_free(struct sse__index *idx);

/* Add s (s->sel set). 0 or SSE_ENOMEM (s not added). */
int sse__index_add(struct sse__index *idx, struct sse__isub *s);
/* Remove s if indexed; safe to call twice. */
void sse__index_remove(struct sse__index *idx, struct sse__isub *s);

/*
 * Call cb for every subscription whose selector matches topic[0..len) (a subscription may be
 * reported once per call). cb must not add or remove subscriptions. Returns 0 or SSE_ENOMEM
 * (the pattern list was then walked without the cache: every match is still reported).
 */
int sse__index_match(struct sse__index *idx, const char *topic, size_t len,
                     void (*cb)(void *ud, struct sse__isub *s), void *ud);

/* Counters: exact keys, wildcard subs, pattern subs, cache entries / hits / misses. */
struct sse__index_stats {
    size_t exact_keys, wildcards, patterns, pattern_groups, cache_entries;
    uint64_t cache_hits, cache_misses;
};
void sse__index_get_stats(const struct sse__index *idx, struct sse__index_stats *out);

#endif
