/*
 * loadgen.c: one run of the load generator, phase by phase: derive the settings, set up the
 * shared-memory area, fork the subscriber processes (loadgen_sub.c), wait for their streams to
 * open, read the server's memory once idle (loadgen_probe.c), publish (loadgen_pub.c), stop and
 * reap the workers, and merge the numbers into the report (loadgen_stats.c). Every wait is
 * bounded. It prints nothing: the caller gets progress events and the report.
 */
#include "loadgen/loadgen.h"

#include <errno.h>
#include <signal.h>
#include <sse/error.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_NS 15000000000u /* workers get this long to exit once told to stop */

int sse__loadgen_prepare(struct sse__loadgen_config *c, unsigned *per_proc,
                         unsigned long long *fd_limit)
{
    if (c->target == SSE__LOADGEN_PLAIN)
        c->topics = 1;
    if (c->topics > c->subscribers)
        c->topics = c->subscribers;
    if (!c->procs)
        c->procs = (c->subscribers + 14999) / 15000;
    if (c->procs > c->subscribers)
        c->procs = c->subscribers;
    if (!c->sources)
        c->sources = c->subscribers / 20000 + 1;
    if (!c->h2 || !c->streams_per_conn)
        c->streams_per_conn = 1; /* HTTP/1.1: a connection per stream */
    double total_msgs = c->rate * (c->warmup + c->duration) + 16;
    c->max_track = total_msgs > (1 << 20) ? (1u << 20) : (unsigned)total_msgs;

    /* Each process may hold at most the hard RLIMIT_NOFILE: raise the soft one to it. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    unsigned streams = (c->subscribers + c->procs - 1) / c->procs;
    unsigned share = (streams + c->streams_per_conn - 1) / c->streams_per_conn; /* connections */
    if (share > SSE__LOADGEN_PER_PROC_MAX ||
        (rl.rlim_cur != RLIM_INFINITY && share + 64 > rl.rlim_cur)) {
        *per_proc = share;
        *fd_limit = (unsigned long long)rl.rlim_cur;
        return SSE_ELIMIT;
    }
    return 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Fork the subscriber processes; returns how many started (a failed fork ends the list). */
static unsigned start_workers(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                              pid_t *kids)
{
    unsigned n = 0;
    pid_t parent = getpid();
    for (unsigned i = 0; i < c->procs; i++) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            /* A parent that dies (a crash, SIGKILL) takes its workers with it: nobody else
             * would tell them to stop. */
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            int r = sse__loadgen_sub_run(c, sh, i);
            _exit(r < 0 ? 1 : 0);
        }
        kids[n++] = pid;
    }
    return n;
}

/* Wait until every stream has opened or failed, the connect timeout, or a worker's exit. */
static void wait_connected(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                           unsigned nkids, uint64_t t0, struct sse__loadgen_report *rep)
{
    for (;;) {
        uint64_t connected = 0, failed = 0;
        for (unsigned i = 0; i < c->procs; i++) {
            connected += __atomic_load_n(&sh->child[i].connected, __ATOMIC_RELAXED);
            failed += __atomic_load_n(&sh->child[i].failed, __ATOMIC_RELAXED);
        }
        rep->connected = connected;
        rep->failed = failed;
        if (connected + failed >= c->subscribers)
            break;
        if ((double)(sse__loadgen_now_mono() - t0) / 1e9 > c->connect_timeout) {
            rep->connect_gave_up = 1;
            break;
        }
        int status;
        if (nkids && waitpid(-1, &status, WNOHANG) > 0) {
            rep->worker_ended_early = 1;
            rep->connect_gave_up = 1;
            break;
        }
        sleep_s(0.01);
    }
    uint64_t last = t0;
    for (unsigned i = 0; i < c->procs; i++) {
        uint64_t l = __atomic_load_n(&sh->child[i].last_connect_ns, __ATOMIC_RELAXED);
        if (l > last)
            last = l;
    }
    rep->connect_seconds = (double)(last - t0) / 1e9;
}

/* Tell the workers to stop and reap them; those still alive after STOP_TIMEOUT_NS are killed. */
static void stop_workers(struct sse__loadgen_shared *sh, const pid_t *kids, unsigned nkids)
{
    __atomic_store_n(&sh->phase, SSE__LOADGEN_PHASE_STOP, __ATOMIC_RELEASE);
    uint64_t deadline = sse__loadgen_now_mono() + STOP_TIMEOUT_NS;
    unsigned left = nkids;
    while (left) {
        int status;
        pid_t w = waitpid(-1, &status, WNOHANG);
        if (w > 0) {
            left--;
            continue;
        }
        if (w < 0)
            break;
        if (sse__loadgen_now_mono() > deadline) {
            for (unsigned i = 0; i < nkids; i++)
                kill(kids[i], SIGKILL);
            while (waitpid(-1, &status, 0) > 0)
                ;
            break;
        }
        sleep_s(0.01);
    }
}

static double cpu_seconds(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int sse__loadgen_run(const struct sse__loadgen_config *c, struct sse__loadgen_report *rep,
                     sse__loadgen_progress_cb progress, void *user_data)
{
    memset(rep, 0, sizeof(*rep));
    rep->mem_after.rss_kib = rep->mem_after.pss_kib = -1;
    rep->server_cpu = -1;
    sse__loadgen_hist_init(&rep->pub.rtt);

    size_t shsize =
        sizeof(struct sse__loadgen_shared) + (size_t)c->max_track * sizeof(struct sse__loadgen_seq);
    struct sse__loadgen_shared *sh =
        mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return -errno;
    sh->nprocs = c->procs;
    sh->phase = SSE__LOADGEN_PHASE_CONNECT;

    int pids[SSE__LOADGEN_MAX_PIDS];
    int npids = c->nserver_pids;
    memcpy(pids, c->server_pids, sizeof(int) * (size_t)npids);
    if (c->server_children)
        npids = sse__loadgen_add_children(pids, npids);
    rep->npids = npids;
    rep->mem_before = sse__loadgen_read_mem(pids, npids);

    /* Connect. */
    pid_t kids[SSE__LOADGEN_MAX_PROCS];
    uint64_t t0 = sse__loadgen_now_mono();
    unsigned nkids = start_workers(c, sh, kids);
    rep->workers = nkids;
    wait_connected(c, sh, nkids, t0, rep);
    if (progress)
        progress(user_data, SSE__LOADGEN_EV_CONNECTED, rep);

    /* The server's memory with every stream open and nothing published. */
    if (npids) {
        sleep_s(c->idle);
        rep->mem_after = sse__loadgen_read_mem(pids, npids);
    }

    /* Publish. */
    double cpu0 = sse__loadgen_read_cpu(pids, npids), cpu1 = -1;
    if (c->rate > 0 && c->duration > 0 && rep->connected > 0) {
        __atomic_store_n(&sh->phase, SSE__LOADGEN_PHASE_RUN, __ATOMIC_RELEASE);
        uint64_t w0 = sse__loadgen_now_mono();
        int r = sse__loadgen_pub_run(c, sh, &rep->pub);
        rep->wall_seconds = (double)(sse__loadgen_now_mono() - w0) / 1e9;
        cpu1 = sse__loadgen_read_cpu(pids, npids);
        rep->pub_ran = r == 0;
        if (r < 0) {
            rep->pub_error = r;
            if (progress)
                progress(user_data, SSE__LOADGEN_EV_PUB_FAILED, rep);
        }
    }
    rep->server_cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;

    /* Stop, then count. */
    stop_workers(sh, kids, nkids);
    rep->sub_cpu = cpu_seconds(RUSAGE_CHILDREN);
    rep->pub_cpu = cpu_seconds(RUSAGE_SELF);
    sse__loadgen_collect(c, sh, rep);
    munmap(sh, shsize);
    return 0;
}
