#!/bin/bash
# run-redis-bench.sh: `ssehub serve --redis` with 1, 2 and 3 nodes on one Redis, beside one hub
# without Redis, in the same run (docs/PERFORMANCE.md, docs/REDIS.md). For K nodes, K
# `ssehub bench` processes run at once, bench i subscribing on node i and publishing to node
# i+1 (so every delivery crosses Redis to another node), each with N/K subscribers and R
# messages/s on its own topic (so N x R deliveries/s whatever K; K x R publishes/s).
# The peer, in the same run: K nginx + nchan servers (one worker each) configured with the same
# Redis (nchan_redis_url + nchan_use_redis), driven the same way. Reports deliveries/s (sum), p99 latency (worst), deliveries
# missing, and the CPU seconds per delivery of the nodes.
# N (default 2000 subscribers), R (default 50 msg/s), D (default 5 s), BUILD (default build/).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SSEHUB="$BUILD/src/cli/ssehub"
N=${N:-2000}
R=${R:-50}
D=${D:-5}
OUT=${OUT:-/tmp/ssehub-redis-bench}
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
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    --logfile "$TMP/redis.log" &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_node [serve args...]: sets NODE_PORT and NODE_PID.
start_node() {
    local f="$TMP/node.$RANDOM"
    "$SSEHUB" serve --listen 127.0.0.1:0 --publish-anonymous --anonymous --log-level warn \
        --history-count 1000 "$@" >"$f" 2>"$f.err" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 100); do grep -q '^listening on' "$f" 2>/dev/null && break; sleep 0.05; done
    NODE_PORT=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/|\1|p' "$f")
}

# start_nchan_redis: nginx + nchan on Redis; sets NODE_PORT and NODE_PID (the nginx master).
start_nchan_redis() {
    local d
    d=$(mktemp -d "$TMP/nchan.XXXXXX")
    NODE_PORT=$(free_port)
    mkdir -p "$d/tmp" "$d/logs"
    sed -e "s/@PORT@/$NODE_PORT/" -e "s/@WORKERS@/1/" \
        -e "s|nchan_shared_memory_size 256M;|nchan_shared_memory_size 256M;\n    nchan_redis_url \"redis://127.0.0.1:$RPORT\";|" \
        -e "s|nchan_channel_id \$1;|nchan_channel_id \$1;\n            nchan_use_redis on;|" \
        "$ROOT/bench/peers/nchan.conf.in" >"$d/nginx.conf"
    nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' >"$d/stdout.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$NODE_PORT/pub/probe" -d x && break
        sleep 0.1
    done
}

run_nchan() { # run_nchan NAME K
    local name=$1 k=$2 ports=() pids=() bpids=() i p cpu0=0 cpu1=0 all
    for i in $(seq 0 $((k - 1))); do
        start_nchan_redis
        ports+=("$NODE_PORT"); pids+=("$NODE_PID")
    done
    all=$(for p in "${pids[@]}"; do echo "$p"; pgrep -P "$p"; done)
    for p in $all; do cpu0=$((cpu0 + $(awk '{print $14 + $15}' /proc/$p/stat))); done
    for i in $(seq 0 $((k - 1))); do
        "$SSEHUB" bench --json --target nchan --url "http://127.0.0.1:${ports[$i]}/sub" \
            --pub-url "http://127.0.0.1:${ports[$(((i + 1) % k))]}/pub" --topic-prefix "b${i}t" \
            -n $((N / k)) -r "$R" -d "$D" --warmup 1 --drain 2 \
            >"$OUT/$name-$i.json" 2>"$OUT/$name-$i.err" &
        bpids+=($!)
    done
    for p in "${bpids[@]}"; do wait "$p" || true; done
    for p in $all; do cpu1=$((cpu1 + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0))); done
    echo "$name $k $((cpu1 - cpu0))" >>"$OUT/cpu.txt"
    for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
}

run() { # run NAME K [--redis]
    local name=$1 k=$2 redis=$3 ports=() pids=() bpids=() i
    for i in $(seq 0 $((k - 1))); do
        if [[ $redis == yes ]]; then start_node --redis "redis://127.0.0.1:$RPORT" --redis-key "b:$name"
        else start_node; fi
        ports+=("$NODE_PORT"); pids+=("$NODE_PID")
    done
    local cpu0=0 cpu1=0 p
    for p in "${pids[@]}"; do cpu0=$((cpu0 + $(awk '{print $14 + $15}' /proc/$p/stat))); done
    for i in $(seq 0 $((k - 1))); do
        "$SSEHUB" bench --json --target mercure \
            --url "http://127.0.0.1:${ports[$i]}/.well-known/mercure" \
            --pub-url "http://127.0.0.1:${ports[$(((i + 1) % k))]}/.well-known/mercure" \
            --topic-prefix "https://example.com/$name/$i/" -n $((N / k)) -r "$R" -d "$D" \
            --warmup 1 --drain 2 >"$OUT/$name-$i.json" 2>"$OUT/$name-$i.err" &
        bpids+=($!)
    done
    for p in "${bpids[@]}"; do wait "$p" || true; done
    for p in "${pids[@]}"; do cpu1=$((cpu1 + $(awk '{print $14 + $15}' /proc/$p/stat))); done
    echo "$name $k $((cpu1 - cpu0))" >>"$OUT/cpu.txt"
    for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
}

: >"$OUT/cpu.txt"
run local 1 no
run redis1 1 yes
run redis2 2 yes
run redis3 3 yes
run_nchan nchan1 1
run_nchan nchan2 2
run_nchan nchan3 3

python3 - "$OUT" "$N" "$R" <<'PY'
import glob, json, os, sys
out, n, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hz = os.sysconf("SC_CLK_TCK")
cpu = {l.split()[0]: int(l.split()[2]) for l in open(out + "/cpu.txt")}
print("| setup | nodes | subscribers | msg/s per bench | deliveries/s | delivered / expected | p99 latency | node CPU per delivery |")
print("|---|---|---|---|---|---|---|---|")
for name, label in (("local", "one hub, no Redis"), ("redis1", "--redis"), ("redis2", "--redis"),
                    ("redis3", "--redis"), ("nchan1", "nginx + nchan, Redis"),
                    ("nchan2", "nginx + nchan, Redis"), ("nchan3", "nginx + nchan, Redis")):
    runs = [json.load(open(f)) for f in sorted(glob.glob("%s/%s-*.json" % (out, name)))]
    dps = sum(x.get("deliveries_per_sec", 0) for x in runs)
    got = sum(x.get("deliveries", 0) for x in runs)
    exp = sum(x.get("deliveries_expected", 0) for x in runs)
    p99 = max((x.get("latency_us") or {}).get("p99", 0) for x in runs)
    per = cpu[name] / hz / got * 1e6 if got else 0
    print("| %s | %d | %d | %d | %.0f | %d / %d | %.1f ms | %.2f us |" % (
        label, len(runs), n, r, dps, got, exp, p99 / 1000, per))
PY
