/*
 * fake_store.h: two test backends of store.h, shared by tests/store and tests/bus.
 *
 * The asynchronous fake wraps a memory store and reports later, from timers on its loop, the way
 * a disk or network store would, and OUT OF TURN: the second append of a burst is reported
 * before the first. An append reaches the inner store when it is called (so positions follow the
 * call order and a bad entry is refused synchronously) but replay and scan_back see it only once
 * its callback has reported (replay_from too). In hold mode nothing completes until the test says
 * which append to report (fake_async_complete), so a test can check what happens while the store
 * holds it.
 *
 * The failing fake refuses every append, in one of three ways (fake_fail_mode): an error
 * return, an error through the callback before append returns, or one later from the loop.
 * Everything else answers as an empty memory store would.
 *
 * Both fakes close asynchronously: calls in flight fail with SSE_ECLOSED, then done fires from
 * the loop. They belong to one loop thread, like every store.
 */
#ifndef SSE_TEST_FAKE_STORE_H
#define SSE_TEST_FAKE_STORE_H

#include <sse/store.h>
#include <uv.h>

/* An asynchronous fake over a memory store with these limits (lim may be NULL). It offers the
 * optional replay_from (deferred like replay); the second constructor leaves it out. */
int fake_async_new(sse_store **out, const sse_store_limits *lim, uv_loop_t *loop);
int fake_async_new_without_replay_from(sse_store **out, const sse_store_limits *lim,
                                       uv_loop_t *loop);
/* 1: replays and scans complete before they return (as the memory store's); appends stay
 * asynchronous. For a sequencer, whose attach needs the history at once. */
void fake_async_set_sync_reads(sse_store *s, int sync);
/* 1: appends wait for fake_async_complete; 0 (default): they complete from timers. */
void fake_async_set_hold(sse_store *s, int hold);
/* Report append number k (0-based, in call order) now. 0, or SSE_ENOTFOUND (no such append
 * in flight). */
int fake_async_complete(sse_store *s, size_t k);
/* Appends called so far, and how many of them have reported. */
size_t fake_async_calls(const sse_store *s);
size_t fake_async_reported(const sse_store *s);
/* The id of append number k ("" if none); borrowed from the fake. */
const char *fake_async_id(const sse_store *s, size_t k);
/* The call numbers in the order their completions were reported; n of them (<= max). */
size_t fake_async_report_order(const sse_store *s, size_t *out, size_t max);
/* Called on the loop thread after each append call (n: appends called so far). */
void fake_async_on_append(sse_store *s, void (*cb)(void *ud, size_t n), void *ud);

enum fake_fail_mode {
    FAKE_FAIL_RETURN = 0, /* append returns SSE_EIO; no callback */
    FAKE_FAIL_CB_NOW,     /* append calls back SSE_EIO before it returns 0 */
    FAKE_FAIL_CB_LATER    /* append returns 0; SSE_EIO arrives from the loop */
};
/* A store whose appends all fail in this mode. */
int fake_fail_new(sse_store **out, enum fake_fail_mode mode, uv_loop_t *loop);

#endif
