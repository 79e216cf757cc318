/*
 * test_client.c: the EventSource client (include/sse/client.h) against crafted responses.
 *
 * Each test starts a crafted_server with a handler that scripts every connection, runs a client
 * (private loop + sse_client_run, or a group on a uv loop), records what the callbacks saw as a
 * text log, and checks it, plus the request heads the server recorded.
 */
#include "crafted_server.h"
#include "harness/check.h"
#include "harness/failalloc.h"

#include <sse/client.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

/* ---------------------------------------------------------------- recorder */

struct rec {
    char log[32768]; /* "open", "msg type|data|id", "retry N", "err S CODE msg" lines */
    size_t len;
    int opens, events, errors, last_code, last_state;
    int close_after_events; /* close the client once this many events arrived (0 = never) */
    int close_after_errors; /* close once this many errors were reported (0 = never) */
    char last_msg[512];
};

static void rec_printf(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_printf(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->len, sizeof(r->log) - r->len, fmt, ap);
    va_end(ap);
    if (n > 0 && r->len + (size_t)n < sizeof(r->log))
        r->len += (size_t)n;
}

static void rec_open(sse_client *c, void *ud)
{
    struct rec *r = ud;
    r->opens++;
    rec_printf(r, "open\n");
}

static void rec_message(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    struct rec *r = ud;
    r->events++;
    rec_printf(r, "msg %s|", ev->type);
    for (size_t i = 0; i < ev->data_len; i++)
        rec_printf(r, ev->data[i] == '\n' ? "\\n" : "%c", ev->data[i]);
    rec_printf(r, "|%s\n", ev->id);
    if (r->close_after_events && r->events >= r->close_after_events)
        sse_client_close(c);
}

static void rec_retry(sse_client *c, uint64_t ms, void *ud)
{
    rec_printf(ud, "retry %llu\n", (unsigned long long)ms);
}

static void rec_error(sse_client *c, int code, const char *msg, void *ud)
{
    struct rec *r = ud;
    r->errors++;
    r->last_code = code;
    r->last_state = sse_client_ready_state(c);
    snprintf(r->last_msg, sizeof(r->last_msg), "%s", msg);
    rec_printf(r, "err %d %s\n", r->last_state, sse_errname(code));
    if (r->close_after_errors && r->errors >= r->close_after_errors)
        sse_client_close(c);
}

static const sse_client_callbacks rec_cb = {rec_open, rec_message, rec_retry, rec_error};

/* Run a private client on url until closed or timeout_ms; returns sse_client_run's result. */
static int run_client(const char *url, const sse_client_options *o, struct rec *r,
                      unsigned timeout_ms)
{
    sse_client *c;
    int rc = sse_client_new(&c, NULL, url, o, &rec_cb, r);
    if (rc)
        return rc;
    rc = sse_client_run(c, timeout_ms);
    sse_client_free(c);
    return rc;
}

/* ---------------------------------------------------------------- handlers */

/* Every connection gets the same fixed response (user_data: the bytes). */
static void h_fixed(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, ud);
}

/* ---------------------------------------------------------------- status and MIME */

static int test_status_and_mime(void)
{
    static const struct {
        const char *head; /* status line + headers, without the blank line */
        int opens;        /* expected to open */
        int code;         /* error code reported when CLOSED (0: the test closes it) */
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream", 1, 0},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=utf-8", 1, 0},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=UTF-8", 1, 0},
        {"HTTP/1.1 200 OK\r\ncontent-type:TEXT/Event-Stream", 1, 0},
        {"HTTP/1.0 200 OK\r\nContent-Type:  text/event-stream  ", 1, 0},
        /* an interim 1xx answer first: the final one decides */
        {"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream",
         1, 0},
        {"HTTP/1.1 103 Early Hints\r\nContent-Type: text/event-stream\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Type: text/html",
         0, SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/plain", 0, SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/event-streams", 0, SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nX-No-Type: 1", 0, SSE_EPROTO},
        {"HTTP/1.1 204 No Content", 0, SSE_ECLOSED},
        {"HTTP/1.1 404 Not Found\r\nContent-Type: text/event-stream", 0, SSE_EPROTO},
        {"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/event-stream", 0, SSE_EPROTO},
        {"HTTP/1.1 201 Created\r\nContent-Type: text/event-stream", 0, SSE_EPROTO},
        {"HTTP/1.1 302 Found\r\nContent-Type: text/event-stream", 0, SSE_EPROTO}, /* no Location */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char resp[512], url[128], hv[128];
        snprintf(resp, sizeof(resp), "%s\r\nConnection: close\r\n\r\n%s", cases[i].head,
                 "data: hello\n\n");
        struct ts_server *s = ts_start(h_fixed, resp);
        CHECK(s);
        struct rec r = {.close_after_events = 1};
        sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
        o.reconnect_ms = 20;
        int rc = run_client(ts_url(s, "/sse", url, sizeof(url)), &o, &r, 5000);
        unsigned conns = ts_connections(s);
        const char *accept = ts_header(s, 0, "Accept", hv, sizeof(hv));
        int accept_ok = accept && !strcmp(accept, "text/event-stream");
        const char *cc = ts_header(s, 0, "Cache-Control", hv, sizeof(hv));
        int cc_ok = cc && !strcmp(cc, "no-cache");
        const char *lei = ts_header(s, 0, "Last-Event-ID", hv, sizeof(hv));
        ts_stop(s);
        if (rc)
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].head);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(conns, 1); /* no reconnect in any case */
        CHECK(accept_ok);
        CHECK(cc_ok);
        CHECK(lei == NULL);
        if (cases[i].opens) {
            CHECK_EQ_STR(r.log, "open\nmsg message|hello|\n");
        } else {
            CHECK_EQ_INT(r.opens, 0);
            CHECK_EQ_INT(r.events, 0);
            CHECK_EQ_INT(r.errors, 1);
            CHECK_EQ_INT(r.last_state, SSE_CLIENT_CLOSED);
            CHECK_EQ_INT(r.last_code, cases[i].code);
            CHECK(r.last_msg[0] != '\0');
        }
    }
    return 0;
}

static void h_redirect(struct ts_conn *c, unsigned idx, void *ud)
{
    const char *code = ud;
    char buf[256];
    if (!strcmp(ts_conn_path(c), "/start")) {
        snprintf(buf, sizeof(buf),
                 "HTTP/1.1 %s Moved\r\nLocation: /final\r\nContent-Length: 5\r\n"
                 "Connection: close\r\n\r\nmoved",
                 code);
        ts_send(c, buf);
    } else if (!strcmp(ts_conn_path(c), "/loop")) {
        ts_send(c, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n");
    } else {
        ts_send(c, SSE_HEAD "id: 1\ndata: after redirect\n\n");
    }
}

static int test_redirects(void)
{
    static const char *codes[] = {"301", "302", "303", "307", "308"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char url[128], path[64];
        struct ts_server *s = ts_start(h_redirect, (void *)codes[i]);
        CHECK(s);
        struct rec r = {.close_after_events = 1};
        int rc = run_client(ts_url(s, "/start", url, sizeof(url)), NULL, &r, 5000);
        unsigned conns = ts_connections(s);
        const char *p1 = ts_path(s, 1, path, sizeof(path));
        int final_ok = p1 && !strcmp(p1, "/final");
        ts_stop(s);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(conns, 2);
        CHECK(final_ok);
        CHECK_EQ_STR(r.log, "open\nmsg message|after redirect|1\n");
    }
    /* A redirect loop is bounded: curl stops at max_redirects, a network-type failure. */
    char url[128];
    struct ts_server *s = ts_start(h_redirect, "302");
    CHECK(s);
    struct rec r = {0};
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.max_redirects = 3;
    o.max_failures = 1;
    int rc = run_client(ts_url(s, "/loop", url, sizeof(url)), &o, &r, 5000);
    unsigned conns = ts_connections(s);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(conns, 4); /* the request and 3 redirects */
    CHECK_EQ_INT(r.opens, 0);
    CHECK_EQ_INT(r.last_state, SSE_CLIENT_CLOSED);
    CHECK_EQ_INT(r.last_code, SSE_EIO);
    CHECK(strstr(r.last_msg, "gave up after 1"));
    CHECK(strstr(r.last_msg, "redirect"));
    return 0;
}

/* ---------------------------------------------------------------- cut at every byte */

/* The sample stream and, per event, where it dispatches (the offset just past the byte that
 * completes its blank line) and what it dispatches. An entry with data NULL dispatches nothing
 * but still commits its id. */
static const char sample[] = "id: 1\ndata: one\n\n"
                             ": comment\n"
                             "event: two\r\ndata: a\r\ndata: b\r\nid: 2\r\n\r\n"
                             "id: 3\n\n"
                             "data: four\rid: 4\r\r"
                             "\xef\xbc\x90"
                             "data:five\n\n";
static const struct sample_event {
    const char *end_marker; /* the bytes whose last one completes the event */
    const char *type, *data, *id;
} sample_events[] = {
    {"id: 1\ndata: one\n\n", "message", "one", "1"},
    {"id: 2\r\n\r", "two", "a\\nb", "2"},
    {"id: 3\n\n", NULL, NULL, "3"},
    {"id: 4\r\r", "message", "four", "4"},
    {"data:five\n\n", NULL, NULL, "4"}, /* the line starts with U+FF10: not a data field */
};

struct cut_state {
    size_t total;
};

static void h_cut(struct ts_conn *c, unsigned idx, void *ud)
{
    /* Connection k gets the first k bytes of the sample, then an orderly close. (A reset right
     * after the bytes could destroy them unread in the client's socket: the kernel drops
     * received data on RST, so test_drop_mid_event resets only after a pause.) */
    ts_send(c, SSE_HEAD);
    if (idx <= sizeof(sample) - 1)
        ts_send_len(c, sample, idx);
}

/* The expected log of connection k and the last event id committed by its prefix. */
static void cut_expect(size_t k, char *log, size_t len, const char **last_id)
{
    size_t off = 0;
    log[0] = '\0';
    off += (size_t)snprintf(log + off, len - off, "open\n");
    for (size_t i = 0; i < sizeof(sample_events) / sizeof(sample_events[0]); i++) {
        const struct sample_event *e = &sample_events[i];
        const char *m = strstr(sample, e->end_marker);
        size_t end = (size_t)(m - sample) + strlen(e->end_marker);
        if (end > k)
            break;
        if (e->data)
            off +=
                (size_t)snprintf(log + off, len - off, "msg %s|%s|%s\n", e->type, e->data, e->id);
        *last_id = e->id;
    }
}

static int test_cut_at_every_byte(void)
{
    char url[128], hv[64], want[512];
    const size_t n = sizeof(sample) - 1;
    struct ts_server *s = ts_start(h_cut, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 1;
    o.max_failures = 1; /* every connection opens, so this never triggers */
    sse_client *c;
    struct rec r = {0};
    r.close_after_errors = (int)n + 1; /* connection n is the last one */
    CHECK_EQ_INT(sse_client_new(&c, NULL, ts_url(s, "/", url, sizeof(url)), &o, &rec_cb, &r), 0);
    int rc = sse_client_run(c, 20000);
    sse_client_free(c);
    unsigned conns = ts_connections(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_UINT(conns, n + 1);

    /* Split the log per connection: each starts with "open". */
    const char *p = r.log;
    const char *last_id = "";
    size_t checked = 0;
    for (size_t k = 0; k <= n; k++, checked++) {
        const char *expect_lei = last_id; /* committed by connection k - 1 */
        cut_expect(k, want, sizeof(want), &last_id);
        const char *next = strstr(p + 1, "open\n");
        /* Drop the "err ..." line that ends each connection before comparing. */
        const char *err = strstr(p, "err ");
        size_t seg =
            (size_t)((err && (!next || err < next) ? err : (next ? next : p + strlen(p))) - p);
        if (seg != strlen(want) || memcmp(p, want, seg) != 0)
            fprintf(stderr, "  connection %zu: got %.*s  want %s", k, (int)seg, p, want);
        CHECK_EQ_MEM(p, seg, want, strlen(want));
        const char *lei = ts_header(s, (unsigned)k, "Last-Event-ID", hv, sizeof(hv));
        if (expect_lei[0]) {
            CHECK(lei != NULL);
            CHECK_EQ_STR(lei, expect_lei);
        } else {
            CHECK(lei == NULL);
        }
        CHECK(err != NULL);
        CHECK(!strncmp(err, "err 0 SSE_ECLOSED", 17) || !strncmp(err, "err 0 SSE_EIO", 13) ||
              !strncmp(err, "err 2", 5));
        if (!next) {
            checked++;
            break;
        }
        p = next;
    }
    ts_stop(s);
    CHECK_EQ_UINT(checked, n + 1);
    return 0;
}

/* ---------------------------------------------------------------- drop mid-event, retry */

static void h_drop(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD);
    if (idx == 0) {
        ts_send(c, "id: 1\ndata: a\n\nid: 2\ndata: partial");
        ts_sleep(c, 50);
        ts_reset(c);
    } else {
        ts_send(c, "data: b\n\n");
        ts_sleep(c, 2000);
    }
}

static int test_drop_mid_event(void)
{
    char url[128], hv[64];
    struct ts_server *s = ts_start(h_drop, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 10;
    struct rec r = {.close_after_events = 2};
    int rc = run_client(ts_url(s, "/", url, sizeof(url)), &o, &r, 5000);
    const char *lei = ts_header(s, 1, "Last-Event-ID", hv, sizeof(hv));
    int lei_ok = lei && !strcmp(lei, "1");
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK(lei_ok);
    CHECK_EQ_STR(r.log, "open\nmsg message|a|1\nerr 0 SSE_EIO\nopen\nmsg message|b|1\n");
    return 0;
}

static void h_retry(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD);
    if (idx == 0)
        ts_send(c, "retry: 300\ndata: x\nid: 9\n\n");
    else
        ts_send(c, "data: y\n\n");
}

static int test_retry_changes_delay(void)
{
    char url[128], hv[64];
    struct ts_server *s = ts_start(h_retry, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 2500; /* without the retry field the gap would be this */
    struct rec r = {.close_after_events = 2};
    sse_client *c;
    CHECK_EQ_INT(sse_client_new(&c, NULL, ts_url(s, "/", url, sizeof(url)), &o, &rec_cb, &r), 0);
    CHECK_EQ_UINT(sse_client_retry_ms(c), 2500);
    int rc = sse_client_run(c, 5000);
    uint64_t retry = sse_client_retry_ms(c);
    sse_client_free(c);
    uint64_t gap = ts_time_ms(s, 1) - ts_time_ms(s, 0);
    const char *lei = ts_header(s, 1, "Last-Event-ID", hv, sizeof(hv));
    int lei_ok = lei && !strcmp(lei, "9");
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_UINT(retry, 300);
    CHECK(lei_ok);
    CHECK_EQ_STR(r.log, "open\nretry 300\nmsg message|x|9\nerr 0 SSE_ECLOSED\nopen\n"
                        "msg message|y|9\n");
    if (gap < 280 || gap > 2000)
        fprintf(stderr, "  gap %llu ms\n", (unsigned long long)gap);
    CHECK(gap >= 280);
    CHECK(gap < 2000);
    return 0;
}

/* ---------------------------------------------------------------- headers, Last-Event-ID */

static int test_custom_headers_and_initial_id(void)
{
    char url[128], hv[128];
    struct ts_server *s = ts_start(h_fixed, SSE_HEAD "data: z\n\n");
    CHECK(s);
    static const char *const hdrs[] = {"Authorization: Bearer abc.def", "X-Test: yes", NULL};
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.headers = hdrs;
    o.last_event_id = "start-7";
    struct rec r = {.close_after_events = 1};
    int rc = run_client(ts_url(s, "/h", url, sizeof(url)), &o, &r, 5000);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(ts_header(s, 0, "Authorization", hv, sizeof(hv)), "Bearer abc.def");
    CHECK_EQ_STR(ts_header(s, 0, "X-Test", hv, sizeof(hv)), "yes");
    CHECK_EQ_STR(ts_header(s, 0, "Last-Event-ID", hv, sizeof(hv)), "start-7");
    CHECK_EQ_STR(ts_header(s, 0, "Accept", hv, sizeof(hv)), "text/event-stream");
    ts_stop(s);
    CHECK_EQ_STR(r.log, "open\nmsg message|z|start-7\n");

    /* Bad arguments are refused up front. */
    sse_client *c = NULL;
    static const char *const bad[] = {"X-Evil: a\r\nX-Injected: b", NULL};
    sse_client_options ob = SSE_CLIENT_OPTIONS_INIT;
    ob.headers = bad;
    CHECK_EQ_INT(sse_client_new(&c, NULL, "http://127.0.0.1:1/", &ob, NULL, NULL), SSE_EINVAL);
    static const char *const noname[] = {": value", NULL};
    ob.headers = noname;
    CHECK_EQ_INT(sse_client_new(&c, NULL, "http://127.0.0.1:1/", &ob, NULL, NULL), SSE_EINVAL);
    ob.headers = NULL;
    ob.last_event_id = "a\nb";
    CHECK_EQ_INT(sse_client_new(&c, NULL, "http://127.0.0.1:1/", &ob, NULL, NULL), SSE_EINVAL);
    CHECK_EQ_INT(sse_client_new(&c, NULL, "ftp://127.0.0.1/", NULL, NULL, NULL), SSE_EINVAL);
    CHECK_EQ_INT(sse_client_new(&c, NULL, "http://", NULL, NULL, NULL), SSE_EINVAL);
    sse_client_options zero;
    memset(&zero, 0, sizeof(zero)); /* no SSE_CLIENT_OPTIONS_INIT: version 0 */
    CHECK_EQ_INT(sse_client_new(&c, NULL, "http://127.0.0.1:1/", &zero, NULL, NULL), SSE_EINVAL);
    CHECK_EQ_INT(sse_client_new(&c, NULL, "http://127.0.0.1:99999/", NULL, NULL, NULL), SSE_EINVAL);
    CHECK(c == NULL);
    return 0;
}

/* ---------------------------------------------------------------- read timeout */

static void h_stall(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD);
    if (idx == 0) {
        /* Heartbeats keep it alive for a while, then silence. */
        ts_send(c, "data: a\n\n");
        for (int i = 0; i < 6; i++) {
            if (ts_sleep(c, 100))
                return;
            ts_send(c, ":\n");
        }
        ts_sleep(c, 10000); /* until the client gives up on it */
    } else {
        ts_send(c, "data: b\n\n");
        ts_sleep(c, 2000);
    }
}

static int test_read_timeout(void)
{
    char url[128];
    struct ts_server *s = ts_start(h_stall, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.read_timeout_ms = 300;
    o.reconnect_ms = 10;
    struct rec r = {.close_after_events = 2};
    uint64_t t0 = ts_now_ms();
    int rc = run_client(ts_url(s, "/", url, sizeof(url)), &o, &r, 8000);
    uint64_t took = ts_now_ms() - t0;
    uint64_t gap = ts_time_ms(s, 1) - ts_time_ms(s, 0);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(r.log, "open\nmsg message|a|\nerr 0 SSE_ETIMEDOUT\nopen\nmsg message|b|\n");
    CHECK(strstr(r.last_msg, "300 ms"));
    /* 600 ms of heartbeats, then 300 ms of silence: not before the heartbeats stopped. */
    CHECK(gap >= 850);
    CHECK(took < 5000);
    return 0;
}

static void h_silent_then_ok(struct ts_conn *c, unsigned idx, void *ud)
{
    if (idx == 0) {
        ts_sleep(c, 10000); /* accepts, never answers */
        return;
    }
    ts_send(c, SSE_HEAD "data: late\n\n");
    ts_sleep(c, 2000);
}

static int test_read_timeout_before_headers(void)
{
    char url[128];
    struct ts_server *s = ts_start(h_silent_then_ok, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.read_timeout_ms = 200;
    o.reconnect_ms = 10;
    struct rec r = {.close_after_events = 1};
    int rc = run_client(ts_url(s, "/", url, sizeof(url)), &o, &r, 5000);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(r.log, "err 0 SSE_ETIMEDOUT\nopen\nmsg message|late|\n");
    return 0;
}

static void h_chunked(struct ts_conn *c, unsigned idx, void *ud)
{
    /* Events split across chunks, then the last chunk: a normal end of the response. */
    ts_send(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               "Transfer-Encoding: chunked\r\n\r\n");
    if (idx == 0) {
        ts_send(c, "5\r\nid: 1\r\n");
        ts_sleep(c, 20);
        ts_send(c, "8\r\n\ndata: a\r\n");
        ts_sleep(c, 20);
        ts_send(c, "a\r\n\n\ndata: pa\r\n"); /* dispatches a; "data: pa" is cut by the end */
        ts_send(c, "0\r\n\r\n");
    } else {
        ts_send(c, "d\r\ndata: again\n\n\r\n0\r\n\r\n");
    }
    ts_sleep(c, 1000);
}

static int test_chunked_response(void)
{
    char url[128], hv[64];
    struct ts_server *s = ts_start(h_chunked, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 10;
    struct rec r = {.close_after_events = 2};
    int rc = run_client(ts_url(s, "/", url, sizeof(url)), &o, &r, 5000);
    const char *lei = ts_header(s, 1, "Last-Event-ID", hv, sizeof(hv));
    int lei_ok = lei && !strcmp(lei, "1");
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK(lei_ok);
    CHECK_EQ_STR(r.log, "open\nmsg message|a|1\nerr 0 SSE_ECLOSED\nopen\nmsg message|again|1\n");
    return 0;
}

/* ---------------------------------------------------------------- backoff, failure cap */

static void h_empty(struct ts_conn *c, unsigned idx, void *ud)
{
    /* Close without an answer: curl reports "Empty reply from server". */
}

static int backoff_run(int no_jitter, uint64_t gaps[4], struct rec *r)
{
    char url[128];
    struct ts_server *s = ts_start(h_empty, NULL);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 40;
    o.max_failures = 5;
    o.no_jitter = no_jitter;
    int rc = run_client(ts_url(s, "/", url, sizeof(url)), &o, r, 10000);
    unsigned conns = ts_connections(s);
    for (unsigned i = 0; i < 4; i++)
        gaps[i] = ts_time_ms(s, i + 1) - ts_time_ms(s, i);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_UINT(conns, 5);
    CHECK_EQ_INT(r->errors, 5);
    CHECK_EQ_INT(r->opens, 0);
    CHECK_EQ_INT(r->last_state, SSE_CLIENT_CLOSED);
    CHECK_EQ_INT(r->last_code, SSE_EIO);
    CHECK(strstr(r->last_msg, "gave up after 5 failed connection attempts"));
    return 0;
}

static int test_backoff_and_failure_cap(void)
{
    uint64_t g[4];
    struct rec r = {0};
    CHECK_EQ_INT(backoff_run(1, g, &r), 0);
    CHECK_EQ_STR(r.log, "err 0 SSE_EIO\nerr 0 SSE_EIO\nerr 0 SSE_EIO\nerr 0 SSE_EIO\n"
                        "err 2 SSE_EIO\n");
    /* Without jitter: 40, 80, 160, 320 ms (loose bounds: the machine is shared). */
    fprintf(stderr, "  gaps without jitter: %llu %llu %llu %llu\n", (unsigned long long)g[0],
            (unsigned long long)g[1], (unsigned long long)g[2], (unsigned long long)g[3]);
    CHECK(g[0] >= 38 && g[1] >= 78 && g[2] >= 158 && g[3] >= 318);
    CHECK(g[3] < 2000);
    /* With jitter: failure k >= 2 waits in [40 * 2^(k-2), 40 * 2^(k-1)]. */
    struct rec r2 = {0};
    CHECK_EQ_INT(backoff_run(0, g, &r2), 0);
    fprintf(stderr, "  gaps with jitter: %llu %llu %llu %llu\n", (unsigned long long)g[0],
            (unsigned long long)g[1], (unsigned long long)g[2], (unsigned long long)g[3]);
    CHECK(g[0] >= 38 && g[1] >= 38 && g[2] >= 78 && g[3] >= 158);
    CHECK(g[3] > g[0]);
    return 0;
}

static int test_connection_refused(void)
{
    /* A port nobody listens on: take an ephemeral one and close it again. */
    struct ts_server *s = ts_start(h_empty, NULL);
    CHECK(s);
    char url[128];
    ts_url(s, "/", url, sizeof(url));
    ts_stop(s);
    struct rec r = {0};
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 5;
    o.max_failures = 2;
    CHECK_EQ_INT(run_client(url, &o, &r, 5000), 0);
    CHECK_EQ_STR(r.log, "err 0 SSE_EIO\nerr 2 SSE_EIO\n");
    CHECK(strstr(r.last_msg, "connect"));
    return 0;
}

/* ---------------------------------------------------------------- limits, listeners */

static int test_max_event(void)
{
    char url[128], resp[4096];
    snprintf(resp, sizeof(resp), SSE_HEAD "data: small\n\ndata: %0900d\n\ndata: after\n\n", 7);
    struct ts_server *s = ts_start(h_fixed, resp);
    CHECK(s);
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.max_event = 512;
    o.reconnect_ms = 10;
    struct rec r = {0};
    int rc = run_client(ts_url(s, "/", url, sizeof(url)), &o, &r, 5000);
    unsigned conns = ts_connections(s);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_UINT(conns, 1);
    CHECK_EQ_STR(r.log, "open\nmsg message|small|\nerr 2 SSE_ELIMIT\n");
    return 0;
}

struct listen_log {
    char log[256];
    size_t len;
};

static void on_typed(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    struct listen_log *l = ud;
    int n = snprintf(l->log + l->len, sizeof(l->log) - l->len, "%s:%s ", ev->type, ev->data);
    if (n > 0 && l->len + (size_t)n < sizeof(l->log))
        l->len += (size_t)n;
}

static int test_listeners(void)
{
    char url[128];
    struct ts_server *s =
        ts_start(h_fixed, SSE_HEAD "data: m1\n\nevent: foo\ndata: f1\n\nevent: bar\ndata: b1\n\n"
                                   "event: message\ndata: m2\n\nevent: foo\ndata: f2\n\n"
                                   "event: stop\ndata: s\n\n");
    CHECK(s);
    struct listen_log foo = {.len = 0}, msg = {.len = 0}, foo2 = {.len = 0};
    struct rec r = {.close_after_events = 6};
    sse_client *c;
    CHECK_EQ_INT(sse_client_new(&c, NULL, ts_url(s, "/", url, sizeof(url)), NULL, &rec_cb, &r), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, "foo", on_typed, &foo), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, "message", on_typed, &msg), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, "foo", on_typed, &foo2), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, NULL, on_typed, &foo2), SSE_EINVAL);
    CHECK_EQ_INT(sse_client_ready_state(c), SSE_CLIENT_CONNECTING);
    int rc = sse_client_run(c, 5000);
    CHECK_EQ_INT(sse_client_ready_state(c), SSE_CLIENT_CLOSED);
    sse_client_free(c);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.events, 6);
    CHECK_EQ_STR(foo.log, "foo:f1 foo:f2 ");
    CHECK_EQ_STR(foo2.log, "foo:f1 foo:f2 ");
    CHECK_EQ_STR(msg.log, "message:m1 message:m2 ");
    return 0;
}

/* A listener that removes itself on its first call: it must see exactly one event. */
static void on_once(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    on_typed(c, ev, ud);
    sse_client_remove_listener(c, "foo", on_once, ud);
}

static int test_remove_listener(void)
{
    char url[128];
    struct ts_server *s =
        ts_start(h_fixed, SSE_HEAD "event: foo\ndata: 1\n\nevent: foo\ndata: 2\n\n"
                                   "event: foo\ndata: 3\n\ndata: end\n\n");
    CHECK(s);
    struct listen_log once = {.len = 0}, kept = {.len = 0}, gone = {.len = 0};
    struct rec r = {.close_after_events = 4};
    sse_client *c;
    CHECK_EQ_INT(sse_client_new(&c, NULL, ts_url(s, "/", url, sizeof(url)), NULL, &rec_cb, &r), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, "foo", on_once, &once), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, "foo", on_typed, &gone), 0);
    CHECK_EQ_INT(sse_client_add_listener(c, "foo", on_typed, &kept), 0);
    CHECK_EQ_INT(sse_client_remove_listener(c, "foo", on_typed, &gone), 0);
    CHECK_EQ_INT(sse_client_remove_listener(c, "foo", on_typed, &gone), SSE_ENOTFOUND);
    CHECK_EQ_INT(sse_client_remove_listener(c, "bar", on_typed, &kept), SSE_ENOTFOUND);
    int rc = sse_client_run(c, 5000);
    sse_client_free(c);
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(once.log, "foo:1 ");
    CHECK_EQ_STR(kept.log, "foo:1 foo:2 foo:3 ");
    CHECK_EQ_STR(gone.log, "");
    return 0;
}

static int test_run_timeout(void)
{
    char url[128];
    struct ts_server *s = ts_start(h_stall, NULL);
    CHECK(s);
    struct rec r = {0};
    sse_client *c;
    CHECK_EQ_INT(sse_client_new(&c, NULL, ts_url(s, "/", url, sizeof(url)), NULL, &rec_cb, &r), 0);
    uint64_t t0 = ts_now_ms();
    int rc = sse_client_run(c, 300);
    uint64_t took = ts_now_ms() - t0;
    int st = sse_client_ready_state(c);
    sse_client_free(c);
    ts_stop(s);
    CHECK_EQ_INT(rc, SSE_ETIMEDOUT);
    CHECK_EQ_INT(st, SSE_CLIENT_OPEN);
    CHECK(took >= 290 && took < 3000);
    CHECK_EQ_STR(r.log, "open\nmsg message|a|\n");
    return 0;
}

/* ---------------------------------------------------------------- a group on a uv loop */

#define GROUP_N 24

struct group_test {
    sse_client *c[GROUP_N];
    int events[GROUP_N];
    int closed;
    sse_client_group *g;
};

static void g_message(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    struct group_test *t = ud;
    for (int i = 0; i < GROUP_N; i++)
        if (t->c[i] == c) {
            t->events[i]++;
            /* Even clients close themselves; odd ones are freed from the callback. */
            if (i % 2)
                sse_client_free(c), t->c[i] = NULL;
            else
                sse_client_close(c);
            t->closed++;
        }
}

static void h_group(struct ts_conn *c, unsigned idx, void *ud)
{
    char buf[256];
    snprintf(buf, sizeof(buf), SSE_HEAD "id: %u\ndata: conn %u\n\n", idx, idx);
    ts_send(c, buf);
}

static void g_tick(uv_timer_t *t)
{
    /* Only wakes the loop so that the test's deadline is checked. */
}

static int test_group_on_uv_loop(void)
{
    char url[128];
    struct ts_server *s = ts_start(h_group, NULL);
    CHECK(s);
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    struct group_test t;
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(sse_client_group_new(&t.g, &loop), 0);
    sse_client_callbacks cb = {NULL, g_message, NULL, NULL};
    for (int i = 0; i < GROUP_N; i++)
        CHECK_EQ_INT(sse_client_new(&t.c[i], t.g, ts_url(s, "/", url, sizeof(url)), NULL, &cb, &t),
                     0);
    CHECK_EQ_UINT(sse_client_group_count(t.g), GROUP_N);
    uv_timer_t check;
    uv_timer_init(&loop, &check);
    check.data = &t;
    uint64_t t0 = uv_now(&loop);
    uv_timer_start(&check, g_tick, 10, 10);
    while (t.closed < GROUP_N && uv_now(&loop) - t0 < 10000)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&check, NULL);
    CHECK_EQ_UINT(sse_client_group_count(t.g), GROUP_N / 2);
    sse_client_group_free(t.g); /* frees the even, closed clients too */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    unsigned conns = ts_connections(s);
    ts_stop(s);
    CHECK_EQ_INT(t.closed, GROUP_N);
    for (int i = 0; i < GROUP_N; i++)
        CHECK_EQ_INT(t.events[i], 1);
    CHECK_EQ_UINT(conns, GROUP_N);
    return 0;
}

/* ---------------------------------------------------------------- allocation failures */

static int test_new_alloc_failures(void)
{
    static const char *const hdrs[] = {"X-A: 1", NULL};
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.headers = hdrs;
    o.last_event_id = "x";
    for (long n = 1; n < 100; n++) {
        sse_client *c = NULL;
        failalloc_arm(n);
        int rc = sse_client_new(&c, NULL, "http://127.0.0.1:1/", &o, NULL, NULL);
        int hit = failalloc_was_hit();
        failalloc_arm(0);
        if (!hit) {
            CHECK_EQ_INT(rc, 0);
            sse_client_free(c);
            return 0;
        }
        CHECK(rc == SSE_ENOMEM);
        CHECK(c == NULL);
    }
    CHECK(0);
    return 1;
}

static void h_two(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD);
    ts_send(c, idx == 0 ? "id: 1\ndata: a\n\nretry: 5\n\n" : "event: x\ndata: b\n\n");
}

/* Fail every allocation of a whole run in turn (create, connect, parse, reconnect with
 * Last-Event-ID, listeners): each run must end cleanly (ASan checks leaks and misuse). */
static int test_run_alloc_failures(void)
{
    char url[128];
    struct ts_server *s = ts_start(h_two, NULL);
    CHECK(s);
    ts_url(s, "/", url, sizeof(url));
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.reconnect_ms = 5;
    o.max_failures = 3;
    o.last_event_id = "0";
    struct listen_log l = {.len = 0};
    long n;
    for (n = 1; n < 200; n++) {
        struct rec r = {.close_after_events = 2};
        sse_client *c = NULL;
        failalloc_arm(n);
        int rc = sse_client_new(&c, NULL, url, &o, &rec_cb, &r);
        if (rc == 0) {
            if (sse_client_add_listener(c, "x", on_typed, &l) == 0)
                rc = sse_client_run(c, 3000);
            else
                rc = SSE_ENOMEM;
            sse_client_free(c);
        }
        int hit = failalloc_was_hit();
        failalloc_arm(0);
        if (!hit) {
            CHECK_EQ_INT(rc, 0);
            CHECK_EQ_INT(r.events, 2);
            break;
        }
        /* Every failure ends the run (CLOSED) well before the limit: a time-out would mean a
         * request left hanging (e.g. a socket nobody polls). */
        if (rc == SSE_ETIMEDOUT)
            fprintf(stderr, "  allocation %ld: timed out\n", n);
        CHECK(rc == 0 || rc == SSE_ENOMEM);
    }
    ts_stop(s);
    CHECK(n > 5 && n < 200);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_status_and_mime), CHECK_TEST(test_redirects),
           CHECK_TEST(test_cut_at_every_byte), CHECK_TEST(test_drop_mid_event),
           CHECK_TEST(test_retry_changes_delay), CHECK_TEST(test_custom_headers_and_initial_id),
           CHECK_TEST(test_read_timeout), CHECK_TEST(test_read_timeout_before_headers),
           CHECK_TEST(test_chunked_response), CHECK_TEST(test_backoff_and_failure_cap),
           CHECK_TEST(test_connection_refused), CHECK_TEST(test_max_event),
           CHECK_TEST(test_listeners), CHECK_TEST(test_remove_listener),
           CHECK_TEST(test_run_timeout), CHECK_TEST(test_group_on_uv_loop),
           CHECK_TEST(test_new_alloc_failures), CHECK_TEST(test_run_alloc_failures))
