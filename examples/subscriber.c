/*
 * subscriber.c: the classic EventSource consumer, in C on libsse's client (sse/client.h).
 *
 *   sse_example_subscriber URL [--event TYPE]...
 *
 * The browser's
 *
 *   const es = new EventSource(URL);
 *   es.onopen = ...; es.onerror = ...;
 *   es.onmessage = (e) => ...;                   // events without a type ("message")
 *   es.addEventListener('TYPE', (e) => ...);     // one per --event TYPE
 *
 * written with the C API: a client on a libuv loop prints every readyState change
 * ("CONNECTING to URL", "OPEN", "CONNECTING again in N ms: why", "CLOSED: why") and every
 * event it listens to as "[id] type: data". As in the browser, events of another type than
 * "message" are printed only when a listener was added for them (--event TYPE). The client
 * reconnects by itself with Last-Event-ID. SIGINT closes it ("CLOSED (SIGINT)", exit 0). Exit
 * status 0 also when the server ends the stream for good (HTTP 204), 1 when the stream failed
 * (wrong status or Content-Type), 2 on a usage error. How to try it: examples/README.md.
 */
#include <signal.h>
#include <sse/client.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define MAX_TYPES 16

struct subscriber {
    sse_client *client;
    uv_signal_t sigint;
    int exit_code;
};

static const char *state_name(int state)
{
    return state == SSE_CLIENT_OPEN ? "OPEN" : state == SSE_CLIENT_CLOSED ? "CLOSED" : "CONNECTING";
}

static void on_open(sse_client *c, void *user_data)
{
    printf("%s\n", state_name(sse_client_ready_state(c)));
}

/* A connection failed or ended: the client either waits and reconnects, or is CLOSED for good. */
static void on_error(sse_client *c, int code, const char *message, void *user_data)
{
    struct subscriber *sub = user_data;

    if (sse_client_ready_state(c) == SSE_CLIENT_CONNECTING) {
        printf("CONNECTING again in %llu ms: %s\n", (unsigned long long)sse_client_next_delay_ms(c),
               message);
        return;
    }
    printf("CLOSED: %s\n", message);
    sub->exit_code = code == SSE_ECLOSED ? 0 : 1; /* 204 "no more events" is a normal end */
}

/* The listener of "message" and of every --event TYPE: the same function, like one JS handler. */
static void on_event(sse_client *c, const sse_parsed_event *ev, void *user_data)
{
    /* %.*s stops at a NUL byte in the data; fine for a demo. Multi-line data prints as is. */
    printf("[%s] %s: %.*s\n", ev->id, ev->type, (int)ev->data_len, ev->data);
}

static void on_sigint(uv_signal_t *sig, int signum)
{
    struct subscriber *sub = sig->data;

    sse_client_close(sub->client); /* no callback follows a close, so say it here */
    printf("CLOSED (SIGINT)\n");
    sub->exit_code = 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *types[MAX_TYPES];
    int ntypes = 0, rc;
    struct subscriber sub = {0};
    sse_client_callbacks cb = {on_open, NULL, NULL, on_error};
    sse_client_group *group = NULL;
    uv_loop_t *loop = uv_default_loop();

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--event") && i + 1 < argc && ntypes < MAX_TYPES) {
            types[ntypes++] = argv[++i];
        } else if (!url && argv[i][0] != '-') {
            url = argv[i];
        } else {
            fprintf(stderr, "usage: %s URL [--event TYPE]... (at most %d)\n", argv[0], MAX_TYPES);
            return 2;
        }
    }
    if (!url) {
        fprintf(stderr, "usage: %s URL [--event TYPE]...\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line per event, also through a pipe */

    /* A group on our loop (not sse_client_run's private loop), so the loop can watch SIGINT. */
    if ((rc = sse_client_group_new(&group, loop)) < 0 ||
        (rc = sse_client_new(&sub.client, group, url, NULL, &cb, &sub)) < 0)
        goto out_free_group;
    /* onmessage is the listener of "message"; on_message in cb would see every type. */
    if ((rc = sse_client_add_listener(sub.client, "message", on_event, &sub)) < 0)
        goto out_free_group;
    for (int i = 0; i < ntypes; i++)
        if ((rc = sse_client_add_listener(sub.client, types[i], on_event, &sub)) < 0)
            goto out_free_group;
    printf("CONNECTING to %s\n", url);

    uv_signal_init(loop, &sub.sigint);
    sub.sigint.data = &sub;
    uv_signal_start(&sub.sigint, on_sigint, SIGINT);
    while (sse_client_ready_state(sub.client) != SSE_CLIENT_CLOSED)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&sub.sigint, NULL);
    rc = 0;

out_free_group:
    if (rc < 0) {
        fprintf(stderr, "subscriber: %s\n", sse_strerror(rc));
        sub.exit_code = rc == SSE_EINVAL ? 2 : 1; /* SSE_EINVAL: not an http(s) URL */
    }
    sse_client_group_free(group); /* frees the client too */
    uv_run(loop, UV_RUN_DEFAULT); /* let the closed handles release their memory */
    uv_loop_close(loop);
    return sub.exit_code;
}
