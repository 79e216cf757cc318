/*
 * cli_workers.h: `ssehub serve --workers N` — the master process that forks N hub workers and
 * sequences their updates, and the worker's end of the pipe (docs/WORKERS.md).
 */
#ifndef SSE_CLI_WORKERS_H
#define SSE_CLI_WORKERS_H

#include <sse/hub.h>
#include <stddef.h>
#include <stdio.h>
#include <uv.h>

/* What the master needs to know. */
struct sse_cli_master_config {
    int n_workers;        /* >= 2 */
    const char *host;     /* the listen host (already parsed) */
    int port;             /* the port to reserve (0: an ephemeral one) */
    size_t max_message;   /* largest bus message (sse_hub_bus_max_message) */
    size_t history_count; /* master's copy of the history, handed to a (re)started worker */
    size_t history_bytes;
    size_t queue_max; /* bytes queued to one worker before it is restarted */
    void (*log)(void *ud, int level, const char *line);
    void *log_data;
    /* Called once, in the master, when every worker listens (print the banner). */
    void (*on_ready)(void *ud, int port);
    void *ready_data;
};

/* Reserve host:port (port 0: a free one) with SO_REUSEPORT, not listening. Returns the fd and
 * the real port in *real_port, or -1 with a message in err. */
int sse_cli_master_reserve(const char *host, int port, int *real_port, char *err, size_t errlen);

/*
 * Run the master: fork the workers, relay, restart, stop on SIGINT/SIGTERM. Returns in two ways:
 * in the master, when everything has stopped: 0 and *worker_index = -1, *exit_code set; in a
 * freshly forked worker: 0, *worker_index = K (0-based) and *worker_fd = its end of the pipe
 * (the master's state already released in that process; SIGINT and SIGTERM blocked: unblock
 * them once the handlers are installed; the caller runs the worker and exits with its status).
 * reserve_fd is closed in the workers. Returns -1 if the master cannot start.
 */
int sse_cli_master_run(const struct sse_cli_master_config *mc, int reserve_fd, int *worker_index,
                       int *worker_fd, int *exit_code);

/* The worker's end of the pipe. */
struct sse_cli_worker;

/* Make the worker side for fd; max_message bounds frames, queue_max the bytes queued upward. */
int sse_cli_worker_new(struct sse_cli_worker **out, int fd, size_t max_message, size_t queue_max);
/* Read the history the master sends (blocking, before the loop runs) into hub. 0 or -1. */
int sse_cli_worker_load_history(struct sse_cli_worker *w, sse_hub *hub);
/* Start relaying on loop: tell the master this worker listens; on_lost is called if the master
 * goes away. 0 or a negative libuv error. */
int sse_cli_worker_start(struct sse_cli_worker *w, uv_loop_t *loop, sse_hub *hub,
                         void (*on_lost)(void *ud), void *ud);
/* The bus_publish callback of the worker's hub (bus_data = the worker). */
int sse_cli_worker_publish(void *w, const void *msg, size_t len);
/* Close the pipe handle (from the loop). */
void sse_cli_worker_close(struct sse_cli_worker *w);
/* Free (after the loop ran the close). Accepts NULL. */
void sse_cli_worker_free(struct sse_cli_worker *w);

#endif
