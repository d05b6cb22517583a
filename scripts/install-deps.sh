#!/usr/bin/env bash
# Installs what loopfast needs to build and test on Debian 12, and nothing that is already there.
# LOOPFAST_PROGRAM_TESTS=0 leaves out the real programs tests/programs/ runs (redis, nginx, ...).
set -euo pipefail
packages=(g++ cmake make libgtest-dev libgmock-dev libbenchmark-dev iproute2 pkg-config
  clang libclang-rt-14-dev tcpdump)
# The real-program tests (tests/programs/): servers and clients from Debian, run under loopfast;
# tcl and patch for Redis's own test suite (fetched from Debian's source package at test time),
# python3's own test suite for its asyncio tests.
program_packages=(redis-server redis-tools nginx-light wrk sockperf iperf3 curl tcl patch python3
  libpython3.11-testsuite)
if [ "${LOOPFAST_PROGRAM_TESTS:-1}" != 0 ]; then
  packages+=("${program_packages[@]}")
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "loopfast: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the services it just installed (redis on 6379, nginx on 80). The tests start
  # their own on free ports and need neither; stop the ones installed here, leave the rest alone.
  for p in "${missing[@]}"; do
    case "$p" in
      redis-server) service=redis-server ;;
      nginx-light | nginx) service=nginx ;;
      *) continue ;;
    esac
    if command -v service >/dev/null 2>&1; then
      "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
    fi
  done
fi
