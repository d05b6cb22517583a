#!/usr/bin/env bash
# -DLOOPFAST_BUILD_TESTS=OFF -DLOOPFAST_BUILD_BENCH=OFF (what debian/rules passes) configures
# with GoogleTest and Google Benchmark forbidden (any lookup of them would fail), defines no
# test, sanitizer, fuzz or benchmark target and no ctest test, and still has the library, the
# tool and the install rules.
# usage: build_options_test.sh SOURCE_DIR
set -euo pipefail
source_dir=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/lf-options-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake -S "$source_dir" -B "$work" -DLOOPFAST_BUILD_TESTS=OFF -DLOOPFAST_BUILD_BENCH=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; echo "FAIL: configure"; exit 1; }
# Target names, without the per-file ones (foo.o, foo.i, foo.s).
targets=$(cmake --build "$work" --target help | sed -n 's/^\.\.\. \([^ ]*\).*/\1/p' |
  grep -v '\.[ois]$')
for wanted in loopfast loopfast_tool loopfast_core install; do
  grep -qx "$wanted" <<<"$targets" || { echo "FAIL: no target $wanted"; exit 1; }
done
unwanted=$(grep -E "test|asan|tsan|fuzz|bench|stream_peer" <<<"$targets" || true)
[ -z "$unwanted" ] || { echo "FAIL: targets with the options off: $unwanted"; exit 1; }
grep -q 'Total Tests: 0' <<<"$(cd "$work" && ctest -N)" || { echo "FAIL: ctest has tests"; exit 1; }
if grep -qiE '^(GTest|benchmark)_DIR:' "$work/CMakeCache.txt"; then
  echo "FAIL: GoogleTest or Google Benchmark was looked up"
  exit 1
fi
echo "LOOPFAST_BUILD_TESTS=OFF LOOPFAST_BUILD_BENCH=OFF: only $(tr '\n' ' ' <<<"$targets")"
