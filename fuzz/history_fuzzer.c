/*
 * history_fuzzer.c: the memory store (include/sse/store.h) against a model of its history.
 *
 * The input is a program. The first byte picks the count limit (1..16 updates kept). Then each
 * op byte: append an update (its id is 0-3 following input bytes, so ids repeat, as publisher
 * chosen ids may), replay after the id of an earlier update (kept or evicted), replay after an
 * id never appended, replay from the earliest, or scan back from an earlier update's id. The
 * model keeps every appended id in order; the store must keep exactly the newest `limit` ones.
 * Checked after every op: the count and last id; for replay, the found flag, and the entries
 * after the earliest kept update with that id, oldest first, with increasing positions and the
 * ids, topics and private flags they were appended with (an id not kept: found 0, nothing);
 * for scan back, the entries from that update backwards, newest first, at most `max`; a
 * callback that asks to stop is not called again. Every call completes exactly once, at once.
 */
#include "fuzz_common.h"

#include <sse/buf.h>
#include <sse/error.h>
#include <sse/store.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 256
#define ID_MAX 4

struct model {
    char ids[MAX_OPS][ID_MAX + 1]; /* every appended id, in order (NUL-terminated) */
    size_t lens[MAX_OPS];
    int priv[MAX_OPS];
    size_t n;     /* appended so far */
    size_t limit; /* kept: the newest `limit` */
};

struct walk {
    const struct model *m;
    size_t expect[MAX_OPS]; /* model indexes the callbacks must report, in order */
    size_t n_expect, got;
    uint64_t last_pos;
    int backwards;
    size_t stop_after; /* > 0: the callback asks to stop after this many entries */
    int done_calls, found;
};

static size_t first_kept(const struct model *m)
{
    return m->n > m->limit ? m->n - m->limit : 0;
}

/* The earliest kept update whose id is id[0..len), or -1 (draft-08: an id published twice
   resolves to its earliest copy). */
static long earliest_kept(const struct model *m, const char *id, size_t len)
{
    for (size_t i = first_kept(m); i < m->n; i++)
        if (m->lens[i] == len && !memcmp(m->ids[i], id, len))
            return (long)i;
    return -1;
}

static int each_cb(void *ud, const sse_store_entry *e)
{
    struct walk *w = ud;
    REQUIRE(w->done_calls == 0);
    REQUIRE(w->got < w->n_expect);
    size_t i = w->expect[w->got++];
    const struct model *m = w->m;
    REQUIRE(e->id_len == m->lens[i] && !memcmp(e->id, m->ids[i], e->id_len));
    REQUIRE(e->is_private == m->priv[i]);
    REQUIRE(e->n_topics == 2 && !strcmp(e->topics[0], "/t") && !strcmp(e->topics[1], "/u"));
    REQUIRE(e->frame && sse_frame_len(e->frame) == 7 &&
            !memcmp(sse_frame_data(e->frame), "data: x", 7));
    /* positions: 1-based append order */
    REQUIRE(e->position == (uint64_t)i + 1);
    if (w->got > 1)
        REQUIRE(w->backwards ? e->position < w->last_pos : e->position > w->last_pos);
    w->last_pos = e->position;
    return w->stop_after && w->got == w->stop_after;
}

static void done_cb(void *ud, int status, int found)
{
    struct walk *w = ud;
    REQUIRE(status == 0);
    w->done_calls++;
    w->found = found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static struct model m;
    static struct walk w;
    memset(&m, 0, sizeof(m));
    m.limit = (size_t)(data[0] & 15) + 1;
    sse_store_limits lim = {m.limit, 0, 0};
    sse_store *s;
    if (sse_store_memory_new(&s, &lim))
        return 0;
    sse_frame *frame;
    if (sse_frame_new(&frame, "data: x", 7)) {
        sse_store_free(s);
        return 0;
    }
    static const char *const topics[2] = {"/t", "/u"};
    sse_buf last;
    sse_buf_init(&last, 0);
    size_t at = 1;
    for (int ops = 0; at < size && ops < MAX_OPS; ops++) {
        uint8_t op = data[at++];
        memset(&w, 0, sizeof(w));
        w.m = &m;
        switch (op % 5) {
        case 0: { /* append */
            if (m.n == MAX_OPS)
                break;
            size_t len = (op >> 3) % (ID_MAX + 1);
            if (len > size - at)
                len = size - at;
            memcpy(m.ids[m.n], data + at, len);
            m.ids[m.n][len] = '\0';
            m.lens[m.n] = len;
            m.priv[m.n] = (op >> 7) & 1;
            at += len;
            sse_store_entry e = {0};
            e.id = m.ids[m.n];
            e.id_len = len;
            e.topics = topics;
            e.n_topics = 2;
            e.is_private = m.priv[m.n];
            e.frame = frame;
            e.time_ms = 1000;
            int rc = sse_store_append(s, &e, NULL, NULL);
            if (rc == SSE_ENOMEM)
                goto out;
            REQUIRE(rc == 0);
            m.n++;
            break;
        }
        case 1:   /* replay after an earlier update's id */
        case 2: { /* replay after an id never appended (a fresh 5-byte one), or the earliest */
            const char *id = NULL;
            size_t len = 0;
            char fresh[ID_MAX + 2] = "zzzzz";
            if (op % 5 == 1 && m.n) {
                size_t k = (op >> 3) % m.n;
                id = m.ids[k];
                len = m.lens[k];
            } else if (op % 5 == 2 && (op & 8)) {
                id = fresh;
                len = ID_MAX + 1; /* longer than any appended id: never found */
            }
            long from = id ? earliest_kept(&m, id, len) : (long)first_kept(&m) - 1;
            int want_found = !id || from >= 0;
            if (want_found)
                for (size_t i = (size_t)(from + 1); i < m.n; i++)
                    w.expect[w.n_expect++] = i;
            REQUIRE(sse_store_replay(s, id, len, each_cb, done_cb, &w) == 0);
            REQUIRE(w.done_calls == 1 && w.found == want_found && w.got == w.n_expect);
            break;
        }
        case 3: { /* scan back from an earlier update's id, at most max entries */
            if (!m.n)
                break;
            size_t k = (op >> 3) % m.n, max = (size_t)(op >> 5);
            long from = earliest_kept(&m, m.ids[k], m.lens[k]);
            if (from >= 0)
                for (long i = from; i >= (long)first_kept(&m) && w.n_expect < max; i--)
                    w.expect[w.n_expect++] = (size_t)i;
            w.backwards = 1;
            REQUIRE(sse_store_scan_back(s, m.ids[k], m.lens[k], max, each_cb, done_cb, &w) == 0);
            REQUIRE(w.done_calls == 1 && w.found == (from >= 0) && w.got == w.n_expect);
            break;
        }
        default: { /* replay from the earliest, the callback stopping it after a few entries */
            w.stop_after = (size_t)(op >> 3) % 4 + 1;
            for (size_t i = first_kept(&m); i < m.n && w.n_expect < w.stop_after; i++)
                w.expect[w.n_expect++] = i;
            REQUIRE(sse_store_replay(s, NULL, 0, each_cb, done_cb, &w) == 0);
            REQUIRE(w.done_calls == 1 && w.found == 1 && w.got == w.n_expect);
            break;
        }
        }
        /* after every op: the count and the newest id */
        size_t count = 0, bytes = 0;
        sse_store_stats(s, &count, &bytes);
        size_t kept = m.n - first_kept(&m);
        REQUIRE(count == kept);
        REQUIRE((count == 0) == (bytes == 0));
        int rc = sse_store_last_id(s, &last);
        if (!kept) {
            REQUIRE(rc == SSE_ENOTFOUND);
        } else if (rc != SSE_ENOMEM) {
            REQUIRE(rc == 0 && last.len == m.lens[m.n - 1] &&
                    (!last.len || !memcmp(last.data, m.ids[m.n - 1], last.len)));
        }
    }
out:
    sse_buf_free(&last);
    sse_frame_unref(frame);
    sse_store_free(s);
    return 0;
}
