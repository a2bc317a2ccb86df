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

// The coupling block's affine step (coupling.cpp and the CUDA kernels): the subnet output a plus its
// bias, scaled by 0.1, gives the clamped log-scale s and the shift t.
template <typename T>
HGAD_HD T coupling_log_scale(T a, T bias, T clamp) { return soft_clamp(T(0.1) * (a + bias), clamp); }
template <typename T>
HGAD_HD T coupling_shift(T a, T bias) { return T(0.1) * (a + bias); }
template <typename T>
HGAD_HD T relu_add(T h, T q) {
  const T x = h + q;
  return x > T(0) ? x : T(0);
}
template <typename T>
HGAD_HD T relu_grad(T h, T dh) { return h > T(0) ? dh : T(0); }
// dL/d(subnet output of s) given dL/du2 (dv2p), the input v2, e^s and dL/dlogdet of the row.
template <typename T>
HGAD_HD T coupling_grad_s(T dv2p, T v2, T es, T dld, T s, T clamp) {
  const T ds = dv2p * v2 * es + dld;
  return T(0.1) * ds * soft_clamp_grad(s, clamp);
}
template <typename T>
HGAD_HD T coupling_grad_t(T dv2p) { return T(0.1) * dv2p; }

// The mixture (mixture.cpp and the CUDA kernels). d = ||z||^2 - 2 z.c + ||c||^2 from the GEMM's -2 z.c.
constexpr double kLog2Pi = 1.8378770664093454835606594728112;
template <typename T>
HGAD_HD T sq_distance(T dot_m2, T zn, T cn) { return dot_m2 + (zn + cn); }
// log N(z) of a row up to the division by C: -C/2 ln 2pi + logsumexp over centres + log|det J|.
template <typename T>
HGAD_HD T row_log_likelihood(int64_t C, T lse_k, T ld) { return T(-0.5 * kLog2Pi) * T(C) + lse_k + ld; }
// dL/dd of the class centre (y, 0) from L_g (weight wg), L_mi (wmi, target t) and L_e (we); w is the
// posterior with log pi, rr the one without, log_r = log rr, H the entropy of rr.
template <typename T>
HGAD_HD T inter_distance_grad(T wg, T wmi, T we, T w, T t, T rr, T log_r, T H, T invC) {
  return wg * w * T(0.5) * invC - wmi * T(0.5) * (t - w) + we * T(0.5) * rr * (log_r + H);
}

// One Adam element (adam.cpp's loop body): L2 decay added to the gradient, bias-corrected moments.
template <typename T>
HGAD_HD void adam_element(T& param, T grad, T& m, T& v, T b1, T b2, T eps, T wd, T step_size, T inv_bc2_sqrt) {
  const T gi = grad + wd * param;
  m = b1 * m + (T(1) - b1) * gi;
  v = b2 * v + (T(1) - b2) * gi * gi;
  param -= step_size * m / (std::sqrt(v) * inv_bc2_sqrt + eps);
}

}  // namespace hgad
