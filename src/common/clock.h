/*
 * clock.h: the clocks of the project (internal, header-only so that every module and the "app"
 * modules of the ssehub program can use it without a link dependency).
 *
 *   sse__now_ms()   wall clock, milliseconds since the Unix epoch: the time of an update, a
 *                   token's exp/nbf, what a subscription event reports.
 *   sse__mono_ms()  monotonic milliseconds (unrelated to the date): deadlines, timeouts,
 *                   durations; never goes back when the wall clock is set.
 *   sse__mono_ns()  the same in nanoseconds, for measurements.
 *
 * Code on a libuv loop that only needs the loop's own notion of "now" uses uv_now() instead.
 */
#ifndef SSE__COMMON_CLOCK_H
#define SSE__COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline long long sse__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t sse__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline long long sse__mono_ms(void)
{
    return (long long)(sse__mono_ns() / 1000000u);
}

#endif
