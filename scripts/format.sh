#!/usr/bin/env bash
# The C layout of .clang-format over every C file git tracks in lib/
# brokers/ adapters/ services/ tools/ tests/ bench/.
#
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   what CI does: change nothing, list every
#                               file that is not laid out so, exit 1 then
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format.sh: clang-format is needed (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files 'lib/*.[ch]' 'brokers/*.[ch]' 'adapters/*.[ch]' 'services/*.[ch]' \
                                  'tools/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]')
if [ "${1:-}" = --check ]; then
  bad=0
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || { echo "format.sh: $f is not laid out as .clang-format says" >&2; bad=1; }
  done
  [ "$bad" -eq 0 ] || { echo "format.sh: run bash scripts/format.sh and commit the result" >&2; exit 1; }
  echo "format.sh: ${#files[@]} files laid out as .clang-format says"
else
  clang-format -i "${files[@]}"
fi
