/*
 * crafted_server.h: a scripted HTTP server for the client tests (plain sockets, own thread).
 *
 * It listens on 127.0.0.1, port 0, and handles one connection at a time: it reads the request
 * head, records it, then calls the test's handler with the connection's index (0, 1, ...). The
 * handler writes whatever bytes it likes (status, headers, body pieces), sleeps between them,
 * stalls, or resets the connection; when it returns, the connection is closed. Everything is
 * bounded: requests up to 8 KiB, at most TS_MAX_CONNS recorded.
 */
#ifndef TESTS_CLIENT_CRAFTED_SERVER_H
#define TESTS_CLIENT_CRAFTED_SERVER_H

#include <stddef.h>
#include <stdint.h>

#define TS_MAX_CONNS 512

struct ts_server;
struct ts_conn;

/* Serve connection number index (0-based). */
typedef void (*ts_handler)(struct ts_conn *conn, unsigned index, void *user_data);

/* Start a server thread; NULL on failure. */
struct ts_server *ts_start(ts_handler handler, void *user_data);
/* Stop the thread (interrupting sleeps), close everything, free. Accepts NULL. */
void ts_stop(struct ts_server *s);
int ts_port(const struct ts_server *s);
/* "http://127.0.0.1:<port><path>" into buf. */
const char *ts_url(const struct ts_server *s, const char *path, char *buf, size_t len);
/* Connections whose request was read so far. */
unsigned ts_connections(struct ts_server *s);
/* The value of header name in request index (case-insensitive name), copied into buf;
 * NULL when absent. */
const char *ts_header(struct ts_server *s, unsigned index, const char *name, char *buf, size_t len);
/* The request target of request index, copied into buf; NULL when absent. */
const char *ts_path(struct ts_server *s, unsigned index, char *buf, size_t len);
/* Monotonic time in ms at which request index arrived (0 when absent). */
uint64_t ts_time_ms(struct ts_server *s, unsigned index);
uint64_t ts_now_ms(void);

/* In a handler: send bytes; -1 if the peer is gone. */
int ts_send(struct ts_conn *c, const char *s);
int ts_send_len(struct ts_conn *c, const void *p, size_t n);
/* Sleep ms, returning early with -1 if the peer closes or the server stops. */
int ts_sleep(struct ts_conn *c, int ms);
/* Close at once with a TCP reset (SO_LINGER 0). */
void ts_reset(struct ts_conn *c);
/* The request target of this connection. */
const char *ts_conn_path(const struct ts_conn *c);

#endif
