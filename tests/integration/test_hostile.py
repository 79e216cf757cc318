#!/usr/bin/env python3
"""test_hostile.py: `ssehub serve` against hostile subscribers (issue 9's attack findings).

Each test reproduces one finding of the red-team run and fails on the code before its fix:
- subscription events (`--subscriptions`) must not evict updates from the replay history;
- a subscribe that makes the hub replay a large history against many costly selectors must not
  hold the loop: a concurrent /healthz and a concurrent subscriber's publish -> event stay fast;
- subscribers with ever new costly patterns get 429 past --max-pattern-nodes;
- unfinished request bodies on thousands of connections hold at most --max-buffered.
(That the request timeout is not renewed by pipelining is tests/server's
test_pipelined_timeout_not_renewed.)
Uses the helpers of test_hub.py (python3 stdlib only, 127.0.0.1 port 0).
Usage: test_hostile.py PATH/TO/ssehub [test-name-substring]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as th  # noqa: E402  (the hub process, requests, tokens, the Sub reader)

ONLY = sys.argv[2] if len(sys.argv) > 2 else None


def t_subscription_events_do_not_evict_history():
    """8 subscribe/close cycles with 64 topics used to empty a 1,000-entry history (finding 4)."""
    h = th.Hub("--publisher-jwt-key", th.KEY, "--subscriptions", "--anonymous",
               "--history-count", "20")
    topic = "/evict/%d" % time.time_ns()
    ids = []
    for i in range(5):
        st, _, body = th.publish(h, {"topic": topic, "data": "r%d" % i})
        th.check(st == 200, ("publish", st, body))
        ids.append(body.decode())
    many = "&".join("topic=/churn/%d" % k for k in range(64))
    for _ in range(8):
        s = th.Sub(h, many)
        s.close()
        time.sleep(0.02)
    time.sleep(0.3)  # the close events are published when the server sees the close
    s = th.Sub(h, th.q(topic=topic), {"Last-Event-ID": ids[0]})
    th.check(s.headers.get("last-event-id") == ids[0],
             ("the resumed id was evicted by subscription events", s.headers))
    got = [e["data"] for e in s.events(4, timeout=3)]
    th.check(got == ["r1", "r2", "r3", "r4"], ("replay after churn", got))
    s.close()
    h.stop()


def costly_query(n=64, names=32, tag=""):
    """n distinct URI templates of `names` variables each: the attack of finding 1."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEF"[:names]
    var = ",".join(letters)
    return "&".join("topic=" + th.urllib.parse.quote("{+%s}!k%s%d" % (var, tag, k), safe=",{}!")
                    for k in range(n))


def timed(fn):
    t = time.monotonic()
    r = fn()
    return time.monotonic() - t, r


def t_costly_replay_does_not_hold_the_loop(budget=None):
    """A replay of 1,000 updates against 64 costly templates, 5 at once, used to freeze the hub
    for seconds (finding 1). /healthz and a live subscriber's publish -> event stay fast, with
    the default --replay-budget (the attackers get 429) and with one so large that their
    replays run to the end (in slices)."""
    extra = ["--replay-budget", budget] if budget else []
    h = th.Hub("--publisher-jwt-key", th.KEY, "--anonymous", "--history-count", "1000", *extra)
    for i in range(1000):
        th.publish(h, {"topic": "/hist/%d/x" % i, "data": "h%d" % i})
    live = th.Sub(h, th.q(topic="/live"))
    attackers = []
    import socket
    import threading

    def attack(k):
        """Subscribe with the costly selectors and Last-Event-ID: earliest; keep the status."""
        try:
            c = socket.create_connection(("127.0.0.1", h.port), timeout=120)
            c.sendall(("GET /.well-known/mercure?%s HTTP/1.1\r\nHost: x\r\n"
                       "Last-Event-ID: earliest\r\n\r\n" % costly_query(tag=str(k))).encode())
            head = b""
            while b"\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    break
                head += d
            attackers.append(int(head.split()[1]) if head else 0)
            c.close()
        except OSError as e:
            attackers.append(repr(e))

    threads = [threading.Thread(target=attack, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.05)  # the attackers' requests are in
    health, pub = [], []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        d, r = timed(lambda: th.request(h, "GET", "/healthz"))
        health.append(d)
        t0 = time.monotonic()
        th.publish(h, {"topic": "/live", "data": "x"})
        ev = live.events(1, timeout=5)
        th.check(ev, "the live subscriber got no event")
        pub.append(time.monotonic() - t0)
    for t in threads:
        t.join(120)
    worst_h, worst_p = max(health) * 1000, max(pub) * 1000
    print("     healthz max %.1f ms (n=%d), publish->event max %.1f ms, attackers %s" %
          (worst_h, len(health), worst_p, attackers))
    # The figures for docs/SECURITY.md come from a quiet Release run; this bound is loose enough
    # for sanitizer builds on a loaded machine and far below the seconds the old code froze for.
    th.check(worst_h < 500 and worst_p < 500, ("the loop was held", worst_h, worst_p))
    th.check(len(attackers) == 5 and all(a in (200, 429) for a in attackers),
             ("attackers answered", attackers))
    live.close()
    h.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_distinct_patterns_are_bounded():
    """Subscribers with ever new costly templates used to add ~370 MB per 1,000 and make each
    publish to a new topic cost seconds (finding 2): past --max-pattern-nodes they get 429."""
    h = th.Hub("--publisher-jwt-key", th.KEY, "--anonymous")
    base = rss_kib(h.p.pid)
    subs, refused = [], None
    for k in range(400):
        s = th.Sub(h, costly_query(tag="d%d_" % k))
        if s.status != 200:
            refused = (k, s.status)
            s.close()
            break
        subs.append(s)
    grown = rss_kib(h.p.pid) - base
    t0 = time.monotonic()
    st, _, _ = th.publish(h, {"topic": "/brand/new/%d" % time.time_ns(), "data": "x"})
    pub_ms = (time.monotonic() - t0) * 1000
    print("     refused at subscriber %s, RSS +%d KiB, publish to a new topic %.1f ms" %
          (refused, grown, pub_ms))
    th.check(refused and refused[1] == 429, ("no 429 for ever more distinct patterns", refused))
    th.check(grown < 64 * 1024, ("memory of compiled patterns not bounded", grown))
    th.check(st == 200, ("publish", st))
    # A subscriber reusing a pattern already compiled is still accepted (shared, no new nodes).
    again = th.Sub(h, costly_query(tag="d0_"))
    th.check(again.status == 200, ("a shared pattern refused", again.status))
    again.close()
    for s in subs:
        s.close()
    h.stop()


def t_unfinished_bodies_are_bounded():
    """4,000 connections each sending almost all of a 1 MB body used to hold ~1.1 MB each for
    10 s, unauthenticated (finding 3): the bytes held for all of them are --max-buffered."""
    import socket
    # A sanitizer build keeps freed blocks in quarantine: measure the hub's memory, not ASan's.
    asan = os.environ.get("ASAN_OPTIONS", "")
    h = th.Hub("--publisher-jwt-key", th.KEY, "--max-buffered", "32M",
               env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"})
    base = rss_kib(h.p.pid)
    n, body, peak, refused = 4000, 1000000, 0, 0
    head = ("POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Type: "
            "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % body).encode()
    chunk = b"a" * 65536
    socks = []
    t0 = time.monotonic()
    for i in range(n):
        if time.monotonic() - t0 > 60:
            break
        try:
            c = socket.create_connection(("127.0.0.1", h.port), timeout=5)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            c.sendall(head)
            c.setblocking(False)
            socks.append(c)
        except OSError:
            refused += 1
    # Every connection sends body - 1 bytes, as far as the hub takes them.
    left = {c: body - 1 for c in socks}
    deadline = time.monotonic() + 60
    while left and time.monotonic() < deadline:
        for c in list(left):
            try:
                k = c.send(chunk[:min(len(chunk), left[c])])
                left[c] -= k
                if left[c] <= 0:
                    del left[c]
            except BlockingIOError:
                pass
            except OSError:  # answered 503 and closed: the budget is spent
                del left[c]
        peak = max(peak, rss_kib(h.p.pid))
    time.sleep(0.5)
    peak = max(peak, rss_kib(h.p.pid))
    grown = peak - base
    answered = 0
    for c in socks:
        try:
            c.setblocking(True)
            c.settimeout(0.2)
            if c.recv(64).startswith(b"HTTP/1.1 503"):
                answered += 1
        except OSError:
            pass
    print("     %d connections, %d refused at connect, RSS +%d KiB at most, %d answered 503" %
          (len(socks), refused, grown, answered))
    # 32 MiB of buffers plus per-connection state (a few KiB each with the kernel's share).
    th.check(grown < 32 * 1024 + n * 8, ("unfinished bodies not bounded", grown))
    th.check(answered > 0, "nobody was told 503")
    st, _, _ = th.request(h, "GET", "/healthz")
    th.check(st == 200, ("healthz", st))
    for c in socks:
        c.close()
    h.stop()


def main():
    tests = [
        ("unfinished_bodies_are_bounded", t_unfinished_bodies_are_bounded),
        ("distinct_patterns_are_bounded", t_distinct_patterns_are_bounded),
        ("costly_replay_does_not_hold_the_loop", t_costly_replay_does_not_hold_the_loop),
        ("costly_replay_unbudgeted_does_not_hold_the_loop",
         lambda: t_costly_replay_does_not_hold_the_loop("1024G")),
        ("subscription_events_do_not_evict_history", t_subscription_events_do_not_evict_history),
    ]
    return th.run_cases([(name, fn, ()) for name, fn in tests], ONLY)


if __name__ == "__main__":
    sys.exit(main())
