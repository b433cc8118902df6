#!/usr/bin/env bash
# The README's first command: installs the Debian packages schakel needs
# (scripts/deps.sh), builds the schakel command and runs the demo region
# (docs/demo.md) under ./var/demo: a node, an adapter per organisation and
# synthetic children's stories, with the dashboard's address printed.
# The clock runs 20000 times as fast as the wall's (a day in 4.3 s), so that
# first contacts, intakes, reminders and the municipality's decisions come
# within the first minute. Ctrl-C stops it; run it again to go on where it
# stopped. Arguments go to `schakel demo` after these (e.g. --schools 8
# --rate 50 --speed 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target schakel
exec ./build/schakel demo --data "${SCHAKEL_DEMO_DATA:-var/demo}" --speed 20000 "$@"
