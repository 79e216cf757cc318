/*
 * cli_workers.c: the master of `ssehub serve --workers N` and the worker's end of its pipe
 * (see cli_workers.h and docs/WORKERS.md).
 *
 * The master holds no client connection. It reserves the port (bound with SO_REUSEPORT, never
 * listening, so restarted workers can always bind it again), forks the workers, and is the
 * sequencer: each worker sends the updates it accepted (bus messages made by the hub, hub_bus.c)
 * over a Unix stream socketpair; the master relays each one, in arrival order, to every worker,
 * and keeps a bounded copy of the history that it hands to a (re)started worker before that
 * worker listens. Frames: u32 length (type byte + payload) | u8 type | payload, length bounded
 * by the largest bus message. A worker whose queue passes queue_max is killed and restarted
 * (one stuck worker must not stall the others nor make the master grow). Signals arrive on a
 * signalfd; a worker that dies unexpectedly is restarted with backoff (at most 10 in 60 s).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cli_workers.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    FR_UPDATE = 'U',  /* worker -> master: publish; master -> worker: apply */
    FR_PAST = 'P',    /* master -> worker: a history update (append only) */
    FR_HISTEND = 'H', /* master -> worker: end of the history */
    FR_READY = 'R',   /* worker -> master: listening */
    HDR = 5,
    MAX_RESTARTS = 10,
    RESTART_WINDOW_MS = 60000
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- master */

struct msg { /* one relayed update, shared by the queues and the history */
    unsigned refs;
    size_t len;
    struct msg *hnext; /* history list */
    unsigned char data[];
};

struct qitem {
    struct qitem *next;
    struct msg *m; /* NULL: a payload-less frame */
    unsigned char hdr[HDR];
};

struct wk {
    pid_t pid; /* 0: not running */
    int fd;    /* -1: none */
    int ready, exited_status;
    unsigned char *in; /* read buffer (max frame) */
    size_t in_len;
    struct qitem *qhead, *qtail;
    size_t qoff; /* bytes of the head item already written */
    size_t qbytes;
    long long restart_at;             /* 0: none scheduled */
    long long restarts[MAX_RESTARTS]; /* times of the recent restarts (ring) */
    unsigned n_restarts;
};

struct master {
    const struct sse_cli_master_config *mc;
    struct wk *w;
    int sfd, reserve_fd;
    struct msg *hhead, *htail;
    size_t hcount, hbytes;
    int stopping, ready_told, failed, port;
};

static void mlog(struct master *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mlog(struct master *m, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    m->mc->log(m->mc->log_data, level, line);
}

static void msg_unref(struct msg *x)
{
    if (x && --x->refs == 0)
        free(x);
}

static int enqueue(struct wk *w, int type, struct msg *x)
{
    struct qitem *q = malloc(sizeof(*q));
    if (!q)
        return -1;
    uint32_t len = (uint32_t)(1 + (x ? x->len : 0));
    memcpy(q->hdr, &len, 4);
    q->hdr[4] = (unsigned char)type;
    q->m = x;
    q->next = NULL;
    if (x)
        x->refs++;
    if (w->qtail)
        w->qtail->next = q;
    else
        w->qhead = q;
    w->qtail = q;
    w->qbytes += HDR + (x ? x->len : 0);
    return 0;
}

static void queue_clear(struct wk *w)
{
    while (w->qhead) {
        struct qitem *q = w->qhead;
        w->qhead = q->next;
        msg_unref(q->m);
        free(q);
    }
    w->qtail = NULL;
    w->qoff = w->qbytes = 0;
}

/* Write what the pipe takes now. 0, or -1 if the worker's pipe is broken. */
static int flush_queue(struct wk *w)
{
    while (w->qhead) {
        struct qitem *q = w->qhead;
        struct iovec iov[2];
        int n = 0;
        size_t tot = HDR + (q->m ? q->m->len : 0), off = w->qoff;
        if (off < HDR)
            iov[n++] = (struct iovec){q->hdr + off, HDR - off};
        if (q->m && q->m->len)
            iov[n++] = (struct iovec){q->m->data + (off > HDR ? off - HDR : 0),
                                      q->m->len - (off > HDR ? off - HDR : 0)};
        ssize_t r = writev(w->fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        w->qoff += (size_t)r;
        w->qbytes -= (size_t)r;
        if (w->qoff == tot) {
            w->qhead = q->next;
            if (!w->qhead)
                w->qtail = NULL;
            msg_unref(q->m);
            free(q);
            w->qoff = 0;
        }
    }
    return 0;
}

static void history_add(struct master *m, struct msg *x)
{
    x->refs++;
    x->hnext = NULL;
    if (m->htail)
        m->htail->hnext = x;
    else
        m->hhead = x;
    m->htail = x;
    m->hcount++;
    m->hbytes += x->len;
    while (m->hhead && ((m->mc->history_count && m->hcount > m->mc->history_count) ||
                        (m->mc->history_bytes && m->hbytes > m->mc->history_bytes))) {
        struct msg *o = m->hhead;
        m->hhead = o->hnext;
        if (!m->hhead)
            m->htail = NULL;
        m->hcount--;
        m->hbytes -= o->len;
        msg_unref(o);
    }
}

static void kill_worker(struct master *m, int k, const char *why)
{
    struct wk *w = &m->w[k];
    if (w->pid > 0) {
        mlog(m, 1, "worker %d (pid %d): %s: killing it", k, (int)w->pid, why);
        kill(w->pid, SIGKILL);
    }
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    queue_clear(w);
    w->in_len = 0;
}

/* One frame read from worker k. */
static void on_frame(struct master *m, int k, int type, const unsigned char *p, size_t len)
{
    if (type == FR_READY) {
        m->w[k].ready = 1;
        mlog(m, 2, "worker %d (pid %d) listening", k, (int)m->w[k].pid);
        int all = 1;
        for (int i = 0; i < m->mc->n_workers; i++)
            all &= m->w[i].ready;
        if (all && !m->ready_told) {
            m->ready_told = 1;
            m->mc->on_ready(m->mc->ready_data, m->port);
        }
        return;
    }
    if (type != FR_UPDATE) {
        kill_worker(m, k, "protocol error on its pipe");
        return;
    }
    struct msg *x = malloc(sizeof(*x) + len);
    if (!x) {
        mlog(m, 0, "out of memory: update dropped");
        return;
    }
    x->refs = 1;
    x->len = len;
    memcpy(x->data, p, len);
    history_add(m, x);
    for (int i = 0; i < m->mc->n_workers; i++) {
        struct wk *w = &m->w[i];
        if (w->fd < 0)
            continue;
        if (enqueue(w, FR_UPDATE, x)) {
            kill_worker(m, i, "out of memory queueing to it");
            continue;
        }
        if (w->qbytes > m->mc->queue_max)
            kill_worker(m, i, "does not drain its pipe");
    }
    msg_unref(x);
}

static void read_worker(struct master *m, int k)
{
    struct wk *w = &m->w[k];
    size_t cap = HDR + m->mc->max_message;
    for (;;) {
        ssize_t r = read(w->fd, w->in + w->in_len, cap - w->in_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) { /* the worker exited or closed: SIGCHLD does the rest */
            close(w->fd);
            w->fd = -1;
            queue_clear(w);
            return;
        }
        w->in_len += (size_t)r;
        size_t off = 0;
        while (w->in_len - off >= HDR) {
            uint32_t len;
            memcpy(&len, w->in + off, 4);
            if (len < 1 || len - 1 > m->mc->max_message) {
                kill_worker(m, k, "frame too large");
                return;
            }
            if (w->in_len - off < 4 + (size_t)len)
                break;
            on_frame(m, k, w->in[off + 4], w->in + off + HDR, len - 1);
            if (w->fd < 0)
                return;
            off += 4 + (size_t)len;
        }
        memmove(w->in, w->in + off, w->in_len - off);
        w->in_len -= off;
    }
}

static void master_free(struct master *m)
{
    for (int i = 0; i < m->mc->n_workers; i++) {
        if (m->w[i].fd >= 0)
            close(m->w[i].fd);
        queue_clear(&m->w[i]);
        free(m->w[i].in);
    }
    while (m->hhead) {
        struct msg *o = m->hhead;
        m->hhead = o->hnext;
        msg_unref(o);
    }
    free(m->w);
    if (m->sfd >= 0)
        close(m->sfd);
}

/* Fork worker k. Returns 1 in the child (fd in *child_fd), 0 in the master, -1 on failure. */
static int spawn(struct master *m, int k, const sigset_t *oldmask, int *child_fd)
{
    struct wk *w = &m->w[k];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    /* The history first, then the end mark: queued before any live update reaches it. */
    for (struct msg *x = m->hhead; x; x = x->hnext)
        if (enqueue(w, FR_PAST, x))
            goto out_fail;
    if (enqueue(w, FR_HISTEND, NULL))
        goto out_fail;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        goto out_fail;
    if (pid == 0) {
        close(sv[0]);
        w->fd = -1; /* master_free closes the other workers' ends */
        master_free(m);
        close(m->reserve_fd);
        setpgid(0, 0); /* a terminal's Ctrl-C reaches the master only, which forwards it */
        /* SIGINT/SIGTERM stay blocked until the worker's handlers are installed: a stop asked
           while it starts is then a graceful one, not a death by signal. */
        sigset_t cm = *oldmask;
        sigaddset(&cm, SIGINT);
        sigaddset(&cm, SIGTERM);
        sigprocmask(SIG_SETMASK, &cm, NULL);
        *child_fd = sv[1];
        return 1;
    }
    close(sv[1]);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    w->pid = pid;
    w->fd = sv[0];
    w->ready = 0;
    w->in_len = 0;
    mlog(m, 2, "worker %d started (pid %d)", k, (int)pid);
    return 0;
out_fail:
    queue_clear(w);
    close(sv[0]);
    close(sv[1]);
    return -1;
}

int sse_cli_master_reserve(const char *host, int port, int *real_port, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    char ps[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(ps, sizeof(ps), "%d", port);
    const char *h = host;
    char hb[256];
    if (h[0] == '[') { /* [v6] as given on the command line */
        snprintf(hb, sizeof(hb), "%s", h + 1);
        char *e = strchr(hb, ']');
        if (e)
            *e = '\0';
        h = hb;
    }
    int rc = getaddrinfo(h, ps, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen)) {
        snprintf(err, errlen, "cannot bind %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *real_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int k = -1;
        for (int i = 0; i < m->mc->n_workers; i++)
            if (m->w[i].pid == pid)
                k = i;
        if (k < 0)
            continue;
        struct wk *w = &m->w[k];
        w->pid = 0;
        w->ready = 0;
        if (w->fd >= 0)
            close(w->fd);
        w->fd = -1;
        queue_clear(w);
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (m->stopping) {
            if (!ok)
                w->exited_status = 1; /* the exit code reflects how the workers stopped */
            mlog(m, 2, "worker %d exited (%s %d)", k, WIFEXITED(status) ? "status" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            continue;
        }
        long long now = mono_ms();
        unsigned recent = 0;
        for (unsigned i = 0; i < MAX_RESTARTS && i < w->n_restarts; i++)
            recent += now - w->restarts[i] < RESTART_WINDOW_MS;
        if (recent >= MAX_RESTARTS) {
            mlog(m, 0, "worker %d died %u times within %d s: giving up, stopping the hub", k,
                 recent, RESTART_WINDOW_MS / 1000);
            m->failed = 1;
            m->stopping = 1;
            for (int i = 0; i < m->mc->n_workers; i++)
                if (m->w[i].pid > 0)
                    kill(m->w[i].pid, SIGTERM);
            continue;
        }
        long long delay = 100LL << (recent < 7 ? recent : 7); /* 100 ms .. 12.8 s */
        w->restart_at = now + delay;
        w->restarts[w->n_restarts++ % MAX_RESTARTS] = now + delay;
        mlog(m, 1, "worker %d (pid %d) died (%s %d): restarting in %lld ms", k, (int)pid,
             WIFEXITED(status) ? "status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), delay);
    }
}

int sse_cli_master_run(const struct sse_cli_master_config *mc, int reserve_fd, int *worker_index,
                       int *worker_fd, int *exit_code)
{
    struct master m;
    sigset_t mask, oldmask;
    memset(&m, 0, sizeof(m));
    m.mc = mc;
    m.reserve_fd = reserve_fd;
    m.sfd = -1;
    *worker_index = -1;
    *exit_code = 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(reserve_fd, (struct sockaddr *)&ss, &sl);
    m.port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    m.w = calloc((size_t)mc->n_workers, sizeof(*m.w));
    if (!m.w)
        return -1;
    for (int i = 0; i < mc->n_workers; i++) {
        m.w[i].fd = -1;
        if (!(m.w[i].in = malloc(HDR + mc->max_message))) {
            master_free(&m);
            return -1;
        }
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &oldmask);
    signal(SIGPIPE, SIG_IGN);
    m.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sfd < 0)
        goto out_fail;
    for (int k = 0; k < mc->n_workers; k++) {
        int r = spawn(&m, k, &oldmask, worker_fd);
        if (r == 1) {
            *worker_index = k;
            return 0;
        }
        if (r < 0)
            goto out_fail;
    }
    struct pollfd *pf = calloc((size_t)mc->n_workers + 1, sizeof(*pf));
    if (!pf)
        goto out_fail;
    for (;;) {
        int alive = 0;
        long long now = mono_ms(), timeout = -1;
        for (int k = 0; k < mc->n_workers; k++) {
            struct wk *w = &m.w[k];
            alive += w->pid > 0;
            if (w->restart_at && !m.stopping) {
                if (w->restart_at <= now) {
                    w->restart_at = 0;
                    int r = spawn(&m, k, &oldmask, worker_fd);
                    if (r == 1) {
                        free(pf);
                        *worker_index = k;
                        return 0;
                    }
                    if (r < 0) {
                        mlog(&m, 0, "cannot restart worker %d: %s", k, strerror(errno));
                        w->restart_at = now + 1000;
                    }
                    alive += r == 0;
                } else if (timeout < 0 || w->restart_at - now < timeout) {
                    timeout = w->restart_at - now;
                }
            }
        }
        if (m.stopping && !alive)
            break;
        int n = 0;
        pf[n++] = (struct pollfd){m.sfd, POLLIN, 0};
        for (int k = 0; k < mc->n_workers; k++)
            pf[n++] = (struct pollfd){m.w[k].fd, (short)(POLLIN | (m.w[k].qhead ? POLLOUT : 0)), 0};
        int pr = poll(pf, (nfds_t)n, (int)timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(m.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                    reap(&m);
                } else {
                    mlog(&m, 2, "%s: stopping the workers",
                         si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                    m.stopping = 1;
                    for (int k = 0; k < mc->n_workers; k++)
                        if (m.w[k].pid > 0)
                            kill(m.w[k].pid, SIGTERM);
                }
            }
        }
        for (int k = 0; k < mc->n_workers; k++) {
            short re = pf[k + 1].revents;
            if (m.w[k].fd < 0 || m.w[k].fd != pf[k + 1].fd)
                continue;
            if (re & (POLLIN | POLLHUP | POLLERR))
                read_worker(&m, k);
            if (m.w[k].fd >= 0 && m.w[k].qhead && flush_queue(&m.w[k]))
                kill_worker(&m, k, "its pipe broke");
        }
    }
    free(pf);
    *exit_code = m.failed ? 1 : 0;
    for (int k = 0; k < mc->n_workers; k++)
        if (m.w[k].exited_status)
            *exit_code = 1;
    master_free(&m);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return 0;
out_fail:
    for (int k = 0; k < mc->n_workers; k++)
        if (m.w[k].pid > 0) {
            kill(m.w[k].pid, SIGKILL);
            waitpid(m.w[k].pid, NULL, 0);
        }
    master_free(&m);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return -1;
}

/* ---------------------------------------------------------------- worker side */

struct sse_cli_worker {
    uv_pipe_t pipe;
    int fd, started;
    size_t max_message, queue_max;
    unsigned char *in;
    size_t in_len;
    sse_hub *hub;
    void (*on_lost)(void *ud);
    void *ud;
};

int sse_cli_worker_new(struct sse_cli_worker **out, int fd, size_t max_message, size_t queue_max)
{
    struct sse_cli_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->fd = fd;
    w->max_message = max_message;
    w->queue_max = queue_max;
    if (!(w->in = malloc(HDR + max_message))) {
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

static int read_full(int fd, void *p, size_t n)
{
    unsigned char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int sse_cli_worker_load_history(struct sse_cli_worker *w, sse_hub *hub)
{
    for (;;) {
        unsigned char hdr[HDR];
        uint32_t len;
        if (read_full(w->fd, hdr, HDR))
            return -1;
        memcpy(&len, hdr, 4);
        if (len < 1 || len - 1 > w->max_message)
            return -1;
        if (hdr[4] == FR_HISTEND && len == 1)
            return 0;
        if (read_full(w->fd, w->in, len - 1))
            return -1;
        if (hdr[4] != FR_PAST && hdr[4] != FR_UPDATE)
            return -1;
        if (hdr[4] == FR_PAST)
            sse_hub_bus_mark_history(w->in, len - 1);
        (void)sse_hub_bus_receive(hub, w->in, len - 1);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sse_cli_worker *w = h->data;
    (void)suggested;
    size_t cap = HDR + w->max_message;
    buf->base = (char *)w->in + w->in_len;
    buf->len = cap - w->in_len;
}

static void lost(struct sse_cli_worker *w)
{
    if (w->on_lost) {
        void (*cb)(void *) = w->on_lost;
        w->on_lost = NULL;
        uv_read_stop((uv_stream_t *)&w->pipe);
        cb(w->ud);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sse_cli_worker *w = s->data;
    (void)buf;
    if (nread < 0) {
        lost(w);
        return;
    }
    w->in_len += (size_t)nread;
    size_t off = 0;
    while (w->in_len - off >= HDR) {
        uint32_t len;
        memcpy(&len, w->in + off, 4);
        if (len < 1 || len - 1 > w->max_message) {
            lost(w);
            return;
        }
        if (w->in_len - off < 4 + (size_t)len)
            break;
        int type = w->in[off + 4];
        unsigned char *p = w->in + off + HDR;
        if (type == FR_PAST)
            sse_hub_bus_mark_history(p, len - 1);
        if (type == FR_UPDATE || type == FR_PAST)
            (void)sse_hub_bus_receive(w->hub, p, len - 1);
        off += 4 + (size_t)len;
    }
    memmove(w->in, w->in + off, w->in_len - off);
    w->in_len -= off;
}

struct wreq {
    uv_write_t req;
    unsigned char data[];
};

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a broken pipe shows as EOF on the read side */
    free(req);
}

static int send_frame(struct sse_cli_worker *w, int type, const void *p, size_t len)
{
    if (len > w->max_message)
        return -1;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&w->pipe) > w->queue_max)
        return -1; /* the master does not keep up: refuse (503) rather than grow */
    struct wreq *r = malloc(sizeof(*r) + HDR + len);
    if (!r)
        return -1;
    uint32_t l = (uint32_t)(len + 1);
    memcpy(r->data, &l, 4);
    r->data[4] = (unsigned char)type;
    if (len)
        memcpy(r->data + HDR, p, len);
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)(HDR + len));
    if (uv_write(&r->req, (uv_stream_t *)&w->pipe, &b, 1, on_written)) {
        free(r);
        return -1;
    }
    return 0;
}

int sse_cli_worker_publish(void *ud, const void *msg, size_t len)
{
    struct sse_cli_worker *w = ud;
    if (!w->started)
        return -1;
    return send_frame(w, FR_UPDATE, msg, len);
}

int sse_cli_worker_start(struct sse_cli_worker *w, uv_loop_t *loop, sse_hub *hub,
                         void (*on_lost)(void *ud), void *ud)
{
    int rc;
    w->hub = hub;
    w->on_lost = on_lost;
    w->ud = ud;
    if ((rc = uv_pipe_init(loop, &w->pipe, 0)))
        return rc;
    w->pipe.data = w;
    if ((rc = uv_pipe_open(&w->pipe, w->fd))) {
        uv_close((uv_handle_t *)&w->pipe, NULL);
        return rc;
    }
    w->started = 1;
    if ((rc = uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read)) ||
        (rc = send_frame(w, FR_READY, NULL, 0) ? UV_ENOMEM : 0))
        return rc;
    return 0;
}

void sse_cli_worker_close(struct sse_cli_worker *w)
{
    if (w && w->started && !uv_is_closing((uv_handle_t *)&w->pipe)) {
        w->on_lost = NULL;
        uv_close((uv_handle_t *)&w->pipe, NULL);
    }
}

void sse_cli_worker_free(struct sse_cli_worker *w)
{
    if (!w)
        return;
    if (!w->started)
        close(w->fd);
    free(w->in);
    free(w);
}
