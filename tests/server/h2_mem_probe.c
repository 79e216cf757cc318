/*
 * h2_mem_probe.c: a measuring program (not a test): what nghttp2 keeps per server session with
 * one idle event stream, block by block, through a counting nghttp2_mem (the same hook the
 * server uses). A bare session with the server's options and SETTINGS takes a client preface,
 * SETTINGS and one GET (literal HPACK, as tests/server/idle_probe_h2.py sends), answers with
 * a 200 head and an open DATA source, and sends. Numbers are in docs/performance/h2.md.
 *
 * Usage: h2_mem_probe [HEADER_TABLE_SIZE [DEFLATE_TABLE_SIZE]]   (defaults 4096 4096)
 */
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 256
static struct {
    void *p;
    size_t n;
    const char *when;
} blocks[MAXB];
static const char *phase = "";

static void track(void *p, size_t n)
{
    for (int i = 0; i < MAXB; i++)
        if (!blocks[i].p) {
            blocks[i].p = p, blocks[i].n = n, blocks[i].when = phase;
            return;
        }
}

static void untrack(void *p)
{
    for (int i = 0; i < MAXB; i++)
        if (blocks[i].p == p) {
            blocks[i].p = NULL;
            return;
        }
}

static void *m_malloc(size_t n, void *ud)
{
    (void)ud;
    void *p = malloc(n);
    if (p)
        track(p, n);
    return p;
}

static void m_free(void *p, void *ud)
{
    (void)ud;
    if (p)
        untrack(p);
    free(p);
}

static void *m_calloc(size_t k, size_t n, void *ud)
{
    (void)ud;
    void *p = calloc(k, n);
    if (p)
        track(p, k * n);
    return p;
}

static void *m_realloc(void *old, size_t n, void *ud)
{
    (void)ud;
    if (old)
        untrack(old); /* before realloc: afterwards old is not to be used, even compared */
    void *p = realloc(old, n);
    if (p)
        track(p, n);
    return p;
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *ud)
{
    (void)s, (void)d, (void)f, (void)ud;
    return (ssize_t)n;
}

static ssize_t read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)buf, (void)len, (void)flags, (void)src, (void)ud;
    return NGHTTP2_ERR_DEFERRED; /* an idle event stream: nothing to send */
}

static int32_t last_stream;
static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s, (void)ud;
    if (f->hd.type == NGHTTP2_HEADERS)
        last_stream = f->hd.stream_id;
    return 0;
}

static size_t put_lit(uint8_t *o, const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    o[0] = 0;
    o[1] = (uint8_t)a;
    memcpy(o + 2, name, a);
    o[2 + a] = (uint8_t)b;
    memcpy(o + 3 + a, value, b);
    return 3 + a + b;
}

int main(int argc, char **argv)
{
    uint32_t table = argc > 1 ? (uint32_t)atoi(argv[1]) : 4096;
    uint32_t deflate = argc > 2 ? (uint32_t)atoi(argv[2]) : table;
    nghttp2_mem mem = {NULL, m_malloc, m_free, m_calloc, m_realloc};
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_session *ng;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, deflate);
    phase = "session";
    if (nghttp2_session_server_new3(&ng, cbs, NULL, opt, &mem) != 0)
        return 1;
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, table},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    phase = "settings";
    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, 4);
    nghttp2_session_send(ng);

    uint8_t in[512];
    size_t k = 0;
    memcpy(in, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    k = 24;
    memcpy(in + k, "\0\0\0\x04\0\0\0\0\0", 9); /* SETTINGS */
    k += 9;
    memcpy(in + k, "\0\0\0\x04\x01\0\0\0\0", 9); /* SETTINGS ACK */
    k += 9;
    uint8_t hb[256];
    size_t hl = put_lit(hb, ":method", "GET");
    hl += put_lit(hb + hl, ":scheme", "http");
    hl += put_lit(hb + hl, ":authority", "x");
    hl += put_lit(hb + hl, ":path", "/sub");
    uint8_t fh[9] = {0, 0, (uint8_t)hl, 1, 5, 0, 0, 0, 1};
    memcpy(in + k, fh, 9);
    memcpy(in + k + 9, hb, hl);
    k += 9 + hl;
    phase = "request";
    ssize_t rv = nghttp2_session_mem_recv(ng, in, k);
    if (rv != (ssize_t)k || last_stream != 1) {
        fprintf(stderr, "request not taken: %s\n", rv < 0 ? nghttp2_strerror((int)rv) : "short");
        return 1;
    }
    phase = "response";
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"text/event-stream", 12, 17, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"cache-control", (uint8_t *)"no-store", 13, 8, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider dp = {.read_callback = read_cb};
    nghttp2_submit_response(ng, 1, nv, 3, &dp);
    nghttp2_session_send(ng);

    size_t total = 0;
    int nb = 0;
    printf("HEADER_TABLE_SIZE %u, deflate table %u: live nghttp2 blocks of an idle session with "
           "one stream\n",
           table, deflate);
    for (int i = 0; i < MAXB; i++)
        if (blocks[i].p) {
            printf("%8zu B  (allocated during: %s)\n", blocks[i].n, blocks[i].when);
            total += blocks[i].n;
            nb++;
        }
    printf("total %zu B in %d blocks\n", total, nb);
    nghttp2_session_del(ng);
    return 0;
}
