#include "bf16_gemm.h"

#include <algorithm>

#include "bf16.h"
#include "cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// GCC 12's unmasked AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports once they are inlined into a target("...") function: a false positive (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define HGAD_HAVE_BF16_KERNEL 1
#define HGAD_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#endif

namespace hgad {

namespace {

// Packed operands: pairs of consecutive k in one uint32 (k even in the low half), the layout vdpbf16ps
// reads. A: element (m, kp) at a[m * ars + kp * aks]; B: [KP][NP], NP a multiple of 32, zero-padded.
constexpr int64_t kNr = 32, kMr = 8;

inline uint32_t pair(float lo, float hi) {
  return static_cast<uint32_t>(to_bf16(lo)) | (static_cast<uint32_t>(to_bf16(hi)) << 16);
}

// Scalar packing (the reference path, and Bf16Matrix whose weights are packed once).
// Element (r, c) of the source at s[r * sr + c * sc]; pairs along r.
void pack_pairs_scalar(int64_t R, int64_t Ccount, const float* s, int64_t sr, int64_t sc, uint32_t* out,
                       int64_t out_kp, int64_t out_c) {
  for (int64_t kp = 0; kp < (R + 1) / 2; ++kp)
    for (int64_t c = 0; c < Ccount; ++c) {
      const float lo = s[2 * kp * sr + c * sc];
      const float hi = 2 * kp + 1 < R ? s[(2 * kp + 1) * sr + c * sc] : 0.0f;
      out[kp * out_kp + c * out_c] = pair(lo, hi);
    }
}

}  // namespace

void gemm_bf16_reference(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const float a = from_bf16(to_bf16(transA ? A[k * lda + i] : A[i * lda + k]));
        const float b = from_bf16(to_bf16(transB ? B[j * ldb + k] : B[k * ldb + j]));
        acc += a * b;
      }
      float& c = C[i * ldc + j];
      c = beta == 0.0f ? alpha * acc : alpha * acc + beta * c;
    }
}

#ifdef HGAD_HAVE_BF16_KERNEL
namespace {

// 16 floats of row lo and row hi (null: zeros) -> 16 pairs; n <= 16 valid.
HGAD_BF16_TARGET inline __m512i pairs16(const float* lo, const float* hi, int64_t n) {
  const __mmask16 m = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
  const __m512 l = _mm512_maskz_loadu_ps(m, lo);
  const __m512 h = hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps();
  // vcvtne2ps2bf16 puts h in the upper 256 bits, l in the lower: widen each 16-bit lane to 32 bits.
  const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h, l));
  const __m512i lo32 = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(both));
  const __m512i hi32 = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(both, 1));
  return _mm512_or_si512(lo32, _mm512_slli_epi32(hi32, 16));
}

// Row `row` (K floats, contiguous) -> KP pairs along k.
HGAD_BF16_TARGET inline void pairs_in_row(const float* row, int64_t K, uint32_t* out) {
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 l = _mm512_loadu_ps(row + k), h = _mm512_loadu_ps(row + k + 16);
    _mm512_storeu_si512(out + k / 2, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h, l)));
  }
  if (k < K) {
    const int64_t rest = K - k;
    const __mmask16 ml = rest >= 16 ? __mmask16(0xffff) : __mmask16((1u << rest) - 1);
    const __mmask16 mh = rest > 16 ? __mmask16((1u << (rest - 16)) - 1) : __mmask16(0);
    const __m512 l = _mm512_maskz_loadu_ps(ml, row + k), h = _mm512_maskz_loadu_ps(mh, row + k + 16);
    const int64_t pairs = (rest + 1) / 2;
    _mm512_mask_storeu_epi32(out + k / 2, __mmask16((1u << pairs) - 1),
                             reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h, l)));
  }
}

// Rows r (stride sr) pairwise, `count` contiguous elements each, into out[kp * out_stride + c].
HGAD_BF16_TARGET void pack_across_rows(int64_t R, int64_t count, const float* s, int64_t sr, uint32_t* out,
                                       int64_t out_stride) {
  for (int64_t kp = 0; kp < (R + 1) / 2; ++kp) {
    const float* lo = s + 2 * kp * sr;
    const float* hi = 2 * kp + 1 < R ? lo + sr : nullptr;
    uint32_t* o = out + kp * out_stride;
    for (int64_t c = 0; c < count; c += 16)
      _mm512_mask_storeu_epi32(o + c, count - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - c)) - 1),
                               pairs16(lo + c, hi ? hi + c : nullptr, count - c));
  }
}

// MR rows x 32 columns (WIDE) or x 16 (the last panel when at most 16 of its columns are real: the
// flow's 100- and 200-wide products would otherwise compute 28% and 12% of zeros).
template <int MR, bool WIDE>
HGAD_BF16_TARGET inline void micro(int64_t KP, const uint32_t* a, int64_t ars, int64_t aks, const uint32_t* b,
                                   int64_t ldb, float alpha, float beta, float* c, int64_t ldc, __mmask16 m0,
                                   __mmask16 m1) {
  __m512 acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < KP; ++kp) {
    const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + kp * ldb));
    const __m512bh b1 = WIDE ? reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + kp * ldb + 16)) : b0;
    const uint32_t* ak = a + kp * aks;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512bh ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(ak[i * ars])));
      acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, b0);
      if (WIDE) acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, b1);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(acc0[i], va);
    if (beta != 0.0f) r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
    _mm512_mask_storeu_ps(ci, m0, r0);
    if (!WIDE) continue;
    __m512 r1 = _mm512_mul_ps(acc1[i], va);
    if (beta != 0.0f) r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

HGAD_BF16_TARGET void run_kernel(int64_t M, int64_t N, int64_t KP, const uint32_t* a, int64_t ars, int64_t aks,
                                 const uint32_t* b, int64_t ldb, float alpha, float beta, float* C, int64_t ldc) {
  for (int64_t n0 = 0; n0 < N; n0 += kNr) {
    const int64_t nr = std::min(kNr, N - n0);
    const __mmask16 m0 = nr >= 16 ? __mmask16(0xffff) : __mmask16((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? __mmask16(0xffff) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
    for (int64_t i0 = 0; i0 < M; i0 += kMr) {
      const uint32_t* ai = a + i0 * ars;
      float* ci = C + i0 * ldc + n0;
      const bool wide = nr > 16;
      switch (std::min(kMr, M - i0)) {
#define HGAD_MICRO(n)                                                                    \
  case n:                                                                                \
    if (wide)                                                                            \
      micro<n, true>(KP, ai, ars, aks, b + n0, ldb, alpha, beta, ci, ldc, m0, m1);       \
    else                                                                                 \
      micro<n, false>(KP, ai, ars, aks, b + n0, ldb, alpha, beta, ci, ldc, m0, m1);      \
    break;
        HGAD_MICRO(8) HGAD_MICRO(7) HGAD_MICRO(6) HGAD_MICRO(5) HGAD_MICRO(4) HGAD_MICRO(3) HGAD_MICRO(2)
        HGAD_MICRO(1)
#undef HGAD_MICRO
      }
    }
  }
}

// Grow-only per-thread packing buffers: the hot loops never allocate once warm.
uint32_t* scratch(std::vector<uint32_t>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Packs op(A) [M, K]; returns the strides (ars, aks) of the packed layout.
HGAD_BF16_TARGET const uint32_t* pack_a(bool transA, int64_t M, int64_t K, const float* A, int64_t lda,
                                        int64_t& ars, int64_t& aks) {
  thread_local std::vector<uint32_t> buf;
  const int64_t KP = (K + 1) / 2;
  if (!transA) {  // rows of A hold k contiguously: [m][kp]
    uint32_t* p = scratch(buf, M * KP);
    for (int64_t m = 0; m < M; ++m) pairs_in_row(A + m * lda, K, p + m * KP);
    ars = KP;
    aks = 1;
    return p;
  }
  const int64_t MP = (M + 15) / 16 * 16;  // A^T stored: m contiguous, [kp][m]
  uint32_t* p = scratch(buf, KP * MP);
  pack_across_rows(K, M, A, lda, p, MP);
  ars = 1;
  aks = MP;
  return p;
}

// Packs op(B) [K, N] into [KP][NP], zero-padded.
HGAD_BF16_TARGET const uint32_t* pack_b(bool transB, int64_t K, int64_t N, const float* B, int64_t ldb,
                                        int64_t& NP) {
  thread_local std::vector<uint32_t> buf, row;
  const int64_t KP = (K + 1) / 2;
  NP = (N + kNr - 1) / kNr * kNr;
  uint32_t* p = scratch(buf, KP * NP);
  if (!transB) {
    pack_across_rows(K, N, B, ldb, p, NP);
    for (int64_t kp = 0; kp < KP; ++kp) std::fill(p + kp * NP + N, p + kp * NP + NP, 0u);
  } else {  // B^T stored: row n holds k contiguously; its pairs go down column n
    // 16 rows at a time into a small buffer, then out by kp: each store fills 16 adjacent columns (one
    // cache line) instead of one column element per cache line: packing a 200 x 712 B^T takes 20-30% less.
    constexpr int64_t kRows = 16;
    uint32_t* r = scratch(row, kRows * KP);
    for (int64_t n0 = 0; n0 < N; n0 += kRows) {
      const int64_t rows = std::min(kRows, N - n0);
      for (int64_t j = 0; j < rows; ++j) pairs_in_row(B + (n0 + j) * ldb, K, r + j * KP);
      for (int64_t kp = 0; kp < KP; ++kp) {
        uint32_t* o = p + kp * NP + n0;
        for (int64_t j = 0; j < rows; ++j) o[j] = r[j * KP + kp];
      }
    }
    for (int64_t kp = 0; kp < KP; ++kp) std::fill(p + kp * NP + N, p + kp * NP + NP, 0u);
  }
  return p;
}

HGAD_BF16_TARGET void convert_avx512(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(out + i, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + i + 16),
                                                                               _mm512_loadu_ps(in + i))));
  for (; i < n; ++i) out[i] = to_bf16(in[i]);
}

}  // namespace
#endif  // HGAD_HAVE_BF16_KERNEL

bool bf16_kernel_available() {
#ifdef HGAD_HAVE_BF16_KERNEL
  return cpu_features().avx512_bf16;
#else
  return false;
#endif
}

void convert_to_bf16(const float* in, uint16_t* out, int64_t n) {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (bf16_kernel_available()) return convert_avx512(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(in[i]);
}

void gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
#ifdef HGAD_HAVE_BF16_KERNEL
  if (bf16_kernel_available()) {
    int64_t ars, aks, NP;
    const uint32_t* b = pack_b(transB, K, N, B, ldb, NP);
    const uint32_t* a = pack_a(transA, M, K, A, lda, ars, aks);
    run_kernel(M, N, (K + 1) / 2, a, ars, aks, b, NP, alpha, beta, C, ldc);
    return;
  }
#endif
  gemm_bf16_reference(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

Bf16Matrix::Bf16Matrix(int64_t K, int64_t N, const float* b, int64_t stride_k, int64_t stride_n)
    : K_(K), N_(N), KP_((K + 1) / 2), NP_((N + kNr - 1) / kNr * kNr), pairs_(static_cast<size_t>(KP_ * NP_), 0u) {
  pack_pairs_scalar(K, N, b, stride_k, stride_n, pairs_.data(), NP_, 1);
}

void Bf16Matrix::multiply(int64_t M, const float* A, int64_t lda, float* C, int64_t ldc) const {
  if (M == 0 || N_ == 0) return;
#ifdef HGAD_HAVE_BF16_KERNEL
  if (bf16_kernel_available() && K_ > 0) {
    int64_t ars, aks;
    const uint32_t* a = pack_a(false, M, K_, A, lda, ars, aks);
    run_kernel(M, N_, KP_, a, ars, aks, pairs_.data(), NP_, 1.0f, 0.0f, C, ldc);
    return;
  }
#endif
  // The same rounding, scalar: the packed pairs are exact bf16 values.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N_; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K_; ++k) {
        const uint32_t p = pairs_[(k / 2) * NP_ + j];
        acc += from_bf16(to_bf16(A[i * lda + k])) * from_bf16(static_cast<uint16_t>(k % 2 ? p >> 16 : p & 0xffffu));
      }
      C[i * ldc + j] = acc;
    }
}

}  // namespace hgad
