#!/usr/bin/env python3
"""test_hub_findings.py: `ssehub serve` checks for issue 9 (an attack run and a mutation run).

Each case guards something the rest of the suite let through: a hub started without --anonymous
refuses a token-less subscriber; --queue-max reaches the server; token expiry closes a stream at
exp, not early; ids over 4,096 bytes are refused before anything is stored; a far-future exp does
not overflow; the subscriptions API and Last-Event-ID never disclose a private update's id to a
token that cannot read it; an over-long lastEventID query is a 400.
It reuses test_hub.py's helpers (hub process, raw HTTP, tokens). Usage as test_hub.py.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as T  # noqa: E402  (the helpers; its main() is not run)
from test_hub import KEY, PUB, Hub, Sub, check, publish, q, request, tok07  # noqa: E402

ONLY = sys.argv[2] if len(sys.argv) > 2 else None


def t_anonymous_refused_by_default():
    """No --anonymous, no --demo: a subscriber without a token gets 401 (with one: 200)."""
    h = Hub("--publisher-jwt-key", KEY)
    s = Sub(h, q(topic="/a"))
    check(s.status == 401, "token-less subscribe on a default hub: %d, want 401" % s.status)
    s.close()
    s = Sub(h, q(topic="/a"), {"Authorization": "Bearer " + tok07(subscribe=["*"])})
    check(s.status == 200, s.status)
    s.close()
    h.stop()


def slow_closed(h):
    _, _, body = request(h, "GET", "/metrics")
    n = [float(line.split()[-1]) for line in body.decode().splitlines()
         if line.startswith("ssehub_disconnects_total") and 'reason="slow"' in line]
    check(n, "no slow-disconnect counter in /metrics")
    return sum(n)


def t_queue_max_applied():
    """--queue-max 16K: an update of 20,000 bytes cannot be queued for a stream (even one that
    reads), so the stream is cut as slow; one of 10,000 bytes is delivered. With the option
    ignored (the 4 MiB default) both would be delivered."""
    h = Hub("--publisher-jwt-key", KEY, "--anonymous", "--queue-max", "16K")
    before = slow_closed(h)
    s = Sub(h, q(topic="/q"))
    check(s.status == 200, s.status)
    st, _, _ = publish(h, {"topic": "/q", "data": "y" * 10000})
    check(st == 200, st)
    ev = s.events(1)
    check(ev and len(ev[0]["data"]) == 10000, "10,000 bytes under --queue-max 16K not delivered")
    st, _, _ = publish(h, {"topic": "/q", "data": "x" * 20000})
    check(st == 200, st)
    check(s.wait_closed(3), "a 20,000-byte update did not cut the stream at --queue-max 16K")
    check(slow_closed(h) == before + 1, "not counted as a slow disconnect")
    s.close()
    h.stop()


def t_expiry_on_time():
    """The stream stays open until exp (within the 100 ms sweep) and is closed right after."""
    h = Hub("--publisher-jwt-key", KEY, "--expiry-sweep", "100ms")
    exp = int(time.time()) + 3
    s = Sub(h, q(topic="/exp"), {"Authorization": "Bearer " + tok07(subscribe=["*"], exp=exp)})
    check(s.status == 200, s.status)
    closed = s.wait_closed(6)
    t = time.time()
    check(closed, "stream not closed at token expiry")
    check(t >= exp - 0.3, "closed %.2f s before exp" % (exp - t))
    check(t <= exp + 1.0, "closed %.2f s after exp" % (t - exp))  # late: a loaded machine
    s.close()
    h.stop()


def t_far_future_exp():
    """exp near 2^63 / 1000 and at INT64_MAX: the stream stays open (exp * 1000 saturates; the
    UBSan build aborted, the release build closed the stream at once)."""
    h = Hub("--publisher-jwt-key", KEY, "--expiry-sweep", "100ms")
    for exp in (18446744073709552, 2**63 - 1):  # the first wraps to 384 ms after the epoch
        s = Sub(h, q(topic="/far"), {"Authorization": "Bearer " + tok07(subscribe=["*"], exp=exp)})
        check(s.status == 200, (exp, s.status))
        check(not s.wait_closed(0.5), "exp %d: stream closed at once" % exp)
        st, _, _ = publish(h, {"topic": "/far", "data": "still here"})
        check(st == 200, st)
        ev = s.events(1)
        check(ev and ev[0]["data"] == "still here", (exp, ev))
        s.close()
    check(h.p.poll() is None, "the hub died")
    h.stop()


def t_long_id_refused_before_store():
    """An id over 4,096 bytes: 400/413, and nothing stored or delivered; 4,096 bytes is fine."""
    h = Hub("--publisher-jwt-key", KEY, "--anonymous", "--max-update", "64K")
    live = Sub(h, q(topic="/long"))
    check(live.status == 200, live.status)
    st, _, body = publish(h, {"topic": "/long", "id": "a" * 4097, "data": "too long"})
    check(st in (400, 413), "id of 4097 bytes: %d %r" % (st, body[:100]))
    check(live.events(1, timeout=0.5) == [], "an update with a refused id was delivered")
    r = Sub(h, q(topic="/long"), {"Last-Event-ID": "earliest"})
    check(r.events(1, timeout=0.5) == [], "an update with a refused id was stored")
    r.close()
    st, _, body = publish(h, {"topic": "/long", "id": "b" * 4096, "data": "just fits"})
    check(st == 200 and body == b"b" * 4096, (st, body[:100]))
    ev = live.events(1)
    check(ev and ev[0].get("id") == "b" * 4096, ev)
    live.close()
    h.stop()


def t_subscriptions_api_hides_private_id():
    """lastEventID in the subscriptions API: the newest update the token may read."""
    h = Hub("--publisher-jwt-key", KEY, "--subscriptions")
    check(publish(h, {"topic": "/p", "id": "pub-7", "data": "x"})[0] == 200, "publish")
    check(publish(h, {"topic": "/secret/7", "id": "secret-7", "data": "x", "private": "on"})[0]
          == 200, "publish private")
    watcher = tok07(subscribe=["/.well-known/mercure/subscriptions{/topic}{/subscriber}"])
    for tok, want in ((watcher, "pub-7"), (tok07(subscribe=["*"]), "secret-7")):
        st, _, body = request(h, "GET", "/.well-known/mercure/subscriptions",
                              headers={"Authorization": "Bearer " + tok})
        check(st == 200, (st, body))
        got = json.loads(body)["lastEventID"]
        check(got == want, "lastEventID %r, want %r" % (got, want))
    h.stop()


def t_private_last_event_id_like_unknown():
    """Last-Event-ID naming a private update the subscriber cannot read is answered exactly as an
    unknown id (status, Last-Event-ID header, events): its existence cannot be probed."""
    h = Hub("--publisher-jwt-key", KEY, "--anonymous")
    check(publish(h, {"topic": "/p8", "id": "before-8", "data": "b"})[0] == 200, "publish")
    check(publish(h, {"topic": "/p8", "id": "priv-8", "data": "x", "private": "on"})[0] == 200,
          "publish private")
    check(publish(h, {"topic": "/p8", "id": "after-8", "data": "a"})[0] == 200, "publish")
    seen = []
    for lei in ("priv-8", "no-such-id-8"):
        s = Sub(h, q(topic="/p8"), {"Last-Event-ID": lei})
        ev = [(e.get("id"), e["data"]) for e in s.events(3, timeout=0.5)]
        seen.append((s.status, s.headers.get("last-event-id"), ev))
        s.close()
    check(seen[0] == seen[1], "private id %r vs unknown id %r" % (seen[0], seen[1]))
    # and whoever may read it replays from it
    s = Sub(h, q(topic="/p8"), {"Last-Event-ID": "priv-8",
                                "Authorization": "Bearer " + tok07(subscribe=["*"])})
    ev = s.events(1, timeout=1)
    check(s.headers.get("last-event-id") == "priv-8" and ev and ev[0].get("id") == "after-8",
          (s.headers, ev))
    s.close()
    h.stop()


def t_long_last_event_id_query():
    """A lastEventID query over 4,096 bytes is a 400 (not 503 "out of memory")."""
    h = Hub("--publisher-jwt-key", KEY, "--anonymous")
    s = Sub(h, q(topic="/x", lastEventID="z" * 5000))
    check(s.status == 400, "lastEventID of 5000 bytes: %d" % s.status)
    s.close()
    s = Sub(h, q(topic="/x", lastEventID="z" * 4096))
    check(s.status == 200, "lastEventID of 4096 bytes: %d" % s.status)
    s.close()
    h.stop()


def main():
    tests = [
        ("anonymous_refused_by_default", t_anonymous_refused_by_default),
        ("queue_max_applied", t_queue_max_applied),
        ("expiry_on_time", t_expiry_on_time),
        ("far_future_exp", t_far_future_exp),
        ("long_id_refused_before_store", t_long_id_refused_before_store),
        ("subscriptions_api_hides_private_id", t_subscriptions_api_hides_private_id),
        ("private_last_event_id_like_unknown", t_private_last_event_id_like_unknown),
        ("long_last_event_id_query", t_long_last_event_id_query),
    ]
    return T.run_cases([(name, fn, ()) for name, fn in tests], ONLY)


if __name__ == "__main__":
    sys.exit(main())
