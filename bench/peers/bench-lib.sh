# bench-lib.sh: shell helpers sourced by bench/run-*.sh (not run on its own).
# Every process started here is recorded and stopped by bench_cleanup (trap'd on EXIT).

BENCH_PIDS=""

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_cleanup() {
    for p in $BENCH_PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $BENCH_PIDS; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    BENCH_PIDS=""
}

# start_nchan WORKERS -> sets NCHAN_PORT NCHAN_MASTER NCHAN_WORKERS (comma list) NCHAN_DIR
start_nchan() {
    NCHAN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-nchan.XXXXXX")
    NCHAN_PORT=$(free_port)
    local out
    out=$("$BENCH_ROOT/bench/peers/start-nchan.sh" "$NCHAN_DIR" "$NCHAN_PORT" "$1")
    NCHAN_MASTER=${out%% *}
    NCHAN_WORKERS=${out#* }
    BENCH_PIDS="$BENCH_PIDS $NCHAN_MASTER"
}

stop_nchan() {
    kill "$NCHAN_MASTER" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NCHAN_MASTER" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$NCHAN_MASTER" 2>/dev/null || true
    rm -rf "$NCHAN_DIR"
}

# start_broadcast -> sets BC_PORT BC_PID
start_broadcast() {
    local fifo
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/bench-bc.XXXXXX")
    mkfifo "$fifo"
    "$BUILD/bench/bench_broadcast_server" --listen 127.0.0.1:0 >"$fifo" 2>/dev/null &
    BC_PID=$!
    BENCH_PIDS="$BENCH_PIDS $BC_PID"
    local line
    read -r line <"$fifo"
    rm -f "$fifo"
    BC_PORT=${line##*:}
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ceil(N / per) with a minimum of 1
ceil_div() { echo $(( ($1 + $2 - 1) / $2 )); }

# jget FILE KEY [SUBKEY]: a number from a bench JSON report
jget() {
    python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); v=d[sys.argv[2]]
v=v[sys.argv[3]] if len(sys.argv)>3 else v
print(v)' "$@"
}

# start_hub [serve options] -> sets HUB_PORT HUB_PID HUB_PIDS (the serve process and its worker
# processes, comma-separated) HUB_TOKEN (publisher token); key in HUB_KEY
HUB_KEY=${HUB_KEY:-bench-key-0123456789abcdef0123456789abcdef}
start_hub() {
    local fifo line
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/bench-hub.XXXXXX")
    mkfifo "$fifo"
    "$SSEHUB" serve --listen 127.0.0.1:0 --publisher-jwt-key "$HUB_KEY" --anonymous \
        --heartbeat 0 --log-level warn "$@" >"$fifo" 2>/dev/null &
    HUB_PID=$!
    BENCH_PIDS="$BENCH_PIDS $HUB_PID"
    while read -r line; do
        case $line in "listening on http://"*) break ;; esac
    done <"$fifo"
    rm -f "$fifo"
    HUB_PORT=${line##*:}
    HUB_PORT=${HUB_PORT%%/*}
    HUB_TOKEN=$("$SSEHUB" token --publish '*' --key "$HUB_KEY" --exp 86400)
    case " $* " in *" --workers "*) sleep 1 ;; esac
    HUB_PIDS=$HUB_PID
    local k
    for k in $(pgrep -P "$HUB_PID" || true); do HUB_PIDS="$HUB_PIDS,$k"; done
}
