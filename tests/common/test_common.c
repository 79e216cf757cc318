/*
 * test_common.c: unit tests of the shared containers in src/common: the capped sse_buf and the
 * reference-counted sse_frame, including their behaviour under failing allocations.
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "harness/check.h"
#include "harness/failalloc.h"

#include <pthread.h>
#include <sse/buf.h>
#include <sse/error.h>
#include <sse/log.h>
#include <stdint.h>
#include <string.h>

static int test_buf_basic(void)
{
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK(b.data == NULL);
    CHECK_EQ_UINT(b.len, 0);
    CHECK_EQ_STR(sse_buf_cstr(&b), "");
    CHECK_EQ_INT(sse_buf_append(&b, "abc", 3), 0);
    CHECK_EQ_INT(sse_buf_append_str(&b, "de"), 0);
    CHECK_EQ_INT(sse_buf_append_byte(&b, 'f'), 0);
    CHECK_EQ_INT(sse_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    CHECK_EQ_STR(sse_buf_cstr(&b), "abcdef-42-x");
    CHECK_EQ_UINT(b.len, 11);
    CHECK(b.cap > b.len); /* room for the NUL */
    size_t cap = b.cap;
    sse_buf_reset(&b);
    CHECK_EQ_UINT(b.len, 0);
    CHECK_EQ_UINT(b.cap, cap); /* allocation kept */
    CHECK_EQ_INT(sse_buf_append(&b, "", 0), 0);
    CHECK_EQ_INT(sse_buf_append(&b, NULL, 0), 0);
    sse_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_EQ_UINT(b.cap, 0);
    CHECK_EQ_INT(sse_buf_append(&b, "again", 5), 0); /* reusable after free */
    CHECK_EQ_STR(sse_buf_cstr(&b), "again");
    sse_buf_free(&b);
    sse_buf_free(&b); /* twice is fine */
    return 0;
}

static int test_buf_cap(void)
{
    sse_buf b;
    sse_buf_init(&b, 8);
    CHECK_EQ_INT(sse_buf_append(&b, "12345", 5), 0);
    CHECK_EQ_INT(sse_buf_append(&b, "6789", 4), SSE_ELIMIT);
    CHECK_EQ_MEM(b.data, b.len, "12345", 5);       /* nothing appended */
    CHECK_EQ_INT(sse_buf_append(&b, "678", 3), 0); /* exactly the cap */
    CHECK_EQ_INT(sse_buf_append_byte(&b, 'x'), SSE_ELIMIT);
    CHECK_EQ_INT(sse_buf_printf(&b, "%d", 1), SSE_ELIMIT);
    CHECK_EQ_INT(sse_buf_reserve(&b, 1), SSE_ELIMIT);
    CHECK_EQ_INT(sse_buf_reserve(&b, 0), 0);
    CHECK_EQ_MEM(b.data, b.len, "12345678", 8);
    CHECK_EQ_STR(sse_buf_cstr(&b), "12345678");              /* the NUL fits past the cap */
    CHECK_EQ_INT(sse_buf_reserve(&b, SIZE_MAX), SSE_ELIMIT); /* no overflow */
    sse_buf_free(&b);
    /* a zeroed struct behaves like sse_buf_init(b, 0) */
    sse_buf z;
    memset(&z, 0, sizeof(z));
    CHECK_EQ_INT(sse_buf_append(&z, "ok", 2), 0);
    CHECK_EQ_INT(sse_buf_reserve(&z, SIZE_MAX), SSE_ELIMIT);
    sse_buf_free(&z);
    return 0;
}

static int test_buf_reserve_no_realloc(void)
{
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_buf_reserve(&b, 1000), 0);
    char *p = b.data;
    size_t cap = b.cap;
    CHECK(cap >= 1001);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(sse_buf_append_byte(&b, (char)('a' + i % 26)), 0);
    CHECK(b.data == p); /* reserved once, never moved */
    CHECK_EQ_UINT(b.cap, cap);
    CHECK_EQ_UINT(b.len, 1000);
    sse_buf_free(&b);
    return 0;
}

static int test_buf_failalloc(void)
{
    /* every failure leaves the buffer exactly as it was */
    int hit = 1;
    long n;
    for (n = 1; hit && n < 100; n++) {
        sse_buf b;
        sse_buf_init(&b, 0);
        int rc = 0, step = 0;
        failalloc_arm(n);
        for (step = 0; step < 20 && rc == 0; step++) {
            size_t before = b.len;
            char *data_before = b.data;
            rc = sse_buf_append(&b, "0123456789abcdef0123456789abcdef", 32);
            if (rc) {
                CHECK_EQ_INT(rc, SSE_ENOMEM);
                CHECK_EQ_UINT(b.len, before);
                CHECK(b.data == data_before);
            }
        }
        if (rc == 0)
            rc = sse_buf_printf(&b, "%0500d", 7);
        hit = failalloc_was_hit();
        failalloc_arm(0);
        CHECK_EQ_INT(rc, hit ? SSE_ENOMEM : 0);
        sse_buf_free(&b);
    }
    CHECK(!hit);
    CHECK(n > 3);
    return 0;
}

static int test_frame_copy_and_refs(void)
{
    sse_frame *f;
    char src[] = "data: x\n\n";
    CHECK_EQ_INT(sse_frame_new(&f, src, 9), 0);
    src[0] = 'X'; /* the frame holds a copy */
    CHECK_EQ_MEM(sse_frame_data(f), sse_frame_len(f), "data: x\n\n", 9);
    CHECK(sse_frame_ref(f) == f);
    sse_frame_ref(f);
    sse_frame_unref(f);
    sse_frame_unref(f);
    CHECK_EQ_MEM(sse_frame_data(f), sse_frame_len(f), "data: x\n\n", 9); /* still alive */
    sse_frame_unref(f); /* the last one frees (ASan would see a leak or a double free) */
    sse_frame_unref(NULL);
    CHECK_EQ_INT(sse_frame_new(&f, NULL, 0), 0);
    CHECK_EQ_UINT(sse_frame_len(f), 0);
    sse_frame_unref(f);
    return 0;
}

static int test_frame_from_buf(void)
{
    sse_buf b;
    sse_frame *f;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_buf_append_str(&b, "id: 1\ndata: y\n\n"), 0);
    const char *bytes = b.data;
    CHECK_EQ_INT(sse_frame_from_buf(&f, &b), 0);
    CHECK(sse_frame_data(f) == bytes); /* taken over, not copied */
    CHECK_EQ_UINT(sse_frame_len(f), 15);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    CHECK_EQ_INT(sse_buf_append_str(&b, "reuse"), 0); /* the buffer is reusable */
    sse_frame_unref(f);
    sse_buf_free(&b);
    /* an empty, never-allocated buffer */
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_frame_from_buf(&f, &b), 0);
    CHECK_EQ_UINT(sse_frame_len(f), 0);
    CHECK(sse_frame_data(f) != NULL);
    sse_frame_unref(f);
    /* allocation failure: the buffer is unchanged */
    CHECK_EQ_INT(sse_buf_append_str(&b, "keep"), 0);
    failalloc_arm(1);
    int rc = sse_frame_from_buf(&f, &b);
    failalloc_arm(0);
    CHECK_EQ_INT(rc, SSE_ENOMEM);
    CHECK_EQ_MEM(b.data, b.len, "keep", 4);
    failalloc_arm(1);
    rc = sse_frame_new(&f, "x", 1);
    failalloc_arm(0);
    CHECK_EQ_INT(rc, SSE_ENOMEM);
    sse_buf_free(&b);
    return 0;
}

/* References taken and dropped from several threads: the frame dies exactly once. */
static void *ref_worker(void *arg)
{
    sse_frame *f = arg;
    for (int i = 0; i < 100000; i++) {
        sse_frame_ref(f);
        sse_frame_unref(f);
    }
    sse_frame_unref(f); /* the reference the main thread gave this worker */
    return NULL;
}

static int test_frame_threads(void)
{
    sse_frame *f;
    pthread_t t[4];
    CHECK_EQ_INT(sse_frame_new(&f, "shared", 6), 0);
    for (int i = 0; i < 4; i++) {
        sse_frame_ref(f);
        CHECK_EQ_INT(pthread_create(&t[i], NULL, ref_worker, f), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_MEM(sse_frame_data(f), sse_frame_len(f), "shared", 6);
    sse_frame_unref(f);
    return 0;
}

static int test_errors(void)
{
    CHECK_EQ_STR(sse_errname(SSE_ELIMIT), "SSE_ELIMIT");
    CHECK_EQ_STR(sse_errname(SSE_ENOMEM), "SSE_ENOMEM");
    CHECK(strlen(sse_strerror(SSE_EINVAL)) > 0);
    CHECK(strcmp(sse_strerror(-2), "unknown error") != 0); /* -ENOENT has a text */
    CHECK_EQ_STR(sse_errname(-999999), "SSE_EUNKNOWN");
    return 0;
}

static int test_log_format(void)
{
    char line[128];
    size_t n = sse_log_format(line, sizeof(line), SSE_LOG_WARN, "worker 2", "hello");
    CHECK_EQ_UINT(n, strlen(line));
    /* 2026-12-06T13:16:38Z warn  worker 2: hello\n */
    CHECK_EQ_UINT(n, 20 + 1 + 5 + 1 + strlen("worker 2: hello\n"));
    CHECK(line[4] == '-' && line[10] == 'T' && line[19] == 'Z');
    CHECK_EQ_STR(line + 21, "warn  worker 2: hello\n");
    n = sse_log_format(line, sizeof(line), SSE_LOG_DEBUG, NULL, "x");
    CHECK_EQ_STR(line + 21, "debug x\n");
    n = sse_log_format(line, sizeof(line), 9, NULL, "x");
    CHECK_EQ_STR(line + 21, "?     x\n");
    char small[24]; /* cut, but still one line */
    n = sse_log_format(small, sizeof(small), SSE_LOG_INFO, NULL, "a long message");
    CHECK_EQ_UINT(n, sizeof(small) - 1);
    CHECK(small[n - 1] == '\n' && small[n] == '\0');
    CHECK_EQ_UINT(sse_log_format(small, 1, SSE_LOG_INFO, NULL, "x"), 0);
    CHECK_EQ_STR(sse_log_level_name(SSE_LOG_ERROR), "error");
    return 0;
}

static int test_clock(void)
{
    long long wall = sse__now_ms(), m1 = sse__mono_ms();
    CHECK(wall > 1700000000000LL); /* after November 2023 */
    long long m2 = sse__mono_ms();
    CHECK(m2 >= m1);
    CHECK(sse__mono_ns() / 1000000u >= (uint64_t)m2);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_log_format), CHECK_TEST(test_clock), CHECK_TEST(test_buf_basic),
           CHECK_TEST(test_buf_cap), CHECK_TEST(test_buf_reserve_no_realloc),
           CHECK_TEST(test_buf_failalloc), CHECK_TEST(test_frame_copy_and_refs),
           CHECK_TEST(test_frame_from_buf), CHECK_TEST(test_frame_threads), CHECK_TEST(test_errors))
