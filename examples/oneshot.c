/*
 * oneshot.c: the "one event per request" Server-Sent Events example, in C on libsse.
 *
 *   sse_example_oneshot [--listen HOST:PORT] [--web DIR]   (defaults 127.0.0.1:8080, web)
 *
 * Serves DIR as static files (open http://HOST:PORT/oneshot.html) and the event stream
 * /oneshot. Each request gets exactly one event -- id = its Last-Event-ID + 1 (or 1), data = the
 * server time in ISO 8601, "retry: 1000" -- and then the response ends. The browser's
 * EventSource reconnects a second later with Last-Event-ID, so the page still shows a new time
 * every second: the way SSE was often served by plain CGI-style handlers. A request carrying
 * Last-Event-ID N is logged on stdout as "reconnect last-event-id=N"; the first stdout line is
 * "listening on http://...". SIGINT / SIGTERM close the server gracefully; the program exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <sse/server.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* Ids stay below 2^53 so that JavaScript reads them exactly. */
#define MAX_ID (1ULL << 53)

struct oneshot {
    sse_server *server;
    uv_signal_t sigint, sigterm; /* graceful shutdown */
    int closing;
};

/* Write the current UTC time as "2026-11-21T05:15:10.123Z". */
static void iso_now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* Parse a whole string of decimal digits; returns 0 and *out, or -1. */
static int parse_u64(const char *s, unsigned long long *out)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* One request, one event, end of response. */
static void on_oneshot(sse_stream *st, const sse_request *req, void *user_data)
{
    unsigned long long last = 0;
    char now[48], idtext[24];
    sse_event ev = SSE_EVENT_INIT;
    int rc;

    if (parse_u64(sse_request_header(req, "Last-Event-ID"), &last) == 0) {
        printf("reconnect last-event-id=%llu\n", last);
        if (last >= MAX_ID)
            last = 0; /* start again rather than overflow */
    } else {
        printf("connect from %s\n", sse_request_remote_addr(req));
    }
    iso_now(now, sizeof(now));
    snprintf(idtext, sizeof(idtext), "%llu", last + 1);
    ev.id = idtext;
    ev.id_len = strlen(idtext);
    ev.data = now;
    ev.data_len = strlen(now);
    ev.retry = 1000;
    if ((rc = sse_stream_send(st, &ev)) < 0)
        fprintf(stderr, "oneshot: send: %s\n", sse_strerror(rc));
    sse_stream_close(st); /* flushes the event, then ends the response */
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct oneshot *o = sig->data;

    if (o->closing)
        return;
    o->closing = 1;
    printf("signal %d: closing\n", signum);
    uv_close((uv_handle_t *)&o->sigint, NULL);
    uv_close((uv_handle_t *)&o->sigterm, NULL);
    sse_server_close(o->server, 2000, NULL, NULL);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *web = "web";
    char host[256];
    int port, rc;
    struct oneshot o = {0};
    uv_loop_t *loop = uv_default_loop();

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen = argv[++i];
        } else if (!strcmp(argv[i], "--web") && i + 1 < argc) {
            web = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--listen HOST:PORT] [--web DIR]\n", argv[0]);
            return 2;
        }
    }
    if (sse_split_host_port(listen, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "oneshot: bad --listen '%s' (want HOST:PORT)\n", listen);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* tests read our log line by line */
    signal(SIGPIPE, SIG_IGN);

    if ((rc = sse_server_new(&o.server, loop, NULL)) < 0 ||
        (rc = sse_server_route_stream(o.server, "/oneshot", on_oneshot, &o)) < 0 ||
        (rc = sse_server_static(o.server, "/", web)) < 0 ||
        (rc = sse_server_listen(o.server, host, port)) < 0) {
        fprintf(stderr, "oneshot: cannot start on %s: %s\n", listen, sse_strerror(rc));
        if (o.server) {
            sse_server_close(o.server, 0, NULL, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
            sse_server_free(o.server);
        }
        uv_loop_close(loop);
        return 1;
    }
    printf("listening on http://%s%s%s:%d/ (stream /oneshot, files from %s)\n",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
           sse_server_port(o.server), web);

    uv_signal_init(loop, &o.sigint);
    uv_signal_init(loop, &o.sigterm);
    o.sigint.data = o.sigterm.data = &o;
    uv_signal_start(&o.sigint, on_signal, SIGINT);
    uv_signal_start(&o.sigterm, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    sse_server_free(o.server);
    uv_loop_close(loop);
    printf("closed\n");
    return 0;
}
