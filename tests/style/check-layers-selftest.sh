#!/usr/bin/env bash
# check-layers-selftest: check-layers.sh can fail. On a scratch tree with the project's table it
# must pass a clean tree and fail each kind of violation: an upward internal include, an upward
# public header, a header beside (client -> server), a file in no module, a program reaching
# into internals, an unowned public header, a table out of order.
set -euo pipefail
src=$1
check=$src/tests/style/check-layers.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0

setup() {
  rm -rf "$tmp/t"; mkdir -p "$tmp/t/cmake" "$tmp/t/include/sse" "$tmp/t/src"/{common,format,http,server,client,hub} "$tmp/t/examples"
  cp "$src/cmake/layers.txt" "$tmp/t/cmake/"
  for h in buf error format form server hub client; do echo "/* $h */" > "$tmp/t/include/sse/$h.h"; done
  echo '#include "common/alloc.h"' > "$tmp/t/src/format/parser.c"
  echo '/* alloc */' > "$tmp/t/src/common/alloc.h"
  echo '/* parser */' > "$tmp/t/src/http/http_parser.h"
  printf '#include "http/http_parser.h"\n#include <sse/format.h>\n' > "$tmp/t/src/server/conn.c"
  echo '#include <sse/server.h>' > "$tmp/t/examples/clock.c"
}
expect() { # expect pass|fail what
  if (cd "$tmp/t" && "$check" . >"$tmp/out" 2>&1); then got=pass; else got=fail; fi
  if [[ $got == "$1" ]]; then pass=$((pass + 1)); else
    echo "FAIL: $2: expected $1, got $got"; cat "$tmp/out"; fail=$((fail + 1)); fi
}

setup; expect pass "a clean tree"
setup; echo '#include "server/internal.h"' >> "$tmp/t/src/http/form.c"; touch "$tmp/t/src/server/internal.h"
expect fail "http includes a server internal header"
setup; echo '#include <sse/server.h>' > "$tmp/t/src/http/form.c"; expect fail "http includes <sse/server.h>"
setup; echo '#include <sse/server.h>' > "$tmp/t/src/client/client.c"; expect fail "client includes the server beside it"
setup; mkdir -p "$tmp/t/src/nowhere"; echo '' > "$tmp/t/src/nowhere/x.c"; expect fail "a file in no module"
setup; echo '#include "common/alloc.h"' >> "$tmp/t/examples/clock.c"; expect fail "an example includes internals"
setup; echo '/* x */' > "$tmp/t/include/sse/orphan.h"; expect fail "a public header without owner"
setup; echo 'module late src/late lib nosuch' >> "$tmp/t/cmake/layers.txt"; expect fail "a module using one not above it"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
