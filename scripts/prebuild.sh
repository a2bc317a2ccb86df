#!/usr/bin/env bash
# Builds the prebuilt Linux x64 binary with prebuildify: <dest>/prebuilds/linux-x64/hgad.node (N-API,
# so one file serves every Node version; OpenBLAS linked in statically, HGAD_GEMM=openblas-static) and
# libgomp.so.1 beside it (found through $ORIGIN). The build runs in a scratch copy: build/ (the oneDNN
# source build) is left alone. Usage: scripts/prebuild.sh [dest, default: the repository].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$(cd "${1:-$root}" && pwd)
archive=${HGAD_OPENBLAS_ARCHIVE:-/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.a}
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
# prebuildify drives node-gyp; this stands in for it (it ignores node-gyp's arguments) and leaves the
# addon and the libgomp it needs in build/Release, from where prebuildify copies both.
cat > "$work/cmake-build.sh" <<SH
#!/bin/sh
set -e
npx --no-install cmake-js rebuild --out build --CDHGAD_GEMM=openblas-static \
  --CDHGAD_OPENBLAS_ARCHIVE="$archive" --CDHGAD_BUILD_TESTS=OFF --CDHGAD_CUDA=OFF >/dev/null
cp -L "$libgomp" build/Release/libgomp.so.1
SH
chmod +x "$work/cmake-build.sh"
(cd "$work" && npx --no-install prebuildify --napi --strip --node-gyp "$work/cmake-build.sh")
mkdir -p "$dest/prebuilds"
rm -rf "$dest/prebuilds/linux-x64"
cp -r "$work/prebuilds/linux-x64" "$dest/prebuilds/"
ls -l "$dest/prebuilds/linux-x64"
