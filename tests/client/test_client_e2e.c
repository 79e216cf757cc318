/*
 * test_client_e2e.c: the EventSource client against the project's own server (server.h), both
 * on ONE libuv loop: the client group's curl sockets and the server's connections share it.
 * Covers open, typed events, retry, the server closing the stream, the reconnect with
 * Last-Event-ID and the replay decided from it, custom headers, 204 and a wrong MIME type.
 */
#include "harness/check.h"

#include <sse/client.h>
#include <sse/server.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct e2e {
    uv_loop_t loop;
    sse_server *server;
    sse_client_group *group;
    char log[4096];
    size_t len;
    int done;        /* clients finished */
    int streams;     /* streams the server opened */
    char lei[4][64]; /* Last-Event-ID seen by the server per stream ("-" when none) */
    char auth[64];   /* Authorization seen on the first stream */
};

static void logf_(struct e2e *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct e2e *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->log + t->len, sizeof(t->log) - t->len, fmt, ap);
    va_end(ap);
    if (n > 0 && t->len + (size_t)n < sizeof(t->log))
        t->len += (size_t)n;
}

/* ---------------------------------------------------------------- server side */

static void send_event(sse_stream *st, const char *type, const char *data, const char *id)
{
    sse_event ev = SSE_EVENT_INIT;
    ev.type = type;
    ev.type_len = type ? strlen(type) : 0;
    ev.data = data;
    ev.data_len = strlen(data);
    ev.id = id;
    ev.id_len = id ? strlen(id) : 0;
    sse_stream_send(st, &ev);
}

static void events_cb(sse_stream *st, const sse_request *req, void *ud)
{
    struct e2e *t = ud;
    const char *lei = sse_request_header(req, "Last-Event-ID");
    const char *auth = sse_request_header(req, "Authorization");
    if (t->streams < 4)
        snprintf(t->lei[t->streams], sizeof(t->lei[0]), "%s", lei ? lei : "-");
    if (t->streams == 0)
        snprintf(t->auth, sizeof(t->auth), "%s", auth ? auth : "-");
    t->streams++;
    if (!lei) {
        sse_stream_retry(st, 30);
        send_event(st, NULL, "one", "1");
        send_event(st, "tick", "two\nlines", "2");
        sse_stream_comment(st, "keep-alive");
        send_event(st, NULL, "three", "3");
        sse_stream_close(st); /* the client must come back with Last-Event-ID: 3 */
    } else {
        char data[96];
        snprintf(data, sizeof(data), "resumed after %s", lei);
        send_event(st, NULL, data, "4");
    }
}

static int nocontent_cb(sse_request *req, void *ud)
{
    return sse_request_respond(req, 204, NULL, "", 0);
}

static int plain_cb(sse_request *req, void *ud)
{
    return sse_request_respond(req, 200, "text/plain", "data: no\n\n", 10);
}

/* ---------------------------------------------------------------- client side */

static void c_open(sse_client *c, void *ud)
{
    logf_(ud, "open\n");
}

static void c_message(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    struct e2e *t = ud;
    logf_(t, "%s:", ev->type);
    for (size_t i = 0; i < ev->data_len; i++)
        logf_(t, ev->data[i] == '\n' ? "\\n" : "%c", ev->data[i]);
    logf_(t, ":%s\n", ev->id);
    if (!strcmp(ev->id, "4")) {
        sse_client_close(c);
        t->done++;
    }
}

static void c_retry(sse_client *c, uint64_t ms, void *ud)
{
    logf_(ud, "retry %llu\n", (unsigned long long)ms);
}

static void c_error(sse_client *c, int code, const char *msg, void *ud)
{
    struct e2e *t = ud;
    int st = sse_client_ready_state(c);
    logf_(t, "error %d %s\n", st, sse_errname(code));
    if (st == SSE_CLIENT_CLOSED)
        t->done++;
}

static void tick(uv_timer_t *tm)
{
    /* wakes the loop so the deadline below is checked */
}

static void server_closed(sse_server *s, void *ud)
{
    *(int *)ud = 1;
}

static int test_against_own_server(void)
{
    struct e2e t;
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(uv_loop_init(&t.loop), 0);
    CHECK_EQ_INT(sse_server_new(&t.server, &t.loop, NULL), 0);
    CHECK_EQ_INT(sse_server_route_stream(t.server, "/events", events_cb, &t), 0);
    CHECK_EQ_INT(sse_server_route(t.server, "GET", "/nocontent", nocontent_cb, &t), 0);
    CHECK_EQ_INT(sse_server_route(t.server, "GET", "/plain", plain_cb, &t), 0);
    CHECK_EQ_INT(sse_server_listen(t.server, "127.0.0.1", 0), 0);
    int port = sse_server_port(t.server);
    CHECK(port > 0);
    CHECK_EQ_INT(sse_client_group_new(&t.group, &t.loop), 0);

    char url[128];
    static const char *const hdrs[] = {"Authorization: Bearer e2e", NULL};
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.headers = hdrs;
    o.reconnect_ms = 5000; /* the stream's retry: 30 must win */
    sse_client_callbacks cb = {c_open, c_message, c_retry, c_error};
    sse_client *c1, *c2, *c3;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", port);
    CHECK_EQ_INT(sse_client_new(&c1, t.group, url, &o, &cb, &t), 0);

    uv_timer_t tm;
    uv_timer_init(&t.loop, &tm);
    uv_timer_start(&tm, tick, 20, 20);
    uint64_t t0 = uv_now(&t.loop);
    while (t.done < 1 && uv_now(&t.loop) - t0 < 10000)
        uv_run(&t.loop, UV_RUN_ONCE);
    uint64_t took = uv_now(&t.loop) - t0;
    CHECK_EQ_STR(t.log, "open\nretry 30\nmessage:one:1\ntick:two\\nlines:2\nmessage:three:3\n"
                        "error 0 SSE_ECLOSED\nopen\nmessage:resumed after 3:4\n");
    CHECK_EQ_STR(t.lei[0], "-");
    CHECK_EQ_STR(t.lei[1], "3");
    CHECK_EQ_STR(t.auth, "Bearer e2e");
    CHECK(took < 4000); /* retry 30 ms, not the 5000 ms initial reconnection time */
    CHECK_EQ_STR(sse_client_last_event_id(c1), "4");

    /* 204 closes for good; a text/plain answer fails the connection. */
    t.len = 0;
    t.log[0] = '\0';
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/nocontent", port);
    CHECK_EQ_INT(sse_client_new(&c2, t.group, url, NULL, &cb, &t), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/plain", port);
    CHECK_EQ_INT(sse_client_new(&c3, t.group, url, NULL, &cb, &t), 0);
    t0 = uv_now(&t.loop);
    while (t.done < 3 && uv_now(&t.loop) - t0 < 10000)
        uv_run(&t.loop, UV_RUN_ONCE);
    CHECK_EQ_INT(t.done, 3);
    CHECK(strstr(t.log, "error 2 SSE_ECLOSED\n")); /* 204 */
    CHECK(strstr(t.log, "error 2 SSE_EPROTO\n"));  /* text/plain */
    CHECK(!strstr(t.log, "open"));

    sse_client_group_free(t.group);
    uv_timer_stop(&tm);
    uv_close((uv_handle_t *)&tm, NULL);
    int closed = 0;
    sse_server_close(t.server, 1000, server_closed, &closed);
    t0 = uv_now(&t.loop);
    while (!closed && uv_now(&t.loop) - t0 < 5000)
        uv_run(&t.loop, UV_RUN_ONCE);
    CHECK(closed);
    sse_server_free(t.server);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&t.loop), 0);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_against_own_server))
