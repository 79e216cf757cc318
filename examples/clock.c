/*
 * clock.c: the classic Server-Sent Events clock, in C on libsse.
 *
 *   sse_example_clock [--listen HOST:PORT] [--web DIR]     (defaults 127.0.0.1:8080, web)
 *
 * Serves DIR as static files (open http://HOST:PORT/clock.html) and the event stream /clock.
 * Every second one timer encodes ONE frame -- an event with an increasing id and the server
 * time in ISO 8601, on every fifth id an extra named event "myEvent", now and then a comment --
 * and hands the same frame to every open stream (sse_stream_send_frame: encode once, no copy).
 * Each stream starts with "retry: 1000". A client that reconnects with Last-Event-ID N makes the
 * id counter resume after N (so ids keep increasing across a server restart) and is logged on
 * stdout as "reconnect last-event-id=N". The first stdout line is "listening on http://...".
 * SIGINT / SIGTERM close the server gracefully and the program exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <sse/server.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* Ids stay below 2^53 so that JavaScript reads them exactly; a larger Last-Event-ID is ignored. */
#define MAX_ID (1ULL << 53)

struct client {
    struct client *prev, *next; /* the clock's list of open streams */
    sse_stream *st;
};

struct clock {
    sse_server *server;
    uv_timer_t timer;            /* one tick per second, the only producer */
    uv_signal_t sigint, sigterm; /* graceful shutdown */
    struct client *clients;      /* open /clock streams */
    unsigned long long last_id;  /* id of the last event sent */
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

static void on_stream_close(sse_stream *st, int reason, void *user_data)
{
    struct clock *c = user_data;
    struct client *cl = sse_stream_get_data(st);

    if (cl->prev)
        cl->prev->next = cl->next;
    else
        c->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    free(cl);
}

/* A browser opened /clock: remember its stream, tell it the retry delay. */
static void on_clock(sse_stream *st, const sse_request *req, void *user_data)
{
    struct clock *c = user_data;
    unsigned long long last;
    struct client *cl = calloc(1, sizeof(*cl));

    if (!cl) {
        sse_stream_close(st);
        return;
    }
    if (parse_u64(sse_request_header(req, "Last-Event-ID"), &last) == 0) {
        printf("reconnect last-event-id=%llu\n", last);
        if (last > c->last_id && last < MAX_ID)
            c->last_id = last; /* resume: the next event gets last + 1 */
    } else {
        printf("connect from %s\n", sse_request_remote_addr(req));
    }
    cl->st = st;
    cl->next = c->clients;
    if (cl->next)
        cl->next->prev = cl;
    c->clients = cl;
    sse_stream_set_data(st, cl);
    sse_stream_on_close(st, on_stream_close, c);
    sse_stream_retry(st, 1000);
}

/* Append this second's events to b: maybe a comment, the time, maybe myEvent. */
static int encode_tick(sse_buf *b, unsigned long long id)
{
    char now[48], idtext[24], mine[96];
    sse_event ev = SSE_EVENT_INIT;
    int rc;

    if (id % 7 == 0 && (rc = sse_encode_comment(b, " the clock is still ticking", 27)) < 0)
        return rc;
    iso_now(now, sizeof(now));
    snprintf(idtext, sizeof(idtext), "%llu", id);
    ev.id = idtext;
    ev.id_len = strlen(idtext);
    ev.data = now;
    ev.data_len = strlen(now);
    if ((rc = sse_encode_event(b, &ev)) < 0)
        return rc;
    if (id % 5 == 0) {
        sse_event my = SSE_EVENT_INIT;

        snprintf(mine, sizeof(mine), "id %llu is a multiple of five (%s)", id, now);
        my.type = "myEvent";
        my.type_len = strlen(my.type);
        my.data = mine;
        my.data_len = strlen(mine);
        if ((rc = sse_encode_event(b, &my)) < 0)
            return rc;
    }
    return 0;
}

/* Once a second: encode one frame and queue it on every stream. */
static void on_tick(uv_timer_t *t)
{
    struct clock *c = t->data;
    sse_frame *frame;
    sse_buf b;
    int rc;

    sse_buf_init(&b, 4096);
    c->last_id++;
    if ((rc = encode_tick(&b, c->last_id)) < 0 || (rc = sse_frame_from_buf(&frame, &b)) < 0) {
        fprintf(stderr, "clock: encode: %s\n", sse_strerror(rc));
        goto out_free_buf;
    }
    for (struct client *cl = c->clients, *next; cl; cl = next) {
        next = cl->next; /* a failed send may close the stream and free cl */
        sse_stream_send_frame(cl->st, frame);
    }
    sse_frame_unref(frame);
out_free_buf:
    sse_buf_free(&b);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct clock *c = sig->data;

    if (c->closing)
        return;
    c->closing = 1;
    printf("signal %d: closing\n", signum);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->sigint, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
    sse_server_close(c->server, 2000, NULL, NULL);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *web = "web";
    char host[256];
    int port, rc;
    struct clock c = {0};
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
        fprintf(stderr, "clock: bad --listen '%s' (want HOST:PORT)\n", listen);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* tests read our log line by line */
    signal(SIGPIPE, SIG_IGN);

    if ((rc = sse_server_new(&c.server, loop, NULL)) < 0 ||
        (rc = sse_server_route_stream(c.server, "/clock", on_clock, &c)) < 0 ||
        (rc = sse_server_static(c.server, "/", web)) < 0 ||
        (rc = sse_server_listen(c.server, host, port)) < 0) {
        fprintf(stderr, "clock: cannot start on %s: %s\n", listen, sse_strerror(rc));
        if (c.server) {
            sse_server_close(c.server, 0, NULL, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
            sse_server_free(c.server);
        }
        uv_loop_close(loop);
        return 1;
    }
    printf("listening on http://%s%s%s:%d/ (stream /clock, files from %s)\n",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
           sse_server_port(c.server), web);

    uv_timer_init(loop, &c.timer);
    c.timer.data = &c;
    uv_timer_start(&c.timer, on_tick, 1000, 1000);
    uv_signal_init(loop, &c.sigint);
    uv_signal_init(loop, &c.sigterm);
    c.sigint.data = c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_signal, SIGINT);
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    sse_server_free(c.server);
    uv_loop_close(loop);
    printf("closed\n");
    return 0;
}
