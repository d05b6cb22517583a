#!/usr/bin/env bash
# Builds the libFuzzer target fuzz/peer_input_fuzzer.cc with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer on) and runs it over fuzz/corpus/, which it grows.
#   scripts/fuzz.sh --runs N       a fixed number of inputs (the test suite's short form)
#   scripts/fuzz.sh --seconds S    for S seconds (the long form: docs/reliability.md)
# Exits 77 when clang or its fuzzer runtime is missing (the suite then reports it skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-runs=100000)
case "${1:-}" in
  --runs) limit=(-runs="$2") ;;
  --seconds) limit=(-max_total_time="$2") ;;
  "") ;;
  *) echo "usage: scripts/fuzz.sh [--runs N | --seconds S]" >&2; exit 2 ;;
esac
compiler=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$compiler" ]; then
  echo "fuzz: clang++ not installed (scripts/install-deps.sh installs it); skipped"
  exit 77
fi
out=${FUZZ_BUILD_DIR:-build/fuzz}
mkdir -p "$out"
sources=(fuzz/peer_input_fuzzer.cc src/ring/ring.cc src/session/arena_layout.cc
  src/session/messages.cc src/session/markers.cc src/session/region_allocator.cc
  src/session/session.cc src/fast/fast_connection.cc src/fast/fast_connection_outside.cc
  src/wait/sleep.cc src/wait/bell.cc src/wait/spin_policy.cc src/sys/signal_handlers.cc
  src/wait/shared_lock.cc src/sys/family_memory.cc src/stat/registry.cc src/config/policy.cc
  src/config/config.cc src/sys/real_calls.cc src/sys/owned_fds.cc src/stat/registry_reader.cc
  src/base/escape.cc src/base/output_file.cc src/capture/capture.cc)
binary="$out/peer_input_fuzzer"
newest=$(ls -t "${sources[@]}" src/*/*.h | head -1)
if [ ! -x "$binary" ] || [ "$newest" -nt "$binary" ]; then
  if ! "$compiler" -std=c++20 -O1 -g -Isrc -Iinclude \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -DLOOPFAST_VERSION_STRING='"fuzz"' "${sources[@]}" -o "$binary" -ldl -lpthread; then
    # Skipped only when clang cannot build any fuzzer here (its runtime is missing); a build
    # that fails on loopfast's own sources is a failure, never a skip.
    probe="$out/probe.cc"
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }\n' >"$probe"
    if "$compiler" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" 2>/dev/null; then
      echo "fuzz: the fuzzer does not build (see above)"
      exit 1
    fi
    echo "fuzz: cannot build with $compiler (libclang-rt-14-dev missing?); skipped"
    exit 77
  fi
fi
# New inputs go to a scratch directory; the kept corpus is only read.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lf-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
"$binary" "${limit[@]}" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
  -artifact_prefix="$out/" "$scratch" fuzz/corpus
