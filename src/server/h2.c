/*
 * h2.c: HTTP/2 on a connection, over nghttp2: h2c by prior knowledge on plain listeners, or
 * "h2" chosen by ALPN on TLS (the TLS transport calls sse__conn_start_h2).
 *
 * The connection (struct sse__conn) keeps its transport, timers and dirty-list link; HTTP/2
 * adds a session (struct sse__h2) and streams allocated apart (struct sse__h2s, internal.h),
 * each with the same frame queue, bound and API as the HTTP/1.1 stream. Requests are collected
 * from nghttp2's callbacks and handed to the shared routing (sse__conn_dispatch); answers and
 * stream heads come as a struct sse__head and are submitted as name/value pairs.
 *
 * Output, once per loop turn like HTTP/1.1 (sse__h2_flush from the walk): nghttp2_session_send
 * produces the frames of the turn. Control frames and DATA frame headers (9 bytes) are copied
 * into a per-connection control buffer; DATA payloads are never copied: the data source answers
 * with NGHTTP2_DATA_FLAG_NO_COPY and the send_data callback appends *references* to the
 * stream's queued sse_frames (shared by every subscriber) to the same batch of pieces. The batch
 * goes out in one try_writev; what the socket refuses goes in one transport writev, and nghttp2
 * is not asked for more until it completes. The piece array and control buffer grow once and are
 * kept, so a steady fan-out allocates nothing per subscriber per event.
 *
 * Flow control: a stream's frames stay in its queue until its window lets nghttp2 ask for them,
 * so a zero-window stream stalls only itself and is closed by stream_queue_max (SSE_CLOSE_SLOW)
 * or write_timeout_ms (SSE_CLOSE_TIMEOUT) with RST_STREAM(CANCEL), like a slow HTTP/1.1 reader.
 *
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS (h2_max_streams), SETTINGS_MAX_HEADER_LIST_SIZE and
 * the header count (max_header_bytes, max_headers: 431), the HPACK table (h2_header_table_size),
 * max_body per request (413), bytes held for unfinished requests against max_buffered (503);
 * attacks: rapid reset (nghttp2's RST_STREAM token bucket: h2_reset_burst, h2_reset_rate),
 * CONTINUATION flood (at most SSE__H2_MAX_CONTINUATIONS per header block), SETTINGS / PING /
 * PRIORITY / WINDOW_UPDATE / empty-frame floods (h2_control_max per second, plus nghttp2's bound
 * on unsent ACKs), each answered with GOAWAY and the connection's close.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SSE__H2_PIECES 256            /* buffers per write batch (the writev) */
#define SSE__H2_BATCH_BYTES 262144    /* bytes per batch before nghttp2 is told to wait */
#define SSE__H2_DATA_FRAMES 64        /* queued frames one DATA frame may reference */
#define SSE__H2_MAX_CONTINUATIONS 8   /* CONTINUATION frames after one HEADERS */
#define SSE__H2_MAX_OUTBOUND_ACK 1000 /* SETTINGS / PING ACKs the peer leaves unread */
#define SSE__H2_BIG_MIN 16384         /* nghttp2 blocks this big get pages of their own */
#define SSE__H2_BIG_SLOTS 2           /* such blocks per session (more go to the heap) */
#define SSE__H2_TRIM_IDLE_MS 1000     /* idle this long, the frame buffer's pages go back */

/* Output bytes: a range of the control buffer (f NULL), or of a shared frame (referenced). */
struct sse__h2piece {
    sse_frame *f;
    uint32_t off, len;
};

/* A request while it arrives. */
struct sse__h2in {
    sse_buf hdr;      /* "name\0value\0" per field, pseudo-header fields included */
    sse_buf body;     /* bounded by max_body */
    size_t budget;    /* bytes counted in the server's pend_bytes (max_buffered) */
    unsigned nfields; /* regular fields */
    int err;          /* status to answer instead of dispatching (431, 413, 503), or 0 */
};

struct sse__h2 {
    nghttp2_session *ng;
    struct sse__h2s *streams; /* every open stream */
    unsigned nstreams;
    struct sse__h2piece *pc; /* the batch: pieces [head, npc) are unwritten */
    uint32_t npc, cap, head, hoff;
    char *ctl; /* control bytes of the batch */
    size_t ctl_len, ctl_cap;
    size_t out;            /* bytes of the batch */
    uint32_t t_idle;       /* ms: the last stream closed (keep-alive timeout) */
    uint32_t ctl_t, ctl_n; /* control-frame budget: window start (ms), frames in it */
    uint32_t rst_t;        /* ms: the reset bucket was last filled */
    uint64_t rst_milli;    /* the reset bucket: RST_STREAMs allowed, in thousandths */
    uint8_t in_ng;         /* inside nghttp2 (recv or send): no session_send now */
    uint8_t dead;          /* terminated: reading discarded, closing once flushed */
    uint8_t calm;          /* terminated for a flood: ENHANCE_YOUR_CALM */
    uint8_t going;         /* GOAWAY sent for shutdown */
    /* nghttp2's big buffers, on pages mapped for them (see sse__ng_malloc) */
    void *big[SSE__H2_BIG_SLOTS];
    size_t big_cap[SSE__H2_BIG_SLOTS]; /* bytes mapped, 0: the slot is free */
    void *fb;                          /* the frame buffer among them (made with the session) */
    uint32_t fb_trim_act;              /* c->t_act when its pages were last handed back */
};

/* ---------------------------------------------------------------- memory for nghttp2 */

/*
 * nghttp2 allocates a 16,394-byte outbound frame buffer per session up front (a frame header,
 * a pad length byte and the largest payload) and keeps it for the connection's life; an idle
 * SSE connection only ever writes small frames (SETTINGS, a response head, WINDOW_UPDATE) at its
 * start. From the heap, its pages become resident as soon as the heap reuses memory the
 * handshake or earlier connections touched; served from anonymous pages mapped for it, only the
 * first page ever is (docs/performance/h2.md). So blocks of SSE__H2_BIG_MIN bytes or more get
 * their own mapping, up to SSE__H2_BIG_SLOTS per session (tracked in struct sse__h2: a free
 * knows its block by address, no header, no guess); the rest goes to the heap as before.
 */
static void *sse__ng_big_alloc(struct sse__h2 *h2, size_t size)
{
    for (unsigned i = 0; i < SSE__H2_BIG_SLOTS; i++) {
        if (h2->big_cap[i])
            continue;
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t cap = (size + page - 1) / page * page;
        void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        h2->big[i] = p;
        h2->big_cap[i] = cap;
        return p;
    }
    return NULL;
}

/* The slot of ptr if it is one of h2's mapped blocks, else -1. */
static int sse__ng_big_slot(const struct sse__h2 *h2, const void *ptr)
{
    for (unsigned i = 0; i < SSE__H2_BIG_SLOTS; i++)
        if (h2->big_cap[i] && h2->big[i] == ptr)
            return (int)i;
    return -1;
}

/*
 * Hand the frame buffer's pages back to the system on a connection that wrote nothing for
 * SSE__H2_TRIM_IDLE_MS (from the sweep; once per quiet spell): its first page, dirtied by the
 * last frames, is all an idle connection would keep resident of it. Only when no frame is in
 * it: nghttp2 wants to read and has nothing to write (a frame half handed over, or a closing
 * session, would say otherwise), and our batch is empty. The next frame finds zeroed pages.
 */
static void sse__h2_trim(struct sse__conn *c, uint32_t now)
{
    struct sse__h2 *h2 = c->h2;
    int i = h2->fb ? sse__ng_big_slot(h2, h2->fb) : -1;
    if (i < 0 || h2->in_ng || h2->going || h2->npc || (c->flags & SSE__F_WRITING) ||
        c->t_act == h2->fb_trim_act || now - c->t_act < SSE__H2_TRIM_IDLE_MS ||
        nghttp2_session_want_write(h2->ng) || !nghttp2_session_want_read(h2->ng))
        return;
    (void)madvise(h2->fb, h2->big_cap[i], MADV_DONTNEED);
    h2->fb_trim_act = c->t_act;
}

static void *sse__ng_malloc(size_t size, void *ud)
{
    void *p = size >= SSE__H2_BIG_MIN ? sse__ng_big_alloc(ud, size) : NULL;
    return p ? p : sse__malloc(size);
}

static void sse__ng_free(void *ptr, void *ud)
{
    struct sse__h2 *h2 = ud;
    int i = ptr ? sse__ng_big_slot(h2, ptr) : -1;
    if (i < 0) {
        sse__free(ptr);
        return;
    }
    /* munmap fails only when splitting a mapping would pass vm.max_map_count: then at least
       the pages go back (the address range stays reserved) */
    if (munmap(ptr, h2->big_cap[i]) != 0)
        (void)madvise(ptr, h2->big_cap[i], MADV_DONTNEED);
    h2->big[i] = NULL;
    h2->big_cap[i] = 0;
}

static void *sse__ng_calloc(size_t n, size_t size, void *ud)
{
    if (n && size <= SIZE_MAX / n && n * size >= SSE__H2_BIG_MIN) {
        void *p = sse__ng_big_alloc(ud, n * size); /* fresh pages read as zeros */
        if (p)
            return p;
    }
    return sse__calloc(n, size);
}

static void *sse__ng_realloc(void *ptr, size_t size, void *ud)
{
    struct sse__h2 *h2 = ud;
    int i = ptr ? sse__ng_big_slot(h2, ptr) : -1;
    if (i < 0) {
        if (!ptr)
            return sse__ng_malloc(size, ud);
        return sse__realloc(ptr, size); /* a heap block stays on the heap */
    }
    if (!size) {
        sse__ng_free(ptr, ud);
        return NULL;
    }
    if (size <= h2->big_cap[i])
        return ptr;
    void *p = sse__ng_malloc(size, ud);
    if (!p)
        return NULL;
    memcpy(p, ptr, h2->big_cap[i]);
    sse__ng_free(ptr, ud);
    return p;
}

/* ---------------------------------------------------------------- streams */

int sse__h2_preface(const char *data, size_t n)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t k = n < 24 ? n : 24;
    if (memcmp(data, preface, k) != 0)
        return 0;
    return n >= 24 ? 1 : 2;
}

static struct sse__h2s *sse__h2_stream(struct sse__conn *c, int32_t id)
{
    return nghttp2_session_get_stream_user_data(c->h2->ng, id);
}

static void sse__h2in_free(sse_server *s, struct sse__h2in *in)
{
    if (!in)
        return;
    s->pend_bytes -= in->budget;
    sse_buf_free(&in->hdr);
    sse_buf_free(&in->body);
    sse__free(in);
}

/* Free a stream whose callbacks have run (or whose connection is going). */
static void sse__h2s_free(struct sse__conn *c, struct sse__h2s *h)
{
    struct sse__h2 *h2 = c->h2;
    struct sse_stream *st = &h->st;
    for (uint32_t i = 0; i < st->qcount; i++)
        sse_frame_unref(sse__stream_at(st, i));
    if (st->qcap > 1)
        sse__free(st->q.ring);
    sse__free(st->logline);
    sse__h2in_free(c->srv, h->in);
    if (h->prev)
        h->prev->next = h->next;
    else
        h2->streams = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (--h2->nstreams == 0)
        h2->t_idle = sse__now(c->srv);
    sse__free(h);
}

/* Abort h's outstanding request and run its stream's on_close (once), with reason. */
static void sse__h2s_gone(struct sse__h2s *h, int reason)
{
    if (h->req) {
        sse_request *r = h->req;
        h->req = NULL;
        r->conn = NULL;
        if (r->on_abort)
            r->on_abort(r, r->abort_data);
        if (!(r->flags & SSE__R_IN_HANDLER))
            sse__request_free(r);
    }
    if (h->hflags & SSE__H2S_RESET)
        reason = h->st.reason;
    sse__stream_closed(&h->st, reason);
}

int sse__h2_stream_open(const struct sse_stream *st)
{
    const struct sse__h2s *h = (const struct sse__h2s *)st;
    const struct sse__conn *c = st->conn;
    return (st->sflags & SSE__S_WAS_STREAM) && !(st->sflags & SSE__S_CLOSE_CB) &&
           !(h->hflags & (SSE__H2S_END | SSE__H2S_RESET)) && c->state == SSE__ST_H2 && !c->h2->dead;
}

void sse__h2_stream_queued(struct sse_stream *st)
{
    struct sse__h2s *h = (struct sse__h2s *)st;
    if ((h->hflags & SSE__H2S_DEFERRED) && !(h->hflags & SSE__H2S_RESET)) {
        h->hflags &= (uint8_t)~SSE__H2S_DEFERRED;
        (void)nghttp2_session_resume_data(st->conn->h2->ng, h->id);
    }
}

void sse__h2_drains(struct sse__conn *c)
{
    /* A callback may send, re-arm or end its stream; none of these frees a stream (that waits
       for nghttp2's on_stream_close, inside a session call), so the list holds still. */
    for (struct sse__h2s *h = c->h2->streams; h && c->state == SSE__ST_H2; h = h->next)
        if (h->st.sflags & SSE__S_DRAIN_DUE)
            sse__stream_drain_fire(&h->st);
}

void sse__h2_stream_end(struct sse_stream *st, int reason)
{
    struct sse__h2s *h = (struct sse__h2s *)st;
    struct sse__conn *c = st->conn;
    if ((h->hflags & (SSE__H2S_RESET | SSE__H2S_END)) || c->state != SSE__ST_H2)
        return;
    if (reason == SSE_CLOSE_LOCAL && (h->hflags & SSE__H2S_SUBMITTED)) {
        /* END_STREAM once the queue is handed on */
        h->hflags |= SSE__H2S_END;
        st->reason = SSE_CLOSE_LOCAL;
        if (h->hflags & SSE__H2S_DEFERRED) {
            h->hflags &= (uint8_t)~SSE__H2S_DEFERRED;
            (void)nghttp2_session_resume_data(c->h2->ng, h->id);
        }
    } else {
        h->hflags |= SSE__H2S_RESET;
        st->reason = (uint8_t)reason;
        (void)nghttp2_submit_rst_stream(c->h2->ng, NGHTTP2_FLAG_NONE, h->id,
                                        reason == SSE_CLOSE_ERROR ? NGHTTP2_INTERNAL_ERROR
                                                                  : NGHTTP2_CANCEL);
    }
    sse__conn_mark_dirty(c);
}

/* ---------------------------------------------------------------- answers */

/* The data source of a stream: what its queue holds, by reference (NO_COPY). */
static ssize_t sse__h2_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                               uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    (void)ng, (void)id, (void)buf, (void)ud;
    struct sse__h2s *h = source->ptr;
    struct sse_stream *st = &h->st;
    if (st->qcount && st->qbytes == 0)
        sse__stream_consume(st, 0); /* empty frames only */
    size_t n = 0, off = st->qoff;
    for (uint32_t i = 0; i < st->qcount && i < SSE__H2_DATA_FRAMES && n < length; i++) {
        n += sse_frame_len(sse__stream_at(st, i)) - off;
        off = 0;
    }
    if (n > length)
        n = length;
    if (n == 0) {
        if (h->hflags & SSE__H2S_END) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        h->hflags |= SSE__H2S_DEFERRED;
        return NGHTTP2_ERR_DEFERRED;
    }
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if ((h->hflags & SSE__H2S_END) && n == st->qbytes)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Append a lower-cased copy of name, NUL-terminated, to b; returns its offset or -1. */
static long sse__h2_lower(sse_buf *b, const char *name)
{
    size_t at = b->len, n = strlen(name);
    if (sse_buf_reserve(b, n + 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        b->data[b->len++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    b->data[b->len++] = '\0';
    return (long)at;
}

/* Fields that belong to an HTTP/1.1 connection and are malformed in HTTP/2 (RFC 9113 8.2.2). */
static int sse__h2_conn_field(const char *lower)
{
    return !strcmp(lower, "connection") || !strcmp(lower, "keep-alive") ||
           !strcmp(lower, "transfer-encoding") || !strcmp(lower, "upgrade") ||
           !strcmp(lower, "proxy-connection");
}

/* Submit h (and body, copied) on stream h2s; is_stream keeps it open for frames. */
static int sse__h2_submit(struct sse__h2s *hs, const struct sse__head *h, const void *body,
                          size_t len, int is_stream)
{
    struct sse__conn *c = hs->st.conn;
    if (hs->hflags & (SSE__H2S_SUBMITTED | SSE__H2S_RESET))
        return SSE_EBUSY;
    unsigned nextra = 0;
    for (size_t off = 0; off < h->extra_len; off++)
        nextra += h->extra[off] == '\0';
    nextra /= 2;
    unsigned cap = 4 + h->nfields + nextra;
    nghttp2_nv *nva = sse__malloc(cap * sizeof(*nva));
    sse_buf names; /* lower-cased names (offsets until the buffer stops moving) */
    sse_buf_init(&names, 0);
    if (!nva)
        return SSE_ENOMEM;
    char status[8], clen[24];
    snprintf(status, sizeof(status), "%03d", h->status % 1000);
    const char *date = sse__server_date(c->srv);
    unsigned n = 0;
    long noff[64 + 1];
    int rc = 0;
#define SSE__NV(nm, val, nvflags)                                                                  \
    do {                                                                                           \
        nva[n].name = (uint8_t *)(nm);                                                             \
        nva[n].namelen = strlen(nm);                                                               \
        nva[n].value = (uint8_t *)(val);                                                           \
        nva[n].valuelen = strlen(val);                                                             \
        nva[n].flags = (nvflags);                                                                  \
        n++;                                                                                       \
    } while (0)
    SSE__NV(":status", status, NGHTTP2_NV_FLAG_NONE);
    SSE__NV("date", date, NGHTTP2_NV_FLAG_NONE);
    if (h->content_type)
        SSE__NV("content-type", h->content_type, NGHTTP2_NV_FLAG_NONE);
    if (h->flags & SSE__HEAD_LENGTH) {
        snprintf(clen, sizeof(clen), "%llu", (unsigned long long)h->content_length);
        SSE__NV("content-length", clen, NGHTTP2_NV_FLAG_NONE);
    }
    unsigned nf = 0;
    /* the fields' names, lower-cased into one buffer; pointers are set once it is complete */
    const char *values[64 + 1];
    for (unsigned i = 0; i < h->nfields && nf < 64 && !rc; i++) {
        noff[nf] = sse__h2_lower(&names, h->fields[i].name);
        values[nf++] = h->fields[i].value;
        rc = noff[nf - 1] < 0 ? SSE_ENOMEM : 0;
    }
    for (size_t off = 0; off < h->extra_len && nf < 64 && !rc;) {
        const char *name = h->extra + off;
        const char *value = name + strlen(name) + 1;
        off = (size_t)(value + strlen(value) + 1 - h->extra);
        noff[nf] = sse__h2_lower(&names, name);
        values[nf++] = value;
        rc = noff[nf - 1] < 0 ? SSE_ENOMEM : 0;
    }
    for (unsigned i = 0; i < nf && !rc; i++) {
        const char *nm = names.data + noff[i];
        if (!sse__h2_conn_field(nm) && n < cap)
            SSE__NV(nm, values[i], NGHTTP2_NV_FLAG_NONE);
    }
#undef SSE__NV
    sse_frame *bf = NULL;
    if (!rc && len)
        rc = sse_frame_new(&bf, body, len);
    if (!rc && bf) {
        rc = sse__stream_enqueue(&hs->st, bf); /* an empty queue: the inline slot */
        if (rc)
            sse_frame_unref(bf);
    }
    if (!rc) {
        nghttp2_data_provider prd;
        prd.source.ptr = hs;
        prd.read_callback = sse__h2_read_cb;
        if (!is_stream)
            hs->hflags |= SSE__H2S_END;
        int use_prd = is_stream || len > 0;
        if (nghttp2_submit_response(c->h2->ng, hs->id, nva, n, use_prd ? &prd : NULL) != 0)
            rc = SSE_ENOMEM;
    }
    sse_buf_free(&names);
    sse__free(nva);
    if (rc) {
        hs->hflags &= (uint8_t)~SSE__H2S_END;
        return rc;
    }
    hs->hflags |= SSE__H2S_SUBMITTED;
    sse__conn_mark_dirty(c);
    return 0;
}

int sse__h2_answer(sse_request *r, const struct sse__head *h, const void *body, size_t len,
                   int is_stream)
{
    /* a HEAD request's answer comes without body already (conn.c) */
    return sse__h2_submit((struct sse__h2s *)r->st, h, body, len, is_stream);
}

void sse__h2_reject(struct sse_stream *st, int status)
{
    struct sse__h2s *hs = (struct sse__h2s *)st;
    struct sse__conn *c = st->conn;
    sse_server *s = c->srv;
    char body[64];
    s->st.rejected_total++;
    sse__h2in_free(s, hs->in);
    hs->in = NULL;
    int n = snprintf(body, sizeof(body), "%d %s\n", status, sse__http_reason(status));
    struct sse__head h = {
        status, "text/plain; charset=utf-8", (uint64_t)n, SSE__HEAD_LENGTH, NULL, 0, NULL, 0};
    if (s->o.access_log) {
        char peer[48];
        if (sse__conn_tp(c)->peer_addr(c, peer, sizeof(peer)) != 0)
            peer[0] = '\0';
        sse__log(s, SSE_LOG_INFO, "%s - - %d %s (rejected by the server, HTTP/2 stream %d)", peer,
                 status, sse__http_reason(status), (int)hs->id);
    }
    if (sse__h2_submit(hs, &h, body, (size_t)n, 0) != 0)
        sse__h2_stream_end(st, SSE_CLOSE_ERROR);
}

/* ---------------------------------------------------------------- requests in */

static int sse__h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct sse__conn *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct sse__h2s *h = sse__calloc(1, sizeof(*h));
    struct sse__h2in *in = sse__calloc(1, sizeof(*in));
    if (!h || !in) {
        sse__free(h);
        sse__free(in);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM for this one */
    }
    sse_server *s = c->srv;
    sse_buf_init(&in->hdr, s->o.max_header_bytes);
    sse_buf_init(&in->body, s->o.max_body);
    h->in = in;
    h->st.conn = c;
    h->id = frame->hd.stream_id;
    h->t_open = h->t_act = sse__now(s);
    h->next = c->h2->streams;
    if (h->next)
        h->next->prev = h;
    c->h2->streams = h;
    c->h2->nstreams++;
    nghttp2_session_set_stream_user_data(ng, h->id, h);
    return 0;
}

/* Grow the bytes held for h's unfinished request within the server's budget. */
static int sse__h2_budget(struct sse__conn *c, struct sse__h2in *in, size_t more)
{
    sse_server *s = c->srv;
    if (s->pend_bytes + more > s->o.max_buffered)
        return -1;
    s->pend_bytes += more;
    in->budget += more;
    return 0;
}

static int sse__h2_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                             size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                             void *ud)
{
    (void)ng, (void)flags;
    struct sse__conn *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers: ignored */
    struct sse__h2s *h = sse__h2_stream(c, frame->hd.stream_id);
    if (!h || !h->in || h->in->err)
        return 0;
    struct sse__h2in *in = h->in;
    size_t before = in->hdr.cap;
    if (namelen && name[0] != ':' && ++in->nfields > c->srv->o.max_headers) {
        in->err = 431;
        return 0;
    }
    if (sse_buf_append(&in->hdr, name, namelen) || sse_buf_append_byte(&in->hdr, '\0') ||
        sse_buf_append(&in->hdr, value, valuelen) || sse_buf_append_byte(&in->hdr, '\0')) {
        in->err = 431; /* past max_header_bytes (SETTINGS_MAX_HEADER_LIST_SIZE) */
        return 0;
    }
    if (in->hdr.cap > before && sse__h2_budget(c, in, in->hdr.cap - before))
        in->err = 503;
    return 0;
}

static int sse__h2_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                           size_t len, void *ud)
{
    (void)ng, (void)flags;
    struct sse__conn *c = ud;
    struct sse__h2s *h = sse__h2_stream(c, id);
    if (!h || !h->in || h->in->err)
        return 0;
    struct sse__h2in *in = h->in;
    size_t before = in->body.cap;
    if (sse_buf_append(&in->body, data, len)) {
        in->err = 413;
        return 0;
    }
    if (in->body.cap > before && sse__h2_budget(c, in, in->body.cap - before))
        in->err = 503;
    return 0;
}

/* The request of h is complete: make a head of it and route it. */
static void sse__h2_dispatch(struct sse__conn *c, struct sse__h2s *h)
{
    sse_server *s = c->srv;
    struct sse__h2in *in = h->in;
    if (in->err) {
        sse__h2_reject(&h->st, in->err);
        return;
    }
    struct sse__http_head hd;
    memset(&hd, 0, sizeof(hd));
    hd.minor = 1;
    hd.keep_alive = 1;
    hd.headers = s->hdrs;
    const char *authority = NULL;
    size_t alen = 0;
    int has_host = 0;
    for (size_t off = 0; off < in->hdr.len;) {
        const char *name = in->hdr.data + off;
        size_t nl = strlen(name);
        const char *value = name + nl + 1;
        size_t vl = strlen(value); /* nghttp2 refuses NUL in fields */
        off = (size_t)(value + vl + 1 - in->hdr.data);
        if (name[0] == ':') {
            if (!strcmp(name, ":method")) {
                hd.method.p = value;
                hd.method.len = vl;
            } else if (!strcmp(name, ":path")) {
                hd.target.p = value;
                hd.target.len = vl;
            } else if (!strcmp(name, ":authority")) {
                authority = value;
                alen = vl;
            }
            continue;
        }
        if (hd.nheaders >= s->o.max_headers) {
            sse__h2_reject(&h->st, 431);
            return;
        }
        if (!strcmp(name, "host"))
            has_host = 1;
        hd.headers[hd.nheaders].name.p = name;
        hd.headers[hd.nheaders].name.len = nl;
        hd.headers[hd.nheaders].value.p = value;
        hd.headers[hd.nheaders].value.len = vl;
        hd.nheaders++;
    }
    if (authority && !has_host && hd.nheaders < s->o.max_headers) { /* as HTTP/1.1's Host */
        hd.headers[hd.nheaders].name.p = "host";
        hd.headers[hd.nheaders].name.len = 4;
        hd.headers[hd.nheaders].value.p = authority;
        hd.headers[hd.nheaders].value.len = alen;
        hd.nheaders++;
    }
    if (!hd.method.p || !hd.target.p) { /* CONNECT: not served */
        sse__h2_reject(&h->st, 501);
        return;
    }
    const char *q = memchr(hd.target.p, '?', hd.target.len);
    hd.path.p = hd.target.p;
    hd.path.len = q ? (size_t)(q - hd.target.p) : hd.target.len;
    hd.query.p = q ? q + 1 : "";
    hd.query.len = q ? hd.target.len - hd.path.len - 1 : 0;
    hd.content_length = (int64_t)in->body.len;
    h->in = NULL; /* the strings stay valid until the request is copied */
    sse__conn_dispatch(c, &h->st, &hd, in->body.data ? in->body.data : "", in->body.len);
    sse__h2in_free(s, in);
}

/*
 * Rapid reset (CVE-2023-44487): each stream the peer opens costs a dispatch (a subscription, a
 * replay...) even if it is reset at once, so RST_STREAMs from the peer take tokens from a bucket
 * of h2_reset_burst filled at h2_reset_rate a second. nghttp2 has such a bucket too, but its
 * GOAWAY lets every stream already in the read buffer (64 KiB: ~1,500 streams) be dispatched;
 * failing the callback here stops the parse at once.
 */
static int sse__h2_reset_budget(struct sse__conn *c)
{
    struct sse__h2 *h2 = c->h2;
    const sse_server_options *o = &c->srv->o;
    uint32_t now = sse__now(c->srv);
    uint64_t cap = (uint64_t)o->h2_reset_burst * 1000;
    h2->rst_milli += (uint64_t)(uint32_t)(now - h2->rst_t) * o->h2_reset_rate;
    if (h2->rst_milli > cap)
        h2->rst_milli = cap;
    h2->rst_t = now;
    if (h2->rst_milli < 1000) {
        sse__log(c->srv, SSE_LOG_DEBUG, "HTTP/2: stream resets past %u (+%u/s): GOAWAY",
                 o->h2_reset_burst, o->h2_reset_rate);
        h2->calm = 1;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    h2->rst_milli -= 1000;
    return 0;
}

/* Control frames per second: past h2_control_max the peer is flooding. */
static int sse__h2_on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
    (void)ng;
    struct sse__conn *c = ud;
    struct sse__h2 *h2 = c->h2;
    if (hd->type == NGHTTP2_RST_STREAM && sse__h2_reset_budget(c))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    int control = hd->type == NGHTTP2_PING || hd->type == NGHTTP2_SETTINGS ||
                  hd->type == NGHTTP2_PRIORITY || hd->type == NGHTTP2_WINDOW_UPDATE ||
                  hd->type == NGHTTP2_RST_STREAM ||
                  ((hd->type == NGHTTP2_DATA || hd->type == NGHTTP2_CONTINUATION) &&
                   hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM));
    if (!control)
        return 0;
    uint32_t now = sse__now(c->srv);
    if (now - h2->ctl_t >= 1000) {
        h2->ctl_t = now;
        h2->ctl_n = 0;
    }
    if (++h2->ctl_n > c->srv->o.h2_control_max) {
        sse__log(c->srv, SSE_LOG_DEBUG, "HTTP/2: more than %u control frames in a second: GOAWAY",
                 c->srv->o.h2_control_max);
        h2->calm = 1;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int sse__h2_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    struct sse__conn *c = ud;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct sse__h2s *h = sse__h2_stream(c, frame->hd.stream_id);
    if (h && h->in)
        sse__h2_dispatch(c, h);
    return 0;
}

/*
 * An answer went out complete (END_STREAM) before the request did (an error status, a 408):
 * RST_STREAM(NO_ERROR) tells the client to stop sending it (RFC 9113 8.1) and closes the stream,
 * which would otherwise stay half-open and keep the connection from being idle.
 */
static int sse__h2_on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(ng, frame->hd.stream_id) == 0)
        (void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                        NGHTTP2_NO_ERROR);
    return 0;
}

static int sse__h2_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *ud)
{
    struct sse__conn *c = ud;
    struct sse__h2s *h = sse__h2_stream(c, id);
    if (!h)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    int reason = (error_code == NGHTTP2_NO_ERROR && (h->hflags & SSE__H2S_END)) ? SSE_CLOSE_LOCAL
                                                                                : SSE_CLOSE_PEER;
    sse__h2s_gone(h, reason);
    sse__h2s_free(c, h);
    return 0;
}

/* ---------------------------------------------------------------- output */

/* Room for one more piece (the array grows to SSE__H2_PIECES and is kept). */
static int sse__h2_piece_room(struct sse__h2 *h2, uint32_t more)
{
    if (h2->npc + more <= h2->cap)
        return 0;
    uint32_t ncap = h2->cap ? h2->cap : 8;
    while (ncap < h2->npc + more)
        ncap *= 2;
    if (ncap > SSE__H2_PIECES)
        return -1;
    struct sse__h2piece *np = sse__realloc(h2->pc, ncap * sizeof(*np));
    if (!np)
        return -1;
    h2->pc = np;
    h2->cap = ncap;
    return 0;
}

/* Copy control bytes into the batch. */
static int sse__h2_put_ctl(struct sse__h2 *h2, const void *data, size_t len)
{
    if (h2->ctl_len + len > h2->ctl_cap) {
        size_t ncap = h2->ctl_cap ? h2->ctl_cap : 256;
        while (ncap < h2->ctl_len + len)
            ncap *= 2;
        char *nb = sse__realloc(h2->ctl, ncap);
        if (!nb)
            return -1;
        h2->ctl = nb;
        h2->ctl_cap = ncap;
    }
    memcpy(h2->ctl + h2->ctl_len, data, len);
    struct sse__h2piece *last = h2->npc ? &h2->pc[h2->npc - 1] : NULL;
    if (last && !last->f && last->off + last->len == h2->ctl_len) {
        last->len += (uint32_t)len; /* contiguous control bytes: one buffer */
    } else {
        if (sse__h2_piece_room(h2, 1))
            return -1;
        h2->pc[h2->npc++] = (struct sse__h2piece){NULL, (uint32_t)h2->ctl_len, (uint32_t)len};
    }
    h2->ctl_len += len;
    h2->out += len;
    return 0;
}

static ssize_t sse__h2_send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                               void *ud)
{
    (void)ng, (void)flags;
    struct sse__h2 *h2 = ((struct sse__conn *)ud)->h2;
    if (h2->npc && (h2->npc + 1 > SSE__H2_PIECES || h2->out + len > SSE__H2_BATCH_BYTES))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (sse__h2_put_ctl(h2, data, len))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

/* A DATA frame: its 9-byte header is copied, its payload referenced from the stream's frames. */
static int sse__h2_send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                                size_t length, nghttp2_data_source *source, void *ud)
{
    (void)ng, (void)frame;
    struct sse__conn *c = ud;
    struct sse__h2 *h2 = c->h2;
    struct sse__h2s *h = source->ptr;
    struct sse_stream *st = &h->st;
    uint32_t need = 0;
    size_t left = length, off = st->qoff;
    for (uint32_t i = 0; i < st->qcount && left; i++) {
        size_t fl = sse_frame_len(sse__stream_at(st, i)) - off;
        off = 0;
        if (!fl)
            continue;
        need++;
        left -= fl < left ? fl : left;
    }
    if (h2->npc && (h2->npc + need + 1 > SSE__H2_PIECES || h2->out + length > SSE__H2_BATCH_BYTES))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (sse__h2_piece_room(h2, need + 1) || sse__h2_put_ctl(h2, framehd, 9))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    left = length;
    off = st->qoff;
    for (uint32_t i = 0; i < st->qcount && left; i++) {
        sse_frame *f = sse__stream_at(st, i);
        size_t fl = sse_frame_len(f) - off;
        if (fl) {
            size_t take = fl < left ? fl : left;
            h2->pc[h2->npc++] =
                (struct sse__h2piece){sse_frame_ref(f), (uint32_t)off, (uint32_t)take};
            left -= take;
        }
        off = 0;
    }
    h2->out += length;
    sse__stream_consume(st, length); /* the queue lets go; the pieces hold the references */
    return 0;
}

/* n bytes of the batch are written: release the pieces they finish. */
static void sse__h2_consumed(struct sse__h2 *h2, size_t n)
{
    h2->out -= n;
    while (n && h2->head < h2->npc) {
        struct sse__h2piece *p = &h2->pc[h2->head];
        size_t left = p->len - h2->hoff;
        if (n < left) {
            h2->hoff += (uint32_t)n;
            return;
        }
        n -= left;
        sse_frame_unref(p->f);
        h2->head++;
        h2->hoff = 0;
    }
    if (h2->head == h2->npc)
        h2->head = h2->npc = h2->hoff = 0, h2->ctl_len = 0;
}

static unsigned sse__h2_bufs(struct sse__h2 *h2, uv_buf_t *bufs, size_t *total)
{
    unsigned n = 0;
    size_t sum = 0;
    for (uint32_t i = h2->head; i < h2->npc; i++) {
        const struct sse__h2piece *p = &h2->pc[i];
        size_t skip = i == h2->head ? h2->hoff : 0;
        const char *base = p->f ? sse_frame_data(p->f) : h2->ctl;
        bufs[n++] = uv_buf_init((char *)base + p->off + skip, (unsigned)(p->len - skip));
        sum += p->len - skip;
    }
    *total = sum;
    return n;
}

/* Every stream is done and the session wants nothing more: shut down, linger for the EOF. */
static void sse__h2_finish(struct sse__conn *c, int reason)
{
    sse__h2_close_streams(c, reason);
    if ((c->flags & SSE__F_EOF) || sse__conn_tp(c)->shutdown(c) != 0) {
        sse__conn_close(c, reason);
        return;
    }
    c->st.reason = (uint8_t)reason;
    c->state = SSE__ST_LINGER;
    c->t_mark = sse__now(c->srv);
}

void sse__h2_flush(struct sse__conn *c)
{
    struct sse__h2 *h2 = c->h2;
    sse_server *s = c->srv;
    uv_buf_t bufs[SSE__H2_PIECES];
    if (c->state != SSE__ST_H2 || (c->flags & SSE__F_WRITING))
        return;
    if (h2->in_ng) { /* an answer given inside nghttp2's callbacks: sent after they return */
        sse__conn_mark_dirty(c);
        return;
    }
    for (;;) {
        if (h2->npc == 0) {
            h2->in_ng = 1;
            int rv = nghttp2_session_send(h2->ng);
            h2->in_ng = 0;
            if (c->state != SSE__ST_H2)
                return;
            if (rv != 0) {
                sse__log(s, SSE_LOG_DEBUG, "HTTP/2 send: %s", nghttp2_strerror(rv));
                sse__conn_kill(c, SSE_CLOSE_ERROR);
                return;
            }
            if (h2->npc == 0)
                break;
        }
        size_t total;
        unsigned n = sse__h2_bufs(h2, bufs, &total);
        int r = sse__conn_tp(c)->try_writev(c, bufs, n);
        s->st.writes_total++;
        if (r < 0) {
            sse__conn_kill(c, sse__write_error_close(r));
            return;
        }
        if (r > 0) {
            c->t_act = sse__now(s);
            sse__h2_consumed(h2, (size_t)r);
        }
        if ((size_t)r == total)
            continue;
        n = sse__h2_bufs(h2, bufs, &total);
        if (sse__conn_tp(c)->writev(c, bufs, n) != 0) {
            sse__conn_kill(c, SSE_CLOSE_ERROR);
            return;
        }
        s->st.writes_total++;
        c->flags |= SSE__F_WRITING;
        c->inflight = (uint32_t)total;
        return;
    }
    if (!nghttp2_session_want_read(h2->ng) && !nghttp2_session_want_write(h2->ng))
        sse__h2_finish(c, h2->dead ? SSE_CLOSE_ERROR : SSE_CLOSE_LOCAL);
}

void sse__h2_write_done(struct sse__conn *c, int status)
{
    c->flags &= (uint16_t)~SSE__F_WRITING;
    if (c->state == SSE__ST_CLOSED)
        return;
    if (status < 0) {
        sse__conn_close(c, sse__write_error_close(status));
        return;
    }
    c->t_act = sse__now(c->srv);
    sse__h2_consumed(c->h2, c->inflight);
    c->inflight = 0;
    if (c->state == SSE__ST_H2)
        sse__h2_flush(c);
}

/* ---------------------------------------------------------------- the connection */

/* The peer broke the protocol or flooded: GOAWAY, read no more, close once it is written. */
static void sse__h2_terminate(struct sse__conn *c, int rv)
{
    struct sse__h2 *h2 = c->h2;
    sse__log(c->srv, SSE_LOG_DEBUG, "HTTP/2: %s: GOAWAY", nghttp2_strerror(rv));
    uint32_t code =
        h2->calm || rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
    h2->dead = 1;
    if (nghttp2_session_terminate_session(h2->ng, code) != 0)
        sse__conn_kill(c, SSE_CLOSE_ERROR);
    sse__conn_mark_dirty(c);
}

void sse__h2_on_read(struct sse__conn *c, char *data, ssize_t n)
{
    if (c->state == SSE__ST_CLOSED)
        return;
    if (n < 0) {
        c->flags |= SSE__F_EOF;
        sse__conn_tp(c)->read_stop(c);
        sse__conn_close(c, c->state == SSE__ST_LINGER ? c->st.reason : SSE_CLOSE_PEER);
        return;
    }
    struct sse__h2 *h2 = c->h2;
    if (c->state != SSE__ST_H2 || h2->dead)
        return; /* read only to see the EOF */
    h2->in_ng = 1;
    ssize_t rv = nghttp2_session_mem_recv(h2->ng, (const uint8_t *)data, (size_t)n);
    h2->in_ng = 0;
    if (c->state != SSE__ST_H2)
        return;
    if (rv < 0)
        sse__h2_terminate(c, (int)rv);
    sse__h2_flush(c);
}

void sse__conn_start_h2(struct sse__conn *c)
{
    sse_server *s = c->srv;
    struct sse__h2 *h2 = sse__calloc(1, sizeof(*h2));
    c->flags |= SSE__F_H2;
    c->state = SSE__ST_H2;
    c->h2 = h2;
    if (!h2) {
        sse__conn_close(c, SSE_CLOSE_ERROR);
        return;
    }
    h2->t_idle = h2->ctl_t = h2->rst_t = sse__now(s);
    h2->rst_milli = (uint64_t)s->o.h2_reset_burst * 1000;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_mem mem = {h2, sse__ng_malloc, sse__ng_free, sse__ng_calloc, sse__ng_realloc};
    int rv = nghttp2_session_callbacks_new(&cbs);
    if (!rv)
        rv = nghttp2_option_new(&opt);
    if (!rv) {
        nghttp2_session_callbacks_set_send_callback(cbs, sse__h2_send_cb);
        nghttp2_session_callbacks_set_send_data_callback(cbs, sse__h2_send_data_cb);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, sse__h2_on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, sse__h2_on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, sse__h2_on_data);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, sse__h2_on_frame_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, sse__h2_on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, sse__h2_on_frame_send);
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, sse__h2_on_begin_frame);
        nghttp2_option_set_no_closed_streams(opt, 1);
        nghttp2_option_set_max_outbound_ack(opt, SSE__H2_MAX_OUTBOUND_ACK);
        nghttp2_option_set_max_settings(opt, 32);
        nghttp2_option_set_max_continuations(opt, SSE__H2_MAX_CONTINUATIONS);
        nghttp2_option_set_stream_reset_rate_limit(opt, s->o.h2_reset_burst, s->o.h2_reset_rate);
        /* our encoder keeps no dynamic table: the few response heads it encodes are mostly
           static-table fields, and a table would keep copies of them per connection (~270 B;
           docs/performance/h2.md). h2_header_table_size bounds the peer's table (decoding). */
        nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
        rv = nghttp2_session_server_new3(&h2->ng, cbs, c, opt, &mem);
    }
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    h2->fb = h2->big[0]; /* the one big block a new session makes: its frame buffer */
    if (!rv) {
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->o.h2_max_streams},
            {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, s->o.h2_header_table_size},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)s->o.max_header_bytes},
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        };
        rv = nghttp2_submit_settings(h2->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    }
    if (rv) {
        sse__log(s, SSE_LOG_ERROR, "HTTP/2 session: %s", nghttp2_strerror(rv));
        sse__conn_close(c, SSE_CLOSE_ERROR);
        return;
    }
    sse__conn_mark_dirty(c); /* our SETTINGS go out at the walk */
}

void sse__h2_close_streams(struct sse__conn *c, int reason)
{
    if (!c->h2)
        return;
    for (struct sse__h2s *h = c->h2->streams; h; h = h->next)
        sse__h2s_gone(h, reason);
}

void sse__h2_free(struct sse__conn *c)
{
    struct sse__h2 *h2 = c->h2;
    if (!h2)
        return;
    nghttp2_session_del(h2->ng); /* runs none of our callbacks */
    while (h2->streams)
        sse__h2s_free(c, h2->streams);
    for (uint32_t i = h2->head; i < h2->npc; i++)
        sse_frame_unref(h2->pc[i].f);
    sse__free(h2->pc);
    sse__free(h2->ctl);
    sse__free(h2);
    c->h2 = NULL;
}

void sse__h2_sweep(struct sse__conn *c, uint32_t now)
{
    sse_server *s = c->srv;
    struct sse__h2 *h2 = c->h2;
    if ((c->flags & SSE__F_WRITING) && now - c->t_act > s->o.write_timeout_ms) {
        sse__conn_close(c, SSE_CLOSE_TIMEOUT); /* the socket takes nothing: every stream goes */
        return;
    }
    if (h2->dead)
        return;
    for (struct sse__h2s *h = h2->streams; h; h = h->next) {
        struct sse_stream *st = &h->st;
        if (h->in) {
            if (now - h->t_open > s->o.request_timeout_ms)
                sse__h2_reject(st, 408);
        } else if (sse__h2_stream_open(st)) {
            if (st->qbytes) {
                if (now - h->t_act > s->o.write_timeout_ms) /* its window stays shut */
                    sse__h2_stream_end(st, SSE_CLOSE_TIMEOUT);
            } else if (s->o.heartbeat_ms != UINT32_MAX && now - h->t_act >= s->o.heartbeat_ms) {
                if (sse__stream_enqueue(st, sse_frame_ref(s->hb)) != 0)
                    sse_frame_unref(s->hb);
            }
        }
    }
    if (!h2->streams && !h2->going && now - h2->t_idle > s->o.keepalive_timeout_ms) {
        h2->going = 1; /* idle: say goodbye */
        (void)nghttp2_session_terminate_session(h2->ng, NGHTTP2_NO_ERROR);
        sse__conn_mark_dirty(c);
    }
    sse__h2_trim(c, now);
}

void sse__h2_shutdown(struct sse__conn *c)
{
    struct sse__h2 *h2 = c->h2;
    if (h2->going)
        return;
    h2->going = 1;
    for (struct sse__h2s *h = h2->streams; h; h = h->next)
        if (sse__h2_stream_open(&h->st))
            sse__h2_stream_end(&h->st, SSE_CLOSE_LOCAL);
    (void)nghttp2_submit_goaway(h2->ng, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(h2->ng), NGHTTP2_NO_ERROR,
                                NULL, 0);
    sse__conn_mark_dirty(c);
}
