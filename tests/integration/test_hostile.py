#!/usr/bin/env python3
"""test_hostile.py: `ssehub serve` against hostile subscribers (issue 9's attack findings).

Each test reproduces one finding of the red-team run and fails on the code before its fix:
- subscription events (`--subscriptions`) must not evict updates from the replay history;
- a subscribe that makes the hub replay a large history against many costly selectors must not
  hold the loop: a concurrent /healthz and a concurrent subscriber's publish -> event stay fast.
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


def main():
    tests = [
        ("subscription_events_do_not_evict_history", t_subscription_events_do_not_evict_history),
    ]
    passed = failed = 0
    try:
        for name, fn in tests:
            if ONLY and ONLY not in name:
                continue
            try:
                fn()
                print("ok   " + name)
                passed += 1
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
                failed += 1
            sys.stdout.flush()
    finally:
        for hub in th.HUBS:
            hub.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
