#!/usr/bin/env bash
# nginx (Debian's nginx-light or nginx) serving static files to curl and wrk: both ends under
# `loopfast run`, then both plain. nginx runs in the foreground from a private configuration in
# a temporary directory (its own pid, log and temp paths), on 127.0.0.1 and a free port, with
# Debian's default of two workers here ("auto" on 2 CPUs). Checks a 20 MiB random file
# byte-exact (sha256) through curl, once with sendfile off and once with sendfile on (Debian's
# default configuration turns it on), that every connection went fast (loopfast's log; the
# kernel's counters sampled while curl, holding its connection after 19 MiB, waits on a full
# pipe, and during wrk), that nginx logged no alert, and records wrk's requests per second and
# curl's download speed against plain kernel TCP.
# usage: nginx.sh BUILD_DIR
source "$(dirname "$0")/lib.sh"
lf_init nginx "${1:-}"
lf_require nginx:nginx-light curl:curl wrk:wrk

file_bytes=$((20 * 1024 * 1024))
www=$LF_TMP/www
mkdir -p "$www"
head -c "$file_bytes" /dev/urandom >"$www/big.bin"
echo "hello from nginx under loopfast" >"$www/index.html"
want=$(sha256sum <"$www/big.bin" | cut -d' ' -f1)
version=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([^ ]*\).*|\1|p')
# As root, nginx's workers would run as "nobody", and a root client is then another user whose
# /proc entry the worker may not inspect: loopfast stays on kernel TCP (docs/design.md,
# "Identity"). Keep the workers as the user that runs the test.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root root;"

declare -A wrk_rps churn_rps curl_bps kernel_curl kernel_wrk
run_mode() {
  local mode=$1 port pid
  port=$(lf_free_port) || return
  mkdir -p "$LF_TMP/nginx-$mode/tmp"
  cat >"$LF_TMP/nginx-$mode/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
$user_line
pid $LF_TMP/nginx-$mode/nginx.pid;
error_log $LF_TMP/nginx-$mode/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  types { text/html html; application/octet-stream bin; }
  default_type application/octet-stream;
  client_body_temp_path $LF_TMP/nginx-$mode/tmp/body;
  proxy_temp_path $LF_TMP/nginx-$mode/tmp/proxy;
  fastcgi_temp_path $LF_TMP/nginx-$mode/tmp/fastcgi;
  uwsgi_temp_path $LF_TMP/nginx-$mode/tmp/uwsgi;
  scgi_temp_path $LF_TMP/nginx-$mode/tmp/scgi;
  sendfile off;
  server {
    listen 127.0.0.1:$port;
    root $www;
    location /sendfile/ { alias $www/; sendfile on; }
  }
}
EOF
  lf_spawn "$mode" "srv-$mode" nginx -p "$LF_TMP/nginx-$mode" -c "$LF_TMP/nginx-$mode/nginx.conf" \
    -e "$LF_TMP/nginx-$mode/error.log"
  pid=$LF_LAST_PID
  lf_wait_port "$port" "$pid" && mode_steps "$mode" "$port"
  lf_stop_group "$pid"
  local alerts
  alerts=$(grep -E '\[(alert|crit|emerg)\]' "$LF_TMP/nginx-$mode/error.log" 2>/dev/null |
    sed 's/^[0-9\/: ]*//' | sort | uniq -c | head -n 3)
  [ -z "$alerts" ] || lf_fail "$mode: nginx logged: $(echo "$alerts" | tr '\n' ';')"
}

# curl_check MODE LABEL PATH: downloads PATH, checks size and sha256; sets LF_CURL_BPS.
curl_check() {
  local mode=$1 label=$2 path=$3 got
  LF_CURL_BPS=""
  lf_client 10 "$mode" "$label" curl -sS -o "$LF_TMP/$label.bin" \
    -w '%{http_code} %{size_download} %{speed_download}\n' "http://127.0.0.1:$port$path" ||
    return 1
  read -r code size LF_CURL_BPS <"$LF_TMP/$label.out"
  got=$(sha256sum <"$LF_TMP/$label.bin" | cut -d' ' -f1)
  if [ "$code" != 200 ] || [ "$size" != "$file_bytes" ] || [ "$got" != "$want" ]; then
    lf_fail "$mode: $path: HTTP $code, $size bytes, sha256 ${got:0:16}… (want 200, $file_bytes bytes, ${want:0:16}…)"
    return 1
  fi
}

mode_steps() {
  local mode=$1 port=$2

  # curl, timed, sendfile off (nginx writes from its buffers).
  curl_check "$mode" "curl-$mode" /big.bin || return
  curl_bps[$mode]=$LF_CURL_BPS

  # curl again, held after 19 MiB: its stdout is a pipe nobody reads for 0.5 s, so curl, its
  # connection and nginx wait while the sampler reads the kernel's counters.
  lf_sampler_start "$port" "held-$mode"
  lf_prefix "$mode" "held-$mode"
  timeout -k 3 10 "${LF_PFX[@]}" curl -sS "http://127.0.0.1:$port/big.bin" 2>"$LF_TMP/held-$mode.err" |
    {
      dd of="$LF_TMP/held1-$mode" bs=1M count=19 iflag=fullblock status=none
      sleep 0.5
      cat >"$LF_TMP/held2-$mode"
    }
  local rc=${PIPESTATUS[0]}
  lf_sampler_stop "held-$mode"
  kernel_curl[$mode]=$LF_SS_MAX
  if [ "$rc" -ne 0 ]; then
    lf_fail "$mode: held curl exited with status $rc: $(head -c 300 "$LF_TMP/held-$mode.err")"
    return
  fi
  [ "$(cat "$LF_TMP/held1-$mode" "$LF_TMP/held2-$mode" | sha256sum | cut -d' ' -f1)" = "$want" ] ||
    lf_fail "$mode: held curl: different bytes"
  if [ "$mode" = fast ]; then
    lf_check_fast_sampled "fast curl download of 20 MiB"
  else
    lf_check_plain_sampled "curl download of 20 MiB" $((1024 * 1024))
  fi

  # wrk: 8 keep-alive connections for 2 s on a small page; sparse samples (ss costs CPU).
  lf_sampler_start "$port" "wrk-$mode" 0.25
  if lf_client 15 "$mode" "wrk-$mode" wrk -d 2s -c 8 -t 2 "http://127.0.0.1:$port/index.html"; then
    local out errors
    out=$(cat "$LF_TMP/wrk-$mode.out")
    wrk_rps[$mode]=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    errors=$(echo "$out" | grep -E "Socket errors|Non-2xx" | tr '\n' ' ')
    [ -n "${wrk_rps[$mode]}" ] || lf_fail "$mode: cannot read wrk's Requests/sec: $out"
    [ -z "$errors" ] || lf_fail "$mode: wrk reports $errors"
  fi
  lf_sampler_stop "wrk-$mode"
  kernel_wrk[$mode]=$LF_SS_MAX
  if [ "$mode" = fast ]; then
    lf_check_fast_sampled "fast wrk"
  else
    lf_check_plain_sampled "wrk" 4096
  fi

  # wrk again, one request per connection (Connection: close): nginx closes each connection
  # after its response, and a worker often accepts the next one in the same turn of its loop.
  if lf_client 15 "$mode" "churn-$mode" wrk -d 1s -c 8 -t 2 -H "Connection: close" \
    "http://127.0.0.1:$port/index.html"; then
    local out errors
    out=$(cat "$LF_TMP/churn-$mode.out")
    churn_rps[$mode]=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    errors=$(echo "$out" | grep -E "Socket errors|Non-2xx" | tr '\n' ' ')
    [ -n "${churn_rps[$mode]}" ] || lf_fail "$mode: cannot read wrk's Requests/sec (Connection: close): $out"
    [ -z "$errors" ] || lf_fail "$mode: wrk with Connection: close reports $errors"
  fi

  # curl with sendfile on (Debian's default configuration), byte-exact.
  curl_check "$mode" "sendfile-$mode" /sendfile/big.bin
}

run_mode fast
# wrk first connects once and closes at once (to see that the address answers): that
# connection's rendezvous does not complete, which each side may log once per wrk run.
LF_ALLOWED_LOST=2
lf_check_log srv-fast curl-fast held-fast wrk-fast churn-fast sendfile-fast 100
run_mode plain

wrk_ratio=$(lf_ratio "${wrk_rps[fast]:-}" "${wrk_rps[plain]:-}")
churn_ratio=$(lf_ratio "${churn_rps[fast]:-}" "${churn_rps[plain]:-}")
curl_ratio=$(lf_ratio "${curl_bps[fast]:-}" "${curl_bps[plain]:-}")
mbps() { awk -v b="${1:-}" 'BEGIN { if (b == "") print "?"; else printf "%.0f\n", b / 1048576 }'; }
lf_finish "nginx $version: 20 MiB byte-exact fast via curl, sendfile off and on (kernel carried ${kernel_curl[fast]:-?} B vs ${kernel_curl[plain]:-?} B plain); wrk keep-alive fast ${wrk_rps[fast]:-?} rps vs plain ${wrk_rps[plain]:-?} rps (${wrk_ratio}x), one request per connection fast ${churn_rps[fast]:-?} vs plain ${churn_rps[plain]:-?} rps (${churn_ratio}x); curl 20 MiB fast $(mbps "${curl_bps[fast]:-}") MiB/s vs plain $(mbps "${curl_bps[plain]:-}") MiB/s (${curl_ratio}x); ${LF_FAST_CONNS:-0} connections fast" \
  version="$version" fast_conns="${LF_FAST_CONNS:-0}" \
  wrk_fast_rps="${wrk_rps[fast]:-}" wrk_plain_rps="${wrk_rps[plain]:-}" wrk_ratio="$wrk_ratio" \
  churn_fast_rps="${churn_rps[fast]:-}" churn_plain_rps="${churn_rps[plain]:-}" churn_ratio="$churn_ratio" \
  curl_fast_Bps="${curl_bps[fast]:-}" curl_plain_Bps="${curl_bps[plain]:-}" curl_ratio="$curl_ratio" \
  kernel_bytes_curl_fast="${kernel_curl[fast]:-}" kernel_bytes_curl_plain="${kernel_curl[plain]:-}" \
  kernel_bytes_wrk_fast="${kernel_wrk[fast]:-}" kernel_bytes_wrk_plain="${kernel_wrk[plain]:-}"
