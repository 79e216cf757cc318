/*
 * cli_workers.c: the master of `ssehub serve --workers N` (see cli_workers.h, docs/WORKERS.md):
 * processes only. It reserves the port (bound with SO_REUSEPORT, never listening, so restarted
 * workers can always bind it again), forks the workers, polls their pipes for the sequencer,
 * forwards SIGINT/SIGTERM, and restarts a worker that dies with backoff (at most 10 in 60 s).
 * The ordering of updates, the relay and the history are the library's pipe-bus sequencer
 * (src/bus/sequencer.c, include/sse/bus.h), which the master drives from its poll() loop.
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

enum { MAX_RESTARTS = 10, RESTART_WINDOW_MS = 60000, HOUSEKEEP_MS = 10000 };

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct wk {
    pid_t pid; /* 0: not running */
    int ready, exited_status;
    long long restart_at;             /* 0: none scheduled */
    long long restarts[MAX_RESTARTS]; /* times of the recent restarts (ring) */
    unsigned n_restarts;
};

struct master {
    const struct sse_cli_master_config *mc;
    struct wk *w;
    sse_bus_seq *seq;
    int sfd, reserve_fd;
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

static void kill_worker(struct master *m, int k, const char *why)
{
    struct wk *w = &m->w[k];
    if (w->pid > 0) {
        mlog(m, 1, "worker %d (pid %d): %s: killing it", k, (int)w->pid, why);
        kill(w->pid, SIGKILL);
    }
    sse_bus_seq_detach(m->seq, k);
}

/* The sequencer gave up on member k (it has already detached it). */
static void on_drop(void *ud, int k, const char *why)
{
    kill_worker(ud, k, why);
}

static void on_member_ready(void *ud, int k)
{
    struct master *m = ud;
    m->w[k].ready = 1;
    mlog(m, 2, "worker %d (pid %d) listening", k, (int)m->w[k].pid);
    int all = 1;
    for (int i = 0; i < m->mc->n_workers; i++)
        all &= m->w[i].ready;
    if (all && !m->ready_told) {
        m->ready_told = 1;
        m->mc->on_ready(m->mc->ready_data, m->port);
    }
}

static void master_free(struct master *m)
{
    sse_bus_seq_free(m->seq); /* closes the workers' pipes */
    m->seq = NULL;
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
    /* Attached before the fork: the history is queued before any live update reaches it. */
    if (sse_bus_seq_attach(m->seq, k, sv[0])) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    if (m->mc->around_fork)
        m->mc->around_fork(m->mc->housekeep_data, 1);
    pid_t pid = fork();
    if (pid != 0 && m->mc->around_fork)
        m->mc->around_fork(m->mc->housekeep_data, 0);
    if (pid < 0) {
        sse_bus_seq_detach(m->seq, k);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        master_free(m); /* the other workers' pipe ends and the history copy */
        m->mc->free_in_worker(m->mc->free_data);
        close(m->reserve_fd);
        setpgid(0, 0); /* a terminal's Ctrl-C reaches the master only, which forwards it */
        /* SIGINT/SIGTERM stay blocked until the worker's handlers are installed: a stop asked
           while it starts is then a graceful one, not a death by signal. */
        sigset_t cm = *oldmask;
        sigaddset(&cm, SIGINT);
        sigaddset(&cm, SIGTERM);
        sigaddset(&cm, SIGHUP); /* a reload forwarded while it starts waits for its handler */
        sigprocmask(SIG_SETMASK, &cm, NULL);
        *child_fd = sv[1];
        return 1;
    }
    close(sv[1]);
    w->pid = pid;
    w->ready = 0;
    mlog(m, 2, "worker %d started (pid %d)", k, (int)pid);
    return 0;
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

/* SIGHUP: every running worker reloads what can change live (its TLS certificate and key, the
   log level; cmd_serve.c serve_reload); each logs the outcome. A worker started later reads
   the files anew anyway. */
static void forward_sighup(struct master *m)
{
    if (m->stopping)
        return;
    mlog(m, 2, "SIGHUP: every worker reloads");
    for (int k = 0; k < m->mc->n_workers; k++)
        if (m->w[k].pid > 0)
            kill(m->w[k].pid, SIGHUP);
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
        sse_bus_seq_detach(m->seq, k);
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
        if (m->mc->housekeep) /* e.g. the reader slots it held, before its successor starts */
            m->mc->housekeep(m->mc->housekeep_data);
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
    sse_bus_seq_options so = {SSE_BUS_SEQ_OPTIONS_VERSION,
                              mc->n_workers,
                              mc->max_message,
                              mc->queue_max,
                              mc->store,
                              on_drop,
                              on_member_ready,
                              &m,
                              mc->followers,
                              mc->position};
    if (!m.w || sse_bus_seq_new(&m.seq, &so)) {
        master_free(&m);
        return -1;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP); /* forwarded to the workers (forward_sighup) */
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
    struct pollfd *pf = calloc((size_t)mc->n_workers + 2, sizeof(*pf));
    if (!pf)
        goto out_fail;
    long long housekept = mono_ms();
    for (;;) {
        int alive = 0;
        long long now = mono_ms(), timeout = -1;
        if (mc->housekeep) { /* periodically, whatever happens */
            if (now - housekept >= HOUSEKEEP_MS) {
                mc->housekeep(mc->housekeep_data);
                housekept = now;
            }
            timeout = housekept + HOUSEKEEP_MS - now;
        }
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
            pf[n++] = (struct pollfd){
                sse_bus_seq_fd(m.seq, k),
                (short)(POLLIN | (sse_bus_seq_wants_write(m.seq, k) ? POLLOUT : 0)), 0};
        if (mc->loop) { /* the store's loop (an LMDB store's commits come back through it) */
            /* uv_backend_timeout() is 0 for a loop with nothing referenced (an idle store
               unreferences its async handle): that would make this poll spin. Its timers
               matter only while it is alive; an async send wakes its backend fd anyway. */
            int lt = uv_loop_alive(mc->loop) ? uv_backend_timeout(mc->loop) : -1;
            if (lt >= 0 && (timeout < 0 || lt < timeout))
                timeout = lt;
            pf[n++] = (struct pollfd){uv_backend_fd(mc->loop), POLLIN, 0};
        }
        int pr = poll(pf, (nfds_t)n, (int)timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (mc->loop)
            uv_run(mc->loop, UV_RUN_NOWAIT);
        if (pr <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(m.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                    reap(&m);
                } else if (si.ssi_signo == SIGHUP) {
                    forward_sighup(&m);
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
            int fd = sse_bus_seq_fd(m.seq, k);
            if (fd < 0 || fd != pf[k + 1].fd || !re)
                continue;
            sse_bus_seq_io(m.seq, k, (re & (POLLIN | POLLHUP | POLLERR)) != 0, (re & POLLOUT) != 0);
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
