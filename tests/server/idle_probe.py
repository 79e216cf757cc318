#!/usr/bin/env python3
# idle_probe.py PORT N: open N idle event streams to idle_probe, print the memory per stream
# (VmRSS and malloc growth / N) and three timings of one event pushed to all N streams.
import resource, socket, sys, time, urllib.request

port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def get(path):
    return urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path)).read().decode().split()

base = get("/rss")
socks = []
for _ in range(n):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /sub HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
while int(get("/rss")[0]) < n:
    time.sleep(0.1)
time.sleep(0.5)
after = get("/rss")
print("streams %d: RSS %.0f bytes/stream, malloc %.0f bytes/stream" % (
    n, (int(after[1]) - int(base[1])) * 1024 / n, (int(after[2]) - int(base[2])) / n))
for k in (1, 1, 1, 10, 10, 100):
    print("push:", " ".join(get("/pub?k=%d" % k)))
    time.sleep(0.5)
# drain: the client reads nothing, so stop before the kernel buffers fill

