/*
 * cli_demo.c: the demo of `ssehub serve --demo` (cli_demo.h): the classic clock and one-shot
 * streams, the hub's clock topic, and the pages of web/ built into the program.
 *
 * The classic streams are those of examples/clock.c and examples/oneshot.c, here inside the
 * hub's server so that one command shows every page. The clock encodes one frame per second
 * and hands the same frame to every open clock stream (no copy per stream). It does not own the
 * server, the hub or the loop.
 */
#include "cli_demo.h"

#include "cli_web.h"

#include <errno.h>
#include <sse/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Ids stay below 2^53, so that JavaScript reads them exactly. */
#define DEMO_MAX_ID (1ULL << 53)
/* The reconnection delay both classic streams ask for. */
#define DEMO_RETRY_MS 1000

struct demo_client { /* one open /clock stream */
    sse_stream *st;
    struct demo_client *prev, *next;
};

struct sse_cli_demo {
    uv_timer_t timer;            /* one tick a second: the clock stream and the hub topic */
    int timer_on;                /* initialized and not yet closed */
    sse_hub *hub;                /* NULL: no hub publisher in this process */
    char *topic;                 /* the hub topic of the clock */
    unsigned long long clock_id; /* the last id of the clock stream */
    unsigned long long hub_tick; /* ticks published on the hub (myEvent every fifth) */
    struct demo_client *clients; /* the open /clock streams */
    void (*log)(void *data, int level, const char *line);
    void *log_data;
};

static void demo_log(struct sse_cli_demo *d, int level, const char *line)
{
    if (d->log)
        d->log(d->log_data, level, line);
}

/* The current UTC time as "2026-11-21T05:15:10.123Z". */
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

/* A Last-Event-ID the demo can continue from: all decimal digits, below 2^53. 0 or -1. */
static int last_event_id(const sse_request *req, unsigned long long *out)
{
    const char *s = sse_request_header(req, "Last-Event-ID");
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v >= DEMO_MAX_ID)
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- /clock */

static void clock_closed(sse_stream *st, int reason, void *user_data)
{
    struct sse_cli_demo *d = user_data;
    struct demo_client *cl = sse_stream_get_data(st);

    (void)reason;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        d->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    free(cl);
}

static int clock_encode(sse_buf *b, unsigned long long id);

/* The next id of the clock (ids start again at 1 past 2^53). */
static unsigned long long clock_next(struct sse_cli_demo *d)
{
    if (++d->clock_id >= DEMO_MAX_ID)
        d->clock_id = 1;
    return d->clock_id;
}

static void clock_opened(sse_stream *st, const sse_request *req, void *user_data)
{
    struct sse_cli_demo *d = user_data;
    struct demo_client *cl = calloc(1, sizeof(*cl));
    unsigned long long last;

    if (!cl) {
        sse_stream_close(st);
        return;
    }
    /* A browser coming back after a restart: the ids carry on after the one it saw. */
    if (last_event_id(req, &last) == 0 && last > d->clock_id)
        d->clock_id = last;
    cl->st = st;
    cl->next = d->clients;
    if (cl->next)
        cl->next->prev = cl;
    d->clients = cl;
    sse_stream_set_data(st, cl);
    sse_stream_on_close(st, clock_closed, d);
    sse_stream_retry(st, DEMO_RETRY_MS);
    sse_stream_comment(st, " ssehub demo clock: an event every second");
    /* The time at once, as the classic clock does, rather than up to a second later: this one
       event is encoded for this stream alone, with an id of its own (the others skip it). */
    sse_buf b;
    sse_frame *frame;
    sse_buf_init(&b, 4096);
    if (clock_encode(&b, clock_next(d)) < 0 || sse_frame_from_buf(&frame, &b) < 0) {
        demo_log(d, SSE_LOG_WARN, "demo clock: cannot encode the event");
    } else {
        sse_stream_send_frame(st, frame);
        sse_frame_unref(frame);
    }
    sse_buf_free(&b);
}

/* This second's frame: maybe a comment, the time, maybe myEvent. */
static int clock_encode(sse_buf *b, unsigned long long id)
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

static void clock_tick(struct sse_cli_demo *d)
{
    sse_frame *frame;
    sse_buf b;
    int rc;

    unsigned long long id = clock_next(d);
    if (!d->clients)
        return;
    sse_buf_init(&b, 4096);
    if ((rc = clock_encode(&b, id)) < 0 || (rc = sse_frame_from_buf(&frame, &b)) < 0) {
        demo_log(d, SSE_LOG_WARN, "demo clock: cannot encode the event");
        sse_buf_free(&b);
        return;
    }
    for (struct demo_client *cl = d->clients, *next; cl; cl = next) {
        next = cl->next; /* a failed send may close the stream and free cl */
        sse_stream_send_frame(cl->st, frame);
    }
    sse_frame_unref(frame);
    sse_buf_free(&b);
}

/* ---------------------------------------------------------------- /oneshot */

/* One request, one event, end of the response: the browser reconnects after retry. */
static void oneshot_opened(sse_stream *st, const sse_request *req, void *user_data)
{
    struct sse_cli_demo *d = user_data;
    unsigned long long last = 0;
    char now[48], idtext[24];
    sse_event ev = SSE_EVENT_INIT;

    if (last_event_id(req, &last))
        last = 0; /* none, or not one of ours: start at 1 */
    iso_now(now, sizeof(now));
    snprintf(idtext, sizeof(idtext), "%llu", last + 1);
    ev.id = idtext;
    ev.id_len = strlen(idtext);
    ev.data = now;
    ev.data_len = strlen(now);
    ev.retry = DEMO_RETRY_MS;
    if (sse_stream_send(st, &ev) < 0)
        demo_log(d, SSE_LOG_WARN, "demo oneshot: cannot send the event");
    sse_stream_close(st); /* flushes the event, then ends the response */
}

/* ---------------------------------------------------------------- the hub topic */

static void hub_tick(struct sse_cli_demo *d)
{
    char data[48];
    const char *topics[1] = {d->topic};

    iso_now(data, sizeof(data));
    d->hub_tick++;
    sse_hub_update u = {topics, 1, data, strlen(data), NULL, NULL, -1, 0};
    int rc = sse_hub_publish(d->hub, &u, NULL);
    if (!rc && d->hub_tick % 5 == 0) { /* as the classic clock: an extra named event */
        u.type = "myEvent";
        rc = sse_hub_publish(d->hub, &u, NULL);
    }
    if (rc)
        demo_log(d, SSE_LOG_WARN, "demo publish failed");
}

static void on_tick(uv_timer_t *t)
{
    struct sse_cli_demo *d = t->data;

    clock_tick(d);
    if (d->hub)
        hub_tick(d);
}

/* ---------------------------------------------------------------- the pages */

static int page(sse_request *req, void *user_data)
{
    const char *path = sse_request_path(req);

    (void)user_data;
    if (!strcmp(path, "/"))
        path = "/index.html";
    for (size_t i = 0; i < sse_cli_web_files_count; i++) {
        const struct sse_cli_web_file *f = &sse_cli_web_files[i];
        if (strcmp(f->path, path))
            continue;
        sse_request_add_header(req, "Cache-Control", "no-cache");
        return sse_request_respond(req, 200, f->content_type, f->bytes, f->len);
    }
    return sse_request_respond(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
}

/* ---------------------------------------------------------------- life cycle */

int sse_cli_demo_new(struct sse_cli_demo **out, const struct sse_cli_demo_options *o)
{
    struct sse_cli_demo *d = calloc(1, sizeof(*d));
    int rc = SSE_ENOMEM;

    if (!d || !(d->topic = strdup(o->topic ? o->topic : "/demo/clock")))
        goto out_free;
    d->hub = o->hub;
    d->log = o->log;
    d->log_data = o->log_data;
    if ((rc = sse_server_route_stream(o->server, "/clock", clock_opened, d)) ||
        (rc = sse_server_route_stream(o->server, "/oneshot", oneshot_opened, d)) ||
        (o->pages && (rc = sse_server_route(o->server, "GET", "/*", page, d))))
        goto out_free;
    if ((rc = uv_timer_init(o->loop, &d->timer)))
        goto out_free;
    d->timer.data = d;
    d->timer_on = 1;
    uv_timer_start(&d->timer, on_tick, 1000, 1000);
    *out = d;
    return 0;

out_free:
    if (d)
        free(d->topic);
    free(d);
    return rc;
}

void sse_cli_demo_close(struct sse_cli_demo *d)
{
    if (!d || !d->timer_on)
        return;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, NULL);
    d->timer_on = 0;
}

void sse_cli_demo_free(struct sse_cli_demo *d)
{
    if (!d)
        return;
    while (d->clients) { /* none once the server is freed; kept safe all the same */
        struct demo_client *cl = d->clients;
        d->clients = cl->next;
        free(cl);
    }
    free(d->topic);
    free(d);
}
