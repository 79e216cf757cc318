#!/usr/bin/env python3
"""test_hub.py: `ssehub serve` over real HTTP (python3 stdlib only).

Starts the hub on 127.0.0.1 port 0 (it prints `listening on http://127.0.0.1:PORT/`), then checks
the Mercure MUSTs of draft-07 and draft-08 that the hub implements: publish validation and status
codes, authorization (tokens minted here with HMAC-SHA256), event encoding, private updates,
history replay with Last-Event-ID, token expiry, subscription events and the subscriptions API,
hostile input, limits, metrics. Every hub started is stopped with SIGTERM (graceful) at the end.
Usage: test_hub.py PATH/TO/ssehub [test-name-substring]
"""
import base64
import hashlib
import hmac
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

SSEHUB = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SSEHUB", "ssehub")
ONLY = sys.argv[2] if len(sys.argv) > 2 else None
KEY = "integration-test-secret-0123456789abcdef"
HUBS = []


# ---------------------------------------------------------------- tokens

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(claims, key=KEY, alg="HS256", typ="JWT"):
    head = {"alg": alg, "typ": typ}
    h = b64(json.dumps(head).encode())
    p = b64(json.dumps(claims).encode())
    if alg == "none":
        return h + "." + p + "."
    sig = hmac.new(key.encode(), (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64(sig)


def tok07(publish=None, subscribe=None, exp=None, payload=None, **kw):
    m = {}
    if publish is not None:
        m["publish"] = publish
    if subscribe is not None:
        m["subscribe"] = subscribe
    if payload is not None:
        m["payload"] = payload
    c = {"mercure": m}
    if exp is not None:
        c["exp"] = exp
    c.update(kw)
    return token(c)


DETAIL08 = "https://mercure.rocks/authorization-detail"  # draft-08's authorization detail type
ISS08 = "https://issuer.test"  # draft-08 requires iss on every token


def tok08(actions, topics, exp=None, sub=None, payload=None, aud=None, iss=ISS08, typ=DETAIL08):
    d = {"type": typ, "actions": actions, "topics": topics}
    if payload is not None:
        d["payload"] = payload
    c = {"exp": exp if exp is not None else int(time.time()) + 3600,
         "authorization_details": [d]}
    if iss is not None:
        c["iss"] = iss
    if sub:
        c["sub"] = sub
    if aud:
        c["aud"] = aud
    return token(c, typ="at+jwt")


PUB = tok07(publish=["*"], subscribe=["*"])
SUB_ALL = tok07(subscribe=["*"])


# ---------------------------------------------------------------- hub process

class Hub:
    def __init__(self, *args, env=None):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("MERCURE_") or k.startswith("SSEHUB_"):
                del e[k]
        e.update(env or {})
        self.p = subprocess.Popen([SSEHUB, "serve", "--listen", "127.0.0.1:0"] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        HUBS.append(self)
        line = self.p.stdout.readline().decode()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            raise RuntimeError("hub did not start: %r %r" % (line, self.p.stderr.read(2000)))
        self.port = int(m.group(1))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def request(hub, method, path, body=None, headers=None, timeout=5):
    """One HTTP/1.1 request on its own connection; returns (status, headers dict, body)."""
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=timeout)
    h = {"Host": "127.0.0.1", "Connection": "close"}
    if body is not None:
        if isinstance(body, dict) or isinstance(body, list):
            body = urllib.parse.urlencode(body, doseq=True)
        if isinstance(body, str):
            body = body.encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
    s.sendall(req.encode() + b"\r\n" + (body or b""))
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while rest:
            n, _, rest = rest.partition(b"\r\n")
            n = int(n.split(b";")[0], 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        rest = out
    return status, hdrs, rest


def publish(hub, fields, tok=PUB, headers=None):
    h = dict(headers or {})
    if tok:
        h["Authorization"] = "Bearer " + tok
    return request(hub, "POST", "/.well-known/mercure", fields, h)


class Sub:
    """A raw SSE subscriber: headers read at once, events parsed as they come."""

    def __init__(self, hub, query, headers=None):
        self.s = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
        h = {"Host": "127.0.0.1", "Accept": "text/event-stream"}
        h.update(headers or {})
        req = "GET /.well-known/mercure?%s HTTP/1.1\r\n" % query
        req += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.s.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            c = self.s.recv(65536)
            if not c:
                break
            self.buf += c
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and lines[0] else 0
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.raw = b""   # de-chunked body bytes not yet parsed
        self.closed = False
        self._feed(b"")

    def _feed(self, data):
        self.buf += data
        if not self.chunked:
            self.raw += self.buf
            self.buf = b""
            return
        while True:
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            n = int(self.buf[:i].split(b";")[0] or b"0", 16)
            if len(self.buf) < i + 2 + n + 2:
                return
            if n == 0:
                self.closed = True
            self.raw += self.buf[i + 2:i + 2 + n]
            self.buf = self.buf[i + 2 + n + 2:]

    def events(self, n, timeout=3.0):
        """Read until n events were dispatched (or timeout); returns the list of dicts."""
        out = []
        deadline = time.time() + timeout
        while True:
            while b"\n\n" in self.raw:
                block, _, self.raw = self.raw.partition(b"\n\n")
                ev = {"data": []}
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        continue
                    k, _, v = line.partition(":")
                    if v.startswith(" "):
                        v = v[1:]
                    if k == "data":
                        ev["data"].append(v)
                    else:
                        ev[k] = v
                if len(ev) == 1 and not ev["data"]:
                    continue  # a retry-only or comment block
                ev["data"] = "\n".join(ev["data"])
                out.append(ev)
            if len(out) >= n:
                return out
            left = deadline - time.time()
            if left <= 0 or self.closed:
                return out
            r, _, _ = select.select([self.s], [], [], left)
            if not r:
                return out
            try:
                c = self.s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                c = b""
            if not c:
                self.closed = True
                return out
            self._feed(c)

    def wait_closed(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([self.s], [], [], deadline - time.time())
            if r:
                try:
                    c = self.s.recv(65536)
                except ConnectionResetError:
                    return True
                if not c:
                    return True
                self._feed(c)
                if self.closed:
                    return True
        return False

    def close(self):
        self.s.close()


def q(**kw):
    return urllib.parse.urlencode(kw, doseq=True)


# ---------------------------------------------------------------- tests

def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def t_start_refused_without_key():
    p = subprocess.run([SSEHUB, "serve", "--listen", "127.0.0.1:0"], capture_output=True,
                       timeout=10, env={k: v for k, v in os.environ.items()
                                        if not k.startswith(("MERCURE_", "SSEHUB_"))})
    check(p.returncode == 2, "exit %d" % p.returncode)
    check(b"publisher key" in p.stderr, p.stderr)


def t_help_lists_defaults():
    p = subprocess.run([SSEHUB, "serve", "--help"], capture_output=True, timeout=10)
    check(p.returncode == 0, p.returncode)
    for w in [b"--listen", b"MERCURE_PUBLISHER_JWT_KEY", b"MERCURE_SUBSCRIBER_JWT_ALG",
              b"default: 127.0.0.1:8080", b"--protocol"]:
        check(w in p.stdout, w)


def t_health_metrics(h):
    st, hd, body = request(h, "GET", "/healthz")
    check(st == 200 and body == b"ok\n", (st, body))
    publish(h, {"topic": "/m", "data": "x"})
    st, hd, body = request(h, "GET", "/metrics")
    check(st == 200, st)
    for name in [b"ssehub_connections ", b"ssehub_subscribers ", b"ssehub_updates_published_total ",
                 b"ssehub_events_delivered_total ", b"ssehub_bytes_written_total ",
                 b'ssehub_disconnects_total{reason="slow"}', b"ssehub_history_updates "]:
        check(name in body, name)


def t_resource_metadata(h):
    st, hd, body = request(h, "GET", "/.well-known/oauth-protected-resource/.well-known/mercure")
    check(st == 200, st)
    doc = json.loads(body)
    # draft-08 head: only the header is an RFC 6750 method; the cookie is named; no version.
    check(doc["bearer_methods_supported"] == ["header"] and "mercure_version" not in doc, doc)
    check(doc["mercure_cookie"] == "__Secure-mercure_access_token", doc)
    check(doc["authorization_details_types_supported"] == [DETAIL08], doc)
    st, hd, _ = publish(h, {"topic": "/a"}, tok=None)
    check("resource_metadata=" in hd.get("www-authenticate", ""), hd)


def t_publish_auth(h):
    st, hd, _ = publish(h, {"topic": "/a", "data": "x"}, tok=None)
    check(st == 401, st)
    check(hd.get("www-authenticate", "").startswith("Bearer"), hd)
    check("error" not in hd.get("www-authenticate", ""), hd)
    st, hd, _ = publish(h, {"topic": "/a"}, tok=token({"mercure": {"publish": ["*"]}}, key="wrong"))
    check(st == 401 and 'invalid_token' in hd.get("www-authenticate", ""), (st, hd))
    st, _, _ = publish(h, {"topic": "/a"}, tok=token({"mercure": {"publish": ["*"]}}, alg="none"))
    check(st == 401, st)
    st, _, _ = publish(h, {"topic": "/a"}, tok=tok07(publish=["*"], exp=int(time.time()) - 10))
    check(st == 401, st)
    st, _, _ = publish(h, {"topic": "/a"}, tok="not.a.token")
    check(st == 401, st)
    st, _, _ = publish(h, {"topic": "/a"}, tok="x" * 20000)
    check(st in (400, 401, 431), st)
    # A token with no publish grant, or not covering every topic: 403.
    st, hd, _ = publish(h, {"topic": "/a"}, tok=tok07(subscribe=["*"]))
    check(st == 403, st)
    st, _, _ = publish(h, {"topic": ["/books/1", "/other"]},
                       tok=tok07(publish=["/books/{id}"]))
    check(st == 403, st)
    st, _, body = publish(h, {"topic": ["/books/1", "/books/2"]},
                          tok=tok07(publish=["/books/{id}"]))
    check(st == 200, (st, body))


def t_publish_ok_and_ids(h):
    st, hd, body = publish(h, {"topic": "/a", "data": "x"})
    check(st == 200, st)
    check(hd.get("content-type", "").startswith("text/plain"), hd)
    check(re.fullmatch(rb"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                       body), body)
    st, _, body2 = publish(h, {"topic": "/a", "data": "x"})
    check(body2 != body, "ids must differ")
    st, _, body = publish(h, {"topic": "/a", "id": "my-id-1"})
    check(st == 200 and body == b"my-id-1", body)


def t_publish_validation(h):
    cases = [
        ({"data": "no topic"}, 400),
        ({"topic": "/a", "id": "#frag"}, 400),
        ({"topic": "/a", "id": "a\nb"}, 400),
        ({"topic": "/a", "id": "a\rb"}, 400),
        ({"topic": "/a", "type": "a\nb"}, 400),
        ({"topic": "/a", "retry": "12a"}, 400),
        ({"topic": "/a", "retry": "-5"}, 400),
        ({"topic": "/a\x01b"}, 400),
        ({"topic": "/a\x7f"}, 400),
        ({"topic": "/a\u0085"}, 400),
        ({"topic": ""}, 400),
        # reserved namespace: 400 on a hub serving draft-08 (403 on a draft-07-only hub)
        ({"topic": "/.well-known/mercure/subscriptions/x/y"}, 400),
        ({"topic": "http://evil/.well-known/mercure"}, 400),
        ({"topic": "/x/../.well-known/mercure/subscriptions"}, 400),
        ({"topic": "/a", "data": "x" * 5000}, 413),
        ({"topic": "/" + "t" * 300}, 413),
        ({"topic": ["/t%d" % i for i in range(40)]}, 413),
    ]
    for fields, want in cases:
        st, _, body = publish(h, fields)
        check(st == want, "%r -> %d %r (want %d)" % (fields, st, body, want))
    st, _, _ = request(h, "POST", "/.well-known/mercure", "topic=%ZZ",
                       {"Authorization": "Bearer " + PUB})
    check(st == 400, st)
    st, _, _ = request(h, "POST", "/.well-known/mercure", "topic=/a&data=%FF%FE",
                       {"Authorization": "Bearer " + PUB})
    check(st == 400, st)
    st, _, _ = request(h, "POST", "/.well-known/mercure", b"x" * (70 * 1024),
                       {"Authorization": "Bearer " + PUB})
    check(st == 413, st)
    st, _, _ = request(h, "POST", "/.well-known/mercure", "topic=/a",
                       {"Authorization": "Bearer " + PUB, "Content-Type": "application/json"})
    check(st == 400, st)


def t_subscribe_event_encoding(h):
    s = Sub(h, q(topic="/enc"))
    check(s.status == 200, s.status)
    check(s.headers.get("content-type", "").startswith("text/event-stream"), s.headers)
    # Headers came before any update: now publish.
    data = "line 1\n\nline 3\n"
    st, _, body = publish(h, {"topic": "/enc", "data": data, "id": "enc-1", "type": "upd",
                              "retry": "2500"})
    check(st == 200, st)
    ev = s.events(1)
    check(len(ev) == 1, ev)
    e = ev[0]
    check(e.get("id") == "enc-1" and e.get("event") == "upd" and e.get("retry") == "2500", e)
    check(e["data"] == data, repr(e["data"]))
    # CRLF and CR in data become separate data lines too.
    publish(h, {"topic": "/enc", "data": "a\r\nb\rc"})
    e = s.events(1)[0]
    check(e["data"] == "a\nb\nc", repr(e["data"]))
    # Not matching topic: nothing.
    publish(h, {"topic": "/other", "data": "no"})
    check(s.events(1, timeout=0.5) == [], "got an unrelated update")
    s.close()


def t_subscribe_selectors(h):
    s1 = Sub(h, q(topic=["/books/{id}", "/exact"]))
    s2 = Sub(h, q(topic="*"))
    s3 = Sub(h, q(match="/exact"))
    s4 = Sub(h, q(matchURLPattern="/books/:id"))
    for s in (s1, s2, s3, s4):
        check(s.status == 200, s.status)
    publish(h, {"topic": "/books/7", "data": "b7"})
    publish(h, {"topic": "/exact", "data": "ex"})
    got1 = [e["data"] for e in s1.events(2)]
    got2 = [e["data"] for e in s2.events(2)]
    got3 = [e["data"] for e in s3.events(1)]
    got4 = [e["data"] for e in s4.events(1)]
    check(got1 == ["b7", "ex"], got1)
    check(got2 == ["b7", "ex"], got2)
    check(got3 == ["ex"], got3)
    check(got4 == ["b7"], got4)
    # draft-07 alternate topics: a subscriber of the alternate gets it once.
    publish(h, {"topic": ["/canon", "/exact"], "data": "alt"})
    check([e["data"] for e in s3.events(1)] == ["alt"], "alternate topic")
    check([e["data"] for e in s2.events(1)] == ["alt"], "once for *")
    check(s2.events(1, timeout=0.3) == [], "delivered twice")
    for s in (s1, s2, s3, s4):
        s.close()


def t_subscribe_bad_requests(h):
    for query in ["", q(foo="bar"), q(matchFoo="x"), q(MATCHexact="x"),
                  q(topic=["/a", "/b", "/c", "/d", "/e"]), q(topic="/" + "x" * 300),
                  q(topic="a\nb"), q(topic="a\x00b"), "topic=%E0%80", "topic=%ZZ",
                  q(matchURLPattern="(a+)+$")]:
        s = Sub(h, query)
        check(s.status == 400, "%r -> %d" % (query, s.status))
        s.close()


def t_pathological_patterns(h):
    """Selectors built to backtrack: compiled once, matched with a bounded cost, hub stays live."""
    subs = [Sub(h, q(topic="/{a}{b}{c}{d}{e}{f}{g}{h}x")),
            Sub(h, q(matchURLPattern="/*/*/*/*/*/*/*/*/x")),
            Sub(h, q(topic="/{+a}/{+b}/{+c}/{+d}/x"))]
    for s in subs:
        check(s.status in (200, 400), s.status)  # refused as too complex is fine too
    for topic in ["/" + "a" * 190, "/" + "a/" * 95, "/" + "ab/" * 60 + "y"]:  # < 200 bytes
        st, _, _ = publish(h, {"topic": topic, "data": "p"})
        check(st == 200, st)
    for s in subs:
        if s.status == 200:
            check(s.events(1, timeout=0.3) == [], "a pathological selector matched")
        s.close()
    st, _, body = request(h, "GET", "/healthz")
    check(st == 200, "hub still answering")


def t_private(h):
    anon = Sub(h, q(topic="*"))
    allowed = Sub(h, q(topic="/priv/{x}"), {"Authorization": "Bearer " + tok07(subscribe=["/priv/1"])})
    alt = Sub(h, q(topic="/priv/{x}"),
              {"Authorization": "Bearer " + tok07(subscribe=["/users/u1/{?topic}"])})
    cookie = Sub(h, q(topic="/priv/1"), {"Cookie": "mercureAuthorization=" + tok07(subscribe=["*"])})
    qtok = Sub(h, q(topic="/priv/1", authorization=tok07(subscribe=["*"])))
    for s in (anon, allowed, alt, cookie, qtok):
        check(s.status == 200, s.status)
    publish(h, {"topic": "/priv/1", "data": "secret", "private": "on"})
    publish(h, {"topic": "/priv/2", "data": "secret2", "private": ""})
    publish(h, {"topic": ["/priv/3", "/users/u1/?topic=%2Fpriv%2F3"], "data": "s3", "private": "1"})
    publish(h, {"topic": "/priv/1", "data": "public"})
    check([e["data"] for e in anon.events(1)] == ["public"], "anonymous got a private update")
    check([e["data"] for e in allowed.events(2)] == ["secret", "public"], "grant")
    check([e["data"] for e in alt.events(2)] == ["s3", "public"], "alternate-topic grant")
    check([e["data"] for e in cookie.events(2)] == ["secret", "public"], "cookie token")
    check([e["data"] for e in qtok.events(2)] == ["secret", "public"], "query token")
    for s in (anon, allowed, alt, cookie, qtok):
        s.close()
    bad = Sub(h, q(topic="*"), {"Authorization": "Bearer " + token({"mercure": {}}, key="nope")})
    check(bad.status == 401, bad.status)
    bad.close()


def t_draft08(h):
    aud = "http://127.0.0.1:%d/.well-known/mercure" % h.port  # the default resource identifier
    # The audience is required: missing or another hub's -> 401.
    st, hd, _ = publish(h, {"topic": "/d8/0"}, tok=tok08(["publish"], [{"match": "*"}]))
    check(st == 401 and "invalid_token" in hd.get("www-authenticate", ""), ("no aud", st))
    st, _, _ = publish(h, {"topic": "/d8/0"},
                       tok=tok08(["publish"], [{"match": "*"}], aud="https://other.example/.well-known/mercure"))
    check(st == 401, ("wrong aud", st))
    # A draft-08 token: alternate topics are allowed again at the head of the draft.
    t8 = tok08(["publish", "subscribe"], [{"match": "*"}], aud=aud)
    st, _, body = publish(h, {"topic": ["/a", "/b"]}, tok=t8)
    check(st == 200, (st, body))
    st, _, _ = publish(h, {"topic": "/d8/1", "data": "x"}, tok=t8)
    check(st == 200, st)
    p8 = tok08(["publish"], [{"match": "/d8/:id", "match_type": "urlpattern"}], aud=aud)
    st, _, _ = publish(h, {"topic": "/d8/2"}, tok=p8)
    check(st == 200, st)
    st, _, _ = publish(h, {"topic": "/other"}, tok=p8)
    check(st == 403, st)
    # Private via authorization_details (aud an array holding the hub).
    sub = tok08(["subscribe"], [{"match": "/d8/1"}], aud=[aud, "https://x.example"])
    s = Sub(h, q(match="/d8/1"), {"Authorization": "Bearer " + sub})
    check(s.status == 200, s.status)
    publish(h, {"topic": "/d8/1", "data": "p8", "private": ""}, tok=t8)
    check([e["data"] for e in s.events(1)] == ["p8"], "draft-08 private")
    s.close()
    # The header wins over the cookie (a bad header token is not rescued by the cookie).
    s = Sub(h, q(match="/d8/1"), {"Authorization": "Bearer bad.bad.bad",
                                  "Cookie": "__Secure-mercure_access_token=" + sub})
    check(s.status == 401, s.status)
    s.close()


def t_replay(h):
    topic = "/replay/%d" % time.time_ns()
    ids = []
    for i in range(4):
        st, _, body = publish(h, {"topic": topic, "data": "r%d" % i})
        ids.append(body.decode())
        if i == 0:
            publish(h, {"topic": "/unrelated", "data": "u"})  # filtered out of the replay
    s = Sub(h, q(topic=topic), {"Last-Event-ID": ids[1]})
    check(s.headers.get("last-event-id") == ids[1], s.headers)
    check([e["data"] for e in s.events(2)] == ["r2", "r3"], "replay after id")
    s.close()
    s = Sub(h, q(topic=topic, lastEventID=ids[0]))
    check([e["data"] for e in s.events(3)] == ["r1", "r2", "r3"], "lastEventID query")
    check(s.headers.get("last-event-id") == ids[0], s.headers)
    s.close()
    s = Sub(h, q(topic=topic, last_event_id=ids[2]))
    check([e["data"] for e in s.events(1)] == ["r3"], "last_event_id query")
    s.close()
    # The header takes precedence over the query parameter.
    s = Sub(h, q(topic=topic, lastEventID=ids[0]), {"Last-Event-ID": ids[2]})
    check([e["data"] for e in s.events(1)] == ["r3"], "header precedence")
    s.close()
    s = Sub(h, q(topic=topic, lastEventID="earliest"))
    check([e["data"] for e in s.events(4)] == ["r0", "r1", "r2", "r3"], "earliest")
    check(s.headers.get("last-event-id") == "earliest", s.headers)
    s.close()
    s = Sub(h, q(topic=topic), {"Last-Event-ID": "no-such-id"})
    check(s.headers.get("last-event-id") == "earliest", s.headers)
    check(s.events(1, timeout=0.4) == [], "replay for an unknown id")
    s.close()
    # No Last-Event-ID asked: no header.
    s = Sub(h, q(topic=topic))
    check("last-event-id" not in s.headers, s.headers)
    s.close()
    # Private updates are re-checked on replay and never disclosed in the header.
    st, _, pid = publish(h, {"topic": topic, "data": "hidden", "private": "on"})
    st, _, nid = publish(h, {"topic": topic, "data": "after"})
    s = Sub(h, q(topic=topic), {"Last-Event-ID": ids[3]})
    check([e["data"] for e in s.events(1)] == ["after"], "private replayed to anonymous")
    s.close()
    # An unreadable private id is answered as an unknown one (its existence cannot be probed).
    s = Sub(h, q(topic=topic), {"Last-Event-ID": pid.decode()})
    check(s.headers.get("last-event-id") == "earliest", ("private id disclosed", s.headers))
    check(s.events(1, timeout=0.4) == [], "replay after an unreadable private id")
    s.close()
    s = Sub(h, q(topic=topic), {"Last-Event-ID": ids[3],
                                "Authorization": "Bearer " + tok07(subscribe=[topic])})
    check([e["data"] for e in s.events(2)] == ["hidden", "after"], "private replay with grant")
    s.close()


def t_expiry(h):
    exp = int(time.time()) + 2
    s = Sub(h, q(topic="/exp"), {"Authorization": "Bearer " + tok07(subscribe=["*"], exp=exp)})
    check(s.status == 200, s.status)
    t0 = time.time()
    closed = s.wait_closed(6)
    check(closed, "stream not closed at token expiry")
    check(time.time() <= exp + 0.5, "closed too late: %.2f s after exp" % (time.time() - exp))
    s.close()


def t_subscriptions(h):
    watcher_tok = tok07(subscribe=["/.well-known/mercure/subscriptions{/topic}{/subscriber}"])
    w = Sub(h, q(topic="/.well-known/mercure/subscriptions{/topic}{/subscriber}"),
            {"Authorization": "Bearer " + watcher_tok})
    check(w.status == 200, w.status)
    c = Sub(h, q(topic="/watched/{id}"),
            {"Authorization": "Bearer " + tok07(subscribe=["/x"], payload={"user": "u1"}, sub="urn:sub:c")})
    ev = [e for e in w.events(2) if "urn:sub:c" in e["data"]]  # (w also sees its own)
    check(len(ev) == 1, ev)
    doc = json.loads(ev[0]["data"])
    check(doc["type"] == "Subscription" and doc["active"] is True, doc)
    check(doc["topic"] == "/watched/{id}" and doc["subscriber"] == "urn:sub:c", doc)
    check(doc["payload"] == {"user": "u1"}, doc)
    check(doc["@context"] == "https://mercure.rocks/", doc)
    check(doc["id"] == "/.well-known/mercure/subscriptions/%2Fwatched%2F%7Bid%7D/urn%3Asub%3Ac", doc)
    # Anonymous subscribers never see subscription events (they are private).
    a = Sub(h, q(topic="*"))
    st, hd, body = request(h, "GET", "/.well-known/mercure/subscriptions",
                           headers={"Authorization": "Bearer " + watcher_tok})
    check(st == 200 and hd.get("content-type") == "application/ld+json", (st, hd))
    col = json.loads(body)
    check(col["type"] == "Subscriptions" and "lastEventID" in col, col)
    check(any(x["topic"] == "/watched/{id}" for x in col["subscriptions"]), col)
    st, _, body = request(h, "GET", "/.well-known/mercure/subscriptions/%2Fwatched%2F%7Bid%7D/urn%3Asub%3Ac",
                          headers={"Authorization": "Bearer " + watcher_tok})
    check(st == 200 and json.loads(body)["subscriber"] == "urn:sub:c", (st, body))
    # draft-08 shapes: /{match_type}/{match}[/{subscriber}], plain JSON, cursor on the Link
    # (the earlier snapshot's URLPattern/Exact segments still answer, with the same document).
    m8 = Sub(h, q(match_urlpattern="/m8/:id"),
             {"Authorization": "Bearer " + tok07(subscribe=["/x"], sub="urn:sub:m8")})
    check(m8.status == 200, m8.status)
    for seg in ("urlpattern", "URLPattern"):
        st, hd, body = request(h, "GET", "/.well-known/mercure/subscriptions/%s/%%2Fm8%%2F%%3Aid" % seg,
                               headers={"Authorization": "Bearer " + SUB_ALL})
        check(st == 200 and hd.get("content-type") == "application/json", (st, hd, body))
        check('last-event-id="' in hd.get("link", ""), hd)
        col = json.loads(body)
        check(col["id"] == "/.well-known/mercure/subscriptions/urlpattern/%2Fm8%2F%3Aid", col)
        check(col["type"] == "subscriptions" and len(col["subscriptions"]) == 1, col)
        one = col["subscriptions"][0]
        check(one["match_type"] == "urlpattern" and one["match"] == "/m8/:id", one)
    st, _, body = request(h, "GET",
                          "/.well-known/mercure/subscriptions/urlpattern/%2Fm8%2F%3Aid/urn%3Asub%3Am8",
                          headers={"Authorization": "Bearer " + SUB_ALL})
    check(st == 200 and json.loads(body)["subscriber"] == "urn:sub:m8", (st, body))
    check("lastEventID" not in json.loads(body), body)
    st, _, _ = request(h, "GET", "/.well-known/mercure/subscriptions/exact/%2Fnobody/urn%3Ax",
                       headers={"Authorization": "Bearer " + SUB_ALL})
    check(st == 404, st)
    m8.close()
    st, _, _ = request(h, "GET", "/.well-known/mercure/subscriptions")
    check(st == 401, st)
    st, _, _ = request(h, "GET", "/.well-known/mercure/subscriptions",
                       headers={"Authorization": "Bearer " + tok07(subscribe=["/x"])})
    check(st == 403, st)
    c.close()
    ev = [json.loads(e["data"]) for e in w.events(4)]  # a's and m8's connect/end, then c's end
    ev = [d for d in ev if d["subscriber"] == "urn:sub:c"]
    check(len(ev) == 1 and ev[0]["active"] is False, ev)
    check(a.events(1, timeout=0.3) == [], "anonymous got a subscription event")
    a.close()
    w.close()


def t_cookie_publish_origin(h):
    c = {"Cookie": "mercureAuthorization=" + PUB}
    st, _, _ = publish(h, {"topic": "/c"}, tok=None, headers=dict(c, Origin="https://evil.example"))
    check(st == 403, st)
    st, _, _ = publish(h, {"topic": "/c"}, tok=None, headers=c)
    check(st == 403, st)
    st, _, _ = publish(h, {"topic": "/c"}, tok=None, headers=dict(c, Origin="https://app.example"))
    check(st == 200, st)
    st, _, _ = publish(h, {"topic": "/c"}, tok=None,
                       headers=dict(c, Referer="https://app.example/page"))
    check(st == 200, st)


def t_limits_429(h2):
    a = Sub(h2, q(match="/l"))
    b = Sub(h2, q(match="/l"))
    check(a.status == 200 and b.status == 429, (a.status, b.status))
    a.close()
    b.close()


def t_draft07_only_and_anonymous_refused(h2):
    # h2 speaks draft-08 only and refuses anonymous subscribers.
    s = Sub(h2, q(topic="/x"), {"Authorization": "Bearer " + tok08(["subscribe"], [{"match": "*"}])})
    check(s.status == 400, s.status)  # "topic" is not a draft-08 parameter
    s.close()


def t_dev_token_only_in_dev(h):
    st, _, _ = request(h, "GET", "/.well-known/ssehub/dev-token")
    check(st == 404, "dev tokens exposed without --dev (%d)" % st)


def t_ipv6_sigint_and_dev():
    """--listen [::1]:0 (when the host has IPv6 loopback), --dev tokens, SIGINT is graceful."""
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        skip("no IPv6 loopback on this host", required=False)
    p = subprocess.Popen([SSEHUB, "serve", "--listen", "[::1]:0", "--dev"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        m = re.search(r"listening on http://\[::1\]:(\d+)/", line)
        check(m, line)
        port = int(m.group(1))
        s = socket.create_connection(("::1", port), timeout=5)
        s.sendall(b"GET /.well-known/ssehub/dev-token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
        s.close()
        check(b" 200 " in data.split(b"\r\n")[0], data[:100])
        doc = json.loads(data.partition(b"\r\n\r\n")[2])
        check(doc["publisher"].count(".") == 2 and doc["subscriber"].count(".") == 2, doc)
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(10)
    check(rc == 0, "exit %d after SIGINT" % rc)


def t_rs256_key_file():
    """--publisher-jwt-alg RS256 with the PEM public key read from @FILE; token signed by openssl."""
    import shutil
    import tempfile
    if not shutil.which("openssl"):
        skip("openssl is missing (scripts/install-deps test installs it)", required=True)
    d = tempfile.mkdtemp(prefix="ssehub-rs256-")
    priv, pub = os.path.join(d, "priv.pem"), os.path.join(d, "pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", priv], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    h = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    p = b64(json.dumps({"mercure": {"publish": ["*"]}}).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", priv], input=(h + "." + p).encode(),
                         check=True, capture_output=True).stdout
    tok = h + "." + p + "." + b64(sig)
    hub = Hub("--publisher-jwt-alg", "RS256", "--publisher-jwt-key", "@" + pub)
    try:
        st, _, body = publish(hub, {"topic": "/rs", "data": "x"}, tok=tok)
        check(st == 200, (st, body))
        st, _, _ = publish(hub, {"topic": "/rs"}, tok=token({"mercure": {"publish": ["*"]}},
                                                             key=open(pub).read()))
        check(st == 401, "HS256 signed with the public key must be refused (alg confusion)")
    finally:
        hub.stop()
        shutil.rmtree(d)


class Skip(Exception):
    """Raised by a case that cannot run on this host: reported as skipped, never as passed."""


def skip(why, required):
    """Skip the running case; with CI=true a required tool's absence is a failure instead."""
    if required and os.environ.get("CI") == "true":
        raise AssertionError("CI=true, so no skip: " + why)
    raise Skip(why)


def run_cases(tests, only):
    """Run (name, fn, args) cases, each reported as ok / skip / FAIL, every hub started stopped
    at the end (a non-zero exit after SIGTERM fails). only: a name substring, "!text" for every
    case but those, or None. Returns the exit code: 1 on a failure, 77 (CTest's
    SKIP_RETURN_CODE) when something was skipped, else 0. Shared by the integration scripts."""
    passed = failed = skipped = 0
    exclude = only is not None and only.startswith("!")  # "!text": every case but those
    try:
        for name, fn, args in tests:
            if only and (only[1:] in name if exclude else only not in name):
                continue
            try:
                fn(*args)
                print("ok   " + name)
                passed += 1
            except Skip as e:
                print("skip %s: %s" % (name, e))
                skipped += 1
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
                failed += 1
            sys.stdout.flush()
    finally:
        for hub in HUBS:
            rc = hub.stop()
            if rc != 0:
                print("FAIL hub exit status %s after SIGTERM: %s" % (rc, hub.p.stderr.read()[-2000:]))
                failed += 1
    if skipped:
        print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    else:
        print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 77 if skipped else 0


def main():
    h = Hub("--publisher-jwt-key", KEY, "--subscriptions", "--anonymous", "--history-count", "50",
            "--max-selectors", "4", "--max-selector-length", "200", "--max-body", "64K",
            "--max-update", "4K", "--heartbeat", "1s", "--expiry-sweep", "100ms",
            "--publish-origins", "https://app.example")
    h2 = Hub("--protocol", "draft-08", "--max-subscribers", "1", "--anonymous",
             env={"MERCURE_PUBLISHER_JWT_KEY": KEY})
    tests = [
        ("start_refused_without_key", t_start_refused_without_key, ()),
        ("help_lists_defaults", t_help_lists_defaults, ()),
        ("health_metrics", t_health_metrics, (h,)),
        ("resource_metadata", t_resource_metadata, (h,)),
        ("publish_auth", t_publish_auth, (h,)),
        ("publish_ok_and_ids", t_publish_ok_and_ids, (h,)),
        ("publish_validation", t_publish_validation, (h,)),
        ("subscribe_event_encoding", t_subscribe_event_encoding, (h,)),
        ("subscribe_selectors", t_subscribe_selectors, (h,)),
        ("subscribe_bad_requests", t_subscribe_bad_requests, (h,)),
        ("pathological_patterns", t_pathological_patterns, (h,)),
        ("private", t_private, (h,)),
        ("draft08", t_draft08, (h,)),
        ("replay", t_replay, (h,)),
        ("expiry", t_expiry, (h,)),
        ("subscriptions", t_subscriptions, (h,)),
        ("cookie_publish_origin", t_cookie_publish_origin, (h,)),
        ("env_rs256_key_file", t_rs256_key_file, ()),
        ("dev_token_only_in_dev", t_dev_token_only_in_dev, (h,)),
        ("env_ipv6_sigint_and_dev", t_ipv6_sigint_and_dev, ()),
        ("limits_429", t_limits_429, (h2,)),
        ("draft08_only", t_draft07_only_and_anonymous_refused, (h2,)),
    ]
    return run_cases(tests, ONLY)


if __name__ == "__main__":
    sys.exit(main())
