#!/usr/bin/env bash
# The static analyser (docs/testing.md): clang-tidy with the checks of
# .clang-tidy (clang's analyser: null dereferences, uninitialised values,
# leaks, unsafe string calls ...) over every C file of lib/ brokers/
# adapters/ services/. Any finding fails: exit 1, the findings printed.
#
#   scripts/analyze.sh [BUILD_DIR]   (default build; configured here with
#                                     compile_commands.json)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
command -v run-clang-tidy >/dev/null || { echo "analyze.sh: clang-tidy is needed (apt-get install clang-tidy)" >&2; exit 2; }
cmake -S . -B "$BUILD" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$BUILD" --target schakel_proto -j"$(nproc)" >/dev/null # the generated headers
# GCC's -Wno-format-truncation is unknown to clang: not a finding
if ! run-clang-tidy -p "$BUILD" -quiet -j"$(nproc)" -extra-arg=-Wno-unknown-warning-option \
     "$PWD/(lib|brokers|adapters|services)/" > "$BUILD/analyze.log" 2>&1; then
  grep -E "(error|warning):" "$BUILD/analyze.log" | sort -u || cat "$BUILD/analyze.log"
  echo "analyze.sh: the static analyser found the above (.clang-tidy)" >&2
  exit 1
fi
echo "analyze.sh: no findings in lib/ brokers/ adapters/ services/"
