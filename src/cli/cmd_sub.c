/*
 * cmd_sub.c: `ssehub sub URL`: subscribe to an event stream with the EventSource client
 * (include/sse/client.h) and print events as they arrive: readable text by default, or with
 * --json exactly the JSON lines of `ssehub parse` (cli_json.h) plus one final
 * {"end":...,"retry_ms":N,"reason":...} line when the client stops.
 * Connection notices go to stderr; stdout is flushed after every event.
 */
#include "cli_commands.h"
#include "cli_help.h"
#include "cli_json.h"

#include <errno.h>
#include <sse/client.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char sse_cli_sub_summary[] = "subscribe to an event stream (EventSource client) and print it";

#define SUB_MAX_TYPES 64
#define SUB_MAX_HEADERS 64

/* The help table: --help, the man page ssehub-sub(1) and the completion (cli_help.h). */
static const struct cli_option sub_options[] = {
    {"--json", NULL,
     "print JSON lines, exactly as `ssehub parse`:\n"
     "{\"type\":...,\"data\":...,\"id\":...} per event, {\"retry\":N} per\n"
     "accepted retry, and at the end one line\n"
     "{\"end\":\"closed\"|\"reconnecting\"|\"timeout\",\"retry_ms\":N,\"reason\":...}"},
    {"--event", "TYPE", "print only events of this type (repeatable)"},
    {"-H", "'Name: value'", "add a request header (repeatable)"},
    {"--last-event-id", "ID", "send this Last-Event-ID on the first request"},
    {"--reconnect-ms", "MS", "initial reconnection time (default 3000)"},
    {"--max-connections", "N", "stop when the Nth connection ends (default: never)"},
    {"--no-reconnect", NULL, "same as --max-connections 1"},
    {"--max-failures", "N", "give up after N consecutive failed attempts (default: never)"},
    {"--max-events", "N", "stop after N printed events"},
    {"--timeout-ms", "MS", "stop after MS milliseconds"},
    {"--read-timeout-ms", "MS", "a connection silent for MS ms is dead: reconnect"},
    {"--max-event", "BYTES", "largest accepted event (default 16777216)"},
    {"-h, --help", NULL, "this text"},
    {NULL, NULL, NULL},
};

static const struct cli_help sub_help = {
    "sub",
    sse_cli_sub_summary,
    "[options] URL",
    "Connects to URL like a browser's EventSource (Accept: text/event-stream, reconnects\n"
    "with Last-Event-ID, honours retry:) and prints every event as it arrives.",
    sub_options,
    "end reasons: closed = the connection failed or was closed for good (e.g. HTTP 204,\n"
    "a wrong status or MIME type, --max-failures, --max-events reached); reconnecting =\n"
    "it would reconnect but --max-connections stopped it; timeout = --timeout-ms ran out.",
    "0 stopped by a limit (--max-events, --max-connections, --timeout-ms)\n"
    "or closed for good by the server (HTTP 204); 1 the connection failed (status, MIME\n"
    "type, too many failures, event too large), or --max-connections stopped it after\n"
    "a connection that never opened; 2 usage error; 130 / 143 interrupted by SIGINT /\n"
    "SIGTERM (the end line is still printed, reason \"interrupted by SIGINT\")",
};

const struct cli_help *sse_cli_sub_help(void)
{
    return &sub_help;
}

static void sub_usage(FILE *out)
{
    cli_help_print(out, &sub_help);
}

struct sub_state {
    int json;
    const char *types[SUB_MAX_TYPES];
    size_t ntypes;
    unsigned long max_connections, max_events;
    unsigned long ended;   /* connections that ended */
    unsigned long printed; /* events printed */
    int opened;            /* the current connection opened */
    const char *end;       /* "closed" / "reconnecting" / NULL (still running) */
    char reason[512];
    int exit_code;
    sse_client *client; /* for the signal and time-limit handlers */
};

static void sub_stop(struct sub_state *st, sse_client *c, const char *end, const char *reason,
                     int exit_code)
{
    st->end = end;
    snprintf(st->reason, sizeof(st->reason), "%s", reason);
    st->exit_code = exit_code;
    sse_client_close(c);
}

static void sub_print_event(struct sub_state *st, sse_client *c, const sse_parsed_event *ev)
{
    if (st->json) {
        sse_cli_json_event(stdout, ev);
    } else {
        /* Readable and still an event stream: event/id lines, one data line per line. */
        printf("event: %s\n", ev->type);
        if (ev->id_len)
            printf("id: %s\n", ev->id);
        const char *p = ev->data, *end = ev->data + ev->data_len;
        for (;;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            fputs("data: ", stdout);
            fwrite(p, 1, n, stdout); /* data may hold NUL bytes */
            fputc('\n', stdout);
            if (!nl)
                break;
            p = nl + 1;
        }
        printf("\n");
    }
    fflush(stdout);
    st->printed++;
    if (st->max_events && st->printed >= st->max_events)
        sub_stop(st, c, "closed", "--max-events reached", 0);
}

static void sub_on_open(sse_client *c, void *ud)
{
    ((struct sub_state *)ud)->opened = 1;
    fprintf(stderr, "ssehub sub: open %s\n", sse_client_url(c));
}

static void sub_on_message(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    struct sub_state *st = ud;
    if (st->ntypes)
        return; /* the listeners print the selected types */
    sub_print_event(st, c, ev);
}

static void sub_on_typed(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    sub_print_event(ud, c, ev);
}

static void sub_on_retry(sse_client *c, uint64_t ms, void *ud)
{
    struct sub_state *st = ud;
    if (st->json) {
        sse_cli_json_retry(stdout, ms);
        fflush(stdout);
    } else {
        fprintf(stderr, "ssehub sub: retry %llu ms\n", (unsigned long long)ms);
    }
}

static void sub_on_error(sse_client *c, int code, const char *msg, void *ud)
{
    struct sub_state *st = ud;
    int opened = st->opened;
    st->opened = 0;
    st->ended++;
    if (sse_client_ready_state(c) == SSE_CLIENT_CLOSED) {
        fprintf(stderr, "ssehub sub: closed: %s\n", msg);
        st->end = "closed";
        snprintf(st->reason, sizeof(st->reason), "%s", msg);
        st->exit_code = code == SSE_ECLOSED ? 0 : 1; /* 204 is a normal, final close */
        return;
    }
    fprintf(stderr, "ssehub sub: %s; reconnecting in %llu ms\n", msg,
            (unsigned long long)sse_client_next_delay_ms(c));
    if (st->max_connections && st->ended >= st->max_connections)
        sub_stop(st, c, "reconnecting", msg, opened ? 0 : 1);
}

static void sub_on_signal(uv_signal_t *h, int signum)
{
    struct sub_state *st = h->data;
    char reason[64];
    snprintf(reason, sizeof(reason), "interrupted by %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    sub_stop(st, st->client, "closed", reason, 128 + signum);
}

static void sub_on_limit(uv_timer_t *t)
{
    struct sub_state *st = t->data;
    int open = sse_client_ready_state(st->client) == SSE_CLIENT_OPEN;
    sub_stop(st, st->client, "timeout",
             open ? "--timeout-ms reached while open" : "--timeout-ms reached while connecting", 0);
}

/* A non-negative decimal number for an option; -1 if s is not one. */
static long long sub_number(const char *s, unsigned long long max)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    return (long long)v;
}

int sse_cli_sub(int argc, char **argv)
{
    struct sub_state st;
    memset(&st, 0, sizeof(st));
    const char *headers[SUB_MAX_HEADERS + 1];
    size_t nheaders = 0;
    const char *url = NULL;
    unsigned long timeout_ms = 0;
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            sub_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            st.json = 1;
        } else if (!strcmp(a, "--no-reconnect")) {
            st.max_connections = 1;
        } else if (!strcmp(a, "--event") || !strcmp(a, "-H") || !strcmp(a, "--last-event-id")) {
            if (!v) {
                fprintf(stderr, "ssehub sub: %s needs a value\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--event")) {
                if (st.ntypes == SUB_MAX_TYPES) {
                    fprintf(stderr, "ssehub sub: at most %d --event options\n", SUB_MAX_TYPES);
                    return 2;
                }
                size_t k = 0;
                while (k < st.ntypes && strcmp(st.types[k], v) != 0)
                    k++;
                if (k == st.ntypes) /* a repeated type is listened to once */
                    st.types[st.ntypes++] = v;
            } else if (!strcmp(a, "-H")) {
                if (nheaders == SUB_MAX_HEADERS) {
                    fprintf(stderr, "ssehub sub: at most %d -H options\n", SUB_MAX_HEADERS);
                    return 2;
                }
                headers[nheaders++] = v;
            } else {
                o.last_event_id = v;
            }
        } else if (!strcmp(a, "--reconnect-ms") || !strcmp(a, "--max-connections") ||
                   !strcmp(a, "--max-events") || !strcmp(a, "--timeout-ms") ||
                   !strcmp(a, "--read-timeout-ms") || !strcmp(a, "--max-failures") ||
                   !strcmp(a, "--max-event")) {
            int bytes = !strcmp(a, "--max-event");
            n = sub_number(v, bytes ? (unsigned long long)(SIZE_MAX / 4) : 0xffffffffull);
            if (n <= 0) {
                fprintf(stderr, "ssehub sub: %s needs a positive number\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--reconnect-ms"))
                o.reconnect_ms = (unsigned)n;
            else if (!strcmp(a, "--max-connections"))
                st.max_connections = (unsigned long)n;
            else if (!strcmp(a, "--max-events"))
                st.max_events = (unsigned long)n;
            else if (!strcmp(a, "--timeout-ms"))
                timeout_ms = (unsigned long)n;
            else if (!strcmp(a, "--read-timeout-ms"))
                o.read_timeout_ms = (unsigned)n;
            else if (!strcmp(a, "--max-failures"))
                o.max_failures = (unsigned)n;
            else
                o.max_event = (size_t)n;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ssehub sub: unknown option '%s' (see ssehub sub --help)\n", a);
            return 2;
        } else if (!url) {
            url = a;
        } else {
            fprintf(stderr, "ssehub sub: only one URL\n");
            return 2;
        }
    }
    if (!url) {
        sub_usage(stderr);
        return 2;
    }
    headers[nheaders] = NULL;
    o.headers = headers;

    /* A group on our own loop rather than sse_client_run(): the loop also watches SIGINT /
     * SIGTERM and the time limit, so the "end" line is printed in every case. */
    uv_loop_t loop;
    sse_client_group *g = NULL;
    sse_client *c = NULL;
    uv_signal_t sigs[2];
    uv_timer_t limit;
    int rc = uv_loop_init(&loop);
    if (rc) {
        fprintf(stderr, "ssehub sub: %s\n", sse_strerror(rc));
        return 1;
    }
    rc = sse_client_group_new(&g, &loop);
    sse_client_callbacks cb = {sub_on_open, sub_on_message, sub_on_retry, sub_on_error};
    if (!rc)
        rc = sse_client_new(&c, g, url, &o, &cb, &st);
    for (size_t i = 0; !rc && i < st.ntypes; i++)
        rc = sse_client_add_listener(c, st.types[i], sub_on_typed, &st);
    if (rc) {
        if (rc == SSE_EINVAL)
            fprintf(stderr, "ssehub sub: not an http(s) URL, or a header without 'Name: value' "
                            "or with CR/LF\n");
        else
            fprintf(stderr, "ssehub sub: %s\n", sse_strerror(rc));
        sse_client_group_free(g); /* frees c */
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return rc == SSE_EINVAL ? 2 : 1;
    }
    st.client = c;
    static const int signums[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &sigs[i]);
        sigs[i].data = &st;
        uv_signal_start(&sigs[i], sub_on_signal, signums[i]);
    }
    uv_timer_init(&loop, &limit);
    limit.data = &st;
    if (timeout_ms)
        uv_timer_start(&limit, sub_on_limit, timeout_ms, 0);
    while (sse_client_ready_state(c) != SSE_CLIENT_CLOSED)
        uv_run(&loop, UV_RUN_ONCE);
    uint64_t retry_ms = sse_client_retry_ms(c);
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&sigs[i], NULL);
    uv_close((uv_handle_t *)&limit, NULL);
    sse_client_group_free(g); /* frees c */
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    if (st.json) {
        printf("{\"end\":\"%s\",\"retry_ms\":%llu,\"reason\":", st.end ? st.end : "closed",
               (unsigned long long)retry_ms);
        sse_cli_json_string(stdout, st.reason, strlen(st.reason));
        printf("}\n");
    } else {
        fprintf(stderr, "ssehub sub: end: %s (%s)\n", st.end ? st.end : "closed", st.reason);
    }
    if (fflush(stdout) != 0)
        return 1;
    return st.exit_code;
}
