#!/usr/bin/env bash
# Builds schakel and runs a whole bus (broker and services) on LMDB under
# ./var/node. First run generates keys and a directory there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec ./build/schakel node --data "${SCHAKEL_DATA:-var/node}" "$@"
