#!/usr/bin/env python3
"""test_bench_tls_h2.py: `ssehub bench` subscribers over TLS and HTTP/2 against `ssehub serve`.

One hub with a plain listener (`--h2c`: HTTP/2 by prior knowledge beside HTTP/1.1) and a TLS
listener (ALPN h2 and http/1.1), a self-signed certificate made by the `openssl` CLI. Each case
runs the load generator with a small N and checks its JSON report: every stream opened, every
measured message reached every subscriber (deliveries = published x N), no error. Cases: TLS +
HTTP/1.1 verified with --cacert; h2c with 1 and 4 streams per connection (the latter over two
subscriber processes); h2 over TLS with 6
streams per connection and enough data per stream to need several WINDOW_UPDATEs (a client
that does not send them stalls at 64 KiB); a hub limiting streams per connection refuses the
extra streams of each connection (so they were multiplexed); a certificate that does not verify
fails every stream with SSE_EAUTH; --h2 against a hub without h2 fails them (ALPN); the
publisher over TLS (an https:// publish URL).
Usage: test_bench_tls_h2.py PATH/TO/ssehub [test-name-substring]
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as th  # noqa: E402
import test_tls as tt  # noqa: E402

ONLY = sys.argv[2] if len(sys.argv) > 2 else None


def bench(hub, url, *args, n=12, rate=20, duration=1.0, payload=0):
    """Run `ssehub bench` (mercure target, publishing on the plain port); the JSON report."""
    cmd = [th.SSEHUB, "bench", "--json", "--url", url, "--pub-url",
           "http://127.0.0.1:%d/.well-known/mercure" % hub.port, "-n", str(n), "-t", "3",
           "-r", str(rate), "-d", str(duration), "--warmup", "0.3", "--idle", "0", "--drain",
           "12", "--connect-timeout", "20", "--token", th.PUB] + list(args)
    if payload:
        cmd += ["--payload", str(payload)]
    p = subprocess.run(cmd, capture_output=True, timeout=90)
    th.check(p.stdout, ("no report", p.returncode, p.stderr.decode()[-2000:]))
    return json.loads(p.stdout)


def all_delivered(r, n=12, protocol=None, per_conn=1):
    """Every stream open, every measured message delivered to each subscriber of its topic."""
    th.check(r["connected"] == n and r["failed"] == 0 and r["dropped"] == 0,
             ("streams", r["connected"], r["failed"], r["dropped"], r["first_error"]))
    th.check(r["published_measured"] > 0 and r["publish_errors"] == 0,
             ("published", r["published_measured"], r["first_publish_error"]))
    th.check(r["deliveries"] == r["deliveries_expected"] and r["deliveries"] > 0,
             ("deliveries", r["deliveries"], "expected", r["deliveries_expected"]))
    # 3 topics, subscribers round-robin: each message reaches n/3 of them
    th.check(r["deliveries_expected"] == r["published_measured"] * n // 3,
             ("expected", r["deliveries_expected"], "published", r["published_measured"]))
    th.check(r["errors"] == 0 and r["bad_events"] == 0, ("errors", r["errors"], r["bad_events"]))
    if protocol:
        th.check(r["protocol"] == protocol and r["streams_per_conn"] == per_conn,
                 ("protocol", r["protocol"], r["streams_per_conn"]))


class Hubs:
    """The hubs of this run, made on first use."""
    cert = key = None
    hub = None

    @classmethod
    def get(cls):
        if cls.hub is None:
            cls.cert, cls.key = tt.make_cert("bench")
            cls.hub = tt.TlsHub(cls.cert, cls.key, "--h2c", "--heartbeat", "0", "--log-level",
                                "warn")
        return cls.hub

    @classmethod
    def tls_url(cls, hub):
        return "https://127.0.0.1:%d/.well-known/mercure" % hub.tls_port


def t_tls_http11_cacert():
    h = Hubs.get()
    r = bench(h, Hubs.tls_url(h), "--cacert", Hubs.cert)
    th.check(r["tls"] is True, "not reported as TLS")
    all_delivered(r, protocol="http/1.1")


def t_publisher_over_tls():
    # subscribers over h2 + TLS, the publisher over TLS + HTTP/1.1 (the https:// --url is the
    # default --pub-url for a hub)
    h = Hubs.get()
    cmd = [th.SSEHUB, "bench", "--json", "--url", Hubs.tls_url(h), "--h2", "--cacert", Hubs.cert,
           "-n", "6", "-r", "20", "-d", "1", "--warmup", "0.3", "--idle", "0", "--drain", "12",
           "--token", th.PUB]
    p = subprocess.run(cmd, capture_output=True, timeout=90)
    th.check(p.stdout, ("no report", p.returncode, p.stderr.decode()[-2000:]))
    r = json.loads(p.stdout)
    th.check(r["published_measured"] > 0 and r["publish_ok"] == r["published"] and
             r["deliveries"] == r["published_measured"] * 6 and r["errors"] == 0,
             ("publisher over TLS", r["published"], r["publish_ok"], r["deliveries"],
              r["first_publish_error"]))


def t_h2c_one_stream_per_conn():
    h = Hubs.get()
    all_delivered(bench(h, "http://127.0.0.1:%d/.well-known/mercure" % h.port, "--h2c"),
                  protocol="h2c")


def t_h2c_four_streams_per_conn():
    h = Hubs.get()
    # two subscriber processes (the multi-process spreading), 6 streams each
    r = bench(h, "http://127.0.0.1:%d/.well-known/mercure" % h.port, "--h2c",
              "--streams-per-conn", "4", "--procs", "2")
    all_delivered(r, protocol="h2c", per_conn=4)
    th.check(r["procs"] == 2, ("procs", r["procs"]))


def t_h2_tls_flow_control():
    # 6 streams per connection, 2 KB events at 100/s for 1.5 s (+ warm-up): ~100 KB per stream
    # and ~600 KB per connection, past the 64 KiB stream and connection windows.
    h = Hubs.get()
    r = bench(h, Hubs.tls_url(h), "--h2", "--cacert", Hubs.cert, "--streams-per-conn", "6",
              rate=100, duration=1.5, payload=2000)
    all_delivered(r, protocol="h2", per_conn=6)
    th.check(r["body_bytes"] > 12 * 100000, ("body bytes", r["body_bytes"]))


def t_streams_share_a_connection():
    # The hub allows 4 streams per connection: of 6 per connection, 2 are refused, so 4 of 12
    # fail and the other 8 get everything.
    cert, key = tt.make_cert("limit")
    h = tt.TlsHub(cert, key, "--h2c", "--h2-max-streams", "4", "--heartbeat", "0",
                  "--log-level", "warn")
    r = bench(h, "http://127.0.0.1:%d/.well-known/mercure" % h.port, "--h2c",
              "--streams-per-conn", "6")
    th.check(r["connected"] == 8 and r["failed"] == 4, ("streams", r["connected"], r["failed"]))
    h.stop()


def t_unverified_certificate_fails():
    h = Hubs.get()
    other, _ = tt.make_cert("other")  # a CA that did not sign the hub's certificate
    r = bench(h, Hubs.tls_url(h), "--cacert", other, n=3)
    th.check(r["connected"] == 0 and r["failed"] == 3 and r["first_error"] == "SSE_EAUTH",
             ("streams", r["connected"], r["failed"], r["first_error"]))



def t_publisher_unverified_backs_off():
    # a publish URL whose certificate does not verify: every handshake fails; the publisher
    # must wait between attempts (10 ms doubling to 1 s), not reconnect in a busy loop
    import resource
    h = Hubs.get()
    other, _ = tt.make_cert("other-pub")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [th.SSEHUB, "bench", "--json", "--url",
           "http://127.0.0.1:%d/.well-known/mercure" % h.port, "--pub-url", Hubs.tls_url(h),
           "--cacert", other, "-n", "3", "-r", "20", "-d", "2", "--warmup", "0.3", "--idle", "0", "--drain", "2",
           "--token", th.PUB]
    p = subprocess.run(cmd, capture_output=True, timeout=90)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    th.check(p.stdout, ("no report", p.returncode, p.stderr.decode()[-2000:]))
    r = json.loads(p.stdout)
    th.check(r["publish_ok"] == 0 and r["first_publish_error"] == "SSE_EAUTH",
             ("publisher", r["publish_ok"], r["first_publish_error"]))
    # a busy loop of handshakes burns a core for the whole run (2.3 s and more); with the
    # back-off the handshakes of the few attempts cost well under half a second
    th.check(cpu < 1.0, ("the publisher spun on failed handshakes: CPU s", round(cpu, 2)))

def t_h2_needs_alpn_h2():
    cert, key = tt.make_cert("noh2")
    h = tt.TlsHub(cert, key, "--no-h2", "--heartbeat", "0", "--log-level", "warn")
    r = bench(h, Hubs.tls_url(h), "--h2", "--insecure", n=3)
    th.check(r["connected"] == 0 and r["failed"] == 3 and
             r["first_error"] == "SSE_EUNSUPPORTED",
             ("streams", r["connected"], r["failed"], r["first_error"]))
    h.stop()


def t_bad_options_refused():
    for args, want in ((["--url", "https://127.0.0.1:1/", "--h2c", "--pub-url", "http://127.0.0.1:1/"],
                        "--h2c"),
                       (["--url", "http://127.0.0.1:1/", "--h2"], "--h2"),
                       (["--url", "http://127.0.0.1:1/", "--streams-per-conn", "3"], "needs"),
                       (["--url", "https://127.0.0.1:1/", "--pub-url", "http://127.0.0.1:1/", "--cacert",
                         "/nonexistent"], "CA")):
        p = subprocess.run([th.SSEHUB, "bench"] + args, capture_output=True, timeout=30)
        th.check(p.returncode == 2 and want in p.stderr.decode(),
                 (args, p.returncode, p.stderr.decode()))


def main():
    tests = [
        ("bad_options_refused", t_bad_options_refused),
        ("tls_http11_cacert", t_tls_http11_cacert),
        ("publisher_over_tls", t_publisher_over_tls),
        ("h2c_one_stream_per_conn", t_h2c_one_stream_per_conn),
        ("h2c_four_streams_per_conn", t_h2c_four_streams_per_conn),
        ("h2_tls_flow_control", t_h2_tls_flow_control),
        ("streams_share_a_connection", t_streams_share_a_connection),
        ("unverified_certificate_fails", t_unverified_certificate_fails),
        ("publisher_unverified_backs_off", t_publisher_unverified_backs_off),
        ("h2_needs_alpn_h2", t_h2_needs_alpn_h2),
    ]
    try:
        return th.run_cases([(name, fn, ()) for name, fn in tests], ONLY)
    finally:
        shutil.rmtree(tt.TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
