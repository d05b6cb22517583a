#!/usr/bin/env bash
# redis-server with redis-cli and redis-benchmark (Debian's redis-server, redis-tools): both
# ends under `loopfast run`, then both plain. Checks a 10 MiB random value byte-exact through
# SET and GET, that every connection went fast (loopfast's log, and the kernel's counters
# sampled while a GET that has received all 10 MiB still holds its connection, and during the
# benchmark), and records redis-benchmark's requests per second against plain kernel TCP.
# usage: redis.sh BUILD_DIR
source "$(dirname "$0")/lib.sh"
lf_init redis "${1:-}"
lf_require redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools

value_bytes=$((10 * 1024 * 1024))
bench_n=${LF_REDIS_BENCH_N:-100000}
head -c "$value_bytes" /dev/urandom >"$LF_TMP/value.bin"
# redis-cli --raw prints the value and a newline.
want=$({ cat "$LF_TMP/value.bin"; printf '\n'; } | sha256sum | cut -d' ' -f1)
version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')

declare -A set_rps get_rps get_ms kernel_max kernel_bench
run_mode() {
  local mode=$1 port pid
  port=$(lf_free_port) || return
  lf_spawn "$mode" "srv-$mode" redis-server --port "$port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --dir "$LF_TMP" --dbfilename "dump-$mode.rdb"
  pid=$LF_LAST_PID
  lf_wait_port "$port" "$pid" && mode_steps "$mode" "$port"
  lf_stop_group "$pid"
}

# The steps against a running server; the first client that fails ends them (the rest would
# wait on the same fault).
mode_steps() {
  local mode=$1 port=$2 got
  # SET: the value from stdin (-x), 10 MiB client → server.
  lf_client 10 "$mode" "set-$mode" redis-cli -h 127.0.0.1 -p "$port" -x SET lf:value \
    <"$LF_TMP/value.bin" || return
  [ "$(cat "$LF_TMP/set-$mode.out")" = OK ] ||
    lf_fail "$mode: SET answered '$(head -c 200 "$LF_TMP/set-$mode.out")'"

  # GET, timed: 10 MiB server → client.
  local t0
  t0=$(date +%s.%N)
  lf_client 10 "$mode" "get-$mode" redis-cli -h 127.0.0.1 -p "$port" --raw GET lf:value || return
  get_ms[$mode]=$(lf_ms_since "$t0")
  got=$(sha256sum <"$LF_TMP/get-$mode.out" | cut -d' ' -f1)
  [ "$got" = "$want" ] || lf_fail "$mode: GET returned $(stat -c %s "$LF_TMP/get-$mode.out") bytes that differ from the value SET ($got != $want)"

  # GET again, held: redis-cli has read the whole reply before it prints it, and its stdout
  # (a pipe nobody reads for 0.5 s) keeps it, and its connection, waiting; meanwhile the
  # sampler reads the kernel's counters of that connection.
  lf_sampler_start "$port" "held-$mode"
  lf_prefix "$mode" "held-$mode"
  timeout -k 3 10 "${LF_PFX[@]}" redis-cli -h 127.0.0.1 -p "$port" --raw GET lf:value \
    2>"$LF_TMP/held-$mode.err" |
    {
      dd of="$LF_TMP/held1-$mode" bs=1M count=9 iflag=fullblock status=none
      sleep 0.5
      cat >"$LF_TMP/held2-$mode"
    }
  local rc=${PIPESTATUS[0]}
  lf_sampler_stop "held-$mode"
  kernel_max[$mode]=$LF_SS_MAX
  if [ "$rc" -ne 0 ]; then
    lf_fail "$mode: held GET: redis-cli exited with status $rc"
    return
  else
    got=$(cat "$LF_TMP/held1-$mode" "$LF_TMP/held2-$mode" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || lf_fail "$mode: held GET returned different bytes"
    if [ "$mode" = fast ]; then
      lf_check_fast_sampled "fast GET of 10 MiB"
    else
      lf_check_plain_sampled "GET of 10 MiB" $((1024 * 1024))
    fi
  fi

  # redis-benchmark: 50 connections per test, SET then GET; sparse samples (ss costs CPU).
  lf_sampler_start "$port" "bench-$mode" 0.1
  if lf_client 30 "$mode" "bench-$mode" redis-benchmark -h 127.0.0.1 -p "$port" -c 50 \
    -n "$bench_n" -q -t set,get; then
    local out
    out=$(tr '\r' '\n' <"$LF_TMP/bench-$mode.out")
    set_rps[$mode]=$(echo "$out" | sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
    get_rps[$mode]=$(echo "$out" | sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
    [ -n "${set_rps[$mode]}" ] && [ -n "${get_rps[$mode]}" ] ||
      lf_fail "$mode: cannot read redis-benchmark's SET/GET rates: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
  fi
  lf_sampler_stop "bench-$mode"
  kernel_bench[$mode]=$LF_SS_MAX
  if [ "$mode" = fast ]; then
    if [ "$LF_SS_SOCKETS" -eq 0 ]; then
      lf_log "note: no sample fell inside the fast benchmark (the held GET above is the kernel-counter proof)"
    else
      lf_check_fast_sampled "fast redis-benchmark"
    fi
  fi

  # The server's own count of the bytes it moved.
  if lf_client 10 "$mode" "info-$mode" redis-cli -h 127.0.0.1 -p "$port" INFO stats; then
    local in out_b
    in=$(tr -d '\r' <"$LF_TMP/info-$mode.out" | sed -n 's/^total_net_input_bytes://p')
    out_b=$(tr -d '\r' <"$LF_TMP/info-$mode.out" | sed -n 's/^total_net_output_bytes://p')
    lf_log "$mode: redis-server moved ${in:-?} bytes in, ${out_b:-?} bytes out; kernel counters: max ${kernel_max[$mode]} bytes (GET), ${kernel_bench[$mode]} (benchmark)"
  fi
}

run_mode fast
lf_check_log srv-fast set-fast get-fast held-fast bench-fast info-fast $((4 + 2 * 50))
run_mode plain

set_ratio=$(lf_ratio "${set_rps[fast]:-}" "${set_rps[plain]:-}")
get_ratio=$(lf_ratio "${get_rps[fast]:-}" "${get_rps[plain]:-}")
get10_ratio=$(lf_ratio "${get_ms[plain]:-}" "${get_ms[fast]:-}")
lf_finish "redis $version: SET/GET 10 MiB byte-exact fast (kernel carried ${kernel_max[fast]:-?} B vs ${kernel_max[plain]:-?} B plain); redis-benchmark SET fast ${set_rps[fast]:-?} rps vs plain ${set_rps[plain]:-?} rps (${set_ratio}x), GET fast ${get_rps[fast]:-?} vs ${get_rps[plain]:-?} rps (${get_ratio}x); redis-cli GET 10 MiB ${get_ms[fast]:-?} ms vs ${get_ms[plain]:-?} ms (process start included); ${LF_FAST_CONNS:-0} connections fast" \
  version="$version" fast_conns="${LF_FAST_CONNS:-0}" \
  set_fast_rps="${set_rps[fast]:-}" set_plain_rps="${set_rps[plain]:-}" set_ratio="$set_ratio" \
  get_fast_rps="${get_rps[fast]:-}" get_plain_rps="${get_rps[plain]:-}" get_ratio="$get_ratio" \
  get10mib_fast_ms="${get_ms[fast]:-}" get10mib_plain_ms="${get_ms[plain]:-}" get10mib_ratio="$get10_ratio" \
  kernel_bytes_fast="${kernel_max[fast]:-}" kernel_bytes_bench_fast="${kernel_bench[fast]:-}" \
  kernel_bytes_plain="${kernel_max[plain]:-}"
