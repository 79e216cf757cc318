/*
 * bus_internal.h: what the bus backends share (internal to src/bus and the backends above it).
 */
#ifndef SSE__BUS_INTERNAL_H
#define SSE__BUS_INTERNAL_H

#include <sse/bus.h>
#include <sse/store.h>

/*
 * Append a decoded message to store as one entry (its frame made from the message's bytes; the
 * store takes its own reference). cb/ud as for sse_store_append. Returns what it returns, or
 * SSE_ENOMEM (nothing appended, no callback).
 */
int sse__bus_msg_store(sse_store *store, const sse_bus_msg *m, sse_store_append_cb cb, void *ud);

#endif
