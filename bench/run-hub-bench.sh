#!/bin/bash
# run-hub-bench.sh: issue 4's numbers. `ssehub serve` (the Mercure hub) beside nginx + nchan
# (bench/peers/), in the same run, with `ssehub bench`:
#   1. 10,000 subscribers on one topic at rising publish rates (RATES) until a server falls
#      behind (delivers < 99 % of what was published, cannot take the publish rate, or p99 over
#      P99_LIMIT_MS, default 5000: queues growing without bound);
#      deliveries/s and p50/p99 at each rate;
#   2. 1,000 topics x 10 subscribers at 2,000 messages/s, REPEAT (3) runs per server,
#      alternating: p50/p99/p999;
#   3. idle memory per subscriber at MEM_SIZES (default 10000 19000 50000 100000). One process
#      may hold at most `ulimit -Hn` (20,000 here) descriptors, so both servers get
#      ceil(N/15000) worker processes (`ssehub serve --workers`, nginx `worker_processes`) and
#      the memory is summed over all their processes (the hub's master included). The rate runs
#      use one hub process and one nginx worker.
# Builds Release in build-load/ (BUILD=...), writes JSON reports and summary.md to OUT
# (default /tmp/ssehub-hub-bench). Bounded: about 8 minutes.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$BENCH_ROOT/build-load}
OUT=${OUT:-/tmp/ssehub-hub-bench}
RATES=${RATES:-"2 5 10 20 40 80 160 320"}
MEM_SIZES=${MEM_SIZES:-"10000 19000 50000 100000"}
TARGETS=${TARGETS:-"hub nchan"}
DUR=${DUR:-5}
P99_LIMIT_MS=${P99_LIMIT_MS:-5000}
REPEAT=${REPEAT:-3}
. "$BENCH_ROOT/bench/peers/bench-lib.sh"
trap bench_cleanup EXIT

cmake -S "$BENCH_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target ssehub >/dev/null
SSEHUB="$BUILD/src/cli/ssehub"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
HARD=$(ulimit -Hn)
ulimit -n "$HARD"

# The server under test stays up for a series of runs: up_<t> N / run_<t> ARGS / down_<t>.
HUB_HAS_WORKERS=$("$SSEHUB" serve --help 2>&1 | grep -c -- --workers || true)
up_hub() {
    local w
    w=$(ceil_div "$1" 15000)
    if [ "$w" -gt 1 ]; then start_hub --workers "$w"; else start_hub; fi
}
run_hub() {
    "$SSEHUB" bench --json --target mercure --url "http://127.0.0.1:$HUB_PORT/.well-known/mercure" \
        --token "$HUB_TOKEN" --server-pid "$HUB_PIDS" "$@"
}
down_hub() { stop_pid "$HUB_PID"; }
up_nchan() { start_nchan "$(ceil_div "$1" 15000)"; }
run_nchan() {
    "$SSEHUB" bench --json --target nchan --url "http://127.0.0.1:$NCHAN_PORT/sub" \
        --pub-url "http://127.0.0.1:$NCHAN_PORT/pub" --server-pid "$NCHAN_WORKERS" "$@"
}
down_nchan() { stop_nchan; }

behind() { # FILE RATE -> exit 0 if the server fell behind
    python3 - "$1" "$2" "$P99_LIMIT_MS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = float(sys.argv[2])
ok = (d["deliveries"] >= 0.99 * d["deliveries_expected"] and d["publish_rate"] >= 0.95 * r
      and d["latency_us"]["p99"] < 1e3 * float(sys.argv[3]) and d["connected"] > 0)
sys.exit(1 if ok else 0)
PY
}

# Rising rates: both servers up side by side, each rate run on one then the other, so both
# see the same machine conditions; a server that falls behind is not run at higher rates.
echo "== rising rates: 10000 subscribers on one topic" >&2
live=""
for t in $TARGETS; do "up_$t" 10000; live="$live $t"; done
for r in $RATES; do
    [ -n "${live// /}" ] || break
    for t in $live; do
        f="$OUT/rate-$t-$r.json"
        echo "   $t at $r msg/s" >&2
        "run_$t" -n 10000 -t 1 -r "$r" -d "$DUR" --warmup 1 --idle 0 --pub-conns 64 >"$f"
        if behind "$f" "$r"; then
            echo "   $t fell behind at $r msg/s" >&2
            live=${live/ $t/}
        fi
    done
done
for t in $TARGETS; do "down_$t"; done
# 1,000 topics x 10 subscribers: REPEAT runs, alternating servers.
echo "== 1000 topics x 10 subscribers, 2000 msg/s, $REPEAT runs each" >&2
for t in $TARGETS; do "up_$t" 10000; done
for i in $(seq "$REPEAT"); do
    for t in $TARGETS; do
        "run_$t" -n 10000 -t 1000 -r 2000 -d "$DUR" --warmup 1 --idle 0 --pub-conns 32 \
            >"$OUT/topics-$t-$i.json"
    done
done
for t in $TARGETS; do "down_$t"; done
for n in $MEM_SIZES; do
    for t in $TARGETS; do
        if [ "$t" = hub ] && [ "$HUB_HAS_WORKERS" = 0 ] && [ $((n + 100)) -gt "$HARD" ]; then
            echo "skip: hub memory at $n (one process, RLIMIT_NOFILE hard limit $HARD)" >&2
            continue
        fi
        echo "== idle memory: $t, $n subscribers" >&2
        "up_$t" "$n"
        "run_$t" -n "$n" -r 0 --idle 3 --connect-timeout 120 >"$OUT/mem-$t-$n.json"
        "down_$t"
    done
done

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
name = {"hub": "ssehub serve", "nchan": "nginx+nchan"}
def load(p):
    return json.load(open(p)) if os.path.exists(p) else None
print("### 10,000 subscribers on one topic, rising publish rate\n")
def cpu_per(d):
    n = d["deliveries"] + d["warmup_deliveries"]
    return "%.2f" % (d["server_cpu_seconds"] * 1e6 / n) if n and d["server_cpu_seconds"] >= 0 else "n/a"
print("| rate msg/s | server | published/s | deliveries/s | delivered | p50 ms | p99 ms | p999 ms | server CPU | server CPU us/delivery | load-gen CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
rates = sorted({float(os.path.basename(p)[:-5].split("-")[2]) for p in glob.glob(os.path.join(out, "rate-*.json"))})
for r in rates:
    for t in ("hub", "nchan"):
        d = load(os.path.join(out, "rate-%s-%g.json" % (t, r)))
        if not d:
            print("| %g | %s | (not run: fell behind at a lower rate) | | | | | | | | |" % (r, name[t])); continue
        l = d["latency_us"]
        print("| %g | %s | %.1f | %.0f | %.1f %% | %.2f | %.2f | %.2f | %.0f %% | %s | %.1f |" % (
            r, name[t], d["publish_rate"], d["deliveries_per_sec"],
            100.0 * d["deliveries"] / max(1, d["deliveries_expected"]), l["p50"] / 1e3, l["p99"] / 1e3,
            l["p999"] / 1e3, 100 * d["server_cpu_util"], cpu_per(d), d["bench_sub_cpu_seconds"] + d["bench_pub_cpu_seconds"]))
print("\n### 1,000 topics x 10 subscribers, 2,000 msg/s\n")
print("| server | run | published/s | deliveries/s | delivered | p50 us | p99 us | p999 us | max us | server CPU | server CPU us/delivery |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for t in ("hub", "nchan"):
    for p in sorted(glob.glob(os.path.join(out, "topics-%s-*.json" % t))):
        d = load(p)
        l = d["latency_us"]
        print("| %s | %s | %.0f | %.0f | %.1f %% | %.0f | %.0f | %.0f | %.0f | %.0f %% | %s |" % (
            name[t], os.path.basename(p)[:-5].split("-")[2], d["publish_rate"], d["deliveries_per_sec"],
            100.0 * d["deliveries"] / max(1, d["deliveries_expected"]),
            l["p50"], l["p99"], l["p999"], l["max"], 100 * d["server_cpu_util"], cpu_per(d)))
print("\n### Idle memory per subscriber (server PSS growth / open streams)\n")
print("| subscribers | processes | ssehub serve B/sub (PSS) | RSS | connect/s | nginx+nchan B/sub (PSS) | RSS | connect/s | nchan / ssehub |")
print("|---|---|---|---|---|---|---|---|---|")
sizes = sorted({int(os.path.basename(p)[:-5].split("-")[2]) for p in glob.glob(os.path.join(out, "mem-*.json"))})
for n in sizes:
    h, c = load(os.path.join(out, "mem-hub-%d.json" % n)), load(os.path.join(out, "mem-nchan-%d.json" % n))
    def cells(d):
        if not d: return ["n/a (one process cannot hold %d sockets here)" % n, "", ""]
        return ["%.0f (%d open)" % (d["server_pss_per_sub_bytes"], d["connected"]), "%.0f" % d["server_rss_per_sub_bytes"], "%.0f" % d["connect_rate"]]
    ratio = "%.1f" % (c["server_pss_per_sub_bytes"] / h["server_pss_per_sub_bytes"]) if h and c and h["server_pss_per_sub_bytes"] > 0 else "n/a"
    w = (n + 14999) // 15000
    procs = "hub %d%s, nginx %d" % (w, " + master" if w > 1 else "", w)
    print("| %d | %s | %s | %s |" % (n, procs, " | ".join(cells(h) + cells(c)), ratio))
PY
