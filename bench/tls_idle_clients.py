#!/usr/bin/env python3
"""tls_idle_clients.py: hold N idle EventSource streams open, over HTTP/1.1 or HTTP/2, TLS or not.

Usage: tls_idle_clients.py HOST PORT PATH N [MODE [STREAMS_PER_CONN]]
MODE: tls (default: TLS, ALPN http/1.1), plain (HTTP/1.1 over TCP), h2 (TLS, ALPN h2), h2c
(HTTP/2 by prior knowledge over TCP). STREAMS_PER_CONN (h2, h2c; default 1): event streams
opened on each connection, so N streams take ceil(N / STREAMS_PER_CONN) connections.
TLS: a TLS 1.3 handshake, no certificate check. HTTP/1.1: GET PATH with Accept:
text/event-stream, the response head read. HTTP/2: the preface, an empty SETTINGS, one HEADERS
frame per stream (HPACK literals, hand-made: no HTTP/2 library needed), then frames are read
until the server's SETTINGS (acknowledged) and a 200 response HEADERS for every stream came.
Then the sockets are kept and nothing more is read. Prints "ready N" (or "failed K ..." on the
first error) and waits until stdin closes. Used by bench/run-tls-idle.sh (server memory per
idle subscriber).
"""
import socket
import ssl
import struct
import sys

host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "tls"
per_conn = int(sys.argv[6]) if len(sys.argv) > 6 else 1
if mode not in ("tls", "plain", "h2", "h2c") or per_conn < 1:
    sys.exit("usage: tls_idle_clients.py HOST PORT PATH N [tls|plain|h2|h2c [STREAMS_PER_CONN]]")
ctx = ssl._create_unverified_context()
ctx.set_alpn_protocols(["h2"] if mode == "h2" else ["http/1.1"])


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def lit(name, value):  # HPACK: literal header field without indexing, new name, no Huffman
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def recv_exact(s, k, buf):
    while len(buf) < k:
        c = s.recv(65536)
        if not c:
            raise OSError("closed")
        buf += c
    return buf


def h2_open(s, k):
    """k streams on a fresh HTTP/2 connection: requests sent, every 200 response head read."""
    scheme = b"https" if mode == "h2" else b"http"
    block = lit(b":method", b"GET") + lit(b":scheme", scheme) + lit(b":authority", b"localhost") \
        + lit(b":path", path.encode()) + lit(b"accept", b"text/event-stream")
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)
    for i in range(k):
        out += frame(1, 5, 2 * i + 1, block)  # END_STREAM | END_HEADERS
    s.sendall(out)
    buf, settings, heads = b"", False, 0
    while not settings or heads < k:
        buf = recv_exact(s, 9, buf)
        ln = struct.unpack(">I", b"\0" + buf[:3])[0]
        ftype, flags = buf[3], buf[4]
        buf = recv_exact(s, 9 + ln, buf)
        payload, buf = buf[9:9 + ln], buf[9 + ln:]
        if ftype == 4 and not flags & 1:  # the server's SETTINGS
            s.sendall(frame(4, 1, 0))
            settings = True
        elif ftype == 1:  # HEADERS: the first field must be :status 200 (static index 8)
            p = payload
            if flags & 8:  # PADDED
                p = p[1:]
            if flags & 0x20:  # PRIORITY
                p = p[5:]
            while p and p[0] & 0xE0 == 0x20:  # dynamic table size updates (5-bit integer)
                i = 1
                if p[0] & 0x1F == 0x1F:
                    while i < len(p) and p[i] & 0x80:
                        i += 1
                    i += 1
                p = p[i:]
            if not p or p[0] != 0x88:
                raise OSError("status field %r" % p[:8])
            heads += 1
        elif ftype == 3:  # RST_STREAM
            raise OSError("stream reset, code %d" % struct.unpack(">I", payload)[0])
        elif ftype == 7:  # GOAWAY
            raise OSError("goaway")


socks = []
req = ("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n" % (path, host)).encode()
opened = 0
try:
    while opened < n:
        s = socket.create_connection((host, port), timeout=10)
        if mode in ("tls", "h2"):
            s = ctx.wrap_socket(s, server_hostname="localhost")
            if mode == "h2" and s.selected_alpn_protocol() != "h2":
                raise OSError("ALPN: %r" % s.selected_alpn_protocol())
        if mode in ("h2", "h2c"):
            k = min(per_conn, n - opened)
            h2_open(s, k)
        else:
            k = 1
            s.sendall(req)
            head = b""
            while b"\r\n\r\n" not in head:
                c = s.recv(4096)
                if not c:
                    raise OSError("closed")
                head += c
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise OSError("status: %r" % head[:60])
        socks.append(s)
        opened += k
except OSError as e:
    print("failed %d %s" % (opened, e), flush=True)
else:
    print("ready %d streams %d conns" % (opened, len(socks)), flush=True)
sys.stdin.read()
