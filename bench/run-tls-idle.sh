#!/bin/bash
# run-tls-idle.sh: the server's memory per idle EventSource subscriber over TLS + HTTP/1.1,
# HTTP/2 over TLS and h2c (1 and 20 streams per connection), and plain HTTP/1.1
# (docs/performance/tls.md, docs/performance/h2.md), ssehub beside nginx + nchan
# (bench/peers/nchan.conf.in with `listen ... ssl`, `ssl http2` or `http2`), in one run.
# Every row gets a fresh server process: PSS and RSS of the server processes before and after N
# streams held open by bench/tls_idle_clients.py (handshake, request, response head read),
# divided by N (streams, not connections). Then, for ssehub over TLS + HTTP/1.1 and plain, E
# events published to all of them: server CPU (utime + stime) per delivery, which shows what
# releasing OpenSSL's record buffers costs (an allocation per connection per write).
# Usage: bench/run-tls-idle.sh [N]   (env SSEHUB=path/to/ssehub, default build/src/cli/ssehub;
#        ROWS="tls keep plain h2 h2x20 h2c h2cx20" picks rows, E=0 skips the fan-out step,
#        NCHAN=0 skips the peer)
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

measure() { # label pids port path mode per-conn [fanout]
    local label=$1 pids=$2 port=$3 path=$4 mode=$5 per=$6 fan=${7:-}
    local p0 r0 p1 r1
    sleep 0.5
    p0=$(kb Pss "$pids"); r0=$(kb Rss "$pids")
    rm -f "$OUT/hold"; mkfifo "$OUT/hold"
    python3 "$here/tls_idle_clients.py" 127.0.0.1 "$port" "$path" "$N" "$mode" "$per" <"$OUT/hold" \
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
    printf '%-40s %-28s PSS/sub %6d B  RSS/sub %6d B\n' "$label" "$(cat "$OUT/cl.out")" \
        $(((p1 - p0) * 1024 / N)) $(((r1 - r0) * 1024 / N))
    if [ -n "$fan" ] && [ "$E" -gt 0 ]; then fanout "${pids%%,*}"; fi
    exec 3>&-
    wait $cl || true
}

hub() { # label mode per-conn extra-args... : start a hub, measure one row, stop it
    local label=$1 mode=$2 per=$3 fan=
    shift 3
    "$SSEHUB" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$OUT/c.pem" \
        --tls-key "$OUT/k.pem" --anonymous --publisher-jwt-key bench-key-0123456789abcdef \
        --publish-anonymous --heartbeat 0 --log-level warn "$@" >"$OUT/hub.out" 2>&1 &
    local pid=$!
    echo $pid >>"$OUT/pids"
    until grep -q 'https://' "$OUT/hub.out" 2>/dev/null; do sleep 0.1; done
    local port
    if [ "$mode" = plain ] || [ "$mode" = h2c ]; then
        port=$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$OUT/hub.out")
    else
        port=$(sed -n 's#^listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$OUT/hub.out")
    fi
    case $mode in tls | plain) fan=fanout ;; esac
    measure "$label" $pid "$port" "/.well-known/mercure?topic=/idle" "$mode" "$per" $fan
    kill $pid
    wait $pid 2>/dev/null || true
}

nchan() { # label mode per-conn
    local label=$1 mode=$2 per=$3 dir="$OUT/nginx-$2-$3" port=$((20000 + RANDOM % 20000)) listen=
    case $mode in tls) listen="ssl " ;; h2) listen="ssl http2 " ;; h2c) listen="http2 " ;; esac
    mkdir -p "$dir/tmp" "$dir/logs"
    sed -e "s/@PORT@/$port/" -e "s/@WORKERS@/1/" "$here/peers/nchan.conf.in" >"$dir/nginx.conf"
    # the same server block over TLS (nginx: SSL_MODE_RELEASE_BUFFERS) and/or HTTP/2
    sed -i -e "s#listen 127.0.0.1:$port #listen 127.0.0.1:$port $listen#" "$dir/nginx.conf"
    if [ "$mode" = tls ] || [ "$mode" = h2 ]; then
        sed -i \
            -e "s#^    server {#    server {\n        ssl_certificate $OUT/c.pem;\n        ssl_certificate_key $OUT/k.pem;\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache off;#" \
            "$dir/nginx.conf"
    fi
    nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
    local master=$!
    echo $master >>"$OUT/pids"
    local scheme=http
    local copt=
    case $mode in tls) scheme=https ;; h2) scheme=https copt=--http2 ;; h2c) copt=--http2-prior-knowledge ;; esac
    until curl -sk $copt -o /dev/null "$scheme://127.0.0.1:$port/pub/idle" -d x; do sleep 0.1; done
    local pids="$master,$(pgrep -P $master | paste -sd, -)"
    measure "$label" "$pids" "$port" "/sub/idle" "$mode" "$per"
    kill $master
    wait $master 2>/dev/null || true
}

ROWS=${ROWS:-tls keep plain h2 h2x20 h2c h2cx20}
have_nchan=0
if [ "${NCHAN:-1}" = 1 ] && command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    have_nchan=1
fi
echo "== idle subscribers: N=$N, $(date -u +%FT%TZ), $(nproc) CPUs, $(openssl version)"
for row in $ROWS; do
    case $row in
    tls) hub "ssehub TLS + HTTP/1.1" tls 1 ;;
    keep) hub "ssehub TLS + HTTP/1.1 --tls-keep-buffers" tls 1 --tls-keep-buffers ;;
    plain) hub "ssehub plain HTTP/1.1" plain 1 ;;
    h2) hub "ssehub h2 over TLS, 1 stream/conn" h2 1 ;;
    h2x20) hub "ssehub h2 over TLS, 20 streams/conn" h2 20 ;;
    h2c) hub "ssehub h2c, 1 stream/conn" h2c 1 --h2c ;;
    h2cx20) hub "ssehub h2c, 20 streams/conn" h2c 20 --h2c ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
    esac
    [ $have_nchan = 1 ] || continue
    case $row in
    tls) nchan "nginx+nchan TLS + HTTP/1.1" tls 1 ;;
    plain) nchan "nginx+nchan plain HTTP/1.1" plain 1 ;;
    h2) nchan "nginx+nchan h2 over TLS, 1 stream/conn" h2 1 ;;
    h2x20) nchan "nginx+nchan h2 over TLS, 20 streams/conn" h2 20 ;;
    h2c) nchan "nginx+nchan h2c, 1 stream/conn" h2c 1 ;;
    h2cx20) nchan "nginx+nchan h2c, 20 streams/conn" h2c 20 ;;
    esac
done
[ $have_nchan = 1 ] || echo "nginx + nchan missing: peer not measured"
