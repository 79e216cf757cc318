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
 * Presence (bus.h): a hash per node ("<shard 0 key>:presence:<node>", entry key -> value) with
 * an expiry, and a sorted set ("<shard 0 key>:nodes") of node ids scored by the wall-clock ms at
 * which each node's registration lapses. Both sit with shard 0 (in a cluster, under its hash
 * tag), on its command connection. Every new command connection first writes the node's whole
 * set again (DEL + HSETs from the hub's dump), since Redis may have restarted without it; a
 * timer refreshes the expiry every third of the TTL. A listing reads the live node ids, then
 * one HGETALL per other node. Node clocks are assumed to agree to well within the TTL.
 *
 * Not owned here: the reply checks (redis_entry.c), what a message means (the hub).
 */
#include "bus/bus_internal.h"
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
#include <time.h>

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
    int asked;             /* re-sent once to the node an ASK redirection named */
    redisAsyncContext *on; /* the connection its XADD waits on (cmd, ask or ask_old) */
    unsigned char msg[];   /* kept until the reply: an ASK needs it sent again */
};

struct shard {
    struct redis_bus *b;
    int idx;
    struct sse__redis_url url;
    char key[256];
    redisAsyncContext *cmd, *rd; /* NULL: not connected (a retry is scheduled) */
    redisAsyncContext *ask;      /* XADDs to the node of the last ASK (slot migration), or NULL */
    redisAsyncContext *ask_rd;   /* the reader's XREAD there (it blocks: a connection of its own) */
    redisAsyncContext *ask_old;  /* a former ask, closing once its XADDs are answered (MOVED, or
                                    an ASK to another node); the watchdog frees it if they are
                                    not: NULL once hiredis has let it go */
    char ask_host[sizeof(((struct sse__redis_url *)0)->host)];
    int ask_port;
    int cmd_up, rd_up; /* the connect callback reported success */
    int reading;       /* an XREAD (or the tail lookup) is in flight on rd */
    int ask_reading;   /* an XREAD is in flight on ask_rd (no other read meanwhile) */
    uint64_t read_sent_ms;
    uint64_t cmd_opened_ms, rd_opened_ms; /* when each connect began */
    unsigned cmd_gen;                     /* counts command connections opened (presence) */
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
    /* presence (shard 0's command connection) */
    sse_bus_presence_dump_cb p_dump; /* NULL: presence not started */
    void *p_ud;
    unsigned p_synced_gen; /* the cmd_gen whose connection holds the whole set; 0: none */
    uv_timer_t p_timer;
    unsigned p_ttl_ms;
    char node_id[17];
    char p_hash[300], p_nodes[300], p_ttl[16];
};

static long long wall_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
static void presence_sync(struct redis_bus *b);

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

/* A connection of an ASK is gone; a read waiting there is issued again (on rd) shortly. */
static void ask_gone(struct shard *s, const redisAsyncContext *c)
{
    if (c == s->ask) {
        s->ask = NULL;
    } else if (c == s->ask_rd) {
        s->ask_rd = NULL;
        s->reading = s->ask_reading = 0;
        schedule(s, 1);
    }
}

static void on_connect(const redisAsyncContext *c, int status)
{
    struct shard *s = c->data;
    struct redis_bus *b = s->b;
    int is_cmd = c == s->cmd;
    if (c == s->ask_old) { /* a failed connect is freed by hiredis without on_disconnect */
        if (status != REDIS_OK)
            s->ask_old = NULL;
        return;
    }
    if (c == s->ask || c == s->ask_rd) { /* what was sent on it fails by its callback */
        if (status != REDIS_OK) {
            logf_(b, SSE_LOG_WARN, "redis %s:%d: connection for ASK failed: %s", s->ask_host,
                  s->ask_port, c->errstr[0] ? c->errstr : "error");
            ask_gone(s, c);
        }
        return;
    }
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
    if (is_cmd && s->idx == 0)
        presence_sync(b);
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
    if (c == s->ask_old) {
        s->ask_old = NULL; /* its answers are in (or failed): hiredis frees it now */
        return;
    }
    if (c == s->ask || c == s->ask_rd) {
        ask_gone(s, c); /* opened again by the next ASK */
        return;
    }
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

static redisAsyncContext *open_ctx_at(struct shard *s, const char *host, int port)
{
    struct redis_bus *b = s->b;
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac)
        return NULL;
    if (ac->err) {
        logf_(b, SSE_LOG_WARN, "redis %s:%d: %s", host, port, ac->errstr);
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

static redisAsyncContext *open_ctx(struct shard *s)
{
    return open_ctx_at(s, s->url.host, s->url.port);
}

/* Open whichever of the two connections is missing; the reader starts reading at once. */
static void connect_shard(struct shard *s)
{
    if (s->b->closing)
        return;
    if (!s->cmd) {
        s->cmd = open_ctx(s);
        s->cmd_opened_ms = now_ms(s->b);
        if (++s->cmd_gen == 0) /* 0 means "never synced" */
            s->cmd_gen = 1;
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

/* The publish connection of an ASK is no longer where XADDs go (cur: the context whose callback
   runs): it closes once what was asked on it is answered, watched as ask_old meanwhile (a node
   that hangs would otherwise keep those publishers waiting). An older one still closing is
   freed now: its XADDs fail (503). */
static void retire_ask(struct shard *s, const redisAsyncContext *cur)
{
    redisAsyncContext *a = s->ask;
    s->ask = NULL;
    if (!a)
        return;
    if (s->ask_old) {
        redisAsyncContext *o = s->ask_old;
        s->ask_old = NULL;
        if (o != cur)
            redisAsyncFree(o); /* on_disconnect no longer recognises it */
        else
            redisAsyncDisconnect(o);
    }
    s->ask_old = a;
    redisAsyncDisconnect(a);
}

/*
 * A Redis Cluster redirection in an error reply (cur: the context whose callback runs): MOVED
 * points the shard at the slot's master (both connections are reopened there). ASK (the slot
 * is being migrated and the key has left): a publisher's XADD is sent again to the importing
 * node (ask_again, from on_xadd); the reader's XREAD is retried a moment later until MOVED takes
 * over, which delays delivery by the migration window and loses nothing (the reader resumes
 * after the last entry it saw). Returns 1 if r was a redirection.
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
    retire_ask(s, cur); /* the migration is over: what was asked there is answered, then
                           it closes */
    if (s->ask_rd) {    /* a read there now would race the reader's next one: dropped unanswered */
        redisAsyncContext *a = s->ask_rd;
        s->ask_rd = NULL;
        s->ask_reading = 0;
        if (a != cur)
            redisAsyncFree(a);
        else
            redisAsyncDisconnect(a);
    }
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

static void on_xread(redisAsyncContext *c, void *reply, void *priv);

/* Open the connection of an ASK (*slot: s->ask or s->ask_rd) to host:port if it is not open. */
static redisAsyncContext *ask_conn(struct shard *s, redisAsyncContext **slot, const char *host,
                                   int port)
{
    if (s->ask_port && (strcmp(host, s->ask_host) || port != s->ask_port)) {
        /* another node: both connections go (what is asked on them is answered first) */
        redisAsyncContext *ar = s->ask_rd;
        s->ask_rd = NULL;
        s->ask_reading = 0;
        retire_ask(s, NULL);
        if (ar)
            redisAsyncFree(ar);
    }
    if (!*slot) {
        *slot = open_ctx_at(s, host, port);
        if (!*slot)
            return NULL;
        memcpy(s->ask_host, host, strlen(host) + 1);
        s->ask_port = port;
        logf_(s->b, SSE_LOG_INFO, "redis %s: ASK: %s at %s:%d during the slot's migration", s->key,
              slot == &s->ask ? "publishing" : "reading", host, port);
    }
    return *slot;
}

/* The reader's XREAD was answered ASK: read once from the importing node (after ASKING). The
   next read goes to rd again, and here again while the migration lasts. 1 if sent. */
static int read_asked(struct shard *s, const redisReply *r)
{
    char host[sizeof(s->ask_host)];
    int port;
    if (!r->str || sse__redis_redirect(r->str, r->len, host, sizeof(host), &port) != 2)
        return 0;
    redisAsyncContext *a = ask_conn(s, &s->ask_rd, host, port);
    if (!a)
        return 0;
    char count[16];
    snprintf(count, sizeof(count), "%d", READ_COUNT);
    const char *asking[1] = {"ASKING"};
    const char *argv[8] = {"XREAD",     "COUNT",   count,  "BLOCK",
                           s->b->block, "STREAMS", s->key, s->last_id};
    if (redisAsyncCommandArgv(a, NULL, NULL, 1, asking, NULL) != REDIS_OK ||
        redisAsyncCommandArgv(a, on_xread, s, 8, argv, NULL) != REDIS_OK)
        return 0;
    s->reading = s->ask_reading = 1;
    s->read_sent_ms = now_ms(s->b);
    return 1;
}

static void on_xread(redisAsyncContext *c, void *reply, void *priv)
{
    struct shard *s = priv;
    struct redis_bus *b = s->b;
    redisReply *r = reply;
    if (!r || b->closing)
        return; /* the connection is gone: on_disconnect reconnects, the read resumes */
    if (c != s->rd && c != s->ask_rd)
        return; /* a connection let go of (a redirection): the reader reads elsewhere now */
    if (c == s->ask_rd)
        s->ask_reading = 0;
    s->reading = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (c == s->rd && read_asked(s, r))
            return;
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
    if (!s->rd || s->reading || s->ask_reading || b->closing || !b->started)
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

static void on_trim(redisAsyncContext *c, void *reply, void *priv)
{
    struct shard *s = priv;
    redisReply *r = reply;
    if (r && !s->b->closing && r->type == REDIS_REPLY_ERROR && !redirected(s, c, r))
        logf_(s->b, SSE_LOG_WARN, "redis %s: XTRIM: %s", s->key, r->str ? r->str : "error");
}

/* The age limit: entries whose id time is older than max_age_ms go (exact MINID: a few entries
   a second, not the ~100-entry nodes an approximate trim waits for). Ids are Redis's clock,
   the bound is this node's: they must agree to well within the limit. */
static void trim_by_age(struct shard *s)
{
    long long t = wall_ms_now() - (long long)s->b->o.max_age_ms;
    if (t <= 0)
        return;
    char minid[32];
    snprintf(minid, sizeof(minid), "%lld-0", t);
    const char *argv[4] = {"XTRIM", s->key, "MINID", minid};
    redisAsyncCommandArgv(s->cmd, on_trim, s, 4, argv, NULL);
}

/* Give up a connection of an ASK that hangs (from the watchdog, never inside a hiredis
   callback): its XADDs fail now (503, through on_xadd with no reply), a read waiting there is
   issued again on rd; the next ASK opens a new one. */
static void drop_ask(struct shard *s, int reader)
{
    redisAsyncContext *a = reader ? s->ask_rd : s->ask;
    logf_(s->b, SSE_LOG_WARN, "redis %s:%d: connection for ASK (%s): no answer: dropped",
          s->ask_host, s->ask_port, reader ? "reading" : "publishing");
    if (reader) {
        s->ask_rd = NULL;
        s->reading = s->ask_reading = 0;
        schedule(s, 1);
    } else {
        s->ask = NULL;
    }
    redisAsyncFree(a); /* on_disconnect no longer recognises it */
}

/* Give up a former ask connection whose XADDs stay unanswered (from the watchdog): they fail. */
static void drop_ask_old(struct shard *s)
{
    redisAsyncContext *a = s->ask_old;
    logf_(s->b, SSE_LOG_WARN,
          "redis %s: the closing connection for ASK has unanswered XADDs: "
          "dropped",
          s->key);
    s->ask_old = NULL;
    redisAsyncFree(a); /* on_disconnect no longer recognises it */
}

/* Drop connections whose connect or replies are overdue: a peer that vanished without a FIN.
   During a slot migration the overdue reply may be awaited on a connection of an ASK (the
   importing node hangs): that one goes, not rd or cmd, which would leave it hanging. */
static void on_watchdog(uv_timer_t *t)
{
    struct redis_bus *b = t->data;
    uint64_t now = now_ms(b);
    uint64_t block = b->o.block_ms ? b->o.block_ms : 1000;
    for (size_t i = 0; i < b->n; i++) {
        struct shard *s = &b->shards[i];
        if (s->ask_rd && s->ask_reading && now - s->read_sent_ms > block + OVERDUE_MS)
            drop_ask(s, 1);
        else if (s->rd && !s->rd_up && now - s->rd_opened_ms > CONNECT_TIMEOUT_MS)
            drop(s, 0, "connect timed out");
        else if (s->rd && s->reading && !s->ask_reading &&
                 now - s->read_sent_ms > block + OVERDUE_MS)
            drop(s, 0, "no answer to XREAD");
        if (b->o.max_age_ms && s->cmd && s->cmd_up)
            trim_by_age(s);
        if (s->cmd && !s->cmd_up && now - s->cmd_opened_ms > CONNECT_TIMEOUT_MS)
            drop(s, 1, "connect timed out");
        else if (s->head && now - s->head->sent_ms > OVERDUE_MS) {
            /* where the oldest XADD waits: a listed XADD's connection is alive (freeing one
               fails, and so unlists, every XADD on it) */
            redisAsyncContext *on = s->head->on;
            if (on && on == s->cmd)
                drop(s, 1, "XADD unanswered");
            else if (on && on == s->ask)
                drop_ask(s, 0); /* at the importing node of a migration */
            else if (on && on == s->ask_old)
                drop_ask_old(s);
        }
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

static void on_xadd(redisAsyncContext *c, void *reply, void *priv);

static int send_xadd(struct shard *s, redisAsyncContext *ac, struct pub *p)
{
    struct redis_bus *b = s->b;
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
    argv[n++] = (const char *)p->msg;
    for (int i = 0; i < n - 1; i++)
        argl[i] = strlen(argv[i]);
    argl[n - 1] = p->len; /* the message: bytes, not a C string */
    if (redisAsyncCommandArgv(ac, on_xadd, p, n, argv, argl) != REDIS_OK)
        return -1;
    p->on = ac;
    return 0;
}

/*
 * An ASK redirection (the stream key's slot is being migrated and the key is already on the
 * importing node): the XADD is sent there once, after ASKING, on a connection kept for that
 * node until MOVED ends the migration. Order holds: once the key has moved, every later XADD
 * of the shard is asked too, in the same order, on the same connection. 1 if sent.
 */
static int ask_again(struct shard *s, struct pub *p, const redisReply *r)
{
    char host[sizeof(s->ask_host)];
    int port;
    if (!r->str || sse__redis_redirect(r->str, r->len, host, sizeof(host), &port) != 2)
        return 0;
    redisAsyncContext *a = ask_conn(s, &s->ask, host, port);
    if (!a)
        return 0;
    const char *asking[1] = {"ASKING"};
    if (redisAsyncCommandArgv(a, NULL, NULL, 1, asking, NULL) != REDIS_OK || send_xadd(s, a, p))
        return 0;
    p->asked = 1;
    s->b->st.asked++;
    return 1;
}

static void on_xadd(redisAsyncContext *c, void *reply, void *priv)
{
    struct pub *p = priv;
    struct shard *s = p->s;
    struct redis_bus *b = s->b;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && !p->asked && !b->closing && ask_again(s, p, r))
        return; /* sent again where the slot is being imported: answered there */
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
    struct pub *p = sse__calloc(1, sizeof(*p) + len);
    if (!p)
        return SSE_ENOMEM;
    p->s = s;
    p->done = done;
    p->ud = ud;
    p->len = len;
    p->sent_ms = now_ms(b);
    memcpy(p->msg, msg, len);
    if (send_xadd(s, s->cmd, p)) {
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

/* ---------------------------------------------------------------- presence */

/* Shard 0's command connection when it is up, else NULL. */
static redisAsyncContext *presence_conn(struct redis_bus *b)
{
    struct shard *s = &b->shards[0];
    return !b->closing && b->p_dump && s->cmd && s->cmd_up ? s->cmd : NULL;
}

/* Replies to presence writes: nothing waits for them; an error is worth a line (and a
   redirection moves shard 0, whose new connection then writes the set again). */
static void on_presence_write(redisAsyncContext *c, void *reply, void *priv)
{
    struct redis_bus *b = priv;
    redisReply *r = reply;
    if (!r || b->closing || r->type != REDIS_REPLY_ERROR)
        return;
    if (!redirected(&b->shards[0], c, r))
        logf_(b, SSE_LOG_WARN, "redis %s: presence: %s", b->p_hash, r->str ? r->str : "error");
}

static void presence_cmd(struct redis_bus *b, redisAsyncContext *c, int argc, const char **argv,
                         const size_t *argl)
{
    if (redisAsyncCommandArgv(c, on_presence_write, b, argc, argv, argl) != REDIS_OK)
        logf_(b, SSE_LOG_WARN, "redis %s: presence: command not sent", b->p_hash);
}

/* PEXPIRE answers 0 when the hash is gone although the connection is not (FLUSHALL, a lost
   key): the set is written again at the next refresh. */
static void on_presence_expire(redisAsyncContext *c, void *reply, void *priv)
{
    struct redis_bus *b = priv;
    redisReply *r = reply;
    if (r && !b->closing && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        b->p_synced_gen = 0;
    else
        on_presence_write(c, reply, priv);
}

/* Register the node (score: when its registration lapses), keep its hash alive, and forget
   nodes whose registration lapsed. */
static void presence_touch(struct redis_bus *b, redisAsyncContext *c)
{
    char until[24], now[24];
    long long t = wall_ms_now();
    snprintf(until, sizeof(until), "%lld", t + (long long)b->p_ttl_ms);
    snprintf(now, sizeof(now), "(%lld", t);
    const char *zadd[4] = {"ZADD", b->p_nodes, until, b->node_id};
    presence_cmd(b, c, 4, zadd, NULL);
    const char *exp[3] = {"PEXPIRE", b->p_hash, b->p_ttl};
    if (redisAsyncCommandArgv(c, on_presence_expire, b, 3, exp, NULL) != REDIS_OK)
        logf_(b, SSE_LOG_WARN, "redis %s: presence: command not sent", b->p_hash);
    const char *gc[4] = {"ZREMRANGEBYSCORE", b->p_nodes, "-inf", now};
    presence_cmd(b, c, 4, gc, NULL);
}

static void presence_put(void *ctx, const char *key, size_t key_len, const char *val,
                         size_t val_len)
{
    struct redis_bus *b = ctx;
    redisAsyncContext *c = presence_conn(b);
    if (!c || !key || !val)
        return;
    const char *argv[4] = {"HSET", b->p_hash, key, val};
    size_t argl[4] = {4, strlen(b->p_hash), key_len, val_len};
    presence_cmd(b, c, 4, argv, argl);
}

/* Write the node's whole set on the current connection (it may be a fresh Redis). */
static void presence_sync(struct redis_bus *b)
{
    redisAsyncContext *c = presence_conn(b);
    if (!c)
        return;
    const char *del[2] = {"DEL", b->p_hash};
    presence_cmd(b, c, 2, del, NULL);
    b->p_dump(b->p_ud, presence_put, b);
    presence_touch(b, c);
    b->p_synced_gen = b->shards[0].cmd_gen;
}

static void on_presence_timer(uv_timer_t *t)
{
    struct redis_bus *b = t->data;
    redisAsyncContext *c = presence_conn(b);
    if (!c)
        return;
    if (b->p_synced_gen != b->shards[0].cmd_gen)
        presence_sync(b);
    else
        presence_touch(b, c);
}

static int presence_start(sse_bus *bus, sse_bus_presence_dump_cb dump, void *ud)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (b->closing)
        return SSE_ECLOSED;
    if (b->p_dump)
        return SSE_EINVAL;
    b->p_dump = dump;
    b->p_ud = ud;
    unsigned every = b->p_ttl_ms / 3 ? b->p_ttl_ms / 3 : 1;
    uv_timer_start(&b->p_timer, on_presence_timer, every, every);
    presence_sync(b);
    return 0;
}

static int presence_set(sse_bus *bus, const char *key, size_t key_len, const char *val,
                        size_t val_len)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (b->closing)
        return SSE_ECLOSED;
    redisAsyncContext *c = presence_conn(b);
    if (!c)
        return 0; /* the next connection writes the whole set */
    if (b->p_synced_gen != b->shards[0].cmd_gen) {
        presence_sync(b); /* includes this change: the dump reads the caller's state */
        return 0;
    }
    if (val) {
        presence_put(b, key, key_len, val, val_len);
    } else {
        const char *argv[3] = {"HDEL", b->p_hash, key};
        size_t argl[3] = {4, strlen(b->p_hash), key_len};
        presence_cmd(b, c, 3, argv, argl);
    }
    return 0;
}

/* A node leaving cleanly removes its set at once rather than letting it expire: the commands
   are written out now, before the connection is freed (no reply is awaited). */
static void presence_leave(struct redis_bus *b)
{
    struct shard *s = &b->shards[0];
    if (!b->p_dump || !s->cmd || !s->cmd_up || (s->cmd->c.flags & REDIS_IN_CALLBACK))
        return;
    const char *del[2] = {"DEL", b->p_hash};
    const char *zrem[3] = {"ZREM", b->p_nodes, b->node_id};
    redisAsyncCommandArgv(s->cmd, NULL, NULL, 2, del, NULL);
    redisAsyncCommandArgv(s->cmd, NULL, NULL, 3, zrem, NULL);
    redisAsyncHandleWrite(s->cmd); /* a non-blocking write of what is buffered */
}

/* One listing: the node ids first, then one HGETALL per other node. */
struct plist {
    struct redis_bus *b;
    sse_bus_presence_each_cb each;
    sse_bus_presence_done_cb done;
    void *ud;
    int pending; /* replies still to come */
    int status;
};

static void plist_settle(struct plist *l)
{
    if (--l->pending > 0)
        return;
    sse_bus_presence_done_cb done = l->done;
    void *ud = l->ud;
    int status = l->status;
    sse__free(l);
    done(ud, status);
}

static void on_presence_hash(redisAsyncContext *c, void *reply, void *priv)
{
    struct plist *l = priv;
    redisReply *r = reply;
    (void)c;
    if (!r) {
        l->status = SSE_EIO;
    } else if (r->type != REDIS_REPLY_ARRAY) {
        l->status = SSE_EPROTO;
        logf_(l->b, SSE_LOG_WARN, "redis %s: presence: HGETALL: %s", l->b->p_nodes,
              r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
    } else {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *k = r->element[i], *v = r->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue; /* not ours: skipped */
            l->each(l->ud, k->str, k->len, v->str, v->len);
        }
    }
    plist_settle(l);
}

static void on_presence_nodes(redisAsyncContext *c, void *reply, void *priv)
{
    struct plist *l = priv;
    struct redis_bus *b = l->b;
    redisReply *r = reply;
    if (!r) {
        l->status = SSE_EIO;
    } else if (r->type != REDIS_REPLY_ARRAY) {
        l->status = SSE_EPROTO;
        logf_(b, SSE_LOG_WARN, "redis %s: presence: ZRANGEBYSCORE: %s", b->p_nodes,
              r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
    } else if (!b->closing) {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len != 16 || !memcmp(e->str, b->node_id, 16))
                continue; /* this node, or not a node id */
            char key[sizeof(b->p_hash)];
            snprintf(key, sizeof(key), "%s:presence:%.16s", b->shards[0].key, e->str);
            const char *argv[2] = {"HGETALL", key};
            if (redisAsyncCommandArgv(c, on_presence_hash, l, 2, argv, NULL) == REDIS_OK)
                l->pending++;
            else
                l->status = SSE_EIO;
        }
    }
    plist_settle(l);
}

static int presence_list(sse_bus *bus, sse_bus_presence_each_cb each, sse_bus_presence_done_cb done,
                         void *ud)
{
    struct redis_bus *b = (struct redis_bus *)bus;
    if (b->closing)
        return SSE_ECLOSED;
    struct shard *s = &b->shards[0];
    if (!s->cmd || !s->cmd_up)
        return SSE_EIO;
    struct plist *l = sse__calloc(1, sizeof(*l));
    if (!l)
        return SSE_ENOMEM;
    *l = (struct plist){b, each, done, ud, 1, 0};
    char now[24];
    snprintf(now, sizeof(now), "%lld", wall_ms_now());
    const char *argv[4] = {"ZRANGEBYSCORE", b->p_nodes, now, "+inf"};
    if (redisAsyncCommandArgv(s->cmd, on_presence_nodes, l, 4, argv, NULL) != REDIS_OK) {
        sse__free(l);
        return SSE_EIO;
    }
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
    presence_leave(b);
    /* Freeing a context fails its XADDs in flight (on_xadd with NULL: SSE_ECLOSED); hiredis
       defers the free when called from inside one of its callbacks. */
    for (size_t i = 0; i < b->n; i++) {
        struct shard *s = &b->shards[i];
        redisAsyncContext *cmd = s->cmd, *rd = s->rd, *ask = s->ask, *ask_rd = s->ask_rd;
        s->cmd = s->rd = s->ask = s->ask_rd = NULL;
        if (ask_rd)
            redisAsyncFree(ask_rd);
        if (cmd)
            redisAsyncFree(cmd);
        if (rd)
            redisAsyncFree(rd);
        if (ask)
            redisAsyncFree(ask);
        if (s->ask_old) { /* still closing: it must not outlive the shard it points at */
            redisAsyncContext *old = s->ask_old;
            s->ask_old = NULL;
            redisAsyncFree(old);
        }
    }
    b->handles_open = (int)b->n + 2;
    for (size_t i = 0; i < b->n; i++) {
        b->shards[i].retry.data = b;
        uv_close((uv_handle_t *)&b->shards[i].retry, on_handle_closed);
    }
    uv_close((uv_handle_t *)&b->watchdog, on_handle_closed);
    b->p_timer.data = b;
    uv_close((uv_handle_t *)&b->p_timer, on_handle_closed);
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

static const sse_bus_ops redis_ops = {SSE_BUS_OPS_VERSION, "redis",       bus_start,
                                      bus_publish,         bus_close,     presence_start,
                                      presence_set,        presence_list, bus_healthy};

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
    uv_timer_init(b->loop, &b->p_timer);
    b->p_timer.data = b;
    b->p_ttl_ms = o->presence_ttl_ms ? o->presence_ttl_ms : 15000;
    if (b->p_ttl_ms < 30)
        b->p_ttl_ms = 30;
    snprintf(b->p_ttl, sizeof(b->p_ttl), "%u", b->p_ttl_ms);
    uint64_t nid = 0;
    if (getrandom(&nid, sizeof(nid), GRND_NONBLOCK) != (ssize_t)sizeof(nid))
        nid = uv_hrtime() ^ ((uint64_t)(uintptr_t)b << 16);
    snprintf(b->node_id, sizeof(b->node_id), "%016" PRIx64, nid);
    snprintf(b->p_hash, sizeof(b->p_hash), "%s:presence:%s", b->shards[0].key, b->node_id);
    snprintf(b->p_nodes, sizeof(b->p_nodes), "%s:nodes", b->shards[0].key);
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
        rc = sse__bus_msg_store(l->store, m, NULL, NULL);
    sse_bus_msg_free(m);
    if (rc) {
        l->err = rc;
        return 1;
    }
    l->loaded++;
    return 0;
}

/* AUTH or SELECT on the start-up load's connection: 0, SSE_EAUTH (refused) or SSE_EIO. */
static int load_setup(struct redis_bus *b, struct shard *s, redisContext *c, int argc,
                      const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = 0;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        logf_(b, SSE_LOG_ERROR, "redis %s:%d: %s: %s", s->url.host, s->url.port, argv[0],
              r && r->str ? r->str : c->errstr);
        rc = r ? SSE_EAUTH : SSE_EIO;
    }
    if (r)
        freeReplyObject(r); /* an error reply too (its leak was caught by ASan once) */
    return rc;
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
    char db[16];
    snprintf(db, sizeof(db), "%d", s->url.db);
    const char *auth[3] = {"AUTH", s->url.user[0] ? s->url.user : s->url.pass, s->url.pass};
    const char *select[2] = {"SELECT", db};
    if ((s->url.pass[0] && (rc = load_setup(b, s, c, s->url.user[0] ? 3 : 2, auth))) ||
        (s->url.db && (rc = load_setup(b, s, c, 2, select))))
        goto out;
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
