// Helpers shared by the Level translation units (level.cpp, level_inference.cpp, level_training.cpp).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "coupling.h"

namespace hgad {
namespace level_detail {

template <typename T>
void log_softmax(const T* x, int64_t n, T* out) {
  T mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  const T lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - lse;
}

// Gradient through out = log_softmax(x): dx_j = dout_j - softmax(x)_j * sum(dout).
template <typename T>
void log_softmax_backward(const T* logp, const T* dout, int64_t n, T* dx) {
  T total = 0;
  for (int64_t i = 0; i < n; ++i) total += dout[i];
  for (int64_t i = 0; i < n; ++i) dx[i] = dout[i] - std::exp(logp[i]) * total;
}

// Where the tensors of one block sit in a flat buffer (parameters, gradients), in spec order.
template <typename P>
struct BlockSlots {
  P w1, b1, w2, b2, gamma, offset;
};

template <typename P>
BlockSlots<P> block_slots(const BlockDims& d, P base) {
  BlockSlots<P> s;
  s.w1 = base;
  s.b1 = s.w1 + d.hid * d.n;
  s.w2 = s.b1 + d.hid;
  s.b2 = s.w2 + 2 * d.C2 * d.hid;
  s.gamma = s.b2 + 2 * d.C2;
  s.offset = s.gamma + d.C;
  return s;
}

// oneDNN sizes its own thread team from the calling thread's OpenMP setting whenever it is not inside
// an active parallel region, which includes our regions of one thread: cap it at `threads`, so the
// thread count asked for is the one used.
inline void use_threads(int threads) { omp_set_num_threads(threads); }

}  // namespace level_detail
}  // namespace hgad
