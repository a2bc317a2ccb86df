#include "adam.h"

#include <cmath>

namespace hgad {

template <typename T>
void adam_update(const AdamGroup& g, const AdamHyper& h, double lr, int64_t step, T* param, const T* grad, T* m,
                 T* v, int threads) {
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2), eps = static_cast<T>(h.eps);
  const T wd = static_cast<T>(g.weight_decay);
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(lr * g.lr_scale / bc1);
  const T inv_bc2_sqrt = static_cast<T>(1.0 / std::sqrt(bc2));
#pragma omp parallel for simd num_threads(threads) schedule(static)
  for (int64_t i = g.begin; i < g.end; ++i) {
    const T gi = grad[i] + wd * param[i];
    m[i] = b1 * m[i] + (T(1) - b1) * gi;
    v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
    param[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_bc2_sqrt + eps);
  }
}

template void adam_update<float>(const AdamGroup&, const AdamHyper&, double, int64_t, float*, const float*, float*,
                                 float*, int);
template void adam_update<double>(const AdamGroup&, const AdamHyper&, double, int64_t, double*, const double*,
                                  double*, double*, int);

}  // namespace hgad
