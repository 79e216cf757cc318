#!/usr/bin/env bash
# run-format-bench.sh: the format benchmark, C parser/encoder beside npm eventsource-parser, in
# one run (issue 2, item 8). Builds bench_format_bench (Release, in build-bench/), generates the
# inputs in a temporary directory, runs both sides on the same files and prints a table with the
# ratios. Numbers go to docs/performance/format.md by hand; nothing here asserts speed.
#
#   bench/run-format-bench.sh            full size (64 / 256 / 2 MiB inputs), about 1.5-2.5 minutes
#   FORMAT_BENCH_SCALE=0.1 bench/run-format-bench.sh     a quick smoke run
#   FORMAT_BENCH_ROUNDS=N ...            rounds of C / JS alternation (default 2; best of all
#                                        runs, median of the rounds' medians)
#   FORMAT_BENCH_KEEP=1 ...              keep the generated inputs (path printed)
#
# Exit status: 0, or non-zero when a build, a run or the C-vs-JS event/data agreement fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FORMAT_BENCH_BUILD:-$root/build-bench}
scale=${FORMAT_BENCH_SCALE:-1}
rounds=${FORMAT_BENCH_ROUNDS:-2}
limit=150 # seconds per step, so a broken build can never hang the run

command -v node >/dev/null || { echo "node is missing (scripts/install-deps)" >&2; exit 1; }
[ -f "$root/node_modules/eventsource-parser/package.json" ] ||
  { echo "node_modules/eventsource-parser is missing (npm ci in $root)" >&2; exit 1; }

echo "== build (Release) in $build"
# No -Werror here: libsse links every module, and a warning in a module this benchmark does not
# use must not stop it (CI builds with -Werror anyway).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSE_BENCH=ON -DSSE_WERROR=OFF >/dev/null
timeout $limit cmake --build "$build" --target bench_format_bench -j2 >/dev/null
bin=$build/bench/bench_format_bench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/format-bench.XXXXXX")
if [ "${FORMAT_BENCH_KEEP:-0}" = 1 ]; then
  echo "inputs kept in $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
results=$tmp/results.txt
: >"$results"

echo "== machine"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "cpu:      $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews absolute numbers)"
echo "cc:       $(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt") -O3 (CMake Release)"
echo "node:     $(node --version), eventsource-parser $(node -p "require('$root/node_modules/eventsource-parser/package.json').version")"

echo "== generate (scale $scale)"
timeout $limit "$bin" gen "$tmp" --scale "$scale"

run() { # run CMD...: echo it, run it bounded, keep its result line
  echo "\$ $*" | sed "s|$tmp|\$TMP|g; s|$root/||g"
  local out t0=$SECONDS
  out=$(timeout $limit "$@") || { echo "FAILED: $*" >&2; exit 1; }
  echo "  ($((SECONDS - t0)) s)"
  grep -v '^result ' <<<"$out" || true
  grep '^result ' <<<"$out" | tee -a "$results" | sed 's/^result /  /'
}

mjs=$root/bench/format_bench.mjs
# Rounds alternate the two sides, so that a burst of other work on the machine hits both.
for round in $(seq 1 "$rounds"); do
  echo "== parse, round $round of $rounds"
  for c in a b c; do
    case $c in # JS runs are the slow part: fewer on the big input and on 1-byte chunks
      a) chunk=65536; cruns=7; jruns=5; jwarm=2 ;;
      b) chunk=65536; cruns=7; jruns=3; jwarm=1 ;;
      c) chunk=1; cruns=5; jruns=3; jwarm=1 ;;
    esac
    verify=$([ "$round" = 1 ] && echo 1 || echo 0) # the JS event hash is slow: once is enough
    run "$bin" parse "$tmp/$c.sse" --chunk $chunk --runs $cruns --warmup 1
    run node "$mjs" parse "$tmp/$c.sse" --chunk $chunk --runs $jruns --warmup $jwarm --verify $verify
    run node "$mjs" parse "$tmp/$c.sse" --chunk $chunk --runs $jruns --warmup $jwarm --verify 0 --strings 1
  done
done
echo "== encode"
# (b) is encoded from its first quarter (64 MiB) on both sides: the Node idiom is slow.
for c in a b; do
  if [ $c = a ]; then escale=$scale; ebytes=0; else
    escale=$(awk "BEGIN { print $scale / 4 }"); ebytes=$(awk "BEGIN { printf \"%d\", 268435456 * $scale / 4 }")
  fi
  run "$bin" encode $c --runs 5 --scale "$escale"
  run node "$mjs" encode "$tmp/$c.sse" --runs 3 --warmup 1 --bytes $ebytes
done

# Instructions per event: valgrind counts them exactly, whatever else the machine is doing, so
# this column is comparable across runs where MB/s is not. (Difference of 3 and 1 timed passes.)
if [ "${FORMAT_BENCH_CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
  echo "== instructions (valgrind --tool=callgrind, inputs at scale 0.02)"
  mkdir -p "$tmp/ir"
  "$bin" gen "$tmp/ir" --scale 0.02 >/dev/null
  ir() { timeout $limit valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/refs:/ { gsub(",", "", $NF); print $NF }'; }
  for c in a b c; do
    chunk=$([ $c = c ] && echo 1 || echo 65536)
    r1=$(ir "$bin" parse "$tmp/ir/$c.sse" --chunk $chunk --runs 1 --warmup 0)
    r3=$(ir "$bin" parse "$tmp/ir/$c.sse" --chunk $chunk --runs 3 --warmup 0)
    read -r events bytes < <(sed 's/.*events=\([0-9]*\).* bytes=\([0-9]*\).*/\1 \2/' "$tmp/ir/$c.meta")
    echo "result impl=c op=instr case=$c ir_per_event=$(( (r3 - r1) / 2 / events )) ir_per_byte=$(awk "BEGIN { printf \"%.2f\", ($r3 - $r1) / 2 / $bytes }")" |
      tee -a "$results" | sed 's/^result /  /'
  done
  for c in a b; do
    r1=$(ir "$bin" encode $c --scale 0.02 --runs 1)
    r3=$(ir "$bin" encode $c --scale 0.02 --runs 3)
    read -r events bytes < <(sed 's/.*events=\([0-9]*\).* bytes=\([0-9]*\).*/\1 \2/' "$tmp/ir/$c.meta")
    echo "result impl=c op=encinstr case=$c ir_per_event=$(( (r3 - r1) / 2 / events )) ir_per_byte=$(awk "BEGIN { printf \"%.2f\", ($r3 - $r1) / 2 / $bytes }")" |
      tee -a "$results" | sed 's/^result /  /'
  done
fi

echo "== table (MB = 10^6 bytes; best of all runs, in parentheses the median of the rounds' medians)"
awk '
  function kv(line, key,   i, n, f, p) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) { p = index(f[i], "="); if (substr(f[i], 1, p - 1) == key) return substr(f[i], p + 1) }
    return ""
  }
  function median(list,   v, n, i, j, t) { # of a space-separated list of numbers
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  /^result / && !/op=(enc)?instr/ {
    k = kv($0, "impl") SUBSEP kv($0, "op") SUBSEP kv($0, "case")
    if (!(k in best) || kv($0, "best_MBps") + 0 > best[k] + 0) { best[k] = kv($0, "best_MBps"); beps[k] = kv($0, "best_Meps") }
    med[k] = med[k] " " kv($0, "median_MBps"); meps[k] = meps[k] " " kv($0, "median_Meps")
    e = kv($0, "events") "/" kv($0, "data_bytes")
    if ((k in ev) && ev[k] != e) { printf "MISMATCH %s: %s then %s\n", k, ev[k], e > "/dev/stderr"; bad = 1 }
    ev[k] = e; nev[k] = kv($0, "events"); ch[k] = kv($0, "chunk"); by[k] = kv($0, "bytes")
  }
  /^result .*op=instr/ { ire[kv($0, "case")] = kv($0, "ir_per_event"); irb[kv($0, "case")] = kv($0, "ir_per_byte") }
  /^result .*op=encinstr/ { eire[kv($0, "case")] = kv($0, "ir_per_event"); eirb[kv($0, "case")] = kv($0, "ir_per_byte") }
  END {
    name["a"] = "(a) ~100 B JSON events"; name["b"] = "(b) 4 KiB multi-line events"; name["c"] = "(c) = (a) in 1-byte chunks"
    printf "| case | input | chunk | ssehub MB/s | ssehub M events/s | eventsource-parser MB/s (TextDecoder + feed) | its M events/s | **C / JS** | eventsource-parser MB/s (feed only) | C / JS feed only |\n"
    printf "|---|---|---|---|---|---|---|---|---|---|\n"
    for (ci = 1; ci <= 3; ci++) {
      c = substr("abc", ci, 1)
      kc = "c" SUBSEP "parse" SUBSEP c; kj = "js" SUBSEP "parse" SUBSEP c; ks = "js-str" SUBSEP "parse" SUBSEP c
      if (!(kc in best) || !(kj in best) || !(ks in best)) continue
      if (ev[kc] != ev[kj] || ev[kc] != ev[ks]) {
        printf "MISMATCH case %s: events/data bytes C %s, JS %s, JS feed-only %s\n", c, ev[kc], ev[kj], ev[ks] > "/dev/stderr"
        bad = 1
      }
      mc = median(med[kc]); mj = median(med[kj]); ms = median(med[ks])
      printf "| %s | %.1f MB, %s events | %s | %s (%.1f) | %s (%.3f) | %s (%.1f) | %s (%.3f) | **%.1f×** (%.1f×) | %s (%.1f) | %.1f× (%.1f×) |\n", \
        name[c], by[kc] / 1e6, nev[kc], ch[kc], best[kc], mc, beps[kc], median(meps[kc]), best[kj], mj, beps[kj], median(meps[kj]), \
        best[kc] / best[kj], mc / mj, best[ks], ms, best[kc] / best[ks], mc / ms
    }
    if ("a" in ire) printf "\nssehub parser, instructions (callgrind, load-independent): (a) %s per event, (b) %s per event = %s per byte, (c) %s per byte.\n", ire["a"], ire["b"], irb["b"], irb["c"]
    printf "\n| encoder | ssehub MB/s out | ssehub M events/s | Node idiom MB/s | Node M events/s | C / Node |\n|---|---|---|---|---|---|\n"
    for (ci = 1; ci <= 2; ci++) {
      c = substr("ab", ci, 1); k = "c" SUBSEP "encode" SUBSEP c; kj = "js" SUBSEP "encode" SUBSEP c
      if ((k in ev) && (kj in ev) && ev[k] != ev[kj]) {
        printf "MISMATCH encoder case %s: events/data bytes C %s, Node %s\n", c, ev[k], ev[kj] > "/dev/stderr"
        bad = 1
      }
      if ((k in best) && (kj in best))
        printf "| %s | %s (%.1f) | %s (%.3f) | %s (%.1f) | %s (%.3f) | **%.1f×** (%.1f×) |\n", name[c], best[k], median(med[k]), beps[k], median(meps[k]), \
          best[kj], median(med[kj]), beps[kj], median(meps[kj]), best[k] / best[kj], median(med[k]) / median(med[kj])
    }
    if ("a" in eire) printf "\nssehub encoder, instructions (callgrind): (a) %s per event, (b) %s per event = %s per byte.\n", eire["a"], eire["b"], eirb["b"]
    printf "\nencoder: ssehub = sse_encode_event() of one event into a reused sse_buf; Node idiom = a template string per event, line ends replaced by a regex, Buffer.from() to UTF-8 (as res.write() would).\n"
    if (!bad) printf "\nevents and data bytes: C and JS agree on every case and run, parser and encoder (the C side and the JS decode + feed side also checked an event hash once).\n"
    exit bad
  }' "$results"
