#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. ctest's last line says how many passed
# and failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-packaging
scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 -j 2 "$@"
