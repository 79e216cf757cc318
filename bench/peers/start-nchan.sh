#!/bin/sh
# start-nchan.sh DIR PORT [WORKERS]: run nginx + nchan (bench/peers/nchan.conf.in) as our own
# process, prefix DIR, on 127.0.0.1:PORT, in the background. Prints "MASTER_PID WORKER_PIDS..."
# (worker pids comma-separated) once it answers. Stop it with: kill "$(cat DIR/nginx.pid)".
set -eu
dir=$1 port=$2 workers=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/tmp" "$dir/logs"
sed -e "s/@PORT@/$port/" -e "s/@WORKERS@/$workers/" "$here/nchan.conf.in" > "$dir/nginx.conf"
ulimit -n 20000 2>/dev/null || true
nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
master=$!
i=0
while :; do
    if [ -f "$dir/nginx.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$port/pub/probe" -d x; then
        break
    fi
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $master 2>/dev/null; then
        echo "nginx did not start:" >&2
        cat "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
workers=$(pgrep -P "$master" | paste -sd, -)
echo "$master $workers"
