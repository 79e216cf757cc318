/*
 * test_selector.c: topic selectors: exact, "*", every RFC 6570 operator, URL patterns, limits,
 * the step bound on pathological patterns (asserted on the step counter, never on wall time),
 * the LRU cache and allocation-failure sweeps.
 */
#include "harness/check.h"
#include "harness/failalloc.h"
#include "hub/selector.h"

#include <sse/error.h>
#include <string.h>

struct row {
    const char *pattern;
    const char *topic;
    int want;
};

static int run_rows(const struct row *rows, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        struct sse__selector *s = NULL;
        int rc = sse__selector_compile(&s, rows[i].pattern, strlen(rows[i].pattern), kind, NULL);
        if (rc) {
            fprintf(stderr, "  compile failed (%d): %s\n", rc, rows[i].pattern);
            return 1;
        }
        int got = sse__selector_match(s, rows[i].topic, strlen(rows[i].topic));
        sse__selector_unref(s);
        if (got != rows[i].want) {
            fprintf(stderr, "  pattern %s topic %s: got %d want %d\n", rows[i].pattern,
                    rows[i].topic, got, rows[i].want);
            return 1;
        }
    }
    return 0;
}

#define ROWS(r, kind) run_rows(r, sizeof(r) / sizeof(r[0]), kind)

static int test_exact_and_wildcard(void)
{
    static const struct row r[] = {
        {"https://example.com/foo", "https://example.com/foo", 1},
        {"https://example.com/foo", "https://example.com/foo/", 0},
        {"https://example.com/foo", "https://example.com/fo", 0},
        {"https://example.com/foo", "HTTPS://example.com/foo", 0},
        {"*", "anything at all", 1},
        {"*", "", 1},
        {"", "", 1},
        {"", "x", 0},
    };
    CHECK_EQ_INT(ROWS(r, SSE__SEL_AUTO), 0);
    CHECK_EQ_INT(ROWS(r, SSE__SEL_EXACT), 0);
    struct sse__selector *s;
    const char *t;
    size_t len;
    CHECK_EQ_INT(sse__selector_compile(&s, "a/b", 3, SSE__SEL_AUTO, NULL), 0);
    CHECK_EQ_INT(sse__selector_exact(s, &t, &len), 1);
    CHECK_EQ_MEM(t, len, "a/b", 3);
    CHECK_EQ_INT(sse__selector_is_wildcard(s), 0);
    CHECK_EQ_INT(sse__selector_kind(s), SSE__SEL_EXACT);
    sse__selector_unref(s);
    CHECK_EQ_INT(sse__selector_compile(&s, "*", 1, SSE__SEL_URLPATTERN, NULL), 0);
    CHECK_EQ_INT(sse__selector_is_wildcard(s), 1);
    CHECK_EQ_INT(sse__selector_exact(s, &t, &len), 0);
    sse__selector_unref(s);
    /* a '{' in an EXACT selector is just a byte */
    CHECK_EQ_INT(sse__selector_compile(&s, "a{b}", 4, SSE__SEL_EXACT, NULL), 0);
    CHECK_EQ_INT(sse__selector_match(s, "a{b}", 4), 1);
    CHECK_EQ_INT(sse__selector_match(s, "ab", 2), 0);
    sse__selector_unref(s);
    return 0;
}

static int test_template_simple(void)
{
    static const struct row r[] = {
        {"https://example.com/books/{id}", "https://example.com/books/1", 1},
        {"https://example.com/books/{id}", "https://example.com/books/", 1}, /* empty value */
        {"https://example.com/books/{id}", "https://example.com/books/a%2Fb", 1},
        {"https://example.com/books/{id}", "https://example.com/books/1/secret", 0},
        {"https://example.com/books/{id}", "https://example.com/books/1?x", 0},
        {"https://example.com/books/{id}", "https://example.com/books/1#x", 0},
        {"https://example.com/books/{id}", "https://example.com/book/1", 0},
        {"https://example.com/books/{id}.json", "https://example.com/books/12.json", 1},
        {"https://example.com/books/{id}.json", "https://example.com/books/12.xml", 0},
        {"/users/{uid}/books/{bid}", "/users/7/books/9", 1},
        {"/users/{uid}/books/{bid}", "/users/7/books/9/x", 0},
        {"{a}", "a,b,c", 1}, /* list values are comma-joined */
        {"{a,b}", "x,y", 1},
        {"x{a}y", "xy", 1},
        {"{var:3}", "abc", 1},
        {"{var:3}", "abcd", 0},
        {"{var:3}", "", 1},
        {"https://example.com/caf\xc3\xa9/{x}", "https://example.com/caf\xc3\xa9/\xc3\xa9t\xc3\xa9",
         1},
    };
    return ROWS(r, SSE__SEL_AUTO);
}

static int test_template_operators(void)
{
    static const struct row r[] = {
        /* + reserved: may contain '/' and '?' */
        {"https://example.com/{+path}", "https://example.com/a/b/c", 1},
        {"https://example.com/{+path}", "https://example.com/a/b?c=d", 1},
        {"{+path}/here", "/foo/bar/here", 1},
        {"{+path}/here", "/foo/bar/there", 0},
        /* # fragment */
        {"/doc{#frag}", "/doc#sec,1", 1},
        {"/doc{#frag}", "/doc", 1},
        {"/doc{#frag}", "/doc#a/b", 1},
        {"/doc{#frag}", "/docx", 0},
        /* . label */
        {"/file{.ext}", "/file.json", 1},
        {"/file{.ext}", "/file", 1},
        {"/file{.ext}", "/file/json", 0},
        {"X{.a,b}", "X.1.2", 1},
        {"X{.a,b}", "X.1", 1},
        {"X{.a,b}", "X.", 1}, /* both defined and empty */
        /* / path segments */
        {"/api{/ver,res}", "/api/v1/books", 1},
        {"/api{/ver,res}", "/api/v1", 1},
        {"/api{/ver,res}", "/api", 1},
        {"/api{/ver,res}", "/api/v1/books/3", 0},
        {"/api{/seg*}", "/api/a/b/c/d", 1},
        {"/api{/seg*}", "/api/a?b", 0},
        /* ; path parameters */
        {"/m{;x,y}", "/m;x=1;y=2", 1},
        {"/m{;x,y}", "/m;x", 1},
        {"/m{;x,y}", "/m;y=2", 1},
        {"/m{;x,y}", "/m;z=2", 0},
        {"/m{;x,y}", "/m;y=2;x=1", 0}, /* order is part of the template */
        /* ? query and & continuation */
        {"/s{?q,page}", "/s?q=cat&page=2", 1},
        {"/s{?q,page}", "/s?page=2", 1},
        {"/s{?q,page}", "/s", 1},
        {"/s{?q,page}", "/s?", 0},
        {"/s{?q,page}", "/s?other=1", 0},
        {"/s{?q,page}", "/s?q=a/b", 0},
        {"/s?fixed=1{&x}", "/s?fixed=1&x=2", 1},
        {"/s?fixed=1{&x}", "/s?fixed=1", 1},
        {"/s?fixed=1{&x}", "/s?fixed=1&y=2", 0},
        {"/s{?list*}", "/s?a=1&b=2&c=3", 1},
        /* prefix on a named operator */
        {"/s{?q:2}", "/s?q=ab", 1},
        {"/s{?q:2}", "/s?q=abc", 0},
    };
    return ROWS(r, SSE__SEL_AUTO);
}

static int test_template_invalid(void)
{
    static const char *bad[] = {"{",     "}",       "a{b",       "a}b",   "{}",   "{!x}", "{=x}",
                                "{x:0}", "{x:abc}", "{x:12345}", "{a b}", "{x,}", "{.}",  "{{x}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sse__selector *s = (struct sse__selector *)1;
        int rc = sse__selector_compile(&s, bad[i], strlen(bad[i]), SSE__SEL_TEMPLATE, NULL);
        if (rc != SSE_EINVAL) {
            fprintf(stderr, "  %s: rc %d\n", bad[i], rc);
            return 1;
        }
        CHECK(s == (struct sse__selector *)1); /* no output on failure */
    }
    return 0;
}

static int test_urlpattern(void)
{
    static const struct row r[] = {
        {"https://example.com/books/:id", "https://example.com/books/1", 1},
        {"https://example.com/books/:id", "https://example.com/books/", 0}, /* :id needs 1+ */
        {"https://example.com/books/:id", "https://example.com/books/1/2", 0},
        {"https://example.com/books/:id", "https://example.com/books/1?x", 0},
        {"https://example.com/books/:id?", "https://example.com/books", 1},
        {"https://example.com/books/:id?", "https://example.com/books/7", 1},
        {"https://example.com/books/:id?", "https://example.com/books/", 0},
        {"https://example.com/books/*", "https://example.com/books/a/b/c", 1},
        {"https://example.com/books/*", "https://example.com/books/", 1},
        {"https://example.com/books/*", "https://example.com/books/a?x=1", 0},
        {"https://example.com/books/:path+", "https://example.com/books/a/b", 1},
        {"https://example.com/books/:path+", "https://example.com/books", 0},
        {"https://example.com/books/:path*", "https://example.com/books", 1},
        {"https://example.com/books/:path*", "https://example.com/books/a/b/c", 1},
        {"https://:sub.example.com/x", "https://api.example.com/x", 1},
        {"https://:sub.example.com/x", "https://a.b.example.com/x", 0},
        {"https://*.example.com/x", "https://a.b.example.com/x", 1},
        {"*://example.com/x", "https://example.com/x", 1},
        {"*://example.com/x", "wss://example.com/x", 1},
        {"/.well-known/mercure/subscriptions/Exact/:topic/:subscriber",
         "/.well-known/mercure/subscriptions/Exact/foo/urn:uuid:1", 1},
        {"/.well-known/mercure/subscriptions/Exact/:topic/:subscriber",
         "/.well-known/mercure/subscriptions/URLPattern/foo/bar", 0},
        {"/books{/:id}?", "/books", 1},
        {"/books{/:id}?", "/books/3", 1},
        {"/books/{:id}.json", "/books/3.json", 1},
        {"/books/{:id}.json", "/books/3.xml", 0},
        {"/a/\\:literal", "/a/:literal", 1},
        {"/a/\\:literal", "/a/x", 0},
        {"/search\\?q=:term", "/search?q=cats", 1},
        {"/search?q=:term", "/search?q=x#frag", 0},
        {"https://example.com/foo", "https://example.com/foo", 1},
        {"https://example.com/foo", "https://example.com/foo2", 0},
        /* scheme and host are case-insensitive, the rest is not */
        {"https://Example.COM/foo", "https://example.com/foo", 1},
        {"HTTPS://example.com/foo", "https://EXAMPLE.com/foo", 1},
        {"https://example.com/foo", "https://example.com/FOO", 0},
        {"https://example.com/:id", "https://EXAMPLE.COM/Abc", 1},
        {"/Path", "/path", 0},
        {"bar", "bar", 1},
    };
    CHECK_EQ_INT(ROWS(r, SSE__SEL_URLPATTERN), 0);
    struct sse__selector *s;
    const char *t;
    size_t len;
    CHECK_EQ_INT(sse__selector_compile(&s, "/a/\\:b", 6, SSE__SEL_URLPATTERN, NULL), 0);
    CHECK_EQ_INT(sse__selector_exact(s, &t, &len), 1); /* no group: hashable */
    CHECK_EQ_MEM(t, len, "/a/:b", 5);
    sse__selector_unref(s);
    return 0;
}

/* draft-08: relative URL patterns and relative topics resolve against the hub's URL. */
static int test_urlpattern_base(void)
{
    static const struct {
        const char *pattern, *topic;
        int want;
    } r[] = {
        {"/.well-known/mercure/subscriptions/Exact/:t/:s",
         "/.well-known/mercure/subscriptions/Exact/a/b", 1},
        {"/.well-known/mercure/subscriptions/Exact/:t/:s",
         "https://hub.example:8443/.well-known/mercure/subscriptions/Exact/a/b", 1},
        {"/.well-known/mercure/subscriptions/Exact/:t/:s",
         "HTTPS://HUB.example:8443/.well-known/mercure/subscriptions/Exact/a/b", 1},
        {"/.well-known/mercure/subscriptions/Exact/:t/:s",
         "https://other.example/.well-known/mercure/subscriptions/Exact/a/b", 0},
        {"/.well-known/mercure/subscriptions/Exact/:t/:s", "https://hub.example:8443", 0},
        {"https://hub.example:8443/books/:id", "/books/1", 1},
        {"https://hub.example:8443/books/:id", "https://hub.example:8443/books/1", 1},
        {"https://other.example/books/:id", "/books/1", 0},
        {"https://*.example:8443/books/:id", "/books/1", 1},
        {"/books", "/books", 1},
        {"/books", "https://hub.example:8443/books", 1},
        {"/books", "https://hub.example:8443/books/", 0},
        {"bar", "bar", 1}, /* path-relative: as written */
    };
    const char *base = "https://hub.example:8443/.well-known/mercure";
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        struct sse__selector *s;
        CHECK_EQ_INT(sse__selector_compile_base(&s, r[i].pattern, strlen(r[i].pattern),
                                                SSE__SEL_URLPATTERN, NULL, base),
                     0);
        int got = sse__selector_match(s, r[i].topic, strlen(r[i].topic));
        sse__selector_unref(s);
        if (got != r[i].want) {
            fprintf(stderr, "  %s vs %s: got %d\n", r[i].pattern, r[i].topic, got);
            return 1;
        }
    }
    /* with a base, a relative pattern is not one string (the hub must not hash it) */
    struct sse__selector *s;
    const char *t;
    size_t len;
    CHECK_EQ_INT(sse__selector_compile_base(&s, "/books", 6, SSE__SEL_URLPATTERN, NULL, base), 0);
    CHECK_EQ_INT(sse__selector_exact(s, &t, &len), 0);
    sse__selector_unref(s);
    /* Exact selectors never resolve */
    CHECK_EQ_INT(sse__selector_compile_base(&s, "/books", 6, SSE__SEL_EXACT, NULL, base), 0);
    CHECK_EQ_INT(sse__selector_match(s, "https://hub.example:8443/books", 30), 0);
    CHECK_EQ_INT(sse__selector_exact(s, &t, &len), 1);
    sse__selector_unref(s);
    /* through a cache with a base */
    struct sse__selector_cache *c;
    CHECK_EQ_INT(sse__selector_cache_new(&c, 4, NULL), 0);
    CHECK_EQ_INT(sse__selector_cache_set_base(c, base), 0);
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/:x", 5, SSE__SEL_URLPATTERN, &s), 0);
    CHECK_EQ_INT(sse__selector_match(s, "https://hub.example:8443/a/1", 28), 1);
    sse__selector_unref(s);
    sse__selector_cache_free(c);
    return 0;
}

static int test_urlpattern_refused(void)
{
    static const char *bad[] = {
        "/books/(\\d+)", "/books/:id(\\d+)", "/a/(.*)*", "/{a{b}}", "/{a", "/a}", "/x\\",
        "/**",           "((a+)+)+$"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sse__selector *s = NULL;
        int rc = sse__selector_compile(&s, bad[i], strlen(bad[i]), SSE__SEL_URLPATTERN, NULL);
        if (rc != SSE_EINVAL) {
            fprintf(stderr, "  %s: rc %d\n", bad[i], rc);
            return 1;
        }
    }
    return 0;
}

static int test_limits(void)
{
    struct sse__selector_limits lim = {16, 2, 0};
    struct sse__selector *s = NULL;
    CHECK_EQ_INT(sse__selector_compile(&s, "0123456789abcdefg", 17, SSE__SEL_EXACT, &lim),
                 SSE_ELIMIT);
    CHECK_EQ_INT(sse__selector_compile(&s, "0123456789abcdef", 16, SSE__SEL_EXACT, &lim), 0);
    sse__selector_unref(s);
    CHECK_EQ_INT(sse__selector_compile(&s, "{a}{b}{c}", 9, SSE__SEL_AUTO, &lim), SSE_ELIMIT);
    CHECK_EQ_INT(sse__selector_compile(&s, "{a,b,c}", 7, SSE__SEL_AUTO, &lim), SSE_ELIMIT);
    CHECK_EQ_INT(sse__selector_compile(&s, "{a}{b}", 6, SSE__SEL_AUTO, &lim), 0);
    sse__selector_unref(s);
    CHECK_EQ_INT(sse__selector_compile(&s, "/:a/:b/:c", 9, SSE__SEL_URLPATTERN, &lim), SSE_ELIMIT);
    CHECK_EQ_INT(sse__selector_compile(&s, "/*/*/*", 6, SSE__SEL_URLPATTERN, &lim), SSE_ELIMIT);
    /* default limits: 1024 bytes, 32 variables; prefix modifiers at most 256 */
    char big[1100];
    memset(big, 'a', sizeof(big));
    CHECK_EQ_INT(sse__selector_compile(&s, big, 1025, SSE__SEL_EXACT, NULL), SSE_ELIMIT);
    CHECK_EQ_INT(sse__selector_compile(&s, "{x:257}", 7, SSE__SEL_AUTO, NULL), SSE_ELIMIT);
    CHECK_EQ_INT(sse__selector_compile(&s, "{x:256}", 7, SSE__SEL_AUTO, NULL), 0);
    sse__selector_unref(s);
    /* many large prefixes blow the node cap: refused, not slow */
    const char *many = "{a:256}{b:256}{c:256}{d:256}{e:256}";
    CHECK_EQ_INT(sse__selector_compile(&s, many, strlen(many), SSE__SEL_AUTO, NULL), SSE_ELIMIT);
    return 0;
}

/* Pathological patterns finish within the bound: cost grows linearly with the topic. */
static int test_pathological(void)
{
    char pat[1024], topic[4096];
    size_t p = 0;
    /* {a}{b}... 32 adjacent variables over the same class: a backtracking matcher explodes on a
     * near-miss topic; the NFA keeps at most a few states per variable. */
    for (int i = 0; i < 32; i++)
        p += (size_t)snprintf(pat + p, sizeof(pat) - p, "{v%d}", i);
    pat[p++] = '!';
    pat[p] = '\0';
    memset(topic, 'a', sizeof(topic));
    struct sse__selector *s;
    CHECK_EQ_INT(sse__selector_compile(&s, pat, p, SSE__SEL_AUTO, NULL), 0);
    size_t steps_small, steps_big;
    CHECK_EQ_INT(sse__selector_match_steps(s, topic, 40, &steps_small), 0);
    CHECK_EQ_INT(sse__selector_match_steps(s, topic, 400, &steps_big), 0);
    /* linear: 10x the input costs about 10x (never quadratic / exponential) */
    CHECK(steps_big <= steps_small * 11);
    CHECK(steps_big < SSE__SELECTOR_MAX_STEPS);
    topic[399] = '!';
    CHECK_EQ_INT(sse__selector_match(s, topic, 400), 1);
    topic[399] = 'a';
    /* past the budget the match stops and answers "no match", even where it would match */
    topic[1999] = '!';
    CHECK_EQ_INT(sse__selector_match_steps(s, topic, 2000, &steps_big), 0);
    CHECK_EQ_UINT(steps_big, SSE__SELECTOR_MAX_STEPS + 1);
    topic[1999] = 'a';
    sse__selector_unref(s);

    /* URL pattern "(a+)+"-like nesting: {:a}+ groups repeated, near-miss input */
    const char *up = "/{:a}+{:b}+{:c}+x";
    CHECK_EQ_INT(sse__selector_compile(&s, up, strlen(up), SSE__SEL_URLPATTERN, NULL), 0);
    topic[0] = '/';
    CHECK_EQ_INT(sse__selector_match_steps(s, topic, 2000, &steps_big), 0);
    CHECK(steps_big < 2000 * 64);
    topic[1999] = 'x';
    CHECK_EQ_INT(sse__selector_match(s, topic, 2000), 1);
    topic[1999] = 'a';
    sse__selector_unref(s);

    /* The budget: a huge topic against the biggest pattern stops and answers "no match". */
    const char *wide = "{a:256}{b:256}{c:256}!";
    CHECK_EQ_INT(sse__selector_compile(&s, wide, strlen(wide), SSE__SEL_AUTO, NULL), 0);
    CHECK_EQ_INT(sse__selector_match_steps(s, topic, sizeof(topic), &steps_big), 0);
    CHECK(steps_big <= SSE__SELECTOR_MAX_STEPS + 1);
    sse__selector_unref(s);
    return 0;
}

static int test_refcount(void)
{
    struct sse__selector *s;
    CHECK_EQ_INT(sse__selector_compile(&s, "/a/{x}", 6, SSE__SEL_AUTO, NULL), 0);
    CHECK(sse__selector_ref(s) == s);
    sse__selector_unref(s);
    CHECK_EQ_INT(sse__selector_match(s, "/a/b", 4), 1); /* still alive: one reference left */
    sse__selector_unref(s);
    sse__selector_unref(NULL);
    return 0;
}

static int test_cache(void)
{
    struct sse__selector_cache *c;
    struct sse__selector *a, *b, *x;
    size_t entries, hits, misses, evictions;
    CHECK_EQ_INT(sse__selector_cache_new(&c, 2, NULL), 0);
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/{x}", 6, SSE__SEL_AUTO, &a), 0);
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/{x}", 6, SSE__SEL_AUTO, &b), 0);
    CHECK(a == b); /* the same compiled selector */
    sse__selector_unref(b);
    /* same text, other kind: another entry */
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/{x}", 6, SSE__SEL_EXACT, &b), 0);
    CHECK(a != b);
    CHECK_EQ_INT(sse__selector_match(b, "/a/{x}", 6), 1);
    sse__selector_unref(b);
    sse__selector_cache_stats(c, &entries, &hits, &misses, &evictions);
    CHECK_EQ_UINT(entries, 2);
    CHECK_EQ_UINT(hits, 1);
    CHECK_EQ_UINT(misses, 2);
    CHECK_EQ_UINT(evictions, 0);
    /* touch the AUTO one so that the EXACT one is least recently used, then add a third */
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/{x}", 6, SSE__SEL_AUTO, &b), 0);
    sse__selector_unref(b);
    CHECK_EQ_INT(sse__selector_cache_get(c, "/c", 2, SSE__SEL_AUTO, &x), 0);
    sse__selector_unref(x);
    sse__selector_cache_stats(c, &entries, &hits, &misses, &evictions);
    CHECK_EQ_UINT(entries, 2);
    CHECK_EQ_UINT(evictions, 1);
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/{x}", 6, SSE__SEL_AUTO, &b), 0); /* kept */
    CHECK(a == b);
    sse__selector_unref(b);
    sse__selector_cache_stats(c, NULL, &hits, &misses, NULL);
    CHECK_EQ_UINT(hits, 3);
    CHECK_EQ_UINT(misses, 3);
    CHECK_EQ_INT(sse__selector_cache_get(c, "/a/{x}", 6, SSE__SEL_EXACT, &b), 0); /* evicted */
    sse__selector_unref(b);
    sse__selector_cache_stats(c, NULL, NULL, &misses, NULL);
    CHECK_EQ_UINT(misses, 4);
    /* compile errors are returned and not cached */
    CHECK_EQ_INT(sse__selector_cache_get(c, "{", 1, SSE__SEL_AUTO, &b), SSE_EINVAL);
    sse__selector_cache_stats(c, &entries, NULL, NULL, NULL);
    CHECK_EQ_UINT(entries, 2);
    sse__selector_cache_free(c);
    /* a selector handed out outlives the cache */
    CHECK_EQ_INT(sse__selector_match(a, "/a/zz", 5), 1);
    sse__selector_unref(a);
    return 0;
}

static int test_cache_many(void)
{
    struct sse__selector_cache *c;
    CHECK_EQ_INT(sse__selector_cache_new(&c, 64, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        char t[32];
        int n = snprintf(t, sizeof(t), "/t/%d/{x}", i % 100);
        struct sse__selector *s;
        CHECK_EQ_INT(sse__selector_cache_get(c, t, (size_t)n, SSE__SEL_AUTO, &s), 0);
        CHECK_EQ_INT(sse__selector_match(s, "/t/1/y", 6), i % 100 == 1);
        sse__selector_unref(s);
    }
    size_t entries;
    sse__selector_cache_stats(c, &entries, NULL, NULL, NULL);
    CHECK_EQ_UINT(entries, 64);
    sse__selector_cache_free(c);
    return 0;
}

static int test_alloc_failures(void)
{
    static const char *pats[] = {"/a/{x}{?q,r}", "https://ex.com/:id/*", "plain", "/rel/:id"};
    static const int kinds[] = {SSE__SEL_AUTO, SSE__SEL_URLPATTERN, SSE__SEL_AUTO,
                                SSE__SEL_URLPATTERN};
    for (size_t p = 0; p < 4; p++) {
        for (long n = 1; n < 100; n++) {
            struct sse__selector_cache *c = NULL;
            struct sse__selector *s = NULL;
            failalloc_arm(n);
            int rc = sse__selector_cache_new(&c, 4, NULL);
            if (!rc && p >= 1) /* with a base URL (relative / absolute resolution) */
                rc = sse__selector_cache_set_base(c, "https://hub.example/.well-known/mercure");
            if (!rc)
                rc = sse__selector_cache_get(c, pats[p], strlen(pats[p]), kinds[p], &s);
            int hit = failalloc_was_hit();
            failalloc_arm(0);
            if (!hit) {
                CHECK_EQ_INT(rc, 0);
                sse__selector_unref(s);
                sse__selector_cache_free(c);
                break;
            }
            CHECK_EQ_INT(rc, SSE_ENOMEM);
            sse__selector_cache_free(c);
        }
    }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_exact_and_wildcard), CHECK_TEST(test_template_simple),
           CHECK_TEST(test_template_operators), CHECK_TEST(test_template_invalid),
           CHECK_TEST(test_urlpattern), CHECK_TEST(test_urlpattern_base),
           CHECK_TEST(test_urlpattern_refused), CHECK_TEST(test_limits),
           CHECK_TEST(test_pathological), CHECK_TEST(test_refcount), CHECK_TEST(test_cache),
           CHECK_TEST(test_cache_many), CHECK_TEST(test_alloc_failures))
