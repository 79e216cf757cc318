/*
 * crafted_server.c: the scripted HTTP server of the client tests (see crafted_server.h).
 * Test code: libc allocation, one thread, one connection at a time.
 */
#include "crafted_server.h"

#include "common/clock.h"
#include "harness/loopback.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct ts_request {
    char *head; /* the request head, NUL-terminated */
    uint64_t time_ms;
};

struct ts_server {
    int lfd, port;
    int stop_pipe[2];
    pthread_t thread;
    pthread_mutex_t mu;
    ts_handler handler;
    void *user_data;
    unsigned nreq;
    struct ts_request req[TS_MAX_CONNS];
};

struct ts_conn {
    struct ts_server *s;
    int fd;
    char path[1024];
};

uint64_t ts_now_ms(void)
{
    return (uint64_t)sse__mono_ms();
}

int ts_send_len(struct ts_conn *c, const void *p, size_t n)
{
    const char *b = p;
    while (n && c->fd >= 0) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return c->fd >= 0 ? 0 : -1;
}

int ts_send(struct ts_conn *c, const char *s)
{
    return ts_send_len(c, s, strlen(s));
}

int ts_sleep(struct ts_conn *c, int ms)
{
    uint64_t end = ts_now_ms() + (uint64_t)ms;
    for (;;) {
        uint64_t now = ts_now_ms();
        if (now >= end)
            return 0;
        struct pollfd p[2] = {{c->s->stop_pipe[0], POLLIN, 0}, {c->fd, POLLIN, 0}};
        int n = poll(p, c->fd >= 0 ? 2 : 1, (int)(end - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (p[0].revents)
            return -1;
        if (c->fd >= 0 && p[1].revents) {
            char b[512];
            ssize_t r = recv(c->fd, b, sizeof(b), 0);
            if (r <= 0)
                return -1; /* the client closed */
        }
    }
}

void ts_reset(struct ts_conn *c)
{
    if (c->fd < 0)
        return;
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(c->fd);
    c->fd = -1;
}

const char *ts_conn_path(const struct ts_conn *c)
{
    return c->path;
}

/* Read the request head (until CRLFCRLF); returns a malloc'd string or NULL. */
static char *read_head(struct ts_server *s, int fd)
{
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return NULL;
    while (len < cap) {
        struct pollfd p[2] = {{s->stop_pipe[0], POLLIN, 0}, {fd, POLLIN, 0}};
        if (poll(p, 2, 5000) <= 0 || p[0].revents)
            break;
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return buf;
    }
    free(buf);
    return NULL;
}

static void *serve(void *arg)
{
    struct ts_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{s->stop_pipe[0], POLLIN, 0}, {s->lfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        char *head = read_head(s, fd);
        if (!head) {
            close(fd);
            continue;
        }
        struct ts_conn c = {s, fd, ""};
        const char *sp = strchr(head, ' ');
        if (sp) {
            size_t n = strcspn(sp + 1, " \r\n");
            if (n >= sizeof(c.path))
                n = sizeof(c.path) - 1;
            memcpy(c.path, sp + 1, n);
            c.path[n] = '\0';
        }
        pthread_mutex_lock(&s->mu);
        unsigned idx = s->nreq;
        if (idx < TS_MAX_CONNS) {
            s->req[idx].head = head;
            s->req[idx].time_ms = ts_now_ms();
            s->nreq++;
        } else {
            free(head);
        }
        pthread_mutex_unlock(&s->mu);
        s->handler(&c, idx, s->user_data);
        if (c.fd >= 0)
            close(c.fd);
    }
    return NULL;
}

struct ts_server *ts_start(ts_handler handler, void *user_data)
{
    struct ts_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->handler = handler;
    s->user_data = user_data;
    s->lfd = loopback_listen(512, &s->port);
    if (s->lfd < 0 || pipe(s->stop_pipe))
        goto out_fail;
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->thread, NULL, serve, s)) {
        pthread_mutex_destroy(&s->mu);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        goto out_fail;
    }
    return s;

out_fail:
    if (s->lfd >= 0)
        close(s->lfd);
    free(s);
    return NULL;
}

void ts_stop(struct ts_server *s)
{
    if (!s)
        return;
    ssize_t w = write(s->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    close(s->lfd);
    for (unsigned i = 0; i < s->nreq; i++)
        free(s->req[i].head);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int ts_port(const struct ts_server *s)
{
    return s->port;
}

const char *ts_url(const struct ts_server *s, const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", s->port, path);
    return buf;
}

unsigned ts_connections(struct ts_server *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->nreq;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const char *ts_header(struct ts_server *s, unsigned index, const char *name, char *buf, size_t len)
{
    const char *res = NULL;
    size_t nl = strlen(name);
    pthread_mutex_lock(&s->mu);
    if (index < s->nreq) {
        const char *line = strstr(s->req[index].head, "\r\n");
        while (line && line[2] != '\r') {
            line += 2;
            if (!strncasecmp(line, name, nl) && line[nl] == ':') {
                const char *v = line + nl + 1;
                while (*v == ' ')
                    v++;
                size_t n = strcspn(v, "\r\n");
                if (n >= len)
                    n = len - 1;
                memcpy(buf, v, n);
                buf[n] = '\0';
                res = buf;
                break;
            }
            line = strstr(line, "\r\n");
        }
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

const char *ts_path(struct ts_server *s, unsigned index, char *buf, size_t len)
{
    const char *res = NULL;
    pthread_mutex_lock(&s->mu);
    if (index < s->nreq) {
        const char *sp = strchr(s->req[index].head, ' ');
        if (sp) {
            size_t n = strcspn(sp + 1, " \r\n");
            if (n >= len)
                n = len - 1;
            memcpy(buf, sp + 1, n);
            buf[n] = '\0';
            res = buf;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

uint64_t ts_time_ms(struct ts_server *s, unsigned index)
{
    pthread_mutex_lock(&s->mu);
    uint64_t t = index < s->nreq ? s->req[index].time_ms : 0;
    pthread_mutex_unlock(&s->mu);
    return t;
}
