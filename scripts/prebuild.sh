#!/usr/bin/env bash
# Builds the prebuilt Linux x64 binaries with prebuildify (N-API: one file serves every Node version):
#  - CPU: <dest>/prebuilds/linux-x64/hgad.node, OpenBLAS linked in statically (HGAD_GEMM=openblas-static),
#    no CUDA (HGAD_CUDA=OFF), and libgomp.so.1 beside it (found through $ORIGIN);
#  - CUDA: <dest>/variants/cuda/prebuilds/linux-x64/hgad.node (+ libgomp.so.1), the same CPU path plus the
#    CUDA backend (HGAD_CUDA=ON), when nvcc is found (PATH, CUDACXX or /usr/local/cuda/bin/nvcc).
#    HGAD_PREBUILD_CUDA=off skips it, =on makes a missing nvcc an error (default: auto).
# The CUDA runtime is linked statically and loads the driver (libcuda.so.1) itself when one is installed,
# so the variant loads anywhere the CPU binary does. It always uses hgad's built-in GEMM kernel, never
# cuBLAS: cuBLAS shared would make the variant fail to load wherever libcublas is missing, and cuBLAS
# static (libcublas_static + libcublasLt_static) would add hundreds of MB to the package.
# The builds run in a scratch copy: build/ (the oneDNN source build) is left alone.
# Usage: scripts/prebuild.sh [dest, default: the repository].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$(cd "${1:-$root}" && pwd)
archive=${HGAD_OPENBLAS_ARCHIVE:-/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.a}
cuda=${HGAD_PREBUILD_CUDA:-auto}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -f "$archive" ]; then
  # Only the static archive is needed, at build time: unpack Debian's package into the scratch folder
  # rather than installing it (installing it would change the system's BLAS alternatives).
  echo "prebuild: $archive missing, fetching libopenblas-openmp-dev with apt-get download" >&2
  if ! (cd "$work" && apt-get download -qq libopenblas-openmp-dev >/dev/null 2>&1); then
    # No package lists yet (a fresh machine): fetch them, then retry.
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
    (cd "$work" && apt-get download -qq libopenblas-openmp-dev >/dev/null)
  fi
  dpkg-deb -x "$work"/libopenblas-openmp-dev_*.deb "$work/openblas"
  archive="$work/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.a"
  test -f "$archive" || { echo "prebuild: the package has no $archive" >&2; exit 1; }
fi
cp -r "$root/package.json" "$root/CMakeLists.txt" "$root/native" "$work"/
ln -s "$root/node_modules" "$work/node_modules"
libgomp=$(${CXX:-g++} -print-file-name=libgomp.so.1)

# prebuildify drives node-gyp; build_with stands in for it (it ignores node-gyp's arguments) and leaves
# the addon and the libgomp it needs in build/Release, from where prebuildify copies both into
# <out>/prebuilds/linux-x64/. Arguments: the out folder, then extra cmake-js options.
build_with() {
  local out=$1 script=$work/cmake-build.sh
  shift
  cat >"$script" <<SH
#!/bin/sh
set -e
npx --no-install cmake-js rebuild --out build --CDHGAD_GEMM=openblas-static \
  --CDHGAD_OPENBLAS_ARCHIVE="$archive" --CDHGAD_BUILD_TESTS=OFF $* >/dev/null
cp -L "$libgomp" build/Release/libgomp.so.1
SH
  chmod +x "$script"
  (cd "$work" && npx --no-install prebuildify --napi --strip --node-gyp "$script" --out "$out")
}

# Libraries a prebuilt binary must not need on the user's machine.
check_deps() {
  local deps
  deps=$(ldd "$1")
  if grep -E 'not found|libcudart|libcublas|libcuda\.so|libdnnl|libopenblas|libgfortran' <<<"$deps"; then
    echo "prebuild: $1 needs a library the package cannot assume (above)" >&2
    exit 1
  fi
}

t0=$SECONDS
build_with "$work/cpu" --CDHGAD_CUDA=OFF
echo "prebuild: CPU binary built in $((SECONDS - t0)) s"
check_deps "$work/cpu/prebuilds/linux-x64/hgad.node"
mkdir -p "$dest/prebuilds"
rm -rf "$dest/prebuilds/linux-x64"
cp -r "$work/cpu/prebuilds/linux-x64" "$dest/prebuilds/"
ls -l "$dest/prebuilds/linux-x64"

nvcc=${CUDACXX:-$(command -v nvcc || true)}
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ "$cuda" = off ]; then
  echo "prebuild: CUDA variant skipped (HGAD_PREBUILD_CUDA=off)"
elif [ -z "$nvcc" ]; then
  echo "prebuild: CUDA variant skipped: no nvcc on PATH, in CUDACXX or at /usr/local/cuda/bin/nvcc" >&2
  if [ "$cuda" = on ]; then exit 1; fi
else
  # CUDA_cublas*_LIBRARY=OFF: FindCUDAToolkit takes the value as already found and defines no CUDA::cublas,
  # so CMakeLists.txt builds the built-in GEMM even where the toolkit has cuBLAS (see the top).
  t0=$SECONDS
  build_with "$work/cuda" --CDHGAD_CUDA=ON --CDCMAKE_CUDA_COMPILER="$nvcc" \
    --CDCUDA_cublas_LIBRARY=OFF --CDCUDA_cublasLt_LIBRARY=OFF
  echo "prebuild: CUDA variant built in $((SECONDS - t0)) s ($nvcc)"
  check_deps "$work/cuda/prebuilds/linux-x64/hgad.node"
  mkdir -p "$dest/variants/cuda/prebuilds"
  rm -rf "$dest/variants/cuda/prebuilds/linux-x64"
  cp -r "$work/cuda/prebuilds/linux-x64" "$dest/variants/cuda/prebuilds/"
  ls -l "$dest/variants/cuda/prebuilds/linux-x64"
fi
