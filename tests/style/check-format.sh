#!/usr/bin/env bash
# check-format: every tracked C source and header is formatted by clang-format with the
# project's .clang-format (STYLE.md §11). Fix with: clang-format -i <file>
set -euo pipefail
src=$1
cd "$src"
command -v clang-format >/dev/null || { echo "clang-format missing"; echo "0 passed, 1 failed"; exit 1; }
if git rev-parse --git-dir >/dev/null 2>&1; then
  files=$(git ls-files '*.c' '*.h')
else
  files=$(find include src tests fuzz bench examples -name '*.[ch]')
fi
bad=0; n=0
for f in $files; do
  n=$((n+1))
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f"; bad=$((bad+1))
  fi
done
echo "$((n-bad)) passed, $bad failed"
[[ $bad -eq 0 ]]
