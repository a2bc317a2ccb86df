#!/usr/bin/env bash
# The GPU checks of the CUDA backend (issue 3), for a machine with an NVIDIA GPU. From the repo root:
#
#   bash native/tests_cuda/gpu-check.sh prepare   # here, after `npm run build`: copies the shared libraries
#                                                 # the test binary needs into build/gpu-libs
#   bash native/tests_cuda/gpu-check.sh run       # on the GPU machine (build/ carried there); results in $OUT
#
# `run` uses the carried build/hgad_cuda_tests (CUDA runtime linked statically: only the driver is
# needed), or rebuilds it when nvcc and the GEMM library are there (then with cuBLAS if the toolkit has
# it). With node and node_modules present it also runs test/cuda.test.ts and the benchmark.
set -u
cd "$(dirname "$0")/../.."
mode=${1:-run}
if [ "$mode" = prepare ]; then
  mkdir -p build/gpu-libs
  for lib in $(ldd build/hgad_cuda_tests | awk '/=> \// {print $3}' | grep -E 'dnnl|gomp|OpenCL'); do
    cp -L "$lib" build/gpu-libs/
  done
  ls -la build/gpu-libs
  exit 0
fi
out=${OUT:-/tmp/hgad-gpu-check}
mkdir -p "$out"
(nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv) 2>&1 | tee "$out/gpu.txt"
tests=build/hgad_cuda_tests
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [ -n "$nvcc" ] && cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DHGAD_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" >"$out/cmake.txt" 2>&1 &&
    cmake --build build-gpu -j "$(nproc)" --target hgad_cuda_tests >>"$out/cmake.txt" 2>&1; then
  tests=build-gpu/hgad_cuda_tests
  echo "rebuilt here: $(grep 'hgad CUDA backend' "$out/cmake.txt")" | tee -a "$out/gpu.txt"
else
  echo "using the carried $tests" | tee -a "$out/gpu.txt"
  export LD_LIBRARY_PATH="$PWD/build/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
timeout 300 "$tests" 2>&1 | tee "$out/cuda_tests.txt"
if command -v node >/dev/null && [ -d node_modules ]; then
  timeout 300 npx jest test/cuda.test.ts 2>&1 | tail -40 | tee "$out/jest_cuda.txt"
  [ -f dist/benchmarks/flow.js ] &&
    timeout 240 node dist/benchmarks/flow.js --device cuda --seconds 3 2>&1 | tee "$out/bench_flow_cuda.txt"
else
  echo "no node/node_modules here: jest and bench:flow not run" | tee -a "$out/gpu.txt"
fi
