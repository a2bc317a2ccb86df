// Small models and inputs shared by the native tests.
#pragma once
#include <vector>

#include "../core/level.h"
#include "../core/rng.h"

namespace hgadtest {

inline hgad::LevelConfig small_config() {
  hgad::LevelConfig c;
  c.channels = 7;  // odd: exercises ceil/floor of the split
  c.pos_dim = 4;
  c.blocks = 2;
  c.classes = 3;
  c.centres = 3;
  return c;
}

// Moves every parameter away from its initial value so no gradient is trivially zero (gamma at
// identity, offsets and logits at zero).
template <typename T>
void jitter(hgad::Level<T>& lv, uint64_t seed, double amount) {
  hgad::Rng rng(seed);
  for (auto& p : lv.params()) p += static_cast<T>(amount * rng.normal());
}

template <typename T>
std::vector<T> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  hgad::Rng rng(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(scale * rng.normal());
  return v;
}

// log|det A| by LU with partial pivoting.
inline double log_abs_det(std::vector<double> a, int64_t n) {
  double acc = 0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[piv * n + c])) piv = r;
    for (int64_t k = 0; k < n; ++k) std::swap(a[c * n + k], a[piv * n + k]);
    acc += std::log(std::fabs(a[c * n + c]));
    for (int64_t r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / a[c * n + c];
      for (int64_t k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
    }
  }
  return acc;
}

}  // namespace hgadtest
