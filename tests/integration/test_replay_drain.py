#!/usr/bin/env python3
"""test_replay_drain.py: a streamed replay paced by the server's drain callback, not a timer.

- stalled: a subscriber with a 4 KiB receive window asks for a long history and stops reading;
  the replay waits for the queue to drain. While it waits the hub must sleep: its wake-ups
  (context switches, every thread) over 2 s stay near the idle baseline (the server's 1 s sweep
  and the hub's 250 ms expiry sweep: ~10). The 5 ms wait timer this replaced woke it ~400 times.
- slow_reader: the same subscriber then reads in small pieces with pauses: every update arrives
  once, in store order, and the hub exits cleanly.
- tls: both again over HTTPS (`--tls-listen`, a certificate made by the openssl CLI as in
  test_tls.py): the drain is the TLS transport's too.
Memory store, python3 stdlib only, 127.0.0.1 port 0. Hub CPU during the stall is printed, not
checked (tick-granular); docs/performance/store.md has the measured numbers.
Usage: test_replay_drain.py PATH/TO/ssehub
"""
import os
import shutil
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durable as td  # noqa: E402  (publish_many, raw_subscribe, sse_datas)
import test_hub as th  # noqa: E402
import test_tls as tt  # noqa: E402  (make_cert, TlsHub)

N = int(os.environ.get("SSE_REPLAY_DRAIN_N", "20000"))


def wakeups(pid):
    """Context switches of every thread of pid (each is a wake-up of a sleeping loop, or more)."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass
    return n


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


HISTORY = ("--publish-anonymous", "--history-count", str(2 * N), "--history-bytes", "1G")


def stalled_then_slow(h, sk):
    """Publish N updates on h, have sk (connected, 4 KiB receive buffer) subscribe from the
    earliest, stall 2 s (the hub must sleep), then read everything slowly and check it."""
    ok = td.publish_many(h.port, "/r", N, conns=8, pad=400)
    th.check(ok == N, ("published", ok, N))
    sk.sendall(("GET /.well-known/mercure?%s HTTP/1.1\r\nHost: x\r\nLast-Event-ID: earliest"
                "\r\n\r\n" % th.q(topic="/r")).encode())
    head = sk.recv(4096)
    th.check(head.startswith(b"HTTP/1.1 200"), head[:200])
    time.sleep(0.5)  # the socket buffers fill; the replay parks
    w0, c0 = wakeups(h.p.pid), cpu_s(h.p.pid)
    time.sleep(2.0)
    woke, cpu = wakeups(h.p.pid) - w0, cpu_s(h.p.pid) - c0
    print("     stalled replay, 2 s: hub woke %d times, %.3f s CPU" % (woke, cpu))
    th.check(woke < 100, ("the hub woke %d times in 2 s while the replay waited" % woke))
    # Now read slowly through the window: 4 KiB at a time, a pause every 64 KiB.
    # (the read of the head may have carried the first events too: plain TCP)
    parts, got, t1 = [head], head.count(b"data: "), time.monotonic()
    sk.settimeout(10)
    while got < N and time.monotonic() - t1 < 90:
        c = sk.recv(4096)
        if not c:
            break
        got += (parts[-1][-5:] + c).count(b"data: ")  # also one split between reads
        parts.append(c)
        if len(parts) % 16 == 0:
            time.sleep(0.001)
    sk.close()
    datas = td.sse_datas(b"".join(parts))
    th.check(len(datas) == N, ("events read", len(datas), N))
    nums = sorted(int(x[1:7]) for x in datas)
    th.check(nums == list(range(N)), "the replay is not every update once")
    print("     %d replayed through a 4 KiB window in %.1f s" % (N, time.monotonic() - t1))
    th.check(h.stop() == 0, "graceful stop")


def small_window_socket(port):
    sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sk.settimeout(10)
    sk.connect(("127.0.0.1", port))
    return sk


def t_stalled_then_slow_reader():
    h = th.Hub("--publisher-jwt-key", th.KEY, "--anonymous", *HISTORY)
    try:
        stalled_then_slow(h, small_window_socket(h.port))
    finally:
        h.stop()


def t_tls():
    cert, key = tt.make_cert("drain")
    h = tt.TlsHub(cert, key, *HISTORY)
    try:
        ctx = ssl._create_unverified_context()
        ctx.set_alpn_protocols(["http/1.1"])
        sk = ctx.wrap_socket(small_window_socket(h.tls_port), server_hostname="localhost")
        stalled_then_slow(h, sk)
    finally:
        h.stop()


def main():
    tests = [("stalled_then_slow_reader", t_stalled_then_slow_reader), ("tls", t_tls)]
    failed = skipped = 0
    for name, fn in tests:
        try:
            fn()
            print("ok   %s" % name)
        except th.Skip as e:
            print("skip %s: %s" % (name, e))
            skipped += 1
        except Exception as e:  # noqa: BLE001  (report every failure the same way)
            print("FAIL %s: %s" % (name, e))
            failed += 1
    print("%d passed, %d failed, %d skipped" % (len(tests) - failed - skipped, failed, skipped))
    shutil.rmtree(tt.TMP, ignore_errors=True)
    return 1 if failed else 77 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
