#!/usr/bin/env bash
# check-banned: no unsafe libc string functions in the project's C sources (STYLE.md §11).
set -euo pipefail
src=$1
hits=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\(' \
  "$src"/src "$src"/include "$src"/examples "$src"/bench "$src"/fuzz 2>/dev/null \
  | grep -vE '^\S+:\s*(\*|/\*)' || true)
if [[ -n "$hits" ]]; then
  echo "banned functions used:"; echo "$hits"; echo "0 passed, 1 failed"; exit 1
fi
echo "1 passed, 0 failed"
