#!/usr/bin/env python3
"""test_durable.py: `ssehub serve --store lmdb:DIR` loses no acknowledged update (issue 10).

- crash: publishers post continuously from threads while the hub is killed with SIGKILL at random
  moments, 20 times, and restarted on the same directory; afterwards a replay from `earliest`
  holds every update that ever got a 200, exactly once, in the order acknowledged (an update
  acknowledged before another was sent comes first; one publisher's updates in its order), and
  nothing malformed. Prints the counts.
- restart: a subscriber reconnecting with Last-Event-ID after a restart (graceful and SIGKILL)
  gets exactly what it missed, from the file.
- faults: a full map (--store-map-size) answers 503 and the history stays readable, also after a
  restart; a second hub on the same directory is refused with a message; a file that is not a
  history is refused and left unchanged.
Uses the helpers of test_hub.py (python3 stdlib only, 127.0.0.1 port 0).
Usage: test_durable.py PATH/TO/ssehub [test-name-substring]
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as th  # noqa: E402  (the hub process, requests, tokens, the Sub reader)

ONLY = sys.argv[2] if len(sys.argv) > 2 else None
ROUNDS = int(os.environ.get("SSE_DURABLE_ROUNDS", "20"))
BIG = ["--history-count", "10000000", "--history-bytes", "1G"]
# SSE_DURABLE_WORKERS=N: the crash test against --workers N (the master is the one killed).
if os.environ.get("SSE_DURABLE_WORKERS"):
    BIG += ["--workers", os.environ["SSE_DURABLE_WORKERS"]]


def hub(store, *extra):
    return th.Hub("--publisher-jwt-key", th.KEY, "--anonymous", "--store", "lmdb:" + store,
                  *extra)


def kill(h):
    if h.p.poll() is None:
        h.p.send_signal(signal.SIGKILL)
    h.p.wait(10)


def replay_all(h, topic, expect_at_least, timeout=20):
    """Every event of topic from the earliest one, read until quiet."""
    s = th.Sub(h, th.q(topic=topic), {"Last-Event-ID": "earliest"})
    th.check(s.status == 200, ("replay status", s.status))
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = s.events(100000, timeout=1.0 if len(out) >= expect_at_least else 3.0)
        out += got
        if not got and len(out) >= expect_at_least:
            break
    s.close()
    return out


def t_crash():
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    lock = threading.Lock()
    acked = []      # (t_sent, t_acked, id)
    attempts = [0]
    refused = [0]
    rng = random.Random(int(os.environ.get("SSE_DURABLE_SEED", str(time.time_ns()))))
    t_start = time.monotonic()
    h = None
    for rnd in range(ROUNDS):
        h = hub(store, *BIG)
        stop = threading.Event()

        def publisher(k, port=h.port):
            n = 0
            while not stop.is_set():
                uid = "r%d-p%d-%d" % (rnd, k, n)
                n += 1
                t0 = time.monotonic()
                try:
                    st, _, _ = th.publish(h, {"topic": "/crash", "id": uid, "data": uid})
                except (OSError, IndexError, ValueError):
                    st = 0  # killed mid-request: not acknowledged
                with lock:
                    attempts[0] += 1
                    if st == 200:
                        acked.append((t0, time.monotonic(), uid))
                    elif st:
                        refused[0] += 1

        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 2.0))
        kill(h)  # SIGKILL at a random moment, publishes in flight
        stop.set()
        for t in threads:
            t.join(10)
    h = hub(store, *BIG)
    events = replay_all(h, "/crash", len(acked))
    h.stop()
    shutil.rmtree(d, ignore_errors=True)

    ids = [e.get("id") for e in events]
    pos = {}
    dups = 0
    malformed = 0
    for i, (e, uid) in enumerate(zip(events, ids)):
        if uid in pos:
            dups += 1
        pos[uid] = i
        if not uid or e["data"] != uid:
            malformed += 1
    missing = [a[2] for a in acked if a[2] not in pos]
    # Order: an update acknowledged before another was sent is replayed before it.
    by_ack = sorted(acked, key=lambda a: a[1])
    disorder = 0
    prefix_max, best = [], -1
    for a in by_ack:
        best = max(best, pos.get(a[2], -1))
        prefix_max.append(best)
    ack_times = [a[1] for a in by_ack]
    import bisect
    for a in acked:
        j = bisect.bisect_left(ack_times, a[0]) - 1  # acked strictly before a was sent
        if j >= 0 and a[2] in pos and prefix_max[j] > pos[a[2]]:
            disorder += 1
    # One publisher's updates in its own order.
    per = {}
    for a in sorted(acked, key=lambda a: a[0]):
        per.setdefault(a[2].rsplit("-", 1)[0], []).append(pos.get(a[2], -1))
    for seq in per.values():
        if seq != sorted(seq):
            disorder += 1
    extra = len(events) - len(acked)
    print("     %d kills in %.1f s: %d publishes tried, %d acknowledged (200), %d refused, "
          "%d without an answer (killed or down); %d replayed: %d acknowledged missing, "
          "%d duplicates, %d malformed, %d out of order, %d committed but never answered"
          % (ROUNDS, time.monotonic() - t_start, attempts[0], len(acked), refused[0],
             attempts[0] - len(acked) - refused[0], len(events), len(missing), dups, malformed,
             disorder, extra))
    th.check(len(acked) > 100, ("too few publishes acknowledged", len(acked)))
    th.check(not missing, ("acknowledged updates lost", missing[:10]))
    th.check(dups == 0 and malformed == 0 and disorder == 0, (dups, malformed, disorder))


def t_restart_last_event_id():
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    for how in ("SIGTERM", "SIGKILL"):
        h = hub(store)
        topic = "/resume/" + how
        ids = []
        for i in range(10):
            st, _, body = th.publish(h, {"topic": topic, "data": "a%d" % i})
            th.check(st == 200, ("publish", st, body))
            ids.append(body.decode())
        s = th.Sub(h, th.q(topic=topic), {"Last-Event-ID": ids[2]})
        got = [e["data"] for e in s.events(7, timeout=3)]
        th.check(got == ["a%d" % i for i in range(3, 10)], ("before restart", got))
        s.close()
        if how == "SIGTERM":
            th.check(h.stop() == 0, "graceful stop")
        else:
            kill(h)
        h = hub(store)
        for i in range(10, 13):
            st, _, _ = th.publish(h, {"topic": topic, "data": "a%d" % i})
            th.check(st == 200, ("publish after restart", st))
        s = th.Sub(h, th.q(topic=topic), {"Last-Event-ID": ids[5]})
        th.check(s.headers.get("last-event-id") == ids[5], ("resumed id", s.headers))
        got = [e["data"] for e in s.events(7, timeout=3)]
        th.check(got == ["a%d" % i for i in range(6, 13)], ("after restart " + how, got))
        s.close()
        # An id the history does not hold (never published, or trimmed): as with the memory
        # store, nothing is replayed, the answer says "earliest", live updates follow.
        s = th.Sub(h, th.q(topic=topic), {"Last-Event-ID": "urn:uuid:not-in-the-history"})
        th.check(s.status == 200 and s.headers.get("last-event-id") == "earliest",
                 ("unknown id", s.status, s.headers))
        st, _, _ = th.publish(h, {"topic": topic, "data": "live"})
        got = [e["data"] for e in s.events(1, timeout=3)]
        th.check(got == ["live"], ("unknown id: only live updates", got))
        s.close()
        h.stop()
    shutil.rmtree(d, ignore_errors=True)


def t_map_full_503_and_readable():
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    h = hub(store, "--store-map-size", "1M", "--history-count", "100000", "--history-bytes", "1G",
            "--max-body", "64K", "--max-update", "64K")
    ok = 0
    status = 200
    for i in range(200):
        status, _, _ = th.publish(h, {"topic": "/full", "data": ("%d " % i) + "x" * 20000})
        if status != 200:
            break
        ok += 1
    th.check(status == 503, ("a full map answers 503", status, ok))
    th.check(ok > 5, ("some fitted", ok))
    got = replay_all(h, "/full", ok, timeout=10)
    th.check(len(got) == ok, ("readable when full", len(got), ok))
    kill(h)
    h = hub(store, "--store-map-size", "1M", "--history-count", "100000", "--history-bytes", "1G")
    got = replay_all(h, "/full", ok, timeout=10)
    th.check(len(got) == ok, ("readable after restart", len(got), ok))
    h.stop()
    shutil.rmtree(d, ignore_errors=True)


def serve(store):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MERCURE_", "SSEHUB_"))}
    return subprocess.run([th.SSEHUB, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key",
                           th.KEY, "--store", "lmdb:" + store], capture_output=True, timeout=10,
                          env=env)


def t_second_instance_and_foreign_refused():
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    h = hub(store)
    p = serve(store)
    th.check(p.returncode == 1, ("second hub exit", p.returncode))
    th.check(b"in use by another ssehub" in p.stderr, p.stderr)
    h.stop()
    foreign = os.path.join(d, "notes.txt")
    with open(foreign, "w") as f:
        f.write("somebody's notes\n")
    p = serve(foreign)
    th.check(p.returncode == 1 and b"not a directory" in p.stderr, (p.returncode, p.stderr))
    os.mkdir(os.path.join(d, "other"))
    with open(os.path.join(d, "other", "data.mdb"), "wb") as f:
        f.write(b"\x00junk" * 1000)
    p = serve(os.path.join(d, "other"))
    th.check(p.returncode == 1 and b"not a usable LMDB file" in p.stderr, (p.returncode, p.stderr))
    with open(os.path.join(d, "other", "data.mdb"), "rb") as f:
        th.check(f.read() == b"\x00junk" * 1000, "the foreign file was changed")
    with open(foreign) as f:
        th.check(f.read() == "somebody's notes\n", "the foreign file was changed")
    shutil.rmtree(d, ignore_errors=True)


def t_workers():
    """--workers 2: the master's sequencer alone writes the file; after a restart of the whole
    hub, and after a worker is killed, every worker replays the history (from the master)."""
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    h = hub(store, "--workers", "2")
    ids = []
    for i in range(20):
        st, _, body = th.publish(h, {"topic": "/w", "data": "w%d" % i})
        th.check(st == 200, ("publish", st, body))
        ids.append(body.decode())
    th.check(h.stop() == 0, "graceful stop of the master")
    h = hub(store, "--workers", "2")
    seen = set()
    for _ in range(8):  # connections spread over the workers (SO_REUSEPORT)
        s = th.Sub(h, th.q(topic="/w"), {"Last-Event-ID": ids[4]})
        got = [e["data"] for e in s.events(15, timeout=3)]
        th.check(got == ["w%d" % i for i in range(5, 20)], ("replay after restart", got))
        seen.add(s.headers.get("x-ssehub-worker"))
        s.close()
    th.check(len(seen) >= 1, seen)
    # A worker killed: the restarted one gets the history from the master again.
    kids = subprocess.run(["pgrep", "-P", str(h.p.pid)], capture_output=True, text=True)
    pids = [int(x) for x in kids.stdout.split()]
    th.check(pids, "no workers found")
    os.kill(pids[0], signal.SIGKILL)
    # Published while that worker is down or restarting (the other one, or the master's retry,
    # answers): the restarted worker must catch up on these too, from the master's history.
    # A connection the kernel queued for the killed worker (SO_REUSEPORT) is reset: that publish
    # was not acknowledged, and is tried again like a 503.
    for i in range(20, 30):
        for _ in range(50):
            try:
                st, _, _ = th.publish(h, {"topic": "/w", "data": "w%d" % i})
            except OSError as e:
                st = "%s" % e
            if st == 200:
                break
            time.sleep(0.05)
        th.check(st == 200, ("publish while a worker restarts", st))
    time.sleep(1.5)
    seen = set()
    for _ in range(12):
        s = th.Sub(h, th.q(topic="/w"), {"Last-Event-ID": "earliest"})
        got = [e["data"] for e in s.events(30, timeout=3)]
        th.check(got == ["w%d" % i for i in range(30)], ("replay after a worker died", got))
        seen.add(s.headers.get("x-ssehub-worker"))
        s.close()
    th.check(len(seen) == 2, ("both workers answered (the restarted one too)", seen))
    # Idle, the master sleeps: it used to spin on its store's loop (poll timeout 0) at ~50 % CPU.
    def cpu_s(pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu_s(h.p.pid)
    time.sleep(2)
    idle = cpu_s(h.p.pid) - c0
    th.check(idle < 0.3, ("the idle master used %.2f s of CPU in 2 s" % idle))
    th.check(h.stop() == 0, "graceful stop")
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- streamed replay

def publish_many(port, topic, n, conns=16, pad=400, prefix="n"):
    """n updates to topic over conns keep-alive connections, pipelined; data prefix%06d + pad.
    The k-th connection sends updates k, k+conns, ... so data tells the publish order only per
    connection: the test checks the replayed order against the ids' store order instead."""
    ok = [0] * conns

    def worker(k):
        sk = socket.create_connection(("127.0.0.1", port), timeout=30)
        mine = list(range(k, n, conns))
        buf = b""
        for at in range(0, len(mine), 200):
            batch = mine[at:at + 200]
            reqs = []
            for i in batch:
                body = ("topic=%s&data=%s%06d+%s" % (topic, prefix, i, "x" * pad)).encode()
                reqs.append(b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/x-www-form-urlencoded\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            sk.sendall(b"".join(reqs))
            seen = 0
            while seen < len(batch):
                c = sk.recv(1 << 16)
                if not c:
                    raise RuntimeError("publisher connection closed")
                buf += c
                while True:  # whole responses only (the body follows its Content-Length)
                    i = buf.find(b"\r\n\r\n")
                    if i < 0:
                        break
                    head = buf[:i].decode("latin-1")
                    m = [l for l in head.split("\r\n") if l.lower().startswith("content-length")]
                    blen = int(m[0].split(":")[1]) if m else 0
                    if len(buf) < i + 4 + blen:
                        break
                    if head.startswith("HTTP/1.1 200"):
                        ok[k] += 1
                    buf = buf[i + 4 + blen:]
                    seen += 1
        sk.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(ok)


def rss_anon_kib(pid):
    """Anonymous resident memory (heap): LMDB's map is file-backed and not counted."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def raw_subscribe(port, topic, last_id, rcvbuf=None):
    sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sk.settimeout(10)
    sk.connect(("127.0.0.1", port))
    sk.sendall(("GET /.well-known/mercure?%s HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s\r\n\r\n"
                % (th.q(topic=topic), last_id)).encode())
    return sk


def sse_datas(raw):
    """The data fields of a whole HTTP/1.1 event-stream response (chunked or not), in order."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, at = [], 0
        while True:
            j = body.find(b"\r\n", at)
            if j < 0:
                break
            n = int(body[at:j].split(b";")[0] or b"0", 16)
            if n == 0 or j + 2 + n > len(body):
                break
            out.append(body[j + 2:j + 2 + n])
            at = j + 2 + n + 2
        body = b"".join(out)
    return [l[6:].decode() for l in body.split(b"\n") if l.startswith(b"data: ")]


def t_replay_streams():
    """100,000 updates replayed from LMDB after a restart to a subscriber that does not read:
    the hub's heap stays bounded (the replay waits for the subscriber instead of collecting the
    history: it used to grow by every replayed frame, then drop the subscriber as too slow);
    live updates published meanwhile arrive once, after the replayed ones; subscribers that
    close mid-replay leave nothing behind (the hub stays up and exits cleanly)."""
    # A sanitizer build publishes ~4x slower: fewer updates there (it checks memory safety; the
    # memory bound is meant for the plain build, and scales with n).
    with open(th.SSEHUB, "rb") as f:
        sanitized = b"__asan_init" in f.read()
    n = int(os.environ.get("SSE_DURABLE_REPLAY", "30000" if sanitized else "100000"))
    bound = 4 + 20.0 * n / 100000
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    args = ("--publish-anonymous", "--store-sync", "nosync", "--history-count", str(2 * n),
            "--history-bytes", "1G")
    h = hub(store, *args)
    t0 = time.monotonic()
    ok = publish_many(h.port, "/r", n)
    th.check(ok == n, ("published", ok, n))
    print("     %d updates published in %.1f s" % (n, time.monotonic() - t0))
    th.check(h.stop() == 0, "graceful stop")
    # A sanitizer build keeps freed blocks in quarantine: measure the hub's memory, not ASan's.
    asan = os.environ.get("ASAN_OPTIONS", "")
    h = th.Hub("--publisher-jwt-key", th.KEY, "--anonymous", "--store", "lmdb:" + store, *args,
               env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"})
    base = rss_anon_kib(h.p.pid)
    sk = raw_subscribe(h.port, "/r", "earliest", rcvbuf=4096)
    peak = base
    for _ in range(30):  # 3 s: time enough for the old hub to collect everything
        time.sleep(0.1)
        peak = max(peak, rss_anon_kib(h.p.pid))
    for i in range(5):  # live, during the replay
        st, _, _ = th.publish(h, {"topic": "/r", "data": "live%d" % i})
        th.check(st == 200, ("live publish", st))
    for _ in range(10):
        time.sleep(0.1)
        peak = max(peak, rss_anon_kib(h.p.pid))
    grew = (peak - base) / 1024.0
    print("     a subscriber not reading a replay of %d: hub heap %.1f -> %.1f MiB (+%.1f)"
          % (n, base / 1024.0, peak / 1024.0, grew))
    th.check(grew < bound, ("the hub's heap grew by %.1f MiB during a replay (bound %.0f)"
                            % (grew, bound)))
    # Now read it all: every update once, in store order, then the live ones.
    parts, got, t1 = [], 0, time.monotonic()
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sk.settimeout(5)
    while time.monotonic() - t1 < 60:
        try:
            c = sk.recv(1 << 20)
        except socket.timeout:
            break
        if not c:
            break
        parts.append(c)
        got += c.count(b"data: ")
        if got >= n + 5:
            break
    sk.close()
    datas = sse_datas(b"".join(parts))
    th.check(len(datas) == n + 5, ("events read", len(datas), n + 5))
    nums = sorted(int(x[1:7]) for x in datas[:n])
    th.check(nums == list(range(n)), "the replay is not every update once")
    th.check(datas[n:] == ["live%d" % i for i in range(5)], ("live after replay", datas[n:]))
    print("     then read in %.1f s: %d replayed + 5 live, once, live last"
          % (time.monotonic() - t1, n))
    # Subscribers that go mid-replay, at different moments.
    for k in range(6):
        sk = raw_subscribe(h.port, "/r", "earliest", rcvbuf=4096 if k % 2 else None)
        if k:
            sk.recv(1 << (10 + 2 * k))
            time.sleep(0.05 * k)
        sk.close()
    time.sleep(0.5)
    st, _, _ = th.publish(h, {"topic": "/r", "data": "after"})
    th.check(st == 200, ("hub alive after closes mid-replay", st))
    s = th.Sub(h, th.q(topic="/r"), {"Last-Event-ID": datas and "earliest"})
    th.check(s.status == 200, ("subscribe after closes", s.status))
    s.close()
    th.check(h.stop() == 0, "clean exit after closes mid-replay")
    err = h.p.stderr.read().decode(errors="replace")
    th.check("Sanitizer" not in err and "runtime error" not in err, err[-3000:])
    shutil.rmtree(d, ignore_errors=True)


def worker_pids(h):
    kids = subprocess.run(["pgrep", "-P", str(h.p.pid)], capture_output=True, text=True)
    return [int(x) for x in kids.stdout.split()]


def raw_replay(port, topic, last_id, n_expect, pids, timeout=60):
    """Read a whole replay on a new connection: (worker, datas, peak RssAnon KiB per pid)."""
    sk = raw_subscribe(port, topic, last_id)
    sk.settimeout(10)  # a sanitizer build on a loaded machine may take seconds to start
    parts, got, t0 = [], 0, time.monotonic()
    peak = {p: rss_anon_kib(p) for p in pids}
    reads = 0
    while time.monotonic() - t0 < timeout and got < n_expect:
        try:
            c = sk.recv(1 << 20)
        except socket.timeout:
            break
        if not c:
            break
        parts.append(c)
        got += c.count(b"data: ")
        reads += 1
        if reads % 16 == 0:
            for p in pids:
                peak[p] = max(peak[p], rss_anon_kib(p))
    sk.close()
    raw = b"".join(parts)
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    wk = [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.startswith("x-ssehub-worker")]
    return (wk[0] if wk else None), sse_datas(raw), peak


def t_workers_follow():
    """--workers 2 over LMDB: the workers follow the master's file instead of keeping the
    history in memory. A history far larger than a worker's cache (n updates of ~1 KB) leaves
    the workers' heap where it was (it grew by the history's size when each worker kept a copy),
    and is replayed whole, in order, from either worker (read from the file in batches). Then,
    with --history-count 50, ids the master trimmed are unknown on every worker."""
    with open(th.SSEHUB, "rb") as f:
        sanitized = b"__asan_init" in f.read()
    n = int(os.environ.get("SSE_DURABLE_FOLLOW", "8000" if sanitized else "20000"))
    pad = 1000
    hist_mib = n * (pad + 60) / 1048576.0
    d = tempfile.mkdtemp(prefix="ssehub-durable-")
    store = os.path.join(d, "hist")
    asan = os.environ.get("ASAN_OPTIONS", "")
    h = th.Hub("--publisher-jwt-key", th.KEY, "--anonymous", "--store", "lmdb:" + store,
               "--workers", "2", "--publish-anonymous", "--store-sync", "nosync",
               "--history-count", str(2 * n), "--history-bytes", "1G",
               env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"})
    pids = worker_pids(h)
    th.check(len(pids) == 2, ("workers", pids))
    base = {p: rss_anon_kib(p) for p in pids}
    ok = publish_many(h.port, "/f", n, pad=pad)
    th.check(ok == n, ("published", ok, n))
    time.sleep(0.5)
    after = {p: rss_anon_kib(p) for p in pids}
    grew = max(after[p] - base[p] for p in pids) / 1024.0
    print("     %d updates (%.1f MiB of history): worker heap +%.1f MiB at most"
          % (n, hist_mib, grew))
    # The bound is for the plain build (ASan's redzones and shadow inflate every allocation).
    th.check(sanitized or grew < hist_mib / 2,
             ("a worker's heap grew by %.1f MiB with a %.1f MiB history: it holds the history"
              % (grew, hist_mib)))
    seen = set()
    for _ in range(12):  # new connections until both workers replayed it all
        wk, datas, peak = raw_replay(h.port, "/f", "earliest", n, pids)
        th.check(len(datas) == n, ("replayed", wk, len(datas), n))
        nums = sorted(int(x[1:7]) for x in datas)
        th.check(nums == list(range(n)), "the replay is not every update once")
        during = max(peak[p] - base[p] for p in pids) / 1024.0
        print("     replay of %d from worker %s: worker heap +%.1f MiB at most" % (n, wk, during))
        th.check(sanitized or during < hist_mib / 2,
                 ("a worker's heap grew by %.1f MiB during a replay of %.1f MiB"
                  % (during, hist_mib)))
        seen.add(wk)
        if len(seen) == 2:
            break
    th.check(len(seen) == 2, ("both workers replayed", seen))
    th.check(h.stop() == 0, "graceful stop")
    err = h.p.stderr.read().decode(errors="replace")
    th.check("Sanitizer" not in err and "runtime error" not in err, err[-3000:])

    # The master trims (count): followers see it. An id trimmed away is unknown everywhere.
    h = hub(store + "-trim", "--workers", "2", "--history-count", "50")
    ids = []
    for i in range(100):
        st, _, body = th.publish(h, {"topic": "/t", "data": "t%d" % i})
        th.check(st == 200, ("publish", st, body))
        ids.append(body.decode())
    seen = set()
    for _ in range(12):
        s = th.Sub(h, th.q(topic="/t"), {"Last-Event-ID": ids[10]})
        th.check(s.status == 200 and s.headers.get("last-event-id") == "earliest",
                 ("trimmed id", s.status, s.headers))
        th.check(s.events(1, timeout=0.3) == [], "a trimmed id replayed something")
        seen.add(s.headers.get("x-ssehub-worker"))
        s.close()
        s = th.Sub(h, th.q(topic="/t"), {"Last-Event-ID": ids[89]})
        got = [e["data"] for e in s.events(10, timeout=3)]
        th.check(got == ["t%d" % i for i in range(90, 100)], ("kept id", got))
        s.close()
    th.check(len(seen) == 2, ("both workers answered", seen))
    # A reader SIGKILLed inside a read transaction (as a worker may be) leaves its LMDB reader
    # slot taken; the master clears it when a worker dies (and every 10 s) and says so.
    r = subprocess.Popen([sys.executable, "-c", STALE_READER, store + "-trim"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = r.stdout.readline()
    r.kill()
    r.wait()
    th.check(line.strip() == b"in-txn", ("stale reader", line, r.stderr.read()))
    os.kill(worker_pids(h)[0], signal.SIGKILL)
    time.sleep(1.0)
    th.check(h.stop() == 0, "graceful stop")
    err = h.p.stderr.read().decode(errors="replace")
    th.check("cleared 1 stale LMDB reader slot" in err, ("stale slot not cleared", err[-2000:]))
    shutil.rmtree(d, ignore_errors=True)


# Opens an LMDB environment read-only (liblmdb through ctypes: no module to install), begins a
# read transaction, says so, and waits to be killed.
STALE_READER = r"""
import ctypes, ctypes.util, sys, time
lib = ctypes.CDLL(ctypes.util.find_library("lmdb") or "liblmdb.so.0")
env, txn = ctypes.c_void_p(), ctypes.c_void_p()
assert lib.mdb_env_create(ctypes.byref(env)) == 0
lib.mdb_env_set_maxdbs(env, 4)
assert lib.mdb_env_open(env, sys.argv[1].encode(), 0x20000, 0o640) == 0  # MDB_RDONLY
assert lib.mdb_txn_begin(env, None, 0x20000, ctypes.byref(txn)) == 0
print("in-txn", flush=True)
time.sleep(60)
"""


def main():
    tests = [
        ("workers", t_workers),
        ("workers_follow", t_workers_follow),
        ("restart_last_event_id", t_restart_last_event_id),
        ("map_full_503_and_readable", t_map_full_503_and_readable),
        ("second_instance_and_foreign_refused", t_second_instance_and_foreign_refused),
        ("crash", t_crash),
        ("replay_streams", t_replay_streams),
    ]
    passed = failed = 0
    for name, fn in tests:
        if ONLY and ONLY not in name:
            continue
        try:
            fn()
            print("ok   %s" % name)
            passed += 1
        except Exception as e:  # noqa: BLE001 (report every failure and go on)
            print("FAIL %s: %r" % (name, e))
            failed += 1
        sys.stdout.flush()
    for h in th.HUBS:
        if h.p.poll() is None:
            h.p.kill()
            h.p.wait()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
