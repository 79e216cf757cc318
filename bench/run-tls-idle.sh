#!/bin/bash
# run-tls-idle.sh: the server's memory per idle TLS + HTTP/1.1 EventSource subscriber
# (docs/performance/tls.md), in one run: ssehub serve over TLS with SSL_MODE_RELEASE_BUFFERS
# (the default) and with --tls-keep-buffers, ssehub over plain TCP (the baseline the TLS cost
# adds to), and nginx + nchan over TLS and plain (the peer, bench/peers/nchan.conf.in).
# For each: PSS and RSS of the server processes before and after N connections held open by
# bench/tls_idle_clients.py (handshake, GET, head read), divided by N. Then, for ssehub, E
# events published to all of them: server CPU (utime + stime) per delivery, which shows what
# releasing OpenSSL's record buffers costs (an allocation per connection per write).
# Usage: bench/run-tls-idle.sh [N]   (env SSEHUB=path/to/ssehub, default build/src/cli/ssehub)
set -eu
N=${1:-5000}
E=${E:-100} # events of the fan-out step (ssehub only: CPU per delivery, allocation choice)
here=$(cd "$(dirname "$0")" && pwd)
SSEHUB=${SSEHUB:-$here/../build/src/cli/ssehub}
OUT=$(mktemp -d /tmp/ssehub-tls-idle.XXXXXX)
trap 'for p in $(cat "$OUT"/pids 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"' EXIT
ulimit -n 20000
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$OUT/k.pem" \
    -out "$OUT/c.pem" -days 2 -subj /CN=localhost 2>/dev/null

kb() { # kB of field $1 (Pss / Rss) summed over pids $2 (comma-separated)
    local s=0 p
    for p in ${2//,/ }; do s=$((s + $(awk -v f="$1:" '$1 == f {print $2}' /proc/"$p"/smaps_rollup))); done
    echo $s
}

cpu_ticks() { # utime + stime of pid $1, in clock ticks
    awk '{print $14 + $15}' /proc/"$1"/stat
}

fanout() { # pid: E events of ~100 bytes to the N idle subscribers; server CPU per delivery
    local pid=$1 plain_port
    plain_port=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$OUT/hub.out")
    local url="http://127.0.0.1:$plain_port/.well-known/mercure" urls=() i
    for ((i = 0; i < E; i++)); do urls+=("$url"); done
    local d0 c0 c1 t0 t1
    d0=$(curl -s "http://127.0.0.1:$plain_port/metrics" | awk '$1 == "ssehub_events_delivered_total" {print $2}')
    c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
    curl -s -d topic=/idle -d "data=$(printf '%0100d' 0)" "${urls[@]}" >/dev/null
    local want=$((d0 + E * N)) d=0
    until [ "$d" -ge "$want" ]; do
        sleep 0.05
        d=$(curl -s "http://127.0.0.1:$plain_port/metrics" | awk '$1 == "ssehub_events_delivered_total" {print $2}')
        if [ "$(echo "$(date +%s.%N) - $t0 > 120" | bc)" = 1 ]; then echo "fanout: only $d of $want" >&2; break; fi
    done
    c1=$(cpu_ticks "$pid"); t1=$(date +%s.%N)
    printf '    fan-out: %d events x %d subscribers in %.2f s, server CPU %.2f us per delivery\n' \
        "$E" "$N" "$(echo "$t1 - $t0" | bc)" "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / ($E * $N)" | bc -l)"
}

measure() { # label pids port path [plain] [fanout]
    local label=$1 pids=$2 port=$3 path=$4 mode=${5:-tls} fan=${6:-}
    local p0 r0 p1 r1
    sleep 0.5
    p0=$(kb Pss "$pids"); r0=$(kb Rss "$pids")
    rm -f "$OUT/hold"; mkfifo "$OUT/hold"
    python3 "$here/tls_idle_clients.py" 127.0.0.1 "$port" "$path" "$N" "$mode" <"$OUT/hold" \
        >"$OUT/cl.out" &
    local cl=$!
    exec 3>"$OUT/hold"
    local t0=$SECONDS
    until grep -qE 'ready|failed' "$OUT/cl.out" 2>/dev/null; do
        sleep 0.2
        if ((SECONDS - t0 > 300)); then echo "timeout" >&2; break; fi
    done
    sleep 2
    p1=$(kb Pss "$pids"); r1=$(kb Rss "$pids")
    printf '%-34s %s  PSS/sub %6d B  RSS/sub %6d B\n' "$label" "$(cat "$OUT/cl.out")" \
        $(((p1 - p0) * 1024 / N)) $(((r1 - r0) * 1024 / N))
    [ -n "$fan" ] && fanout "${pids%%,*}"
    exec 3>&-
    wait $cl || true
}

hub() { # label extra-args... : start a hub, measure TLS or plain, stop it
    local label=$1 mode=$2
    shift 2
    "$SSEHUB" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$OUT/c.pem" \
        --tls-key "$OUT/k.pem" --anonymous --publisher-jwt-key bench-key-0123456789abcdef \
        --publish-anonymous --heartbeat 0 --log-level warn "$@" >"$OUT/hub.out" 2>&1 &
    local pid=$!
    echo $pid >>"$OUT/pids"
    until grep -q 'https://' "$OUT/hub.out" 2>/dev/null; do sleep 0.1; done
    local port
    if [ "$mode" = plain ]; then
        port=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$OUT/hub.out")
    else
        port=$(sed -n 's#^listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$OUT/hub.out")
    fi
    measure "$label" $pid "$port" "/.well-known/mercure?topic=/idle" "$mode" fanout
    kill $pid
    wait $pid 2>/dev/null || true
}

nchan() { # label tls|plain
    local label=$1 mode=$2 dir="$OUT/nginx-$2" port=$((20000 + RANDOM % 20000))
    mkdir -p "$dir/tmp" "$dir/logs"
    sed -e "s/@PORT@/$port/" -e "s/@WORKERS@/1/" "$here/peers/nchan.conf.in" >"$dir/nginx.conf"
    if [ "$mode" = tls ]; then # the same server block, over TLS (nginx: SSL_MODE_RELEASE_BUFFERS)
        sed -i -e "s#listen 127.0.0.1:$port #listen 127.0.0.1:$port ssl #" \
            -e "s#^    server {#    server {\n        ssl_certificate $OUT/c.pem;\n        ssl_certificate_key $OUT/k.pem;\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache off;#" \
            "$dir/nginx.conf"
    fi
    nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
    local master=$!
    echo $master >>"$OUT/pids"
    local scheme=http
    [ "$mode" = tls ] && scheme=https
    until curl -sk -o /dev/null "$scheme://127.0.0.1:$port/pub/idle" -d x; do sleep 0.1; done
    local pids="$master,$(pgrep -P $master | paste -sd, -)"
    measure "$label" "$pids" "$port" "/sub/idle" "$mode"
    kill $master
    wait $master 2>/dev/null || true
}

echo "== idle subscribers: N=$N, $(date -u +%FT%TZ), $(nproc) CPUs, $(openssl version)"
hub "ssehub TLS (release buffers)" tls
hub "ssehub TLS (--tls-keep-buffers)" tls --tls-keep-buffers
hub "ssehub plain TCP" plain
if command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    nchan "nginx+nchan TLS" tls
    nchan "nginx+nchan plain TCP" plain
else
    echo "nginx + nchan missing: peer not measured"
fi
