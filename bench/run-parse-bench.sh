#!/usr/bin/env bash
# run-parse-bench.sh: `ssehub parse` end to end beside npm eventsource-parser, in one run (issue
# 13, item 4). For the small-event input (a: ~100-byte JSON events) and the large-event input
# (b: 4 KiB multi-line events) made by `bench_format_bench gen`, each round runs, alternating:
#   C e2e     `ssehub parse X.sse > /dev/null`: the whole process (start, read, parse, JSON lines
#             written); wall time from the shell ($EPOCHREALTIME, including /usr/bin/time's own
#             fork and exec), CPU = user + system of the process (/usr/bin/time, 10 ms ticks)
#   Node e2e  bench/parse_e2e.mjs: read in 64 KiB chunks, TextDecoder, eventsource-parser,
#             JSON.stringify per event, one write per chunk to /dev/null; timed inside Node (its
#             start-up is not counted: that favours Node)
#   C parser  bench_format_bench parse (the parser alone, input in memory, 64 KiB feeds)
#   Node parser bench/format_bench.mjs parse (TextDecoder + feed, input in memory)
# Before the rounds, ssehub's output of each input is checked line by line against Node's
# (parse_e2e.mjs --check: same values after JSON.parse, same number of lines).
# Prints every result line, then a table of medians with the ratios. Numbers go to
# docs/PERFORMANCE.md by hand; nothing here asserts speed.
#
#   bench/run-parse-bench.sh                       scale 0.5 (a: 32 MiB, b: 128 MiB), 3 rounds
#   PARSE_BENCH_SCALE=0.1 PARSE_BENCH_ROUNDS=1 bench/run-parse-bench.sh      a quick smoke run
#   PARSE_BENCH_BUILD=DIR   build directory (default build-bench, Release, shared with
#                           run-format-bench.sh)
#
# Exit status: 0, or non-zero when a build, a run or the output check fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PARSE_BENCH_BUILD:-$root/build-bench}
scale=${PARSE_BENCH_SCALE:-0.5}
rounds=${PARSE_BENCH_ROUNDS:-3}
limit=300 # seconds per step, so a broken build can never hang the run

command -v node >/dev/null || { echo "node is missing (scripts/install-deps)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (Debian package time)" >&2; exit 1; }
[ -f "$root/node_modules/eventsource-parser/package.json" ] ||
  { echo "node_modules/eventsource-parser is missing (npm ci in $root)" >&2; exit 1; }

echo "== build (Release) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSE_BENCH=ON -DSSE_WERROR=OFF >/dev/null
timeout $limit cmake --build "$build" --target ssehub bench_format_bench -j2 >/dev/null
ssehub=$build/src/cli/ssehub
fbench=$build/bench/bench_format_bench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parse-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results.txt
: >"$results"

echo "== machine"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu:      $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times)"
echo "node:     $(node --version), eventsource-parser $(node -p "require('$root/node_modules/eventsource-parser/package.json').version")"

echo "== generate (scale $scale)"
timeout $limit "$fbench" gen "$tmp" --scale "$scale"

echo "== check: ssehub parse and Node give the same values"
for c in a b; do
  timeout $limit "$ssehub" parse "$tmp/$c.sse" >"$tmp/$c.jsonl"
  timeout $limit node "$root/bench/parse_e2e.mjs" "$tmp/$c.sse" --runs 1 --warmup 0 --check "$tmp/$c.jsonl" |
    grep '^check'
  rm -f "$tmp/$c.jsonl" "$tmp/$c.node.jsonl"
done

c_e2e() { # c_e2e CASE RUNS WARMUP: time the whole `ssehub parse` process
  local c=$1 runs=$2 warm=$3 i t0 t1 walls="" cpus=""
  for ((i = 0; i < warm + runs; i++)); do
    t0=$EPOCHREALTIME
    timeout $limit /usr/bin/time -f "%U %S" -o "$tmp/cpu" "$ssehub" parse "$tmp/$c.sse" >/dev/null
    t1=$EPOCHREALTIME
    if ((i >= warm)); then
      walls="$walls $(awk "BEGIN { print $t1 - $t0 }")"
      cpus="$cpus $(awk '{ print $1 + $2 }' "$tmp/cpu")"
    fi
  done
  local bytes lines
  bytes=$(stat -c %s "$tmp/$c.sse")
  lines=$("$ssehub" parse "$tmp/$c.sse" | wc -l)
  awk -v walls="$walls" -v cpus="$cpus" -v c="$c" -v bytes="$bytes" -v lines="$lines" -v runs="$runs" '
    function median(list,   v, n, i, j, t) {
      n = split(list, v, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    BEGIN {
      n = split(walls, w, " "); best = w[1]; for (i = 2; i <= n; i++) if (w[i] + 0 < best + 0) best = w[i]
      m = median(walls)
      printf "result impl=c op=e2e case=%s bytes=%d lines=%d runs=%d best_s=%.6f median_s=%.6f best_MBps=%.1f median_MBps=%.1f cpu_median_s=%.3f\n",
        c, bytes, lines, runs, best, m, bytes / best / 1e6, bytes / m / 1e6, median(cpus)
    }'
}

run() { # run CMD...: echo it, run it bounded, keep its result line
  echo "\$ $*" | sed "s|$tmp|\$TMP|g; s|$root/||g"
  local out
  if [ "$1" = c_e2e ]; then # a shell function (its own runs are bounded)
    out=$("$@") || { echo "FAILED: $*" >&2; exit 1; }
  else
    out=$(timeout $limit "$@") || { echo "FAILED: $*" >&2; exit 1; }
  fi
  grep '^result ' <<<"$out" | sed "s/^result /result round=$round /" | tee -a "$results" | sed 's/^result /  /'
}

for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds"
  for c in a b; do
    run c_e2e $c 5 1
    run node "$root/bench/parse_e2e.mjs" "$tmp/$c.sse" --runs 3 --warmup 1
    run "$fbench" parse "$tmp/$c.sse" --runs 5 --warmup 1
    run node "$root/bench/format_bench.mjs" parse "$tmp/$c.sse" --runs 3 --warmup 1 --verify 0
  done
done

echo "== table (MB = 10^6 input bytes; median over the rounds of each round's median; per-round ratios in brackets)"
awk '
  function kv(line, key,   i, n, f, p) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) { p = index(f[i], "="); if (substr(f[i], 1, p - 1) == key) return substr(f[i], p + 1) }
    return ""
  }
  function median(list,   v, n, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  function r1(x) { # x to one decimal, as a string (the style check bans the name of the awk formatter)
    x = int(x * 10 + 0.5) / 10
    return x == int(x) ? x ".0" : x ""
  }
  /^result / {
    k = kv($0, "impl") SUBSEP kv($0, "op") SUBSEP kv($0, "case"); r = kv($0, "round")
    mb[k] = mb[k] " " kv($0, "median_MBps"); byr[k, r] = kv($0, "median_MBps")
    if (kv($0, "cpu_median_s") != "") { cpu[k] = cpu[k] " " kv($0, "cpu_median_s"); cpur[k, r] = kv($0, "cpu_median_s") }
    if (kv($0, "events") != "") ev[kv($0, "case")] = kv($0, "events")
    by[kv($0, "case")] = kv($0, "bytes"); if (r > nr) nr = r
  }
  END {
    name["a"] = "(a) ~100 B JSON events"; name["b"] = "(b) 4 KiB multi-line events"
    printf "| case | input | ssehub parse e2e MB/s | Node e2e MB/s | **e2e ratio (wall)** | ssehub CPU s | Node CPU s | e2e ratio (CPU) | C parser alone MB/s | eventsource-parser alone MB/s | parser ratio |\n"
    printf "|---|---|---|---|---|---|---|---|---|---|---|\n"
    for (ci = 1; ci <= 2; ci++) {
      c = substr("ab", ci, 1)
      ce = "c" SUBSEP "e2e" SUBSEP c; je = "js" SUBSEP "e2e" SUBSEP c; cp = "c" SUBSEP "parse" SUBSEP c; jp = "js" SUBSEP "parse" SUBSEP c
      if (!(ce in mb) || !(je in mb)) continue
      we = ""; wc = ""; wp = ""
      for (r = 1; r <= nr; r++) {
        sep = r > 1 ? ", " : ""
        we = we sep r1(byr[ce, r] / byr[je, r]) "×"
        wc = wc sep r1(cpur[je, r] / cpur[ce, r]) "×"
        wp = wp sep r1(byr[cp, r] / byr[jp, r]) "×"
      }
      printf "| %s | %.1f MB, %s events | %.1f | %.1f | **%.1f×** [%s] | %.3f | %.3f | %.1f× [%s] | %.1f | %.1f | %.1f× [%s] |\n", \
        name[c], by[c] / 1e6, ev[c], median(mb[ce]), median(mb[je]), median(mb[ce]) / median(mb[je]), we, \
        median(cpu[ce]), median(cpu[je]), median(cpu[je]) / median(cpu[ce]), wc, \
        median(mb[cp]), median(mb[jp]), median(mb[cp]) / median(mb[jp]), wp
    }
  }' "$results"
