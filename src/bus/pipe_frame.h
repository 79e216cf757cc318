/*
 * pipe_frame.h: the framing on the Unix stream socket between a pipe-bus member (pipe.c) and
 * the sequencer (sequencer.c). Internal to src/bus.
 *
 * A frame: u32 length, big-endian (the type byte + the payload) | u8 type | payload. The payload
 * of an update is one bus message (bus.h), carried as it is.
 */
#ifndef SSE__BUS_PIPE_FRAME_H
#define SSE__BUS_PIPE_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    SSE__PIPE_UPDATE = 'U',  /* member -> sequencer: publish; sequencer -> member: apply */
    SSE__PIPE_PAST = 'P',    /* sequencer -> member: a history message (store, no fan-out) */
    SSE__PIPE_HISTEND = 'H', /* sequencer -> member: end of the history */
    SSE__PIPE_READY = 'R',   /* member -> sequencer: listening */
    SSE__PIPE_ACK = 'A',     /* sequencer -> member: your oldest unacknowledged publish is in */
    SSE__PIPE_NACK = 'N',    /* sequencer -> member: ... was refused (it could not be stored) */
    /* sequencer -> member, with followers (sse_bus_seq_options.followers): apply, the payload
       being the u64 big-endian position the store gave it (0: not stored) + the bus message.
       With followers the end mark 'H' carries a u64 too: the position relayed so far. Both
       ends are one binary: no compatibility with other versions is kept. */
    SSE__PIPE_UPDATE_AT = 'V',
    SSE__PIPE_HDR = 5
};

static inline void sse__pipe_put_hdr(unsigned char *h, size_t payload, int type)
{
    uint32_t n = (uint32_t)(payload + 1);
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    h[4] = (unsigned char)type;
}

static inline void sse__pipe_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static inline uint64_t sse__pipe_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The length field of a header (the type byte + the payload). */
static inline uint32_t sse__pipe_len(const unsigned char *h)
{
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

#endif
