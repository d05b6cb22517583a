#!/usr/bin/env bash
# CPython's own asyncio TLS tests (test.test_asyncio.test_sslproto, Debian 12's python3 3.11.2
# and its libpython3.11-testsuite) under `loopfast run`, LF_ASYNCIO_RUNS times (default 20), and
# plainly a few times as the baseline; every run must pass. The module's start_tls tests write
# 100 KiB right after connecting, before the server thread accepts: a partial write there (the
# fast path used to take 16 KiB, later 64 KiB, before the listener accepted) paused the protocol, and
# 3.11.2 then failed "assert self._ssl_writing_paused" when TLS started (issue 16; kernel TCP
# takes it all). Every connection must be fast (loopfast's log). Runs LF_ASYNCIO_PARALLEL at a
# time (default 4): each run mostly sleeps.
# usage: python_asyncio.sh BUILD_DIR
source "$(dirname "$0")/lib.sh"
lf_init python-asyncio "${1:-}"
python=${LF_PYTHON:-/usr/bin/python3}
lf_require "$python:python3"
if ! "$python" -c 'import test.test_asyncio.test_sslproto' 2>/dev/null; then
  echo "$LF_NAME: SKIP: $python has no test.test_asyncio (Debian package libpython3.11-testsuite; scripts/install-deps.sh installs it unless LOOPFAST_PROGRAM_TESTS=0)"
  lf_result status=skip reason=testsuite-missing
  exit 77
fi
version=$("$python" -c 'import platform; print(platform.python_version())')
runs=${LF_ASYNCIO_RUNS:-20}
plain_runs=${LF_ASYNCIO_PLAIN_RUNS:-4}
parallel=${LF_ASYNCIO_PARALLEL:-4}

# one_run MODE N: one run of the module; its output in $LF_TMP/MODE-N.out, status in .rc.
one_run() {
  local mode=$1 n=$2
  lf_prefix "$mode" "$mode-$n"
  timeout -k 5 120 "${LF_PFX[@]}" "$python" -m test test_asyncio.test_sslproto \
    >"$LF_TMP/$mode-$n.out" 2>&1
  echo $? >"$LF_TMP/$mode-$n.rc"
}

# runs MODE COUNT: COUNT runs, `parallel` at a time; sets passed and failed_runs.
run_mode() {
  local mode=$1 count=$2 n pids=()
  for ((n = 1; n <= count; n++)); do
    one_run "$mode" "$n" &
    pids+=($!)
    if ((${#pids[@]} >= parallel)); then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  done
  wait
  passed=0
  failed_runs=()
  for ((n = 1; n <= count; n++)); do
    if [ "$(cat "$LF_TMP/$mode-$n.rc" 2>/dev/null)" = 0 ]; then
      passed=$((passed + 1))
    else
      failed_runs+=("$n")
    fi
  done
}

t0=$(date +%s.%N)
run_mode fast "$runs"
fast_passed=$passed
fast_seconds=$(lf_seconds_since "$t0")
if ((fast_passed < runs)); then
  first=${failed_runs[0]}
  why=$(grep -m 3 -E "Error|error|failed|FAIL" "$LF_TMP/fast-$first.out" | tr '\n' ' ')
  lf_fail "fast: $fast_passed of $runs runs passed (runs ${failed_runs[*]}); run $first: $why"
fi
# Every run's connections went fast: the module makes 9 (6 start_tls tests and 3 others), and
# none fell back to kernel TCP.
logs=("$LF_TMP"/fast-*.lflog)
connected=$(lf_count "fast path established (connecting side)" "${logs[@]}")
accepted=$(lf_count "fast path established (accepting side)" "${logs[@]}")
((accepted >= 9 * runs && connected >= 9 * runs)) ||
  lf_fail "loopfast log: $connected connecting / $accepted accepting fast connections, expected at least $((9 * runs)) each"
fallbacks=$(cat "${logs[@]}" 2>/dev/null | grep -E "kernel TCP|rejected|stays on kernel" |
  sed 's/loopfast\[[0-9]*\]: //' | sort | uniq -c | head -n 5)
[ -z "$fallbacks" ] || lf_fail "loopfast log shows kernel TCP fallbacks: $(echo "$fallbacks" | tr '\n' ';')"

t0=$(date +%s.%N)
run_mode plain "$plain_runs"
plain_passed=$passed
plain_seconds=$(lf_seconds_since "$t0")
((plain_passed == plain_runs)) ||
  lf_fail "plain (no loopfast): $plain_passed of $plain_runs runs passed: the module fails without loopfast too"

lf_finish "python $version test_asyncio.test_sslproto: fast $fast_passed/$runs runs passed (${fast_seconds}s, $parallel at a time), plain $plain_passed/$plain_runs (${plain_seconds}s); $connected connections fast" \
  version="$version" runs="$runs" fast_passed="$fast_passed" plain_runs="$plain_runs" \
  plain_passed="$plain_passed" fast_seconds="$fast_seconds" plain_seconds="$plain_seconds" \
  fast_conns="$connected"
