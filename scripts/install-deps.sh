#!/usr/bin/env bash
# Installs what loopfast needs on Debian 12, and nothing that is already there.
#   scripts/install-deps.sh               build and test (what demo.sh and test.sh need)
#   scripts/install-deps.sh --packaging   build the Debian packages (scripts/package.sh):
#                                         the compiler and debhelper, lintian; no test libraries
#   scripts/install-deps.sh --with-packaging   both (test.sh: the suite builds the packages too)
# LOOPFAST_PROGRAM_TESTS=0 leaves out the real programs tests/programs/ runs (redis, nginx, ...).
set -euo pipefail
build_packages=(g++ cmake make pkg-config)
test_packages=(libgtest-dev libgmock-dev libbenchmark-dev iproute2 clang libclang-rt-14-dev
  tcpdump python3 groff-base)
# The real-program tests (tests/programs/): servers and clients from Debian, run under loopfast;
# tcl and patch for Redis's own test suite (fetched from Debian's source package at test time),
# python3's own test suite for its asyncio tests.
program_packages=(redis-server redis-tools nginx-light wrk sockperf iperf3 curl tcl patch python3
  libpython3.11-testsuite)
# scripts/package.sh: dpkg-buildpackage (build-essential is its implicit build dependency),
# debhelper, lintian; man-db and groff to read and check the pages.
packaging_packages=(build-essential dpkg-dev debhelper lintian man-db groff-base)
case "${1:-}" in
  "") packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  --packaging) packages=("${build_packages[@]}" "${packaging_packages[@]}") ;;
  --with-packaging)
    packages=("${build_packages[@]}" "${test_packages[@]}" "${packaging_packages[@]}")
    ;;
  *)
    echo "usage: scripts/install-deps.sh [--packaging | --with-packaging]" >&2
    exit 2
    ;;
esac
if [ "${1:-}" != --packaging ] && [ "${LOOPFAST_PROGRAM_TESTS:-1}" != 0 ]; then
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
