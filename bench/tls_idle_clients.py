#!/usr/bin/env python3
"""tls_idle_clients.py: hold N idle EventSource connections over TLS (or plain TCP) open.

Usage: tls_idle_clients.py HOST PORT PATH N [plain]
Opens N connections one after the other (TLS 1.3 handshake, ALPN http/1.1, no certificate
check), sends GET PATH with Accept: text/event-stream, reads the response head, and keeps the
socket. Prints "ready N" (or "failed K" on the first error) and then waits until stdin closes.
Used by bench/run-tls-idle.sh to read the server's memory per idle subscriber.
"""
import socket
import ssl
import sys

host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
plain = len(sys.argv) > 5 and sys.argv[5] == "plain"
ctx = ssl._create_unverified_context()
ctx.set_alpn_protocols(["http/1.1"])
socks = []
req = ("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n" % (path, host)).encode()
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=10)
        if not plain:
            s = ctx.wrap_socket(s, server_hostname="localhost")
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
    except OSError as e:
        print("failed %d %s" % (i, e), flush=True)
        break
else:
    print("ready %d" % len(socks), flush=True)
sys.stdin.read()
