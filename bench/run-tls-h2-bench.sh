#!/bin/bash
# run-tls-h2-bench.sh: issue 12's "deliveries/s and p99 for 10,000 subscribers over TLS and over
# HTTP/2, against the plain HTTP/1.1 numbers", beside nginx + nchan with TLS and http2, in one
# run (docs/performance/tls-h2-fanout.md). With `ssehub bench` (subscribers over http/1.1, TLS,
# h2c, h2 over TLS with 1 or 20 streams per connection; the publisher posts over plain HTTP/1.1
# to the same server's plain port), N (10,000) subscribers on one topic at rising publish rates
# (RATES) until a configuration falls behind (< 99 % delivered, < 95 % of the publish rate
# taken, or p99 over P99_LIMIT_MS, default 5000), for each configuration (CONFIGS):
#   hub-h1     ssehub serve, plain HTTP/1.1           nchan-h1     nginx + nchan, plain HTTP/1.1
#   hub-tls    ssehub serve, TLS + HTTP/1.1           nchan-tls    nginx + nchan, TLS + HTTP/1.1
#   hub-h2c    ssehub serve, h2c (prior knowledge)    (nginx has no h2c beside HTTP/1.1 on a port)
#   hub-h2     ssehub serve, h2 over TLS, 1 stream    nchan-h2     nginx + nchan, h2 over TLS
#   hub-h2x20  ssehub serve, h2 over TLS, 20 streams  nchan-h2x20  nginx + nchan, 20 streams
# Each configuration gets a fresh server (one hub process, one nginx worker:
# bench/peers/nchan-tls.conf.in, `listen ... ssl http2`), a self-signed P-256 certificate made
# with the openssl CLI, loopback only, free ports. The load generator reads the server's CPU
# and memory from /proc (--server-pid). The first rate of each configuration waits IDLE seconds
# (2) with the streams open to read the server's memory per subscriber.
# Builds Release in build-load/ (BUILD=...), writes JSON reports and summary.md to OUT (default
# /tmp/ssehub-tls-h2-bench). Bounded: ~10 minutes with the defaults (each `ssehub bench` run is
# bounded by its own timeouts).
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$BENCH_ROOT/build-load}
OUT=${OUT:-/tmp/ssehub-tls-h2-bench}
N=${N:-10000}
RATES=${RATES:-"2 5 10 20 40"}
DUR=${DUR:-5}
IDLE=${IDLE:-2}
PROCS=${PROCS:-2} # subscriber processes of the load generator (2 cores)
P99_LIMIT_MS=${P99_LIMIT_MS:-5000}
CONFIGS=${CONFIGS:-"hub-h1 hub-tls hub-h2c hub-h2 hub-h2x20 nchan-h1 nchan-tls nchan-h2 nchan-h2x20"}
. "$BENCH_ROOT/bench/peers/bench-lib.sh"
trap bench_cleanup EXIT

cmake -S "$BENCH_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target ssehub >/dev/null
SSEHUB="$BUILD/src/cli/ssehub"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/load.txt
ulimit -n "$(ulimit -Hn)"
CERT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-tls-h2.XXXXXX")
trap 'bench_cleanup; rm -rf "$CERT_DIR"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$CERT_DIR/k.pem" \
    -out "$CERT_DIR/c.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

# A hub with a plain listener (HTTP/1.1 and h2c) and a TLS one (ALPN h2, http/1.1): sets
# HUB_PID HUB_PORT HUB_TLS_PORT HUB_TOKEN.
up_hub() {
    local log="$CERT_DIR/hub.out" i
    "$SSEHUB" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$CERT_DIR/c.pem" \
        --tls-key "$CERT_DIR/k.pem" --h2c --publisher-jwt-key "$HUB_KEY" --anonymous \
        --heartbeat 0 --log-level warn >"$log" 2>&1 &
    HUB_PID=$!
    BENCH_PIDS="$BENCH_PIDS $HUB_PID"
    for i in $(seq 100); do grep -q '^listening on https://' "$log" && break; sleep 0.1; done
    HUB_PORT=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$log")
    HUB_TLS_PORT=$(sed -n 's#^listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$log")
    HUB_TOKEN=$("$SSEHUB" token --publish '*' --key "$HUB_KEY" --exp 86400)
}

# nginx + nchan (one worker) on a plain and a TLS + http2 port: sets NCHAN_MASTER NCHAN_PORT
# NCHAN_TLS_PORT NCHAN_WORKERS NCHAN_DIR.
up_nchan() {
    NCHAN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-nchan-tls.XXXXXX")
    NCHAN_PORT=$(free_port)
    NCHAN_TLS_PORT=$(free_port)
    mkdir -p "$NCHAN_DIR/tmp" "$NCHAN_DIR/logs"
    sed -e "s/@PORT@/$NCHAN_PORT/" -e "s/@TLS_PORT@/$NCHAN_TLS_PORT/" -e "s/@WORKERS@/1/" \
        -e "s#@CERT@#$CERT_DIR/c.pem#" -e "s#@KEY@#$CERT_DIR/k.pem#" \
        "$BENCH_ROOT/bench/peers/nchan-tls.conf.in" >"$NCHAN_DIR/nginx.conf"
    nginx -p "$NCHAN_DIR" -c "$NCHAN_DIR/nginx.conf" -g 'daemon off;' >"$NCHAN_DIR/stdout.log" 2>&1 &
    NCHAN_MASTER=$!
    BENCH_PIDS="$BENCH_PIDS $NCHAN_MASTER"
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$NCHAN_PORT/pub/probe" -d x && break
        sleep 0.1
    done
    NCHAN_WORKERS=$(pgrep -P "$NCHAN_MASTER" | paste -sd, -)
}

# The `ssehub bench` arguments of a configuration (after the server is up).
args_of() {
    local base
    case $1 in
    hub-*)
        base=(--target mercure --pub-url "http://127.0.0.1:$HUB_PORT/.well-known/mercure"
            --token "$HUB_TOKEN" --server-pid "$HUB_PID")
        local plain="http://127.0.0.1:$HUB_PORT/.well-known/mercure"
        local tls="https://127.0.0.1:$HUB_TLS_PORT/.well-known/mercure"
        ;;
    nchan-*)
        base=(--target nchan --pub-url "http://127.0.0.1:$NCHAN_PORT/pub"
            --server-pid "$NCHAN_WORKERS")
        local plain="http://127.0.0.1:$NCHAN_PORT/sub" tls="https://127.0.0.1:$NCHAN_TLS_PORT/sub"
        ;;
    esac
    local ca=(--cacert "$CERT_DIR/c.pem")
    case ${1#*-} in
    h1) ARGS=("${base[@]}" --url "$plain") ;;
    tls) ARGS=("${base[@]}" --url "$tls" "${ca[@]}") ;;
    h2c) ARGS=("${base[@]}" --url "$plain" --h2c) ;;
    h2) ARGS=("${base[@]}" --url "$tls" "${ca[@]}" --h2) ;;
    h2x20) ARGS=("${base[@]}" --url "$tls" "${ca[@]}" --h2 --streams-per-conn 20) ;;
    esac
}

behind() { # FILE RATE -> exit 0 if the server fell behind
    python3 - "$1" "$2" "$P99_LIMIT_MS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = float(sys.argv[2])
ok = (d["deliveries"] >= 0.99 * d["deliveries_expected"] and d["publish_rate"] >= 0.95 * r
      and d["latency_us"]["p99"] < 1e3 * float(sys.argv[3]) and d["connected"] > 0)
sys.exit(1 if ok else 0)
PY
}

echo "start $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt" >&2
for cfg in $CONFIGS; do
    case $cfg in hub-*) up_hub ;; nchan-*) up_nchan ;; esac
    args_of "$cfg"
    idle=$IDLE
    for r in $RATES; do
        f="$OUT/$cfg-$r.json"
        echo "   $cfg at $r msg/s (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        "$SSEHUB" bench --json "${ARGS[@]}" -n "$N" -t 1 -r "$r" -d "$DUR" --warmup 1 \
            --idle "$idle" --pub-conns 64 --procs "$PROCS" --connect-timeout 120 >"$f" || true
        idle=0
        if ! [ -s "$f" ] || behind "$f" "$r"; then
            echo "   $cfg fell behind at $r msg/s" >&2
            break
        fi
    done
    case $cfg in
    hub-*) stop_pid "$HUB_PID" ;;
    nchan-*) stop_nchan ;;
    esac
done
echo "end   $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt" >&2

python3 - "$OUT" "$CONFIGS" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, sys
out, configs = sys.argv[1], sys.argv[2].split()
name = {"hub-h1": "ssehub, HTTP/1.1", "hub-tls": "ssehub, TLS + HTTP/1.1", "hub-h2c": "ssehub, h2c",
        "hub-h2": "ssehub, h2 over TLS", "hub-h2x20": "ssehub, h2 over TLS, 20 streams/conn",
        "nchan-h1": "nchan, HTTP/1.1", "nchan-tls": "nchan, TLS + HTTP/1.1",
        "nchan-h2": "nchan, h2 over TLS", "nchan-h2x20": "nchan, h2 over TLS, 20 streams/conn"}
print(open(os.path.join(out, "load.txt")).read().strip().replace("\n", "  \n") + "\n")
print("| configuration | rate msg/s | published/s | deliveries/s | delivered | p50 ms | p99 ms | server CPU | CPU us/delivery | server PSS/sub | errors | load-gen CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for c in configs:
    files = sorted(glob.glob(os.path.join(out, c + "-*.json")), key=lambda p: float(p[:-5].rsplit("-", 1)[1]))
    for i, p in enumerate(files):
        try:
            d = json.load(open(p))
        except ValueError:
            print("| %s | %s | (no report) |" % (name.get(c, c), p[:-5].rsplit("-", 1)[1])); continue
        l = d["latency_us"]
        n = d["deliveries"] + d["warmup_deliveries"]
        cpu = "%.2f" % (d["server_cpu_seconds"] * 1e6 / n) if n and d["server_cpu_seconds"] >= 0 else "n/a"
        # memory: the first rate's run only (it waited IDLE seconds with every stream open)
        pss = "%.0f B" % d["server_pss_per_sub_bytes"] if i == 0 and d["server_pss_per_sub_bytes"] > 0 else ""
        print("| %s | %g | %.1f | %.0f | %.1f %% | %.1f | %.1f | %.0f %% | %s | %s | %d | %.1f |" % (
            name.get(c, c), d["rate"], d["publish_rate"], d["deliveries_per_sec"],
            100.0 * d["deliveries"] / max(1, d["deliveries_expected"]), l["p50"] / 1e3,
            l["p99"] / 1e3, 100 * d["server_cpu_util"], cpu, pss, d["errors"],
            d["bench_sub_cpu_seconds"] + d["bench_pub_cpu_seconds"]))
PY
