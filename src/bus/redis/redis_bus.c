/*
 * redis_bus.c: the Redis bus (include/sse/bus_redis.h; the design is in docs/REDIS.md).
 *
 * Per shard (one Redis instance, one stream key) two hiredis connections on the hub's loop:
 *   cmd  XADD key [MAXLEN ~ N] * m <message>   (one per publish; replies come in order)
 *   rd   XREAD COUNT 256 BLOCK <ms> STREAMS key <last id>, reissued after every reply
 * The reader hands each entry to the hub's receive callback and remembers its id first, so a
 * reconnect resumes exactly after the last entry handed over: nothing is skipped or repeated.
 *
 * Faults: a connection that fails or drops is retried on a timer with exponential backoff
 * (100 ms doubling to 3 s) and +-50% jitter, so that nodes do not reconnect in lockstep. XADDs
 * in flight when the command connection drops fail (the hub answers 503; the entry may still
 * have been written, in which case it is delivered like any other). A watchdog drops a
 * connection whose XREAD or oldest XADD is overdue (a silent network), which then reconnects.
 *
 * Not owned here: the reply checks (redis_entry.c), what a message means (the hub).
 */
#include "bus/redis/redis_entry.h"
#include "common/alloc.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <sse/bus_redis.h>
#include <sse/log.h>
#include <sse/store.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

enum {
    MAX_SHARDS = 64,
    READ_COUNT = 256,      /* entries per XREAD reply */
    BACKOFF_MIN_MS = 100,  /* first retry */
    BACKOFF_MAX_MS = 3000, /* retries never wait longer (plus jitter) */
    OVERDUE_MS = 5000,     /* a reply this late (beyond BLOCK) means a dead connection */
    CONNECT_TIMEOUT_MS = 3000,
    WATCHDOG_MS = 1000,      /* how often overdue replies are looked for */
    LOAD_PAGE = 1000,        /* entries per XRANGE page when loading the history */
    LOAD_TIMEOUT_S = 5,      /* the start-up load's connect and command timeout */
    LOAD_MAX_PAGES = 100000, /* at most 100M entries loaded: a bound, not a limit in practice */
};

struct redis_bus;

/* One XADD waiting for Redis's reply (a FIFO per shard: Redis replies in order). */
struct pub {
    struct pub *next;
    struct shard *s;
    sse_bus_publish_cb done;
    void *ud;
    size_t len;
    uint64_t sent_ms;
};

struct shard {
    struct redis_bus *b;
    int idx;
    struct sse__redis_url url;
    char key[256];
    redisAsyncContext *cmd, *rd; /* NULL: not connected (a retry is scheduled) */
    int cmd_up, rd_up;           /* the connect callback reported success */
    int reading;                 /* an XREAD (or the tail lookup) is in flight on rd */
    uint64_t read_sent_ms;
    uint64_t cmd_opened_ms, rd_opened_ms; /* when each connect began */
    char last_id[SSE__REDIS_ID_MAX + 1];  /* the last entry handed over; "" = not known yet */
    uv_timer_t retry;                     /* reconnect (and re-read after an error reply) */
    unsigned fails;                       /* consecutive failures: the backoff exponent */
    int reread;                           /* the retry timer re-issues XREAD, not a connect */
    struct pub *head, *tail;              /* XADDs in flight, oldest first */
    char maxlen[24];
};

struct redis_bus {
    sse_bus base;
    sse_bus_redis_options o;
    uv_loop_t *loop;
    struct shard *shards;
    size_t n;
    sse_bus_receive_cb receive;
    void *receive_ud;
    int started, closing;
    size_t inflight_bytes;
    uv_timer_t watchdog;
    int handles_open; /* timers still to be closed at close */
    sse_bus_close_cb close_done;
    void *close_ud;
    char block[16];
    sse_bus_redis_stats st;
};

static uint64_t now_ms(struct redis_bus *b)
{
    uv_update_time(b->loop);
    return uv_now(b->loop);
}

static void logf_(struct redis_bus *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(struct redis_bus *b, int level, const char *fmt, ...)
{
    if (!b->o.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    b->o.log(b->o.log_data, level, line);
}

/* ---------------------------------------------------------------- connections */

/*
 * hiredis on libuv. Our own adapter rather than <hiredis/adapters/libuv.h>: 0.14's ignores a
 * poll error (status < 0), so a connect refused with EPOLLERR never completes and the context
 * hangs forever. Here an error wakes hiredis for both directions, so it finds the socket error,
 * reports it and frees the context.
 */
struct uvev {
    redisAsyncContext *ac; /* NULL once hiredis has let go (cleanup) */
    uv_poll_t poll;
    int events;
};

static void ev_poll(uv_poll_t *h, int status, int events)
{
    struct uvev *p = h->data;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void ev_update(struct uvev *p, int add, int ev)
{
    p->events = add ? p->events | ev : p->events & ~ev;
    if (p->events)
        uv_poll_start(&p->poll, p->events, ev_poll);
    else
        uv_poll_stop(&p->poll);
}

static void ev_add_read(void *d)
{
    ev_update(d, 1, UV_READABLE);
}

static void ev_del_read(void *d)
{
    ev_update(d, 0, UV_READABLE);
}

static void ev_add_write(void *d)
{
    ev_update(d, 1, UV_WRITABLE);
}

static void ev_del_write(void *d)
{
    ev_update(d, 0, UV_WRITABLE);
}

static void ev_closed(uv_handle_t *h)
{
    sse__free(h->data);
}

static void ev_cleanup(void *d)
{
    struct uvev *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct uvev *p = sse__calloc(1, sizeof(*p));
    if (!p)
        return -1;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        sse__free(p);
        return -1;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = p;
    return 0;
}

static void connect_shard(struct shard *s);
static void issue_read(struct shard *s);

static void retry_cb(uv_timer_t *t);

/* Schedule the retry timer: a reconnect (reread = 0) or a new XREAD after an error reply. */
static void schedule(struct shard *s, int reread)
{
    struct redis_bus *b = s->b;
    if (b->closing)
        return;
    /* A reconnect subsumes a pending re-read; a re-read never delays a reconnect. */
    if (uv_is_active((uv_handle_t *)&s->retry) && (reread || !s->reread))
        return;
    unsigned shift = s->fails < 5 ? s->fails : 5;
    uint64_t base = (uint64_t)BACKOFF_MIN_MS << shift;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)now_ms(b) * 2654435761u;
    uint64_t wait = base / 2 + r % (base + 1); /* base +- 50% */
    s->fails++;
    s->reread = reread;
    uv_timer_start(&s->retry, retry_cb, wait, 0);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    struct shard *s = c->data;
    struct redis_bus *b = s->b;
    int is_cmd = c == s->cmd;
    if (status != REDIS_OK) {
        /* The first failure is worth a warning; the retries of an outage are not. */
        logf_(b, s->fails <= 1 ? SSE_LOG_WARN : SSE_LOG_DEBUG,
              "redis %s:%d: %s connection failed: %s", s->url.host, s->url.port,
              is_cmd ? "command" : "reader", c->errstr[0] ? c->errstr : "error");
        if (is_cmd)
            s->cmd = NULL, s->cmd_up = 0; /* hiredis frees the context after this callback */
        else
            s->rd = NULL, s->rd_up = 0, s->reading = 0;
        schedule(s, 0);
        return;
    }
    if (is_cmd)
        s->cmd_up = 1;
    else
        s->rd_up = 1;
    if (s->cmd_up && s->rd_up) {
        if (s->fails)
            logf_(b, SSE_LOG_INFO, "redis %s:%d: connected", s->url.host, s->url.port);
        s->fails = 0;
    }
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    struct shard *s = c->data;
    struct redis_bus *b = s->b;
    int is_cmd = c == s->cmd;
    if (is_cmd)
        s->cmd = NULL, s->cmd_up = 0;
    else if (c == s->rd)
        s->rd = NULL, s->rd_up = 0, s->reading = 0;
    else
        return; /* a context already given up (its connect failed) */
    if (b->closing)
        return;
    logf_(b, SSE_LOG_WARN, "redis %s:%d: %s connection lost%s%s: reconnecting", s->url.host,
          s->url.port, is_cmd ? "command" : "reader", status != REDIS_OK ? ": " : "",
          status != REDIS_OK && c->errstr[0] ? c->errstr : "");
    b->st.reconnects++;
    schedule(s, 0);
}

/* The reply to AUTH or SELECT: an error closes the connection (retried with backoff). */
static void on_setup(redisAsyncContext *c, void *reply, void *priv)
{
    struct shard *s = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ERROR)
        return;
    logf_(s->b, SSE_LOG_ERROR, "redis %s:%d: %s", s->url.host, s->url.port,
          r->str ? r->str : "AUTH/SELECT refused");
    redisAsyncDisconnect(c);
}

/* AUTH and SELECT, queued before anything else on a new connection. */
static int setup(struct shard *s, redisAsyncContext *ac)
{
    char db[16];
    if (s->url.pass[0]) {
        const char *argv[3] = {"AUTH", s->url.user[0] ? s->url.user : s->url.pass, s->url.pass};
        if (redisAsyncCommandArgv(ac, on_setup, s, s->url.user[0] ? 3 : 2, argv, NULL) != REDIS_OK)
            return -1;
    }
    if (s->url.db) {
        snprintf(db, sizeof(db), "%d", s->url.db);
        const char *argv[2] = {"SELECT", db};
        if (redisAsyncCommandArgv(ac, on_setup, s, 2, argv, NULL) != REDIS_OK)
            return -1;
    }
    return 0;
}

static redisAsyncContext *open_ctx(struct shard *s)
{
    struct redis_bus *b = s->b;
    redisAsyncContext *ac = redisAsyncConnect(s->url.host, s->url.port);
    if (!ac)
        return NULL;
    if (ac->err) {
        logf_(b, SSE_LOG_WARN, "redis %s:%d: %s", s->url.host, s->url.port, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    if (ev_attach(ac, b->loop)) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (setup(s, ac)) {
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* Open whichever of the two connections is missing; the reader starts reading at once. */
static void connect_shard(struct shard *s)
{
    if (s->b->closing)
        return;
    if (!s->cmd) {
        s->cmd = open_ctx(s);
        s->cmd_opened_ms = now_ms(s->b);
    }
    if (!s->rd) {
        s->rd = open_ctx(s);
        s->rd_opened_ms = now_ms(s->b);
        if (s->rd)
            issue_read(s);
    }
    if (!s->cmd || !s->rd)
        schedule(s, 0);
}

static void retry_cb(uv_timer_t *t)
{
    struct shard *s = t->data;
    if (s->reread && s->rd) {
        s->reread = 0;
        issue_read(s);
        return;
    }
    s->reread = 0;
    connect_shard(s);
}

/* Let go of one of s's connections for a redirection: cur, whose callback is running, closes
   once its replies are in; the other is freed now (its XREAD may be blocked on the old node for
   a whole BLOCK period; its XADDs fail, as they would with MOVED). A reconnect follows. */
static void let_go(struct shard *s, redisAsyncContext *cur, int is_cmd)
{
    redisAsyncContext *c = is_cmd ? s->cmd : s->rd;
    if (!c)
        return;
    if (c == cur) {
        redisAsyncDisconnect(c); /* on_disconnect schedules the reconnect */
        return;
    }
    if (is_cmd)
        s->cmd = NULL, s->cmd_up = 0;
    else
        s->rd = NULL, s->rd_up = 0, s->reading = 0;
    redisAsyncFree(c); /* on_disconnect no longer recognises it */
    schedule(s, 0);
}

/*
 * A Redis Cluster redirection in an error reply (cur: the context whose callback runs): MOVED
 * points the shard at the slot's master (both connections are reopened there); ASK (a slot
 * being migrated) is not followed: the command is retried later, when MOVED will have taken
 * over. Returns 1 if r was a redirection.
 */
static int redirected(struct shard *s, redisAsyncContext *cur, const redisReply *r)
{
    char host[sizeof(s->url.host)];
    int port;
    if (!r || r->type != REDIS_REPLY_ERROR || !r->str)
        return 0;
    int kind = sse__redis_redirect(r->str, r->len, host, sizeof(host), &port);
    if (kind != 1)
        return kind == 2;
    if (strcmp(host, s->url.host) == 0 && port == s->url.port)
        return 1;
    logf_(s->b, SSE_LOG_INFO, "redis %s: moved from %s:%d to %s:%d", s->key, s->url.host,
          s->url.port, host, port);
    memcpy(s->url.host, host, sizeof(host));
    s->url.port = port;
    s->fails = 0;
    let_go(s, cur, 1);
    let_go(s, cur, 0);
    return 1;
}

/* ---------------------------------------------------------------- the reader */

struct read_ctx {
    struct shard *s;
    int stop;
};

static int on_entry(void *ud, const struct sse__redis_entry *e)
{
    struct read_ctx *rc = ud;
    struct shard *s = rc->s;
    struct redis_bus *b = s->b;
    /* Remember the id first: whatever the hub does with the entry, it is never read again. */
    memcpy(s->last_id, e->id, e->id_len);
    s->last_id[e->id_len] = '\0';
    if (!e->ok) {
        b->st.skipped++;
        logf_(b, SSE_LOG_WARN, "redis %s: entry %s skipped: %s", s->key, s->last_id, e->why);
        return 0;
    }
    b->st.received++;
    b->receive(b->receive_ud, e->msg, e->len, 0);
    if (b->closing) {
        rc->stop = 1;
        return 1;
    }
    return 0;
}

static void on_xread(redisAsyncContext *c, void *reply, void *priv)
{
    struct shard *s = priv;
    struct redis_bus *b = s->b;
    redisReply *r = reply;
    if (!r || b->closing)
        return; /* the connection is gone: on_disconnect reconnects, the read resumes */
    s->reading = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!redirected(s, c, r))
            logf_(b, SSE_LOG_ERROR, "redis %s: XREAD: %s", s->key, r->str ? r->str : "error");
        schedule(s, 1);
        return;
    }
    struct read_ctx rc = {s, 0};
    size_t skipped = 0;
    int n = sse__redis_xread(r, b->o.max_message, on_entry, &rc, &skipped);
    if (skipped) {
        b->st.skipped += skipped;
        logf_(b, SSE_LOG_WARN, "redis %s: %zu entries without a valid id skipped", s->key, skipped);
    }
    if (n < 0) {
        logf_(b, SSE_LOG_ERROR, "redis %s: XREAD: unexpected reply", s->key);
        schedule(s, 1);
        return;
    }
    if (rc.stop || b->closing)
        return;
    s->fails = 0;
    issue_read(s);
}

/* The newest entry id, when the reader must start at the end of the stream ("$" would lose what
   is added between two XREADs). */
static void on_tail(redisAsyncContext *c, void *reply, void *priv)
{
    struct shard *s = priv;
    redisReply *r = reply;
    if (!r || s->b->closing)
        return;
    s->reading = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        memcpy(s->last_id, "0-0", 4);
    } else if (r->type == REDIS_REPLY_ARRAY && r->element[0]->type == REDIS_REPLY_ARRAY &&
               r->element[0]->elements >= 1 &&
               r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
               r->element[0]->element[0]->len <= SSE__REDIS_ID_MAX) {
        memcpy(s->last_id, r->element[0]->element[0]->str, r->element[0]->element[0]->len);
        s->last_id[r->element[0]->element[0]->len] = '\0';
    } else {
        if (!redirected(s, c, r))
            logf_(s->b, SSE_LOG_ERROR, "redis %s: XREVRANGE: %s", s->key,
                  r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
        schedule(s, 1);
        return;
    }
    issue_read(s);
}

static void issue_read(struct shard *s)
{
    struct redis_bus *b = s->b;
    if (!s->rd || s->reading || b->closing || !b->started)
        return;
    int rc;
    if (!s->last_id[0]) {
        const char *argv[6] = {"XREVRANGE", s->key, "+", "-", "COUNT", "1"};
        rc = redisAsyncCommandArgv(s->rd, on_tail, s, 6, argv, NULL);
    } else {
        char count[16];
        snprintf(count, sizeof(count), "%d", READ_COUNT);
        const char *argv[8] = {"XREAD",  "COUNT",   count,  "BLOCK",
                               b->block, "STREAMS", s->key, s->last_id};
        rc = redisAsyncCommandArgv(s->rd, on_xread, s, 8, argv, NULL);
    }
    if (rc != REDIS_OK) {
        schedule(s, 1);
        return;
    }
    s->reading = 1;
    s->read_sent_ms = now_ms(b);
}

/* Give up a connection that hangs (called from a timer, never inside a hiredis callback):
   freeing it fails what is in flight on it; a reconnect follows. */
static void drop(struct shard *s, int is_cmd, const char *why)
{
    struct redis_bus *b = s->b;
    redisAsyncContext *c = is_cmd ? s->cmd : s->rd;
    logf_(b, SSE_LOG_WARN, "redis %s:%d: %s connection: %s: reconnecting", s->url.host, s->url.port,
          is_cmd ? "command" : "reader", why);
    if (is_cmd)
        s->cmd = NULL, s->cmd_up = 0;
    else
        s->rd = NULL, s->rd_up = 0, s->reading = 0;
    b->st.reconnects++;
    redisAsyncFree(c); /* on_disconnect no longer recognises it */
    schedule(s, 0);
}

/* Drop connections whose connect or replies are overdue: a peer that vanished without a FIN. */
static void on_watchdog(uv_timer_t *t)
{
    struct redis_bus *b = t->data;
    uint64_t now = now_ms(b);
    uint64_t block = b->o.block_ms ? b->o.block_ms : 1000;
    for (size_t i = 0; i < b->n; i++) {
        struct shard *s = &b->shards[i];
        if (s->rd && !s->rd_up && now - s->rd_opened_ms > CONNECT_TIMEOUT_MS)
            drop(s, 0, "connect timed out");
        else if (s->rd && s->reading && now - s->read_sent_ms > block + OVERDUE_MS)
            drop(s, 0, "no answer to XREAD");
        if (s->cmd && !s->cmd_up && now - s->cmd_opened_ms > CONNECT_TIMEOUT_MS)
            drop(s, 1, "connect timed out");
        else if (s->cmd && s->head && now - s->head->sent_ms > OVERDUE_MS)
            drop(s, 1, "XADD unanswered");
    }
}

/* ---------------------------------------------------------------- the bus ops */

static int bus_start(sse_bus *bus, sse_bus_receive_cb receive, void *ud)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (b->started || !receive)
        return SSE_EINVAL;
    if (b->closing)
        return SSE_ECLOSED;
    b->receive = receive;
    b->receive_ud = ud;
    b->started = 1;
    for (size_t i = 0; i < b->n; i++)
        connect_shard(&b->shards[i]);
    uv_timer_start(&b->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    return 0;
}

static void on_xadd(redisAsyncContext *c, void *reply, void *priv)
{
    struct pub *p = priv;
    struct shard *s = p->s;
    struct redis_bus *b = s->b;
    redisReply *r = reply;
    /* Replies come in order: p is the head (unlinked from anywhere all the same). */
    struct pub **pp = &s->head, *prev = NULL;
    while (*pp && *pp != p)
        prev = *pp, pp = &(*pp)->next;
    if (*pp) {
        *pp = p->next;
        if (s->tail == p)
            s->tail = prev;
    }
    b->inflight_bytes -= p->len;
    int status = 0;
    if (!r) {
        status = b->closing ? SSE_ECLOSED : SSE_EIO;
    } else if (r->type != REDIS_REPLY_STRING) {
        status = SSE_EIO;
        if (!redirected(s, c, r))
            logf_(b, SSE_LOG_ERROR, "redis %s: XADD: %s", s->key,
                  r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
    }
    if (status)
        b->st.refused++;
    else
        b->st.published++;
    sse_bus_publish_cb done = p->done;
    void *ud = p->ud;
    sse__free(p);
    done(ud, status);
}

/* The shard of a message: FNV-1a of its first topic (bus.h: u32 length at offset 40). */
static struct shard *shard_of(struct redis_bus *b, const unsigned char *m, size_t len)
{
    if (b->n == 1 || len < SSE_BUS_MSG_HEADER + 4)
        return &b->shards[0];
    uint32_t tl = (uint32_t)m[40] << 24 | (uint32_t)m[41] << 16 | (uint32_t)m[42] << 8 | m[43];
    if (tl > len - SSE_BUS_MSG_HEADER - 4)
        return &b->shards[0];
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t i = 0; i < tl; i++) {
        h ^= m[SSE_BUS_MSG_HEADER + 4 + i];
        h *= 1099511628211ULL;
    }
    return &b->shards[h % b->n];
}

static int bus_publish(sse_bus *bus, const void *msg, size_t len, sse_bus_publish_cb done, void *ud)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (!done || !msg)
        return SSE_EINVAL;
    if (b->closing)
        return SSE_ECLOSED;
    if (len > b->o.max_message)
        return SSE_ELIMIT;
    struct shard *s = shard_of(b, msg, len);
    size_t qmax = b->o.queue_max ? b->o.queue_max : (64u << 20);
    /* Refused unless both connections are up: without the reader the update could be stored
       but would not come back, and its publisher would wait for as long as the reader is down. */
    if (!s->cmd || !s->cmd_up || !s->rd || !s->rd_up || b->inflight_bytes + len > qmax) {
        b->st.refused++;
        return SSE_EBUSY;
    }
    struct pub *p = sse__calloc(1, sizeof(*p));
    if (!p)
        return SSE_ENOMEM;
    p->s = s;
    p->done = done;
    p->ud = ud;
    p->len = len;
    p->sent_ms = now_ms(b);
    const char *argv[8];
    size_t argl[8];
    int n = 0;
    argv[n++] = "XADD";
    argv[n++] = s->key;
    if (b->o.max_len) {
        argv[n++] = "MAXLEN";
        argv[n++] = "~";
        argv[n++] = s->maxlen;
    }
    argv[n++] = "*";
    argv[n++] = "m";
    argv[n++] = msg;
    for (int i = 0; i < n; i++)
        argl[i] = strlen(argv[i]);
    argl[n - 1] = len;
    if (redisAsyncCommandArgv(s->cmd, on_xadd, p, n, argv, argl) != REDIS_OK) {
        sse__free(p);
        b->st.refused++;
        return SSE_EBUSY;
    }
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    b->inflight_bytes += len;
    return 0;
}

static void free_bus(struct redis_bus *b)
{
    sse_bus_close_cb done = b->close_done;
    void *ud = b->close_ud;
    sse__free(b->shards);
    sse__free(b);
    if (done)
        done(ud);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct redis_bus *b = h->data;
    if (--b->handles_open == 0)
        free_bus(b);
}

static void bus_close(sse_bus *bus, sse_bus_close_cb done, void *ud)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (b->closing)
        return;
    b->closing = 1;
    b->close_done = done;
    b->close_ud = ud;
    /* Freeing a context fails its XADDs in flight (on_xadd with NULL: SSE_ECLOSED); hiredis
       defers the free when called from inside one of its callbacks. */
    for (size_t i = 0; i < b->n; i++) {
        struct shard *s = &b->shards[i];
        redisAsyncContext *cmd = s->cmd, *rd = s->rd;
        s->cmd = s->rd = NULL;
        if (cmd)
            redisAsyncFree(cmd);
        if (rd)
            redisAsyncFree(rd);
    }
    b->handles_open = (int)b->n + 1;
    for (size_t i = 0; i < b->n; i++) {
        b->shards[i].retry.data = b;
        uv_close((uv_handle_t *)&b->shards[i].retry, on_handle_closed);
    }
    uv_close((uv_handle_t *)&b->watchdog, on_handle_closed);
}

/* /readyz: every shard has its command and reader connections up (else a reconnect runs). */
static int bus_healthy(const sse_bus *bus, const char **why)
{
    const struct redis_bus *b = (const struct redis_bus *)bus;
    for (size_t i = 0; i < b->n; i++)
        if (!b->shards[i].cmd_up || !b->shards[i].rd_up) {
            *why = "redis connection lost (reconnecting)";
            return 0;
        }
    return 1;
}

static const sse_bus_ops redis_ops = {SSE_BUS_OPS_VERSION, "redis",   bus_start,
                                      bus_publish,         bus_close, bus_healthy};

int sse_bus_redis_new(sse_bus **out, const sse_bus_redis_options *o)
{
    if (!out || !o || !o->loop || !o->urls || o->n_urls == 0 || o->n_urls > MAX_SHARDS)
        return SSE_EINVAL;
    size_t n = o->cluster ? (o->n_shards ? o->n_shards : 16) : o->n_urls;
    if (n > MAX_SHARDS)
        return SSE_EINVAL;
    const char *key = o->key ? o->key : "ssehub:updates";
    if (strlen(key) > 200)
        return SSE_EINVAL;
    struct redis_bus *b = sse__calloc(1, sizeof(*b));
    if (!b)
        return SSE_ENOMEM;
    b->shards = sse__calloc(n, sizeof(*b->shards));
    if (!b->shards) {
        sse__free(b);
        return SSE_ENOMEM;
    }
    b->base.ops = &redis_ops;
    b->o = *o;
    b->o.urls = NULL; /* not kept: parsed below */
    b->o.key = NULL;
    if (!b->o.max_message)
        b->o.max_message = 4u << 20;
    b->loop = o->loop;
    b->n = n;
    snprintf(b->block, sizeof(b->block), "%u", o->block_ms ? o->block_ms : 1000);
    for (size_t i = 0; i < b->n; i++) {
        struct shard *s = &b->shards[i];
        s->b = b;
        s->idx = (int)i;
        /* Cluster: every shard starts at a seed and follows MOVED to its slot's master (a
           cluster has one database: no SELECT). */
        if (sse__redis_url_parse(o->urls[i % o->n_urls], &s->url) || (o->cluster && s->url.db)) {
            sse__free(b->shards);
            sse__free(b);
            return SSE_EINVAL;
        }
        if (o->cluster)
            snprintf(s->key, sizeof(s->key), "%s:{%zu}", key, i);
        else if (b->n == 1)
            snprintf(s->key, sizeof(s->key), "%s", key);
        else
            snprintf(s->key, sizeof(s->key), "%s:%zu", key, i);
        snprintf(s->maxlen, sizeof(s->maxlen), "%zu", o->max_len);
    }
    for (size_t i = 0; i < b->n; i++) {
        uv_timer_init(b->loop, &b->shards[i].retry);
        b->shards[i].retry.data = &b->shards[i];
    }
    uv_timer_init(b->loop, &b->watchdog);
    b->watchdog.data = b;
    *out = &b->base;
    return 0;
}

void sse_bus_redis_get_stats(const sse_bus *bus, sse_bus_redis_stats *out)
{
    const struct redis_bus *b = (const struct redis_bus *)bus;
    *out = b->st;
    out->connected = 1;
    for (size_t i = 0; i < b->n; i++)
        if (!b->shards[i].cmd_up || !b->shards[i].rd_up)
            out->connected = 0;
}

/* ---------------------------------------------------------------- the start-up load */

struct load {
    struct redis_bus *b;
    struct shard *s;
    sse_store *store;
    int err;
    size_t loaded;
};

static int load_entry(void *ud, const struct sse__redis_entry *e)
{
    struct load *l = ud;
    struct shard *s = l->s;
    memcpy(s->last_id, e->id, e->id_len);
    s->last_id[e->id_len] = '\0';
    if (!e->ok) {
        l->b->st.skipped++;
        logf_(l->b, SSE_LOG_WARN, "redis %s: entry %s skipped: %s", s->key, s->last_id, e->why);
        return 0;
    }
    sse_bus_msg *m = NULL;
    sse_frame *frame = NULL;
    int rc = sse_bus_msg_decode(e->msg, e->len, &m);
    if (rc == SSE_EPROTO) {
        l->b->st.skipped++;
        logf_(l->b, SSE_LOG_WARN, "redis %s: entry %s skipped: not a bus message", s->key,
              s->last_id);
        return 0;
    }
    if (!rc && m->no_history) {
        sse_bus_msg_free(m);
        return 0;
    }
    if (!rc)
        rc = sse_frame_new(&frame, m->frame, m->frame_len);
    if (!rc) {
        sse_store_entry se = {0};
        se.id = m->id;
        se.id_len = m->id_len;
        se.topics = m->topics;
        se.n_topics = m->n_topics;
        se.is_private = m->is_private;
        se.frame = frame;
        se.time_ms = m->time_ms;
        rc = sse_store_append(l->store, &se, NULL, NULL);
    }
    sse_frame_unref(frame);
    sse_bus_msg_free(m);
    if (rc) {
        l->err = rc;
        return 1;
    }
    l->loaded++;
    return 0;
}

static int load_shard_at(struct redis_bus *b, struct shard *s, sse_store *store, int *moved)
{
    struct timeval tv = {LOAD_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(s->url.host, s->url.port, tv);
    int rc = 0;
    if (!c)
        return SSE_ENOMEM;
    if (c->err) {
        logf_(b, SSE_LOG_ERROR, "redis %s:%d: %s", s->url.host, s->url.port, c->errstr);
        redisFree(c);
        return SSE_EIO;
    }
    redisSetTimeout(c, tv);
    redisReply *r;
    if (s->url.pass[0]) {
        const char *argv[3] = {"AUTH", s->url.user[0] ? s->url.user : s->url.pass, s->url.pass};
        r = redisCommandArgv(c, s->url.user[0] ? 3 : 2, argv, NULL);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            logf_(b, SSE_LOG_ERROR, "redis %s:%d: AUTH: %s", s->url.host, s->url.port,
                  r && r->str ? r->str : c->errstr);
            rc = r ? SSE_EAUTH : SSE_EIO;
            if (r)
                freeReplyObject(r); /* the error reply */
            goto out;
        }
        freeReplyObject(r);
    }
    if (s->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", s->url.db);
        const char *argv[2] = {"SELECT", db};
        r = redisCommandArgv(c, 2, argv, NULL);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            logf_(b, SSE_LOG_ERROR, "redis %s:%d: SELECT: %s", s->url.host, s->url.port,
                  r && r->str ? r->str : c->errstr);
            rc = r ? SSE_EAUTH : SSE_EIO;
            if (r)
                freeReplyObject(r); /* the error reply */
            goto out;
        }
        freeReplyObject(r);
    }
    struct load l = {b, s, store, 0, 0};
    for (int page = 0; page < LOAD_MAX_PAGES; page++) {
        char start[SSE__REDIS_ID_MAX + 2], count[16];
        snprintf(start, sizeof(start), "(%s", s->last_id); /* exclusive (Redis >= 6.2) */
        snprintf(count, sizeof(count), "%d", LOAD_PAGE);
        const char *argv[6] = {"XRANGE", s->key, s->last_id[0] ? start : "-", "+", "COUNT", count};
        r = redisCommandArgv(c, 6, argv, NULL);
        if (!r) {
            logf_(b, SSE_LOG_ERROR, "redis %s:%d: XRANGE: %s", s->url.host, s->url.port, c->errstr);
            rc = SSE_EIO;
            goto out;
        }
        size_t skipped = 0;
        char host[sizeof(s->url.host)];
        int port;
        if (r->type == REDIS_REPLY_ERROR && r->str &&
            sse__redis_redirect(r->str, r->len, host, sizeof(host), &port) == 1) {
            memcpy(s->url.host, host, sizeof(host)); /* the async connections go there too */
            s->url.port = port;
            *moved = 1;
            freeReplyObject(r);
            goto out;
        }
        int n = sse__redis_entries(r, b->o.max_message, load_entry, &l, &skipped);
        if (n < 0) {
            logf_(b, SSE_LOG_ERROR, "redis %s: XRANGE: %s", s->key,
                  r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
            freeReplyObject(r);
            rc = SSE_EPROTO;
            goto out;
        }
        size_t got = r->elements;
        freeReplyObject(r);
        b->st.skipped += skipped;
        if (l.err) {
            rc = l.err;
            goto out;
        }
        if (got < LOAD_PAGE)
            break;
    }
    if (!s->last_id[0]) /* an empty stream: read from its very start */
        memcpy(s->last_id, "0-0", 4);
    logf_(b, SSE_LOG_INFO, "redis %s:%d %s: %zu updates of history loaded, reading after %s",
          s->url.host, s->url.port, s->key, l.loaded, s->last_id);
out:
    redisFree(c);
    return rc;
}

/* Load one shard, following up to 5 cluster redirections. */
static int load_shard(struct redis_bus *b, struct shard *s, sse_store *store)
{
    s->last_id[0] = '\0'; /* a redirection goes on after what was loaded */
    for (int hop = 0; hop < 5; hop++) {
        int moved = 0;
        int rc = load_shard_at(b, s, store, &moved);
        if (rc || !moved)
            return rc;
    }
    logf_(b, SSE_LOG_ERROR, "redis %s: too many MOVED redirections", s->key);
    return SSE_EPROTO;
}

int sse_bus_redis_load_history(sse_bus *bus, sse_store *store)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (!b || !store || b->started || b->closing)
        return SSE_EINVAL;
    for (size_t i = 0; i < b->n; i++) {
        int rc = load_shard(b, &b->shards[i], store);
        if (rc)
            return rc;
    }
    return 0;
}
