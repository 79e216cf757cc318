/*
 * loopback.h: blocking TCP on 127.0.0.1 for tests (header-only): a client that connects, sends a
 * request and reads the answer or a stream with a timeout, and a port-0 listener.
 *
 * Every read is bounded by the socket's receive timeout (set by loopback_connect), so a test
 * that waits for bytes that never come fails after timeout_ms instead of hanging. Buffers are
 * always NUL-terminated, so callers may strstr() them.
 */
#ifndef SSE_TEST_LOOPBACK_H
#define SSE_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LOOPBACK_TIMEOUT_MS 5000

/*
 * Connect to 127.0.0.1:port with send and receive timeouts of timeout_ms (0: 5 s). rcvbuf > 0
 * sets SO_RCVBUF first (a small window, for tests of slow readers). Returns the fd or -1.
 */
static inline int loopback_connect_opts(int port, int timeout_ms, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (timeout_ms <= 0)
        timeout_ms = LOOPBACK_TIMEOUT_MS;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int loopback_connect(int port)
{
    return loopback_connect_opts(port, 0, 0);
}

/* Send all n bytes (no SIGPIPE). Returns 0 or -1. */
static inline int loopback_send(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static inline int loopback_sends(int fd, const char *s)
{
    return loopback_send(fd, s, strlen(s));
}

/*
 * Read after the have bytes already in buf until needle appears in it (NULL: until EOF), the
 * peer closes, the timeout passes or buf is full. buf stays NUL-terminated (cap > have).
 * Returns the bytes in buf.
 */
static inline size_t loopback_read_until(int fd, char *buf, size_t cap, size_t have,
                                         const char *needle)
{
    size_t n = have;
    buf[n] = '\0';
    while (n + 1 < cap && (!needle || !strstr(buf, needle))) {
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
        buf[n] = '\0';
    }
    return n;
}

/* Read one response (head + Content-Length body) into buf; returns its length, 0 on failure. */
static inline size_t loopback_read_response(int fd, char *buf, size_t cap)
{
    size_t n = loopback_read_until(fd, buf, cap, 0, "\r\n\r\n");
    char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        return 0;
    size_t head = (size_t)(end + 4 - buf);
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t body = 0;
    if (cl && cl < end)
        body = strtoul(cl + 17, NULL, 10);
    while (n < head + body && n + 1 < cap) {
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}

/*
 * One exchange: connect to port, send req[0..len), read until needle (NULL: until the peer
 * closes) or the timeout (timeout_ms, 0: 5 s), close. Returns the bytes read into buf
 * (NUL-terminated), or -1 if the connection or the send failed.
 */
static inline long loopback_request(int port, const char *req, size_t len, char *buf, size_t cap,
                                    const char *needle, int timeout_ms)
{
    buf[0] = '\0';
    int fd = loopback_connect_opts(port, timeout_ms, 0);
    if (fd < 0)
        return -1;
    if (loopback_send(fd, req, len)) {
        close(fd);
        return -1;
    }
    size_t n = loopback_read_until(fd, buf, cap, 0, needle);
    close(fd);
    return (long)n;
}

/* The status code of the response in buf, or -1. */
static inline int loopback_status(const char *buf)
{
    if (strncmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    return (int)strtol(buf + 9, NULL, 10);
}

/* Whether the peer closed the connection (EOF or reset within the receive timeout). */
static inline int loopback_eof(int fd)
{
    char b[4096];
    for (;;) {
        ssize_t k = recv(fd, b, sizeof(b), 0);
        if (k == 0)
            return 1;
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno == ECONNRESET;
    }
}

/* A listening socket on 127.0.0.1, port 0 (the kernel picks): the fd, *port set; -1 on error. */
static inline int loopback_listen(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, backlog) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

#endif
