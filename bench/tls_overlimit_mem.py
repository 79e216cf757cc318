#!/usr/bin/env python3
"""tls_overlimit_mem.py: what TLS connections past --max-connections cost the hub (docs/SERVER.md,
"Past max_connections").

Starts `ssehub serve` with a TLS listener (a certificate made by the openssl CLI) and the given
--max-connections, opens N connections that send their ClientHello and then stall (the server
has answered its part of the handshake and waits: the most a handshake holds), and prints the
hub's RSS growth. With --max-connections 0 every one is a normal connection (the peer); with 1
every one is past the limit: at most the budget of over-limit handshakes (32) is held, the rest
is closed at accept.
Usage: tls_overlimit_mem.py PATH/TO/ssehub N MAX_CONNECTIONS
"""
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import os

SSEHUB, N, MAXC = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TMP = tempfile.mkdtemp(prefix="ssehub-overlimit-")
CERT, KEY = os.path.join(TMP, "c.pem"), os.path.join(TMP, "k.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", KEY, "-out", CERT, "-days", "1", "-subj", "/CN=localhost"],
               check=True, capture_output=True)
p = subprocess.Popen([SSEHUB, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key", "k" * 32,
                      "--tls-listen", "127.0.0.1:0", "--tls-cert", CERT, "--tls-key", KEY,
                      "--max-connections", MAXC, "--tls-handshake-timeout", "30s"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = None
while port is None:
    line = p.stdout.readline()
    if not line:
        sys.exit("the hub did not start")
    m = re.search(r"https://127\.0\.0\.1:(\d+)", line)
    port = int(m.group(1)) if m else None


def rss_kib():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/%d/status" % p.pid).read()).group(1))


ctx = ssl._create_unverified_context()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.close()  # one full handshake first: OpenSSL's one-time allocations are not counted
time.sleep(0.3)
r0 = rss_kib()
socks = []
for _ in range(N):
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost",
                        do_handshake_on_connect=False)
    t.setblocking(False)
    try:
        t.do_handshake()  # sends the ClientHello; the answer is never read
    except ssl.SSLWantReadError:
        pass
    except OSError:
        pass  # closed at accept (past the budget)
    socks.append(t)
time.sleep(1.0)
r1 = rss_kib()
print("--max-connections %s, %d stalled handshakes: hub RSS +%d KiB (%.1f KiB per connection)"
      % (MAXC, N, r1 - r0, (r1 - r0) / N))
p.terminate()
p.wait()
