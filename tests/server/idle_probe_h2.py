#!/usr/bin/env python3
# idle_probe_h2.py IDLE_PROBE N [CERT KEY]: memory per idle event stream over HTTP/1.1 and over
# HTTP/2 (h2c, 1 and 20 streams per connection), and with CERT and KEY the same three over TLS
# (ALPN http/1.1 or h2), each against a fresh idle_probe process, in one run.
# Prints, per protocol, RSS growth, malloc growth (glibc's bytes in allocated chunks) and heap
# growth (what glibc holds from the system) divided by N, then the CPU time per delivery of one
# event pushed k times to every stream (queue + flush, inside the server)
# (docs/performance/h2.md, tls.md).
import resource, socket, ssl, struct, subprocess, sys, time, urllib.request

probe, n = sys.argv[1], int(sys.argv[2])
cert = sys.argv[3:5] if len(sys.argv) >= 5 else None
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def frame(t, f, sid, p=b""):
    return struct.pack(">I", len(p))[1:] + bytes([t, f]) + struct.pack(">I", sid) + p


def lit(name, value):  # HPACK literal without indexing, new name, no Huffman
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


HEADERS = lit(b":method", b"GET") + lit(b":scheme", b"http") + lit(b":authority", b"x") + \
    lit(b":path", b"/sub")


def get(port, path):
    return urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path)).read().decode().split()


def measure(port, per_conn, tls_port=None):
    base = get(port, "/rss")
    ctx = ssl._create_unverified_context()
    ctx.set_alpn_protocols(["h2"] if per_conn else ["http/1.1"])
    socks = []
    opened = 0
    while opened < n:
        s = socket.socket()
        s.connect(("127.0.0.1", tls_port or port))
        if tls_port:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        if per_conn == 0:
            s.sendall(b"GET /sub HTTP/1.1\r\nHost: x\r\n\r\n")
            opened += 1
        else:
            k = min(per_conn, n - opened)
            out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(4, 1, 0)
            for i in range(k):
                out += frame(1, 5, 2 * i + 1, HEADERS)  # END_HEADERS | END_STREAM
            s.sendall(out)
            opened += k
        socks.append(s)
    deadline = time.time() + 60
    while int(get(port, "/rss")[0]) < n and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    after = get(port, "/rss")
    assert int(after[0]) == n, after
    rss = (int(after[1]) - int(base[1])) * 1024 / n
    mal = (int(after[2]) - int(base[2])) / n
    heap = (int(after[3]) - int(base[3])) / n
    push = []
    for k in (1, 1, 1, 10):  # one 75-byte event k times to every stream, queue + flush, CPU
        r = dict(kv.split("=") for kv in get(port, "/pub?k=%d" % k)[1:])
        push.append("k=%d %s ns" % (k, r["cpu_ns_per_delivery"]))
        time.sleep(0.3)
    for s in socks:
        s.close()
    return len(socks), rss, mal, heap, push


rows = [("HTTP/1.1", 0, 18091, False), ("h2c, 1 stream/conn", 1, 18092, False),
        ("h2c, 20 streams/conn", 20, 18093, False)]
if cert:
    rows += [("TLS + HTTP/1.1", 0, 18094, True), ("h2 over TLS, 1 stream/conn", 1, 18095, True),
             ("h2 over TLS, 20 streams/conn", 20, 18096, True)]
for label, per_conn, port, tls in rows:
    args = [probe, str(port)] + ([str(port + 100)] + cert if tls else [])
    p = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        conns, rss, mal, heap, push = measure(port, per_conn, port + 100 if tls else None)
        print("%-28s streams %d conns %5d: RSS %6.0f, malloc %6.0f, heap %6.0f bytes/stream" %
              (label, n, conns, rss, mal, heap))
        print("%-28s CPU per delivery: %s" % ("", ", ".join(push)))
    finally:
        p.terminate()
        p.wait()
