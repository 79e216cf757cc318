/*
 * test_store.c: the in-memory history backend through the store.h vtable: append order and
 * positions, replay after an id / from the earliest / unknown id, scan back, last id, trimming
 * by count, bytes and age, duplicate ids, frames shared not copied, allocation failures.
 */
#include "harness/check.h"
#include "harness/failalloc.h"

#include <sse/store.h>

struct collect {
    char ids[64][32];
    size_t n;
    int found, done;
    size_t stop_after;
};

static int each(void *ud, const sse_store_entry *e)
{
    struct collect *c = ud;
    if (c->n < 64)
        snprintf(c->ids[c->n], sizeof(c->ids[0]), "%.*s", (int)e->id_len, e->id);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void done(void *ud, int status, int found)
{
    struct collect *c = ud;
    c->found = found;
    c->done = status == 0 ? 1 : -1;
}

static uint64_t last_pos;
static void appended(void *ud, int status, uint64_t pos)
{
    (void)ud;
    last_pos = status ? 0 : pos;
}

static int add(sse_store *s, const char *id, const char *topic, size_t payload, long long t)
{
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    sse_frame *f;
    if (sse_frame_new(&f, buf, payload))
        return -1;
    const char *topics[1] = {topic};
    sse_store_entry e = {0};
    e.id = id;
    e.id_len = strlen(id);
    e.topics = topics;
    e.n_topics = 1;
    e.frame = f;
    e.time_ms = t;
    int rc = sse_store_append(s, &e, appended, NULL);
    sse_frame_unref(f);
    return rc;
}

static int test_append_replay(void)
{
    sse_store *s;
    CHECK_EQ_INT(sse_store_memory_new(&s, NULL), 0);
    char id[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "id%d", i);
        CHECK_EQ_INT(add(s, id, "/t", 10, 1000), 0);
        CHECK_EQ_UINT(last_pos, (unsigned)i);
    }
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, "id2", 3, each, done, &c), 0);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 3);
    CHECK_EQ_STR(c.ids[0], "id3");
    CHECK_EQ_STR(c.ids[2], "id5");

    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 5);
    CHECK_EQ_STR(c.ids[0], "id1");

    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_replay(s, "nope", 4, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 0);
    CHECK_EQ_UINT(c.n, 0);
    CHECK_EQ_INT(c.done, 1);

    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_replay(s, "id5", 3, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 0);

    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    CHECK_EQ_UINT(c.n, 2);

    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_scan_back(s, "id4", 3, 2, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 2);
    CHECK_EQ_STR(c.ids[0], "id4");
    CHECK_EQ_STR(c.ids[1], "id3");

    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_store_last_id(s, &b), 0);
    CHECK_EQ_STR(sse_buf_cstr(&b), "id5");
    sse_buf_free(&b);
    sse_store_free(s);
    return 0;
}

static int test_empty(void)
{
    sse_store *s;
    CHECK_EQ_INT(sse_store_memory_new(&s, NULL), 0);
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_store_last_id(s, &b), SSE_ENOTFOUND);
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 0);
    sse_buf_free(&b);
    sse_store_free(s);
    return 0;
}

static int test_trim_count_bytes_age(void)
{
    sse_store_limits lim = {3, 0, 0};
    sse_store *s;
    CHECK_EQ_INT(sse_store_memory_new(&s, &lim), 0);
    char id[16];
    for (int i = 1; i <= 200; i++) { /* past the ring's first growth */
        snprintf(id, sizeof(id), "id%d", i);
        CHECK_EQ_INT(add(s, id, "/t", 10, 1000), 0);
    }
    size_t count, bytes;
    sse_store_stats(s, &count, &bytes);
    CHECK_EQ_UINT(count, 3);
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, "id197", 5, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 0); /* trimmed away */
    CHECK_EQ_INT(sse_store_replay(s, "id198", 5, each, done, &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 2);
    sse_store_free(s);

    sse_store_limits lb = {0, 3000, 0};
    CHECK_EQ_INT(sse_store_memory_new(&s, &lb), 0);
    for (int i = 1; i <= 10; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        CHECK_EQ_INT(add(s, id, "/t", 1000, 1000), 0);
    }
    sse_store_stats(s, &count, &bytes);
    CHECK(bytes <= 3000);
    CHECK(count >= 1 && count <= 2);
    sse_store_free(s);

    sse_store_limits la = {0, 0, 500};
    CHECK_EQ_INT(sse_store_memory_new(&s, &la), 0);
    CHECK_EQ_INT(add(s, "old", "/t", 10, 1000), 0);
    CHECK_EQ_INT(add(s, "mid", "/t", 10, 1400), 0);
    CHECK_EQ_INT(add(s, "new", "/t", 10, 1600), 0); /* "old" is now 600 ms old */
    sse_store_stats(s, &count, &bytes);
    CHECK_EQ_UINT(count, 2);
    sse_store_limits now = {0, 0, 500};
    CHECK_EQ_INT(sse_store_trim(s, &now, 10000), 0);
    sse_store_stats(s, &count, &bytes);
    CHECK_EQ_UINT(count, 0);
    sse_store_free(s);
    return 0;
}

static int test_duplicate_ids(void)
{
    sse_store *s;
    CHECK_EQ_INT(sse_store_memory_new(&s, NULL), 0);
    CHECK_EQ_INT(add(s, "a", "/t", 1, 0), 0);
    CHECK_EQ_INT(add(s, "dup", "/t", 1, 0), 0);
    CHECK_EQ_INT(add(s, "b", "/t", 1, 0), 0);
    CHECK_EQ_INT(add(s, "dup", "/t", 1, 0), 0);
    CHECK_EQ_INT(add(s, "c", "/t", 1, 0), 0);
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, "dup", 3, each, done, &c), 0);
    CHECK_EQ_UINT(c.n, 1); /* after the newest "dup" */
    CHECK_EQ_STR(c.ids[0], "c");
    sse_store_free(s);
    return 0;
}

static int test_frame_shared(void)
{
    sse_store *s;
    CHECK_EQ_INT(sse_store_memory_new(&s, NULL), 0);
    sse_frame *f;
    CHECK_EQ_INT(sse_frame_new(&f, "data: x\n\n", 9), 0);
    const char *topics[2] = {"/a", "/b"};
    sse_store_entry e = {0};
    e.id = "x";
    e.id_len = 1;
    e.topics = topics;
    e.n_topics = 2;
    e.is_private = 1;
    e.frame = f;
    CHECK_EQ_INT(sse_store_append(s, &e, NULL, NULL), 0);
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    CHECK_EQ_UINT(c.n, 1);
    sse_frame_unref(f); /* the store still holds it */
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    sse_store_free(s);
    return 0;
}

static int test_alloc_failures(void)
{
    for (long n = 1; n < 200; n++) {
        sse_store *s = NULL;
        failalloc_arm(n);
        int rc = sse_store_memory_new(&s, NULL);
        int ok = rc == 0;
        for (int i = 0; ok && i < 70; i++) {
            char id[16];
            snprintf(id, sizeof(id), "i%d", i);
            sse_frame *f;
            if (sse_frame_new(&f, "x", 1)) {
                ok = 0;
                break;
            }
            const char *topics[1] = {"/t"};
            sse_store_entry e = {0};
            e.id = id;
            e.id_len = strlen(id);
            e.topics = topics;
            e.n_topics = 1;
            e.frame = f;
            rc = sse_store_append(s, &e, NULL, NULL);
            sse_frame_unref(f);
            if (rc) {
                CHECK_EQ_INT(rc, SSE_ENOMEM);
                ok = 0;
            }
        }
        int hit = failalloc_hit_;
        failalloc_arm(0);
        sse_store_free(s);
        if (!hit)
            return 0;
    }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_append_replay), CHECK_TEST(test_empty),
           CHECK_TEST(test_trim_count_bytes_age), CHECK_TEST(test_duplicate_ids),
           CHECK_TEST(test_frame_shared), CHECK_TEST(test_alloc_failures))
