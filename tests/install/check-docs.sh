#!/usr/bin/env bash
# check-docs: the man pages and the bash completion the build writes (src/cli/CMakeLists.txt) say
# everything `--help` says: every option that `ssehub --help` and `ssehub CMD --help` print is an
# option entry (.TP tag) of ssehub(1) / ssehub-CMD(1) and a word the completion offers after
# `ssehub CMD -`; every command has its page; groff reads every page without a warning.
# Usage: check-docs.sh SSEHUB DOCS_DIR   (DOCS_DIR: the build's docs-gen folder)
set -euo pipefail
ssehub=$1 docs=$2
failed=0 passed=0
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

if ! command -v groff >/dev/null; then
  if [[ ${CI:-} == true ]]; then echo "FAIL: groff missing (scripts/install-deps)"; exit 1; fi
  echo "SKIP: groff missing"; exit 77
fi

# The flags of a --help text: the leading "-x, --long" words of each option line.
help_flags() {
  sed -n 's/^  \(-[-A-Za-z0-9]*\(, -[-A-Za-z0-9]*\)*\).*/\1/p' | tr ',' '\n' | tr -d ' ' | sort -u
}
# The flags of a man page: the words of its .TP tags, roff escapes removed.
man_flags() {
  awk 'tag { print; tag = 0 } /^\.TP/ { tag = 1 }' "$1" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' |
    grep -oE '(^|[ ,])-[-A-Za-z0-9]+' | tr -d ' ,' | sort -u
}
# What the completion offers after `ssehub CMD -`.
completion_flags() {
  bash -c 'source "$1"; COMP_WORDS=(ssehub "$2" -); COMP_CWORD=2; _ssehub; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$docs/ssehub.bash" "$1" | sort -u
}
check() { # check NAME HELP_FLAGS MAN_FLAGS COMPLETION_FLAGS
  local in_man in_completion
  [[ -n $2 ]] || { bad "$1: no option found in --help"; return; }
  in_man=$(comm -23 <(echo "$2") <(echo "$3"))
  in_completion=$(comm -23 <(echo "$2") <(echo "$4"))
  [[ -z $in_man ]] || bad "$1: in --help, not in the man page:" $in_man
  [[ -z $in_completion ]] || bad "$1: in --help, not in the bash completion:" $in_completion
  [[ -n ${in_man}${in_completion} ]] || { echo "ok: $1 ($(echo "$2" | wc -l) options)"; passed=$((passed + 1)); }
}

for page in "$docs"/man1/*.1; do
  warn=$(groff -man -ww -z "$page" 2>&1) || true
  [[ -z $warn ]] || bad "$(basename "$page"): groff: $warn"
done

commands=$("$ssehub" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p')
[[ -n $commands ]] || bad "no command listed by ssehub --help"
main_completion=$(bash -c 'source "$1"; COMP_WORDS=(ssehub ""); COMP_CWORD=1; _ssehub; printf "%s\n" "${COMPREPLY[@]}"' _ "$docs/ssehub.bash" | sort -u)
for c in $commands; do
  [[ -f $docs/man1/ssehub-$c.1 ]] || bad "no man page ssehub-$c.1"
  grep -qx "$c" <<<"$main_completion" || bad "the completion does not offer the command $c"
done
check ssehub "$("$ssehub" --help | help_flags)" "$(man_flags "$docs/man1/ssehub.1")" \
  "$(grep -- '^-' <<<"$main_completion")"
for c in $commands; do
  [[ -f $docs/man1/ssehub-$c.1 ]] || continue
  check "ssehub $c" "$("$ssehub" "$c" --help | help_flags)" "$(man_flags "$docs/man1/ssehub-$c.1")" \
    "$(completion_flags "$c")"
done
# An option whose argument is a list of choices ("--target mercure|nchan|plain") completes them.
nchoice=0
for c in $commands; do
  while read -r line; do
    choices=${line##* } flags=${line% *}
    flag=${flags##* }
    got=$(bash -c 'source "$1"; COMP_WORDS=(ssehub "$2" "$3" ""); COMP_CWORD=3; _ssehub; echo "${COMPREPLY[*]}"' \
      _ "$docs/ssehub.bash" "$c" "$flag")
    [[ $got == "${choices//|/ }" ]] || bad "ssehub $c $flag completes '$got', not '${choices//|/ }'"
    nchoice=$((nchoice + 1))
  done < <("$ssehub" "$c" --help |
    sed -n 's/^  \(-[-A-Za-z0-9]*\(, -[-A-Za-z0-9]*\)*\) \([-A-Za-z0-9.]*|[-A-Za-z0-9.|]*\)\( .*\)\{0,1\}$/\1 \3/p')
done
((nchoice > 0)) || bad "no option with a list of choices found in any --help"
((failed > 0)) || { echo "ok: $nchoice options with choices complete them"; passed=$((passed + 1)); }

echo "$passed passed, $failed failed"
((failed == 0))
