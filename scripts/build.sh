#!/usr/bin/env bash
# Configures and builds loopfast in ./build (RelWithDebInfo).
#   scripts/build.sh              everything: the library, the tool, tests and benchmarks
#   scripts/build.sh TARGET...    only these targets and what they need (demo.sh: the tool)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if (($#)); then
  cmake --build build -j "$(nproc)" --target "$@"
else
  cmake --build build -j "$(nproc)"
fi
