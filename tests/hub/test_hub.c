/*
 * test_hub.c: the hub's pure parts: field validation per the drafts (topics, ids, types, retry,
 * UTF-8), the reserved /.well-known/mercure namespace, the publish-form decoder (status codes
 * and reasons), UUIDs, JSON / RFC 6570 escaping, cookies, origins, and the subscription index
 * (exact hash, wildcards, pattern groups, cached pattern matches, invalidation, removal).
 */
#include "harness/check.h"
#include "harness/failalloc.h"
#include "hub/hub_util.h"
#include "hub/index.h"
#include "hub/selector.h"

#include <sse/error.h>

#define S(x) x, sizeof(x) - 1

static int test_text_rules(void)
{
    CHECK(sse__hub_text_ok(S("https://example.com/books/1")));
    CHECK(sse__hub_text_ok(S("caf\xc3\xa9")));
    CHECK(!sse__hub_text_ok(S("a\nb")));
    CHECK(!sse__hub_text_ok(S("a\tb")));
    CHECK(!sse__hub_text_ok(S("a\x7f")));
    CHECK(!sse__hub_text_ok(S("a\xc2\x85")));     /* C1 NEL */
    CHECK(!sse__hub_text_ok(S("a\xc0\xaf")));     /* overlong */
    CHECK(!sse__hub_text_ok(S("a\xed\xa0\x80"))); /* surrogate */
    CHECK(!sse__hub_text_ok("a\0b", 3));
    CHECK(sse__hub_utf8_ok(S("line1\nline2")));
    CHECK(!sse__hub_utf8_ok(S("\xff")));
    CHECK(!sse__hub_utf8_ok(S("\xe2\x82"))); /* truncated */
    CHECK(sse__hub_id_ok(S("urn:uuid:1")));
    CHECK(!sse__hub_id_ok(S("#1")));
    CHECK(!sse__hub_id_ok(S("a\rb")));
    CHECK(!sse__hub_id_ok(S("")));
    CHECK(sse__hub_type_ok(S("myEvent")));
    CHECK(!sse__hub_type_ok(S("my\nEvent")));
    CHECK(sse__hub_retry_ok(S("3000")));
    CHECK(!sse__hub_retry_ok(S("-1")));
    CHECK(!sse__hub_retry_ok(S("1e3")));
    CHECK(!sse__hub_retry_ok(S("")));
    CHECK(!sse__hub_retry_ok(S("1234567890123456789")));
    return 0;
}

static int test_reserved(void)
{
    CHECK(sse__hub_topic_reserved(S("/.well-known/mercure")));
    CHECK(sse__hub_topic_reserved(S("/.well-known/mercure/subscriptions/a/b")));
    CHECK(
        sse__hub_topic_reserved(S("https://hub.example.com/.well-known/mercure/subscriptions/x")));
    CHECK(sse__hub_topic_reserved(S("//other/.well-known/mercure?x")));
    CHECK(sse__hub_topic_reserved(S("mercure/subscriptions"))); /* relative to the hub URL */
    CHECK(sse__hub_topic_reserved(S("/a/../.well-known/mercure/x")));
    CHECK(sse__hub_topic_reserved(S("/.well-known/./mercure")));
    CHECK(sse__hub_topic_reserved(S("/.well-known/%2e/mercure/")));
    /* draft-08: escaped unreserved characters are decoded before the comparison */
    CHECK(sse__hub_topic_reserved(S("/.well-known/%6Dercure/x")));
    CHECK(sse__hub_topic_reserved(S("https://h.example/%2Ewell-known/merc%75re")));
    CHECK(!sse__hub_topic_reserved(S("/.well-known/%2Fmercure"))); /* "/" is not unreserved */
    CHECK(!sse__hub_topic_reserved(S("/.well-known/mercurex")));
    CHECK(!sse__hub_topic_reserved(S("https://example.com/.well-known/mercure-not")));
    CHECK(!sse__hub_topic_reserved(S("https://example.com/books/1")));
    CHECK(!sse__hub_topic_reserved(S("urn:example:.well-known/mercure")));
    CHECK(!sse__hub_topic_reserved(S("foo")));
    CHECK(!sse__hub_topic_reserved(S("https://example.com/?p=/.well-known/mercure")));
    return 0;
}

/* draft08: the hub serves draft-08 (its reserved values refused with 400) */
static int form(const char *body, int draft08, struct sse__pub_form *f, const char **why)
{
    struct sse__pub_limits lim = {4, 64, 256, draft08};
    return sse__pub_form_parse(f, body, strlen(body), &lim, why);
}

static int test_form(void)
{
    struct sse__pub_form f;
    const char *why = NULL;
    CHECK_EQ_INT(form("topic=https%3A%2F%2Fex.com%2Fa&topic=%2Falt&data=l1%0A%0Al3&private=&id=x1"
                      "&type=up&retry=500&unknown=1",
                      0, &f, &why),
                 0);
    CHECK_EQ_UINT(f.n_topics, 2);
    CHECK_EQ_STR(f.topics[0], "https://ex.com/a");
    CHECK_EQ_STR(f.topics[1], "/alt");
    CHECK_EQ_MEM(f.data.data, f.data.len, "l1\n\nl3", 6);
    CHECK_EQ_INT(f.is_private, 1);
    CHECK_EQ_STR(f.id, "x1");
    CHECK_EQ_STR(f.type, "up");
    CHECK_EQ_INT(f.retry, 500);
    sse__pub_form_free(&f);

    CHECK_EQ_INT(form("data=x", 0, &f, &why), 400);
    CHECK_EQ_STR(why, "missing topic");
    /* draft-08 (head): alternate topics allowed; "*", "earliest", "mercure", format characters
       and the reserved namespace are 400; a draft-07-only hub keeps its old answers */
    CHECK_EQ_INT(form("topic=a&topic=b", 1, &f, &why), 0);
    CHECK_EQ_UINT(f.n_topics, 2);
    sse__pub_form_free(&f);
    CHECK_EQ_INT(form("topic=a&topic=*", 1, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&id=earliest", 1, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&type=mercure", 1, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&id=x%E2%80%8By", 1, &f, &why), 400);  /* U+200B */
    CHECK_EQ_INT(form("topic=a&type=%E2%80%AEt", 1, &f, &why), 400); /* U+202E */
    CHECK_EQ_INT(form("topic=a%C2%ADb", 0, &f, &why), 400);          /* U+00AD, both modes */
    CHECK_EQ_INT(form("topic=%2F.well-known%2Fmercure%2Fx", 1, &f, &why), 400);
    CHECK_EQ_INT(form("topic=*&id=earliest&type=mercure", 0, &f, &why), 0);
    sse__pub_form_free(&f);
    CHECK_EQ_INT(form("topic=a&topic=b&topic=c&topic=d&topic=e", 0, &f, &why), 413);
    CHECK_EQ_INT(form("topic=a%0Ab", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a%ZZ", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=%2F.well-known%2Fmercure%2Fsubscriptions%2Fx%2Fy", 0, &f, &why), 403);
    CHECK_EQ_INT(form("topic=a&id=%23frag", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&id=a%0Db", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&type=a%0Ab", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&retry=abc", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=a&data=%FF", 0, &f, &why), 400);
    CHECK_EQ_INT(form("topic=", 0, &f, &why), 400);
    char big[600];
    memset(big, 'x', sizeof(big));
    memcpy(big, "topic=a&data=", 13);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ_INT(form(big, 0, &f, &why), 413);
    char bigt[200];
    memset(bigt, 'y', sizeof(bigt));
    memcpy(bigt, "topic=", 6);
    bigt[sizeof(bigt) - 1] = '\0';
    CHECK_EQ_INT(form(bigt, 0, &f, &why), 413);
    /* private with no value, and a data field without value (empty data). */
    CHECK_EQ_INT(form("topic=a&private&data=", 0, &f, &why), 0);
    CHECK_EQ_INT(f.is_private, 1);
    CHECK_EQ_INT(f.has_data, 1);
    CHECK_EQ_UINT(f.data.len, 0);
    sse__pub_form_free(&f);
    return 0;
}

static int test_form_alloc_sweep(void)
{
    for (long n = 1; n < 100; n++) {
        struct sse__pub_form f;
        const char *why;
        failalloc_arm(n);
        int rc = form("topic=a&topic=b&data=hello&id=x&type=t", 0, &f, &why);
        int hit = failalloc_hit_;
        failalloc_arm(0);
        if (rc == 0)
            sse__pub_form_free(&f);
        else
            CHECK_EQ_INT(rc, SSE_ENOMEM);
        if (!hit)
            break;
    }
    return 0;
}

static int test_uuid_json_pct(void)
{
    char a[46], b[46];
    CHECK_EQ_INT(sse__hub_uuid4(a), 0);
    CHECK_EQ_INT(sse__hub_uuid4(b), 0);
    CHECK_EQ_UINT(strlen(a), 45);
    CHECK(!strncmp(a, "urn:uuid:", 9));
    CHECK(a[9 + 14] == '4');
    CHECK(strchr("89ab", a[9 + 19]) != NULL);
    CHECK(strcmp(a, b) != 0);

    sse_buf x;
    sse_buf_init(&x, 0);
    CHECK_EQ_INT(sse__hub_json_str(&x, S("a\"b\\c\n\x01")), 0);
    CHECK_EQ_STR(sse_buf_cstr(&x), "\"a\\\"b\\\\c\\u000a\\u0001\"");
    sse_buf_reset(&x);
    CHECK_EQ_INT(sse__hub_pct_encode(&x, S("https://example.com/{selector}%")), 0);
    CHECK_EQ_STR(sse_buf_cstr(&x), "https%3A%2F%2Fexample.com%2F%7Bselector%7D%25");
    sse_buf_free(&x);
    return 0;
}

static int test_cookie_origin(void)
{
    const char *v;
    size_t n;
    CHECK(sse__hub_cookie_get("a=1; mercureAuthorization=tok.en; b=2", "mercureAuthorization", &v,
                              &n));
    CHECK_EQ_MEM(v, n, "tok.en", 6);
    CHECK(!sse__hub_cookie_get("xmercureAuthorization=1", "mercureAuthorization", &v, &n));
    CHECK(sse__hub_cookie_get("mercureAuthorization=\"q\"", "mercureAuthorization", &v, &n));
    CHECK_EQ_MEM(v, n, "q", 1);

    CHECK(sse__hub_origin_allowed("https://a.example http://b.example:8080",
                                  "http://b.example:8080", NULL));
    CHECK(!sse__hub_origin_allowed("https://a.example", "https://evil.example", NULL));
    CHECK(sse__hub_origin_allowed("https://a.example", NULL, "https://a.example/page?x"));
    CHECK(!sse__hub_origin_allowed("https://a.example", NULL, "https://a.example.evil/x"));
    CHECK(!sse__hub_origin_allowed("https://a.example", NULL, NULL));
    CHECK(sse__hub_origin_allowed("*", "https://x", NULL));
    CHECK(!sse__hub_origin_allowed(NULL, "https://x", NULL));
    return 0;
}

/* ---------------------------------------------------------------- index */

struct hits {
    struct sse__isub *got[16];
    size_t n;
};

static void on_hit(void *ud, struct sse__isub *s)
{
    struct hits *h = ud;
    if (h->n < 16)
        h->got[h->n] = s;
    h->n++;
}

static int has(const struct hits *h, const struct sse__isub *s)
{
    for (size_t i = 0; i < h->n && i < 16; i++)
        if (h->got[i] == s)
            return 1;
    return 0;
}

static int mk(struct sse__isub *s, const char *text, int kind)
{
    memset(s, 0, sizeof(*s));
    return sse__selector_compile(&s->sel, text, strlen(text), kind, NULL);
}

static int test_index(void)
{
    struct sse__index *idx;
    CHECK_EQ_INT(sse__index_new(&idx, 2), 0);
    struct sse__isub ex1, ex2, wild, tpl, pat;
    CHECK_EQ_INT(mk(&ex1, "https://ex.com/a", SSE__SEL_AUTO), 0);
    CHECK_EQ_INT(mk(&ex2, "https://ex.com/a", SSE__SEL_EXACT), 0);
    CHECK_EQ_INT(mk(&wild, "*", SSE__SEL_AUTO), 0);
    CHECK_EQ_INT(mk(&tpl, "https://ex.com/books/{id}", SSE__SEL_AUTO), 0);
    CHECK_EQ_INT(mk(&pat, "https://ex.com/books/:id", SSE__SEL_URLPATTERN), 0);
    CHECK_EQ_INT(sse__index_add(idx, &ex1), 0);
    CHECK_EQ_INT(sse__index_add(idx, &ex2), 0);
    CHECK_EQ_INT(sse__index_add(idx, &wild), 0);
    CHECK_EQ_INT(sse__index_add(idx, &tpl), 0);

    struct hits h = {0};
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/a"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 3);
    CHECK(has(&h, &ex1) && has(&h, &ex2) && has(&h, &wild));

    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/books/7"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 2);
    CHECK(has(&h, &tpl) && has(&h, &wild));
    /* Again: from the cache. */
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/books/7"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 2);
    struct sse__index_stats st;
    sse__index_get_stats(idx, &st);
    CHECK_EQ_UINT(st.cache_hits, 1);
    CHECK_EQ_UINT(st.exact_keys, 1);

    /* Another subscription of the same compiled pattern joins its group: the cache stays warm. */
    struct sse__isub tpl2;
    memset(&tpl2, 0, sizeof(tpl2));
    tpl2.sel = sse__selector_ref(tpl.sel);
    CHECK_EQ_INT(sse__index_add(idx, &tpl2), 0);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/books/7"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 3);
    CHECK(has(&h, &tpl2));
    sse__index_get_stats(idx, &st);
    CHECK_EQ_UINT(st.cache_hits, 2);
    CHECK_EQ_UINT(st.pattern_groups, 1);
    sse__index_remove(idx, &tpl2);
    sse__selector_unref(tpl2.sel);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/books/7"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 2);
    sse__index_get_stats(idx, &st);
    CHECK_EQ_UINT(st.cache_hits, 3); /* the group lives on: still no invalidation */

    /* A new pattern invalidates the cached answer. */
    CHECK_EQ_INT(sse__index_add(idx, &pat), 0);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/books/7"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 3);
    CHECK(has(&h, &pat));

    /* Bounded cache (capacity 2): more topics evict, answers stay right. */
    for (int i = 0; i < 10; i++) {
        char t[64];
        snprintf(t, sizeof(t), "https://ex.com/books/%d", i);
        memset(&h, 0, sizeof(h));
        CHECK_EQ_INT(sse__index_match(idx, t, strlen(t), on_hit, &h), 0);
        CHECK_EQ_UINT(h.n, 3);
    }
    sse__index_get_stats(idx, &st);
    CHECK(st.cache_entries <= 2);

    sse__index_remove(idx, &tpl);
    sse__index_remove(idx, &tpl); /* twice is harmless */
    sse__index_remove(idx, &ex1);
    sse__index_remove(idx, &ex2);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/books/7"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 2);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("https://ex.com/a"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 1);
    sse__index_get_stats(idx, &st);
    CHECK_EQ_UINT(st.exact_keys, 0);

    sse__index_free(idx);
    sse__selector_unref(ex1.sel);
    sse__selector_unref(ex2.sel);
    sse__selector_unref(wild.sel);
    sse__selector_unref(tpl.sel);
    sse__selector_unref(pat.sel);
    return 0;
}

static int test_index_many_exact(void)
{
    struct sse__index *idx;
    CHECK_EQ_INT(sse__index_new(&idx, 0), 0);
    static struct sse__isub subs[500];
    char t[32];
    for (int i = 0; i < 500; i++) {
        snprintf(t, sizeof(t), "/topic/%d", i % 250);
        CHECK_EQ_INT(mk(&subs[i], t, SSE__SEL_EXACT), 0);
        CHECK_EQ_INT(sse__index_add(idx, &subs[i]), 0);
    }
    struct hits h = {0};
    CHECK_EQ_INT(sse__index_match(idx, S("/topic/42"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 2);
    CHECK(has(&h, &subs[42]) && has(&h, &subs[292]));
    for (int i = 0; i < 500; i += 2)
        sse__index_remove(idx, &subs[i]);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("/topic/42"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 0);
    memset(&h, 0, sizeof(h));
    CHECK_EQ_INT(sse__index_match(idx, S("/topic/43"), on_hit, &h), 0);
    CHECK_EQ_UINT(h.n, 2);
    sse__index_free(idx);
    for (int i = 0; i < 500; i++)
        sse__selector_unref(subs[i].sel);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_text_rules), CHECK_TEST(test_reserved), CHECK_TEST(test_form),
           CHECK_TEST(test_form_alloc_sweep), CHECK_TEST(test_uuid_json_pct),
           CHECK_TEST(test_cookie_origin), CHECK_TEST(test_index),
           CHECK_TEST(test_index_many_exact))
