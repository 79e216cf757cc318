#!/usr/bin/env python3
"""test_tls.py: `ssehub serve --tls-listen` (HTTPS, issue 12) end to end.

Certificates are made by the `openssl` CLI into a temporary directory. Cases: curl --http1.1
subscribes and publishes over TLS; `ssehub sub --cacert` receives (and refuses an unknown
certificate without it); a plain and a TLS listener at once; SIGHUP reloads the certificate
under live streams (the streams survive, a new connection sees the new certificate, a bad one
is refused and the old one kept); the handshake timeout; garbage instead of a ClientHello; a
slow ClientHello and a slow request after the handshake (slowloris); a peer that vanishes
mid-stream; a pipelined flood that makes the server stop reading and resume from its stash;
--workers 2 (curl --http1.1 and --http2 on both workers, SIGHUP to the master reloads every
worker, a bad certificate refused at start); past --max-connections a TLS connection gets 503
like a plain one, within a budget of 32 over-limit handshakes.
Helpers of test_hub.py (python3 stdlib, 127.0.0.1 port 0).
Usage: test_tls.py PATH/TO/ssehub [test-name-substring]
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as th  # noqa: E402

ONLY = sys.argv[2] if len(sys.argv) > 2 else None
TMP = tempfile.mkdtemp(prefix="ssehub-tls-")


def need(tool):
    if shutil.which(tool):
        return
    if os.environ.get("CI") == "true":
        raise AssertionError("%s is missing (scripts/install-deps test installs it)" % tool)
    raise th.Skip("%s is missing" % tool)


def make_cert(name):
    """A self-signed EC certificate for localhost / 127.0.0.1: (cert path, key path)."""
    need("openssl")
    cert, key = os.path.join(TMP, name + ".crt"), os.path.join(TMP, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=localhost-" + name, "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class TlsHub(th.Hub):
    """A hub with a TLS listener beside the plain one; tls_port from the banner."""

    def __init__(self, cert, key, *args):
        super().__init__("--publisher-jwt-key", th.KEY, "--anonymous", "--tls-listen",
                         "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, *args)
        self.tls_port = None
        deadline = time.monotonic() + 5
        while self.tls_port is None and time.monotonic() < deadline:
            line = self.p.stdout.readline().decode()
            m = re.search(r"listening on https://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.tls_port = int(m.group(1))
        th.check(self.tls_port, "no https line in the banner")


def tls_connect(hub, cafile=None, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", hub.tls_port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def fingerprint(hub):
    s = tls_connect(hub)
    der = s.getpeercert(binary_form=True)
    s.close()
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(cert):
    with open(cert) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


class TlsSub(th.Sub):
    """th.Sub over TLS: the same parsing, a TLS socket."""

    def __init__(self, hub, query, cafile=None):
        self.s = tls_connect(hub, cafile)
        req = ("GET /.well-known/mercure?%s HTTP/1.1\r\nHost: localhost\r\n"
               "Accept: text/event-stream\r\n\r\n" % query)
        self.s.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            c = self.s.recv(65536)
            if not c:
                raise AssertionError("closed before the head")
            self.buf += c
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.raw = b""
        self.closed = False
        self._feed(b"")

    def events(self, n, timeout=3.0):
        """th.Sub.events, plus the records TLS has decrypted already (select cannot see them)."""
        out = []
        deadline = time.time() + timeout
        while True:
            while self.s.pending():
                self._feed(self.s.recv(65536))
            out += super().events(n - len(out), timeout=min(0.1, max(0, deadline - time.time())))
            if len(out) >= n or time.time() >= deadline or self.closed:
                return out


def metric(hub, name):
    _, _, body = th.request(hub, "GET", "/metrics")
    m = re.search(r"^%s (\d+)$" % name, body.decode(), re.M)
    return int(m.group(1)) if m else None


def wait_closed(sock, limit):
    """Seconds until the peer closed sock (EOF or reset), reading what comes; None past limit."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        try:
            if not sock.recv(4096):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return time.monotonic() - t0
    return None


def curl(*args, timeout=10):
    need("curl")
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


# ---------------------------------------------------------------- cases

def t_curl_subscribes_and_publishes():
    """curl --http1.1 and curl --http2 on the same TLS listener: both subscribe and get the
    update (published over HTTP/2); ALPN picks h2 for the one, http/1.1 for the other."""
    cert, key = make_cert("curl")
    h = TlsHub(cert, key)
    base = "https://localhost:%d/.well-known/mercure" % h.tls_port
    need("curl")
    subs = {}
    for proto in ("--http1.1", "--http2"):
        subs[proto] = subprocess.Popen(["curl", "-v", "-sS", "-N", proto, "--cacert", cert,
                                        "--max-time", "6", base + "?topic=/tls/curl"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.6)
    p = curl("--http2", "--cacert", cert, "-H", "Authorization: Bearer " + th.PUB, "-d",
             "topic=/tls/curl", "-d", "data=over-tls", base)
    th.check(p.returncode == 0 and p.stdout.startswith(b"urn:uuid:"), ("publish", p))
    for proto, sub in subs.items():
        deadline = time.monotonic() + 5
        out = b""
        os.set_blocking(sub.stdout.fileno(), False)
        while b"data: over-tls" not in out and time.monotonic() < deadline:
            time.sleep(0.05)
            out += sub.stdout.read() or b""
        sub.kill()
        sub.wait()
        err = sub.stderr.read()
        th.check(b"data: over-tls" in out, ("curl %s subscriber over TLS" % proto, out, err))
        want = b"ALPN: server accepted h2" if proto == "--http2" else \
            b"ALPN: server accepted http/1.1"
        th.check(want in err, (proto, err[-800:]))
    h.stop()


def t_ssehub_sub_and_pub_cacert():
    cert, key = make_cert("cli")
    other, _ = make_cert("other")
    h = TlsHub(cert, key)
    url = "https://localhost:%d/.well-known/mercure?topic=/tls/cli" % h.tls_port
    sub = subprocess.Popen([th.SSEHUB, "sub", "--cacert", cert, "--json", "--max-events", "1",
                            "--timeout-ms", "8000", url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    time.sleep(0.6)
    pub = subprocess.run([th.SSEHUB, "pub", "--cacert", cert, "--hub",
                          "https://localhost:%d/.well-known/mercure" % h.tls_port, "--topic",
                          "/tls/cli", "--data", "via-ssehub", "--token", th.PUB],
                         capture_output=True, timeout=10)
    th.check(pub.returncode == 0, ("ssehub pub over TLS", pub))
    out, err = sub.communicate(timeout=10)
    th.check(b'"data":"via-ssehub"' in out, ("ssehub sub --cacert", out, err))
    # the certificate is verified: another CA is refused, --insecure skips the check
    bad = subprocess.run([th.SSEHUB, "sub", "--cacert", other, "--json", "--no-reconnect",
                          "--timeout-ms", "3000", url], capture_output=True, timeout=10)
    th.check(bad.returncode == 1 and b'"data"' not in bad.stdout, ("wrong CA accepted", bad))
    ins = subprocess.run([th.SSEHUB, "pub", "--insecure", "--hub",
                          "https://localhost:%d/.well-known/mercure" % h.tls_port, "--topic",
                          "/tls/cli", "--data", "x", "--token", th.PUB],
                         capture_output=True, timeout=10)
    th.check(ins.returncode == 0, ("pub --insecure", ins))
    h.stop()


def t_plain_and_tls_at_once():
    cert, key = make_cert("both")
    h = TlsHub(cert, key)
    plain = th.Sub(h, th.q(topic="/tls/both"))
    secure = TlsSub(h, th.q(topic="/tls/both"), cafile=cert)
    th.check(plain.status == 200 and secure.status == 200, (plain.status, secure.status))
    st, _, _ = th.publish(h, {"topic": "/tls/both", "data": "to-both"})
    th.check(st == 200, st)
    for name, s in (("plain", plain), ("tls", secure)):
        got = [e["data"] for e in s.events(1, timeout=3)]
        th.check(got == ["to-both"], (name, got))
    plain.close()
    secure.close()
    h.stop()


def t_sighup_reload_keeps_streams():
    a_cert, a_key = make_cert("a")
    b_cert, b_key = make_cert("b")
    cert, key = os.path.join(TMP, "live.crt"), os.path.join(TMP, "live.key")
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    h = TlsHub(cert, key)
    th.check(fingerprint(h) == file_fingerprint(a_cert), "serves A")
    old = TlsSub(h, th.q(topic="/tls/reload"))
    shutil.copy(b_cert, cert)
    shutil.copy(b_key, key)
    h.p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while fingerprint(h) != file_fingerprint(b_cert) and time.monotonic() < deadline:
        time.sleep(0.05)
    th.check(fingerprint(h) == file_fingerprint(b_cert), "a new connection sees B")
    st, _, _ = th.publish(h, {"topic": "/tls/reload", "data": "after-reload"})
    got = [e["data"] for e in old.events(1, timeout=3)]
    th.check(got == ["after-reload"], ("the stream opened under A survives", got))
    # a bad certificate (and a key that does not match) is refused; B is still served
    with open(cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    h.p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    th.check(fingerprint(h) == file_fingerprint(b_cert), "bad cert: B still served")
    shutil.copy(a_cert, cert)  # A's certificate with B's key
    h.p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    th.check(fingerprint(h) == file_fingerprint(b_cert), "mismatched key: B still served")
    st, _, _ = th.publish(h, {"topic": "/tls/reload", "data": "after-bad"})
    got = [e["data"] for e in old.events(1, timeout=3)]
    th.check(got == ["after-bad"], ("the stream survives refused reloads", got))
    old.close()
    h.stop()
    err = h.p.stderr.read().decode()
    th.check(err.count("the old one stays") == 2, ("refusals logged", err[-1500:]))
    th.check("tls-cert changed" not in err, "same paths: no setting changed")


def t_alpn():
    """ALPN: h2 chosen when offered (--h2, the default), http/1.1 otherwise; with --no-h2,
    http/1.1 over h2 and h2 alone refused with an alert (RFC 7301); no ALPN is HTTP/1.1."""
    cert, key = make_cert("alpn")
    h = TlsHub(cert, key)
    s = tls_connect(h, alpn=("h2", "http/1.1"))
    th.check(s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol())
    s.close()
    s = tls_connect(h, alpn=("http/1.1",))
    th.check(s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol())
    s.close()
    h.stop()
    h = TlsHub(cert, key, "--no-h2")
    s = tls_connect(h, alpn=("h2", "http/1.1"))
    th.check(s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol())
    s.close()
    s = tls_connect(h, alpn=None)
    th.check(s.selected_alpn_protocol() is None, s.selected_alpn_protocol())
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    th.check(s.recv(100).startswith(b"HTTP/1.1 200"), "no ALPN: HTTP/1.1")
    s.close()
    try:
        s = tls_connect(h, alpn=("h2",))
        s.close()
        raise AssertionError("h2 alone was accepted")
    except ssl.SSLError as e:
        th.check("no application protocol" in str(e).lower(), e)
    h.stop()


def t_handshake_timeout():
    cert, key = make_cert("hs")
    h = TlsHub(cert, key, "--tls-handshake-timeout", "300ms")
    idle = socket.create_connection(("127.0.0.1", h.tls_port))
    dt = wait_closed(idle, 5)
    th.check(dt is not None and dt < 2.5, ("silent peer closed after", dt))
    # a slow ClientHello (slowloris in the handshake): bounded by the same timeout
    slow = socket.create_connection(("127.0.0.1", h.tls_port))
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64
    t0 = time.monotonic()
    closed = None
    for b in hello:
        try:
            slow.sendall(bytes([b]))
        except OSError:
            closed = time.monotonic() - t0
            break
        time.sleep(0.1)
    if closed is None:
        closed = wait_closed(slow, 3)
        closed = closed + (time.monotonic() - t0) if closed is not None else None
    th.check(closed is not None and closed < 3.5, ("slow ClientHello closed after", closed))
    th.check(fingerprint(h), "still serving")
    h.stop()


def t_garbage_instead_of_client_hello():
    cert, key = make_cert("junk")
    h = TlsHub(cert, key)
    base = metric(h, "ssehub_connections")
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096),
                 b"\x16\x03\x01\xff\xff" + os.urandom(300), b"\x16\x03\x03\x00\x05hello"):
        s = socket.create_connection(("127.0.0.1", h.tls_port))
        s.sendall(junk)
        dt = wait_closed(s, 3)
        th.check(dt is not None and dt < 1.5, ("garbage %r closed after" % junk[:8], dt))
        s.close()
    time.sleep(0.2)
    th.check(metric(h, "ssehub_connections") == base, "connections freed")
    th.check(fingerprint(h), "still serving")
    h.stop()


def t_slow_request_after_handshake():
    """Slowloris over TLS: a request head one byte every 0.3 s is cut by the request timeout
    (10 s, as over plain TCP), not kept forever."""
    cert, key = make_cert("slow")
    h = TlsHub(cert, key)
    s = tls_connect(h)
    req = b"GET /.well-known/mercure?topic=/slow HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + \
        b"a" * 200
    t0 = time.monotonic()
    s.settimeout(0.05)
    closed = None
    for b in req:
        try:
            s.sendall(bytes([b]))
            if s.recv(4096) == b"":  # the server's close, seen as soon as it comes
                closed = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except (OSError, ssl.SSLError):
            closed = time.monotonic() - t0
            break
        time.sleep(0.3)
        if time.monotonic() - t0 > 16:
            break
    th.check(closed is not None and 9 < closed < 14, ("slow request closed after", closed))
    h.stop()


def t_peer_vanishes_mid_stream():
    cert, key = make_cert("gone")
    h = TlsHub(cert, key)
    base = metric(h, "ssehub_connections")
    subs = [TlsSub(h, th.q(topic="/tls/gone")) for _ in range(5)]
    for i, s in enumerate(subs):
        if i % 2:  # a reset (SO_LINGER 0) ...
            s.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.s.close()  # ... or a close without close_notify
    for i in range(20):
        th.publish(h, {"topic": "/tls/gone", "data": "x" * 2000})
    deadline = time.monotonic() + 5
    while metric(h, "ssehub_connections") != base and time.monotonic() < deadline:
        time.sleep(0.1)
    th.check(metric(h, "ssehub_connections") == base, "vanished peers freed")
    live = TlsSub(h, th.q(topic="/tls/gone"))
    th.publish(h, {"topic": "/tls/gone", "data": "still"})
    th.check([e["data"] for e in live.events(1, timeout=3)] == ["still"], "still serving")
    live.close()
    h.stop()


def t_pipelined_flood_pauses_and_resumes():
    """Pipelined requests from a client that does not read: the server stops reading (the rest
    of a TLS read is stashed) and, once the client reads, resumes from the stash: every request
    is answered once, in order (transport_tls.c read_stop / read_start)."""
    cert, key = make_cert("pipe")
    web = os.path.join(TMP, "web")
    os.makedirs(web, exist_ok=True)
    with open(os.path.join(web, "big.bin"), "wb") as f:
        f.write(b"\0" * 65536)  # large answers fill the socket after a few hundred requests
    h = TlsHub(cert, key, "--max-body", "1k", "--log-level", "debug", "--web", web)
    one = (b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"p" * 900 +
           b"\r\n\r\n")
    k = 600
    data = one * k
    s = tls_connect(h)
    s.setblocking(False)
    import select
    os.set_blocking(h.p.stderr.fileno(), False)
    log = b""
    sent, answered, tail = 0, 0, b""
    mark = b"HTTP/1.1 200 "
    deadline = time.monotonic() + 60
    reading = False
    while answered < k and time.monotonic() < deadline:
        r, w, _ = select.select([s] if reading else [], [s] if sent < len(data) else [], [], 0.1)
        if w:
            try:
                sent += s.send(data[sent:sent + 16384])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
        if not reading:  # read only once the server has stopped reading (its log says so)
            log += h.p.stderr.read() or b""
            reading = b"reading paused" in log
            th.check(reading or sent < len(data) or time.monotonic() < deadline - 40,
                     "the server never paused reading: the case did not run")
        if reading and (r or s.pending()):
            try:
                while True:
                    c = s.recv(65536)
                    if not c:
                        raise AssertionError("closed after %d answers" % answered)
                    buf = tail + c
                    answered += buf.count(mark)
                    tail = buf[-(len(mark) - 1):]
                    if not s.pending():
                        break
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
    s.close()
    th.check(answered == k and sent == len(data), ("answered", answered, "of", k, "sent", sent))
    os.set_blocking(h.p.stderr.fileno(), True)
    h.stop()


# ---------------------------------------------------------------- --workers (docs/WORKERS.md)

def curl_sub(proto, cert, url, timeout=5):
    """A curl subscriber (--http1.1 or --http2) over TLS: (Popen, worker index from the
    X-Ssehub-Worker header curl -v shows, curl's stderr so far). stdout and stderr are
    non-blocking afterwards."""
    p = subprocess.Popen(["curl", "-v", "-sS", "-N", proto, "--cacert", cert, "--max-time", "20",
                          url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.set_blocking(p.stderr.fileno(), False)
    os.set_blocking(p.stdout.fileno(), False)
    err = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        err += p.stderr.read() or b""
        m = re.search(rb"^< x-ssehub-worker: (\d+)", err, re.M | re.I)
        if m:
            return p, int(m.group(1)), err
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.kill()
    p.wait()
    raise AssertionError(("curl %s subscriber: no X-Ssehub-Worker" % proto, err[-600:]))


def fingerprint_worker(hub, retries=3):
    """(sha256 of the certificate a new TLS connection sees, the worker that served it)."""
    s = tls_connect(hub)
    der = s.getpeercert(binary_form=True)
    s.sendall(b"GET /.well-known/mercure?topic=/tls/fp HTTP/1.1\r\nHost: localhost\r\n"
              b"Connection: close\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(4096)
        if not c:
            break
        buf += c
    s.close()
    m = re.search(rb"^x-ssehub-worker: (\d+)", buf, re.M | re.I)
    th.check(m, ("no X-Ssehub-Worker", buf[:300]))
    return hashlib.sha256(der).hexdigest(), int(m.group(1))


def every_worker_serves(hub, want, n=2, limit=5.0, extra=6):
    """New connections until every one of the n workers served one; every connection after a
    first one per worker that sees want must see want too (the reload is done there)."""
    seen = {}
    deadline = time.monotonic() + limit
    while len(seen) < n and time.monotonic() < deadline:
        fp, w = fingerprint_worker(hub)
        if fp == want:
            seen[w] = True
        else:
            time.sleep(0.05)
    th.check(len(seen) == n, ("workers serving the certificate", sorted(seen), "of", n))
    for _ in range(extra):
        fp, w = fingerprint_worker(hub)
        th.check(fp == want, ("worker %d serves another certificate" % w))


def t_workers_curl_and_sighup():
    """--workers 2 with --tls-listen: the master reserves the TLS port and prints the https URL
    once both workers listen; curl --http1.1 and --http2 subscribers on both workers get an
    update published over TLS; SIGHUP to the master reloads the certificate in every worker
    (new connections on each see B) while streams opened under A keep receiving; a bad
    certificate is refused by every worker, which keeps B."""
    need("curl")
    a_cert, a_key = make_cert("wa")
    b_cert, b_key = make_cert("wb")
    cert, key = os.path.join(TMP, "wlive.crt"), os.path.join(TMP, "wlive.key")
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    h = TlsHub(cert, key, "--workers", "2", "--history-count", "50", "--heartbeat", "0")
    base = "https://localhost:%d/.well-known/mercure" % h.tls_port
    every_worker_serves(h, file_fingerprint(a_cert))
    # curl subscribers of both protocols until each protocol has one on each worker
    subs = []
    for proto in ("--http1.1", "--http2"):
        on = set()
        for _ in range(24):
            p, w, err = curl_sub(proto, cert, base + "?topic=/tls/workers")
            subs.append((proto, w, p))
            want = b"ALPN: server accepted " + (b"h2" if proto == "--http2" else b"http/1.1")
            th.check(want in err, ("ALPN in worker %d" % w, proto, err[-600:]))
            on.add(w)
            if on == {0, 1}:
                break
        th.check(on == {0, 1}, ("curl %s subscribers landed on workers" % proto, on))
    # Python TLS streams on both workers, opened under certificate A
    old = []
    for _ in range(24):
        s = TlsSub(h, th.q(topic="/tls/workers"))
        old.append(s)
        if {x.headers.get("x-ssehub-worker") for x in old} == {"0", "1"}:
            break
    th.check({x.headers.get("x-ssehub-worker") for x in old} == {"0", "1"}, "old streams")
    p = curl("--http2", "--cacert", cert, "-H", "Authorization: Bearer " + th.PUB, "-d",
             "topic=/tls/workers", "-d", "data=to-every-worker", base)
    th.check(p.returncode == 0 and p.stdout.startswith(b"urn:uuid:"), ("publish", p))
    for proto, w, sp in subs:
        out = b""
        deadline = time.monotonic() + 5
        while b"data: to-every-worker" not in out and time.monotonic() < deadline:
            time.sleep(0.05)
            out += sp.stdout.read() or b""
        sp.kill()
        sp.wait()
        th.check(b"data: to-every-worker" in out, ("curl %s on worker %d" % (proto, w), out))
    for s in old:
        th.check([e["data"] for e in s.events(1, timeout=3)] == ["to-every-worker"], "old")
    # SIGHUP to the master: B on every worker for new connections; A's streams go on
    shutil.copy(b_cert, cert)
    shutil.copy(b_key, key)
    h.p.send_signal(signal.SIGHUP)
    every_worker_serves(h, file_fingerprint(b_cert))
    st, _, _ = th.publish(h, {"topic": "/tls/workers", "data": "after-reload"})
    th.check(st == 200, st)
    for s in old:
        got = [e["data"] for e in s.events(1, timeout=3)]
        th.check(got == ["after-reload"], ("stream of worker %s after the reload" %
                                           s.headers.get("x-ssehub-worker"), got))
    # a bad certificate: refused by every worker, B stays everywhere
    with open(cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    h.p.send_signal(signal.SIGHUP)
    time.sleep(0.7)
    every_worker_serves(h, file_fingerprint(b_cert), limit=3)
    for s in old:
        s.close()
    th.check(h.stop() == 0, "the master exits 0")
    err = h.p.stderr.read().decode()
    for k in (0, 1):
        th.check(err.count("worker %d: reload: the new TLS certificate or key was refused" % k)
                 == 1, ("worker %d logged the refusal" % k, err[-2000:]))
        th.check("worker %d: tls: certificate reloaded" % k in err, ("reload in %d" % k))


def t_workers_bad_cert_at_start():
    """--workers 2 with a certificate that cannot be used: the master refuses to start with
    OpenSSL's reason, before forking (no worker is started and restarted)."""
    cert, key = make_cert("wbad")
    for c, k in ((os.path.join(TMP, "missing.crt"), key), (cert, cert)):
        p = subprocess.run([th.SSEHUB, "serve", "--workers", "2", "--listen", "127.0.0.1:0",
                            "--publisher-jwt-key", th.KEY, "--tls-listen", "127.0.0.1:0",
                            "--tls-cert", c, "--tls-key", k], capture_output=True, timeout=10)
        err = p.stderr.decode()
        th.check(p.returncode == 1 and "tls: cannot use the" in err and "worker" not in err,
                 ("bad certificate at start", c, k, p.returncode, err[-800:]))


# ---------------------------------------------------------------- past --max-connections

def curl_status(*args):
    p = curl("-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", *args)
    return p.stdout.decode(), p


def t_over_limit_503():
    """Past --max-connections a TLS connection gets the 503 a plain one gets (an EventSource
    gets an answer, not a dropped connection it would retry at once), over HTTP/1.1 even when
    the client offers h2; at most 32 such handshakes at once (the rest are closed at accept),
    each bounded by the handshake timeout; the budget frees as they close."""
    need("curl")
    cert, key = make_cert("limit")
    h = TlsHub(cert, key, "--max-connections", "2", "--tls-handshake-timeout", "2s")
    held = [TlsSub(h, th.q(topic="/tls/limit")) for _ in range(2)]
    url = "https://localhost:%d/healthz" % h.tls_port
    for proto in ("--http1.1", "--http2"):
        code, p = curl_status(proto, "--cacert", cert, url)
        th.check(code == "503", ("TLS past the limit, curl %s" % proto, code, p.stderr))
    code, p = curl_status("http://127.0.0.1:%d/healthz" % h.port)
    th.check(code == "503", ("plain past the limit", code))
    # the budget: 40 silent connections past the limit; 32 wait for their handshake, the 8
    # others are closed at once; the 32 are closed by the handshake timeout (2 s)
    socks = [socket.create_connection(("127.0.0.1", h.tls_port)) for _ in range(40)]
    th.check(closed_at_once(socks) == 8, "closed at once (past the budget of 32)")
    code, p = curl_status("--http1.1", "--cacert", cert, url)
    th.check(code == "000", ("budget spent: closed", code))
    late = [wait_closed(s, 4) for s in socks]
    th.check(all(t is not None for t in late), "every silent over-limit handshake closed")
    for s in socks:
        s.close()
    code, p = curl_status("--http1.1", "--cacert", cert, url)
    th.check(code == "503", ("budget free again", code, p.stderr))
    for s in held:
        s.close()
    time.sleep(0.3)
    code, p = curl_status("--http2", "--cacert", cert, url)
    th.check(code == "200", ("under the limit again", code))
    h.stop()
    # the budget is a setting
    h = TlsHub(cert, key, "--max-connections", "1", "--tls-overlimit-handshakes", "4")
    held = TlsSub(h, th.q(topic="/tls/limit"))
    socks = [socket.create_connection(("127.0.0.1", h.tls_port)) for _ in range(10)]
    th.check(closed_at_once(socks) == 6, "closed at once (past a budget of 4)")
    for s in socks:
        s.close()
    held.close()
    h.stop()


def closed_at_once(socks):
    """How many of socks the server has closed within 0.4 s (the others wait, silent)."""
    time.sleep(0.4)
    quick = 0
    for s in socks:
        s.setblocking(False)
        try:
            quick += s.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            quick += 1
    return quick


def main():
    tests = [
        ("curl_subscribes_and_publishes", t_curl_subscribes_and_publishes),
        ("ssehub_sub_and_pub_cacert", t_ssehub_sub_and_pub_cacert),
        ("plain_and_tls_at_once", t_plain_and_tls_at_once),
        ("sighup_reload_keeps_streams", t_sighup_reload_keeps_streams),
        ("alpn", t_alpn),
        ("handshake_timeout", t_handshake_timeout),
        ("garbage_instead_of_client_hello", t_garbage_instead_of_client_hello),
        ("slow_request_after_handshake", t_slow_request_after_handshake),
        ("peer_vanishes_mid_stream", t_peer_vanishes_mid_stream),
        ("pipelined_flood_pauses_and_resumes", t_pipelined_flood_pauses_and_resumes),
        ("workers_curl_and_sighup", t_workers_curl_and_sighup),
        ("workers_bad_cert_at_start", t_workers_bad_cert_at_start),
        ("over_limit_503", t_over_limit_503),
    ]
    try:
        return th.run_cases([(name, fn, ()) for name, fn in tests], ONLY)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
