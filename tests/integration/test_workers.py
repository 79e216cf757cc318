#!/usr/bin/env python3
"""test_workers.py: `ssehub serve --workers 3` over real HTTP (python3 stdlib only).

Starts the hub with three worker processes on 127.0.0.1 port 0 and checks (docs/WORKERS.md):
the master prints `listening on` once every worker listens; 60 subscribers spread over more
than one worker (X-Ssehub-Worker header, and /metrics labelled worker="K"); updates published
concurrently on new connections (so on different workers) reach every subscriber in ONE order
with the ids the POSTs answered; Last-Event-ID on new connections replays exactly the missed
ones on any worker; kill -9 of a worker: its streams end, the master restarts it, the others keep
receiving, new subscriptions work and the restarted worker replays the history it was handed;
SIGTERM to the master: every process exits, the master with 0.
Usage: test_workers.py PATH/TO/ssehub
"""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SSEHUB = sys.argv[1] if len(sys.argv) > 1 else "ssehub"
FAILED = []
PASSED = [0]


def check(cond, what):
    if cond:
        PASSED[0] += 1
    else:
        FAILED.append(what)
        print("FAIL:", what, flush=True)


class Hub:
    def __init__(self, n, extra=()):
        self.p = subprocess.Popen(
            [SSEHUB, "serve", "--workers", str(n), "--listen", "127.0.0.1:0", "--dev",
             "--heartbeat", "0", "--history-count", "200", "--shutdown-timeout", "1s"]
            + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err = []
        self.lock = threading.Lock()
        threading.Thread(target=self._drain_err, daemon=True).start()
        self.port = None
        self.pub = None
        self.pub_workers = set()
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            m = re.match(r"listening on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
            m = re.match(r"publisher token: (\S+)", line)
            if m:
                self.pub = m.group(1)
                break
        threading.Thread(target=self.p.stdout.read, daemon=True).start()

    def _drain_err(self):
        for line in self.p.stderr:
            with self.lock:
                self.err.append(line)

    def log(self):
        with self.lock:
            return list(self.err)

    def worker_pid(self, k):
        """pid of the newest incarnation of worker k, from the master's log."""
        pid = None
        for line in self.log():
            m = re.search(r"master: worker %d started \(pid (\d+)\)" % k, line)
            if m:
                pid = int(m.group(1))
        return pid


def publish(hub, data, topic="/t"):
    body = ("topic=%s&data=%s" % (topic, data)).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/.well-known/mercure" % hub.port, data=body,
                                 headers={"Authorization": "Bearer " + hub.pub,
                                          "Content-Type": "application/x-www-form-urlencoded",
                                          "Connection": "close"})
    with urllib.request.urlopen(req, timeout=10) as r:
        hub.pub_workers.add(r.headers.get("X-Ssehub-Worker"))
        return r.status, r.read().decode()


class Sub:
    """A raw-socket subscriber: the worker it landed on, then the events it receives."""

    def __init__(self, hub, topic="/t", last_event_id=None):
        self.s = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
        extra = "Last-Event-ID: %s\r\n" % last_event_id if last_event_id else ""
        self.s.sendall(("GET /.well-known/mercure?topic=%s HTTP/1.1\r\nHost: x\r\n%s\r\n"
                        % (topic, extra)).encode())
        self.buf = b""
        self.events = []
        self.eof = False
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("no headers")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        head = head.decode()
        self.status = int(head.split()[1])
        m = re.search(r"(?im)^X-Ssehub-Worker: (\d+)", head)
        self.worker = int(m.group(1)) if m else None
        self._parse()

    def _parse(self):
        while b"\n\n" in self.buf:
            block, self.buf = self.buf.split(b"\n\n", 1)
            ev = {}
            for line in block.decode().split("\n"):
                if line.startswith(":") or not line:
                    continue
                k, _, v = line.partition(": ")
                ev[k] = v
            if "id" in ev:
                self.events.append((ev["id"], ev.get("data")))

    def wait(self, n, timeout=10.0):
        """Read until n events or EOF or timeout."""
        deadline = time.time() + timeout
        while len(self.events) < n and not self.eof and time.time() < deadline:
            self.s.settimeout(max(0.05, deadline - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                d = b""
            if not d:
                self.eof = True
                break
            self.buf += d
            self._parse()
        return self.events

    def close(self):
        self.s.close()


def metrics_workers(hub):
    """worker -> subscribers, from as many /metrics answers as it takes to see them all."""
    seen = {}
    for _ in range(40):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % hub.port, timeout=5) as r:
            text = r.read().decode()
        for m in re.finditer(r'^ssehub_subscribers\{worker="(\d+)"\} (\d+)$', text, re.M):
            seen[int(m.group(1))] = int(m.group(2))
        if len(seen) == 3:
            break
    return seen


def main():
    ok = with_hub(Hub(3), run)
    ok &= with_hub(Hub(2, ["--max-update", "16K", "--history-bytes", "256K"]), run_stuck)
    settings_sources()
    print("%d passed, %d failed" % (PASSED[0], len(FAILED)))
    return 1 if FAILED or not ok else 0


def with_hub(hub, fn):
    check(hub.port and hub.pub, "the master prints the port and the dev tokens")
    if not hub.port:
        print("".join(hub.log()))
        hub.p.kill()
        return False
    try:
        fn(hub)
    finally:
        if hub.p.poll() is None:
            hub.p.send_signal(signal.SIGTERM)
            try:
                code = hub.p.wait(15)
            except subprocess.TimeoutExpired:
                hub.p.kill()
                code = "timeout"
            check(code == 0, "SIGTERM: the master exits 0 (got %s)" % code)
            if code != 0:
                print("".join(hub.log()[-30:]))
        time.sleep(0.3)
        for k in range(3):
            pid = hub.worker_pid(k)
            if pid is None:
                continue
            alive = pid is not None and os.path.exists("/proc/%d" % pid) and \
                "zombie" not in open("/proc/%d/status" % pid).read()
            check(not alive, "worker %d exited after SIGTERM" % k)
        bad = [l for l in hub.log() if "Sanitizer" in l or "runtime error" in l]
        check(not bad, "no sanitizer report: " + "".join(bad[:20]))
    return True


def banner_workers(args, env=None):
    """Start serve with args/env, return the `workers:` banner line, stop it (SIGTERM -> 0)."""
    p = subprocess.Popen([SSEHUB, "serve", "--listen", "127.0.0.1:0", "--dev"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, **(env or {})))
    line, found = None, None
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line or line.startswith("subscriber token"):
            break
        if line.startswith("workers:"):
            found = line.strip()
    p.send_signal(signal.SIGTERM)
    code = p.wait(15)
    return found, code


def settings_sources():
    """workers from the environment and from a config file; 1 keeps the single process."""
    found, code = banner_workers([], {"SSEHUB_WORKERS": "2"})
    check(found and found.startswith("workers: 2 ") and code == 0, "SSEHUB_WORKERS=2: %s" % found)
    path = "/tmp/ssehub-test-workers-%d.conf" % os.getpid()
    with open(path, "w") as f:
        f.write("workers = 3\n")
    try:
        found, code = banner_workers(["--config", path])
    finally:
        os.unlink(path)
    check(found and found.startswith("workers: 3 ") and code == 0, "config workers = 3: %s" % found)
    found, code = banner_workers(["--workers", "1"])
    check(found is None and code == 0, "--workers 1: the single process, no master")


def run_stuck(hub):
    """A worker that does not drain its pipe (SIGSTOP) is killed and restarted by the master,
    whose queue to it stays bounded; the other worker keeps answering publishes."""
    victim = 1
    pid = hub.worker_pid(victim)
    os.kill(pid, signal.SIGSTOP)
    conn = None
    for _ in range(50):  # a keep-alive connection on the worker that still runs
        c = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=2)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        except (OSError, http.client.HTTPException):
            c.close()
            continue
        if 'worker="%d"' % victim not in text:
            conn = c
            break
        c.close()
    check(conn is not None, "a connection on the running worker")
    if conn is None:
        os.kill(pid, signal.SIGCONT)
        return
    body = "topic=/s&data=" + "x" * 15000
    hdrs = {"Authorization": "Bearer " + hub.pub,
            "Content-Type": "application/x-www-form-urlencoded"}
    ok = 0
    killed = False
    for i in range(3000):
        conn.request("POST", "/.well-known/mercure", body=body, headers=hdrs)
        r = conn.getresponse()
        r.read()
        ok += r.status == 200
        if i % 50 == 0 and any("does not drain its pipe" in l for l in hub.log()):
            killed = True
            break
    conn.close()
    check(killed, "the master killed the worker that does not drain (after %d updates)" % ok)
    check(ok > 0 and ok * 15000 < 64 << 20, "the bound is reached after %d updates (%d MB)"
          % (ok, ok * 15000 >> 20))
    deadline = time.time() + 10
    while time.time() < deadline and hub.worker_pid(victim) == pid:
        time.sleep(0.1)
    npid = hub.worker_pid(victim)
    check(npid and npid != pid, "the stuck worker was restarted (%s -> %s)" % (pid, npid))
    st, _ = publish(hub, "after", topic="/s")
    check(st == 200, "publishing works after the restart")


def run(hub):
    subs = [Sub(hub) for _ in range(60)]
    check(all(s.status == 200 for s in subs), "60 subscribers get 200")
    workers = {s.worker for s in subs}
    check(None not in workers, "every subscribe response names its worker")
    check(len(workers) > 1, "subscribers spread over more than one worker: %s" % workers)
    mw = metrics_workers(hub)
    check(sum(mw.values()) == 60 and sum(1 for v in mw.values() if v) > 1,
          "/metrics per worker (worker=\"K\") sums to 60 over >1 worker: %s" % mw)

    # Concurrent publishes, each on a new connection (so on any worker).
    answered = []
    lock = threading.Lock()

    def pub_many(t):
        for i in range(5):
            st, body = publish(hub, "t%d-%d" % (t, i))
            with lock:
                answered.append((st, body.strip(), "t%d-%d" % (t, i)))

    ths = [threading.Thread(target=pub_many, args=(t,)) for t in range(3)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    check(len(answered) == 15 and all(a[0] == 200 for a in answered), "15 POSTs answered 200")
    check(None not in hub.pub_workers and len(hub.pub_workers) > 1,
          "the POSTs were answered by more than one worker: %s" % hub.pub_workers)
    ids = {a[1]: a[2] for a in answered}
    check(len(ids) == 15 and all(i.startswith("urn:uuid:") for i in ids), "15 distinct ids")
    order = list(subs[0].wait(15))
    check(len(order) == 15, "subscriber 0 got 15 events (got %d)" % len(order))
    check(all(ids.get(i) == d for i, d in order), "each event carries the id its POST answered")
    same = all(s.wait(15) == order for s in subs)
    check(same, "all 60 subscribers got the same 15 events in the same order")

    # Replay on new connections (landing on whatever worker): exactly the missed ones.
    replay_workers = set()
    for j in range(9):
        cut = 3 + j
        r = Sub(hub, last_event_id=order[cut][0])
        replay_workers.add(r.worker)
        got = r.wait(15 - cut - 1, timeout=5)
        check(got == order[cut + 1:], "replay after event %d on worker %s" % (cut, r.worker))
        r.close()
    check(len(replay_workers) > 1, "replays served by more than one worker: %s" % replay_workers)

    # kill -9 a worker that holds subscribers.
    victim = max(workers, key=lambda k: sum(1 for s in subs if s.worker == k))
    pid = hub.worker_pid(victim)
    os.kill(pid, signal.SIGKILL)
    dead = [s for s in subs if s.worker == victim]
    alive = [s for s in subs if s.worker != victim]
    for s in dead:
        s.wait(10**6, timeout=5)
    check(all(s.eof for s in dead), "the killed worker's %d streams ended" % len(dead))
    deadline = time.time() + 10
    while time.time() < deadline:
        npid = hub.worker_pid(victim)
        if npid != pid and any(("worker %d (pid %d) listening" % (victim, npid)) in l
                               for l in hub.log()):
            break
        time.sleep(0.1)
    npid = hub.worker_pid(victim)
    check(npid and npid != pid, "the master restarted worker %d (pid %s -> %s)" % (victim, pid, npid))
    check(any("restarting in" in l for l in hub.log()), "the restart is logged")

    st, nid = publish(hub, "after-kill")
    check(st == 200, "publish after the restart")
    for s in alive:
        s.wait(16, timeout=5)
    check(all(len(s.events) == 16 and s.events[15] == (nid.strip(), "after-kill") for s in alive),
          "the %d subscribers of the other workers kept receiving" % len(alive))

    # New subscriptions work; one landing on the restarted worker replays from its handed history.
    on_victim = None
    fresh = []
    for _ in range(60):
        s = Sub(hub, last_event_id=order[10][0])
        if s.worker == victim and on_victim is None:
            on_victim = s
        else:
            fresh.append(s)
        if on_victim and len(fresh) >= 5:
            break
    check(on_victim is not None, "a new subscription lands on the restarted worker")
    want = order[11:] + [(nid.strip(), "after-kill")]
    for s in fresh + ([on_victim] if on_victim else []):
        got = s.wait(len(want), timeout=5)
        check(got == want, "replay on a new connection (worker %s) after the restart: %s != %s"
              % (s.worker, got, want))
    st, nid2 = publish(hub, "last")
    for s in fresh + ([on_victim] if on_victim else []):
        got = s.wait(len(want) + 1, timeout=5)
        check(got[-1:] == [(nid2.strip(), "last")],
              "live delivery on a new connection (worker %s)" % s.worker)
        s.close()
    for s in subs:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
