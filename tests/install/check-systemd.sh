#!/usr/bin/env bash
# check-systemd: the installed contrib/ssehub.service is a valid, hardened unit whose command line
# runs. `systemd-analyze verify` reads it without a word (a misspelt key or value is only a
# warning there, so any output fails), `systemd-analyze security --offline` rates its exposure
# at most 2.0 ("OK"), the hardening settings docs/OPERATIONS.md promises are present, and its
# ExecStart with its Environment (%S and %d pointed at temporary folders, as systemd would, and
# SSEHUB_LISTEN moved to a free port as /etc/ssehub/ssehub.env may) starts the hub on an LMDB
# store in the state directory, which stops cleanly on SIGTERM.
# Usage: check-systemd.sh BUILD_DIR
set -euo pipefail
bin=$1
if ! command -v systemd-analyze >/dev/null; then
  if [[ ${CI:-} == true ]]; then echo "FAIL: systemd-analyze missing (scripts/install-deps)"; exit 1; fi
  echo "SKIP: systemd-analyze missing"; exit 77
fi
prefix=$(mktemp -d)
pid=
cleanup() {
  [[ -z $pid ]] || kill -9 "$pid" 2>/dev/null || true
  rm -rf "$prefix"
}
trap cleanup EXIT
passed=0
fail() { echo "FAIL: $*"; echo "$passed passed, 1 failed"; exit 1; }
ok() { echo "ok: $*"; passed=$((passed + 1)); }

cmake --install "$bin" --prefix "$prefix" >/dev/null
unit=$prefix/lib/systemd/system/ssehub.service
[[ -f $unit ]] || fail "ssehub.service not installed"
grep -qx "ExecStart=$prefix/bin/ssehub serve" "$unit" || fail "ExecStart does not name the installed ssehub"

out=$(MANPATH=$prefix/share/man systemd-analyze verify "$unit" 2>&1) || fail "verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify says: $out"
ok "systemd-analyze verify: no warning"

for want in DynamicUser=yes StateDirectory=ssehub NoNewPrivileges=yes ProtectSystem=strict \
  ProtectHome=yes PrivateTmp=yes PrivateDevices=yes CapabilityBoundingSet= \
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" LimitNOFILE=1048576 \
  SystemCallFilter=@system-service MemoryDenyWriteExecute=yes; do
  grep -qx -- "$want" "$unit" || fail "the unit lacks $want"
done
ok "hardening settings present"

sec=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || fail "security: $sec"
level=$(sed -n 's/.*Overall exposure level for ssehub.service: \([0-9.]*\).*/\1/p' <<<"$sec")
[[ -n $level ]] || fail "no exposure level in: $sec"
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "exposure level $level > 2.0"
ok "systemd-analyze security: exposure $level"

# The command line the unit runs, in the environment it gives.
state=$prefix/state creds=$prefix/creds
mkdir -p "$state/ssehub" "$creds"
printf 'a-publisher-secret-of-32-bytes!!' >"$creds/publisher-jwt-key"
envs=()
while IFS= read -r line; do
  line=${line//%S/$state}
  envs+=("${line//%d/$creds}")
done < <(sed -n 's/^Environment=//p' "$unit")
envs+=(SSEHUB_LISTEN=127.0.0.1:0)
read -r -a cmd < <(sed -n 's/^ExecStart=//p' "$unit")
log=$prefix/serve.log
env -i PATH=/usr/bin:/bin "${envs[@]}" "${cmd[@]}" >"$log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q '^listening on http://' "$log" && break; sleep 0.1; done
grep -q '^listening on http://' "$log" || { cat "$log"; fail "the unit's command does not start"; }
grep -q "history: lmdb $state/ssehub" "$log" || { cat "$log"; fail "the history is not LMDB in the state directory"; }
[[ -f $state/ssehub/data.mdb ]] || fail "no data.mdb in the state directory"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
((rc == 0)) || { cat "$log"; fail "exit $rc on SIGTERM"; }
ok "ExecStart with the unit's environment serves on LMDB in the state directory, stops on SIGTERM"
echo "$passed passed, 0 failed"
