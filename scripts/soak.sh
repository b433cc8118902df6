#!/bin/bash
# A long soak of the demo region (docs/demo.md, "Soak mode"), not run in CI:
# by default 10 minutes at 1,000 input rows a second with 62 schools, then
# every check. Builds first; the data goes to a fresh temp directory.
# Usage: bash scripts/soak.sh [DURATION_SECONDS] [RATE] [SCHOOLS] [extra schakel demo flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
rate=${2:-1000}
schools=${3:-62}
shift $(($# < 3 ? $# : 3))
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j"$(nproc)" --target schakel > /dev/null
data=$(mktemp -d /tmp/schakel-soak-XXXXXX)
echo "soak: data in $data"
build/schakel demo --data "$data/demo" --schools "$schools" --rate "$rate" --duration "$duration" \
    --speed 20000 --soak "$@"
