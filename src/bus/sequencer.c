/*
 * sequencer.c: the sequencer of the pipe bus (include/sse/bus.h): one process orders the
 * messages of N members (the workers of `ssehub serve --workers`).
 *
 * Each member sends the messages its hub published; the sequencer reads them, appends each to
 * the history store (store.h) and, once the store has it, relays it to every member in that
 * order and acknowledges it to its sender (ACK; NACK when the store refused it, so the sender's
 * publisher gets a 503 instead of waiting). A member that attaches (a restarted worker) first
 * gets the history replayed from the store, then the end mark, then live messages. One relayed
 * message is one allocation shared by every member's queue. A member whose queue passes
 * queue_max, or that breaks the framing, is detached and reported (on_drop): one stuck worker
 * must not stall the others nor make the sequencer grow.
 *
 * The sequencer waits for nothing itself: its owner polls the fds and calls sse_bus_seq_io.
 * With followers (sse_bus_seq_options.followers: an LMDB store whose file every member reads
 * itself), no history is handed over: an attaching member gets only the end mark with the
 * position relayed so far, and every relayed update carries the position the store's append
 * reported ('V' frames, pipe_frame.h), so that a member's follower store needs no write.
 *
 * Not owned here: processes, signals and restarts (the CLI), the member's end (pipe.c).
 */
#include "bus/bus_internal.h"
#include "bus/pipe_frame.h"
#include "common/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <sse/bus.h>
#include <sse/store.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct msg { /* one message as relayed: shared by the queues */
    unsigned refs;
    size_t len;
    unsigned char data[];
};

struct qitem {
    struct qitem *next;
    struct msg *m; /* NULL: a payload-less frame */
    unsigned char hdr[SSE__PIPE_HDR];
};

struct member {
    int fd;       /* -1: detached */
    unsigned gen; /* bumped on detach: completions for an older attachment are ignored */
    unsigned char *in;
    size_t in_len;
    struct qitem *qhead, *qtail;
    size_t qoff, qbytes;
};

struct sse_bus_seq {
    sse_bus_seq_options o;
    uint64_t relayed; /* followers: the newest position relayed */
    struct member *m;
    struct append *head, *tail; /* appends in the order read, released in that order */
};

/*
 * A message handed to the store: who sent it, so that the ACK/NACK goes to the right attachment.
 * Released (relayed, acknowledged) in the order read even when the store reports out of turn:
 * the history's order is the relay's order, and a member pairs the answers with its publishes
 * first in, first out.
 */
struct append {
    struct append *next;
    struct sse_bus_seq *q;
    int k;
    unsigned gen;
    struct msg *x;
    int done;          /* the store has reported */
    int status;        /* its report */
    uint64_t position; /* the store's position for it (0: not stored) */
};

static void msg_unref(struct msg *x)
{
    if (x && --x->refs == 0)
        sse__free(x);
}

static int enqueue(struct member *w, int type, struct msg *x)
{
    struct qitem *it = sse__malloc(sizeof(*it));
    if (!it)
        return SSE_ENOMEM;
    sse__pipe_put_hdr(it->hdr, x ? x->len : 0, type);
    it->m = x;
    it->next = NULL;
    if (x)
        x->refs++;
    if (w->qtail)
        w->qtail->next = it;
    else
        w->qhead = it;
    w->qtail = it;
    w->qbytes += SSE__PIPE_HDR + (x ? x->len : 0);
    return 0;
}

static void queue_clear(struct member *w)
{
    while (w->qhead) {
        struct qitem *it = w->qhead;
        w->qhead = it->next;
        msg_unref(it->m);
        sse__free(it);
    }
    w->qtail = NULL;
    w->qoff = w->qbytes = 0;
}

void sse_bus_seq_detach(sse_bus_seq *q, int k)
{
    struct member *w = &q->m[k];
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    w->gen++;
    w->in_len = 0;
    queue_clear(w);
}

static void drop(sse_bus_seq *q, int k, const char *why)
{
    sse_bus_seq_detach(q, k);
    if (q->o.on_drop)
        q->o.on_drop(q->o.ud, k, why);
}

/* Queue to member k; drop it if it is too far behind. */
static void send_to(sse_bus_seq *q, int k, int type, struct msg *x)
{
    struct member *w = &q->m[k];
    if (w->fd < 0)
        return;
    if (enqueue(w, type, x))
        drop(q, k, "out of memory queueing to it");
    else if (w->qbytes > q->o.queue_max)
        drop(q, k, "does not drain its pipe");
}

/* Relay and acknowledge every message at the head whose store report is in. */
static void release(sse_bus_seq *q)
{
    while (q->head && q->head->done) {
        struct append *a = q->head;
        q->head = a->next;
        if (!q->head)
            q->tail = NULL;
        if (!a->status && q->o.followers) { /* the position leads the message ('V') */
            sse__pipe_put_u64(a->x->data, a->position);
            if (a->position > q->relayed)
                q->relayed = a->position;
        }
        if (!a->status)
            for (int i = 0; i < q->o.n_members; i++)
                send_to(q, i, q->o.followers ? SSE__PIPE_UPDATE_AT : SSE__PIPE_UPDATE, a->x);
        if (q->m[a->k].gen == a->gen)
            send_to(q, a->k, a->status ? SSE__PIPE_NACK : SSE__PIPE_ACK, NULL);
        msg_unref(a->x);
        sse__free(a);
    }
}

static void appended(void *ud, int status, uint64_t position)
{
    struct append *a = ud;
    a->position = position;
    a->done = 1;
    a->status = status;
    release(a->q);
}

/* One message from member k: into the store, then (appended) to everyone. */
static void on_update(sse_bus_seq *q, int k, const unsigned char *p, size_t len)
{
    sse_bus_msg *bm = NULL;
    struct append *a = sse__calloc(1, sizeof(*a));
    size_t at = q->o.followers ? 8 : 0; /* room for the position (release) */
    struct msg *x = sse__malloc(sizeof(*x) + at + len);
    if (!a || !x) { /* no answer can be queued in its turn: the member must go (restarted) */
        sse__free(a);
        sse__free(x);
        drop(q, k, "out of memory reading from it");
        return;
    }
    int rc = sse_bus_msg_decode(p, len, &bm);
    if (rc == SSE_EPROTO) {
        sse__free(a);
        sse__free(x);
        drop(q, k, "sent a malformed bus message");
        return;
    }
    x->refs = 1;
    x->len = at + len;
    memset(x->data, 0, at);
    memcpy(x->data + at, p, len);
    *a = (struct append){NULL, q, k, q->m[k].gen, x, 0, 0, 0};
    if (q->tail)
        q->tail->next = a;
    else
        q->head = a;
    q->tail = a;
    if (!rc && bm->no_history) /* relayed, not kept */
        appended(a, 0, 0);
    else if (!rc)
        rc = sse__bus_msg_store(q->o.store, bm, appended, a);
    sse_bus_msg_free(bm);
    if (rc) /* refused: the sender's publisher gets a 503, in its turn */
        appended(a, rc, 0);
}

static void on_frame(sse_bus_seq *q, int k, int type, const unsigned char *p, size_t len)
{
    if (type == SSE__PIPE_READY && !len) {
        if (q->o.on_ready)
            q->o.on_ready(q->o.ud, k);
    } else if (type == SSE__PIPE_UPDATE) {
        on_update(q, k, p, len);
    } else {
        drop(q, k, "protocol error on its pipe");
    }
}

static void read_member(sse_bus_seq *q, int k)
{
    struct member *w = &q->m[k];
    size_t cap = SSE__PIPE_HDR + q->o.max_message;
    for (;;) {
        ssize_t r = read(w->fd, w->in + w->in_len, cap - w->in_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) { /* the member exited or closed: its owner reaps it */
            sse_bus_seq_detach(q, k);
            return;
        }
        w->in_len += (size_t)r;
        size_t off = 0;
        unsigned gen = w->gen;
        while (w->in_len - off >= SSE__PIPE_HDR) {
            uint32_t len = sse__pipe_len(w->in + off);
            if (len < 1 || len - 1 > q->o.max_message) {
                drop(q, k, "frame too large");
                return;
            }
            if (w->in_len - off < 4 + (size_t)len)
                break;
            on_frame(q, k, w->in[off + 4], w->in + off + SSE__PIPE_HDR, len - 1);
            if (w->gen != gen)
                return; /* dropped meanwhile */
            off += 4 + (size_t)len;
        }
        memmove(w->in, w->in + off, w->in_len - off);
        w->in_len -= off;
    }
}

/* Write what the socket takes now. 0, or -1 if it is broken. */
static int flush_member(struct member *w)
{
    while (w->qhead) {
        struct qitem *it = w->qhead;
        struct iovec iov[2];
        int n = 0;
        size_t tot = SSE__PIPE_HDR + (it->m ? it->m->len : 0), off = w->qoff;
        if (off < SSE__PIPE_HDR)
            iov[n++] = (struct iovec){it->hdr + off, SSE__PIPE_HDR - off};
        if (it->m && it->m->len) {
            size_t skip = off > SSE__PIPE_HDR ? off - SSE__PIPE_HDR : 0;
            iov[n++] = (struct iovec){it->m->data + skip, it->m->len - skip};
        }
        ssize_t r = writev(w->fd, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        w->qoff += (size_t)r;
        w->qbytes -= (size_t)r;
        if (w->qoff == tot) {
            w->qhead = it->next;
            if (!w->qhead)
                w->qtail = NULL;
            msg_unref(it->m);
            sse__free(it);
            w->qoff = 0;
        }
    }
    return 0;
}

void sse_bus_seq_io(sse_bus_seq *q, int k, int readable, int writable)
{
    if (k < 0 || k >= q->o.n_members || q->m[k].fd < 0)
        return;
    if (readable)
        read_member(q, k);
    (void)writable; /* whatever is queued (also by the read just done) is tried now */
    if (q->m[k].fd >= 0 && q->m[k].qhead && flush_member(&q->m[k]))
        drop(q, k, "its pipe broke");
}

int sse_bus_seq_fd(const sse_bus_seq *q, int k)
{
    return k >= 0 && k < q->o.n_members ? q->m[k].fd : -1;
}

int sse_bus_seq_wants_write(const sse_bus_seq *q, int k)
{
    return k >= 0 && k < q->o.n_members && q->m[k].fd >= 0 && q->m[k].qhead != NULL;
}

/* The history replayed into a new member's queue, each entry re-made as a bus message. */
struct attach {
    sse_bus_seq *q;
    int k;
    int rc;
    sse_buf b;
    int done; /* history_done fired */
    int late; /* attach returned first: the callbacks only free this (see sse_bus_seq_attach) */
};

static int history_each(void *ud, const sse_store_entry *e)
{
    struct attach *a = ud;
    if (a->late)
        return 1;
    sse_bus_msg m = {.time_ms = e->time_ms,
                     .is_private = e->is_private,
                     .id = e->id,
                     .id_len = e->id_len,
                     .topics = e->topics,
                     .n_topics = e->n_topics,
                     .frame = sse_frame_data(e->frame),
                     .frame_len = sse_frame_len(e->frame)};
    sse_buf_reset(&a->b);
    if ((a->rc = sse_bus_msg_encode(&a->b, &m)))
        return 1;
    struct msg *x = sse__malloc(sizeof(*x) + a->b.len);
    if (!x) {
        a->rc = SSE_ENOMEM;
        return 1;
    }
    x->refs = 1;
    x->len = a->b.len;
    memcpy(x->data, a->b.data, a->b.len);
    a->rc = enqueue(&a->q->m[a->k], SSE__PIPE_PAST, x);
    msg_unref(x);
    return a->rc != 0;
}

static void history_done(void *ud, int status, int found)
{
    struct attach *a = ud;
    (void)found;
    if (a->late) {
        sse__free(a);
        return;
    }
    a->done = 1;
    if (status && !a->rc)
        a->rc = status;
}

int sse_bus_seq_attach(sse_bus_seq *q, int k, int fd)
{
    if (k < 0 || k >= q->o.n_members || fd < 0)
        return SSE_EINVAL;
    sse_bus_seq_detach(q, k);
    struct member *w = &q->m[k];
    if (q->o.followers) { /* the member reads the file: only where the relay starts */
        struct msg *x = sse__malloc(sizeof(*x) + 8);
        if (!x)
            return SSE_ENOMEM;
        x->refs = 1;
        x->len = 8;
        sse__pipe_put_u64(x->data, q->relayed);
        int rc = enqueue(w, SSE__PIPE_HISTEND, x);
        msg_unref(x);
        if (rc)
            return rc;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        w->fd = fd;
        return 0;
    }
    struct attach *a = sse__calloc(1, sizeof(*a));
    if (!a)
        return SSE_ENOMEM;
    a->q = q;
    a->k = k;
    sse_buf_init(&a->b, q->o.max_message);
    /* The history first, then the end mark: queued before any live message reaches it. A store
       that replays later than it returns would let live messages in first: refused here (its
       callbacks, when they come, only free a). */
    int rc = sse_store_replay(q->o.store, NULL, 0, history_each, history_done, a);
    sse_buf_free(&a->b);
    if (!rc && !a->done) {
        a->late = 1;
        rc = SSE_EUNSUPPORTED;
    } else {
        if (!rc)
            rc = a->rc;
        sse__free(a);
    }
    if (!rc)
        rc = enqueue(w, SSE__PIPE_HISTEND, NULL);
    if (rc) {
        queue_clear(w);
        return rc;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    w->fd = fd;
    return 0;
}

int sse_bus_seq_new(sse_bus_seq **out, const sse_bus_seq_options *o)
{
    if (!o || o->n_members < 1 || !o->store || !o->max_message)
        return SSE_EINVAL;
    sse_bus_seq *q = sse__calloc(1, sizeof(*q));
    if (!q)
        return SSE_ENOMEM;
    q->o = *o;
    q->relayed = o->position;
    if (!q->o.queue_max)
        q->o.queue_max = 64u << 20;
    if (!(q->m = sse__calloc((size_t)o->n_members, sizeof(*q->m))))
        goto out_free;
    for (int k = 0; k < o->n_members; k++) {
        q->m[k].fd = -1;
        if (!(q->m[k].in = sse__malloc(SSE__PIPE_HDR + o->max_message)))
            goto out_free;
    }
    *out = q;
    return 0;
out_free:
    sse_bus_seq_free(q);
    return SSE_ENOMEM;
}

void sse_bus_seq_free(sse_bus_seq *q)
{
    if (!q)
        return;
    while (q->head) { /* the store was closed first: what it never reported goes */
        struct append *a = q->head;
        q->head = a->next;
        msg_unref(a->x);
        sse__free(a);
    }
    for (int k = 0; q->m && k < q->o.n_members; k++) {
        sse_bus_seq_detach(q, k);
        sse__free(q->m[k].in);
    }
    sse__free(q->m);
    sse__free(q);
}
