#!/usr/bin/env bash
# sockperf (Debian's sockperf) over TCP: server `sockperf sr --tcp`, clients `sockperf pp --tcp`
# (ping-pong latency) and `sockperf tp --tcp` (throughput), 2 s each, both ends under
# `loopfast run`, then both plain. Checks that both complete, that the latency and rate figures
# parse, that ping-pong saw no dropped, duplicated or out-of-order message (sockperf numbers its
# messages), that the connections went fast (loopfast's log; the kernel's counters sampled
# during each run), and records latency and message rate against plain kernel TCP.
# usage: sockperf.sh BUILD_DIR
source "$(dirname "$0")/lib.sh"
lf_init sockperf "${1:-}"
lf_require sockperf:sockperf

version=$(sockperf --version 2>&1 | sed -n 's/.*version #\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n 1)
declare -A lat_avg lat_p50 lat_p99 pp_msgs tp_rate tp_mbps kernel_pp kernel_tp
run_mode() {
  local mode=$1 port pid
  port=$(lf_free_port) || return
  lf_spawn "$mode" "srv-$mode" sockperf sr --tcp -i 127.0.0.1 -p "$port"
  pid=$LF_LAST_PID
  lf_wait_port "$port" "$pid" && mode_steps "$mode" "$port"
  lf_stop_group "$pid"
}

mode_steps() {
  local mode=$1 port=$2 out counts

  # Ping-pong: one message in flight; sockperf reports half the round trip. Its table of send
  # times is sized for the rate --mps names, 600,000 round trips a second when none is given
  # ("max"), which the fast path exceeds: "ERROR: _seqN > m_maxSequenceNo". 3,000,000 sizes it
  # for 0.33 us round trips (about 150 MB of memory); sockperf reaches about 2,000,000 here.
  lf_sampler_start "$port" "pp-$mode" 0.25
  lf_client 20 "$mode" "pp-$mode" sockperf pp --tcp -i 127.0.0.1 -p "$port" -t 2 --mps 3000000
  local rc=$?
  lf_sampler_stop "pp-$mode"
  kernel_pp[$mode]=$LF_SS_MAX
  ((rc == 0)) || return
  out=$(sed 's/\x1b\[[0-9;]*m//g' "$LF_TMP/pp-$mode.out" "$LF_TMP/pp-$mode.err")
  lat_avg[$mode]=$(echo "$out" | sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' | head -n 1)
  lat_p50[$mode]=$(echo "$out" | sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' | head -n 1)
  lat_p99[$mode]=$(echo "$out" | sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' | head -n 1)
  pp_msgs[$mode]=$(echo "$out" | sed -n 's/.*\[Valid Duration\].*ReceivedMessages=\([0-9]*\).*/\1/p' | head -n 1)
  counts=$(echo "$out" | sed -n 's/.*# dropped messages = \([0-9]*\); # duplicated messages = \([0-9]*\); # out-of-order messages = \([0-9]*\).*/\1 \2 \3/p' | head -n 1)
  if [ -z "${lat_avg[$mode]}" ] || [ -z "${lat_p50[$mode]}" ] || [ -z "${lat_p99[$mode]}" ] ||
    [ -z "${pp_msgs[$mode]}" ]; then
    lf_fail "$mode: cannot read sockperf pp's latency figures: $(echo "$out" | tail -n 4 | tr '\n' ' ')"
  fi
  [ "$counts" = "0 0 0" ] || lf_fail "$mode: sockperf pp: dropped/duplicated/out-of-order messages: '${counts:-not reported}'"
  if [ "$mode" = fast ]; then
    lf_check_fast_sampled "fast sockperf pp"
  else
    lf_check_plain_sampled "sockperf pp" 65536
  fi

  # Throughput: a one-way stream of messages.
  lf_sampler_start "$port" "tp-$mode" 0.25
  lf_client 20 "$mode" "tp-$mode" sockperf tp --tcp -i 127.0.0.1 -p "$port" -t 2
  rc=$?
  lf_sampler_stop "tp-$mode"
  kernel_tp[$mode]=$LF_SS_MAX
  ((rc == 0)) || return
  out=$(sed 's/\x1b\[[0-9;]*m//g' "$LF_TMP/tp-$mode.out" "$LF_TMP/tp-$mode.err")
  tp_rate[$mode]=$(echo "$out" | sed -n 's/.*Summary: Message Rate is \([0-9]*\) \[msg\/sec\].*/\1/p' | head -n 1)
  tp_mbps[$mode]=$(echo "$out" | sed -n 's/.*Summary: BandWidth is \([0-9.]*\) MBps.*/\1/p' | head -n 1)
  [ -n "${tp_rate[$mode]}" ] && [ -n "${tp_mbps[$mode]}" ] ||
    lf_fail "$mode: cannot read sockperf tp's rate: $(echo "$out" | tail -n 4 | tr '\n' ' ')"
  if [ "$mode" = fast ]; then
    lf_check_fast_sampled "fast sockperf tp"
  else
    lf_check_plain_sampled "sockperf tp" 65536
  fi
}

run_mode fast
lf_check_log srv-fast pp-fast tp-fast 2
run_mode plain

lat_ratio=$(lf_ratio "${lat_avg[plain]:-}" "${lat_avg[fast]:-}")
tp_ratio=$(lf_ratio "${tp_rate[fast]:-}" "${tp_rate[plain]:-}")
lf_finish "sockperf $version: ping-pong fast avg ${lat_avg[fast]:-?} us (p50 ${lat_p50[fast]:-?}, p99 ${lat_p99[fast]:-?}) vs plain ${lat_avg[plain]:-?} us (p50 ${lat_p50[plain]:-?}, p99 ${lat_p99[plain]:-?}) (${lat_ratio}x lower), no message lost; throughput (14-byte messages) fast ${tp_rate[fast]:-?} msg/s vs plain ${tp_rate[plain]:-?} msg/s (${tp_ratio}x); kernel carried ${kernel_pp[fast]:-?}/${kernel_tp[fast]:-?} B vs ${kernel_pp[plain]:-?}/${kernel_tp[plain]:-?} B plain; ${LF_FAST_CONNS:-0} connections fast" \
  version="$version" fast_conns="${LF_FAST_CONNS:-0}" \
  pp_fast_avg_us="${lat_avg[fast]:-}" pp_plain_avg_us="${lat_avg[plain]:-}" pp_latency_ratio="$lat_ratio" \
  pp_fast_p50_us="${lat_p50[fast]:-}" pp_plain_p50_us="${lat_p50[plain]:-}" \
  pp_fast_p99_us="${lat_p99[fast]:-}" pp_plain_p99_us="${lat_p99[plain]:-}" \
  tp_fast_msgps="${tp_rate[fast]:-}" tp_plain_msgps="${tp_rate[plain]:-}" tp_ratio="$tp_ratio" \
  tp_fast_MBps="${tp_mbps[fast]:-}" tp_plain_MBps="${tp_mbps[plain]:-}" \
  kernel_bytes_pp_fast="${kernel_pp[fast]:-}" kernel_bytes_tp_fast="${kernel_tp[fast]:-}" \
  kernel_bytes_pp_plain="${kernel_pp[plain]:-}" kernel_bytes_tp_plain="${kernel_tp[plain]:-}"
