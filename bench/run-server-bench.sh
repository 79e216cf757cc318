#!/bin/bash
# run-server-bench.sh: issue 3's numbers. The server layer (bench_broadcast_server, on
# include/sse/server.h) beside nginx + nchan, in the same run:
#   1. user-space memory per idle stream: PSS growth of the server process(es) / streams, at
#      each size in MEM_SIZES (default "10000 19000 50000");
#   2. the time to push one event to 10,000 streams: publish -> the last subscriber's receipt,
#      PUSH_SAMPLES events (default 20) at 2 per second.
# A size above one process's open-file limit (ulimit -Hn, 20,000 here) is skipped for the
# single-process broadcast server and reported as such; nginx gets ceil(N/15000) workers.
# Builds Release in build-load/ (BUILD=...), writes JSON reports and summary.md to OUT
# (default /tmp/ssehub-server-bench). Bounded: about 3 minutes.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$BENCH_ROOT/build-load}
OUT=${OUT:-/tmp/ssehub-server-bench}
MEM_SIZES=${MEM_SIZES:-"10000 19000 50000"}
PUSH_N=${PUSH_N:-10000}
PUSH_SAMPLES=${PUSH_SAMPLES:-20}
TARGETS=${TARGETS:-"sse nchan"}
. "$BENCH_ROOT/bench/peers/bench-lib.sh"
trap bench_cleanup EXIT

cmake -S "$BENCH_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
case " $TARGETS " in *" sse "*) bt=bench_broadcast_server ;; *) bt= ;; esac
cmake --build "$BUILD" -j2 --target ssehub $bt >/dev/null
SSEHUB="$BUILD/src/cli/ssehub"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
HARD=$(ulimit -Hn)
ulimit -n "$HARD"

bench_sse() { # N ARGS...
    local n=$1; shift
    start_broadcast
    "$SSEHUB" bench --json --target plain --url "http://127.0.0.1:$BC_PORT/stream" \
        --pub-url "http://127.0.0.1:$BC_PORT/publish" -n "$n" --server-pid "$BC_PID" "$@"
    stop_pid "$BC_PID"
}

bench_nchan() { # N ARGS...
    local n=$1; shift
    start_nchan "$(ceil_div "$n" 15000)"
    "$SSEHUB" bench --json --target nchan --url "http://127.0.0.1:$NCHAN_PORT/sub" \
        --pub-url "http://127.0.0.1:$NCHAN_PORT/pub" -n "$n" --server-pid "$NCHAN_WORKERS" "$@"
    stop_nchan
}

for n in $MEM_SIZES; do
    for t in $TARGETS; do
        if [ "$t" = sse ] && [ $((n + 100)) -gt "$HARD" ]; then
            echo "skip: sse memory at $n streams (one process, RLIMIT_NOFILE hard limit $HARD)" >&2
            continue
        fi
        echo "== memory: $t, $n idle streams" >&2
        "bench_$t" "$n" -r 0 --idle 3 >"$OUT/mem-$t-$n.json"
    done
done
for t in $TARGETS; do
    echo "== push: $t, one event to $PUSH_N streams x $PUSH_SAMPLES" >&2
    "bench_$t" "$PUSH_N" -r 2 -d $((PUSH_SAMPLES / 2)) --warmup 1 --idle 1 >"$OUT/push-$t-$PUSH_N.json"
done

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
def load(p):
    return json.load(open(p)) if os.path.exists(p) else None
rows = {}
for p in sorted(glob.glob(os.path.join(out, "mem-*.json"))):
    _, t, n = os.path.basename(p)[:-5].split("-")
    rows.setdefault(int(n), {})[t] = load(p)
print("### Memory per idle stream (server PSS growth / open streams)\n")
print("| streams | ssehub server B/stream (PSS) | RSS | nginx+nchan B/stream (PSS) | RSS | nchan / ssehub |")
print("|---|---|---|---|---|---|")
for n in sorted(rows):
    s, c = rows[n].get("sse"), rows[n].get("nchan")
    def f(d, k):
        return "%.0f" % d[k] if d and d["connected"] else "n/a"
    ratio = "%.1f" % (c["server_pss_per_sub_bytes"] / s["server_pss_per_sub_bytes"]) if s and c and s["server_pss_per_sub_bytes"] > 0 else "n/a"
    sc = "" if not s else " (%d open)" % s["connected"]
    cc = "" if not c else " (%d open)" % c["connected"]
    print("| %d | %s%s | %s | %s%s | %s | %s |" % (n, f(s, "server_pss_per_sub_bytes"), sc, f(s, "server_rss_per_sub_bytes"),
          f(c, "server_pss_per_sub_bytes"), cc, f(c, "server_rss_per_sub_bytes"), ratio))
print("\n### One event to N streams: publish -> last subscriber's receipt (ms)\n")
print("| server | streams | events | complete | p50 | p99 | max | per-delivery p50 / p99 | server CPU per event (ms) |")
print("|---|---|---|---|---|---|---|---|---|")
for p in sorted(glob.glob(os.path.join(out, "push-*.json"))):
    d = load(p)
    t = os.path.basename(p).split("-")[1]
    f, l = d["fanout_last_us"], d["latency_us"]
    cpu = d["server_cpu_seconds"] / max(1, d["published"]) * 1e3 if d["server_cpu_seconds"] >= 0 else -1
    print("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %.1f / %.1f | %.1f |" % (
        "ssehub" if t == "sse" else "nginx+nchan", d["connected"], d["fanout_messages"], d["fanout_complete"],
        f["p50"] / 1e3, f["p99"] / 1e3, f["max"] / 1e3, l["p50"] / 1e3, l["p99"] / 1e3, cpu))
PY
