/*
 * broadcast_server.c: bench_broadcast_server, the smallest useful server on include/sse/server.h,
 * used to measure the server layer before (and apart from) the hub.
 *
 *   GET  /stream    opens an event stream (kept until the client leaves)
 *   POST /publish   the body becomes ONE event (data = body), encoded once into one frame that
 *                   is sse_stream_send_frame'd to every open stream; answers 200 with the count
 *
 * Usage: bench_broadcast_server [--listen HOST:PORT] [--heartbeat MS]
 * Prints "listening on HOST:PORT" on stdout once it accepts connections; SIGINT/SIGTERM shut it
 * down gracefully. It raises its soft RLIMIT_NOFILE to the hard limit. Not a test and not a
 * library: a benchmark program (bench/CMakeLists.txt builds every bench/<name>.c).
 */
#include <errno.h>
#include <sse/buf.h>
#include <sse/format.h>
#include <sse/server.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

struct app {
    uv_loop_t *loop;
    sse_server *srv;
    uv_signal_t sigint, sigterm;
    sse_stream **streams; /* open streams; each stream's data is its index + 1 */
    size_t n, cap;
    uint64_t published;
};

static void on_stream_close(sse_stream *st, int reason, void *user_data)
{
    struct app *a = user_data;
    size_t i = (size_t)(uintptr_t)sse_stream_get_data(st);
    if (!i || i > a->n || a->streams[i - 1] != st)
        return;
    a->streams[i - 1] = a->streams[a->n - 1];
    sse_stream_set_data(a->streams[i - 1], (void *)(uintptr_t)i);
    a->n--;
}

static void on_stream(sse_stream *st, const sse_request *req, void *user_data)
{
    struct app *a = user_data;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        sse_stream **ns = realloc(a->streams, cap * sizeof(*ns));
        if (!ns) {
            sse_stream_close(st);
            return;
        }
        a->streams = ns;
        a->cap = cap;
    }
    a->streams[a->n++] = st;
    sse_stream_set_data(st, (void *)(uintptr_t)a->n);
    sse_stream_on_close(st, on_stream_close, a);
}

static int on_publish(sse_request *req, void *user_data)
{
    struct app *a = user_data;
    size_t len;
    const char *body = sse_request_body(req, &len);
    sse_event ev = SSE_EVENT_INIT;
    ev.data = body;
    ev.data_len = len;
    sse_buf b;
    sse_buf_init(&b, 0);
    sse_frame *f = NULL;
    int r = sse_encode_event(&b, &ev);
    if (r == 0)
        r = sse_frame_from_buf(&f, &b);
    sse_buf_free(&b);
    if (r < 0)
        return sse_request_respond(req, 500, "text/plain", "encode failed\n", 14);
    size_t sent = 0;
    for (size_t i = 0; i < a->n; i++)
        if (sse_stream_send_frame(a->streams[i], f) == 0)
            sent++;
    sse_frame_unref(f);
    a->published++;
    char out[32];
    int n = snprintf(out, sizeof(out), "%zu\n", sent);
    return sse_request_respond(req, 200, "text/plain", out, (size_t)n);
}

static void on_closed(sse_server *s, void *user_data)
{
    struct app *a = user_data;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *a = h->data;
    uv_signal_stop(&a->sigint);
    uv_signal_stop(&a->sigterm);
    sse_server_close(a->srv, 3000, on_closed, a);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    unsigned heartbeat = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen = argv[++i];
        } else if (!strcmp(argv[i], "--heartbeat") && i + 1 < argc) {
            heartbeat = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--listen HOST:PORT] [--heartbeat MS]\n", argv[0]);
            return 2;
        }
    }
    char host[256];
    int port;
    if (sse_split_host_port(listen, host, sizeof(host), &port)) {
        fprintf(stderr, "bad --listen %s\n", listen);
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct app a;
    memset(&a, 0, sizeof(a));
    a.loop = uv_default_loop();
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.heartbeat_ms = heartbeat ? heartbeat : UINT32_MAX;
    o.request_timeout_ms = 60000;
    int r = sse_server_new(&a.srv, a.loop, &o);
    if (r == 0)
        r = sse_server_route_stream(a.srv, "/stream", on_stream, &a);
    if (r == 0)
        r = sse_server_route(a.srv, "POST", "/publish", on_publish, &a);
    if (r == 0)
        r = sse_server_listen(a.srv, host, port);
    if (r < 0) {
        fprintf(stderr, "bench_broadcast_server: %s\n", sse_strerror(r));
        sse_server_free(a.srv);
        return 1;
    }
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    printf("listening on %s:%d\n", host, sse_server_port(a.srv));
    fflush(stdout);
    uv_run(a.loop, UV_RUN_DEFAULT);
    sse_server_free(a.srv);
    free(a.streams);
    uv_loop_close(a.loop);
    return 0;
}
