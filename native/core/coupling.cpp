#include "coupling.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "bf16_gemm.h"
#include "elementwise.h"
#include "gemm.h"
#include "packed_gemm.h"

namespace hgad {

namespace {

// The element-wise kernels are about a sixth of the time: x86-64 builds carry AVX-512 and AVX2 copies,
// chosen when the library loads (the rest of the binary stays baseline x86-64). Each kernel is written
// once as an always-inlined template, so every copy compiles the same formulas for its ISA.
// HGAD_BASELINE_ISA builds the baseline copy alone, so the tests can run it on any machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(HGAD_BASELINE_ISA)
#define HGAD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HGAD_CLONES
#endif
#define HGAD_KERNEL static inline __attribute__((always_inline))
// One AVX-512 vector of floats: the width of the overlapped remainders below.
constexpr int64_t kTail = 16;

// h[r] = relu(h[r] + q[r % tp]): the positional part of the first layer, added per position.
template <typename T>
HGAD_KERNEL void add_relu_impl(T* h, const T* q, int64_t R, int64_t tp, int64_t hid) {
  for (int64_t r = 0; r < R; ++r) {
    T* hr = h + r * hid;
    const T* qr = q + (r % tp) * hid;
#pragma omp simd
    for (int64_t j = 0; j < hid; ++j) {
      hr[j] = relu_add(hr[j], qr[j]);
    }
  }
}

// h[r] = relu(h[r] + row[y] + col[x]) for position p0 + r % tp = y * W + x.
template <typename T>
HGAD_KERNEL void add_relu_table_impl(T* h, const PositionTable<T>& pos, int64_t R, int64_t tp, int64_t hid) {
  for (int64_t r = 0; r < R; ++r) {
    const int64_t p = pos.p0 + r % tp;
    T* hr = h + r * hid;
    const T* qy = pos.row + (p / pos.width) * hid;
    const T* qx = pos.col + (p % pos.width) * hid;
#pragma omp simd
    for (int64_t j = 0; j < hid; ++j) {
      hr[j] = relu_add(hr[j], qy[j] + qx[j]);
    }
  }
}

// dh through the ReLU, and dqsum[p] = sum over the tile's images of dh at position p (dqsum null: a
// tile of one image, whose sums are dh itself).
template <typename T>
HGAD_KERNEL void relu_backward_impl(const T* h, T* dh, T* dqsum, int64_t R, int64_t tp, int64_t hid) {
  if (!dqsum) {
    for (int64_t i = 0; i < R * hid; ++i) dh[i] = relu_grad(h[i], dh[i]);
    return;
  }
  for (int64_t r = 0; r < R; ++r) {
    const T* hr = h + r * hid;
    T* dhr = dh + r * hid;
    T* qs = dqsum + (r % tp) * hid;
    const bool first = r < tp;
#pragma omp simd
    for (int64_t j = 0; j < hid; ++j) {
      const T g = relu_grad(hr[j], dhr[j]);
      dhr[j] = g;
      qs[j] = first ? g : qs[j] + g;
    }
  }
}

// a (the subnet output before bias and scaling) -> s, u = [v1, v2 e^s + t], u' = u g + b, ld += sum s + sum ln g.
template <typename T>
HGAD_KERNEL void affine_forward_impl(const BlockDims& d, const BlockParams<T>& bp, int64_t R, const T* v, const T* a,
                                     T* s, T* u, T* up, T* ld) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2;
  const T* bs = bp.b2;
  const T* bt = bp.b2 + C2;
  for (int64_t r = 0; r < R; ++r) {
    const T* vr = v + r * C;
    const T* ar = a + r * 2 * C2;
    T* sr = s + r * C2;
    T* ur = u + r * C;
    T* upr = up + r * C;
    // Whole vectors, then the last kTail elements again as one vector (rewriting the same values),
    // counting only the new ones in the sum: a scalar remainder of two exp per element was a third of
    // this loop's time at the flow's 100 channels.
    const int64_t whole = C2 >= kTail ? C2 / kTail * kTail : C2;
    T sum = T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < whole; ++j) {
      const T sj = coupling_log_scale(ar[j], bs[j], bp.clamp);
      const T tj = coupling_shift(ar[C2 + j], bt[j]);
      sr[j] = sj;
      ur[C1 + j] = vr[C1 + j] * fast_exp(sj) + tj;
      sum += sj;
    }
    if (whole < C2) {
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < kTail; ++i) {
        const int64_t j = C2 - kTail + i;
        const T sj = coupling_log_scale(ar[j], bs[j], bp.clamp);
        const T tj = coupling_shift(ar[C2 + j], bt[j]);
        sr[j] = sj;
        ur[C1 + j] = vr[C1 + j] * fast_exp(sj) + tj;
        sum += j >= whole ? sj : T(0);
      }
    }
    for (int64_t j = 0; j < C1; ++j) ur[j] = vr[j];
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) upr[j] = ur[j] * bp.g[j] + bp.offset[j];
    ld[r] += sum + bp.logdet_g;
  }
}

// du (dL/du', overwritten with dL/du) -> da = dL/d(subnet output before scaling), and dv when kInput
// (a compile-time switch keeps the branch out of the vector loop).
template <bool kInput, typename T>
HGAD_KERNEL void affine_backward_rows_impl(const BlockDims& d, const BlockParams<T>& bp, int64_t R, const T* v,
                                           const T* s, const T* dld, T* du, T* da, T* dv) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2;
  for (int64_t r = 0; r < R; ++r) {
    T* dur = du + r * C;
    const T* vr = v + r * C;
    const T* sr = s + r * C2;
    T* dar = da + r * 2 * C2;
    T* dvr = kInput ? dv + r * C : nullptr;
    const T dl = dld[r];
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) dur[j] *= bp.g[j];
#pragma omp simd
    for (int64_t j = 0; j < C2; ++j) {
      const T dv2p = dur[C1 + j];
      const T es = fast_exp(sr[j]);
      if constexpr (kInput) dvr[C1 + j] = dv2p * es;
      dar[j] = coupling_grad_s(dv2p, vr[C1 + j], es, dl, sr[j], bp.clamp);
      dar[C2 + j] = coupling_grad_t(dv2p);
    }
    if constexpr (kInput)
      for (int64_t j = 0; j < C1; ++j) dvr[j] = dur[j];
  }
}

// dv null: the input gradient is not wanted.
template <typename T>
HGAD_KERNEL void affine_backward_impl(const BlockDims& d, const BlockParams<T>& bp, int64_t R, const T* v,
                                      const T* s, const T* dld, T* du, T* da, T* dv) {
  if (dv)
    affine_backward_rows_impl<true>(d, bp, R, v, s, dld, du, da, dv);
  else
    affine_backward_rows_impl<false>(d, bp, R, v, s, dld, du, da, dv);
}

// up = w R (u' recovered) -> v1 written by the caller first; here v2 = (u2 - t) e^-s from the subnet output a.
template <typename T>
HGAD_KERNEL void affine_inverse_impl(const BlockDims& d, const BlockParams<T>& bp, int64_t R, const T* a, const T* up,
                                     T* v) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2;
  const T* bs = bp.b2;
  const T* bt = bp.b2 + C2;
  for (int64_t r = 0; r < R; ++r) {
    const T* ar = a + r * 2 * C2;
    const T* upr = up + r * C;
    T* vr = v + r * C;
#pragma omp simd
    for (int64_t j = 0; j < C2; ++j) {
      const T sj = coupling_log_scale(ar[j], bs[j], bp.clamp);
      const T tj = coupling_shift(ar[C2 + j], bt[j]);
      vr[C1 + j] = (upr[C1 + j] - tj) * fast_exp(-sj);
    }
  }
}

// gemm() in the block's precision: float with bf16 set goes to the bf16 kernel.
void mm(bool bf16, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (bf16)
    gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void mm(bool, bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
        int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// C[M, N] = A[M, K] op(B): through the packed copy of B when the block has one (packed in the block's
// precision), else a plain GEMM.
void product(const PackedMatrix* packed, bool bf16, bool transB, int64_t M, int64_t N, int64_t K, const float* A,
             int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc) {
  if (packed)
    packed->multiply(M, A, C);
  else
    mm(bf16, false, transB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}
void product(const PackedMatrix*, bool, bool transB, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
             const double* B, int64_t ldb, double* C, int64_t ldc) {
  gemm(false, transB, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

HGAD_CLONES void add_relu(float* h, const float* q, int64_t R, int64_t tp, int64_t hid) {
  add_relu_impl(h, q, R, tp, hid);
}
void add_relu(double* h, const double* q, int64_t R, int64_t tp, int64_t hid) { add_relu_impl(h, q, R, tp, hid); }
HGAD_CLONES void add_relu(float* h, const PositionTable<float>& pos, int64_t R, int64_t tp, int64_t hid) {
  add_relu_table_impl(h, pos, R, tp, hid);
}
void add_relu(double* h, const PositionTable<double>& pos, int64_t R, int64_t tp, int64_t hid) {
  add_relu_table_impl(h, pos, R, tp, hid);
}
HGAD_CLONES void relu_backward(const float* h, float* dh, float* dqsum, int64_t R, int64_t tp, int64_t hid) {
  relu_backward_impl(h, dh, dqsum, R, tp, hid);
}
void relu_backward(const double* h, double* dh, double* dqsum, int64_t R, int64_t tp, int64_t hid) {
  relu_backward_impl(h, dh, dqsum, R, tp, hid);
}
HGAD_CLONES void affine_forward_rows(const BlockDims& d, const BlockParams<float>& bp, int64_t R, const float* v,
                                     const float* a, float* s, float* u, float* up, float* ld) {
  affine_forward_impl(d, bp, R, v, a, s, u, up, ld);
}
void affine_forward_rows(const BlockDims& d, const BlockParams<double>& bp, int64_t R, const double* v,
                         const double* a, double* s, double* u, double* up, double* ld) {
  affine_forward_impl(d, bp, R, v, a, s, u, up, ld);
}
HGAD_CLONES void affine_backward_rows(const BlockDims& d, const BlockParams<float>& bp, int64_t R, const float* v,
                                      const float* s, const float* dld, float* du, float* da, float* dv) {
  affine_backward_impl(d, bp, R, v, s, dld, du, da, dv);
}
void affine_backward_rows(const BlockDims& d, const BlockParams<double>& bp, int64_t R, const double* v,
                          const double* s, const double* dld, double* du, double* da, double* dv) {
  affine_backward_impl(d, bp, R, v, s, dld, du, da, dv);
}
HGAD_CLONES void affine_inverse_rows(const BlockDims& d, const BlockParams<float>& bp, int64_t R, const float* a,
                                     const float* up, float* v) {
  affine_inverse_impl(d, bp, R, a, up, v);
}
void affine_inverse_rows(const BlockDims& d, const BlockParams<double>& bp, int64_t R, const double* a,
                         const double* up, double* v) {
  affine_inverse_impl(d, bp, R, a, up, v);
}

}  // namespace

template <typename T>
void block_pos_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t tp, const T* pe, T* q) {
  mm(bp.bf16, false, true, tp, d.hid, d.P, T(1), pe, d.P, bp.w1 + d.C1, d.n, T(0), q, d.hid);
  for (int64_t r = 0; r < tp; ++r) {
    T* qr = q + r * d.hid;
#pragma omp simd
    for (int64_t j = 0; j < d.hid; ++j) qr[j] += bp.b1[j];
  }
}

// Each encoding row is zero outside its own half (posenc.h): only that half of W1b multiplies it.
template <typename T>
void block_position_table(const BlockDims& d, const BlockParams<T>& bp, int64_t H, int64_t W, const T* pe_row,
                          const T* pe_col, T* row, T* col) {
  const int64_t half = d.P / 2;
  gemm(false, true, H, d.hid, half, T(1), pe_row + half, d.P, bp.w1 + d.C1 + half, d.n, T(0), row, d.hid);
  gemm(false, true, W, d.hid, half, T(1), pe_col, d.P, bp.w1 + d.C1, d.n, T(0), col, d.hid);
  for (int64_t r = 0; r < H; ++r) {
    T* qr = row + r * d.hid;
#pragma omp simd
    for (int64_t j = 0; j < d.hid; ++j) qr[j] += bp.b1[j];
  }
}

template <typename T>
void fold_position_grads(int64_t hid, int64_t tp, int64_t p0, int64_t W, const T* dqsum, T* drow, T* dcol) {
  for (int64_t r = 0; r < tp; ++r) {
    const int64_t p = p0 + r;
    const T* qs = dqsum + r * hid;
    T* gy = drow + (p / W) * hid;
    T* gx = dcol + (p % W) * hid;
#pragma omp simd
    for (int64_t j = 0; j < hid; ++j) {
      gy[j] += qs[j];
      gx[j] += qs[j];
    }
  }
}

template <typename T>
void block_position_table_backward(const BlockDims& d, int64_t H, int64_t W, const T* pe_row, const T* pe_col,
                                   const T* drow, const T* dcol, T* gw1, T* gb1) {
  const int64_t half = d.P / 2;
  gemm(true, false, d.hid, half, H, T(1), drow, d.hid, pe_row + half, d.P, T(1), gw1 + d.C1 + half, d.n);
  gemm(true, false, d.hid, half, W, T(1), dcol, d.hid, pe_col, d.P, T(1), gw1 + d.C1, d.n);
  for (int64_t y = 0; y < H; ++y) {
    const T* gy = drow + y * d.hid;
#pragma omp simd
    for (int64_t j = 0; j < d.hid; ++j) gb1[j] += gy[j];
  }
}

// The table's two rows for each of the tile's R rows: terms[r] (row[y]) and terms[R + r] (col[x]).
static const float* const* position_terms(const BlockDims& d, const PositionTable<float>& pos, int64_t R, int64_t tp) {
  thread_local std::vector<const float*> terms;
  terms.resize(static_cast<size_t>(2 * R));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t p = pos.p0 + r % tp;
    terms[r] = pos.row + (p / pos.width) * d.hid;
    terms[R + r] = pos.col + (p % pos.width) * d.hid;
  }
  return terms.data();
}

// Inference in bf16 on AMX (both packed matrices on hgad's kernel): h goes from the first product's
// accumulators through the ReLU into the second product's bf16 operand tiles, skipping a float h, its
// ReLU pass and its packing (bf16 scoring about a third faster on the bench:flow shapes). The same
// float operations, so the same result.
static bool subnet_forward_amx(const BlockDims& d, const BlockParams<float>& bp, int64_t R, int64_t tp, const float* v,
                               const PositionTable<float>& pos, float* a) {
  if (!bp.packed) return false;
  const Bf16Matrix* first = bp.packed->w1a.amx();
  const Bf16Matrix* second = bp.packed->w2.amx();
  if (!first || !second) return false;
  const float* const* terms = position_terms(d, pos, R, tp);
  second->multiply_tiles(R, first->multiply_relu_to_tiles(R, v, d.C, terms, terms + R), a, 2 * d.C2);
  return true;
}

// h = relu(v1 W1a^T + q[position]); a = 0.1 (h W2^T + b2). Q: the per-position rows, or a PositionTable.
// tiles (mixed-precision training on AMX): h is also written as the tiles both of its products read.
template <typename T, typename Q>
static void subnet_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v,
                           const Q& q, T* h, T* a, const HiddenTiles* tiles = nullptr) {
  if constexpr (std::is_same_v<Q, PositionTable<float>>) {
    if (subnet_forward_amx(d, bp, R, tp, v, q, a)) return;
    if (tiles && R > 0) {
      const float* const* terms = position_terms(d, q, R, tp);
      gemm_bf16_relu_amx(R, d.hid, d.C1, v, d.C, bp.w1, d.n, terms, terms + R, h, d.hid, tiles->a, tiles->b);
      gemm_bf16_tiled_a(R, 2 * d.C2, d.hid, tiles->a, true, bp.w2, d.hid, 1.0f, 0.0f, a, 2 * d.C2);
      return;
    }
  }
  product(bp.packed ? &bp.packed->w1a : nullptr, bp.bf16, true, R, d.hid, d.C1, v, d.C, bp.w1, d.n, h, d.hid);
  add_relu(h, q, R, tp, d.hid);
  product(bp.packed ? &bp.packed->w2 : nullptr, bp.bf16, true, R, 2 * d.C2, d.hid, h, d.hid, bp.w2, d.hid, a,
          2 * d.C2);
}

template <typename T, typename Q>
static void forward_impl(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v, const Q& q,
                         T* h, T* s, T* u, T* a, T* up, T* w, T* ld, const HiddenTiles* tiles = nullptr) {
  subnet_forward(d, bp, R, tp, v, q, h, a, tiles);
  affine_forward_rows(d, bp, R, v, a, s, u, up, ld);
  product(bp.packed ? &bp.packed->rot : nullptr, bp.bf16, true, R, d.C, d.C, up, d.C, bp.rot, d.C, w, d.C);
}

template <typename T>
void block_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v, const T* q,
                   T* h, T* s, T* u, T* a, T* up, T* w, T* ld) {
  forward_impl(d, bp, R, tp, v, q, h, s, u, a, up, w, ld);
}

template <typename T>
void block_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v,
                   const PositionTable<T>& pos, T* h, T* s, T* u, T* a, T* up, T* w, T* ld, const HiddenTiles* tiles) {
  forward_impl(d, bp, R, tp, v, pos, h, s, u, a, up, w, ld, tiles);
}

template <typename T>
const T* block_backward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* pe,
                        const T* v, const T* h, const T* s, const T* u, const T* dw, const T* dld, T* da, T* dh,
                        T* dqsum, T* du, const BlockGrads<T>& gr, T* dv, const HiddenTiles* tiles) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2, hid = d.hid;
  // w = u' R^T  =>  du' = dw R.
  const bool bf = bp.bf16;
  mm(bf, false, false, R, C, C, T(1), dw, C, bp.rot, C, T(0), du, C);
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
  affine_backward_rows(d, bp, R, v, s, dld, du, da, dv);
  if constexpr (std::is_same_v<T, float>) {
    if (tiles)
      gemm_bf16_tiled_b(true, 2 * C2, hid, R, da, 2 * C2, tiles->b, 1.0f, 1.0f, gr.w2, hid);
    else
      mm(bf, true, false, 2 * C2, hid, R, T(1), da, 2 * C2, h, hid, T(1), gr.w2, hid);
  } else {
    mm(bf, true, false, 2 * C2, hid, R, T(1), da, 2 * C2, h, hid, T(1), gr.w2, hid);
  }
  for (int64_t r = 0; r < R; ++r) {
    const T* dar = da + r * 2 * C2;
#pragma omp simd
    for (int64_t j = 0; j < 2 * C2; ++j) gr.b2[j] += dar[j];
  }
  // The positional half of W1 sees each position once per image: its gradient sums over the tile's
  // images first (dqsum; a tile of one image leaves it in dh and returns dh's address).
  const T* dq = R == tp ? dh : dqsum;
  bool tiled = false;
  if constexpr (std::is_same_v<T, float>) {
    if (tiles) {  // dh (as floats only when it is dq) and the tiles of dh and dh^T, from the accumulators
      gemm_bf16_relu_grad_amx(R, hid, 2 * C2, da, 2 * C2, bp.w2, hid, h, hid, R == tp ? dh : nullptr,
                              R == tp ? nullptr : dqsum, hid, tp, tiles->a, tiles->at);
      gemm_bf16_tiled_a(hid, C1, R, tiles->at, false, v, C, 1.0f, 1.0f, gr.w1, d.n);
      tiled = true;
    }
  }
  if (!tiled) {
    mm(bf, false, false, R, hid, 2 * C2, T(1), da, 2 * C2, bp.w2, hid, T(0), dh, hid);
    relu_backward(h, dh, R == tp ? static_cast<T*>(nullptr) : dqsum, R, tp, hid);
    mm(bf, true, false, hid, C1, R, T(1), dh, hid, v, C, T(1), gr.w1, d.n);
  }
  if (pe) {
    mm(bf, true, false, hid, d.P, tp, T(1), dq, hid, pe, d.P, T(1), gr.w1 + C1, d.n);
    for (int64_t r = 0; r < tp; ++r) {
      const T* qs = dq + r * hid;
#pragma omp simd
      for (int64_t j = 0; j < hid; ++j) gr.b1[j] += qs[j];
    }
  }
  if (dv) {
    if constexpr (std::is_same_v<T, float>) {
      if (tiled) {
        gemm_bf16_tiled_a(R, C1, hid, tiles->a, false, bp.w1, d.n, 1.0f, 1.0f, dv, C);
        return dq;
      }
    }
    mm(bf, false, false, R, C1, hid, T(1), dh, hid, bp.w1, d.n, T(1), dv, C);
  }
  return dq;
}

template <typename T, typename Q>
static void inverse_impl(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w, const Q& q,
                         T* h, T* a, T* up, T* v) {
  const int64_t C = d.C, C1 = d.C1;
  product(bp.packed ? &bp.packed->rot_inverse : nullptr, bp.bf16, false, R, C, C, w, C, bp.rot, C, up, C);
  for (int64_t r = 0; r < R; ++r) {
    T* upr = up + r * C;
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) upr[j] = (upr[j] - bp.offset[j]) / bp.g[j];
    for (int64_t j = 0; j < C1; ++j) v[r * C + j] = upr[j];
  }
  subnet_forward(d, bp, R, tp, v, q, h, a);
  affine_inverse_rows(d, bp, R, a, up, v);
}

template <typename T>
void block_inverse(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w, const T* q,
                   T* h, T* a, T* up, T* v) {
  inverse_impl(d, bp, R, tp, w, q, h, a, up, v);
}

template <typename T>
void block_inverse(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w,
                   const PositionTable<T>& pos, T* h, T* a, T* up, T* v) {
  inverse_impl(d, bp, R, tp, w, pos, h, a, up, v);
}

#define HGAD_INSTANTIATE(T)                                                                                     \
  template void block_pos_forward<T>(const BlockDims&, const BlockParams<T>&, int64_t, const T*, T*);          \
  template void block_forward<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*, const T*, \
                                 T*, T*, T*, T*, T*, T*, T*);                                                   \
  template const T* block_backward<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*,         \
                                  const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, T*,         \
                                  const BlockGrads<T>&, T*, const HiddenTiles*);                                \
  template void block_inverse<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*, const T*, \
                                 T*, T*, T*, T*);                                                               \
  template void block_forward<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*,          \
                                 const PositionTable<T>&, T*, T*, T*, T*, T*, T*, T*, const HiddenTiles*);      \
  template void block_inverse<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*,          \
                                 const PositionTable<T>&, T*, T*, T*, T*);                                      \
  template void block_position_table<T>(const BlockDims&, const BlockParams<T>&, int64_t, int64_t, const T*,   \
                                        const T*, T*, T*);                                                      \
  template void fold_position_grads<T>(int64_t, int64_t, int64_t, int64_t, const T*, T*, T*);                  \
  template void block_position_table_backward<T>(const BlockDims&, int64_t, int64_t, const T*, const T*,       \
                                                 const T*, const T*, T*, T*);
HGAD_INSTANTIATE(float)
HGAD_INSTANTIATE(double)
#undef HGAD_INSTANTIATE

}  // namespace hgad
