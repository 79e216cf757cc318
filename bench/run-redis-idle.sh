#!/bin/bash
# run-redis-idle.sh: idle subscribers spread over K `ssehub serve --redis` nodes on one Redis
# (docs/performance/redis.md). One process may hold 20,000 descriptors here, so the subscribers
# are spread: PER subscribers on each of K nodes, each node driven by its own `ssehub bench`
# (-r 0) that reports the node's PSS growth per open stream. K (default 3), PER (default 15000),
# CT (connect timeout, default 180 s).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SSEHUB="$BUILD/src/cli/ssehub"
K=${K:-3}
PER=${PER:-15000}
OUT=${OUT:-/tmp/ssehub-redis-idle}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --logfile "$TMP/redis.log" &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

ports=() npids=() bpids=()
for i in $(seq 0 $((K - 1))); do
    f="$TMP/node.$i"
    "$SSEHUB" serve --listen 127.0.0.1:0 --publish-anonymous --anonymous --log-level warn \
        --redis "redis://127.0.0.1:$RPORT" >"$f" 2>"$f.err" &
    npids+=($!)
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '^listening on' "$f" 2>/dev/null && break; sleep 0.05; done
    ports+=("$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/|\1|p' "$f")")
done
for i in $(seq 0 $((K - 1))); do
    "$SSEHUB" bench --json --target mercure --url "http://127.0.0.1:${ports[$i]}/.well-known/mercure" \
        --server-pid "${npids[$i]}" -n "$PER" -r 0 --idle 3 --connect-timeout "${CT:-180}" \
        >"$OUT/idle-$i.json" 2>"$OUT/idle-$i.err" &
    bpids+=($!)
done
for p in "${bpids[@]}"; do wait "$p" || true; done
rss_redis=$(awk '/VmRSS/ {print $2}' /proc/"${PIDS[0]}"/status)

python3 - "$OUT" "$K" "$rss_redis" <<'PY'
import json, sys
out, k, rr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tot_conn = tot_growth = 0
print("| node | connected | PSS before → after (KiB) | PSS / subscriber |")
print("|---|---|---|---|")
for i in range(k):
    d = json.load(open("%s/idle-%d.json" % (out, i)))
    tot_conn += d.get("connected", 0)
    tot_growth += d.get("server_pss_after_kib", 0) - d.get("server_pss_before_kib", 0)
    print("| %d | %s | %s → %s | %.0f B |" % (i, d.get("connected"), d.get("server_pss_before_kib"),
          d.get("server_pss_after_kib"), d.get("server_pss_per_sub_bytes", 0)))
print("\n%d idle subscribers over %d nodes: %.1f MiB of node memory growth, %.0f B each; "
      "Redis RSS %.1f MiB (independent of subscribers)" % (tot_conn, k, tot_growth / 1024,
      tot_growth * 1024 / tot_conn if tot_conn else 0, rr / 1024))
PY
