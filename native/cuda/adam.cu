// Device twin of core/adam.cpp: the same constants computed on the host, adam_element per element.
#include <cmath>

#include "../core/elementwise.h"
#include "check.cuh"
#include "kernels.cuh"

namespace hgad {
namespace cuda {

namespace {
__global__ void adam_kernel(int64_t begin, int64_t end, float b1, float b2, float eps, float wd, float step_size,
                            float inv_bc2_sqrt, float* param, const float* grad, float* m, float* v) {
  const int64_t i = begin + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < end) adam_element(param[i], grad[i], m[i], v[i], b1, b2, eps, wd, step_size, inv_bc2_sqrt);
}
}  // namespace

void adam_update(const Context& ctx, const AdamGroup& g, const AdamHyper& h, double lr, int64_t step, float* param,
                 const float* grad, float* m, float* v) {
  if (g.end <= g.begin) return;
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  adam_kernel<<<grid_for(g.end - g.begin), kThreads, 0, ctx.stream()>>>(
      g.begin, g.end, static_cast<float>(h.beta1), static_cast<float>(h.beta2), static_cast<float>(h.eps),
      static_cast<float>(g.weight_decay), static_cast<float>(lr * g.lr_scale / bc1),
      static_cast<float>(1.0 / std::sqrt(bc2)), param, grad, m, v);
  HGAD_CUDA_LAUNCHED("adam_kernel");
}

}  // namespace cuda
}  // namespace hgad
