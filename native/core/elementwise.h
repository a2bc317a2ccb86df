// Per-element formulas of the coupling block and the mixture, shared by every backend.
// Float uses a branch-free exp that vectorises (the libm call does not); double keeps libm so the
// float64 gradient checks test the formulas, not the approximation.
#pragma once
#include <cmath>
#include <cstdint>

#include "platform.h"

namespace hgad {

// Cephes-style expf: range reduction by ln 2 and a degree-6 polynomial, about 1 ulp on [-87, 88].
HGAD_HD float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  // Round to nearest by adding and subtracting 1.5 * 2^23: vectorises without SSE4.1's roundps.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
#if defined(__CUDA_ARCH__)
  return p * __int_as_float(bits);
#else
  return p * __builtin_bit_cast(float, bits);
#endif
}

HGAD_HD float fast_exp(float x) { return exp_approx(x); }
HGAD_HD double fast_exp(double x) { return std::exp(x); }

// tanh through exp(-2|x|): absolute error ~1e-7, which is what the clamp needs (s enters exp(s)).
HGAD_HD float fast_tanh(float x) {
  const float e = exp_approx(-2.0f * std::fabs(x));
  return std::copysign((1.0f - e) / (1.0f + e), x);
}
HGAD_HD double fast_tanh(double x) { return std::tanh(x); }

// Soft clamp s = alpha * tanh(a / alpha); ds/da = 1 - (s/alpha)^2.
template <typename T>
HGAD_HD T soft_clamp(T a, T alpha) { return alpha * fast_tanh(a / alpha); }
template <typename T>
HGAD_HD T soft_clamp_grad(T s, T alpha) {
  const T q = s / alpha;
  return T(1) - q * q;
}

// Global affine scale g = 0.1 * softplus_{beta=0.5}(gamma) = 0.2 ln(1 + exp(gamma/2)), written so
// large gamma cannot overflow.
template <typename T>
HGAD_HD T global_scale(T gamma) {
  const T h = T(0.5) * gamma;
  return T(0.2) * (h > T(0) ? h + std::log1p(std::exp(-h)) : std::log1p(std::exp(h)));
}
// dg/dgamma = 0.1 * sigmoid(gamma/2).
template <typename T>
HGAD_HD T global_scale_grad(T gamma) {
  return T(0.1) / (T(1) + std::exp(T(-0.5) * gamma));
}
// gamma that makes g == 1: 2 ln(e^5 - 1).
template <typename T>
HGAD_HD T global_scale_identity() {
  return T(2) * std::log(std::exp(T(5)) - T(1));
}

// -log(sigmoid(x)) = softplus(-x), stable for both signs.
template <typename T>
HGAD_HD T neg_log_sigmoid(T x) {
  return x > T(0) ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
}
template <typename T>
HGAD_HD T sigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}

}  // namespace hgad
