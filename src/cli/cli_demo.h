/*
 * cli_demo.h: what `ssehub serve --demo` adds to the hub: the classic Server-Sent Events
 * examples and their pages, all inside the one program.
 *
 *   GET /clock      the classic clock: one long response, every second an event with an
 *                   increasing id and the server time, a named `myEvent` on every fifth id,
 *                   a `:` comment when the stream opens and on every seventh id, `retry: 1000`
 *                   first, and the time at once when a stream opens (under an id of its own);
 *                   a Last-Event-ID ahead of the counter moves it forward.
 *   GET /oneshot    one event per response (id = Last-Event-ID + 1, the server time,
 *                   `retry: 1000`), then the response ends and the browser reconnects.
 *   GET /FILE       the pages of web/ built into the binary (cli_web.h), unless the caller
 *                   serves a folder instead (`--web DIR`, for work on the pages).
 *   the hub topic   the server time every second (and a `myEvent` every fifth) published on
 *                   the hub, for clock.html?topic=... and the playground.
 *
 * It does not own the server, the hub or the loop; cmd_serve.c creates it after the hub's
 * routes (so that the catch-all page route comes last) and closes it when it shuts down.
 */
#ifndef SSE_CLI_DEMO_H
#define SSE_CLI_DEMO_H

#include <sse/hub.h>
#include <sse/server.h>

struct sse_cli_demo;

struct sse_cli_demo_options {
    uv_loop_t *loop;    /* borrowed: the server's loop */
    sse_server *server; /* borrowed: routes are added to it */
    sse_hub *hub;       /* borrowed: the hub the clock is published on; NULL: none (a worker
                           other than worker 0, so that one clock goes through the bus) */
    const char *topic;  /* the hub topic of the clock (copied) */
    int pages;          /* 1: serve the built-in pages at / */
    void (*log)(void *data, int level, const char *line); /* may be NULL */
    void *log_data;
};

/*
 * Add the demo routes and start its one-second timer. Returns 0 and *out (free it with
 * sse_cli_demo_free after sse_cli_demo_close and the loop has run), or a negative SSE_E*
 * code with nothing left behind (routes already added stay: the caller is about to stop).
 */
int sse_cli_demo_new(struct sse_cli_demo **out, const struct sse_cli_demo_options *o);

/* Stop the timer (its handle closes on the next loop turn). Open streams are the server's to
   close. Accepts NULL; may be called more than once. */
void sse_cli_demo_close(struct sse_cli_demo *d);

/* Free it once the server is freed (so no stream can call back) and the loop has run the
   close. Accepts NULL. */
void sse_cli_demo_free(struct sse_cli_demo *d);

#endif
