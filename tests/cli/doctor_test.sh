#!/usr/bin/env bash
# `loopfast doctor` on this host:
#   - every check passes or warns, the connection is fast, rr and stream have figures, the
#     verdict says so and the exit status is 0; --json says the same (schema loopfast-doctor/1);
#   - LOOPFAST_DISABLE=1 or a malformed LOOPFAST_* list in the environment: exit 1, the reason;
#   - /etc/loopfast.conf (laid over /etc in a mount namespace; needs root): a refused file
#     (group-writable, unparsable) or `disable` means exit 1 with the loader's reason; a valid
#     file with rules is accepted (exit 0);
#   - usage errors exit 2.
# usage: doctor_test.sh LOOPFAST_TOOL
set -euo pipefail
tool=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/lf-doctor-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The doctor in a clean environment (the test runner's LOOPFAST_* would change the verdict).
clean=(env -u LD_PRELOAD)
for variable in $(env | sed -n 's/^\(LOOPFAST_[A-Z_]*\)=.*/\1/p'); do clean+=(-u "$variable"); done

status=0
"${clean[@]}" "$tool" doctor >"$work/out" 2>&1 || status=$?
cat "$work/out"
[ "$status" = 0 ] || fail "doctor exited $status on this host"
for name in kernel memfd futex eventfd unix-channel sock-diag so-cookie tcp-saved-syn tcp-maxseg netns \
  policy environment preload descriptors address-space; do
  grep -Eq "^(ok|info|warn) +$name " "$work/out" || fail "no passing line for $name"
done
grep -Eq '^ok +connection +fast, both ends' "$work/out" || fail "connection not fast"
grep -Eq '^info +rr +[0-9.]+ us per 1-byte round trip' "$work/out" || fail "no rr figure"
grep -Eq '^info +stream +[0-9.]+ GB/s' "$work/out" || fail "no stream figure"
grep -q 'the fast path works here' <<<"$(tail -1 "$work/out")" || fail "verdict"

"${clean[@]}" "$tool" doctor --json >"$work/json" || fail "--json exited non-zero"
python3 - "$work/json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "loopfast-doctor/1", d["schema"]
assert d["ok"] is True and d["reason"] == "", d
names = [c["name"] for c in d["checks"]]
assert len(names) == len(set(names)), names
for c in d["checks"]:
    assert set(c) == {"name", "status", "required", "needed_for", "detail"}, c
    assert c["status"] in ("ok", "info", "warn"), c
    assert c["detail"], c
assert names[-3:] == ["connection", "rr", "stream"], names
conn = d["connection"]
assert conn["path"] == "fast" and conn["client_path"] == "fast" and conn["server_path"] == "fast"
assert conn["kernel_bytes"] == 0, conn
for key in ("rr_us", "rr_kernel_us", "stream_gbps", "stream_kernel_gbps"):
    assert conn[key] > 0, (key, conn)
print("doctor --json: ok")
EOF

# The environment: what programs started from here would get.
expect_no() {  # expect_no PATTERN COMMAND...: exit 1, and the verdict matches PATTERN
  local pattern=$1 code=0
  shift
  "$@" >"$work/out" 2>&1 || code=$?
  [ "$code" = 1 ] || fail "$*: exit $code, wanted 1: $(cat "$work/out")"
  grep -q "no fast path here: .*$pattern" <<<"$(tail -1 "$work/out")" ||
    fail "$*: verdict: $(tail -1 "$work/out")"
}
expect_no 'environment: .*LOOPFAST_DISABLE' "${clean[@]}" LOOPFAST_DISABLE=1 "$tool" doctor
expect_no 'LOOPFAST_EXCLUDE_PORTS is malformed' \
  "${clean[@]}" LOOPFAST_EXCLUDE_PORTS=http "$tool" doctor
status=0
"${clean[@]}" LOOPFAST_EXCLUDE_PORTS=5432 "$tool" doctor >"$work/out" || status=$?
[ "$status" = 0 ] || fail "a narrowing variable is not a failure"
grep -Eq '^info +environment +LOOPFAST_EXCLUDE_PORTS=5432' "$work/out" || fail "not reported"

# The policy file, laid over /etc in a private mount namespace (the host's /etc is untouched).
if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
  with_policy() {  # with_policy MODE TEXT COMMAND...
    local mode=$1 text=$2
    shift 2
    rm -rf "$work/etc"
    mkdir -p "$work/etc/upper" "$work/etc/work"
    printf '%s\n' "$text" >"$work/etc/upper/loopfast.conf"
    chmod "$mode" "$work/etc/upper/loopfast.conf"
    unshare --mount --propagation private sh -c 'mount -t overlay overlay \
      -o "lowerdir=/etc,upperdir=$0/upper,workdir=$0/work" /etc && shift && exec "$@"' \
      "$work/etc" - "$@"
  }
  expect_no 'policy: refused.*writable by group or others' \
    with_policy 664 'inspect port 5432' "${clean[@]}" "$tool" doctor
  expect_no 'policy: refused.*line 1' \
    with_policy 644 'inspect port 99999' "${clean[@]}" "$tool" doctor
  expect_no 'policy: .*disable' with_policy 644 'disable' "${clean[@]}" "$tool" doctor
  status=0
  with_policy 644 $'inspect port 5432\ninspect address 127.0.0.9' "${clean[@]}" "$tool" doctor \
    >"$work/out" || status=$?
  [ "$status" = 0 ] || fail "a valid policy: exit $status: $(cat "$work/out")"
  grep -Eq '^ok +policy +/etc/loopfast.conf: 2 rules' "$work/out" || fail "policy line"
else
  echo "not root or no mount namespaces: the policy file cases are skipped"
fi

status=0
"$tool" doctor --bogus >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] || fail "unknown option: exit $status"
grep -q -- '--json' <<<"$("$tool" doctor --help)" || fail "--help"
echo "loopfast doctor: ok"
