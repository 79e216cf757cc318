#!/usr/bin/env python3
"""test_h2c.py: `ssehub serve --h2c` spoken to by curl with HTTP/2 prior knowledge (h2c).

Starts the hub on 127.0.0.1 port 0 with --dev --h2c, then: curl --http2-prior-knowledge fetches
the dev tokens; five subscribers multiplexed on one connection (nghttp, Debian nghttp2-client),
one curl HTTP/2 subscriber and one HTTP/1.1 subscriber each receive an update published over
HTTP/2 by curl and a second one published over HTTP/1.1; /metrics counts 7 subscribers on 4
connections. Needs curl and nghttp (scripts/install-deps test); without them the test is skipped,
or fails with CI=true.
Usage: test_h2c.py path/to/ssehub
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SSEHUB = sys.argv[1]
CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")  # Debian nghttp2-client
STDBUF = shutil.which("stdbuf")


def main():
    if not CURL or not NGHTTP or not STDBUF:
        print("curl or nghttp is missing (scripts/install-deps test installs them)")
        return 1 if os.environ.get("CI") == "true" else 77
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MERCURE_", "SSEHUB_"))}
    hub = subprocess.Popen([SSEHUB, "serve", "--listen", "127.0.0.1:0", "--dev", "--h2c"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    procs = []
    tmp = tempfile.mkdtemp()
    try:
        line = hub.stdout.readline().decode()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        assert m, "hub did not start: %r" % line
        base = "http://127.0.0.1:%s" % m.group(1)
        h2 = [CURL, "-s", "--http2-prior-knowledge", "--max-time", "10"]

        out = subprocess.run(h2 + ["-w", "\n%{http_version}", base + "/.well-known/ssehub/dev-token"],
                             capture_output=True, check=True).stdout.decode()
        body, version = out.rsplit("\n", 1)
        assert version == "2", "not HTTP/2: %r" % version
        tok = json.loads(body)
        sub_auth = "Authorization: Bearer " + tok["subscriber"]
        pub_auth = "Authorization: Bearer " + tok["publisher"]
        url = base + "/.well-known/mercure?topic=/h2/test"

        # five streams on one HTTP/2 connection (nghttp puts every URI on one connection; curl
        # 7.88 leaves --parallel transfers pending on an h2c connection)
        multi = os.path.join(tmp, "multi")
        with open(multi, "wb") as f:
            procs.append(subprocess.Popen([STDBUF, "-o0", NGHTTP, "-H", "authorization: Bearer " + tok["subscriber"]] +
                                          [url + "&n=%d" % i for i in range(5)], stdout=f,
                                          stderr=subprocess.DEVNULL))
        h2one = os.path.join(tmp, "h2one")
        procs.append(subprocess.Popen(h2 + ["-N", "-H", sub_auth, "-o", h2one, url]))
        h1 = os.path.join(tmp, "h1")
        procs.append(subprocess.Popen([CURL, "-s", "-N", "--http1.1", "--max-time", "10", "-H",
                                       sub_auth, "-o", h1, url]))
        deadline = time.time() + 5
        metrics = ""
        while time.time() < deadline:
            metrics = subprocess.run(h2 + [base + "/metrics"], capture_output=True).stdout.decode()
            if re.search(r"^ssehub_subscribers 7$", metrics, re.M):
                break
            time.sleep(0.1)
        assert re.search(r"^ssehub_subscribers 7$", metrics, re.M), metrics
        # 7 subscribers on 4 connections: nghttp's 5 streams, curl h2, curl h1.1, this request
        assert re.search(r"^ssehub_connections 4$", metrics, re.M), metrics

        for data, proto in (("over-h2", "--http2-prior-knowledge"), ("over-h1", "--http1.1")):
            r = subprocess.run([CURL, "-s", proto, "--max-time", "5", "-H", pub_auth, "-d",
                                "topic=/h2/test", "-d", "data=" + data, "-w", " %{http_code}",
                                base + "/.well-known/mercure"], capture_output=True, check=True)
            assert r.stdout.decode().endswith(" 200"), r.stdout
        deadline = time.time() + 5
        want = ("data: over-h2\n", "data: over-h1\n")
        files = {multi: 5, h2one: 1, h1: 1}  # file: copies of each update expected
        got = {}
        while time.time() < deadline:
            got = {f: open(f).read() if os.path.exists(f) else "" for f in files}
            if all(got[f].count(w) == n for f, n in files.items() for w in want):
                break
            time.sleep(0.1)
        for f, n in files.items():
            for w in want:
                assert got[f].count(w) == n, "%s: %d x %r in %r" % (f, n, w, got[f])
        for p in procs:
            p.terminate()
        hub.send_signal(signal.SIGTERM)
        rc = hub.wait(10)
        assert rc == 0, "hub exit %r: %r" % (rc, hub.stderr.read(2000))
        print("h2c: 7 subscribers (5 multiplexed on one HTTP/2 connection) got both updates")
        print("1 passed, 0 failed")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if hub.poll() is None:
            hub.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
