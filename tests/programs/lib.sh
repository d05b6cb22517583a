# shellcheck shell=bash
# Shared by the real-program tests in this directory (sourced, not run).
#
# Each test runs a Debian program's server and client twice in one run: both under
# `loopfast run` (fast), then both plain (no loopfast at all), checks the bytes, proves the fast
# run really went fast, and records the speed ratio. Evidence of "fast":
#   (a) loopfast's own debug log: "fast path established" lines on the accepting and the
#       connecting side, and no "kernel TCP:" fallback line;
#   (b) the kernel's per-connection counters (ss -ti: bytes_sent/bytes_acked/bytes_received),
#       sampled while the program's connections are open: a fast connection's kernel connection
#       carries no payload, while the plain run's carries the program's bytes.
#
# Every process started here runs under `timeout` (its own process group, a bounded lifetime);
# the EXIT trap stops each group. Nothing is sent anywhere but 127.0.0.1.

set -uo pipefail

LF_MAX_LIFETIME=${LF_MAX_LIFETIME:-60} # seconds any server may live
LF_FAST_MAX_BYTES=${LF_FAST_MAX_BYTES:-64} # payload a fast connection's kernel side may show

lf_log() { echo "$LF_NAME: $*"; }

# lf_init NAME BUILD_DIR
lf_init() {
  LF_NAME=$1
  if [ $# -lt 2 ] || [ ! -d "$2" ]; then
    echo "$LF_NAME: usage: $0 BUILD_DIR (the CMake build directory holding loopfast)" >&2
    exit 2
  fi
  LF_BUILD=$(cd "$2" && pwd)
  LF_BIN=$LF_BUILD/loopfast
  LF_LIB=$LF_BUILD/libloopfast.so
  if [ ! -x "$LF_BIN" ] || [ ! -e "$LF_LIB" ]; then
    echo "$LF_NAME: FAIL: $LF_BIN or $LF_LIB missing: build first" >&2
    exit 2
  fi
  LF_RESULTS=$LF_BUILD/programs-results.txt
  # Plain runs must be plain, whatever the caller's environment holds.
  unset LD_PRELOAD LOOPFAST_DEFAULT LOOPFAST_DISABLE LOOPFAST_LOG LOOPFAST_LOG_FILE LOOPFAST_SPIN_US
  LF_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lf-prog-$LF_NAME.XXXXXX")
  LF_PIDS=()
  LF_SAMPLERS=()
  LF_PORTS=()
  LF_FAILS=()
  LF_T0=$(date +%s.%N)
  LF_LOAD1=$(cut -d' ' -f1 /proc/loadavg) # the ratios want a quiet machine; recorded with them
  trap lf_cleanup EXIT
  trap 'lf_log "interrupted"; exit 130' INT TERM
}

# lf_require COMMAND:PACKAGE ... — exit 77 (skip) when a command is missing.
lf_require() {
  local spec cmd pkg
  for spec in "$@"; do
    cmd=${spec%%:*}
    pkg=${spec#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
      echo "$LF_NAME: SKIP: $cmd not installed (Debian package $pkg; scripts/install-deps.sh installs it unless LOOPFAST_PROGRAM_TESTS=0)"
      lf_result status=skip reason="$cmd-missing"
      exit 77
    fi
  done
}

lf_cleanup() {
  local status=$?
  local pid
  for pid in "${LF_SAMPLERS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${LF_PIDS[@]}"; do lf_stop_group "$pid"; done
  if [ "${LF_KEEP:-0}" != 0 ]; then
    lf_log "everything kept in $LF_TMP"
  elif [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    # Keep the logs of a failure, not its megabytes of payload (LF_KEEP=1 keeps those too).
    find "$LF_TMP" -type f -size +1M -delete 2>/dev/null
    lf_log "logs kept in $LF_TMP"
  else
    rm -rf "$LF_TMP"
  fi
}

# lf_stop_group PID: TERM the process group PID leads (timeout made it), then KILL after 5 s.
lf_stop_group() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local kept=() p
  for p in "${LF_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  LF_PIDS=("${kept[@]}")
  return 0
}

# lf_free_port: a TCP port below the ephemeral range that nothing uses now (and not handed out
# earlier in this test), so no client's ephemeral port can take it later.
lf_free_port() {
  local low port i used
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  [ "$low" -gt 12000 ] || low=32768
  for ((i = 0; i < 200; i++)); do
    port=$((10000 + RANDOM % (low - 10000)))
    used=0
    [[ " ${LF_PORTS[*]} " == *" $port "* ]] && used=1
    if [ "$used" = 0 ] && [ -z "$(ss -Htan "( sport = :$port or dport = :$port )" 2>/dev/null)" ]; then
      LF_PORTS+=("$port")
      echo "$port"
      return 0
    fi
  done
  echo "$LF_NAME: FAIL: no free port found" >&2
  return 1
}

# lf_prefix MODE LABEL: sets LF_PFX, the words to put before a program: for "fast",
# loopfast run with a debug log in $LF_TMP/LABEL.lflog; for "plain", nothing.
lf_prefix() {
  case $1 in
    fast) LF_PFX=("$LF_BIN" run --log debug --log-file "$LF_TMP/$2.lflog" --) ;;
    plain) LF_PFX=() ;;
    *) echo "lf_prefix: bad mode $1" >&2; return 2 ;;
  esac
}

# lf_spawn MODE LABEL COMMAND... — starts a server in the background (its own process group,
# bounded lifetime, output in $LF_TMP/LABEL.out); its pid is in LF_LAST_PID.
lf_spawn() {
  local mode=$1 label=$2
  shift 2
  lf_prefix "$mode" "$label" || return 2
  timeout -k 5 "$LF_MAX_LIFETIME" "${LF_PFX[@]}" "$@" >"$LF_TMP/$label.out" 2>&1 </dev/null &
  LF_LAST_PID=$!
  LF_PIDS+=("$LF_LAST_PID")
}

# lf_wait_port PORT PID [SECONDS]: until something listens on PORT; fails if PID exits first.
lf_wait_port() {
  local port=$1 pid=$2 limit=${3:-10} i
  for ((i = 0; i < limit * 20; i++)); do
    if [ -n "$(ss -Htln "( sport = :$port )" 2>/dev/null)" ]; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      lf_fail "server (pid $pid) exited before listening on port $port"
      return 1
    fi
    sleep 0.05
  done
  lf_fail "nothing listens on port $port after ${limit}s"
  return 1
}

# lf_client SECONDS MODE LABEL COMMAND... — runs a client in the foreground, bounded; stdout in
# $LF_TMP/LABEL.out, stderr in $LF_TMP/LABEL.err, stdin the caller's; returns its status
# (124: timed out).
lf_client() {
  local limit=$1 mode=$2 label=$3 rc
  shift 3
  lf_prefix "$mode" "$label" || return 2
  timeout -k 3 "$limit" "${LF_PFX[@]}" "$@" >"$LF_TMP/$label.out" 2>"$LF_TMP/$label.err"
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    lf_fail "$label: $1 did not finish within ${limit}s (hang?)"
  elif [ "$rc" -ne 0 ]; then
    lf_fail "$label: $1 exited with status $rc: $(tail -n 3 "$LF_TMP/$label.err" | tr '\n' ' ')"
  fi
  return "$rc"
}

# lf_sampler_start PORT LABEL [INTERVAL]: samples `ss -ti` for connections on PORT every
# INTERVAL seconds (default 0.02; each sample costs a few ms of CPU, so timed runs use a sparse
# one) into $LF_TMP/LABEL.ss until lf_sampler_stop LABEL, for 60 s at most, and no longer than
# the test script lives.
declare -A LF_SAMPLER
lf_sampler_start() {
  local port=$1 label=$2 interval=${3:-0.02} script=$$
  (
    end=$((SECONDS + 60))
    while ((SECONDS < end)) && kill -0 "$script" 2>/dev/null; do
      ss -tinH state established "( sport = :$port or dport = :$port )"
      echo "#"
      sleep "$interval"
    done
  ) >"$LF_TMP/$label.ss" 2>&1 &
  LF_SAMPLERS+=($!)
  LF_SAMPLER[$label]=$!
}

# lf_sampler_stop LABEL: stops the sampler and sets LF_SS_SOCKETS (distinct sockets seen),
# LF_SS_SAMPLES (samples that saw any) and LF_SS_MAX (largest payload byte count any sampled
# kernel connection carried: max of bytes_sent, bytes_acked - 1 (the SYN), bytes_received).
lf_sampler_stop() {
  local label=$1 pid
  pid=${LF_SAMPLER[$label]}
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  read -r LF_SS_SOCKETS LF_SS_SAMPLES LF_SS_MAX < <(awk '
    /^#/ { if (seen) samples++; seen = 0; next }
    /^[ \t]/ {
      n = 0
      for (i = 1; i <= NF; i++) {
        split($i, kv, ":")
        if (kv[1] == "bytes_sent" || kv[1] == "bytes_received") v = kv[2] + 0
        else if (kv[1] == "bytes_acked") v = kv[2] - 1
        else continue
        if (v > n) n = v
      }
      if (!(key in best) || n > best[key]) best[key] = n
      if (n > max) max = n
      seen = 1
      next
    }
    NF >= 4 { key = $3 " " $4 }
    END { for (k in best) sockets++; printf "%d %d %.0f\n", sockets, samples, max }
  ' "$LF_TMP/$label.ss")
}

# lf_check_fast_sampled WHAT: after lf_sampler_stop of a fast run, fails unless the sampler saw
# connections and none carried more than LF_FAST_MAX_BYTES in the kernel.
lf_check_fast_sampled() {
  if [ "$LF_SS_SOCKETS" -eq 0 ]; then
    lf_fail "$1: the kernel-counter sampler saw no connection (too short to sample?)"
  elif [ "$LF_SS_MAX" -gt "$LF_FAST_MAX_BYTES" ]; then
    lf_fail "$1: a kernel connection carried $LF_SS_MAX payload bytes (fast connections carry none)"
  fi
}

# lf_check_plain_sampled WHAT MIN: the same sampler on the plain run must see the bytes there
# (shows that the method would notice kernel traffic).
lf_check_plain_sampled() {
  if [ "$LF_SS_MAX" -lt "$2" ]; then
    lf_fail "$1: plain run: the sampler saw only $LF_SS_MAX kernel bytes (expected at least $2): the kernel-counter check cannot be trusted"
  fi
}

# lf_count PATTERN FILE...: how many lines match (0 when no file exists).
lf_count() {
  local pattern=$1
  shift
  cat "$@" 2>/dev/null | grep -c -- "$pattern"
}

# lf_check_log SERVER_LABEL CLIENT_LABEL... MIN: loopfast's debug logs show at least MIN fast
# connections on each side (the server's log; the clients' logs together) and no fallback to
# kernel TCP. Sets LF_FAST_CONNS (the connecting side's count).
lf_check_log() {
  local server=$1 min=${*: -1} accepted connected fallbacks others
  local clients=("${@:2:$#-2}") files=()
  local c
  for c in "${clients[@]}"; do files+=("$LF_TMP/$c.lflog"); done
  accepted=$(lf_count "fast path established (accepting side)" "$LF_TMP/$server.lflog")
  connected=$(lf_count "fast path established (connecting side)" "${files[@]}")
  # Before sessions, a client that closed a connection before the server program accepted it
  # ended the rendezvous on both sides ("closed before the listening program accepted" / "the
  # connecting side gave up"; wrk does, to see that the address answers). Sessions place such
  # connections too, so these lines no longer come; LF_ALLOWED_LOST still tolerates that many
  # per side. Any other fallback fails the test.
  local lost_server lost_clients allowed
  local gave_up="kernel TCP: (closed before the listening program accepted|the connecting side gave up)"
  connected=$(lf_count "fast path established (connecting side)" "${files[@]}")
  allowed=${LF_ALLOWED_LOST:-0}
  lost_server=$(cat "$LF_TMP/$server.lflog" 2>/dev/null | grep -c -E -- "$gave_up")
  lost_clients=$(cat "${files[@]}" 2>/dev/null | grep -c -E -- "$gave_up")
  if [ "$lost_server" -le "$allowed" ] && [ "$lost_clients" -le "$allowed" ]; then
    [ "$lost_server$lost_clients" = 00 ] ||
      lf_log "note: $lost_clients connecting / $lost_server accepting closed before accept (allowed: $allowed each)"
    lost_server=ignore
  fi
  # LF_ALLOWED_FALLBACK: an extended regular expression of fallback lines a test expects (a
  # program that connects to a port nothing listens on, for one).
  local expected
  expected=$(cat "$LF_TMP/$server.lflog" "${files[@]}" 2>/dev/null |
    grep -E "kernel TCP|rejected|stays on kernel" | grep -c -E -- "${LF_ALLOWED_FALLBACK:-^$}")
  [ "$expected" = 0 ] || lf_log "note: $expected expected fallback line(s) (${LF_ALLOWED_FALLBACK:-})"
  fallbacks=$(cat "$LF_TMP/$server.lflog" "${files[@]}" 2>/dev/null |
    grep -E "kernel TCP|rejected|stays on kernel" |
    grep -v -E -- "${LF_ALLOWED_FALLBACK:-^$}" |
    { if [ "$lost_server" = ignore ]; then grep -v -E -- "$gave_up"; else cat; fi; } |
    sed 's/loopfast\[[0-9]*\]: //' | sort | uniq -c | head -n 5)
  LF_FAST_CONNS=$connected
  if [ "$connected" -lt "$min" ] || [ "$accepted" -lt "$min" ]; then
    lf_fail "loopfast log: $connected connecting / $accepted accepting 'fast path established' lines, expected at least $min each (${clients[*]})"
  fi
  if [ -n "$fallbacks" ]; then
    lf_fail "loopfast log shows kernel TCP fallbacks: $(echo "$fallbacks" | tr '\n' ';')"
  fi
  others=$(cat "$LF_TMP/$server.lflog" "${files[@]}" 2>/dev/null |
    grep -v -E "fast path established|listener on port [0-9]+ opted in|own descriptor, kept|kernel TCP|rejected|^loopfast\[[0-9]+\]: loopfast [0-9.]+ loaded:" |
    sed 's/loopfast\[[0-9]*\]: //' | sort | uniq -c | head -n 5)
  [ -z "$others" ] || lf_log "note: other loopfast log lines: $(echo "$others" | tr '\n' ';')"
}

lf_fail() {
  LF_FAILS+=("$*")
  echo "$LF_NAME: FAIL: $*" >&2
}

# lf_ratio A B: A/B with two decimals ("n/a" when either is missing or B is 0).
lf_ratio() {
  awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
    if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

lf_seconds_since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", t1 - t0 }'; }
lf_ms_since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.0f\n", (t1 - t0) * 1000 }'; }

# lf_result KEY=VALUE...: one line in BUILD/programs-results.txt.
lf_result() {
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) program=$LF_NAME $* load1=${LF_LOAD1:-?}" >>"$LF_RESULTS"
}

# lf_finish SUMMARY KEY=VALUE...: prints the summary line, records the result, exits.
lf_finish() {
  local summary=$1 seconds
  shift
  seconds=$(lf_seconds_since "$LF_T0")
  if ((${#LF_FAILS[@]})); then
    echo "$LF_NAME: FAIL (${#LF_FAILS[@]} problem(s), ${seconds}s): ${LF_FAILS[0]}"
    echo "$LF_NAME: partial results: $summary"
    lf_result status=fail seconds="$seconds" "$@" first_failure="\"${LF_FAILS[0]//\"/\'}\""
    exit 1
  fi
  echo "$summary (${seconds}s)"
  lf_result status=pass seconds="$seconds" "$@"
  exit 0
}
