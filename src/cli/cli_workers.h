/*
 * cli_workers.h: `ssehub serve --workers N` — the master process that forks N hub workers,
 * drives the library's sequencer over their pipes, and restarts them (docs/WORKERS.md). A
 * worker's end of the pipe is the library's pipe bus (sse_bus_pipe_new, include/sse/bus.h).
 */
#ifndef SSE_CLI_WORKERS_H
#define SSE_CLI_WORKERS_H

#include <sse/bus.h>
#include <sse/store.h>
#include <stddef.h>
#include <stdio.h>
#include <uv.h>

/* What the master needs to know. */
struct sse_cli_master_config {
    int n_workers;           /* >= 2 */
    const char *host;        /* the listen host (already parsed) */
    int port;                /* the port to reserve (0: an ephemeral one) */
    size_t max_message;      /* largest bus message (sse_hub_bus_max_message) */
    struct sse_store *store; /* the sequencer's history, handed to a (re)started worker */
    uv_loop_t *loop;         /* optional: the store's loop, run from the master's poll() */
    size_t queue_max;        /* bytes queued to one worker before it is restarted */
    /* Called in a freshly forked worker to release what the master's caller holds (its store). */
    void (*free_in_worker)(void *ud);
    void *free_data;
    void (*log)(void *ud, int level, const char *line);
    void *log_data;
    /* Called once, in the master, when every worker listens (print the banner). */
    void (*on_ready)(void *ud, int port);
    void *ready_data;
    /* --store lmdb: the workers follow the store's file (sse_bus_seq_options.followers), the
       sequencer starting at position (the store's newest). */
    int followers;
    uint64_t position;
    /* Optional: called in the master when a worker died and every HOUSEKEEP_MS (clears the
       LMDB reader slots a SIGKILLed worker left behind). */
    void (*housekeep)(void *ud);
    void *housekeep_data;
    /* Optional: called in the master just before each fork (hold 1) and after it in the master
       (hold 0), with housekeep_data: holds the LMDB store's threads where they hold no lock. */
    void (*around_fork)(void *ud, int hold);
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

#endif
