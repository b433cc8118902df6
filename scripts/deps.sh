#!/usr/bin/env bash
# Installs the Debian packages schakel builds and tests with
# (scripts/packages.txt). Idempotent: asks apt only when something is missing.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r p; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done < packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
