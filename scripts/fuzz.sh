#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (docs/testing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   fuzz each target SECONDS (default
#       60) from its corpus tests/fuzz/corpus/<target>, then merge what was
#       new into that corpus (-merge=1), so the corpora grow in the
#       repository; commit them. Crashes land in build-fuzz/artifacts/.
#   scripts/fuzz.sh --ci [SECONDS]          what CI does: each target SECONDS
#       (default 20) on a copy of the corpus in a work dir; the repository
#       is left as it is. Exits non-zero on any crash, leak, hang (over 10 s
#       on one input) or sanitizer report.
#   scripts/fuzz.sh --seeds                 rewrite the seed-* files of every
#       corpus from the project's examples (tests/fuzz/seeds.c).
#
# Targets: envelope json_event wire directory rules profile rows_csv
# http_body. Builds with clang in build-fuzz (BUILD_DIR to change).
set -euo pipefail
cd "$(dirname "$0")/.."
ALL="envelope json_event wire directory rules profile rows_csv http_body"
BUILD=${BUILD_DIR:-build-fuzz}
mode=local
case "${1:-}" in
  --ci) mode=ci; shift ;;
  --seeds) mode=seeds; shift ;;
esac
secs=${1:-}
[ $# -gt 0 ] && shift
targets=${*:-$ALL}
if [ "$mode" = ci ]; then secs=${secs:-20}; else secs=${secs:-60}; fi
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not \"$secs\"" >&2; exit 2 ;; esac
for t in $targets; do
  case " $ALL " in *" $t "*) ;; *) echo "fuzz.sh: unknown target \"$t\"; one of: $ALL" >&2; exit 2 ;; esac
done

command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCHAKEL_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target fuzz_all -j"$(nproc)" >"$BUILD/fuzz-build.log" 2>&1 ||
  { cat "$BUILD/fuzz-build.log"; echo "fuzz.sh: the fuzz targets do not build (above)" >&2; exit 1; }

if [ "$mode" = seeds ]; then
  rm -f tests/fuzz/corpus/*/seed-*
  "$BUILD/tests/fuzz/fuzz_seeds" tests/fuzz/corpus
  exit 0
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
art="$BUILD/artifacts"
work="$BUILD/fuzz-work"
mkdir -p "$art" "$work"
failed=""
for t in $targets; do
  bin="$BUILD/tests/fuzz/fuzz_$t"
  corpus="tests/fuzz/corpus/$t"
  rm -rf "${work:?}/$t" && mkdir -p "$work/$t"
  log="$work/$t.log"
  start=$(date +%s)
  # new inputs go to the work dir; the committed corpus is read only
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$art/$t-" "$work/$t" "$corpus" >"$log" 2>&1; then
    echo "fuzz $t: ok, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in $(( $(date +%s) - start )) s, $(ls "$work/$t" | wc -l) new inputs"
  else
    echo "fuzz $t: FAILED (log: $log)"
    grep -E 'ERROR|SUMMARY|Test unit written|Base64' "$log" | head -8 || true
    failed="$failed $t"
  fi
  if [ "$mode" = local ] && [ -n "$(ls "$work/$t")" ]; then
    # keep what adds coverage: -merge=1 copies into the first dir only those
    "$bin" -merge=1 "$corpus" "$work/$t" >>"$log" 2>&1 || true
    echo "fuzz $t: corpus now $(ls "$corpus" | wc -l) files, $(du -sk --apparent-size "$corpus" | cut -f1) KiB"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz: crashes in:$failed; inputs in $art/ (reproduce: $BUILD/tests/fuzz/fuzz_<target> <file>)" >&2
  exit 1
fi
