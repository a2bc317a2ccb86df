#!/usr/bin/env bash
# Installs the system packages a source build needs on Debian/Ubuntu: a C++17 compiler with OpenMP,
# CMake, and oneDNN; redis-server for the queue tests (they start their own on a free port). Pass
# --with-torch to add PyTorch for the baseline and the parity tests, with Debian's OpenBLAS: without it
# torch's matrix products fall back to the reference BLAS (libblas3), about 10x slower, and the
# PyTorch baseline of bench:flow measures that instead of a tuned torch.
set -euo pipefail
packages=(g++ cmake make libdnnl-dev redis-server)
[ "${1:-}" = "--with-torch" ] && packages+=(python3-torch python3-numpy libopenblas0-pthread)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
run apt-get update -qq
DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq "${missing[@]}"
# The tests need only the redis-server binary. Where an init system started the service the package
# installs (systemd; in containers policy-rc.d usually forbids it), stop and disable it, so that no
# Redis on 6379 is left running that anything could come to rely on. Only when installed just now.
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    run systemctl disable --now redis-server >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1 && service redis-server status >/dev/null 2>&1; then
    run service redis-server stop >/dev/null 2>&1 || true
  fi
fi
