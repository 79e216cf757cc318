/*
 * harness.h: a server on a loop in the test thread, blocking raw-socket clients in a second
 * thread (header-only, for tests/server; the client is tests/harness/loopback.h). The client
 * function returns 0 or 1 (CHECK macros); loop_call() runs a function on the loop thread and waits
 * for it.
 */
#ifndef SSE_TEST_SERVER_HARNESS_H
#define SSE_TEST_SERVER_HARNESS_H

#include "harness/check.h"
#include "harness/loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sse/server.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

struct tctx {
    uv_loop_t loop;
    sse_server *s;
    int port;
    uv_async_t async;
    pthread_t th;
    int (*client)(struct tctx *t);
    int client_rc;
    int client_done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*call_fn)(struct tctx *t, void *arg);
    void *call_arg;
    int call_pending;
    int closed;
    void *user; /* test-specific state */
};

static void tctx_async_cb(uv_async_t *a)
{
    struct tctx *t = a->data;
    pthread_mutex_lock(&t->mu);
    if (t->call_pending) {
        void (*fn)(struct tctx *, void *) = t->call_fn;
        void *arg = t->call_arg;
        pthread_mutex_unlock(&t->mu);
        fn(t, arg);
        pthread_mutex_lock(&t->mu);
        t->call_pending = 0;
        pthread_cond_broadcast(&t->cv);
    }
    int done = t->client_done;
    pthread_mutex_unlock(&t->mu);
    if (done)
        uv_stop(&t->loop);
}

/* From the client thread: run fn(t, arg) on the loop thread and wait until it has run. */
static inline void loop_call(struct tctx *t, void (*fn)(struct tctx *, void *), void *arg)
{
    pthread_mutex_lock(&t->mu);
    t->call_fn = fn;
    t->call_arg = arg;
    t->call_pending = 1;
    uv_async_send(&t->async);
    while (t->call_pending)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static void *tctx_thread(void *arg)
{
    struct tctx *t = arg;
    int rc = t->client(t);
    pthread_mutex_lock(&t->mu);
    t->client_rc = rc;
    t->client_done = 1;
    pthread_mutex_unlock(&t->mu);
    uv_async_send(&t->async);
    return NULL;
}

/* Create the loop and a server listening on 127.0.0.1:0 (opts may be NULL). */
static inline int tctx_init(struct tctx *t, const sse_server_options *opts)
{
    memset(t, 0, sizeof(*t));
    signal(SIGPIPE, SIG_IGN); /* as every program embedding the server must (docs/SERVER.md) */
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (uv_loop_init(&t->loop))
        return -1;
    uv_async_init(&t->loop, &t->async, tctx_async_cb);
    t->async.data = t;
    if (sse_server_new(&t->s, &t->loop, opts))
        return -1;
    if (sse_server_listen(t->s, "127.0.0.1", 0))
        return -1;
    t->port = sse_server_port(t->s);
    return t->port > 0 ? 0 : -1;
}

/* Run client in a thread while the loop runs; returns the client's result. */
static inline int tctx_run(struct tctx *t, int (*client)(struct tctx *t))
{
    t->client = client;
    t->client_done = 0;
    pthread_create(&t->th, NULL, tctx_thread, t);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    pthread_join(t->th, NULL);
    return t->client_rc;
}

static void tctx_closed_cb(sse_server *s, void *user_data)
{
    struct tctx *t = user_data;
    t->closed = 1;
}

static void tctx_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Close the server gracefully, run the loop until done, free everything. Returns 0 if clean. */
static inline int tctx_fini(struct tctx *t)
{
    sse_server_close(t->s, 2000, tctx_closed_cb, t);
    uint64_t start = uv_hrtime();
    while (!t->closed && uv_hrtime() - start < 5000000000ull)
        uv_run(&t->loop, UV_RUN_ONCE);
    int ok = t->closed;
    if (ok)
        sse_server_free(t->s);
    uv_close((uv_handle_t *)&t->async, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_walk(&t->loop, tctx_walk_close, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&t->loop);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    return ok && rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ blocking client helpers */
/* The server tests' short names for the shared loopback client (tests/harness/loopback.h). */

static inline int cli_connect(int port)
{
    return loopback_connect(port);
}

static inline int cli_send(int fd, const void *p, size_t n)
{
    return loopback_send(fd, p, n);
}

static inline int cli_sends(int fd, const char *s)
{
    return loopback_sends(fd, s);
}

static inline size_t cli_read_until(int fd, char *buf, size_t cap, size_t have, const char *needle)
{
    return loopback_read_until(fd, buf, cap, have, needle);
}

static inline size_t cli_read_response(int fd, char *buf, size_t cap)
{
    return loopback_read_response(fd, buf, cap);
}

static inline int cli_status(const char *buf)
{
    return loopback_status(buf);
}

static inline int cli_eof(int fd)
{
    return loopback_eof(fd);
}

#endif
