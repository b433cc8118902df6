#!/usr/bin/env bash
# Installs the Debian packages schakel builds and tests with. Idempotent:
# asks apt only when something is missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
      liblmdb-dev lmdb-utils libssl-dev libjansson-dev libcmocka-dev
      libcsv-dev libmicrohttpd-dev libcurl4-openssl-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
