// Warp-wide reductions: the row kernels give each row one warp, whose lanes stride over the row.
#pragma once
#include <cuda_runtime.h>

namespace hgad {
namespace cuda {

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
// The row of the calling warp (uniform across the warp) and the lane.
__device__ __forceinline__ int64_t warp_row() {
  return static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
}
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x % 32); }

}  // namespace cuda
}  // namespace hgad
