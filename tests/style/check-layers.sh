#!/usr/bin/env bash
# check-layers: no include runs up the layers (STYLE.md section 3). Reads cmake/layers.txt, the
# table the build links by, and fails on:
#   - a file under src/ that belongs to no module of the table;
#   - a module file including a header ("<module>/x.h" or <sse/x.h>) of a module it does not use
#     (a layer above it, one beside it, or one not listed on its line);
#   - a public header the table gives no owner;
#   - a program (examples/, bench/) including library internals it is not listed for;
#   - a module using a module listed after it (the table itself out of order).
# Usage: check-layers.sh <source dir>
set -euo pipefail
src=$1
cd "$src"
table=cmake/layers.txt
[[ -f $table ]] || { echo "missing $table"; echo "0 passed, 1 failed"; exit 1; }

declare -A mod_folder mod_kind mod_uses mod_pos hdr_owner prog_allow
mods=()
bad=0; n=0
fail() { echo "$*"; bad=$((bad + 1)); }

while read -r kw a b c rest; do
  case $kw in
    module)
      [[ -z ${mod_pos[$a]:-} ]] || fail "$table: module $a listed twice"
      mod_pos[$a]=${#mods[@]}; mods+=("$a"); mod_folder[$a]=$b; mod_kind[$a]=$c
      mod_uses[$a]=" $rest "
      [[ $c == lib || $c == app ]] || fail "$table: module $a: kind must be lib or app, not '$c'"
      for u in $rest; do
        [[ -n ${mod_pos[$u]:-} ]] || fail "$table: module $a uses $u, which is not listed above it"
      done ;;
    header) hdr_owner[$a]=$b ;;
    program) prog_allow[$a]=" $b $c $rest " ;;
    ''|\#*) ;;
    *) fail "$table: unknown line '$kw $a $b $c $rest'" ;;
  esac
done < "$table"
for h in "${!hdr_owner[@]}"; do
  [[ -n ${mod_pos[${hdr_owner[$h]}]:-} ]] || fail "$table: header $h owned by unknown module ${hdr_owner[$h]}"
done

# The module a path under src/ belongs to: the longest matching folder.
module_of() {
  local p=$1 best="" len=0 m f
  for m in "${mods[@]}"; do
    f=${mod_folder[$m]}
    if [[ $p == "$f"/* && ${#f} -gt $len ]]; then best=$m; len=${#f}; fi
  done
  echo "$best"
}

# The include lines of a file: "path:line:header:quoted|public".
includes_of() {
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*\(["<][^">]*[">]\).*/\1/p' "$1"
}

if git rev-parse --git-dir >/dev/null 2>&1; then
  list_files() { git ls-files --cached --others --exclude-standard -- "$@" | grep -E '\.[ch]$' || true; }
else
  list_files() { find "$@" -name '*.[ch]' 2>/dev/null || true; }
fi

for h in include/sse/*.h include/sse/*.h.in; do
  [[ -e $h ]] || continue
  name=$(basename "$h" .in)
  n=$((n + 1))
  [[ -n ${hdr_owner[$name]:-} ]] || fail "$h: no owner in $table (add: header $name <module>)"
done

for f in $(list_files src); do
  n=$((n + 1))
  m=$(module_of "$f")
  if [[ -z $m ]]; then fail "$f: belongs to no module of $table"; continue; fi
  dir=$(dirname "$f")
  while IFS= read -r inc; do
    [[ -n $inc ]] || continue
    h=${inc:1:${#inc}-2}
    if [[ $inc == \<sse/* ]]; then
      name=${h#sse/}
      owner=${hdr_owner[$name]:-}
      if [[ -z $owner ]]; then fail "$f: includes <$h>, which has no owner in $table"; continue; fi
      [[ $owner == "$m" || ${mod_uses[$m]} == *" $owner "* || ${mod_kind[$m]} == app ]] ||
        fail "$f: module $m includes <$h> of module $owner, which it does not use"
    elif [[ $inc == \"* ]]; then
      if [[ $h == */* ]]; then
        [[ -e src/$h ]] || continue  # generated or not a module header
        owner=$(module_of "src/$h")
      else
        [[ -e $dir/$h ]] || continue  # generated (cli_commands.h) or from a system path
        owner=$(module_of "$dir/$h")
      fi
      [[ -z $owner || $owner == "$m" || ${mod_uses[$m]} == *" $owner "* ]] ||
        fail "$f: module $m includes \"$h\" of module $owner, which it does not use"
    fi
  done < <(includes_of "$f")
done

# Programs: public headers and their own files; internals only where the table allows.
for f in $(list_files examples bench); do
  n=$((n + 1))
  allow="" best=0
  for p in "${!prog_allow[@]}"; do
    if [[ ( $f == "$p" || $f == "$p"/* ) && ${#p} -gt $best ]]; then allow=${prog_allow[$p]}; best=${#p}; fi
  done
  dir=$(dirname "$f")
  while IFS= read -r inc; do
    [[ $inc == \"* ]] || continue
    h=${inc:1:${#inc}-2}
    [[ $h != */* && -e $dir/$h ]] && continue  # the program's own header
    owner=""
    [[ -e src/$h ]] && owner=$(module_of "src/$h")
    [[ -n $owner && $allow == *" $owner "* ]] ||
      fail "$f: includes \"$h\" (${owner:-unknown}): a program uses the public headers <sse/*.h>"
  done < <(includes_of "$f")
done

echo "$((n - bad)) passed, $bad failed"
[[ $bad -eq 0 ]]
