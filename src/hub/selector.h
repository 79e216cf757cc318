/*
 * selector.h: Mercure topic selectors (internal to the hub).
 *
 * draft-07: a selector is "*", an exact string, or an RFC 6570 URI template (any text holding
 * '{'). draft-08: a matcher is "*", Exact, or URLPattern (WHATWG URL Pattern subset: named groups
 * ":name", "*" wildcards, "{...}" groups with "?" "*" "+" modifiers; regexp groups "(...)" are
 * refused). A compiled selector is immutable and refcounted, so one compilation can be shared by
 * every subscription (and thread) that uses the same text. Matching never backtracks without
 * bound: templates and patterns compile to a small segment automaton that is simulated in
 * O(len(topic) * states) steps at most, and a hard step budget stops anything beyond it (a
 * budget overrun is a non-match).
 *
 * This file does not own: where selectors come from (hub), what a match allows (auth grants).
 */
#ifndef SSE__HUB_SELECTOR_H
#define SSE__HUB_SELECTOR_H

#include <stddef.h>

/* How the selector text is read. */
enum {
    SSE__SEL_AUTO = 0,  /* draft-07: "*" | URI template if it contains '{' | exact */
    SSE__SEL_EXACT,     /* byte-for-byte ("*" still means every topic) */
    SSE__SEL_TEMPLATE,  /* RFC 6570 URI template */
    SSE__SEL_URLPATTERN /* draft-08 URL Pattern ("*" alone means every topic) */
};

struct sse__selector; /* compiled, immutable, refcounted */

struct sse__selector_limits {
    size_t max_len;    /* longest selector text accepted; 0 = 1024 */
    unsigned max_vars; /* most template variables / pattern groups; 0 = 32 */
    size_t max_nodes;  /* a cache: automaton nodes of all the distinct compiled patterns alive
                          (the memory they hold, and what matching a new topic costs); a new
                          pattern past it is refused with SSE_EBUSY. 0 = unlimited */
};

/*
 * Compile text[0..len) read as kind. lim may be NULL (defaults). On success 0 and *out holds a new
 * reference (release with sse__selector_unref). Fails with SSE_EINVAL (malformed, or a regexp
 * group), SSE_ELIMIT (longer than max_len, more than max_vars groups) or SSE_ENOMEM; *out is not
 * written on failure.
 */
int sse__selector_compile(struct sse__selector **out, const char *text, size_t len, int kind,
                          const struct sse__selector_limits *lim);

/*
 * sse__selector_compile with the hub's URL as base (e.g. "https://hub.example/.well-known/mercure",
 * NULL = none; only read during the call). draft-08 resolves relative URL patterns and relative
 * topics against it: the URL pattern "/a/:x" then also matches "https://hub.example/a/1", and
 * "https://hub.example/a/:x" matches the topic "/a/1". Only URL patterns are affected (Exact
 * never resolves); scheme and host compare case-insensitively.
 */
int sse__selector_compile_base(struct sse__selector **out, const char *text, size_t len, int kind,
                               const struct sse__selector_limits *lim, const char *base);

/* 1 if topic[0..len) matches sel, else 0. Bounded cost (see top of file); never fails. */
int sse__selector_match(const struct sse__selector *sel, const char *topic, size_t len);

/*
 * Same as sse__selector_match and also reports the number of automaton steps it took in *steps
 * (may be NULL): tests and fuzzers assert on this cost instead of on wall time.
 */
int sse__selector_match_steps(const struct sse__selector *sel, const char *topic, size_t len,
                              size_t *steps);

/* The step budget of one match: beyond it the match stops and answers 0. */
#define SSE__SELECTOR_MAX_STEPS ((size_t)1 << 15)

/* 1 if sel is the "*" wildcard (matches every topic), else 0. */
int sse__selector_is_wildcard(const struct sse__selector *sel);

/*
 * 1 if sel matches exactly one string (exact selectors, and templates/patterns without
 * variables), and then *text / *len (borrowed from sel, valid while it is referenced) give that
 * string, for the hub's hash index; else 0 and nothing written. A URL pattern compiled with a
 * base is never "exact" (it matches its relative and its absolute spelling).
 */
int sse__selector_exact(const struct sse__selector *sel, const char **text, size_t *len);

/* The kind the selector was compiled as (SSE__SEL_EXACT/TEMPLATE/URLPATTERN; AUTO resolved). */
int sse__selector_kind(const struct sse__selector *sel);

/* A new reference to sel (returns sel). Not atomic: share across threads only read-only. */
struct sse__selector *sse__selector_ref(struct sse__selector *sel);
/* Drop a reference; frees on the last one. NULL is ignored. */
void sse__selector_unref(struct sse__selector *sel);

/* A bounded LRU cache (kind, text) -> compiled selector. Not thread-safe (one per loop). */
struct sse__selector_cache;

/* capacity 0 = 4096 entries. 0 or SSE_ENOMEM; *out written on success only. */
int sse__selector_cache_new(struct sse__selector_cache **out, size_t capacity,
                            const struct sse__selector_limits *lim);

/*
 * Set the base URL that URL patterns compiled by this cache are resolved against (see
 * sse__selector_compile_base; copied; NULL = none). Call it before the first get: entries already
 * cached keep the base they were compiled with. 0 or SSE_ENOMEM.
 */
int sse__selector_cache_set_base(struct sse__selector_cache *c, const char *base);

/*
 * The compiled selector for (text, kind), compiled on a miss and kept (least recently used entry
 * evicted past capacity). 0 and *out = a new reference (caller unrefs), or the compile error
 * (SSE_EINVAL / SSE_ELIMIT / SSE_ENOMEM); failures are not cached.
 */
int sse__selector_cache_get(struct sse__selector_cache *c, const char *text, size_t len, int kind,
                            struct sse__selector **out);

/* Counters for tests and /metrics: entries held, hits, misses, evictions. NULL outputs skipped. */
void sse__selector_cache_stats(const struct sse__selector_cache *c, size_t *entries, size_t *hits,
                               size_t *misses, size_t *evictions);

/* Automaton nodes of the distinct patterns compiled by this cache and still alive. */
size_t sse__selector_cache_nodes(const struct sse__selector_cache *c);

/* Free the cache and drop its references (selectors still referenced elsewhere live on). */
void sse__selector_cache_free(struct sse__selector_cache *c);

#endif
