// Device twin of core/mixture.cpp. The distances come from one GEMM (-2 z.c) plus the row norms; the
// loss and score kernels give each row one warp, add ||z||^2 + ||c||^2 as they read the GEMM's output,
// and do every softmax, logsumexp, loss term and dL/dd of the row in registers: D is written once
// (by the GEMM) and read once, A_full/A_det written once.
#include <cmath>

#include "../core/elementwise.h"
#include "check.cuh"
#include "kernels.cuh"
#include "warp.cuh"

namespace hgad {
namespace cuda {

namespace {

// zn[r] = ||z_r||^2.
__global__ void row_norms_kernel(int64_t R, int64_t C, const float* z, float* zn) {
  const int64_t r = warp_row();
  if (r >= R) return;
  const float* zr = z + r * C;
  float acc = 0.0f;
  for (int64_t c = lane_id(); c < C; c += 32) acc += zr[c] * zr[c];
  acc = warp_sum(acc);
  if (lane_id() == 0) zn[r] = acc;
}

// The row's view of the distances: d_j = D[j] + (zn + cnorm[j]), as mixture_distances adds them.
struct RowDistances {
  const float* D;
  const float* cnorm;
  float zn;
  __device__ float operator()(int64_t j) const { return sq_distance(D[j], zn, cnorm[j]); }
};

// logsumexp over the warp's values x(i), i in [0, n): returns the max in mx and the sum of
// fast_exp(x - mx) in sum, as softmax_lse computes them.
template <typename F>
__device__ void warp_lse(int64_t n, F x, float& mx, float& sum) {
  float m = -INFINITY;
  for (int64_t i = lane_id(); i < n; i += 32) m = fmaxf(m, x(i));
  m = warp_max(m);
  float s = 0.0f;
  for (int64_t i = lane_id(); i < n; i += 32) s += fast_exp(x(i) - m);
  mx = m;
  sum = warp_sum(s);
}

// mixture_loss_rows for one row per warp.
__global__ void loss_rows_kernel(MixtureParams<float> mp, int64_t R, const float* D, const float* zn, const float* ld,
                                 const int32_t* label, LossWeights weights, float scale, float label_smoothing,
                                 float* A_full, float* A_det, float* dld, MixtureGrads<float> gr) {
  const int64_t r = warp_row();
  if (r >= R) return;
  const int lane = lane_id();
  const int64_t Y = mp.Y, M = mp.M, J = Y * M, C = mp.C;
  const float invC = 1.0f / static_cast<float>(C);
  const float wg = weights.w[kLg] * scale, wmi = weights.w[kLmi] * scale, we = weights.w[kLe] * scale;
  const float wgi = weights.w[kLgi] * scale, wz = weights.w[kLz] * scale;
  const RowDistances dist{D + r * J, mp.cnorm, zn[r]};
  float* Af = A_full + r * J;
  float* Ad = A_det + r * J;
  for (int64_t j = lane; j < J; j += 32) Af[j] = Ad[j] = 0.0f;
  __syncwarp();  // other lanes write into the zeroed rows below
  const int64_t ys = label[r];
  const float ldr = ld[r];

  // Inter-class: l_y = -d_y/2, rr = softmax(l) (entropy H), w = softmax(l + log pi).
  auto l = [&](int64_t y) { return -0.5f * dist(y * M); };
  float mx_e, sum_e;
  warp_lse(Y, l, mx_e, sum_e);
  const float lse_e = mx_e + logf(sum_e), inv_e = 1.0f / sum_e;
  float H = 0.0f;
  for (int64_t y = lane; y < Y; y += 32) {
    const float ly = l(y);
    H -= fast_exp(ly - mx_e) * inv_e * (ly - lse_e);
  }
  H = warp_sum(H);
  auto l2 = [&](int64_t y) { return l(y) + mp.logpi[y]; };
  float mx, sum;
  warp_lse(Y, l2, mx, sum);
  const float lse = mx + logf(sum), inv = 1.0f / sum;
  const float t_off = label_smoothing / static_cast<float>(Y), t_on = 1.0f - label_smoothing + t_off;
  float lmi = 0.0f;
  for (int64_t y = lane; y < Y; y += 32) {
    const float ly = l(y), l2y = ly + mp.logpi[y];
    const float t = y == ys ? t_on : t_off;
    const float w = fast_exp(l2y - mx) * inv, rr = fast_exp(ly - mx_e) * inv_e;
    lmi += t * (l2y - lse - mp.logpi[y]);
    Af[y * M] = inter_distance_grad(wg, wmi, we, w, t, rr, ly - lse_e, H, invC);
    atomicAdd(gr.dlogpi + y, -(wg * w * invC));
  }
  lmi = warp_sum(lmi);
  __syncwarp();  // Af[ys * M] is added to below by another lane

  // Intra-class, the row's own class: rho = softmax(-d/2 + log pi_intra).
  const float* lpi = mp.logpi_intra + ys * M;
  auto lk = [&](int64_t m) { return -0.5f * dist(ys * M + m) + lpi[m]; };
  float mx_k, sum_k;
  warp_lse(M, lk, mx_k, sum_k);
  const float lse_k = mx_k + logf(sum_k), inv_k = 1.0f / sum_k;
  const float logp = row_log_likelihood(C, lse_k, ldr);
  const float sig = sigmoid(-logp * invC);
  for (int64_t m = lane; m < M; m += 32) {
    const float rho = fast_exp(lk(m) - mx_k) * inv_k;
    Af[ys * M + m] += wz * sig * rho * 0.5f * invC;
    Ad[ys * M + m] = wgi * rho * 0.5f * invC;
    atomicAdd(gr.dlogpi_intra + ys * M + m, -((wgi + wz * sig) * rho * invC));
  }
  if (lane == 0) {
    dld[r] = -(wg + wgi + wz * sig) * invC;
    atomicAdd(gr.loss + kLg, static_cast<double>((-lse - ldr) * invC));
    atomicAdd(gr.loss + kLmi, static_cast<double>(lmi));
    atomicAdd(gr.loss + kLe, static_cast<double>(H));
    atomicAdd(gr.loss + kLgi, static_cast<double>((-lse_k - ldr) * invC));
    atomicAdd(gr.loss + kLz, static_cast<double>(neg_log_sigmoid(logp * invC)));
  }
}

// mixture_backward's row part: A_full += A_det, dz = 2 (row sum of A) z.
__global__ void backward_rows_kernel(int64_t R, int64_t J, int64_t C, const float* z, float* A_full, const float* A_det,
                                     float* dz) {
  const int64_t r = warp_row();
  if (r >= R) return;
  float* Af = A_full + r * J;
  const float* Ad = A_det + r * J;
  float rowsum = 0.0f;
  for (int64_t j = lane_id(); j < J; j += 32) {
    const float a = Af[j] + Ad[j];
    Af[j] = a;
    rowsum += a;
  }
  rowsum = warp_sum(rowsum);
  const float* zr = z + r * C;
  float* dzr = dz + r * C;
  for (int64_t c = lane_id(); c < C; c += 32) dzr[c] = 2.0f * rowsum * zr[c];
}

// mixture_score_rows for one row per warp; each lane takes whole classes for logp_all.
__global__ void score_rows_kernel(MixtureParams<float> mp, int64_t R, const float* D, const float* zn, const float* ld,
                                  float* class_logits, float* neg_entropy, float* logp_all) {
  const int64_t r = warp_row();
  if (r >= R) return;
  const int lane = lane_id();
  const int64_t Y = mp.Y, M = mp.M, J = Y * M, C = mp.C;
  const float invC = 1.0f / static_cast<float>(C);
  const RowDistances dist{D + r * J, mp.cnorm, zn[r]};
  auto l = [&](int64_t y) { return -0.5f * dist(y * M); };
  float mx_e, sum_e;
  warp_lse(Y, l, mx_e, sum_e);
  const float lse_e = mx_e + logf(sum_e), inv_e = 1.0f / sum_e;
  float ne = 0.0f;
  for (int64_t y = lane; y < Y; y += 32) {
    const float ly = l(y);
    ne += fast_exp(ly - mx_e) * inv_e * (ly - lse_e);
    class_logits[r * Y + y] = ly + mp.logpi[y];
  }
  ne = warp_sum(ne);
  if (lane == 0) neg_entropy[r] = ne;
  const float ldr = ld[r];
  for (int64_t y = lane; y < Y; y += 32) {
    const float* lpi = mp.logpi_intra + y * M;
    float mk = -INFINITY;
    for (int64_t m = 0; m < M; ++m) mk = fmaxf(mk, -0.5f * dist(y * M + m) + lpi[m]);
    float sk = 0.0f;
    for (int64_t m = 0; m < M; ++m) sk += fast_exp(-0.5f * dist(y * M + m) + lpi[m] - mk);
    logp_all[r * Y + y] = row_log_likelihood(C, mk + logf(sk), ldr) * invC;
  }
}

}  // namespace

void row_norms(const Context& ctx, int64_t R, int64_t C, const float* z, float* out) {
  if (R <= 0) return;
  row_norms_kernel<<<grid_for_rows(R), kThreads, 0, ctx.stream()>>>(R, C, z, out);
  HGAD_CUDA_LAUNCHED("row_norms_kernel");
}

void mixture_distances(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* z, float* zn,
                       float* D) {
  row_norms(ctx, R, mp.C, z, zn);
  gemm(ctx, false, true, R, mp.Y * mp.M, mp.C, -2.0f, z, mp.C, mp.centres, mp.C, 0.0f, D, mp.Y * mp.M);
}

void mixture_loss_rows(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* D, const float* zn,
                       const float* ld, const int32_t* label, const LossWeights& weights, float scale,
                       float label_smoothing, float* A_full, float* A_det, float* dld, const MixtureGrads<float>& gr) {
  loss_rows_kernel<<<grid_for_rows(R), kThreads, 0, ctx.stream()>>>(mp, R, D, zn, ld, label, weights, scale,
                                                                   label_smoothing, A_full, A_det, dld, gr);
  HGAD_CUDA_LAUNCHED("loss_rows_kernel");
}

void mixture_backward(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* z, float* A_full,
                      const float* A_det, float* dz, const MixtureGrads<float>& gr) {
  const int64_t J = mp.Y * mp.M, C = mp.C;
  gemm(ctx, true, false, J, C, R, 1.0f, A_full, J, z, C, 1.0f, gr.gz_full, C);
  gemm(ctx, true, false, J, C, R, 1.0f, A_det, J, z, C, 1.0f, gr.gz_det, C);
  column_sums(ctx, R, J, A_full, nullptr, J, gr.col_full);
  column_sums(ctx, R, J, A_det, nullptr, J, gr.col_det);
  backward_rows_kernel<<<grid_for_rows(R), kThreads, 0, ctx.stream()>>>(R, J, C, z, A_full, A_det, dz);
  HGAD_CUDA_LAUNCHED("backward_rows_kernel");
  // d/dz ||z - c||^2 = 2 (z - c): the -2 A c part is one GEMM over all centres.
  gemm(ctx, false, false, R, C, J, -2.0f, A_full, J, mp.centres, C, 1.0f, dz, C);
}

void mixture_score_rows(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* D,
                        const float* zn, const float* ld, float* class_logits, float* neg_entropy, float* logp_all) {
  score_rows_kernel<<<grid_for_rows(R), kThreads, 0, ctx.stream()>>>(mp, R, D, zn, ld, class_logits, neg_entropy,
                                                                    logp_all);
  HGAD_CUDA_LAUNCHED("score_rows_kernel");
}

}  // namespace cuda
}  // namespace hgad
