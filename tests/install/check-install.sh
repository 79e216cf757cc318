#!/usr/bin/env bash
# check-install: libsse installs like a C library. `cmake --install` into a temporary prefix, then
# every examples/*.c is built against the installed copy four ways -- pkg-config (libsse.pc and
# libsse-static.pc) and CMake (find_package(libsse CONFIG REQUIRED), libsse::sse and
# libsse::sse_static) -- and each program is run: the servers (clock, oneshot) start on a free
# loopback port and the subscriber, built the same way, receives an event from each of them.
# A program calling into every module of the library (every_module.c, below) is built and run
# the same ways, so a static link needs every dependency of libsse.a (lmdb, hiredis, ...).
# The static programs must not need libsse.so, the shared ones must.
# Usage: check-install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 src=$2
prefix=$(mktemp -d)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$prefix" "$work"
}
trap cleanup EXIT
passed=0
fail() { echo "FAIL: $*"; echo "$passed passed, 1 failed"; exit 1; }
ok() { echo "ok: $* (${SECONDS}s)"; passed=$((passed + 1)); }

cmake --install "$bin" --prefix "$prefix" >/dev/null
libdir=$(sed -n 's|^libdir=\${prefix}/||p' "$prefix"/lib*/pkgconfig/libsse.pc)
for f in include/sse/sse.h include/sse/format.h include/sse/server.h include/sse/client.h \
         include/sse/hub.h include/sse/version.h "$libdir/libsse.a" "$libdir/libsse.so" \
         "$libdir/pkgconfig/libsse.pc" "$libdir/pkgconfig/libsse-static.pc" \
         "$libdir/cmake/libsse/libsseConfig.cmake" "$libdir/cmake/libsse/libsseConfigVersion.cmake" \
         bin/ssehub share/man/man1/ssehub.1 share/man/man1/ssehub-serve.1 \
         share/bash-completion/completions/ssehub lib/systemd/system/ssehub.service; do
  [[ -e "$prefix/$f" ]] || fail "missing $f"
done
ok "installed files"
"$prefix/bin/ssehub" --version >/dev/null || fail "installed ssehub --version"
for c in $("$prefix/bin/ssehub" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p'); do
  [[ -f $prefix/share/man/man1/ssehub-$c.1 ]] || fail "no installed man page ssehub-$c.1"
done
ok "installed ssehub runs; a man page per command"

examples=()
declare -A source
for f in "$src"/examples/*.c; do
  n=$(basename "$f" .c)
  examples+=("$n")
  source[$n]=$f
done
((${#examples[@]})) || fail "no examples in $src/examples"
# One more program: every public header, and a function of every module of the library, so that
# a static link pulls every part of libsse.a and so needs every library it depends on.
cat >"$work/every_module.c" <<'C'
#include <sse/sse.h>
#include <sse/store_lmdb.h>
#include <stdio.h>
typedef void (*any_fn)(void);
int main(void)
{
    any_fn volatile fns[] = {(any_fn)sse_parser_new, (any_fn)sse_server_new,
                             (any_fn)sse_hub_new, (any_fn)sse_token_sign,
                             (any_fn)sse_store_lmdb_new, (any_fn)sse_bus_redis_new,
                             (any_fn)sse_client_group_new, (any_fn)sse_form_next};
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
        if (!fns[i])
            return 1;
    printf("libsse %s: every module linked\n", SSE_VERSION_STRING);
    return 0;
}
C
examples+=(every_module)
source[every_module]=$work/every_module.c

# --- pkg-config: shared (libsse) and static (libsse-static), without help from the build tree.
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
for way in shared static; do
  pc=libsse
  [[ $way == static ]] && pc=libsse-static
  mkdir -p "$work/pc-$way"
  for n in "${examples[@]}"; do
    # shellcheck disable=SC2046 # the flags are words
    cc -o "$work/pc-$way/$n" "${source[$n]}" $(pkg-config --cflags --libs $pc) \
      -Wl,-rpath,"$prefix/$libdir" 2>"$work/cc.log" ||
      { cat "$work/cc.log"; fail "pkg-config $pc: $n does not build"; }
  done
  ok "pkg-config $pc builds ${examples[*]}"
done

# --- CMake: find_package(libsse CONFIG REQUIRED) in a project of its own.
for way in shared static; do
  proj=$work/cmake-$way
  mkdir -p "$proj"
  target=libsse::sse comps=""
  [[ $way == static ]] && target=libsse::sse_static comps="COMPONENTS static"
  {
    echo "cmake_minimum_required(VERSION 3.16)"
    echo "project(libsse_consumer LANGUAGES C)"
    echo "find_package(libsse 0.1 CONFIG REQUIRED $comps)"
    for n in "${examples[@]}"; do
      echo "add_executable($n ${source[$n]})"
      echo "target_link_libraries($n PRIVATE $target)"
    done
  } >"$proj/CMakeLists.txt"
  (cmake -S "$proj" -B "$proj/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 &&
    cmake --build "$proj/build" >>"$work/cmake.log" 2>&1) ||
    { cat "$work/cmake.log"; fail "find_package(libsse) + $target: the examples do not build"; }
  mkdir -p "$work/cm-$way"
  for n in "${examples[@]}"; do cp "$proj/build/$n" "$work/cm-$way/$n"; done
  ok "find_package(libsse) + $target builds ${examples[*]}"
done

# --- The components: with only libuv's development files visible to pkg-config, libsse::sse is
# found and libsse::sse_static is not defined; asking for COMPONENTS static then fails, saying why.
mkdir -p "$work/pc-uv-only" "$work/cmake-components"
cp "$(pkg-config --variable=pcfiledir libuv)/libuv.pc" "$work/pc-uv-only/"
for comps in "" "COMPONENTS static"; do
  {
    echo "cmake_minimum_required(VERSION 3.16)"
    echo "project(libsse_components LANGUAGES C)"
    echo "find_package(libsse CONFIG REQUIRED $comps)"
    echo "if(NOT TARGET libsse::sse OR TARGET libsse::sse_static)"
    echo "  message(FATAL_ERROR \"want libsse::sse alone\")"
    echo "endif()"
  } >"$work/cmake-components/CMakeLists.txt"
  rm -rf "$work/cmake-components/build"
  rc=0
  PKG_CONFIG_LIBDIR=$work/pc-uv-only cmake -S "$work/cmake-components" \
    -B "$work/cmake-components/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 || rc=$?
  if [[ -z $comps ]]; then
    ((rc == 0)) || { cat "$work/cmake.log"; fail "find_package(libsse) needs more than libuv"; }
  else
    ((rc != 0)) || fail "COMPONENTS static found without its dependencies"
    grep -q 'libsse::sse_static needs: .*libcurl' "$work/cmake.log" ||
      { cat "$work/cmake.log"; fail "COMPONENTS static fails without saying what is missing"; }
  fi
done
ok "find_package(libsse): shared needs libuv only; COMPONENTS static names what it misses"

# --- What each program links: libsse.so from the prefix (shared) or nothing of it (static).
for dir in pc-shared cm-shared pc-static cm-static; do
  for n in "${examples[@]}"; do
    needs=$(readelf -d "$work/$dir/$n" | grep -c 'NEEDED.*libsse\.so' || true)
    if [[ $dir == *shared ]]; then
      ((needs == 1)) || fail "$dir/$n does not link libsse.so"
      [[ $(ldd "$work/$dir/$n") == *"libsse.so.0 => $prefix/"* ]] ||
        fail "$dir/$n does not load libsse.so from the prefix"
    else
      ((needs == 0)) || fail "$dir/$n needs libsse.so although linked statically"
    fi
  done
done
ok "shared programs load the installed libsse.so, static ones do not need it"

# --- Run them. A server prints "listening on http://HOST:PORT/ ..." first; the subscriber gets an
# event from it. Every example must have a way to be run here.
wait_for() { # wait_for FILE REGEX SECONDS: 0 once a line of FILE matches
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
start_server() { # start_server DIR NAME -> sets server_pid, server_url
  local out=$work/$1-$2.out
  "$work/$1/$2" --listen 127.0.0.1:0 --web "$src/web" >"$out" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  wait_for "$out" '^listening on http://' 5 || { cat "$out"; fail "$1/$2 does not start"; }
  server_url=$(sed -n 's|^listening on \(http://[^ ]*/\).*|\1|p' "$out" | head -1)
}
stop_server() { # stop_server DIR NAME: SIGTERM, exit 0
  local rc=0
  kill -TERM "$server_pid"
  wait "$server_pid" || rc=$?
  ((rc == 0)) || fail "$1/$2 exits $rc on SIGTERM"
}
subscribe() { # subscribe DIR URL: the subscriber sees the stream open and one event
  local out=$work/$1-sub.out rc=0
  "$work/$1/subscriber" "$2" >"$out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_for "$out" '^\[[0-9]+\] message: ' 6 || { cat "$out"; fail "$1/subscriber got no event from $2"; }
  kill -INT "$pid"
  wait "$pid" || rc=$?
  grep -q '^OPEN' "$out" || fail "$1/subscriber never printed OPEN"
  ((rc == 0)) || fail "$1/subscriber exits $rc on SIGINT"
}
for dir in pc-shared pc-static cm-shared cm-static; do
  for n in "${examples[@]}"; do
    case $n in
      clock | oneshot)
        start_server "$dir" "$n"
        subscribe "$dir" "${server_url}$n"
        stop_server "$dir" "$n"
        ;;
      subscriber) ;; # run against each server above
      every_module)
        "$work/$dir/$n" | grep -q 'every module linked' || fail "$dir/$n does not run"
        ;;
      *) fail "examples/$n.c: tests/install/check-install.sh does not know how to run it" ;;
    esac
  done
  ok "$dir: ${examples[*]} run (servers serve, the subscriber receives)"
done

echo "$passed passed, 0 failed"
