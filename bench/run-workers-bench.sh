#!/bin/bash
# run-workers-bench.sh: idle memory per subscriber of `ssehub serve --workers W` (docs/WORKERS.md)
# beside nginx + nchan with the same number of worker processes, in the same run, with
# `ssehub bench` (subscribers spread over several client processes and source addresses; memory
# = PSS growth summed over every server process, master included, / open streams).
# SIZES (default "50000"), WORKERS (default 4). Builds Release in build-workers-rel/ (BUILD=...),
# writes JSON reports to OUT (default /tmp/ssehub-workers-bench) and prints a summary table.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$BENCH_ROOT/build-workers-rel}
OUT=${OUT:-/tmp/ssehub-workers-bench}
SIZES=${SIZES:-"50000"}
WORKERS=${WORKERS:-4}
. "$BENCH_ROOT/bench/peers/bench-lib.sh"
trap bench_cleanup EXIT

cmake -S "$BENCH_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target ssehub >/dev/null
SSEHUB="$BUILD/src/cli/ssehub"
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

for n in $SIZES; do
    echo "== ssehub --workers $WORKERS, $n idle subscribers" >&2
    start_hub --workers "$WORKERS"
    sleep 0.5
    pids=$(echo "$HUB_PID" $(pgrep -P "$HUB_PID") | tr ' ' ,)
    "$SSEHUB" bench --json --target mercure --url "http://127.0.0.1:$HUB_PORT/.well-known/mercure" \
        --token "$HUB_TOKEN" --server-pid "$pids" -n "$n" -r 0 --idle 3 --connect-timeout 180 \
        >"$OUT/mem-hub-$n.json"
    stop_pid "$HUB_PID"
    echo "== nginx + nchan, $WORKERS workers, $n idle subscribers" >&2
    start_nchan "$WORKERS"
    "$SSEHUB" bench --json --target nchan --url "http://127.0.0.1:$NCHAN_PORT/sub" \
        --pub-url "http://127.0.0.1:$NCHAN_PORT/pub" \
        --server-pid "$NCHAN_MASTER,$NCHAN_WORKERS" -n "$n" -r 0 --idle 3 --connect-timeout 180 \
        >"$OUT/mem-nchan-$n.json"
    stop_nchan
done

python3 - "$OUT" "$SIZES" "$WORKERS" <<'PY'
import json, sys
out, sizes, w = sys.argv[1], sys.argv[2].split(), sys.argv[3]
print("| subscribers | server | processes | connected | PSS before → after (KiB) | PSS / subscriber |")
print("|---|---|---|---|---|---|")
for n in sizes:
    r = {}
    for t in ("hub", "nchan"):
        d = json.load(open("%s/mem-%s-%s.json" % (out, t, n)))
        r[t] = d
        print("| %s | %s | %s | %s | %s → %s | %.0f B |" % (
            n, "ssehub --workers " + w if t == "hub" else "nginx+nchan, " + w + " workers",
            d.get("server_pids"), d.get("connected"), d.get("server_pss_before_kib"),
            d.get("server_pss_after_kib"), d.get("server_pss_per_sub_bytes", 0)))
    h, c = r["hub"].get("server_pss_per_sub_bytes", 0), r["nchan"].get("server_pss_per_sub_bytes", 0)
    if h:
        print("\nnchan / ssehub at %s: %.1fx" % (n, c / h))
PY
