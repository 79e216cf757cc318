#!/usr/bin/env python3
"""replay_drain_bench.py: a streamed replay to a subscriber with a small receive window, and the
hub's cost while a replay is stalled, for two ssehub builds side by side (same run, alternating).

For each build and round: a fresh `ssehub serve` (memory store, or --store lmdb:DIR), N updates
published (pad bytes each, 16 pipelined keep-alive connections), then two subscribers, one after
the other, with SO_RCVBUF = window and `Last-Event-ID: earliest`:
  at once: reads as fast as it can from the start: time until every update has arrived;
  stalled: opens with a 4 KiB receive buffer and reads nothing for STALL s, beside K - 1 more
           such subscribers (--stalled K) that never read (the hub's CPU time and context
           switches, every thread, are measured over that time), then sets its
           buffer to the window and reads as fast as it can: time from its first read. The
           stall leaves the server's send buffer small (TCP grows it only while data flows), so
           the rest of the replay goes at the pace of the hub's flow control (as in
           tests/integration/test_durable.py replay_streams).
Prints one line per measurement and a markdown table of the medians.

Usage: replay_drain_bench.py --ssehub PATH [--ssehub-before PATH] [-n 100000] [--pad 400]
           [--window 65536] [--stall 3] [--rounds 3] [--store memory|lmdb] [--stalled K]
"""
import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def load_helpers(ssehub):
    sys.argv = [sys.argv[0], ssehub]  # test_hub reads the binary from argv
    import test_durable as td  # noqa: E402  (publish_many, raw_subscribe)
    import test_hub as th  # noqa: E402
    return td, th


def switches(pid):
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


def read_all(td, h, a, stall):
    """Subscribe from the earliest update with SO_RCVBUF = window; after stall seconds of not
    reading (the hub's CPU and context switches measured over them), read everything as fast as
    possible. Returns the time from the first read to the last update, and the bytes."""
    sk = td.raw_subscribe(h.port, "/r", "earliest", rcvbuf=4096 if stall else a.window)
    cpu = woke = 0
    if stall:
        # --stalled K: K - 1 more subscribers that never read stall beside it
        others = [td.raw_subscribe(h.port, "/r", "earliest", rcvbuf=4096)
                  for _ in range(a.stalled - 1)]
        time.sleep(0.5 + 0.01 * len(others))  # the replays fill the sockets, then park
        w0, c0 = switches(h.p.pid), cpu_s(h.p.pid)
        time.sleep(stall)
        woke, cpu = switches(h.p.pid) - w0, cpu_s(h.p.pid) - c0
        for o in others:
            o.close()
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.window)
    t0 = time.monotonic()
    sk.settimeout(30)
    got, nbytes, tail = 0, 0, b""
    while got < a.n:
        c = sk.recv(1 << 16)
        if not c:
            break
        got += (tail + c).count(b"data: ")
        tail = c[-5:]
        nbytes += len(c)
    secs = time.monotonic() - t0
    sk.close()
    if got < a.n:
        raise RuntimeError("read %d of %d" % (got, a.n))
    return {"secs": secs, "mb": nbytes / 1e6, "cpu": cpu, "woke": woke}


def one(td, th, ssehub, a):
    th.SSEHUB = ssehub
    d = tempfile.mkdtemp(prefix="replay-drain-bench-")
    store = ["--store", "lmdb:" + os.path.join(d, "h"), "--store-sync", "nosync"] \
        if a.store == "lmdb" else []
    h = th.Hub("--publisher-jwt-key", th.KEY, "--anonymous", "--publish-anonymous",
               "--history-count", str(2 * a.n), "--history-bytes", "4G", *store)
    try:
        ok = td.publish_many(h.port, "/r", a.n, conns=16, pad=a.pad)
        if ok != a.n:
            raise RuntimeError("published %d of %d" % (ok, a.n))
        fast = read_all(td, h, a, 0)
        time.sleep(0.3)
        # stalled, then read: the sockets' buffers stay as small as the stall left them
        slow = read_all(td, h, a, a.stall)
        return {"fast": fast["secs"], "secs": slow["secs"], "mb": slow["mb"], "cpu": slow["cpu"],
                "woke": slow["woke"]}
    finally:
        h.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssehub", required=True)
    ap.add_argument("--ssehub-before")
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--pad", type=int, default=400)
    ap.add_argument("--window", type=int, default=65536)
    ap.add_argument("--stall", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--store", choices=("memory", "lmdb"), default="memory")
    ap.add_argument("--stalled", type=int, default=1, help="subscribers stalled at once")
    a = ap.parse_args()
    td, th = load_helpers(a.ssehub)
    builds = [("before", a.ssehub_before)] if a.ssehub_before else []
    builds.append(("after", a.ssehub))
    res = {name: [] for name, _ in builds}
    print("load average at start: %s" % open("/proc/loadavg").read().split()[0:3])
    for r in range(a.rounds):
        for name, path in builds:
            m = one(td, th, path, a)
            res[name].append(m)
            print("round %d %-6s: %.1f MB through a %d-byte window: reading at once %.2f s; "
                  "after a %.0f s stall %.2f s (%.1f MB/s), the stall cost %.3f s CPU and %d "
                  "context switches" % (r + 1, name, m["mb"], a.window, m["fast"], a.stall,
                                        m["secs"], m["mb"] / m["secs"], m["cpu"], m["woke"]),
                  flush=True)
    print("load average at end: %s" % open("/proc/loadavg").read().split()[0:3])
    print()
    print("| build | reading at once: median (min-max) | after a %.0f s stall: median (min-max) "
          "| hub CPU during the stall | context switches during the stall |" % a.stall)
    print("|---|---|---|---|---|")
    for name, _ in builds:
        f = [m["fast"] for m in res[name]]
        s = [m["secs"] for m in res[name]]
        print("| %s | %.2f s (%.2f-%.2f) | %.2f s (%.2f-%.2f) | %s s | %s |"
              % (name, statistics.median(f), min(f), max(f), statistics.median(s), min(s), max(s),
                 " / ".join("%.3f" % m["cpu"] for m in res[name]),
                 " / ".join(str(m["woke"]) for m in res[name])))


if __name__ == "__main__":
    main()
