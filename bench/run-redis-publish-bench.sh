#!/bin/bash
# run-redis-publish-bench.sh: acknowledged publishes/s and POST->200 p50/p99 with 1, 16 and 256
# concurrent publishers into a `ssehub serve --redis` node (issue 11; docs/performance/redis.md),
# beside the memory store and LMDB sync / nosync in the same run (bench_store_bench --redis).
# The Redis is started here on a free loopback port, with AOF and `appendfsync always` (an
# acknowledged publish is on Redis's disk, as with LMDB sync) or, with FSYNC=everysec, Redis's
# default persistence. DURATION (default 3) seconds per row.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
FSYNC=${FSYNC:-always}
DURATION=${DURATION:-3}
TMP=$(mktemp -d "$ROOT/.redis-publish-bench.XXXXXX") # on the disk: the fsyncs are measured
RPID=
cleanup() {
    [[ -n $RPID ]] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly yes \
    --appendfsync "$FSYNC" --logfile "$TMP/redis.log" &
RPID=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), appendfsync $FSYNC"
"$BUILD/bench/bench_store_bench" --dir "$TMP" --duration "$DURATION" \
    --ssehub "$BUILD/src/cli/ssehub" --redis "redis://127.0.0.1:$RPORT" --replay-only 0 --replay 0 |
    grep -v '^replay'
