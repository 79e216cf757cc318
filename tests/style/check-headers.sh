#!/usr/bin/env bash
# check-headers: every public header compiles on its own, as C99 with -pedantic and as C++.
set -euo pipefail
src=$1; bin=$2
inc=(-I"$src/include" -I"$bin/include" $(pkg-config --cflags libuv libcurl))
fail=0; n=0
for h in "$src"/include/sse/*.h; do
  name=$(basename "$h"); n=$((n+1))
  for std in "cc -std=c99 -D_POSIX_C_SOURCE=200809L -pedantic -Wall -Wextra -Werror -x c" "c++ -std=c++11 -Wall -Werror -x c++"; do
    if ! printf '#include <sse/%s>\n#include <sse/%s>\nint main(void){return 0;}\n' "$name" "$name" \
        | $std "${inc[@]}" -fsyntax-only - 2>/tmp/hdr.$$; then
      echo "FAIL $name ($std)"; cat /tmp/hdr.$$; fail=$((fail+1))
    fi
  done
done
rm -f /tmp/hdr.$$
echo "$((n*2 - fail)) passed, $fail failed"
[[ $fail -eq 0 ]]
