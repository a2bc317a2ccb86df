#!/usr/bin/env bash
# npm run bench:gemm — needs libdnnl-dev and libopenblas-dev (Debian).
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -O2 -fopenmp "$(dirname "$0")/gemm_choice.cpp" -o "$out/gemm_choice" -ldnnl -lopenblas
threads=${1:-2}
echo "# oneDNN (no settings)"
env -u OPENBLAS_CORETYPE "$out/gemm_choice" onednn "$threads"
echo "# OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || true) as it dispatches itself"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$out/gemm_choice" openblas "$threads"
if grep -qw avx512f /proc/cpuinfo; then
  echo "# OpenBLAS with OPENBLAS_CORETYPE=SkylakeX"
  OPENBLAS_CORETYPE=SkylakeX "$out/gemm_choice" openblas "$threads"
fi
