/**
 * sse.h: the umbrella header of libsse — includes every public header.
 *
 *   format.h  text/event-stream encoder and incremental parser (libc only)
 *   buf.h     sse_buf (capped growable buffer) and sse_frame (shared refcounted bytes)
 *   form.h    sse_form_next(): application/x-www-form-urlencoded decoding
 *   server.h  the embeddable HTTP/SSE server on libuv
 *   hub.h     the Mercure hub on top of the server
 *   store.h   the history storage interface used by the hub
 *   token.h   sse_token_sign(): JWS/JWT signing for programs that mint tokens for a hub
 *   client.h  the EventSource client on libcurl
 *   error.h   error codes, sse_strerror(), sse_errname()
 *   log.h     log levels and the one log line format
 */
#ifndef SSE_SSE_H
#define SSE_SSE_H

#include <sse/buf.h>
#include <sse/bus.h>
#include <sse/bus_redis.h>
#include <sse/client.h>
#include <sse/error.h>
#include <sse/form.h>
#include <sse/format.h>
#include <sse/hub.h>
#include <sse/log.h>
#include <sse/server.h>
#include <sse/store.h>
#include <sse/token.h>
#include <sse/version.h>

#endif
