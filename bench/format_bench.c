/*
 * format_bench.c: throughput of the text/event-stream parser and encoder (issue 2, item 8).
 *
 *   bench_format_bench gen DIR [--scale F]
 *       Writes the benchmark inputs, generated from a fixed seed, so that this program and the
 *       Node peer (bench/format_bench.mjs) read exactly the same bytes:
 *         a.sse  ~100-byte JSON events (id + event + one data line), 64 MiB
 *         b.sse  4 KiB events made of many data lines, 256 MiB
 *         c.sse  the first 2 MiB of a.sse's events (meant to be fed in 1-byte chunks)
 *       and beside each X.sse an X.meta with the expected totals ("events=... data_bytes=...
 *       data_units=... hash=..."); data_units counts UTF-16 code units, what JavaScript sees.
 *       About 1/16 of the events carry non-ASCII UTF-8, so decoding is part of the work.
 *   bench_format_bench parse FILE [--chunk N] [--runs N] [--warmup N]
 *       Reads FILE into memory, then times (CLOCK_MONOTONIC) feeding it to sse_parser_feed() in
 *       N-byte chunks (default 65536). The callback counts events and sums data lengths. The
 *       first, untimed, pass also hashes every event and is checked against FILE's .meta.
 *   bench_format_bench encode CASE [--runs N] [--scale F]
 *       CASE is a or b: regenerates that case's events in memory and times sse_encode_event()
 *       of each event into one reused sse_buf. An untimed pass first checks that the encoded
 *       stream parses back to the same totals (and says whether it is byte-identical to X.sse).
 *
 * Each measurement prints one line "result impl=c op=... case=... key=value ..." that
 * bench/run-format-bench.sh turns into a table. MB = 10^6 bytes. Exit status 1 on any error
 * or mismatch. Performance is never asserted here: numbers go to docs/performance/format.md.
 */
#include <errno.h>
#include <sse/buf.h>
#include <sse/format.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEED 0x5EE5EEDULL
#define MIB ((size_t)1 << 20)

/* ------------------------------------------------------------------ helpers */

/* splitmix64: small, fast, and identical everywhere. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

/* FNV-1a, 32 bits (the Node side computes the same with Math.imul). */
static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

#define FNV_INIT 2166136261u

/* The per-event hash both sides agree on: type 0xFF data 0xFF id 0xFE. */
static uint32_t hash_event(uint32_t h, const char *type, size_t tlen, const char *data, size_t dlen,
                           const char *id, size_t idlen)
{
    static const unsigned char ff = 0xFF, fe = 0xFE;
    h = fnv(h, type, tlen);
    h = fnv(h, &ff, 1);
    h = fnv(h, data, dlen);
    h = fnv(h, &ff, 1);
    h = fnv(h, id, idlen);
    return fnv(h, &fe, 1);
}

/* UTF-16 code units of valid UTF-8 (what JavaScript's string length reports). */
static size_t utf16_units(const char *p, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c & 0xC0) != 0x80)
            u += c >= 0xF0 ? 2 : 1;
    }
    return u;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A growable byte array for the generator (bench code: plain malloc is fine). */
struct bytes {
    char *p;
    size_t len, cap;
};

static int bytes_add(struct bytes *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int bytes_str(struct bytes *b, const char *s)
{
    return bytes_add(b, s, strlen(s));
}

/* ---------------------------------------------------------------- generator */

/* One generated event; the strings point into the generator's scratch buffers. */
struct gen_event {
    const char *type, *data, *id;
    size_t type_len, data_len, id_len;
};

struct gen_state {
    uint64_t rng;
    unsigned long long seq;
    struct bytes data; /* the current event's data (lines joined by LF) */
    char id[24];
    char type[16];
};

static const char *const a_types[] = {"trade", "quote", "update", "tick"};
static const char *const a_notes[] = {"Zoë", "café ☕", "€ 12", "日本語", "naïve 😀"};
static const char *const b_words[] = {
    "lorem",      "ipsum",   "dolor",      "sit",    "amet",    "stream",     "event",
    "server",     "client",  "buffer",     "parser", "frame",   "topic",      "update",
    "subscriber", "latency", "throughput", "hub",    "socket",  "loop",       "queue",
    "data",       "line",    "field",      "retry",  "mercure", "{\"k\":42}", "[1,2,3]",
};
static const char *const b_utf8[] = {"naïve", "café", "Größe",    "日本語のテキスト",
                                     "€100",  "😀👍",   "Ελληνικά", "русский"};

/* Case a: id + event + one JSON data line, about 100 bytes on the wire. */
static int gen_a(struct gen_state *g, struct gen_event *ev)
{
    char tmp[256];
    unsigned long long seq = ++g->seq;
    const char *side = rng_below(&g->rng, 2) ? "buy" : "sell";
    char sym[5];
    for (int i = 0; i < 4; i++)
        sym[i] = (char)('A' + rng_below(&g->rng, 26));
    sym[4] = '\0';
    unsigned px = 100 + rng_below(&g->rng, 99900);
    unsigned qty = 1 + rng_below(&g->rng, 999);
    int n = snprintf(tmp, sizeof tmp,
                     "{\"seq\":%llu,\"sym\":\"%s\",\"px\":%u.%02u,\"qty\":%u,\"side\":\"%s\"", seq,
                     sym, px / 100, px % 100, qty, side);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    g->data.len = 0;
    if (bytes_add(&g->data, tmp, (size_t)n))
        return -1;
    if (rng_below(&g->rng, 16) == 0) {
        if (bytes_str(&g->data, ",\"note\":\"") ||
            bytes_str(&g->data, a_notes[rng_below(&g->rng, 5)]) || bytes_str(&g->data, "\""))
            return -1;
    }
    if (bytes_str(&g->data, "}"))
        return -1;
    snprintf(g->id, sizeof g->id, "%llu", seq);
    snprintf(g->type, sizeof g->type, "%s", a_types[rng_below(&g->rng, 4)]);
    ev->type = g->type;
    ev->type_len = strlen(g->type);
    ev->id = g->id;
    ev->id_len = strlen(g->id);
    ev->data = g->data.p;
    ev->data_len = g->data.len;
    return 0;
}

/* Case b: id + event + data lines of 30-120 bytes, exactly 4096 bytes on the wire. */
static int gen_b(struct gen_state *g, struct gen_event *ev)
{
    unsigned long long seq = ++g->seq;
    snprintf(g->id, sizeof g->id, "%llu", seq);
    snprintf(g->type, sizeof g->type, "doc");
    /* wire = "id: " id "\n" "event: doc\n" + per line ("data: " line "\n") + "\n" */
    size_t budget = 4096 - (4 + strlen(g->id) + 1) - 11 - 1;
    g->data.len = 0;
    for (;;) {
        /* the next line: words up to a random target length */
        size_t target = 30 + rng_below(&g->rng, 91);
        if (budget < 7 + target + 7 + 120) /* no room for this line and another one: last */
            target = budget - 7;
        size_t start = g->data.len;
        if (start && bytes_str(&g->data, "\n"))
            return -1;
        size_t line_start = g->data.len;
        int utf8 = rng_below(&g->rng, 10) == 0;
        while (g->data.len - line_start < target) {
            const char *w = utf8 ? b_utf8[rng_below(&g->rng, 8)] : b_words[rng_below(&g->rng, 28)];
            utf8 = 0;
            size_t room = target - (g->data.len - line_start);
            size_t wl = strlen(w);
            if (g->data.len > line_start) {
                if (room < 2)
                    break;
                if (bytes_str(&g->data, " "))
                    return -1;
                room--;
            }
            if (wl > room) { /* pad with ASCII to hit the size exactly */
                while (room--)
                    if (bytes_str(&g->data, "x"))
                        return -1;
                break;
            }
            if (bytes_add(&g->data, w, wl))
                return -1;
        }
        while (g->data.len - line_start < target) /* a line that ended on "room < 2" */
            if (bytes_str(&g->data, "."))
                return -1;
        budget -= 7 + (g->data.len - line_start);
        if (budget == 0)
            break;
    }
    ev->type = g->type;
    ev->type_len = 3;
    ev->id = g->id;
    ev->id_len = strlen(g->id);
    ev->data = g->data.p;
    ev->data_len = g->data.len;
    return 0;
}

static size_t wire_len(const struct gen_event *ev)
{
    size_t n = 4 + ev->id_len + 1 + 7 + ev->type_len + 1 + 1;
    size_t lines = 1;
    for (size_t i = 0; i < ev->data_len; i++)
        lines += ev->data[i] == '\n';
    return n + lines * 7 + ev->data_len - (lines - 1);
}

/* The wire form, written by hand (independent of the encoder under test). */
static int wire_write(struct bytes *out, const struct gen_event *ev)
{
    if (bytes_str(out, "id: ") || bytes_add(out, ev->id, ev->id_len) ||
        bytes_str(out, "\nevent: ") || bytes_add(out, ev->type, ev->type_len) ||
        bytes_str(out, "\n"))
        return -1;
    size_t s = 0;
    for (size_t i = 0; i <= ev->data_len; i++) {
        if (i == ev->data_len || ev->data[i] == '\n') {
            if (bytes_str(out, "data: ") || bytes_add(out, ev->data + s, i - s) ||
                bytes_str(out, "\n"))
                return -1;
            s = i + 1;
        }
    }
    return bytes_str(out, "\n");
}

struct totals {
    unsigned long long events, data_bytes, data_units;
    uint32_t hash;
};

/* Events of one case, until the wire size would pass max_bytes. */
struct gen_iter {
    struct gen_state st;
    int which; /* 'a' or 'b' */
    size_t max_bytes, bytes;
};

static void gen_iter_init(struct gen_iter *it, int which, size_t max_bytes)
{
    memset(it, 0, sizeof *it);
    it->st.rng = SEED ^ (uint64_t)which;
    it->which = which;
    it->max_bytes = max_bytes;
}

static void gen_iter_free(struct gen_iter *it)
{
    free(it->st.data.p);
    it->st.data.p = NULL;
}

/* 1 and *ev filled, 0 at the end (the event that would pass max_bytes is dropped), -1 on OOM. */
static int gen_iter_next(struct gen_iter *it, struct gen_event *ev)
{
    int rc = it->which == 'a' ? gen_a(&it->st, ev) : gen_b(&it->st, ev);
    if (rc)
        return -1;
    size_t w = wire_len(ev);
    if (it->bytes + w > it->max_bytes)
        return 0;
    it->bytes += w;
    return 1;
}

static void totals_add(struct totals *t, const struct gen_event *ev)
{
    t->events++;
    t->data_bytes += ev->data_len;
    t->data_units += utf16_units(ev->data, ev->data_len);
    t->hash =
        hash_event(t->hash, ev->type, ev->type_len, ev->data, ev->data_len, ev->id, ev->id_len);
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    int bad = fwrite(p, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad)
        fprintf(stderr, "%s: write failed\n", path);
    return bad ? -1 : 0;
}

static int gen_case(const char *dir, const char *name, int which, size_t max_bytes)
{
    struct gen_iter it;
    struct gen_event ev;
    struct totals t = {0, 0, 0, FNV_INIT};
    struct bytes out = {0};
    char path[4096];
    int rc = -1, r;
    gen_iter_init(&it, which, max_bytes);
    while ((r = gen_iter_next(&it, &ev)) == 1) {
        if (wire_write(&out, &ev))
            goto out;
        totals_add(&t, &ev);
    }
    if (r < 0)
        goto out;
    if (out.len != it.bytes) {
        fprintf(stderr, "gen %s: wire_len disagrees with wire_write (%zu != %zu)\n", name, out.len,
                it.bytes);
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s.sse", dir, name);
    if (write_file(path, out.p, out.len))
        goto out;
    char meta[256];
    int n = snprintf(meta, sizeof meta,
                     "events=%llu data_bytes=%llu data_units=%llu hash=%08x bytes=%zu\n", t.events,
                     t.data_bytes, t.data_units, (unsigned)t.hash, out.len);
    snprintf(path, sizeof path, "%s/%s.meta", dir, name);
    if (write_file(path, meta, (size_t)n))
        goto out;
    printf("gen %s.sse %zu bytes, %llu events\n", name, out.len, t.events);
    rc = 0;
out:
    gen_iter_free(&it);
    free(out.p);
    if (rc)
        fprintf(stderr, "gen %s failed\n", name);
    return rc;
}

static size_t case_size(int which, double scale)
{
    size_t base = which == 'a' ? 64 * MIB : which == 'b' ? 256 * MIB : 2 * MIB;
    return (size_t)((double)base * scale);
}

static int cmd_gen(const char *dir, double scale)
{
    if (gen_case(dir, "a", 'a', case_size('a', scale)) ||
        gen_case(dir, "b", 'b', case_size('b', scale)) ||
        gen_case(dir, "c", 'a', case_size('c', scale)))
        return 1;
    return 0;
}

/* ------------------------------------------------------------------- parse */

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    struct bytes b = {0};
    char tmp[1 << 16];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (bytes_add(&b, tmp, n)) {
            fclose(f);
            free(b.p);
            return -1;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "%s: read error\n", path);
        free(b.p);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* FILE.sse -> FILE.meta, parsed. */
static int read_meta(const char *sse_path, struct totals *t)
{
    char path[4096];
    size_t n = strlen(sse_path);
    if (n < 4 || strcmp(sse_path + n - 4, ".sse") != 0 || n >= sizeof path) {
        fprintf(stderr, "%s: expected a .sse file with a .meta beside it\n", sse_path);
        return -1;
    }
    memcpy(path, sse_path, n - 4);
    memcpy(path + n - 4, ".meta", 6);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned h = 0;
    int k = fscanf(f, "events=%llu data_bytes=%llu data_units=%llu hash=%x", &t->events,
                   &t->data_bytes, &t->data_units, &h);
    fclose(f);
    if (k != 4) {
        fprintf(stderr, "%s: malformed\n", path);
        return -1;
    }
    t->hash = h;
    return 0;
}

struct count {
    unsigned long long events, data_bytes;
    uint32_t hash;
};

static int on_event_count(void *ud, const sse_parsed_event *ev)
{
    struct count *c = ud;
    c->events++;
    c->data_bytes += ev->data_len;
    return 0;
}

static int on_event_hash(void *ud, const sse_parsed_event *ev)
{
    struct count *c = ud;
    c->events++;
    c->data_bytes += ev->data_len;
    c->hash =
        hash_event(c->hash, ev->type, ev->type_len, ev->data, ev->data_len, ev->id, ev->id_len);
    return 0;
}

/* One pass over buf in chunk-sized feeds; returns seconds or -1 on a parser error. */
static double parse_pass(const char *buf, size_t len, size_t chunk, int hash, struct count *c)
{
    sse_parser_callbacks cb = {hash ? on_event_hash : on_event_count, NULL, NULL};
    sse_parser *p = NULL;
    memset(c, 0, sizeof *c);
    c->hash = FNV_INIT;
    int rc = sse_parser_new(&p, NULL, &cb, c);
    if (rc) {
        fprintf(stderr, "sse_parser_new: %s\n", sse_strerror(rc));
        return -1;
    }
    double t0 = now_s();
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = sse_parser_feed(p, buf + off, n);
        if (rc) {
            fprintf(stderr, "sse_parser_feed at %zu: %s\n", off, sse_strerror(rc));
            sse_parser_free(p);
            return -1;
        }
    }
    sse_parser_end(p);
    double t = now_s() - t0;
    sse_parser_free(p);
    return t;
}

static void print_result(const char *op, const char *name, size_t chunk, size_t bytes,
                         unsigned long long events, double *times, int runs, const struct count *c)
{
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double best = times[0];
    double median = runs % 2 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
    printf("result impl=c op=%s case=%s chunk=%zu bytes=%zu events=%llu data_bytes=%llu "
           "runs=%d best_s=%.6f median_s=%.6f best_MBps=%.1f median_MBps=%.1f "
           "best_Meps=%.3f median_Meps=%.3f\n",
           op, name, chunk, bytes, events, c->data_bytes, runs, best, median,
           (double)bytes / best / 1e6, (double)bytes / median / 1e6, (double)events / best / 1e6,
           (double)events / median / 1e6);
}

/* The case name of a path: "/tmp/x/a.sse" -> "a". */
static void case_name(const char *path, char *name, size_t size)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    size_t n = strcspn(s, ".");
    if (n >= size)
        n = size - 1;
    memcpy(name, s, n);
    name[n] = '\0';
}

static int check_totals(const char *what, const struct count *c, const struct totals *want)
{
    if (c->events != want->events || c->data_bytes != want->data_bytes) {
        fprintf(stderr, "%s: MISMATCH events %llu (want %llu), data bytes %llu (want %llu)\n", what,
                c->events, want->events, c->data_bytes, want->data_bytes);
        return -1;
    }
    return 0;
}

static int cmd_parse(const char *path, size_t chunk, int runs, int warmup)
{
    struct totals want;
    char *buf = NULL;
    size_t len = 0;
    double *times = NULL;
    struct count c;
    int rc = 1;
    if (read_meta(path, &want) || read_file(path, &buf, &len))
        goto out;
    char name[64];
    case_name(path, name, sizeof name);
    /* untimed verification pass: hashes every event */
    if (parse_pass(buf, len, chunk, 1, &c) < 0)
        goto out;
    if (check_totals(path, &c, &want))
        goto out;
    if (c.hash != want.hash) {
        fprintf(stderr, "%s: MISMATCH event hash %08x (want %08x)\n", path, (unsigned)c.hash,
                (unsigned)want.hash);
        goto out;
    }
    times = calloc((size_t)runs, sizeof *times);
    if (!times)
        goto out;
    for (int i = 0; i < warmup + runs; i++) {
        double t = parse_pass(buf, len, chunk, 0, &c);
        if (t < 0 || check_totals(path, &c, &want))
            goto out;
        if (i >= warmup)
            times[i - warmup] = t;
    }
    print_result("parse", name, chunk, len, c.events, times, runs, &c);
    rc = 0;
out:
    free(times);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ encode */

struct ev_store {
    struct bytes pool;
    struct {
        size_t type, type_len, data, data_len, id, id_len;
    } * evs;
    size_t n, cap;
};

static int store_add(struct ev_store *s, const struct gen_event *ev)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        void *q = realloc(s->evs, cap * sizeof *s->evs);
        if (!q)
            return -1;
        s->evs = q;
        s->cap = cap;
    }
    size_t o = s->pool.len;
    if (bytes_add(&s->pool, ev->type, ev->type_len) ||
        bytes_add(&s->pool, ev->data, ev->data_len) || bytes_add(&s->pool, ev->id, ev->id_len))
        return -1;
    s->evs[s->n].type = o;
    s->evs[s->n].type_len = ev->type_len;
    s->evs[s->n].data = o + ev->type_len;
    s->evs[s->n].data_len = ev->data_len;
    s->evs[s->n].id = o + ev->type_len + ev->data_len;
    s->evs[s->n].id_len = ev->id_len;
    s->n++;
    return 0;
}

static void store_get(const struct ev_store *s, size_t i, sse_event *ev)
{
    const char *p = s->pool.p;
    sse_event e = SSE_EVENT_INIT;
    e.type = p + s->evs[i].type;
    e.type_len = s->evs[i].type_len;
    e.data = p + s->evs[i].data;
    e.data_len = s->evs[i].data_len;
    e.id = p + s->evs[i].id;
    e.id_len = s->evs[i].id_len;
    *ev = e;
}

/* Encode everything once, parse the result back, and compare with the generator's totals. */
static int encode_verify(const struct ev_store *s, const struct totals *want,
                         const struct bytes *wire)
{
    sse_buf out;
    sse_event ev;
    struct count c;
    sse_parser_callbacks cb = {on_event_hash, NULL, NULL};
    sse_parser *p = NULL;
    int rc = -1, same = 1;
    size_t off = 0;
    memset(&c, 0, sizeof c);
    c.hash = FNV_INIT;
    sse_buf_init(&out, 0);
    if (sse_parser_new(&p, NULL, &cb, &c))
        goto out;
    for (size_t i = 0; i < s->n; i++) {
        store_get(s, i, &ev);
        sse_buf_reset(&out);
        int e = sse_encode_event(&out, &ev);
        if (e) {
            fprintf(stderr, "sse_encode_event: %s\n", sse_strerror(e));
            goto out;
        }
        if (same && (off + out.len > wire->len || memcmp(wire->p + off, out.data, out.len) != 0))
            same = 0;
        off += out.len;
        e = sse_parser_feed(p, out.data, out.len);
        if (e) {
            fprintf(stderr, "sse_parser_feed: %s\n", sse_strerror(e));
            goto out;
        }
    }
    sse_parser_end(p);
    if (check_totals("encode round trip", &c, want))
        goto out;
    if (c.hash != want->hash) {
        fprintf(stderr, "encode round trip: MISMATCH event hash\n");
        goto out;
    }
    printf("encode: round trip ok; output %s the generator's wire bytes\n",
           same && off == wire->len ? "is identical to"
                                    : "differs from (still parses the same as)");
    rc = 0;
out:
    sse_parser_free(p);
    sse_buf_free(&out);
    return rc;
}

static int cmd_encode(int which, int runs, double scale)
{
    struct ev_store s;
    struct gen_iter it;
    struct gen_event gev;
    struct totals want = {0, 0, 0, FNV_INIT};
    struct bytes wire = {0};
    double *times = NULL;
    sse_buf out;
    int rc = 1, r;
    memset(&s, 0, sizeof s);
    sse_buf_init(&out, 0);
    gen_iter_init(&it, which, case_size(which, scale));
    while ((r = gen_iter_next(&it, &gev)) == 1) {
        if (store_add(&s, &gev) || wire_write(&wire, &gev))
            goto out;
        totals_add(&want, &gev);
    }
    if (r < 0 || encode_verify(&s, &want, &wire))
        goto out;
    times = calloc((size_t)runs, sizeof *times);
    if (!times)
        goto out;
    size_t total = 0;
    for (int i = 0; i < 1 + runs; i++) { /* one warm-up */
        sse_event ev;
        total = 0;
        double t0 = now_s();
        for (size_t k = 0; k < s.n; k++) {
            store_get(&s, k, &ev);
            sse_buf_reset(&out);
            int e = sse_encode_event(&out, &ev);
            if (e) {
                fprintf(stderr, "sse_encode_event: %s\n", sse_strerror(e));
                goto out;
            }
            total += out.len;
        }
        double t = now_s() - t0;
        if (i > 0)
            times[i - 1] = t;
    }
    struct count c = {s.n, want.data_bytes, 0};
    char name[2] = {(char)which, '\0'};
    print_result("encode", name, 0, total, s.n, times, runs, &c);
    rc = 0;
out:
    gen_iter_free(&it);
    free(times);
    free(wire.p);
    free(s.pool.p);
    free(s.evs);
    sse_buf_free(&out);
    return rc;
}

/* -------------------------------------------------------------------- main */

static int usage(void)
{
    fputs("usage: bench_format_bench gen DIR [--scale F]\n"
          "       bench_format_bench parse FILE.sse [--chunk N] [--runs N] [--warmup N]\n"
          "       bench_format_bench encode a|b [--runs N] [--scale F]\n",
          stderr);
    return 2;
}

/* Parse a positive integer option value; 0 on error. */
static long opt_long(const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0 || v > max)
        return 0;
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    long chunk = 65536, runs = 7, warmup = 1;
    double scale = 1.0;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        const char *o = argv[i], *v = argv[++i];
        if (strcmp(o, "--chunk") == 0) {
            chunk = opt_long(v, 1L << 30);
        } else if (strcmp(o, "--runs") == 0) {
            runs = opt_long(v, 1000);
        } else if (strcmp(o, "--warmup") == 0) {
            warmup = strcmp(v, "0") == 0 ? 0 : opt_long(v, 1000);
            if (warmup == 0 && strcmp(v, "0") != 0)
                return usage();
        } else if (strcmp(o, "--scale") == 0) {
            char *end;
            scale = strtod(v, &end);
            if (*end || !(scale > 0 && scale <= 4))
                return usage();
        } else {
            return usage();
        }
        if (!chunk || !runs)
            return usage();
    }
    if (strcmp(argv[1], "gen") == 0)
        return cmd_gen(argv[2], scale);
    if (strcmp(argv[1], "parse") == 0)
        return cmd_parse(argv[2], (size_t)chunk, (int)runs, (int)warmup);
    if (strcmp(argv[1], "encode") == 0 && (argv[2][0] == 'a' || argv[2][0] == 'b') && !argv[2][1])
        return cmd_encode(argv[2][0], (int)runs, scale);
    return usage();
}
