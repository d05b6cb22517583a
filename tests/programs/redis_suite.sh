#!/usr/bin/env bash
# Redis's own test suite against an external redis-server, the server and the suite's test
# client (tclsh, and the redis-cli/redis-benchmark it starts) all under `loopfast run`. The
# suite is tests/ of the Debian source package of the installed redis-server, Debian's patches
# applied (fetched with apt into BUILD/redis-suite once; needs deb.debian.org or the host's
# mirror, no root). Runs in a private network namespace when one can be made (unshare -rn),
# so that its loopback interface carries this test's traffic only: the fast run must leave
# there a small fraction of the bytes the server moved (the rest went through the rings).
#
# Passes when every unit run passes: 0 [err], no [exception], every unit done, "All tests passed
# without errors!". Two tests are skipped; they fail without loopfast too (docs/compatibility.md).
#
# LF_REDIS_SUITE=ci (default): the units whose tests keep a second connection waiting while
# another works (two or more `redis_deferring_client`: blocking commands, pub/sub, MULTI/WATCH,
# CLIENT PAUSE, client tracking), where the order and the wake-ups of several connections
# matter; loopfast only (~2 min). LF_REDIS_SUITE=full: every unit, under loopfast and then
# plainly, compared (~12 min). LF_REDIS_UNITS="unit/pubsub unit/multi": those units only.
# usage: redis_suite.sh BUILD_DIR
suite=${LF_REDIS_SUITE:-ci}
if [ "$suite" = full ]; then
  export LF_MAX_LIFETIME=${LF_MAX_LIFETIME:-1500} # seconds the server may live
else
  export LF_MAX_LIFETIME=${LF_MAX_LIFETIME:-600}
fi
source "$(dirname "$0")/lib.sh"

# Tests that fail against this server without loopfast as well (see docs/compatibility.md):
skips=(
  # unit/type/set: reads the pid of a server the suite started itself (`srv 0 pid`); with an
  # external server that throws, the test client dies, and the bgsave it started stays.
  "SRANDMEMBER with a dict containing long chain"
  # unit/dump, added by Debian's CVE-2026-25243 patch: expects "Bad data format", but this
  # server checks the fake payload's checksum first ("DUMP payload version or checksum are
  # wrong").
  "RESTORE fail with invalid payload size"
)

# ---- Outside the namespace: the suite's source (needs the network) ----

# fetch_suite CACHE: the patched source tree of the installed redis-server's Debian source
# package in CACHE/redis-VERSION (kept for later runs); its path in `tree`. 77 when impossible.
fetch_suite() {
  local cache=$1 version package name work apt f p
  version=$(dpkg-query -W -f='${source:Version}' redis-server 2>/dev/null)
  package=$(dpkg-query -W -f='${source:Package}' redis-server 2>/dev/null)
  if [ -z "$version" ] || [ -z "$package" ]; then
    echo "redis-suite: SKIP: redis-server is not a Debian package here"
    exit 77
  fi
  name=redis-${version//[:~]/_}
  tree=$cache/$name
  [ -e "$tree/.complete" ] && return 0
  for p in apt-get dpkg-query tar patch; do
    command -v "$p" >/dev/null || {
      echo "redis-suite: SKIP: $p not installed (scripts/install-deps.sh installs patch)"
      exit 77
    }
  done
  apt=$cache/apt
  rm -rf "$apt" "$cache/work"
  mkdir -p "$apt/sources" "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/work"
  # The host's own Debian sources, as deb-src (its mirror, its keys), in a private apt state:
  # nothing in /etc or /var/lib/apt changes.
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >"$apt/sources/host.list"
  fi
  for f in /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$apt/sources/host.list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" >"$apt/sources/$(basename "$f")"
  done
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/sources"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=$(id -un)")
  echo "redis-suite: fetching Debian's source package $package $version (apt, deb-src)"
  apt-get "${opts[@]}" -q update >"$apt/update.log" 2>&1 # a third-party source may fail
  if ! (cd "$cache/work" && apt-get "${opts[@]}" -q source --download-only "$package=$version") \
    >"$apt/source.log" 2>&1; then
    echo "redis-suite: SKIP: cannot fetch the source of $package $version: $(tail -n 2 "$apt/source.log" | tr '\n' ' ')"
    exit 77
  fi
  local origs=("$cache"/work/*.orig.tar.*) debians=("$cache"/work/*.debian.tar.*) dirs
  mkdir -p "$cache/work/src"
  if ! tar -xf "${origs[0]}" -C "$cache/work/src"; then
    echo "redis-suite: FAIL: cannot unpack ${origs[0]}"
    exit 1
  fi
  dirs=("$cache"/work/src/*/)
  work=${dirs[0]%/}
  if ! tar -xf "${debians[0]}" -C "$work"; then
    echo "redis-suite: FAIL: cannot unpack ${debians[0]}"
    exit 1
  fi
  # Debian's patches, as dpkg-source applies them (quilt's series order).
  while read -r p _; do
    case $p in '' | '#'*) continue ;; esac
    patch -d "$work" -p1 -s --no-backup-if-mismatch <"$work/debian/patches/$p" || {
      echo "redis-suite: FAIL: Debian patch $p does not apply"
      exit 1
    }
  done <"$work/debian/patches/series"
  # The suite runs programs from src/ (redis-cli, redis-benchmark): the installed ones.
  for p in redis-server redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
    command -v "$p" >/dev/null && ln -sf "$(command -v "$p")" "$work/src/$p"
  done
  rm -rf "$tree"
  mv "$work" "$tree"
  rm -rf "$cache/work"
  touch "$tree/.complete"
}

if [ "${LF_REDIS_NETNS:-}" = "" ]; then
  if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "redis-suite: usage: $0 BUILD_DIR" >&2
    exit 2
  fi
  for p in redis-server:redis-server redis-cli:redis-tools tclsh:tcl; do
    command -v "${p%%:*}" >/dev/null || {
      echo "redis-suite: SKIP: ${p%%:*} not installed (Debian package ${p#*:}; scripts/install-deps.sh installs it unless LOOPFAST_PROGRAM_TESTS=0)"
      exit 77
    }
  done
  fetch_suite "$(cd "$1" && pwd)/redis-suite"
  export LF_REDIS_TREE=$tree
  if unshare --net --map-root-user true 2>/dev/null; then
    LF_REDIS_NETNS=private exec unshare --net --map-root-user bash "$0" "$@"
  fi
  export LF_REDIS_NETNS=shared
fi

# ---- The run (in the private namespace when there is one) ----

lf_init redis-suite "${1:-}"
tree=$LF_REDIS_TREE
[ "$LF_REDIS_NETNS" = private ] && ip link set lo up
version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')

# The units: the suite's own list, in its order.
mapfile -t all_units < <(sed -n '/^set ::all_tests {/,/^}/p' "$tree/tests/test_helper.tcl" |
  grep -v '[{}]' | tr -d ' \t')
units=()
for u in "${all_units[@]}"; do
  if [ -n "${LF_REDIS_UNITS:-}" ]; then
    [[ " $LF_REDIS_UNITS " == *" $u "* ]] && units+=("$u")
  elif [ "$suite" = full ] || (($(grep -c redis_deferring_client "$tree/tests/$u.tcl") >= 2)); then
    units+=("$u")
  fi
done
args=(--host 127.0.0.1 --clients 1 --timeout 600)
for s in "${skips[@]}"; do args+=(--skiptest "$s"); done
for u in "${units[@]}"; do args+=(--single "$u"); done

# What the loopback interface carried (this namespace's, when private), received + sent:
# "BYTES PACKETS".
lo_counters() { awk -F'[: ]+' '$2 == "lo" { print $3 + $11, $4 + $12 }' /proc/net/dev; }

declare -A ok err exc done_units seconds lo lo_packets lo_avg moved
run_mode() {
  local mode=$1 port pid t0 rc out before before_packets after after_packets
  port=$(lf_free_port) || return
  mkdir -p "$LF_TMP/data-$mode"
  lf_spawn "$mode" "srv-$mode" redis-server "$tree/tests/assets/default.conf" --port "$port" \
    --dir "$LF_TMP/data-$mode" --pidfile "$LF_TMP/data-$mode/redis.pid" \
    --logfile "$LF_TMP/srv-$mode.log"
  pid=$LF_LAST_PID
  lf_wait_port "$port" "$pid" || return
  read -r before before_packets < <(lo_counters)
  t0=$(date +%s.%N)
  lf_prefix "$mode" "suite-$mode"
  (cd "$tree" && timeout -k 5 $((LF_MAX_LIFETIME - 30)) "${LF_PFX[@]}" ./runtest "${args[@]}" \
    --port "$port") >"$LF_TMP/suite-$mode.out" 2>&1
  rc=$?
  seconds[$mode]=$(lf_seconds_since "$t0")
  # What the server moved, asked through the same path.
  timeout 10 "${LF_PFX[@]}" redis-cli -h 127.0.0.1 -p "$port" INFO stats >"$LF_TMP/info-$mode.out" 2>&1
  read -r after after_packets < <(lo_counters)
  lo[$mode]=$((after - before))
  lo_packets[$mode]=$((after_packets - before_packets))
  moved[$mode]=$(tr -d '\r' <"$LF_TMP/info-$mode.out" |
    awk -F: '/^total_net_(input|output)_bytes:/ { s += $2 } END { printf "%.0f\n", s }')
  lf_stop_group "$pid"
  out=$(sed 's/\x1b\[[0-9;]*m//g' "$LF_TMP/suite-$mode.out")
  ok[$mode]=$(grep -c '^\[ok\]:' <<<"$out")
  err[$mode]=$(grep -c '^\[err\]:' <<<"$out")
  exc[$mode]=$(grep -c '^\[exception\]:' <<<"$out")
  done_units[$mode]=$(grep -c '^\[[0-9]*/[0-9]* done\]:' <<<"$out")
  if [ "${err[$mode]}" != 0 ] || [ "${exc[$mode]}" != 0 ]; then
    lf_fail "$mode: ${err[$mode]} err, ${exc[$mode]} exception: $(grep -m 3 -E '^\[(err|exception)\]:' <<<"$out" | tr '\n' ' ')"
  fi
  if [ "${done_units[$mode]}" != "${#units[@]}" ]; then
    lf_fail "$mode: ${done_units[$mode]} of ${#units[@]} units done (status $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  elif ! grep -q "All tests passed without errors" <<<"$out"; then
    lf_fail "$mode: no \"All tests passed\" (status $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  fi
  lf_log "$mode: ${ok[$mode]} ok, ${err[$mode]} err, ${exc[$mode]} exception, ${done_units[$mode]}/${#units[@]} units, ${seconds[$mode]}s; server moved ${moved[$mode]} B (since its last CONFIG RESETSTAT), loopback carried ${lo[$mode]} B in ${lo_packets[$mode]} packets"
}

run_mode fast
# Every connection fast on both sides, but the server's own to a port nothing listens on
# (unit/multi: "MULTI / EXEC with REPLICAOF" makes it a replica of localhost:9999), and, in the
# full suite, the framework's probes of the servers a few tests start themselves (it connects
# and closes until the new server answers): closed before that server accepts, they end their
# rendezvous on both sides and take kernel TCP, as wrk's first connection in nginx.sh.
min_conns=10
[ -n "${LF_REDIS_UNITS:-}" ] && min_conns=1
LF_ALLOWED_FALLBACK="kernel TCP: no opted-in listener on that port" \
  LF_ALLOWED_LOST=${LF_ALLOWED_LOST:-10} lf_check_log srv-fast suite-fast info-fast "$min_conns"
# The rings carried the data: what the loopback interface carried is TCP headers (52 bytes a
# packet here, 60 with a SYN's options: handshakes, ends, window updates), no payload to speak
# of. Kernel TCP's packets carry the suite's requests and replies too (90 bytes a packet and
# more: the plain run, LF_REDIS_SUITE=full).
if [ "$LF_REDIS_NETNS" = private ]; then
  lo_avg[fast]=$(lf_ratio "${lo[fast]}" "${lo_packets[fast]}")
  awk -v avg="${lo_avg[fast]}" 'BEGIN { exit !(avg != "n/a" && avg <= 64) }' ||
    lf_fail "the loopback interface carried ${lo[fast]} B in ${lo_packets[fast]} packets (${lo_avg[fast]} B a packet): payload went through the kernel"
else
  lf_log "note: no private network namespace (unshare -rn failed): the loopback counters include other traffic; not checked"
fi
if [ "$suite" = full ]; then
  run_mode plain
  lo_avg[plain]=$(lf_ratio "${lo[plain]}" "${lo_packets[plain]}")
  if [ -z "${LF_REDIS_UNITS:-}" ]; then
    ((lo[fast] * 20 <= lo[plain])) ||
      lf_fail "the loopback interface carried ${lo[fast]} B fast against ${lo[plain]} B plain"
  fi
fi

summary="redis $version suite ($suite: ${#units[@]} units, ${#skips[@]} tests skipped): fast ${ok[fast]:-?} ok, ${err[fast]:-?} err, ${exc[fast]:-?} exception, ${done_units[fast]:-?}/${#units[@]} units in ${seconds[fast]:-?}s; loopback carried ${lo[fast]:-?} B (${lo_avg[fast]:-?} B a packet)"
if [ "$suite" = full ]; then
  summary+="; plain ${ok[plain]:-?} ok, ${err[plain]:-?} err, ${exc[plain]:-?} exception, ${done_units[plain]:-?} units in ${seconds[plain]:-?}s, loopback ${lo[plain]:-?} B (${lo_avg[plain]:-?} B a packet)"
fi
lf_finish "$summary" version="$version" suite="$suite" units="${#units[@]}" netns="$LF_REDIS_NETNS" \
  fast_ok="${ok[fast]:-}" fast_err="${err[fast]:-}" fast_exception="${exc[fast]:-}" \
  fast_seconds="${seconds[fast]:-}" fast_lo_bytes="${lo[fast]:-}" fast_moved_bytes="${moved[fast]:-}" \
  plain_ok="${ok[plain]:-}" plain_err="${err[plain]:-}" plain_seconds="${seconds[plain]:-}" \
  plain_lo_bytes="${lo[plain]:-}" fast_conns="${LF_FAST_CONNS:-0}"
