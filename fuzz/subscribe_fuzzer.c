/*
 * subscribe_fuzzer.c: the whole subscribe request of the hub, GET /.well-known/mercure: the
 * selectors (topic, match, match_exact, match_urlpattern, the camelCase aliases), lastEventID /
 * last_event_id in the query, the Last-Event-ID (or Mercure-Last-Event-ID) header and an
 * optional token, together.
 *
 * One hub (memory history of public and private updates, anonymous subscribers allowed) serves
 * on 127.0.0.1 port 0 in this process; each input becomes one request over a loopback socket,
 * the loop is run until the answer's head (and what follows at once) is read, then the
 * connection is closed. Input: byte 0 = flags (bit 0: send a Last-Event-ID header; bit 1: its
 * Mercure- spelling; bit 2: send a token whose subscribe grant is the third part), then the
 * query, the header value and the grant, separated by '\n'. Bytes the request line or a header
 * cannot carry are percent-encoded (query) or replaced (header, grant).
 * Checks: an answer always comes (no hang); its status is 200, 400, 401, 413, 414, 429 or 431 (a
 * 503 would be an internal failure on hostile input); a private update's data, and its id in
 * the Last-Event-ID response header, reach only a token whose grant matches its topic, and a
 * Last-Event-ID naming a private update it cannot read is answered as an unknown id ("earliest",
 * nothing replayed); no subscriber is left once the connection is gone.
 */
#include "fuzz_common.h"
#include "hub/jws.h"
#include "hub/selector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sse/hub.h>
#include <sse/server.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "subscribe-fuzzer-key-0123456789abcdef"

static uv_loop_t loop;
static sse_server *server;
static sse_hub *hub;
static int port;

/* History: ids p1 s1 p2 s2 p3; s* are private, on /priv/N, with data SECRET-N. */
static const struct {
    const char *topic, *id, *data;
    int priv;
} history[] = {
    {"/pub/1", "p1", "public-1", 0},
    {"/priv/1", "s1", "SECRET-1", 1},
    {"https://example.com/books/1", "p2", "public-2", 0},
    {"/priv/2", "s2", "SECRET-2", 1},
    {"/pub/3", "p3", "public-3", 0},
};

static void quiet(void *d, int level, const char *line)
{
    (void)d, (void)level, (void)line;
}

static int setup(void)
{
    if (server)
        return 0;
    if (uv_loop_init(&loop))
        return -1;
    sse_server_options so = SSE_SERVER_OPTIONS_INIT;
    so.log = quiet;
    if (sse_server_new(&server, &loop, &so) || sse_server_listen(server, "127.0.0.1", 0))
        return -1;
    port = sse_server_port(server);
    sse_hub_options ho = SSE_HUB_OPTIONS_INIT;
    ho.loop = &loop;
    ho.publisher_key = KEY;
    ho.anonymous = 1;
    ho.log = quiet;
    ho.max_selectors = 8;
    if (sse_hub_new(&hub, server, &ho))
        return -1;
    for (size_t i = 0; i < sizeof(history) / sizeof(history[0]); i++) {
        const char *topics[1] = {history[i].topic};
        sse_hub_update u = {topics, 1,  history[i].data, strlen(history[i].data), history[i].id,
                            NULL,   -1, history[i].priv};
        if (sse_hub_publish(hub, &u, NULL))
            return -1;
    }
    return 0;
}

/* Append the bytes of part, percent-encoding what a request target cannot hold. */
static size_t put_query(char *o, size_t cap, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 3 < cap; i++) {
        if (p[i] > 0x20 && p[i] < 0x7f && p[i] != '#') {
            o[k++] = (char)p[i];
        } else {
            o[k++] = '%';
            o[k++] = hex[p[i] >> 4];
            o[k++] = hex[p[i] & 15];
        }
    }
    return k;
}

/* A printable copy for a header value or a JSON string (no CR, LF, NUL, quote, backslash). */
static size_t put_plain(char *o, size_t cap, const uint8_t *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        o[k++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\' ? (char)p[i] : '_';
    return k;
}

/* Whether grant (draft-07 selector text) matches topic. */
static int grant_matches(const char *grant, const char *topic)
{
    struct sse__selector *s;
    if (sse__selector_compile(&s, grant, strlen(grant), SSE__SEL_AUTO, NULL))
        return 0;
    int m = sse__selector_match(s, topic, strlen(topic));
    sse__selector_unref(s);
    return m;
}

static void split(const uint8_t **p, size_t *n, const uint8_t **rest, size_t *rest_n)
{
    const uint8_t *nl = memchr(*p, '\n', *n);
    if (!nl) {
        *rest = *p + *n;
        *rest_n = 0;
        return;
    }
    *rest = nl + 1;
    *rest_n = *n - (size_t)(nl + 1 - *p);
    *n = (size_t)(nl - *p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 6000)
        return 0;
    REQUIRE(setup() == 0);
    uint8_t flags = data[0];
    const uint8_t *q = data + 1, *lei, *grant;
    size_t qn = size - 1, lein, grantn;
    split(&q, &qn, &lei, &lein);
    split(&lei, &lein, &grant, &grantn);
    if (!(flags & 1))
        lein = 0;

    static char req[32768], gtext[512], tok[4096];
    size_t k = (size_t)snprintf(req, sizeof(req), "GET /.well-known/mercure?");
    k += put_query(req + k, sizeof(req) - k - 1024, q, qn);
    k += (size_t)snprintf(req + k, sizeof(req) - k, " HTTP/1.1\r\nHost: x\r\n");
    static char leitext[8192];
    leitext[0] = '\0';
    if (flags & 1) {
        k += (size_t)snprintf(req + k, sizeof(req) - k,
                              "%s: ", flags & 2 ? "Mercure-Last-Event-ID" : "Last-Event-ID");
        size_t ln = put_plain(leitext, sizeof(leitext), lei, lein);
        leitext[ln] = '\0';
        k += (size_t)snprintf(req + k, sizeof(req) - k, "%s\r\n", leitext);
    }
    int with_token = (flags & 4) != 0;
    gtext[put_plain(gtext, sizeof(gtext), grant, grantn)] = '\0';
    if (with_token) {
        char claims[700];
        static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        int cn = snprintf(claims, sizeof(claims), "{\"mercure\":{\"subscribe\":[\"%s\"]}}", gtext);
        if (sse__jws_encode(tok, sizeof(tok), NULL, "HS256", KEY, head, sizeof(head) - 1, claims,
                            (size_t)cn, NULL))
            with_token = 0;
        else
            k += (size_t)snprintf(req + k, sizeof(req) - k, "Authorization: Bearer %s\r\n", tok);
    }
    k += (size_t)snprintf(req + k, sizeof(req) - k, "\r\n");

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int c = connect(fd, (struct sockaddr *)&a, sizeof(a));
    REQUIRE(c == 0 || errno == EINPROGRESS);
    /* the request is sent while the loop accepts; the answer is read while it runs */
    static char resp[1 << 16];
    size_t sent = 0, got = 0;
    int closed = 0, after_head = 0;
    for (int turn = 0; turn < 20000 && !closed && after_head < 3; turn++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (sent < k) {
            ssize_t w = send(fd, req + sent, k - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN &&
                            errno != EINPROGRESS))
            closed = 1;
        resp[got] = '\0';
        if (strstr(resp, "\r\n\r\n"))
            after_head++; /* a few more turns: what is sent with the head (replay) */
        if (got == sizeof(resp) - 1)
            break;
    }
    close(fd);
    char *end = strstr(resp, "\r\n\r\n");
    REQUIRE(got >= 12 && end); /* an answer came */
    int status = (int)strtol(resp + 9, NULL, 10);
    REQUIRE(status == 200 || status == 400 || status == 401 || status == 413 || status == 414 ||
            status == 429 || status == 431);
    /* Private updates: data and id only for a token whose grant matches the topic. */
    for (size_t i = 0; i < sizeof(history) / sizeof(history[0]); i++) {
        if (!history[i].priv)
            continue;
        int may = with_token && grant_matches(gtext, history[i].topic);
        if (!may) {
            char hdr[64];
            snprintf(hdr, sizeof(hdr), "\r\nLast-Event-ID: %s\r\n", history[i].id);
            REQUIRE(!strstr(resp, history[i].data));
            REQUIRE(!memmem(resp, (size_t)(end + 2 - resp), hdr, strlen(hdr)));
            /* asked for by id (the header wins over the query): answered as an unknown id */
            if (status == 200 && (flags & 1) && !strcmp(leitext, history[i].id)) {
                REQUIRE(strstr(resp, "\r\nLast-Event-ID: earliest\r\n"));
                REQUIRE(!strstr(end, "data:"));
            }
        }
    }
    /* the closed connection is noticed: no subscriber left behind */
    sse_hub_stats st;
    for (int turn = 0; turn < 20000; turn++) {
        sse_hub_get_stats(hub, &st);
        if (!st.subscribers)
            break;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    REQUIRE(st.subscribers == 0);
    return 0;
}
