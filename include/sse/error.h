/**
 * error.h: error codes shared by every part of libsse, and the export macro.
 *
 * Fallible calls return int: 0 is success, negative is failure. Our own codes sit at or
 * below -1000 so that a negated errno (or a libuv UV_E* code) passes through unchanged.
 * Codes are never renumbered; new ones are added at the end.
 */
#ifndef SSE_ERROR_H
#define SSE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SSE_BUILDING) || defined(__GNUC__)
#define SSE_API __attribute__((visibility("default")))
#else
#define SSE_API
#endif

enum {
    SSE_OK = 0,
    SSE_ENOMEM = -1000,      /* an allocation failed; nothing was changed */
    SSE_EINVAL = -1001,      /* an argument is not acceptable (e.g. CR/LF in an event id) */
    SSE_ELIMIT = -1002,      /* a configured limit was exceeded (line, event, queue, body...) */
    SSE_ECANCELED = -1003,   /* a callback asked to stop */
    SSE_ECLOSED = -1004,     /* the object is closed or closing */
    SSE_EPROTO = -1005,      /* the peer broke the protocol (malformed HTTP, bad status...) */
    SSE_EIO = -1006,         /* an I/O error (read, write, network) */
    SSE_EAUTH = -1007,       /* authentication or authorization failed */
    SSE_ETIMEDOUT = -1008,   /* a time limit ran out */
    SSE_ENOTFOUND = -1009,   /* no such thing (route, id, file) */
    SSE_EBUSY = -1010,       /* try again later (too many connections, queue full) */
    SSE_EUNSUPPORTED = -1011 /* not supported by this build or backend */
};

/** A static, human-readable description of an error code (any code, ours or -errno). */
SSE_API const char *sse_strerror(int code);
/** A static symbolic name of an error code, e.g. "SSE_ELIMIT" or "ECONNRESET". */
SSE_API const char *sse_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
