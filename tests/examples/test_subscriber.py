#!/usr/bin/env python3
"""test_subscriber.py: examples/subscriber.c against examples/clock.c, over real sockets.

Usage: test_subscriber.py SSE_EXAMPLE_CLOCK SSE_EXAMPLE_SUBSCRIBER WEB_DIR

Starts the clock on 127.0.0.1 port 0 (its first stdout line is `listening on
http://127.0.0.1:PORT/ ...`), then two subscribers on /clock at once: A with `--event myEvent`,
B without. Once A has seen a myEvent (the clock sends one on every fifth id, so within about 6 s)
it checks: A printed "CONNECTING to URL" and then "OPEN" before any event; at least 3 messages
"[id] message: <ISO 8601 time>" with ids increasing by one; a "[id] myEvent: ..." line (its id a
multiple of 5), which only the listener added by --event can print, since B saw the same ids but
must print no myEvent line. Then SIGINT: each subscriber prints "CLOSED (SIGINT)" and exits 0;
SIGTERM: the clock exits 0. Everything started is killed at the end, whatever happened.
Exit 0 = pass, 1 = fail (python3 stdlib only).
"""
import re
import signal
import subprocess
import sys
import threading
import time

MESSAGE = re.compile(r"^\[(\d+)\] message: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)$")
MYEVENT = re.compile(r"^\[(\d+)\] myEvent: id (\d+) is a multiple of five")


class Proc:
    """A program whose stdout lines are collected by a thread, stderr passed through."""

    def __init__(self, name, argv):
        self.name = name
        self.lines = []
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            print(f"{self.name}> {line}", flush=True)
            self.lines.append(line)

    def wait_for(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(list(self.lines)):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: {what} not seen within {timeout} s "
                             f"(exit status {self.p.poll()})")

    def stop(self, sig, timeout=5):
        """Send sig, wait for the exit, return the exit status (after reading all output)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name}: still running {timeout} s after signal {sig}")
        self.t.join(2)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    clock_bin, sub_bin, web = sys.argv[1:]
    procs = []
    try:
        clock = Proc("clock", [clock_bin, "--listen", "127.0.0.1:0", "--web", web])
        procs.append(clock)
        clock.wait_for(lambda ls: ls, 10, "a first line")
        m = re.match(r"^listening on http://127\.0\.0\.1:(\d+)/", clock.lines[0])
        check(m is not None, f"clock's first line says where it listens: {clock.lines[0]!r}")
        url = f"http://127.0.0.1:{m.group(1)}/clock"

        a = Proc("sub-A", [sub_bin, url, "--event", "myEvent"])
        procs.append(a)
        b = Proc("sub-B", [sub_bin, url])
        procs.append(b)
        a.wait_for(lambda ls: any(MYEVENT.match(x) for x in ls), 20, "a myEvent line")
        a.wait_for(lambda ls: sum(bool(MESSAGE.match(x)) for x in ls) >= 3, 10, "3 messages")
        last_a = max(int(MYEVENT.match(x).group(1)) for x in a.lines if MYEVENT.match(x))
        # B connected at the same time: wait until it has seen at least the same ids.
        b.wait_for(lambda ls: any(MESSAGE.match(x) and int(MESSAGE.match(x).group(1)) >= last_a
                                  for x in ls), 5, f"B's message {last_a}")

        rc_a = a.stop(signal.SIGINT)
        rc_b = b.stop(signal.SIGINT)
        rc_clock = clock.stop(signal.SIGTERM)

        la = a.lines
        check(la[0] == f"CONNECTING to {url}", "A starts with 'CONNECTING to URL'")
        first_event = next(i for i, x in enumerate(la) if x.startswith("["))
        check("OPEN" in la[:first_event], "A prints OPEN before the first event")
        ids = [int(MESSAGE.match(x).group(1)) for x in la if MESSAGE.match(x)]
        check(len(ids) >= 3, f"A printed {len(ids)} messages (at least 3)")
        check(all(y == x + 1 for x, y in zip(ids, ids[1:])), f"ids increase by one: {ids}")
        mine = [MYEVENT.match(x) for x in la if MYEVENT.match(x)]
        check(all(int(e.group(1)) % 5 == 0 and e.group(1) == e.group(2) for e in mine),
              "myEvent lines carry the id of the tick (a multiple of 5)")
        check(la[-1] == "CLOSED (SIGINT)" and rc_a == 0, f"A: CLOSED (SIGINT), exit {rc_a}")

        lb = b.lines
        ids_b = [int(MESSAGE.match(x).group(1)) for x in lb if MESSAGE.match(x)]
        check(any(i % 5 == 0 for i in ids_b), f"B saw a tick with a myEvent: {ids_b}")
        check(not any("myEvent" in x for x in lb),
              "B (no --event) printed no myEvent: A's came through its listener")
        check(lb[-1] == "CLOSED (SIGINT)" and rc_b == 0, f"B: CLOSED (SIGINT), exit {rc_b}")
        check(rc_clock == 0, f"clock exits 0 on SIGTERM (status {rc_clock})")
        print("PASS examples_subscriber", flush=True)
        return 0
    except AssertionError as e:
        print(f"FAIL examples_subscriber: {e}", flush=True)
        return 1
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    sys.exit(main())
