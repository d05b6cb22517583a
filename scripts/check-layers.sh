#!/usr/bin/env bash
# Arrows point down only (docs/design.md, "Layers"): reads every `#include "dir/..."` line of
# src/**/*.{h,cc} and fails, listing them, on an include of a directory in a higher layer than
# the including file's own. Unit tests (*_test.cc, test_*.h) may set up their subject with
# anything and are not checked. Directories not in the list (loopfast/: the public headers,
# gtest/) are not layers and are not checked either.
#
# Usage: scripts/check-layers.sh [source root]   (default: the repository this script is in)
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"

# The layers, lowest first: the one place their order is written down. A file may include its
# own layer's headers and those of any layer before it.
LAYERS=(base ring sys config stat capture wait session fast socket capi interpose)

declare -A rank
for i in "${!LAYERS[@]}"; do rank[${LAYERS[$i]}]=$i; done

bad=0
while IFS= read -r -d '' file; do
  relative="${file#"$root"/src/}"
  layer="${relative%%/*}"
  [[ -n "${rank[$layer]+set}" ]] || { echo "check-layers: src/$layer is in no layer" >&2; bad=1; continue; }
  case "$(basename "$file")" in *_test.cc | test_*.h) continue ;; esac
  while IFS=: read -r line target; do
    [[ -n "${rank[$target]+set}" ]] || continue
    if (( rank[$target] > rank[$layer] )); then
      echo "src/$relative:$line: $layer includes $target/ (a higher layer)"
      bad=1
    fi
  done < <(awk '/^[ \t]*#[ \t]*include[ \t]*"[a-z_]+\// {
                 sub(/^[^"]*"/, ""); sub(/\/.*/, ""); print FNR ":" $0 }' "$file")
done < <(find "$root/src" \( -name '*.h' -o -name '*.cc' \) -print0 | sort -z)

# Inside src/socket, the verbs (socket_ops.h, *_ops.cc) stand on these pieces, which therefore
# never include socket_ops.h (readiness only looks; its callers move a connect along).
SOCKET_BELOW_OPS=(address change_watch descriptor_map fd_table option_table readiness ready_queue
                  socket socket_stat)
for piece in "${SOCKET_BELOW_OPS[@]}"; do
  for file in "$root/src/socket/$piece".h "$root/src/socket/$piece".cc; do
    [[ -f "$file" ]] || continue
    while IFS=: read -r line _; do
      echo "src/socket/${file##*/}:$line: $piece includes socket/socket_ops.h (the verbs above it)"
      bad=1
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"socket/socket_ops.h"' "$file")
  done
done

if (( bad )); then
  echo "check-layers: arrows must point down (order: ${LAYERS[*]})" >&2
  exit 1
fi
echo "check-layers: every include points down (order: ${LAYERS[*]})"
