/*
 * sockpump.h: several loopback clients read at once (header-only, on harness/loopback.h): a
 * poll() pump that collects whatever arrives on each of them, a Mercure subscriber and a form
 * POST. Used by tests/store and tests/bus, whose hub runs on a loop in another thread; it owns
 * no checks of its own beyond the subscriber's status line.
 */
#ifndef SSE_TEST_SOCKPUMP_H
#define SSE_TEST_SOCKPUMP_H

#include "harness/check.h"
#include "harness/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sock {
    int fd;
    char buf[65536];
    size_t len;
    int eof; /* the peer closed: no longer polled */
};

static inline int sock_open(struct sock *s, int port)
{
    memset(s, 0, sizeof(*s));
    s->fd = loopback_connect(port);
    return s->fd >= 0 ? 0 : -1;
}

static inline int sock_send(struct sock *s, const char *text)
{
    return loopback_sends(s->fd, text);
}

static inline int send_post(struct sock *s, const char *id, const char *data)
{
    char body[256], req[512];
    snprintf(body, sizeof(body), "topic=t&id=%s&data=%s", id, data);
    snprintf(req, sizeof(req),
             "POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    return sock_send(s, req);
}

/* Read whatever arrives on any of the n sockets for ms milliseconds. */
static inline void pump(struct sock *s, int n, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return;
        struct pollfd p[8];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){s[i].eof ? -1 : s[i].fd, POLLIN, 0};
        if (poll(p, (nfds_t)n, (int)left) <= 0)
            continue;
        for (int i = 0; i < n; i++)
            if (p[i].revents) {
                ssize_t k = read(s[i].fd, s[i].buf + s[i].len, sizeof(s[i].buf) - 1 - s[i].len);
                if (k > 0) {
                    s[i].len += (size_t)k;
                    s[i].buf[s[i].len] = '\0';
                } else {
                    s[i].eof = 1;
                }
            }
    }
}

/* Read until needle appears on s[which] (at most 3 s). */
static inline int pump_for(struct sock *s, int n, int which, const char *needle)
{
    for (int i = 0; i < 60 && !strstr(s[which].buf, needle); i++)
        pump(s, n, 50);
    return strstr(s[which].buf, needle) != NULL;
}

static inline void sock_close(struct sock *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i].fd >= 0)
            close(s[i].fd);
}

/* s[0]: a subscriber to topic t, its stream open. */
static inline int subscribe(struct sock *s, int port)
{
    CHECK_EQ_INT(sock_open(s, port), 0);
    CHECK_EQ_INT(sock_send(s, "GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK(pump_for(s, 1, 0, "\r\n\r\n"));
    CHECK(!strncmp(s->buf, "HTTP/1.1 200", 12));
    return 0;
}

#endif
