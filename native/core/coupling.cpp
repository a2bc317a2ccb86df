#include "coupling.h"

#include <algorithm>
#include <cstring>

#include "elementwise.h"
#include "gemm.h"

namespace hgad {

template <typename T>
void block_pos_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t tp, const T* pe, T* q) {
  gemm(false, true, tp, d.hid, d.P, T(1), pe, d.P, bp.w1 + d.C1, d.n, T(0), q, d.hid);
  for (int64_t r = 0; r < tp; ++r) {
    T* qr = q + r * d.hid;
#pragma omp simd
    for (int64_t j = 0; j < d.hid; ++j) qr[j] += bp.b1[j];
  }
}

// h = relu(v1 W1a^T + q[position]); a = 0.1 (h W2^T + b2).
template <typename T>
static void subnet_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v,
                           const T* q, T* h, T* a) {
  for (int64_t r = 0; r < R; ++r) std::memcpy(h + r * d.hid, q + (r % tp) * d.hid, sizeof(T) * d.hid);
  gemm(false, true, R, d.hid, d.C1, T(1), v, d.C, bp.w1, d.n, T(1), h, d.hid);
  const int64_t total = R * d.hid;
#pragma omp simd
  for (int64_t i = 0; i < total; ++i) h[i] = h[i] > T(0) ? h[i] : T(0);
  gemm(false, true, R, 2 * d.C2, d.hid, T(1), h, d.hid, bp.w2, d.hid, T(0), a, 2 * d.C2);
}

template <typename T>
void block_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v, const T* q,
                   T* h, T* s, T* u, T* a, T* up, T* w, T* ld) {
  subnet_forward(d, bp, R, tp, v, q, h, a);
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2;
  const T* bs = bp.b2;
  const T* bt = bp.b2 + C2;
  for (int64_t r = 0; r < R; ++r) {
    const T* vr = v + r * C;
    const T* ar = a + r * 2 * C2;
    T* sr = s + r * C2;
    T* ur = u + r * C;
    T* upr = up + r * C;
    T sum = T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < C2; ++j) {
      const T sj = soft_clamp(T(0.1) * (ar[j] + bs[j]), bp.clamp);
      const T tj = T(0.1) * (ar[C2 + j] + bt[j]);
      sr[j] = sj;
      ur[C1 + j] = vr[C1 + j] * fast_exp(sj) + tj;
      sum += sj;
    }
    for (int64_t j = 0; j < C1; ++j) ur[j] = vr[j];
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) upr[j] = ur[j] * bp.g[j] + bp.offset[j];
    ld[r] += sum + bp.logdet_g;
  }
  gemm(false, true, R, C, C, T(1), up, C, bp.rot, C, T(0), w, C);
}

template <typename T>
void block_backward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* pe, const T* v,
                    const T* h, const T* s, const T* u, const T* dw, const T* dld, T* da, T* dh, T* dqsum, T* du,
                    const BlockGrads<T>& gr, T* dv) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2, hid = d.hid;
  // w = u' R^T  =>  du' = dw R.
  gemm(false, false, R, C, C, T(1), dw, C, bp.rot, C, T(0), du, C);
  T dld_sum = T(0);
  for (int64_t r = 0; r < R; ++r) {
    const T* dur = du + r * C;
    const T* ur = u + r * C;
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) {
      gr.offset[j] += dur[j];
      gr.g[j] += dur[j] * ur[j];
    }
    dld_sum += dld[r];
  }
  // log|det| holds sum ln g: d/dg_c = 1/g_c for every row.
  for (int64_t j = 0; j < C; ++j) gr.g[j] += dld_sum / bp.g[j];
  for (int64_t r = 0; r < R; ++r) {
    T* dur = du + r * C;
    const T* vr = v + r * C;
    const T* sr = s + r * C2;
    T* dar = da + r * 2 * C2;
    T* dvr = dv ? dv + r * C : nullptr;
    const T dl = dld[r];
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) dur[j] *= bp.g[j];
#pragma omp simd
    for (int64_t j = 0; j < C2; ++j) {
      const T dv2p = dur[C1 + j];
      const T es = fast_exp(sr[j]);
      if (dvr) dvr[C1 + j] = dv2p * es;
      const T ds = dv2p * vr[C1 + j] * es + dl;
      dar[j] = T(0.1) * ds * soft_clamp_grad(sr[j], bp.clamp);
      dar[C2 + j] = T(0.1) * dv2p;
    }
    if (dvr)
      for (int64_t j = 0; j < C1; ++j) dvr[j] = dur[j];
  }
  gemm(true, false, 2 * C2, hid, R, T(1), da, 2 * C2, h, hid, T(1), gr.w2, hid);
  for (int64_t r = 0; r < R; ++r) {
    const T* dar = da + r * 2 * C2;
#pragma omp simd
    for (int64_t j = 0; j < 2 * C2; ++j) gr.b2[j] += dar[j];
  }
  gemm(false, false, R, hid, 2 * C2, T(1), da, 2 * C2, bp.w2, hid, T(0), dh, hid);
  const int64_t total = R * hid;
#pragma omp simd
  for (int64_t i = 0; i < total; ++i) dh[i] = h[i] > T(0) ? dh[i] : T(0);
  gemm(true, false, hid, C1, R, T(1), dh, hid, v, C, T(1), gr.w1, d.n);
  // The positional half of W1 sees each position once per image: sum over the tile's images first.
  std::fill(dqsum, dqsum + tp * hid, T(0));
  for (int64_t r = 0; r < R; ++r) {
    T* qs = dqsum + (r % tp) * hid;
    const T* dhr = dh + r * hid;
#pragma omp simd
    for (int64_t j = 0; j < hid; ++j) qs[j] += dhr[j];
  }
  gemm(true, false, hid, d.P, tp, T(1), dqsum, hid, pe, d.P, T(1), gr.w1 + C1, d.n);
  for (int64_t r = 0; r < tp; ++r) {
    const T* qs = dqsum + r * hid;
#pragma omp simd
    for (int64_t j = 0; j < hid; ++j) gr.b1[j] += qs[j];
  }
  if (dv) gemm(false, false, R, C1, hid, T(1), dh, hid, bp.w1, d.n, T(1), dv, C);
}

template <typename T>
void block_inverse(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w, const T* q,
                   T* h, T* a, T* up, T* v) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2;
  gemm(false, false, R, C, C, T(1), w, C, bp.rot, C, T(0), up, C);
  for (int64_t r = 0; r < R; ++r) {
    T* upr = up + r * C;
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) upr[j] = (upr[j] - bp.offset[j]) / bp.g[j];
    for (int64_t j = 0; j < C1; ++j) v[r * C + j] = upr[j];
  }
  subnet_forward(d, bp, R, tp, v, q, h, a);
  const T* bs = bp.b2;
  const T* bt = bp.b2 + C2;
  for (int64_t r = 0; r < R; ++r) {
    const T* ar = a + r * 2 * C2;
    const T* upr = up + r * C;
    T* vr = v + r * C;
#pragma omp simd
    for (int64_t j = 0; j < C2; ++j) {
      const T sj = soft_clamp(T(0.1) * (ar[j] + bs[j]), bp.clamp);
      const T tj = T(0.1) * (ar[C2 + j] + bt[j]);
      vr[C1 + j] = (upr[C1 + j] - tj) * fast_exp(-sj);
    }
  }
}

#define HGAD_INSTANTIATE(T)                                                                                     \
  template void block_pos_forward<T>(const BlockDims&, const BlockParams<T>&, int64_t, const T*, T*);          \
  template void block_forward<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*, const T*, \
                                 T*, T*, T*, T*, T*, T*, T*);                                                   \
  template void block_backward<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*,         \
                                  const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, T*,         \
                                  const BlockGrads<T>&, T*);                                                    \
  template void block_inverse<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*, const T*, \
                                 T*, T*, T*, T*);
HGAD_INSTANTIATE(float)
HGAD_INSTANTIATE(double)
#undef HGAD_INSTANTIATE

}  // namespace hgad
