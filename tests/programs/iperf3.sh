#!/usr/bin/env bash
# iperf3 (Debian's iperf3): server `iperf3 -s -1` (one test, then it exits), client
# `iperf3 -c 127.0.0.1 -t 2`, forward and reverse (-R), both ends under `loopfast run`, then
# both plain. Checks that each test completes without an error, reads the throughput (JSON
# report), that both connections of each test (control and data) went fast (loopfast's log; the
# kernel's counters sampled during the run), and records throughput against plain kernel TCP.
# iperf3 does not check its payload; the byte counts of sender and receiver are recorded.
# usage: iperf3.sh BUILD_DIR
source "$(dirname "$0")/lib.sh"
lf_init iperf3 "${1:-}"
lf_require iperf3:iperf3

version=$(iperf3 --version 2>&1 | sed -n 's/^iperf \([0-9][0-9.]*\).*/\1/p' | head -n 1)
declare -A gbps sent received kernel

# json_end FILE SECTION KEY: the KEY of the end report's SECTION (sum_sent, sum_received).
json_end() {
  awk -v section="\"$2\"" -v key="\"$3\"" '
    index($0, "\"end\"") { in_end = 1 }
    in_end && index($0, section) { in_section = 1 }
    in_section && index($0, key) { gsub(/[^0-9.]/, "", $2); print $2; exit }
  ' "$1"
}

# run_test MODE DIRECTION (fwd: client sends; rev: -R, server sends)
run_test() {
  local mode=$1 dir=$2 port pid rc label=$1-$2
  local reverse=()
  [ "$dir" = rev ] && reverse=(-R)
  port=$(lf_free_port) || return
  lf_spawn "$mode" "srv-$mode" iperf3 -s -1 -B 127.0.0.1 -p "$port"
  pid=$LF_LAST_PID
  if lf_wait_port "$port" "$pid"; then
    lf_sampler_start "$port" "$label" 0.25
    lf_client 20 "$mode" "$label" iperf3 -c 127.0.0.1 -p "$port" -t 2 -J "${reverse[@]}"
    rc=$?
    lf_sampler_stop "$label"
    kernel[$label]=$LF_SS_MAX
    if ((rc == 0)); then
      local error
      error=$(sed -n 's/^[[:space:]]*"error":[[:space:]]*"\(.*\)".*/\1/p' "$LF_TMP/$label.out")
      [ -z "$error" ] || lf_fail "$label: iperf3 reports: $error"
      sent[$label]=$(json_end "$LF_TMP/$label.out" sum_sent bytes)
      received[$label]=$(json_end "$LF_TMP/$label.out" sum_received bytes)
      gbps[$label]=$(json_end "$LF_TMP/$label.out" sum_received bits_per_second |
        awk '{ if ($1 != "") printf "%.2f\n", $1 / 1e9 }')
      if [ -z "${gbps[$label]}" ] || [ -z "${received[$label]}" ] || [ "${received[$label]:-0}" = 0 ]; then
        lf_fail "$label: cannot read iperf3's throughput: $(tail -c 300 "$LF_TMP/$label.out" | tr '\n' ' ')"
      fi
      if [ "$mode" = fast ]; then
        lf_check_fast_sampled "fast iperf3 $dir"
      else
        lf_check_plain_sampled "iperf3 $dir" $((1024 * 1024))
      fi
    fi
  fi
  lf_stop_group "$pid"
}

run_test fast fwd
run_test fast rev
lf_check_log srv-fast fast-fwd fast-rev 4
run_test plain fwd
run_test plain rev

fwd_ratio=$(lf_ratio "${gbps[fast-fwd]:-}" "${gbps[plain-fwd]:-}")
rev_ratio=$(lf_ratio "${gbps[fast-rev]:-}" "${gbps[plain-rev]:-}")
gb() { awk -v b="${1:-}" 'BEGIN { if (b == "") print "?"; else printf "%.1f\n", b / 1e9 }'; }
lf_finish "iperf3 $version: forward fast ${gbps[fast-fwd]:-?} Gbit/s vs plain ${gbps[plain-fwd]:-?} Gbit/s (${fwd_ratio}x), reverse (-R) fast ${gbps[fast-rev]:-?} vs plain ${gbps[plain-rev]:-?} Gbit/s (${rev_ratio}x); fast moved $(gb "${received[fast-fwd]:-}")+$(gb "${received[fast-rev]:-}") GB while the kernel connections carried ${kernel[fast-fwd]:-?}/${kernel[fast-rev]:-?} B (plain: ${kernel[plain-fwd]:-?}/${kernel[plain-rev]:-?} B sampled); ${LF_FAST_CONNS:-0} connections fast" \
  version="$version" fast_conns="${LF_FAST_CONNS:-0}" \
  fwd_fast_gbps="${gbps[fast-fwd]:-}" fwd_plain_gbps="${gbps[plain-fwd]:-}" fwd_ratio="$fwd_ratio" \
  rev_fast_gbps="${gbps[fast-rev]:-}" rev_plain_gbps="${gbps[plain-rev]:-}" rev_ratio="$rev_ratio" \
  fwd_fast_sent="${sent[fast-fwd]:-}" fwd_fast_received="${received[fast-fwd]:-}" \
  rev_fast_sent="${sent[fast-rev]:-}" rev_fast_received="${received[fast-rev]:-}" \
  kernel_bytes_fast="${kernel[fast-fwd]:-}/${kernel[fast-rev]:-}" \
  kernel_bytes_plain="${kernel[plain-fwd]:-}/${kernel[plain-rev]:-}"
