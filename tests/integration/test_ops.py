#!/usr/bin/env python3
"""test_ops.py: what operators of the reference Mercure hub configure, against `ssehub serve`.

JSON Web Key Sets (--publisher-jwks-url / --subscriber-jwks-url) served by this script over HTTP
on 127.0.0.1 and read from file://: key selection by kid, rotation (a new kid makes the hub
refetch), rate-limited refetching on made-up kids, EdDSA (Ed25519), ES256 and RS256 keys made
with the openssl CLI; --cookie-name; Access-Control-Expose-Headers; --history-count 0 (no
history); /healthz, /livez, /readyz; --log-format json and no token in any log line at debug
level; the reference hub's option names as aliases.
It reuses test_hub.py's helpers (hub process, raw HTTP, tokens). Usage as test_hub.py.
"""
import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as T  # noqa: E402  (the helpers; its main() is not run)
from test_hub import KEY, Hub, Sub, check, publish, q, request, tok07  # noqa: E402

ONLY = sys.argv[2] if len(sys.argv) > 2 else None
TMP = tempfile.mkdtemp(prefix="ssehub-ops-")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def need_openssl():
    if not shutil.which("openssl"):
        T.skip("openssl is missing (scripts/install-deps test installs it)", required=True)


def ossl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, check=True,
                          capture_output=True).stdout


class Key:
    """A key pair made by the openssl CLI, its JWK (public part) and a signer."""

    def __init__(self, kind, kid):
        self.kind, self.kid = kind, kid
        self.priv = os.path.join(TMP, "%s-%s.pem" % (kind, kid))
        self.pub = self.priv + ".pub"
        if kind == "ed":
            ossl("genpkey", "-algorithm", "ed25519", "-out", self.priv)
        elif kind == "ec":
            ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", self.priv)
        else:
            ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", self.priv)
        ossl("pkey", "-in", self.priv, "-pubout", "-out", self.pub)
        der = ossl("pkey", "-pubin", "-in", self.pub, "-outform", "DER")
        if kind == "ed":
            self.alg = "EdDSA"
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(der[-32:])}
        elif kind == "ec":
            self.alg = "ES256"
            pt = der[-65:]  # 04 || x || y
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])}
        else:
            self.alg = "RS256"
            mod = ossl("rsa", "-pubin", "-in", self.pub, "-noout", "-modulus").decode()
            n = bytes.fromhex(mod.strip().split("=", 1)[1])
            self.jwk = {"kty": "RSA", "n": b64(n), "e": "AQAB", "alg": "RS256"}
        self.jwk["kid"] = kid

    def sign(self, claims, kid=None, typ="JWT"):
        head = {"alg": self.alg, "typ": typ}
        if kid is not False:
            head["kid"] = kid or self.kid
        msg = (b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode()))
        path = os.path.join(TMP, "msg")
        with open(path, "w") as f:
            f.write(msg)
        if self.kind == "ed":
            sig = ossl("pkeyutl", "-sign", "-inkey", self.priv, "-rawin", "-in", path)
        else:
            sig = ossl("dgst", "-sha256", "-sign", self.priv, path)
            if self.kind == "ec":
                sig = der_to_rs(sig, 32)
        return msg + "." + b64(sig)


def der_to_rs(der, size):
    """ECDSA-Sig-Value (DER) -> R || S of the curve's size (JWS, RFC 7518 3.4)."""
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        check(der[i] == 0x02, "not a DER integer")
        ln = der[i + 1]
        v = der[i + 2:i + 2 + ln].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + ln
    return out


PUB_CLAIMS = {"mercure": {"publish": ["*"], "subscribe": ["*"]}}


class JwksServer:
    """A JWKS document served over HTTP on 127.0.0.1 (port 0), replaceable, hits counted."""

    def __init__(self, keys):
        self.doc = json.dumps({"keys": keys}).encode()
        self.hits = 0
        self.delay = 0.0  # seconds before answering (a slow key server)
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                outer.hits += 1
                time.sleep(outer.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.doc)))
                self.end_headers()
                self.wfile.write(outer.doc)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/jwks.json" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def set(self, keys):
        self.doc = json.dumps({"keys": keys}).encode()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def metric(h, name):
    _, _, body = request(h, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % name)


def pub_status(h, tok):
    return publish(h, {"topic": "/k", "data": "x"}, tok=tok)[0]


# ---------------------------------------------------------------- JWKS

def t_jwks_http_rotation():
    """Keys over http: a token picks its key by kid; the first request with a new kid (publish
    and subscribe) waits for the refetch it causes and succeeds, no client retry; a removed key
    no longer admits its tokens (even one verified before: the verified-token cache is
    emptied)."""
    need_openssl()
    a, b = Key("ed", "a"), Key("ec", "b")
    srv = JwksServer([a.jwk])
    try:
        h = Hub("--publisher-jwks-url", srv.url, "--jwks-refresh-min", "200ms")
        check(srv.hits == 1, "start: %d fetches" % srv.hits)
        tok_a = a.sign(PUB_CLAIMS)
        check(pub_status(h, tok_a) == 200, "EdDSA token of kid a refused")
        check(pub_status(h, a.sign(PUB_CLAIMS, kid="zz")) == 401, "a made-up kid accepted")
        time.sleep(0.3)
        srv.set([a.jwk, b.jwk])  # rotation: b appears
        srv.delay = 0.5  # the first request surely arrives before the new set
        tok_b = b.sign(PUB_CLAIMS)
        st = pub_status(h, tok_b)  # unknown kid: the hub refetches, the request waits for it
        check(st == 200, "first request with the rotated-in kid b: %d (want 200)" % st)
        check(srv.hits == 3, "kid b: %d fetches (want 3)" % srv.hits)
        srv.delay = 0
        check(pub_status(h, tok_b) == 200, "kid b refused after the rotation")
        check(pub_status(h, tok_a) == 200, "kid a lost by the refetch")
        # a's key goes: a token naming it makes the hub refetch, and it is refused since
        time.sleep(0.3)
        srv.set([b.jwk])
        check(pub_status(h, a.sign(PUB_CLAIMS, kid="gone")) == 401, "unknown kid accepted")
        deadline = time.time() + 5
        while time.time() < deadline and pub_status(h, tok_a) == 200:
            time.sleep(0.1)
        check(pub_status(h, tok_a) == 401, "a removed key still admits its (cached) token")
        # the subscriber role takes the publisher's set when it has no key of its own
        s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + tok_b})
        check(s.status == 200, "subscriber with kid b: %d" % s.status)
        s.close()
        # a subscriber's first token with a rotated-in kid: its stream opens at once too
        c = Key("ec", "c")
        time.sleep(0.3)
        srv.set([b.jwk, c.jwk])
        srv.delay = 0.5
        s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + c.sign(PUB_CLAIMS)})
        check(s.status == 200, "first subscribe with the rotated-in kid c: %d" % s.status)
        s.close()
        h.stop()
    finally:
        srv.close()


def t_jwks_unknown_kid_rate_limited():
    """A flood of made-up kids costs one refetch per --jwks-refresh-min, not one per token."""
    need_openssl()
    a = Key("ed", "a")
    srv = JwksServer([a.jwk])
    try:
        h = Hub("--publisher-jwks-url", srv.url, "--jwks-refresh-min", "1h")
        for i in range(30):
            check(pub_status(h, a.sign(PUB_CLAIMS, kid="made-up-%d" % i)) == 401, i)
        time.sleep(0.5)
        check(srv.hits == 2, "30 unknown kids: %d fetches (want start + 1)" % srv.hits)
        check(metric(h, "ssehub_jwks_refreshes_total") == 1, "refresh counter")
        check(pub_status(h, a.sign(PUB_CLAIMS)) == 200, "the known kid stopped working")
        h.stop()
    finally:
        srv.close()


def t_jwks_unknown_kid_flood_bounded():
    """Concurrent requests with random made-up kids while the key server is slow: one refetch
    per --jwks-refresh-min, every request answered 401 once that refetch lands (no sooner: it
    waits; no later than the fetch plus a margin), and nothing left waiting."""
    need_openssl()
    a = Key("ed", "a")
    srv = JwksServer([a.jwk])
    try:
        h = Hub("--publisher-jwks-url", srv.url, "--subscriber-jwks-url", srv.url,
                "--jwks-refresh-min", "1h")
        srv.delay = 1.0
        toks = [a.sign(PUB_CLAIMS, kid="rnd-%s" % b64(os.urandom(9))) for _ in range(8)]
        results = []

        def one(i):
            t0 = time.time()
            if i % 2:
                s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + toks[i % len(toks)]})
                st = s.status
                s.close()
            else:
                st = pub_status(h, toks[i % len(toks)])
            results.append((st, time.time() - t0))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        check(len(results) == 40, "answers: %d of 40" % len(results))
        check(all(st == 401 for st, _ in results), [st for st, _ in results])
        slowest = max(d for _, d in results)
        check(slowest < 4, "slowest answer %.2fs (the fetch takes 1s)" % slowest)
        check(srv.hits == 3, "%d fetches (want start + 1 per role)" % srv.hits)
        check(metric(h, "ssehub_jwks_refreshes_total") == 2, "refresh counter")
        check(metric(h, "ssehub_jwks_waiting") == 0, "requests left waiting")
        # the period is spent: a made-up kid now gets 401 at once, without a fetch
        t0 = time.time()
        check(pub_status(h, a.sign(PUB_CLAIMS, kid="later")) == 401, "later made-up kid")
        check(time.time() - t0 < 0.5, "a kid with no refetch allowed waited")
        check(srv.hits == 3, "a fetch outside the period")
        check(pub_status(h, a.sign(PUB_CLAIMS)) == 200, "the known kid stopped working")
        h.stop()
    finally:
        srv.close()


def t_jwks_max_waiting():
    """--jwks-max-waiting 2: while the refetch is slow, 2 requests wait for it (answered when it
    lands), the others get 401 at once; 0 is refused at start."""
    need_openssl()
    a = Key("ed", "a")
    srv = JwksServer([a.jwk])
    try:
        h = Hub("--publisher-jwks-url", srv.url, "--jwks-refresh-min", "1h",
                "--jwks-max-waiting", "2")
        srv.delay = 1.5
        results = []

        def one(i):
            t0 = time.time()
            st = pub_status(h, a.sign(PUB_CLAIMS, kid="cap-%d" % i))
            results.append((st, time.time() - t0))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        check(sorted(st for st, _ in results) == [401] * 6, results)
        waited = sum(1 for _, d in results if d > 0.75)  # the fetch takes 1.5 s
        check(waited == 2, "%d requests waited for the refetch (want 2): %r" % (waited, results))
        check(metric(h, "ssehub_jwks_waiting") == 0, "requests left waiting")
        h.stop()
    finally:
        srv.close()
    p = subprocess.run([T.SSEHUB, "serve", "--publisher-jwks-url", "file:///nonexistent",
                        "--jwks-max-waiting", "0"], capture_output=True, timeout=20)
    check(p.returncode != 0 and b"--jwks-max-waiting" in p.stderr, p.stderr)


def t_jwks_waiter_disconnects():
    """A client that goes away while its request waits for a refetch leaves nothing behind (the
    gauge drops to 0; the ASan build checks the memory), and the hub still answers the rest."""
    need_openssl()
    a = Key("ed", "a")
    srv = JwksServer([a.jwk])
    try:
        h = Hub("--publisher-jwks-url", srv.url, "--jwks-refresh-min", "1h")
        srv.delay = 1.5
        for kind in ("publish", "subscribe"):
            tok = a.sign(PUB_CLAIMS, kid="gone-" + kind)
            sock = T.socket.create_connection(("127.0.0.1", h.port), timeout=5)
            if kind == "publish":
                body = b"topic=/k&data=x"
                sock.sendall(b"POST /.well-known/mercure HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/x-www-form-urlencoded\r\n"
                             b"Content-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n%s"
                             % (len(body), tok.encode(), body))
            else:
                sock.sendall(b"GET /.well-known/mercure?topic=/k HTTP/1.1\r\nHost: 127.0.0.1"
                             b"\r\nAuthorization: Bearer %s\r\n\r\n" % tok.encode())
            deadline = time.time() + 3
            while time.time() < deadline and metric(h, "ssehub_jwks_waiting") != 1:
                time.sleep(0.05)
            check(metric(h, "ssehub_jwks_waiting") == 1, "%s: not waiting" % kind)
            sock.close()
            deadline = time.time() + 3
            while time.time() < deadline and metric(h, "ssehub_jwks_waiting") != 0:
                time.sleep(0.05)
            check(metric(h, "ssehub_jwks_waiting") == 0, "%s: the waiter stayed" % kind)
        time.sleep(1.7)  # the refetch lands with nobody waiting
        srv.delay = 0
        check(pub_status(h, a.sign(PUB_CLAIMS)) == 200, "hub broken after the disconnects")
        h.stop()
        # shutting down while a request waits: it gets 503, the hub exits cleanly
        h = Hub("--publisher-jwks-url", srv.url, "--jwks-refresh-min", "1h")
        srv.delay = 1.5
        got = []
        t = threading.Thread(target=lambda: got.append(
            pub_status(h, a.sign(PUB_CLAIMS, kid="at-shutdown"))))
        t.start()
        deadline = time.time() + 3
        while time.time() < deadline and metric(h, "ssehub_jwks_waiting") != 1:
            time.sleep(0.05)
        check(metric(h, "ssehub_jwks_waiting") == 1, "not waiting before the shutdown")
        check(h.stop() == 0, "exit status after SIGTERM with a request waiting")
        t.join(5)
        check(got == [503], "the request waiting at shutdown got %r (want 503)" % got)
    finally:
        srv.close()


def t_jwks_file_rs_es_ed():
    """file:// key set with RSA, EC and Ed25519 keys: each token verified with its kid's key and
    algorithm; a token whose alg differs from its key's is refused (no algorithm confusion)."""
    need_openssl()
    r, e, d = Key("rsa", "r1"), Key("ec", "e1"), Key("ed", "d1")
    path = os.path.join(TMP, "jwks.json")
    with open(path, "w") as f:
        json.dump({"keys": [r.jwk, e.jwk, d.jwk,
                            {"kty": "oct", "k": b64(KEY.encode()), "kid": "hs"},
                            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}, f)
    h = Hub("--publisher-jwks-url", "file://" + path, "--subscriber-jwt-key", KEY)
    for k in (r, e, d):
        check(pub_status(h, k.sign(PUB_CLAIMS)) == 200, "%s token refused" % k.alg)
    check(pub_status(h, r.sign(PUB_CLAIMS, kid="e1")) == 401, "RS256 token with an EC kid")
    check(pub_status(h, d.sign(PUB_CLAIMS, kid=False)) == 401, "no kid, several keys")
    check(pub_status(h, T.token(PUB_CLAIMS)) == 401, "HS256 token accepted by a key set")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "hs"}).encode())
    body = b64(json.dumps(PUB_CLAIMS).encode())
    sig = b64(T.hmac.new(KEY.encode(), (head + "." + body).encode(), T.hashlib.sha256).digest())
    check(pub_status(h, head + "." + body + "." + sig) == 401, "the set's oct key was used")
    # the subscriber role keeps its own HMAC key
    s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + tok07(subscribe=["*"])})
    check(s.status == 200, "subscriber with its own key: %d" % s.status)
    s.close()
    h.stop()


def t_jwks_sighup_refetch():
    """SIGHUP fetches the key sets again: a key the operator withdrew from the set stops
    verifying at once (before, it kept working until a token with an unknown kid asked for a
    refetch); the new key works."""
    need_openssl()
    a, b = Key("ec", "sa"), Key("ec", "sb")
    path = os.path.join(TMP, "jwks-hup.json")
    with open(path, "w") as f:
        json.dump({"keys": [a.jwk]}, f)
    h = Hub("--publisher-jwks-url", "file://" + path, "--subscriber-jwt-key", KEY)
    check(pub_status(h, a.sign(PUB_CLAIMS)) == 200, "key a before the rotation")
    with open(path, "w") as f:
        json.dump({"keys": [b.jwk]}, f)
    check(pub_status(h, a.sign(PUB_CLAIMS)) == 200, "key a still cached before SIGHUP")
    h.p.send_signal(T.signal.SIGHUP)
    deadline = time.monotonic() + 5
    while pub_status(h, a.sign(PUB_CLAIMS)) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    check(pub_status(h, a.sign(PUB_CLAIMS)) == 401, "withdrawn key a still accepted after SIGHUP")
    check(pub_status(h, b.sign(PUB_CLAIMS)) == 200, "new key b after SIGHUP")
    h.stop()


def t_jwks_bad_documents_refused():
    """A key set that is not JSON, has no usable key, an EC point off its curve, or exceeds
    --jwks-max-bytes: the hub does not start, and says why."""
    need_openssl()
    e = Key("ec", "e1")
    off = dict(e.jwk)
    off["y"] = b64(b"\x01" * 32)
    cases = [("not json", b"{keys", "not JSON"),
             ("no keys", b'{"keys":[{"kty":"oct","k":"AAAA"}]}', "no usable"),
             ("off curve", json.dumps({"keys": [off]}).encode(), "curve"),
             ("too big", json.dumps({"keys": [e.jwk], "pad": "x" * 70000}).encode(),
              "jwks-max-bytes")]
    for name, doc, want in cases:
        path = os.path.join(TMP, "bad.json")
        with open(path, "wb") as f:
            f.write(doc)
        p = subprocess.run([T.SSEHUB, "serve", "--listen", "127.0.0.1:0",
                            "--publisher-jwks-url", "file://" + path],
                           capture_output=True, timeout=10)
        err = p.stderr.decode()
        check(p.returncode != 0, "%s: started" % name)
        check(want in err, "%s: %r" % (name, err[-300:]))
    p = subprocess.run([T.SSEHUB, "serve", "--publisher-jwks-url", "ftp://x/jwks"],
                       capture_output=True, timeout=10)
    check(p.returncode == 2 and b"file://" in p.stderr, p.stderr)


def t_jwks_https_verified():
    """https:// key sets go through libcurl with TLS verification: a server whose certificate no
    CA signed is refused at start (the hub does not start without its keys), with curl's reason
    and without the URL."""
    need_openssl()
    import ssl
    a = Key("ed", "a")
    cert, key = os.path.join(TMP, "tls.crt"), os.path.join(TMP, "tls.key")
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1")
    srv = JwksServer([a.jwk])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.srv.socket = ctx.wrap_socket(srv.srv.socket, server_side=True)
    url = srv.url.replace("http://", "https://") + "?secret=do-not-log"
    try:
        p = subprocess.run([T.SSEHUB, "serve", "--listen", "127.0.0.1:0",
                            "--publisher-jwks-url", url], capture_output=True, timeout=20)
        err = p.stderr.decode()
        check(p.returncode != 0, "started with a key set from an unverified TLS server")
        check("certificate" in err.lower() or "ssl" in err.lower(), err[-300:])
        check("do-not-log" not in err, "the URL (and its credential) was printed")
    finally:
        srv.close()


def t_eddsa_pem_key():
    """--publisher-jwt-alg EdDSA with an Ed25519 PEM public key; an RS key is refused for it."""
    need_openssl()
    d, r = Key("ed", "x"), Key("rsa", "y")
    h = Hub("--publisher-jwt-alg", "EdDSA", "--publisher-jwt-key", "@" + d.pub)
    check(pub_status(h, d.sign(PUB_CLAIMS, kid=False)) == 200, "EdDSA token refused")
    bad = d.sign(PUB_CLAIMS, kid=False)
    bad = bad[:-4] + ("AAAA" if not bad.endswith("AAAA") else "BBBB")
    check(pub_status(h, bad) == 401, "a bad EdDSA signature accepted")
    h.stop()
    p = subprocess.run([T.SSEHUB, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-alg",
                        "EdDSA", "--publisher-jwt-key", "@" + r.pub], capture_output=True,
                       timeout=10)
    check(p.returncode != 0, "an RSA key accepted for EdDSA")


# ---------------------------------------------------------------- cookie, CORS, history

def t_cookie_name():
    """--cookie-name: the token is read from that cookie, and only from it."""
    h = Hub("--publisher-jwt-key", KEY, "--cookie-name", "hubToken")
    tok = tok07(subscribe=["*"])
    s = Sub(h, q(topic="/c"), {"Cookie": "a=b; hubToken=" + tok})
    check(s.status == 200, "token in the named cookie: %d" % s.status)
    s.close()
    s = Sub(h, q(topic="/c"), {"Cookie": "mercureAuthorization=" + tok})
    check(s.status == 401, "the default cookie read despite --cookie-name: %d" % s.status)
    s.close()
    h.stop()
    p = subprocess.run([T.SSEHUB, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key",
                        KEY, "--cookie-name", "bad name;"], capture_output=True, timeout=10)
    check(p.returncode != 0, "an invalid cookie name accepted")


def t_cors_expose_headers():
    """Cross-origin answers expose Link, Last-Event-ID and Mercure-Last-Event-ID (else fetch()
    reads them as null); same-origin answers carry no CORS header."""
    h = Hub("--publisher-jwt-key", KEY, "--anonymous", "--cors-origins", "https://app.example")
    want = {"link", "last-event-id", "mercure-last-event-id"}
    s = Sub(h, q(topic="/x"), {"Origin": "https://app.example"})
    got = s.headers.get("access-control-expose-headers", "")
    check({x.strip().lower() for x in got.split(",")} >= want, "subscribe: %r" % got)
    s.close()
    st, hd, _ = publish(h, {"topic": "/x", "data": "d"}, headers={"Origin": "https://app.example"})
    check(st == 200, st)
    got = hd.get("access-control-expose-headers", "")
    check({x.strip().lower() for x in got.split(",")} >= want, "publish: %r" % got)
    st, hd, _ = request(h, "GET", "/healthz", headers={"Origin": "https://evil.example"})
    check("access-control-expose-headers" not in hd, "exposed to a foreign origin")
    h.stop()


def t_no_history():
    """--history-count 0: updates still reach live subscribers; a replay finds nothing; the
    history stays empty."""
    h = Hub("--publisher-jwt-key", KEY, "--anonymous", "--history-count", "0")
    live = Sub(h, q(topic="/n"))
    for i in range(3):
        check(publish(h, {"topic": "/n", "id": "n%d" % i, "data": "v%d" % i})[0] == 200, i)
    ev = live.events(3)
    check([e["data"] for e in ev] == ["v0", "v1", "v2"], ev)
    live.close()
    r = Sub(h, q(topic="/n"), {"Last-Event-ID": "n0"})
    check(r.events(1, timeout=0.7) == [], "replayed with --history-count 0")
    r.close()
    r = Sub(h, q(topic="/n", lastEventID="earliest"))
    check(r.events(1, timeout=0.7) == [], "earliest replayed with --history-count 0")
    r.close()
    check(metric(h, "ssehub_history_updates") == 0, "history not empty")
    h.stop()
    p = subprocess.run([T.SSEHUB, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key", KEY,
                        "--history-count", "0", "--workers", "2"], capture_output=True, timeout=10)
    check(p.returncode == 2 and b"one process" in p.stderr, p.stderr)


# ---------------------------------------------------------------- issuers, dev tokens

def claims_of(tok):
    part = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def dev_tokens(h):
    st, _, body = request(h, "GET", "/.well-known/ssehub/dev-token")
    check(st == 200, "dev-token endpoint: %d" % st)
    doc = json.loads(body)
    return doc["publisher"], doc["subscriber"]


def t_dev_tokens_carry_issuer():
    """--dev with --issuer (and --resource): the development tokens printed at start and served
    at /.well-known/ssehub/dev-token carry that iss (and aud), so the hub accepts its own tokens
    to publish and to subscribe, with either protocol generation."""
    iss, res = "https://issuer.example/dev", "https://hub.example/.well-known/mercure"
    for proto in ("both", "draft-07", "draft-08"):
        h = Hub("--dev", "--protocol", proto, "--issuer", iss, "--resource", res)
        pub, sub = dev_tokens(h)
        for name, t in (("publisher", pub), ("subscriber", sub)):
            c = claims_of(t)
            check(c.get("iss") == iss, "%s: %s token iss %r" % (proto, name, c.get("iss")))
            if proto == "draft-08":
                check(c.get("aud") == res, "%s: %s token aud %r" % (proto, name, c.get("aud")))
        st, _, body = publish(h, {"topic": "/dev", "data": "x"}, tok=pub)
        check(st == 200, "%s: the hub refused its own publisher token: %d %r" % (proto, st, body))
        sel = q(match="/dev") if proto == "draft-08" else q(topic="/dev")
        s = Sub(h, sel, {"Authorization": "Bearer " + sub})
        check(s.status == 200, "%s: the hub refused its own subscriber token: %d" % (proto, s.status))
        s.close()
        h.stop()


def t_issuers_several():
    """--issuer given twice (and the equivalent SSEHUB_ISSUER list and config-file lines): a
    token of either issuer publishes and subscribes (draft-07 and draft-08); a third issuer and
    a token without iss get 401, the reason ("wrong issuer") is in the debug log, no token in
    any log line; an empty entry in the list is refused at start."""
    a, b, c = "https://old-hub.example", "https://new-idp.example/realm", "https://evil.example"
    res = "https://hub.example/.well-known/mercure"
    cfg = os.path.join(TMP, "issuers.conf")
    with open(cfg, "w") as f:
        f.write("issuer = %s\nissuer = %s\n" % (a, b))
    starts = [("flags", ["--issuer", a, "--issuer", b], None),
              ("env", [], {"SSEHUB_ISSUER": " %s , %s" % (a, b)}),
              ("config", ["--config", cfg], None)]
    for how, args, env in starts:
        h = Hub("--publisher-jwt-key", KEY, "--resource", res, "--log-level", "debug",
                *args, env=env)
        sent = []
        for iss in (a, b):
            t7 = tok07(publish=["*"], subscribe=["*"], iss=iss)
            t8 = T.tok08(["publish", "subscribe"], [{"match": "*"}], aud=res, iss=iss)
            sent += [t7, t8]
            st = pub_status(h, t7)
            check(st == 200, "%s: draft-07 token of %s: %d" % (how, iss, st))
            st = pub_status(h, t8)
            check(st == 200, "%s: draft-08 token of %s: %d" % (how, iss, st))
            s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + t7})
            check(s.status == 200, "%s: subscriber of %s: %d" % (how, iss, s.status))
            s.close()
        bad = [tok07(publish=["*"], iss=c), tok07(publish=["*"]),
               T.tok08(["publish"], [{"match": "*"}], aud=res, iss=c)]
        sent += bad
        for t in bad:
            st, _, body = publish(h, {"topic": "/k", "data": "x"}, tok=t)
            check(st == 401, "%s: a token of another issuer (or none): %d" % (how, st))
        s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + bad[0]})
        check(s.status == 401, "%s: subscriber of a third issuer: %d" % (how, s.status))
        s.close()
        check(h.stop() == 0, "%s: exit status" % how)
        err = h.p.stderr.read().decode()
        check(err.count("wrong issuer") >= 3, "%s: no 'wrong issuer' reason in the log: %r"
              % (how, err[-800:]))
        for t in sent:
            check(t.split(".")[2] not in err, "%s: a token is in the log" % how)
    for bad_list in ("%s,,%s" % (a, b), "%s, " % a):
        p = subprocess.run([T.SSEHUB, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key",
                            KEY, "--issuer", bad_list], capture_output=True, timeout=10)
        check(p.returncode == 2 and b"--issuer" in p.stderr, (bad_list, p.stderr))


# ---------------------------------------------------------------- logs, aliases

def t_json_logs_never_hold_a_token():
    """--log-format json --log-level debug --access-log: every stderr line is one JSON object
    with time, level and msg; a token sent in the Authorization header, a cookie, and the
    authorization / access_token query parameters appears in none of them."""
    h = Hub("--publisher-jwt-key", KEY, "--log-format", "json", "--log-level", "debug",
            "--access-log", "--subscriptions")
    toks = {n: tok07(subscribe=["*"], publish=["*"], jti=n) for n in
            ("header", "cookie", "query07", "query08", "bad")}
    s = Sub(h, q(topic="/l"), {"Authorization": "Bearer " + toks["header"]})
    s.close()
    s = Sub(h, q(topic="/l"), {"Cookie": "mercureAuthorization=" + toks["cookie"]})
    s.close()
    s = Sub(h, q(topic="/l", authorization=toks["query07"]))
    s.close()
    s = Sub(h, q(topic="/l", access_token=toks["query08"]))
    s.close()
    publish(h, {"topic": "/l", "data": "x"}, tok=toks["header"])
    publish(h, {"topic": "/l", "data": "x"}, tok=toks["bad"][:-3] + "xyz")
    request(h, "GET", "/healthz?authorization=" + toks["query07"])
    request(h, "GET", "/.well-known/mercure/subscriptions?access_token=" + toks["query08"])
    check(h.stop() == 0, "exit status")
    err = h.p.stderr.read().decode()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    check(len(lines) >= 8, "too few log lines: %r" % err[-500:])
    for ln in lines:
        o = json.loads(ln)
        check({"time", "level", "msg"} <= set(o), ln)
    check(any("/healthz" in json.loads(ln)["msg"] for ln in lines), "no access-log line")
    for name, t in toks.items():
        for part in (t, t.split(".")[2]):  # the token, and its signature alone
            check(part not in err, "the %s token is in the log" % name)


def t_reference_aliases():
    """The reference hub's names: resource_identifier, max_request_body_size, dispatch_timeout,
    publisher_jwks_uri as flags and config keys."""
    cfg = os.path.join(TMP, "ref.conf")
    with open(cfg, "w") as f:
        f.write("max_request_body_size = 100\ndispatch_timeout = 5s\n")
    h = Hub("--publisher-jwt-key", KEY, "--config", cfg, "--resource-identifier",
            "https://hub.example/.well-known/mercure")
    st, _, body = request(h, "GET", "/.well-known/oauth-protected-resource/.well-known/mercure")
    check(st == 200 and b"https://hub.example/.well-known/mercure" in body, body[:200])
    st, _, _ = publish(h, {"topic": "/a", "data": "x" * 200})
    check(st == 413, "max_request_body_size = 100 not applied: %d" % st)
    h.stop()
    out = subprocess.run([T.SSEHUB, "serve", "--help"], capture_output=True).stdout.decode()
    for flag in ("--publisher-jwks-url", "--cookie-name", "--log-format"):
        check(flag in out, flag + " not in --help")


class Lines:
    """The stderr lines of a running hub, read by a thread as they come."""

    def __init__(self, h):
        self.lines, self.lock = [], threading.Lock()

        def run():
            for ln in iter(h.p.stderr.readline, b""):
                with self.lock:
                    self.lines.append(ln.decode(errors="replace").rstrip("\n"))

        self.th = threading.Thread(target=run, daemon=True)
        self.th.start()

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def wait(self, text, timeout=5):
        end = time.time() + timeout
        while time.time() < end:
            for i, ln in enumerate(self.snapshot()):
                if text in ln:
                    return i
            time.sleep(0.05)
        raise AssertionError("no log line with %r: %r" % (text, self.snapshot()[-10:]))


def t_sighup_log_level():
    """SIGHUP re-reads the config file: log-level info -> debug is applied (debug lines appear
    only after that SIGHUP, none before), a changed setting that needs a restart is logged as
    such and kept; debug -> info stops them again."""
    cfg = os.path.join(TMP, "hup.conf")

    def write(level, history):
        with open(cfg, "w") as f:
            f.write("log-level = %s\nhistory-count = %d\n" % (level, history))

    write("info", 100)
    h = Hub("--publisher-jwt-key", KEY, "--config", cfg)
    log = Lines(h)
    for i in range(3):
        check(publish(h, {"topic": "/hup", "data": "before %d" % i})[0] == 200, i)
    auth = {"Authorization": "Bearer " + tok07(subscribe=["*"])}
    s = Sub(h, q(topic="/hup"), auth)
    check(s.status == 200, s.status)
    s.close()
    time.sleep(0.3)
    check(not [ln for ln in log.snapshot() if " debug " in ln],
          "debug lines at level info: %r" % log.snapshot())
    write("debug", 5)
    h.p.send_signal(T.signal.SIGHUP)
    applied = log.wait("reload: log-level changed: applied")
    log.wait("reload: history-count changed: needs a restart")
    check(publish(h, {"topic": "/hup", "data": "after"})[0] == 200, "publish after SIGHUP")
    first_debug = log.wait(" debug ")
    check(first_debug > applied, "a debug line before the SIGHUP: %r" % log.snapshot())
    check("published" in log.snapshot()[first_debug], log.snapshot()[first_debug])
    # history-count was kept (100, not 5): all 4 updates are replayed
    r = Sub(h, q(topic="/hup", lastEventID="earliest"), auth)
    check(len(r.events(4, timeout=3)) == 4, "history-count applied without a restart")
    r.close()
    write("info", 5)
    h.p.send_signal(T.signal.SIGHUP)
    log.wait("SIGHUP: reloading the settings")
    deadline = time.time() + 5
    while time.time() < deadline and sum("reload: log-level changed: applied" in ln
                                         for ln in log.snapshot()) < 2:
        time.sleep(0.05)
    n = len(log.snapshot())
    check(publish(h, {"topic": "/hup", "data": "quiet again"})[0] == 200, "publish")
    time.sleep(0.3)
    check(not [ln for ln in log.snapshot()[n:] if " debug " in ln],
          "debug lines after going back to info: %r" % log.snapshot()[n:])
    check(h.stop() == 0, "exit status")


# ---------------------------------------------------------------- SIGHUP: live settings

def keytok(key, iss=None, publish=("*",), subscribe=("*",)):
    c = {"mercure": {"publish": list(publish), "subscribe": list(subscribe)}}
    if iss:
        c["iss"] = iss
    return T.token(c, key=key)


def hup_and_wait(h, log, text, count):
    """SIGHUP the hub, then wait until text is in count log lines in all (one per worker)."""
    h.p.send_signal(T.signal.SIGHUP)
    end = time.time() + 5
    while time.time() < end and sum(text in ln for ln in log.snapshot()) < count:
        time.sleep(0.05)
    got = sum(text in ln for ln in log.snapshot())
    check(got >= count, "%d of %d lines with %r: %r" % (got, count, text, log.snapshot()[-8:]))


def t_sighup_jwt_keys(workers):
    """SIGHUP applies new JWT keys and issuers live: the @FILE key is read again at the same
    path (HS256 secret A -> B): tokens of A get 401 afterwards, tokens of B 200, for publishers
    and new subscribers, while a stream opened with an A token keeps receiving; a key that does
    not load (a PEM text as an HMAC secret) is refused and B stays; the issuer list changes
    (A's issuer -> C's); no key in any log line. With --workers 2, every worker applies it."""
    key_a, key_b = "reload-secret-A-0123456789abcdef0123", "reload-secret-B-fedcba9876543210fedc"
    iss_a, iss_c = "https://idp-a.example", "https://idp-c.example"
    kf = os.path.join(TMP, "hup-key-%d" % workers)
    cfg = os.path.join(TMP, "hup-auth-%d.conf" % workers)

    def write(key, iss):
        with open(kf, "w") as f:
            f.write(key + "\n")
        with open(cfg, "w") as f:
            f.write("publisher-jwt-key = @%s\nissuer = %s\n" % (kf, iss))

    def pubs(key, iss, n):
        return [publish(h, {"topic": "/rot", "data": "x"}, tok=keytok(key, iss))[0]
                for _ in range(n)]

    write(key_a, iss_a)
    args = ["--config", cfg, "--heartbeat", "0"] + (["--workers", str(workers)] if workers else [])
    h = Hub(*args)
    log = Lines(h)
    n = max(workers, 1)
    tries = 4 * n  # new connections: each worker gets some
    old = Sub(h, q(topic="/rot"), {"Authorization": "Bearer " + keytok(key_a, iss_a)})
    check(old.status == 200, "subscriber with A before: %d" % old.status)
    check(set(pubs(key_a, iss_a, tries)) == {200}, "A before the SIGHUP")
    check(set(pubs(key_b, iss_a, tries)) == {401}, "B before the SIGHUP")
    check(len(old.events(tries, timeout=5)) == tries, "the stream before the SIGHUP")

    write(key_b, iss_a)  # the same path, another secret
    hup_and_wait(h, log, "reload: JWT keys, algorithms and issuers: applied", n)
    check(set(pubs(key_a, iss_a, tries)) == {401}, "A still admitted after the SIGHUP")
    check(set(pubs(key_b, iss_a, tries)) == {200}, "B refused after the SIGHUP")
    got = old.events(tries, timeout=5)
    check(len(got) == tries and not old.closed, "the open stream after the SIGHUP: %r" % got)
    for _ in range(n * 2):
        s = Sub(h, q(topic="/rot"), {"Authorization": "Bearer " + keytok(key_a, iss_a)})
        check(s.status == 401, "a new subscriber with A: %d" % s.status)
        s.close()
        s = Sub(h, q(topic="/rot"), {"Authorization": "Bearer " + keytok(key_b, iss_a)})
        check(s.status == 200, "a new subscriber with B: %d" % s.status)
        s.close()

    bad = "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"
    write(bad, iss_a)
    hup_and_wait(h, log, "reload: the new JWT keys were refused", n)
    check(set(pubs(key_b, iss_a, tries)) == {200}, "B gone after a refused key")
    check(len(old.events(tries, timeout=5)) == tries, "the stream after a refused key")

    write(key_b, iss_c)
    hup_and_wait(h, log, "reload: JWT keys, algorithms and issuers: applied", 2 * n)
    check(set(pubs(key_b, iss_a, tries)) == {401}, "the old issuer after the SIGHUP")
    check(set(pubs(key_b, iss_c, tries)) == {200}, "the new issuer after the SIGHUP")
    check(len(old.events(tries, timeout=5)) == tries, "the stream after the issuer change")
    old.close()
    check(h.stop() == 0, "exit status")
    for ln in log.snapshot():
        for secret in (key_a, key_b, "not a key"):
            check(secret not in ln, "a key in the log: %r" % ln)


def t_sighup_max_update(workers):
    """SIGHUP applies --max-update: one process, 100 -> 1000: a 300-byte update refused (413)
    before is published after and reaches a stream opened before. With --workers 2 (a bus
    sized at start) a raise past the start value is refused with a log line and kept, a lower
    one applies (an 80-byte update accepted before, refused after)."""
    cfg = os.path.join(TMP, "hup-update-%d.conf" % workers)

    def write(n):
        with open(cfg, "w") as f:
            f.write("max-update = %d\n" % n)

    def pubs(size, n):
        return {publish(h, {"topic": "/up", "data": "x" * size})[0] for _ in range(n)}

    write(100)
    h = Hub("--publisher-jwt-key", KEY, "--config", cfg,
            *(["--workers", str(workers)] if workers else []))
    log = Lines(h)
    n = max(workers, 1)
    s = Sub(h, q(topic="/up"), {"Authorization": "Bearer " + tok07(subscribe=["*"])})
    check(s.status == 200, "subscriber: %d" % s.status)
    check(pubs(300, 4 * n) == {413}, "300 bytes under max-update 100")
    check(pubs(80, 4 * n) == {200}, "80 bytes under max-update 100")
    check(len(s.events(4 * n, timeout=5)) == 4 * n, "the stream before the SIGHUP")
    write(1000)
    if not workers:
        hup_and_wait(h, log, "reload: max-update: applied", 1)
        check(pubs(300, 4) == {200}, "300 bytes after raising max-update to 1000")
        ev = s.events(4, timeout=5)
        check(len(ev) == 4 and len(ev[0]["data"]) == 300, "the stream after the SIGHUP")
    else:
        hup_and_wait(h, log, "reload: a --max-update above the one at start needs a restart", n)
        check(pubs(300, 4 * n) == {413}, "max-update raised past the bus size")
        write(50)
        hup_and_wait(h, log, "reload: max-update: applied", n)
        check(pubs(80, 4 * n) == {413}, "80 bytes after lowering max-update to 50")
        check(pubs(30, 4 * n) == {200}, "30 bytes after lowering max-update to 50")
        check(len(s.events(4 * n, timeout=5)) == 4 * n, "the stream after the SIGHUP")
    s.close()
    check(h.stop() == 0, "exit status")


def t_sighup_replay_budget():
    """SIGHUP applies --replay-budget: with a budget of 1 matching step a replay of 5 updates
    is refused (429); after the SIGHUP (the default 16M) the same request replays all 5, and a
    stream opened before keeps receiving."""
    cfg = os.path.join(TMP, "hup-replay.conf")

    def write(budget):
        with open(cfg, "w") as f:
            f.write("replay-budget = %s\n" % budget)

    write("1")
    h = Hub("--publisher-jwt-key", KEY, "--config", cfg)
    log = Lines(h)
    auth = {"Authorization": "Bearer " + tok07(subscribe=["*"])}
    live = Sub(h, q(topic="/rb"), auth)
    for i in range(5):
        check(publish(h, {"topic": "/rb", "data": "r%d" % i})[0] == 200, i)
    check(len(live.events(5, timeout=3)) == 5, "the live stream before")
    r = Sub(h, q(topic="/rb", lastEventID="earliest"), auth)
    check(r.status == 429, "a replay past a budget of 1: %d" % r.status)
    r.close()
    write("16M")
    hup_and_wait(h, log, "reload: replay-budget changed: applied", 1)
    r = Sub(h, q(topic="/rb", lastEventID="earliest"), auth)
    check(r.status == 200, "the replay after the SIGHUP: %d" % r.status)
    check([e["data"] for e in r.events(5, timeout=3)] == ["r%d" % i for i in range(5)], "replay")
    r.close()
    check(publish(h, {"topic": "/rb", "data": "after"})[0] == 200, "publish")
    check([e["data"] for e in live.events(1, timeout=3)] == ["after"], "the live stream after")
    live.close()
    check(h.stop() == 0, "exit status")


def t_sighup_jwks_issuer_keys():
    """With a publisher key set (file://) and a subscriber @FILE key, SIGHUP changes the issuer
    and the subscriber key: the key set already loaded keeps verifying publishers with the new
    issuer even when the refetch that SIGHUP starts fails (the file is now garbage: the set
    moves over to the new verifier), the old issuer and the old subscriber key get 401, and a
    stream opened before keeps receiving."""
    need_openssl()
    k = Key("ec", "hup-iss")
    path = os.path.join(TMP, "jwks-hup-iss.json")
    kf = os.path.join(TMP, "hup-sub-key")
    cfg = os.path.join(TMP, "hup-jwks.conf")
    sub_a, sub_b = "reload-sub-secret-A-0123456789abcdef", "reload-sub-secret-B-0123456789abcdef"
    iss_a, iss_c = "https://idp-a.example", "https://idp-c.example"
    with open(path, "w") as f:
        json.dump({"keys": [k.jwk]}, f)

    def write(key, iss):
        with open(kf, "w") as f:
            f.write(key)
        with open(cfg, "w") as f:
            f.write("publisher-jwks-url = file://%s\nsubscriber-jwt-key = @%s\nissuer = %s\n"
                    % (path, kf, iss))

    def pub(iss):
        return pub_status(h, k.sign(dict(PUB_CLAIMS, iss=iss)))

    write(sub_a, iss_a)
    h = Hub("--config", cfg)
    log = Lines(h)
    old = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + keytok(sub_a, iss_a)})
    check(old.status == 200, "subscriber before: %d" % old.status)
    check(pub(iss_a) == 200 and pub(iss_c) == 401, "issuers before")
    with open(path, "w") as f:
        f.write("not a key set")
    write(sub_b, iss_c)
    hup_and_wait(h, log, "reload: JWT keys, algorithms and issuers: applied", 1)
    log.wait("reload: fetching the key sets again")
    time.sleep(0.3)  # the refetch of the garbage file has ended (refused)
    check(pub(iss_c) == 200, "the key set is gone after an issuer change")
    check(pub(iss_a) == 401, "the old issuer after the SIGHUP")
    ev = old.events(2, timeout=3)
    check(len(ev) == 2 and not old.closed, "the open stream after the SIGHUP: %r %r" % (ev, log.snapshot()))
    for key, want in ((sub_a, 401), (sub_b, 200)):
        s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + keytok(key, iss_c)})
        check(s.status == want, "a new subscriber: %d, want %d" % (s.status, want))
        s.close()
    old.close()
    check(h.stop() == 0, "exit status")


def read_raw(sub, secs):
    """The bytes sub receives within secs (comments included)."""
    got, end = b"", time.time() + secs
    while time.time() < end:
        r, _, _ = T.select.select([sub.s], [], [], max(0.0, end - time.time()))
        if r:
            c = sub.s.recv(65536)
            if not c:
                break
            sub._feed(c)  # through the chunked decoding, then taken out of the event buffer
            got += sub.raw
            sub.raw = b""
    return got


def t_sighup_jwt_key_env_file():
    """MERCURE_JWT_KEY=@FILE (the environment of the start): SIGHUP reads the file again, so a
    rotated secret applies to publishers and subscribers alike (one key for both roles)."""
    key_a, key_b = "reload-env-secret-A-0123456789abcdef", "reload-env-secret-B-0123456789abcdef"
    kf = os.path.join(TMP, "hup-env-key")
    with open(kf, "w") as f:
        f.write(key_a)
    h = Hub(env={"MERCURE_JWT_KEY": "@" + kf})
    log = Lines(h)
    check(pub_status(h, keytok(key_a)) == 200 and pub_status(h, keytok(key_b)) == 401, "before")
    with open(kf, "w") as f:
        f.write(key_b)
    hup_and_wait(h, log, "reload: JWT keys, algorithms and issuers: applied", 1)
    check(pub_status(h, keytok(key_a)) == 401 and pub_status(h, keytok(key_b)) == 200, "after")
    for key, want in ((key_a, 401), (key_b, 200)):
        s = Sub(h, q(topic="/k"), {"Authorization": "Bearer " + keytok(key)})
        check(s.status == want, "a subscriber after: %d, want %d" % (s.status, want))
        s.close()
    check(h.stop() == 0, "exit status")


def t_sighup_live_limits():
    """SIGHUP applies live: the heartbeat (off -> 200 ms: an open stream starts getting ':'
    comments), the CORS origins (a -> b), --max-subscribers (2 -> 3: the third subscriber,
    refused before, gets in; then 3 -> 1: new ones 429, the open ones keep receiving),
    --max-connections (lowered under the open count: new connections 503, the open streams
    stay and keep getting heartbeats)."""
    cfg = os.path.join(TMP, "hup-limits.conf")
    a, b = "https://a.example", "https://b.example"

    def write(origin, heartbeat, subs, conns):
        with open(cfg, "w") as f:
            f.write("cors-origins = %s\nheartbeat = %s\nmax-subscribers = %d\n"
                    "max-connections = %d\n" % (origin, heartbeat, subs, conns))

    def allowed(origin):
        _, hd, _ = request(h, "GET", "/healthz", headers={"Origin": origin})
        return {k.lower(): v for k, v in hd.items()}.get("access-control-allow-origin")

    auth = {"Authorization": "Bearer " + tok07(subscribe=["*"])}
    write(a, "0", 2, 100)
    h = Hub("--publisher-jwt-key", KEY, "--config", cfg)
    log = Lines(h)
    s1, s2 = Sub(h, q(topic="/lim"), auth), Sub(h, q(topic="/lim"), auth)
    check(s1.status == 200 and s2.status == 200, "two subscribers")
    s3 = Sub(h, q(topic="/lim"), auth)
    check(s3.status == 429, "the third subscriber before: %d" % s3.status)
    s3.close()
    check(allowed(a) == a and allowed(b) is None, "CORS before: %r %r" % (allowed(a), allowed(b)))
    read_raw(s1, 0.3)
    check(b":\n" not in read_raw(s1, 1.0), "a heartbeat with heartbeat 0")

    write(b, "200ms", 3, 100)
    hup_and_wait(h, log, "reload: max-subscribers changed: applied", 1)
    check(b":\n" in read_raw(s1, 1.0), "no heartbeat 1 s after heartbeat 200ms")
    check(allowed(b) == b and allowed(a) is None, "CORS after: %r %r" % (allowed(a), allowed(b)))
    s3 = Sub(h, q(topic="/lim"), auth)
    check(s3.status == 200, "the third subscriber after raising the limit: %d" % s3.status)
    s3.close()
    time.sleep(0.2)

    write(b, "200ms", 1, 100)
    hup_and_wait(h, log, "reload: max-subscribers changed: applied", 2)
    s4 = Sub(h, q(topic="/lim"), auth)
    check(s4.status == 429, "a new subscriber after lowering the limit: %d" % s4.status)
    s4.close()
    check(publish(h, {"topic": "/lim", "data": "still here"})[0] == 200, "publish")
    for s in (s1, s2):
        ev = s.events(1, timeout=3)
        check([e["data"] for e in ev] == ["still here"], "an open stream after lowering: %r" % ev)

    write(b, "200ms", 1, 2)  # s1 and s2 hold the two connections
    hup_and_wait(h, log, "reload: max-connections changed: applied", 1)
    st = request(h, "GET", "/healthz")[0]
    check(st == 503, "a new connection past the lowered limit: %d" % st)
    for s in (s1, s2):
        check(b":\n" in read_raw(s, 1.0), "an open stream past the lowered connection limit")
    s1.close()
    s2.close()
    time.sleep(0.3)
    check(request(h, "GET", "/healthz")[0] == 200, "a connection once the others closed")
    check(h.stop() == 0, "exit status")


# ---------------------------------------------------------------- health

def t_health_live_ready():
    """/healthz, /livez and /readyz answer 200 on a running hub with a memory store."""
    h = Hub("--publisher-jwt-key", KEY)
    for path in ("/healthz", "/livez", "/readyz"):
        st, _, body = request(h, "GET", path)
        check(st == 200, "%s: %d %r" % (path, st, body))
    h.stop()


def wait_status(h, path, want, timeout):
    end = time.time() + timeout
    st = body = None
    while time.time() < end:
        st, _, body = request(h, "GET", path)
        if st == want:
            return body
        time.sleep(0.1)
    raise AssertionError("%s: %s %r, want %d" % (path, st, body, want))


def t_readyz_lmdb_full():
    """--store lmdb:DIR with a map too small: once appends fail (503), /readyz answers 503 with
    the reason while /livez and /healthz stay 200."""
    d = tempfile.mkdtemp(prefix="ssehub-ops-lmdb-", dir=TMP)
    h = Hub("--publisher-jwt-key", KEY, "--store", "lmdb:" + d, "--store-map-size", "1M",
            "--history-count", "100000", "--history-bytes", "1G", "--max-body", "64K",
            "--max-update", "64K")
    check(request(h, "GET", "/readyz")[0] == 200, "not ready at start")
    status = 200
    for i in range(200):
        status = publish(h, {"topic": "/full", "data": ("%d " % i) + "x" * 20000})[0]
        if status != 200:
            break
    check(status == 503, "the map never filled: %d" % status)
    body = wait_status(h, "/readyz", 503, 3)
    check(b"LMDB" in body, body)
    for path in ("/livez", "/healthz"):
        check(request(h, "GET", path)[0] == 200, path + " not 200 while the store fails")
    h.stop()


def t_readyz_redis_down():
    """--redis: /readyz is 200 while Redis answers, 503 once it is gone (kill -9), 200 again
    after it is back (the bus reconnects); /livez stays 200."""
    if not shutil.which("redis-server"):
        T.skip("redis-server is missing (scripts/install-deps test installs it)", required=True)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rdir = tempfile.mkdtemp(prefix="ssehub-ops-redis-", dir=TMP)

    def redis():
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--dir", rdir, "--save", "", "--appendonly", "no",
                              "--protected-mode", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 10
        while time.time() < end:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return p
            except OSError:
                time.sleep(0.05)
        p.kill()
        raise AssertionError("redis-server did not start")

    r = redis()
    try:
        h = Hub("--publisher-jwt-key", KEY, "--redis", "redis://127.0.0.1:%d" % port)
        wait_status(h, "/readyz", 200, 5)
        r.kill()
        r.wait(5)
        body = wait_status(h, "/readyz", 503, 5)
        check(b"redis" in body, body)
        check(request(h, "GET", "/livez")[0] == 200, "/livez while Redis is down")
        r = redis()
        wait_status(h, "/readyz", 200, 20)
        h.stop()
    finally:
        if r.poll() is None:
            r.kill()
            r.wait(5)


def main():
    tests = [
        ("env_jwks_http_rotation", t_jwks_http_rotation),
        ("env_jwks_unknown_kid_rate_limited", t_jwks_unknown_kid_rate_limited),
        ("env_jwks_unknown_kid_flood_bounded", t_jwks_unknown_kid_flood_bounded),
        ("env_jwks_waiter_disconnects", t_jwks_waiter_disconnects),
        ("env_jwks_max_waiting", t_jwks_max_waiting),
        ("env_jwks_file_rs_es_ed", t_jwks_file_rs_es_ed),
        ("env_jwks_sighup_refetch", t_jwks_sighup_refetch),
        ("env_jwks_bad_documents_refused", t_jwks_bad_documents_refused),
        ("env_jwks_https_verified", t_jwks_https_verified),
        ("env_eddsa_pem_key", t_eddsa_pem_key),
        ("cookie_name", t_cookie_name),
        ("cors_expose_headers", t_cors_expose_headers),
        ("no_history", t_no_history),
        ("json_logs_never_hold_a_token", t_json_logs_never_hold_a_token),
        ("reference_aliases", t_reference_aliases),
        ("dev_tokens_carry_issuer", t_dev_tokens_carry_issuer),
        ("issuers_several", t_issuers_several),
        ("sighup_log_level", t_sighup_log_level),
        ("sighup_jwt_keys", lambda: t_sighup_jwt_keys(0)),
        ("sighup_jwt_keys_workers", lambda: t_sighup_jwt_keys(2)),
        ("sighup_jwt_key_env_file", t_sighup_jwt_key_env_file),
        ("sighup_live_limits", t_sighup_live_limits),
        ("sighup_max_update", lambda: t_sighup_max_update(0)),
        ("sighup_replay_budget", t_sighup_replay_budget),
        ("sighup_max_update_workers", lambda: t_sighup_max_update(2)),
        ("env_sighup_jwks_issuer_keys", t_sighup_jwks_issuer_keys),
        ("health_live_ready", t_health_live_ready),
        ("readyz_lmdb_full", t_readyz_lmdb_full),
        ("env_readyz_redis_down", t_readyz_redis_down),
    ]
    try:
        return T.run_cases([(name, fn, ()) for name, fn in tests], ONLY)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
