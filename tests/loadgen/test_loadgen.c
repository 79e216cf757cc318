/*
 * test_loadgen.c: the parts of src/loadgen that need no server: URL parsing and resolution (on
 * the library's splitter), the subscriber's GET and the publisher's POST for each target, the
 * latency histogram and the round-robin topic counts. The engines themselves run in
 * tests/bench_smoke against real servers.
 */
#include "harness/check.h"
#include "loadgen/loadgen.h"

#include <sse/error.h>

/* Whether s starts with prefix. */
static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int test_url(void)
{
    struct sse__loadgen_url u;
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "http://127.0.0.1:8080/.well-known/mercure?a=1"), 0);
    CHECK_EQ_STR(u.host, "127.0.0.1");
    CHECK_EQ_INT(u.port, 8080);
    CHECK_EQ_STR(u.path, "/.well-known/mercure");
    CHECK_EQ_STR(u.query, "a=1");
    CHECK_EQ_INT(u.addr.ss_family, AF_INET);
    CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&u.addr)->sin_port), 8080);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "http://localhost"), 0);
    CHECK_EQ_STR(u.path, "/");
    CHECK_EQ_INT(u.port, 80);
    CHECK_EQ_INT(u.addr.ss_family, AF_INET);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "http://[::1]:9/sub"), 0);
    CHECK_EQ_STR(u.host, "::1");
    CHECK_EQ_INT(u.addr.ss_family, AF_INET6);
    /* names other than localhost are not resolved; other schemes and bad ports are refused */
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "http://example.com/"), SSE_EINVAL);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "ftp://127.0.0.1/"), SSE_EINVAL);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "http://127.0.0.1:0/"), SSE_EINVAL);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, NULL), SSE_EINVAL);
    /* https://: TLS, port 443 unless written (even when written as 80) */
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "https://127.0.0.1/sub"), 0);
    CHECK_EQ_INT(u.tls, 1);
    CHECK_EQ_INT(u.port, 443);
    CHECK_EQ_STR(u.path, "/sub");
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "HTTPS://localhost:80"), 0);
    CHECK_EQ_INT(u.tls, 1);
    CHECK_EQ_INT(u.port, 80);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "https://[::1]:8443/x?y"), 0);
    CHECK_EQ_INT(u.port, 8443);
    CHECK_EQ_STR(u.query, "y");
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "https://[::1]/x"), 0);
    CHECK_EQ_INT(u.port, 443);
    CHECK_EQ_INT(sse__loadgen_url_parse(&u, "http://127.0.0.1/"), 0);
    CHECK_EQ_INT(u.tls, 0);
    return 0;
}

static int config(struct sse__loadgen_config *c, int target, const char *sub, const char *pub)
{
    memset(c, 0, sizeof(*c));
    c->target = target;
    c->topics = 3;
    c->subscribers = 10;
    c->topic_prefix = target == SSE__LOADGEN_MERCURE ? "https://e.com/t/" : "t";
    if (sse__loadgen_url_parse(&c->sub, sub) < 0 || sse__loadgen_url_parse(&c->pub, pub) < 0)
        return -1;
    return 0;
}

static int test_sub_request(void)
{
    struct sse__loadgen_config c;
    size_t len;
    CHECK_EQ_INT(
        config(&c, SSE__LOADGEN_MERCURE, "http://127.0.0.1:80/hub?x=1", "http://127.0.0.1/hub"), 0);
    c.sub_token = "JWT";
    char *r = sse__loadgen_sub_request(&c, 2, &len);
    CHECK(r != NULL);
    CHECK_EQ_STR(r, "GET /hub?x=1&topic=https%3A%2F%2Fe.com%2Ft%2F2 HTTP/1.1\r\n"
                    "Host: 127.0.0.1:80\r\nAccept: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\nAuthorization: Bearer JWT\r\n\r\n");
    CHECK_EQ_UINT(len, strlen(r));
    free(r);

    CHECK_EQ_INT(config(&c, SSE__LOADGEN_NCHAN, "http://[::1]:8/sub", "http://[::1]:8/pub"), 0);
    r = sse__loadgen_sub_request(&c, 1, &len);
    CHECK(r != NULL);
    CHECK_EQ_STR(r, "GET /sub/t1 HTTP/1.1\r\nHost: [::1]:8\r\nAccept: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\n\r\n");
    free(r);

    CHECK_EQ_INT(
        config(&c, SSE__LOADGEN_PLAIN, "http://127.0.0.1:8/stream?q", "http://127.0.0.1:8/publish"),
        0);
    r = sse__loadgen_sub_request(&c, 0, &len);
    CHECK(r != NULL);
    CHECK(starts(r, "GET /stream?q HTTP/1.1\r\n"));
    free(r);
    return 0;
}

/* The body of a request (after the blank line); NULL if there is none. */
static const char *body_of(const char *req)
{
    const char *b = strstr(req, "\r\n\r\n");
    return b ? b + 4 : NULL;
}

static int test_pub_request(void)
{
    struct sse__loadgen_config c;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    CHECK_EQ_INT(
        config(&c, SSE__LOADGEN_MERCURE, "http://127.0.0.1:3/hub", "http://127.0.0.1:3/hub"), 0);
    c.token = "PUB";
    uint64_t before = sse__loadgen_now_real();
    CHECK_EQ_INT(sse__loadgen_pub_request(&c, 7, 1, &buf, &cap, &len), 0);
    CHECK(len < cap);
    buf[len] = '\0';
    CHECK(starts(buf, "POST /hub HTTP/1.1\r\nHost: 127.0.0.1:3\r\n"));
    CHECK(strstr(buf, "Content-Type: application/x-www-form-urlencoded\r\n") != NULL);
    CHECK(strstr(buf, "Authorization: Bearer PUB\r\n") != NULL);
    const char *body = body_of(buf);
    CHECK(body != NULL);
    CHECK(starts(body, "topic=https%3A%2F%2Fe.com%2Ft%2F1&data=ts%3D"));
    unsigned long long ts = strtoull(body + 44, NULL, 10);
    CHECK(ts >= before && ts <= sse__loadgen_now_real());
    CHECK(strstr(body, "%2Cseq%3D7%2Cw%3D1%2C") != NULL);
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
    CHECK(strstr(buf, cl) != NULL);

    /* nchan: the topic in the path, the data as it is, padded to the payload size */
    CHECK_EQ_INT(
        config(&c, SSE__LOADGEN_NCHAN, "http://127.0.0.1:3/sub", "http://127.0.0.1:3/pub/"), 0);
    c.payload = 300;
    CHECK_EQ_INT(sse__loadgen_pub_request(&c, 5, 0, &buf, &cap, &len), 0);
    buf[len < cap ? len : cap - 1] = '\0';
    CHECK(starts(buf, "POST /pub/t2 HTTP/1.1\r\n"));
    CHECK(strstr(buf, "Content-Type: text/plain\r\nContent-Length: 300\r\n") != NULL);
    body = body_of(buf);
    CHECK(body != NULL && starts(body, "ts=") && strlen(body) == 300);
    CHECK(strstr(body, ",seq=5,w=0,xxx") != NULL);
    free(buf);
    return 0;
}

static int test_hist(void)
{
    static struct sse__loadgen_hist h, g;
    sse__loadgen_hist_init(&h);
    CHECK_EQ_UINT(sse__loadgen_hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 1; v <= 1000; v++)
        sse__loadgen_hist_add(&h, v * 1000);
    CHECK_EQ_UINT(h.count, 1000);
    CHECK_EQ_UINT(h.min, 1000);
    CHECK_EQ_UINT(h.max, 1000000);
    uint64_t p50 = sse__loadgen_hist_quantile(&h, 0.5);
    CHECK(p50 >= 500000 && p50 <= 500000 * 103 / 100); /* within a bucket (~3 %) */
    CHECK_EQ_UINT(sse__loadgen_hist_quantile(&h, 1.0), 1000000);
    sse__loadgen_hist_init(&g);
    sse__loadgen_hist_add(&g, 5);
    sse__loadgen_hist_merge(&g, &h);
    CHECK_EQ_UINT(g.count, 1001);
    CHECK_EQ_UINT(g.min, 5);
    CHECK_EQ_UINT(sse__loadgen_hist_quantile(&g, 0.0), 5); /* exact below 64 */
    return 0;
}

static int test_subs_on_topic(void)
{
    struct sse__loadgen_config c;
    memset(&c, 0, sizeof(c));
    c.subscribers = 10;
    c.topics = 3;
    CHECK_EQ_UINT(sse__loadgen_subs_on_topic(&c, 0), 4);
    CHECK_EQ_UINT(sse__loadgen_subs_on_topic(&c, 1), 3);
    CHECK_EQ_UINT(sse__loadgen_subs_on_topic(&c, 2), 3);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_url), CHECK_TEST(test_sub_request), CHECK_TEST(test_pub_request),
           CHECK_TEST(test_hist), CHECK_TEST(test_subs_on_topic))
