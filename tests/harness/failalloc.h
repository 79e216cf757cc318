/*
 * failalloc.h: an allocator for tests that fails the Nth allocation (header-only).
 *
 * Sweep: for n = 1, 2, ... run the operation with failalloc_arm(n) until it succeeds without
 * the failure being hit; every run must fail cleanly (an error code, no leak, no crash).
 */
#ifndef SSE_TEST_FAILALLOC_H
#define SSE_TEST_FAILALLOC_H

#include "common/alloc.h"

#include <stdlib.h>

static long failalloc_countdown_ = -1; /* allocations left before the failing one; -1 = off */
static int failalloc_hit_ = 0;

static void *failalloc_malloc_(size_t n)
{
    if (failalloc_countdown_ >= 0 && failalloc_countdown_-- == 0) {
        failalloc_hit_ = 1;
        return NULL;
    }
    return malloc(n);
}

static void *failalloc_realloc_(void *p, size_t n)
{
    if (failalloc_countdown_ >= 0 && failalloc_countdown_-- == 0) {
        failalloc_hit_ = 1;
        return NULL;
    }
    return realloc(p, n);
}

/* Make allocation number n (1-based) from now fail; n = 0 disarms. */
static inline void failalloc_arm(long n)
{
    static const struct sse__allocator a = {failalloc_malloc_, failalloc_realloc_, free};
    failalloc_hit_ = 0;
    failalloc_countdown_ = n > 0 ? n - 1 : -1;
    sse__set_allocator(n > 0 ? &a : NULL);
}

/* Whether the armed failure happened since failalloc_arm. */
static inline int failalloc_was_hit(void)
{
    return failalloc_hit_;
}

#endif
