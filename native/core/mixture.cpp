#include "mixture.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "elementwise.h"
#include "gemm.h"

namespace hgad {

namespace {

// Fills p[i] = softmax(x)[i] given x[i] (stride `step`), returns logsumexp.
template <typename T>
T softmax_lse(const T* x, int64_t count, int64_t step, T* p) {
  T mx = x[0];
  for (int64_t i = 1; i < count; ++i) mx = std::max(mx, x[i * step]);
  T sum = T(0);
  for (int64_t i = 0; i < count; ++i) {
    p[i] = fast_exp(x[i * step] - mx);
    sum += p[i];
  }
  const T inv = T(1) / sum;
  for (int64_t i = 0; i < count; ++i) p[i] *= inv;
  return mx + std::log(sum);
}
}  // namespace

template <typename T>
void mixture_distances(const MixtureParams<T>& mp, int64_t R, const T* z, T* zn, T* D) {
  const int64_t C = mp.C, J = mp.Y * mp.M;
  for (int64_t r = 0; r < R; ++r) {
    const T* zr = z + r * C;
    T acc = T(0);
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < C; ++c) acc += zr[c] * zr[c];
    zn[r] = acc;
  }
  gemm(false, true, R, J, C, T(-2), z, C, mp.centres, C, T(0), D, J);
  for (int64_t r = 0; r < R; ++r) {
    T* Dr = D + r * J;
#pragma omp simd
    for (int64_t j = 0; j < J; ++j) Dr[j] = sq_distance(Dr[j], zn[r], mp.cnorm[j]);
  }
}

template <typename T>
void mixture_loss_rows(const MixtureParams<T>& mp, int64_t R, const T* D, const T* ld, const int32_t* label,
                       const T* weights, T scale, T label_smoothing, T* A_full, T* A_det, T* dld,
                       const MixtureGrads<T>& gr, T* scratch) {
  const int64_t Y = mp.Y, M = mp.M, J = Y * M, C = mp.C;
  const T invC = T(1) / T(C);
  const T wg = weights[kLg] * scale, wmi = weights[kLmi] * scale, we = weights[kLe] * scale;
  const T wgi = weights[kLgi] * scale, wz = weights[kLz] * scale;
  const int64_t L = std::max(Y, M);
  T* l = scratch;            // inter logits, then intra logits
  T* w = scratch + L;        // softmax(l)
  T* rr = scratch + 2 * L;   // softmax(-d/2)
  T* rho = scratch + 3 * L;  // intra softmax
  for (int64_t r = 0; r < R; ++r) {
    const T* Dr = D + r * J;
    T* Af = A_full + r * J;
    T* Ad = A_det + r * J;
    for (int64_t j = 0; j < J; ++j) Af[j] = Ad[j] = T(0);
    const int64_t ys = label[r];

    for (int64_t y = 0; y < Y; ++y) l[y] = T(-0.5) * Dr[y * M];
    const T lse_e = softmax_lse(l, Y, 1, rr);  // r = softmax(-d/2)
    T H = T(0);
    for (int64_t y = 0; y < Y; ++y) H -= rr[y] * (l[y] - lse_e);
    for (int64_t y = 0; y < Y; ++y) l[y] += mp.logpi[y];
    const T lse = softmax_lse(l, Y, 1, w);

    T lmi = T(0);
    const T t_off = label_smoothing / T(Y), t_on = T(1) - label_smoothing + t_off;
    for (int64_t y = 0; y < Y; ++y) {
      const T t = y == ys ? t_on : t_off;
      lmi += t * (l[y] - lse - mp.logpi[y]);
      const T log_r = T(-0.5) * Dr[y * M] - lse_e;
      Af[y * M] = inter_distance_grad(wg, wmi, we, w[y], t, rr[y], log_r, H, invC);
      gr.dlogpi[y] -= wg * w[y] * invC;
    }

    const T* Dy = Dr + ys * M;
    const T* lpi = mp.logpi_intra + ys * M;
    for (int64_t m = 0; m < M; ++m) l[m] = T(-0.5) * Dy[m] + lpi[m];
    const T lse_k = softmax_lse(l, M, 1, rho);
    const T logp = row_log_likelihood(C, lse_k, ld[r]);
    const T sig = sigmoid(-logp * invC);  // -d/dx log sigmoid(x) at x = logp / C
    for (int64_t m = 0; m < M; ++m) {
      Af[ys * M + m] += wz * sig * rho[m] * T(0.5) * invC;
      Ad[ys * M + m] = wgi * rho[m] * T(0.5) * invC;
      gr.dlogpi_intra[ys * M + m] -= (wgi + wz * sig) * rho[m] * invC;
    }
    dld[r] = -(wg + wgi + wz * sig) * invC;

    gr.loss[kLg] += static_cast<double>((-lse - ld[r]) * invC);
    gr.loss[kLmi] += static_cast<double>(lmi);
    gr.loss[kLe] += static_cast<double>(H);
    gr.loss[kLgi] += static_cast<double>((-lse_k - ld[r]) * invC);
    gr.loss[kLz] += static_cast<double>(neg_log_sigmoid(logp * invC));
  }
}

template <typename T>
void mixture_backward(const MixtureParams<T>& mp, int64_t R, const T* z, T* A_full, const T* A_det, T* dz,
                      const MixtureGrads<T>& gr) {
  const int64_t J = mp.Y * mp.M, C = mp.C;
  gemm(true, false, J, C, R, T(1), A_full, J, z, C, T(1), gr.gz_full, C);
  gemm(true, false, J, C, R, T(1), A_det, J, z, C, T(1), gr.gz_det, C);
  for (int64_t r = 0; r < R; ++r) {
    T* Af = A_full + r * J;
    const T* Ad = A_det + r * J;
    T rowsum = T(0);
    for (int64_t j = 0; j < J; ++j) {
      gr.col_full[j] += Af[j];
      gr.col_det[j] += Ad[j];
      Af[j] += Ad[j];
      rowsum += Af[j];
    }
    const T* zr = z + r * C;
    T* dzr = dz + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dzr[c] = T(2) * rowsum * zr[c];
  }
  // d/dz ||z - c||^2 = 2 (z - c): the -2 A c part is one GEMM over all centres.
  gemm(false, false, R, C, J, T(-2), A_full, J, mp.centres, C, T(1), dz, C);
}

template <typename T>
void mixture_score_rows(const MixtureParams<T>& mp, int64_t R, const T* D, const T* ld, T* class_logits,
                        T* neg_entropy, T* logp_all, T* scratch) {
  const int64_t Y = mp.Y, M = mp.M, J = Y * M, C = mp.C;
  const T invC = T(1) / T(C);
  T* l = scratch;
  T* p = scratch + std::max(Y, M);
  for (int64_t r = 0; r < R; ++r) {
    const T* Dr = D + r * J;
    for (int64_t y = 0; y < Y; ++y) l[y] = T(-0.5) * Dr[y * M];
    const T lse_e = softmax_lse(l, Y, 1, p);
    T ne = T(0);
    for (int64_t y = 0; y < Y; ++y) ne += p[y] * (l[y] - lse_e);
    neg_entropy[r] = ne;
    for (int64_t y = 0; y < Y; ++y) class_logits[r * Y + y] = l[y] + mp.logpi[y];
    for (int64_t y = 0; y < Y; ++y) {
      for (int64_t m = 0; m < M; ++m) l[m] = T(-0.5) * Dr[y * M + m] + mp.logpi_intra[y * M + m];
      const T lse_k = softmax_lse(l, M, 1, p);
      logp_all[r * Y + y] = row_log_likelihood(C, lse_k, ld[r]) * invC;
    }
  }
}

namespace {

// Mean over rows of softmax(row); rows are [rows, Y].
template <typename T>
void posterior_mean(const T* logits, int64_t rows, int64_t Y, T* out) {
  std::vector<double> acc(Y, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* l = logits + r * Y;
    double mx = -INFINITY, sum = 0;
    for (int64_t y = 0; y < Y; ++y) mx = std::max(mx, static_cast<double>(l[y]));
    for (int64_t y = 0; y < Y; ++y) sum += std::exp(static_cast<double>(l[y]) - mx);
    for (int64_t y = 0; y < Y; ++y) acc[y] += std::exp(static_cast<double>(l[y]) - mx) / sum;
  }
  for (int64_t y = 0; y < Y; ++y) out[y] = static_cast<T>(acc[y] / static_cast<double>(rows));
}

}  // namespace

template <typename T>
void mixture_image_scores(int64_t batch, int64_t HW, int64_t Y, const int32_t* image_class, const T* class_logits,
                          const T* logp_all, T* logp, int32_t* class_out, T* class_posterior) {
  for (int64_t b = 0; b < batch; ++b) {
    int32_t cls;
    if (image_class) {
      cls = image_class[b];
    } else {
      int64_t best = 0;
      double best_sum = -INFINITY;
      for (int64_t y = 0; y < Y; ++y) {
        double sum = 0;
        for (int64_t p = 0; p < HW; ++p) sum += class_logits[(b * HW + p) * Y + y];
        if (sum > best_sum) best_sum = sum, best = y;
      }
      cls = static_cast<int32_t>(best);
    }
    class_out[b] = cls;
    for (int64_t p = 0; p < HW; ++p) logp[b * HW + p] = logp_all[(b * HW + p) * Y + cls];
    if (class_posterior) posterior_mean(class_logits + b * HW * Y, HW, Y, class_posterior + b * Y);
  }
}

#define HGAD_INSTANTIATE(T)                                                                                   \
  template void mixture_distances<T>(const MixtureParams<T>&, int64_t, const T*, T*, T*);                    \
  template void mixture_loss_rows<T>(const MixtureParams<T>&, int64_t, const T*, const T*, const int32_t*,   \
                                     const T*, T, T, T*, T*, T*, const MixtureGrads<T>&, T*);                     \
  template void mixture_backward<T>(const MixtureParams<T>&, int64_t, const T*, T*, const T*, T*,            \
                                    const MixtureGrads<T>&);                                                  \
  template void mixture_score_rows<T>(const MixtureParams<T>&, int64_t, const T*, const T*, T*, T*, T*, T*);   \
  template void mixture_image_scores<T>(int64_t, int64_t, int64_t, const int32_t*, const T*, const T*, T*,     \
                                        int32_t*, T*);
HGAD_INSTANTIATE(float)
HGAD_INSTANTIATE(double)
#undef HGAD_INSTANTIATE

}  // namespace hgad
