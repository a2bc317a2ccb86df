// Device twins of the CPU core (llm.c style): each function here does on the model's stream what the
// CPU function of the same name in coupling.h, mixture.h or adam.h does, over device arrays, with the
// per-element formulas from elementwise.h. native/tests_cuda compares every pair.
#pragma once
#include <cstdint>

#include "../core/adam.h"
#include "../core/coupling.h"
#include "../core/mixture.h"
#include "context.cuh"

namespace hgad {
namespace cuda {

// BlockParams on the device; log|det| of the global affine is a device scalar (derived on the device).
struct DeviceBlock {
  const float *w1, *b1, *w2, *b2, *offset, *rot, *g;
  const float* logdet_g;
  float clamp;
};

void block_pos_forward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t tp, const float* pe,
                       float* q);
void block_forward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                   const float* v, const float* q, float* h, float* s, float* u, float* a, float* up, float* w,
                   float* ld);
// scratch: one float.
void block_backward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                    const float* pe, const float* v, const float* h, const float* s, const float* u, const float* dw,
                    const float* dld, float* da, float* dh, float* dqsum, float* du, const BlockGrads<float>& gr,
                    float* dv, float* scratch);
void block_inverse(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                   const float* w, const float* q, float* h, float* a, float* up, float* v);

// The mixture keeps the GEMM's -2 z.c in D and ||z||^2 in zn: the consumers below add them (and ||c||^2)
// as they read, so D is written once and read once.
void mixture_distances(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* z, float* zn,
                       float* D);
struct LossWeights {
  float w[kNumTerms];
};
// gr.loss points at kNumTerms doubles on the device.
void mixture_loss_rows(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* D, const float* zn,
                       const float* ld, const int32_t* label, const LossWeights& weights, float scale,
                       float label_smoothing, float* A_full, float* A_det, float* dld, const MixtureGrads<float>& gr);
void mixture_backward(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* z, float* A_full,
                      const float* A_det, float* dz, const MixtureGrads<float>& gr);
void mixture_score_rows(const Context& ctx, const MixtureParams<float>& mp, int64_t R, const float* D,
                        const float* zn, const float* ld, float* class_logits, float* neg_entropy, float* logp_all);

void adam_update(const Context& ctx, const AdamGroup& g, const AdamHyper& h, double lr, int64_t step, float* param,
                 const float* grad, float* m, float* v);

// out[j] (+)= sum over rows of a[r, j] (times b[r, j] when b is given); a, b with row stride ld.
void column_sums(const Context& ctx, int64_t R, int64_t C, const float* a, const float* b, int64_t ld, float* out);

// out[r] = ||z_r||^2 for R rows of C.
void row_norms(const Context& ctx, int64_t R, int64_t C, const float* z, float* out);

// Launch geometry shared by the kernels.
constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;
inline unsigned grid_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }
inline unsigned grid_for_rows(int64_t rows) { return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace cuda
}  // namespace hgad
