#!/usr/bin/env bash
# Installs the system packages a source build needs on Debian/Ubuntu: a C++17 compiler with OpenMP,
# CMake, and oneDNN. Pass --with-torch to add PyTorch for the baseline and the parity tests.
set -euo pipefail
packages=(g++ cmake make libdnnl-dev)
[ "${1:-}" = "--with-torch" ] && packages+=(python3-torch python3-numpy)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
run apt-get update -qq
DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq "${missing[@]}"
