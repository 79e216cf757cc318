/*
 * parser_fuzzer.c: libFuzzer target for the text/event-stream parser (src/format/parser.c).
 *
 * The first input byte chooses how the rest is chunked; the rest is the stream. Checks:
 *  1. differential against a plain reference: the stream decoded at once with the Encoding
 *     Standard's UTF-8 decoder written out literally (byte by byte, as the standard states it),
 *     then split into lines and interpreted per the HTML standard. Same events, retries and
 *     comments as the real parser fed in one piece, and as the real parser fed in chunks;
 *  2. with small limits (also chosen by the first byte): chunked and whole feeding agree on
 *     everything, including where SSE_ELIMIT happens;
 *  3. invariants on every callback: strings valid UTF-8 and NUL-terminated, no CR in data, no
 *     CR/LF in type, no CR/LF/NUL in id, type never empty, sizes within the limits.
 * Any mismatch aborts.
 */
#include "fuzz_common.h"

#include <sse/format.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------- a growable log */

struct flog {
    unsigned char *p;
    size_t len, cap;
    size_t max_event; /* for the invariant checks */
};

static void flog_put(struct flog *l, const void *b, size_t n)
{
    if (!n)
        return;
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        while (cap < l->len + n)
            cap *= 2;
        l->p = realloc(l->p, cap);
        if (!l->p)
            abort();
        l->cap = cap;
    }
    memcpy(l->p + l->len, b, n);
    l->len += n;
}

static void flog_str(struct flog *l, char tag, const char *s, size_t n)
{
    uint32_t n32 = (uint32_t)n;
    flog_put(l, &tag, 1);
    flog_put(l, &n32, sizeof(n32));
    flog_put(l, s, n);
}

/* ------------------------------------------------------------- invariants */

static void check_str(const char *s, size_t n, const char *forbidden, size_t nforbidden)
{
    if (!s || s[n] != '\0')
        abort();
    if (!fuzz_valid_utf8((const unsigned char *)s, n))
        abort();
    for (size_t i = 0; i < nforbidden; i++)
        if (memchr(s, forbidden[i], n))
            abort();
}

static int cb_event(void *ud, const sse_parsed_event *ev)
{
    struct flog *l = ud;
    check_str(ev->type, ev->type_len, "\r\n", 2);
    check_str(ev->data, ev->data_len, "\r", 1);
    check_str(ev->id, ev->id_len, "\r\n\0", 3);
    if (ev->type_len == 0 || ev->data_len >= l->max_event)
        abort();
    flog_str(l, 'T', ev->type, ev->type_len);
    flog_str(l, 'D', ev->data, ev->data_len);
    flog_str(l, 'I', ev->id, ev->id_len);
    return 0;
}

static int cb_retry(void *ud, uint64_t ms)
{
    flog_put(ud, "R", 1);
    flog_put(ud, &ms, sizeof(ms));
    return 0;
}

static int cb_comment(void *ud, const char *text, size_t len)
{
    if (!fuzz_valid_utf8((const unsigned char *)text, len) || memchr(text, '\r', len) ||
        memchr(text, '\n', len))
        abort();
    flog_str(ud, 'C', text, len);
    return 0;
}

/* ------------------------------------------------------------- the real parser */

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* mode: 0 whole, 1..255 a chunking pattern derived from the first byte */
static void run_real(struct flog *l, const uint8_t *in, size_t n, unsigned mode, size_t max_line,
                     size_t max_event)
{
    static const sse_parser_callbacks cb = {cb_event, cb_retry, cb_comment};
    sse_parser_options o = SSE_PARSER_OPTIONS_INIT;
    sse_parser *p;
    o.max_line = max_line;
    o.max_event = max_event;
    l->max_event = max_event ? max_event : (size_t)16 << 20;
    if (sse_parser_new(&p, &o, &cb, l))
        abort();
    uint32_t seed = mode;
    size_t at = 0;
    int rc = 0;
    while (at < n && rc == 0) {
        size_t k;
        switch (mode & 3) {
        case 0:
            k = mode ? 1 : n; /* mode 0: whole; 4, 8, ...: one byte at a time */
            break;
        case 1:
            k = at == 0 ? (size_t)(mode >> 2) * n / 64 : n; /* two pieces */
            if (k == 0)
                k = n;
            break;
        case 2:
            k = 1 + (mode >> 2) % 17;
            break;
        default:
            k = 1 + next_rand(&seed) % 9;
            break;
        }
        if (k > n - at)
            k = n - at;
        rc = sse_parser_feed(p, in + at, k);
        at += k;
    }
    if (rc) {
        char tag = 'X';
        flog_put(l, &tag, 1);
        flog_put(l, &rc, sizeof(rc));
    }
    sse_parser_end(p);
    sse_parser_free(p);
}

/* ------------------------------------------------------------- the reference */

static void put_cp(struct flog *o, uint32_t cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    flog_put(o, b, n);
}

/* Encoding Standard, "UTF-8 decode" + "UTF-8 decoder", as written there. */
static void ref_decode(struct flog *o, const uint8_t *in, size_t n)
{
    uint32_t cp = 0;
    unsigned needed = 0, seen = 0, lower = 0x80, upper = 0xBF;
    size_t i = 0;
    if (n >= 3 && in[0] == 0xEF && in[1] == 0xBB && in[2] == 0xBF)
        i = 3;
    while (i < n) {
        unsigned b = in[i];
        if (needed == 0) {
            i++;
            if (b <= 0x7F) {
                put_cp(o, b);
            } else if (b >= 0xC2 && b <= 0xDF) {
                needed = 1;
                cp = b & 0x1F;
            } else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0)
                    lower = 0xA0;
                if (b == 0xED)
                    upper = 0x9F;
                needed = 2;
                cp = b & 0xF;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0)
                    lower = 0x90;
                if (b == 0xF4)
                    upper = 0x8F;
                needed = 3;
                cp = b & 0x7;
            } else {
                put_cp(o, 0xFFFD);
            }
            continue;
        }
        if (b < lower || b > upper) {
            cp = needed = seen = 0;
            lower = 0x80;
            upper = 0xBF;
            put_cp(o, 0xFFFD);
            continue; /* "prepend byte to stream": i is not advanced */
        }
        i++;
        lower = 0x80;
        upper = 0xBF;
        cp = (cp << 6) | (b & 0x3F);
        if (++seen == needed) {
            put_cp(o, cp);
            cp = needed = seen = 0;
        }
    }
    if (needed)
        put_cp(o, 0xFFFD);
}

static int same(const unsigned char *a, size_t an, const char *b)
{
    return an == strlen(b) && memcmp(a, b, an) == 0;
}

/* HTML "Interpreting an event stream" over the decoded text. */
static void run_reference(struct flog *l, const uint8_t *in, size_t n)
{
    struct flog text = {0}, databuf = {0}, type = {0}, idbuf = {0}, last_id = {0};
    ref_decode(&text, in, n);
    const unsigned char *s = text.p ? text.p : (const unsigned char *)"";
    size_t i = 0, len = text.len;
    for (;;) {
        size_t e = i;
        while (e < len && s[e] != '\r' && s[e] != '\n')
            e++;
        if (e == len)
            break; /* no line end: pending data discarded at the end */
        const unsigned char *line = s + i;
        size_t ln = e - i;
        i = e + 1;
        if (s[e] == '\r' && i < len && s[i] == '\n')
            i++;
        if (ln == 0) { /* dispatch */
            last_id.len = 0;
            flog_put(&last_id, idbuf.p ? idbuf.p : (const unsigned char *)"", idbuf.len);
            if (databuf.len == 0) {
                type.len = 0;
                continue;
            }
            databuf.len--; /* the final LF */
            flog_str(l, 'T', type.len ? (const char *)type.p : "message", type.len ? type.len : 7);
            flog_str(l, 'D', databuf.len ? (const char *)databuf.p : "", databuf.len);
            flog_str(l, 'I', last_id.len ? (const char *)last_id.p : "", last_id.len);
            databuf.len = type.len = 0;
            continue;
        }
        if (line[0] == ':') {
            flog_str(l, 'C', (const char *)line + 1, ln - 1);
            continue;
        }
        const unsigned char *colon = memchr(line, ':', ln);
        size_t fn = colon ? (size_t)(colon - line) : ln;
        const unsigned char *v = colon ? colon + 1 : line + ln;
        size_t vn = colon ? ln - fn - 1 : 0;
        if (vn && v[0] == ' ') {
            v++;
            vn--;
        }
        if (fn == 4 && same(line, fn, "data")) {
            flog_put(&databuf, v, vn);
            flog_put(&databuf, "\n", 1);
        } else if (fn == 5 && same(line, fn, "event")) {
            type.len = 0;
            flog_put(&type, v, vn);
        } else if (fn == 2 && same(line, fn, "id")) {
            if (!memchr(v, 0, vn)) {
                idbuf.len = 0;
                flog_put(&idbuf, v, vn);
            }
        } else if (fn == 5 && same(line, fn, "retry")) {
            uint64_t ms = 0;
            int ok = vn > 0;
            for (size_t k = 0; k < vn && ok; k++) {
                if (v[k] < '0' || v[k] > '9')
                    ok = 0;
                else if (ms > (UINT64_MAX - (v[k] - '0')) / 10)
                    ok = 0; /* beyond the standard: values past uint64 are ignored */
                else
                    ms = ms * 10 + (v[k] - '0');
            }
            if (ok) {
                flog_put(l, "R", 1);
                flog_put(l, &ms, sizeof(ms));
            }
        }
    }
    free(text.p);
    free(databuf.p);
    free(type.p);
    free(idbuf.p);
    free(last_id.p);
}

/* ------------------------------------------------------------- entry */

static void must_equal(const struct flog *a, const struct flog *b)
{
    if (a->len != b->len || (a->len && memcmp(a->p, b->p, a->len) != 0)) {
        fprintf(stderr, "parser_fuzzer: logs differ (%zu vs %zu bytes)\n", a->len, b->len);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    unsigned mode = data[0];
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    struct flog ref = {0}, whole = {0}, chunked = {0};

    /* 1. default limits (never reached by inputs this small): equal to the reference */
    run_reference(&ref, in, n);
    run_real(&whole, in, n, 0, 0, 0);
    run_real(&chunked, in, n, mode ? mode : 4, 0, 0);
    must_equal(&ref, &whole);
    must_equal(&whole, &chunked);

    /* 2. small limits: chunking changes nothing, errors included */
    size_t max_line = 1 + (mode * 7u) % 97u, max_event = 1 + (mode * 13u) % 211u;
    whole.len = chunked.len = 0;
    run_real(&whole, in, n, 0, max_line, max_event);
    run_real(&chunked, in, n, mode ? mode : 4, max_line, max_event);
    must_equal(&whole, &chunked);

    free(ref.p);
    free(whole.p);
    free(chunked.p);
    return 0;
}
