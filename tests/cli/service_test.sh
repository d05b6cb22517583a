#!/usr/bin/env bash
# `loopfast service` without a running systemd, in a throw-away root (--root):
#   - the drop-in's content: [Service], the library by an absolute path that exists, the
#     switch on by default, one variable per run option, exactly the variables `loopfast run`
#     with the same options sets;
#   - those variables alone (as systemd would start the unit: a clean environment plus the
#     drop-in's Environment=) make two plain programs talk over the fast path;
#   - enable is idempotent, enable with other options replaces the file, status shows it;
#   - disable removes exactly that: the tree is as before, other drop-ins stay; a loopfast.conf
#     loopfast did not write is neither replaced nor removed; bad unit names are usage errors;
#   - `systemd-analyze verify` accepts the unit with the drop-in (where systemd-analyze exists).
# usage: service_test.sh LOOPFAST_TOOL STREAM_PEER
set -euo pipefail
tool=$1
peer=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/lf-service-test.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/root
units=$root/etc/systemd/system
mkdir -p "$units"
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
tree() { (cd "$root" && find . | sort); }
before=$(tree)

run_options=(--log info --exclude-port 5432 --include-address 127.0.0.1,::1 --spin-us 20
  --include-port 1-65535 --log-file "$work/service.log")
"$tool" service enable --root "$root" demo "${run_options[@]}" >"$work/out" 2>&1 ||
  fail "enable: $(cat "$work/out")"
dropin=$units/demo.service.d/loopfast.conf
[ -f "$dropin" ] || fail "no $dropin"
[ "$(stat -c %a "$dropin")" = 644 ] || fail "mode $(stat -c %a "$dropin")"
grep -qx '\[Service\]' "$dropin" || fail "no [Service] section"

# The drop-in's variables, unquoted, one per line, sorted.
dropin_variables() {
  sed -n 's/^Environment="\(.*\)"$/\1/p' "$1" | sed 's/\\\(["\\]\)/\1/g; s/%%/%/g' | sort
}
dropin_variables "$dropin" >"$work/dropin.env"
library=$(sed -n 's/^LD_PRELOAD=//p' "$work/dropin.env")
case "$library" in
  /*) ;;
  *) fail "library path not absolute: $library" ;;
esac
[ -e "$library" ] || fail "library $library does not exist"
[ "$(basename "$library")" = libloopfast.so.0 ] || fail "not the soname: $library"
grep -qx 'LOOPFAST_DEFAULT=1' "$work/dropin.env" || fail "no LOOPFAST_DEFAULT=1"
# A unit starts in /: a relative log file is made absolute.
"$tool" service enable --root "$root" relative --log-file relative.log >/dev/null
grep -qx "Environment=\"LOOPFAST_LOG_FILE=$PWD/relative.log\"" \
  "$units/relative.service.d/loopfast.conf" || fail "log file not absolute"
"$tool" service disable --root "$root" relative >/dev/null

# What `loopfast run` sets with the same options (from a clean environment): the same.
env -i PATH="$PATH" "$tool" run "${run_options[@]}" -- env |
  grep -E '^(LOOPFAST_|LD_PRELOAD=)' | sort >"$work/run.env"
diff -u "$work/run.env" "$work/dropin.env" || fail "the drop-in differs from loopfast run"

# The drop-in's environment alone puts two plain programs on the fast path.
mapfile -t assignments <"$work/dropin.env"
env -i PATH="$PATH" "${assignments[@]}" LOOPFAST_LOG_FILE=/dev/null \
  "$peer" listen --bytes 65536 >"$work/server" &
server=$!
for _ in $(seq 200); do grep -q '^port ' "$work/server" && break; sleep 0.05; done
port=$(sed -n 's/^port //p' "$work/server")
[ -n "$port" ] || fail "the server printed no port"
env -i PATH="$PATH" "${assignments[@]}" LOOPFAST_LOG_FILE=/dev/null \
  "$peer" connect "$port" --bytes 65536 >"$work/client"
wait "$server"
grep -q '^ok .*before=fast' "$work/client" || fail "client not fast: $(cat "$work/client")"
grep -q '^ok .*before=fast' "$work/server" || fail "server not fast: $(cat "$work/server")"

# Idempotent: the same options change nothing, not even the file's inode.
inode=$(stat -c %i "$dropin")
"$tool" service enable --root "$root" demo.service "${run_options[@]}" >"$work/out"
grep -q unchanged "$work/out" || fail "second enable: $(cat "$work/out")"
[ "$(stat -c %i "$dropin")" = "$inode" ] || fail "second enable rewrote the file"
# Other options replace it.
"$tool" service enable --root "$root" demo --disable >/dev/null
grep -qx 'Environment="LOOPFAST_DISABLE=1"' "$dropin" || fail "not replaced"
grep -q LOOPFAST_SPIN_US "$dropin" && fail "old options kept"
"$tool" service status --root "$root" demo >"$work/out" || fail "status of an enabled unit"
grep -q 'enabled' "$work/out" && grep -q 'LOOPFAST_DISABLE=1' "$work/out" || fail "status"

# Removal leaves nothing; removing again is fine; status then says so (exit 1).
"$tool" service disable --root "$root" demo >/dev/null || fail "disable"
[ "$(tree)" = "$before" ] || fail "disable left: $(diff <(echo "$before") <(tree))"
"$tool" service disable --root "$root" demo >/dev/null || fail "second disable"
if "$tool" service status --root "$root" demo >/dev/null; then fail "status after disable"; fi

# Other drop-ins stay, with their directory.
mkdir -p "$units/other.service.d"
echo '[Service]' >"$units/other.service.d/limits.conf"
"$tool" service enable --root "$root" other >/dev/null
"$tool" service disable --root "$root" other >/dev/null
[ -f "$units/other.service.d/limits.conf" ] || fail "another drop-in was removed"
[ ! -e "$units/other.service.d/loopfast.conf" ] || fail "ours was not removed"
# A loopfast.conf that loopfast did not write is left alone.
printf '[Service]\nEnvironment=X=1\n' >"$units/other.service.d/loopfast.conf"
for action in enable disable; do
  if "$tool" service $action --root "$root" other >/dev/null 2>&1; then
    fail "$action went ahead over a foreign file"
  fi
done
grep -q 'X=1' "$units/other.service.d/loopfast.conf" || fail "a foreign file was changed"

# Unit names: only services; usage errors exit 2.
for bad in foo.socket ../etc/passwd "a b" ""; do
  status=0
  "$tool" service enable --root "$root" "$bad" >/dev/null 2>&1 || status=$?
  [ "$status" = 2 ] || fail "unit '$bad': exit $status"
done
status=0
"$tool" service frobnicate x >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] || fail "unknown action: exit $status"

# systemd's own parser accepts the unit with the drop-in, and has nothing to say about it.
if command -v systemd-analyze >/dev/null 2>&1; then
  cat >"$units/lftest.service" <<EOF
[Unit]
Description=loopfast service test
DefaultDependencies=no
[Service]
ExecStart=$peer listen
EOF
  "$tool" service enable --root "$root" lftest --log info --include-port 8000-8099 >/dev/null
  SYSTEMD_UNIT_PATH="$units:" systemd-analyze verify --man=no "$units/lftest.service" \
    >"$work/verify" 2>&1 || fail "systemd-analyze verify: $(cat "$work/verify")"
  if grep -i -e loopfast -e environment "$work/verify"; then fail "systemd-analyze complained"; fi
  echo "systemd-analyze verify: accepted"
else
  echo "systemd-analyze not installed: verify step skipped"
fi
echo "loopfast service: ok"
