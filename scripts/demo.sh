#!/usr/bin/env bash
# The main job: install what is missing, build, then show the fast path beside kernel TCP —
# request/response latency and streaming throughput, measured in one run each. Builds only the
# library and the tool (scripts/test.sh builds the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh loopfast_tool
echo
build/loopfast bench rr --count 20000 --rounds 3
echo
build/loopfast bench stream --bytes 512M --rounds 3
