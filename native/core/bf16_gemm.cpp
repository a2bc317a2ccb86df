#include "bf16_gemm.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "bf16.h"
#include "cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// GCC 12's unmasked AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports once they are inlined into a target("...") function: a false positive (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // the same at -O1 with the sanitizers (transpose16's unpacks)
#include <immintrin.h>
#define HGAD_HAVE_BF16_KERNEL 1
#define HGAD_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define HGAD_AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))
#endif

namespace hgad {

namespace {

// Packed operands: pairs of consecutive k in one uint32 (k even in the low half), the layout vdpbf16ps
// reads. A: element (m, kp) at a[m * ars + kp * aks]; B: [KP][NP], NP a multiple of 32, zero-padded.
constexpr int64_t kNr = 32, kMr = 8;
// The AMX kernel's block: 32 rows of C, 16 k-pairs per tile (run_amx).
constexpr int64_t kAmxM = 32, kAmxKP = 16;

inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

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

// 32 bf16 lanes [l0..l15, h0..h15] -> the 16 pairs (l_i, h_i), l_i in the low half (one vpermw).
HGAD_BF16_TARGET inline __m512i interleave(__m512i both) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                                       20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, both);
}

// 16 floats of row lo and row hi (null: zeros) -> 16 pairs; n <= 16 valid.
HGAD_BF16_TARGET inline __m512i pairs16(const float* lo, const float* hi, int64_t n) {
  const __mmask16 m = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
  const __m512 l = _mm512_maskz_loadu_ps(m, lo);
  const __m512 h = hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps();
  // vcvtne2ps2bf16 puts h in the upper 256 bits, l in the lower.
  return interleave(reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h, l)));
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

// AMX (Sapphire Rapids and later): tdpbf16ps multiplies a 16 x 32 bf16 tile of A by a 32 x 16 tile of B
// (16 k-pairs x 16 columns of the pair layout above) into a 16 x 16 float tile, 16 times the work of one
// vdpbf16ps. Each step computes a 32 x 32 block of C in 4 tiles, from 2 tiles of A and 2 of B. Both
// operands are stored tile by tile (1 KiB each, contiguous: tile loads with a row stride of a whole
// matrix row ran at a few percent of the unit's rate), zero-padded to whole tiles:
// A: tile (mb, kb) at a + (mb * KB + kb) * 256, rows m of block mb, k-pairs of block kb;
// B: tile (nb, kb) at b + (nb * KB + kb) * 256, k-pairs of block kb, columns of block nb (NB even).
constexpr int64_t kTile = 256;  // uint32 per tile

struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// What a finished 32 x 32 block of C becomes: `out` holds it with rows 32 floats apart, rows i0.. and
// columns n0.. of C, mr x nr of them real (columns past 16 are stale when nr <= 16: read them masked).
// C = alpha A B + beta C:
struct StoreScaled {
  static constexpr bool kColumnsOuter = false;
  float alpha, beta;
  float* C;
  int64_t ldc;
  HGAD_AMX_TARGET void operator()(int64_t i0, int64_t n0, int64_t mr, __mmask16 m0, __mmask16 m1, const float* out) const {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t i = 0; i < mr; ++i) {
      float* ci = C + (i0 + i) * ldc + n0;
      __m512 r0 = _mm512_mul_ps(_mm512_load_ps(out + i * 32), va);
      if (beta != 0.0f) r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
      _mm512_mask_storeu_ps(ci, m0, r0);
      if (!m1) continue;
      __m512 r1 = _mm512_mul_ps(_mm512_load_ps(out + i * 32 + 16), va);
      if (beta != 0.0f) r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
      _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
  }
};

// One row of a finished block through relu_add(h, qa + qb) (elementwise.h), in the same float
// operations, as max(x, 0): h0 its columns n0.., h1 its columns n0 + 16.. (zeros where masked off).
HGAD_AMX_TARGET inline void relu_row(const float* qa, const float* qb, const float* acc, __mmask16 m0, __mmask16 m1,
                                     __m512& h0, __m512& h1) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 q0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, qa), _mm512_maskz_loadu_ps(m0, qb));
  const __m512 q1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, qa + 16), _mm512_maskz_loadu_ps(m1, qb + 16));
  h0 = _mm512_max_ps(_mm512_add_ps(_mm512_maskz_load_ps(m0, acc), q0), zero);
  h1 = _mm512_max_ps(_mm512_add_ps(_mm512_maskz_load_ps(m1, acc + 16), q1), zero);
}

// H = relu(A B + qa[row] + qb[row]) written as the A tiles of a following product (rows x k-pairs, the
// layout pack_amx gives A): a 32 x 32 block of H is two such tiles, k block n0 / 32. Columns past N and
// rows past M are written as zeros, as packing pads them.
struct StoreReluTiles {
  // Column blocks outer: the position tables' columns n0.. of every row in the tile stay in L1 (with
  // row blocks outer a single 64 x 64 map, whose 512-row tiles reach 64 table columns, scored 9-13%
  // slower per CPU-second than sixteen 16 x 16 maps; 0-4% this way).
  static constexpr bool kColumnsOuter = true;
  const float* const* qa;
  const float* const* qb;
  uint32_t* tiles;
  int64_t KB;  // k blocks of the tiles: N rounded up to 32, over 32
  HGAD_AMX_TARGET void operator()(int64_t i0, int64_t n0, int64_t mr, __mmask16 m0, __mmask16 m1, const float* out) const {
    for (int64_t i = 0; i < kAmxM; ++i) {
      const int64_t row = i0 + i;
      __m512i* t = reinterpret_cast<__m512i*>(tiles + ((row / 16) * KB + n0 / 32) * kTile + (row % 16) * 16);
      if (i >= mr) {
        _mm512_storeu_si512(t, _mm512_setzero_si512());
        continue;
      }
      __m512 h0, h1;
      relu_row(qa[row] + n0, qb[row] + n0, out + i * 32, m0, m1, h0, h1);
      _mm512_storeu_si512(t, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h1, h0)));
    }
  }
};

// Mixed-precision training's first layer: StoreReluTiles' tiles (ha), and besides them H as floats for
// the backward pass and as the B operand of the weight gradient that reads H with k down its rows (hb:
// k-pairs of rows 2kp, 2kp + 1 by 16 columns, tile (nb, kb) at hb + (nb * KBr + kb) * 256).
struct StoreReluTrain {
  static constexpr bool kColumnsOuter = false;
  const float* const* qa;
  const float* const* qb;
  float* H;
  int64_t ldh;
  uint32_t* ha;
  int64_t KB;  // ha's k blocks: N rounded up to 32, over 32
  uint32_t* hb;
  int64_t KBr;  // hb's k blocks: M rounded up to 32, over 32
  HGAD_AMX_TARGET void operator()(int64_t i0, int64_t n0, int64_t mr, __mmask16 m0, __mmask16 m1, const float* out) const {
    const __m512 zero = _mm512_setzero_ps();
    uint32_t* b0 = hb + ((n0 / 16) * KBr + i0 / 32) * kTile;
    uint32_t* b1 = b0 + KBr * kTile;
    for (int64_t i = 0; i < kAmxM; i += 2) {
      __m512 h[2][2];
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t row = i0 + i + j;
        if (i + j < mr) {
          relu_row(qa[row] + n0, qb[row] + n0, out + (i + j) * 32, m0, m1, h[j][0], h[j][1]);
          _mm512_mask_storeu_ps(H + row * ldh + n0, m0, h[j][0]);
          if (m1) _mm512_mask_storeu_ps(H + row * ldh + n0 + 16, m1, h[j][1]);
        } else {
          h[j][0] = h[j][1] = zero;
        }
        _mm512_storeu_si512(ha + ((row / 16) * KB + n0 / 32) * kTile + (row % 16) * 16,
                            reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h[j][1], h[j][0])));
      }
      _mm512_storeu_si512(b0 + (i / 2) * 16, interleave(reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h[1][0], h[0][0]))));
      _mm512_storeu_si512(b1 + (i / 2) * 16, interleave(reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h[1][1], h[0][1]))));
    }
  }
};

template <class Store>
HGAD_AMX_TARGET void run_amx(int64_t M, int64_t N, int64_t KB, const uint32_t* a, const uint32_t* b, const Store& store) {
  // Every tile 16 rows x 64 bytes. Loaded on every call: the tile state is per thread and released below.
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) float out[kAmxM * 32];
  // Row blocks outer unless the store says otherwise: the two A tiles of a block row stay in L1 while
  // B's column blocks stream past (measured: 3-15% faster per product than column blocks outer, 11-15%
  // per bf16 training step).
  const int64_t mblocks = (M + kAmxM - 1) / kAmxM, nblocks = (N + 31) / 32;
  for (int64_t t = 0; t < mblocks * nblocks; ++t) {
    const int64_t i0 = (Store::kColumnsOuter ? t % mblocks : t / nblocks) * kAmxM;
    const int64_t n0 = (Store::kColumnsOuter ? t / mblocks : t % nblocks) * 32;
    const int64_t nr = std::min<int64_t>(32, N - n0);
    const __mmask16 m0 = nr >= 16 ? __mmask16(0xffff) : __mmask16((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? __mmask16(0xffff) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
    const uint32_t* b0 = b + (n0 / 16) * KB * kTile;
    const uint32_t* b1 = b0 + KB * kTile;
    const uint32_t* a0 = a + (i0 / 16) * KB * kTile;
    const uint32_t* a1 = a0 + KB * kTile;
    const int64_t mr = std::min(kAmxM, M - i0);
    // A last block of at most 16 rows or columns runs half (or a quarter) of the tile products: the
    // flow's 100-, 200- and 712-wide products end in such blocks.
    const bool two_m = mr > 16, two_n = nr > 16;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    if (two_m && two_n) {
      for (int64_t kb = 0; kb < KB; ++kb) {
        _tile_loadd(4, a0 + kb * kTile, 64);
        _tile_loadd(5, a1 + kb * kTile, 64);
        _tile_loadd(6, b0 + kb * kTile, 64);
        _tile_loadd(7, b1 + kb * kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    } else if (two_m) {
      for (int64_t kb = 0; kb < KB; ++kb) {
        _tile_loadd(4, a0 + kb * kTile, 64);
        _tile_loadd(5, a1 + kb * kTile, 64);
        _tile_loadd(6, b0 + kb * kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
      }
    } else if (two_n) {
      for (int64_t kb = 0; kb < KB; ++kb) {
        _tile_loadd(4, a0 + kb * kTile, 64);
        _tile_loadd(6, b0 + kb * kTile, 64);
        _tile_loadd(7, b1 + kb * kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
      }
    } else {
      for (int64_t kb = 0; kb < KB; ++kb) {
        _tile_loadd(4, a0 + kb * kTile, 64);
        _tile_loadd(6, b0 + kb * kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
      }
    }
    _tile_stored(0, out, 128);
    if (two_n) _tile_stored(1, out + 16, 128);
    if (two_m) _tile_stored(2, out + 16 * 32, 128);
    if (two_m && two_n) _tile_stored(3, out + 16 * 32 + 16, 128);
    store(i0, n0, mr, m0, m1, out);
  }
  _tile_release();
}

// Pairs [R][ld] (R a multiple of 16 rows, ld >= the columns used) -> tiles of 16 rows x 16 columns:
// tile (cb, rb) at out + (cb * RB + rb) * 256 (B's order: column blocks outer), or (rb, cb) at
// out + (rb * CB + cb) * 256 (A's: row blocks outer), with CB = cols / 16.
void to_tiles(const uint32_t* in, int64_t R, int64_t cols, int64_t ld, bool columns_outer, uint32_t* out) {
  const int64_t RB = R / 16, CB = cols / 16;
  for (int64_t rb = 0; rb < RB; ++rb)
    for (int64_t cb = 0; cb < CB; ++cb) {
      uint32_t* t = out + (columns_outer ? cb * RB + rb : rb * CB + cb) * kTile;
      for (int64_t r = 0; r < 16; ++r) std::copy_n(in + (rb * 16 + r) * ld + cb * 16, 16, t + r * 16);
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

// r[0..15] (16 x 16 uint32, a row each) transposed in place.
HGAD_AMX_TARGET inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Each row now holds its 4 columns of every 4-row group in its 128-bit lanes: gather lanes.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// Mixed-precision training's backward through the first layer's ReLU: G = relu_grad(h, A B)
// (elementwise.h), as floats when G is set (rows ldg apart), summed per position over the tile's images
// into gsum when set (gsum[(row % tp) * ldg + j], the first image writing: relu_backward's dqsum), and
// as bf16 tiles twice: ga, G as an A operand (rows x column pairs, like StoreReluTiles), and gt, G^T as
// an A operand (columns x row pairs: tile (nb, kb) at gt + (nb * KBr + kb) * 256, nb a 16-column block).
struct StoreReluGrad {
  static constexpr bool kColumnsOuter = false;
  const float* h;
  int64_t ldh;
  float* G;
  float* gsum;
  int64_t ldg, tp;
  uint32_t* ga;
  int64_t KB;  // ga's k blocks: N rounded up to 32, over 32
  uint32_t* gt;
  int64_t KBr;  // gt's k blocks: M rounded up to 32, over 32
  HGAD_AMX_TARGET void operator()(int64_t i0, int64_t n0, int64_t mr, __mmask16 m0, __mmask16 m1, const float* out) const {
    const __m512 zero = _mm512_setzero_ps();
    __m512i pairs[2][16];  // [column half][row pair]: G's pairs down the rows, transposed below
    for (int64_t i = 0; i < kAmxM; i += 2) {
      __m512 g[2][2];
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t row = i0 + i + j;
        if (i + j >= mr) {
          g[j][0] = g[j][1] = zero;
        } else {
          const float* hr = h + row * ldh + n0;
          const __m512 h0 = _mm512_maskz_loadu_ps(m0, hr), h1 = _mm512_maskz_loadu_ps(m1, hr + 16);
          g[j][0] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(h0, zero, _CMP_GT_OQ), _mm512_maskz_load_ps(m0, out + (i + j) * 32));
          g[j][1] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(h1, zero, _CMP_GT_OQ), _mm512_maskz_load_ps(m1, out + (i + j) * 32 + 16));
          if (G) {
            _mm512_mask_storeu_ps(G + row * ldg + n0, m0, g[j][0]);
            if (m1) _mm512_mask_storeu_ps(G + row * ldg + n0 + 16, m1, g[j][1]);
          }
          if (gsum) {
            float* q = gsum + (row % tp) * ldg + n0;
            const bool first = row < tp;
            _mm512_mask_storeu_ps(q, m0, first ? g[j][0] : _mm512_add_ps(_mm512_maskz_loadu_ps(m0, q), g[j][0]));
            if (m1) _mm512_mask_storeu_ps(q + 16, m1, first ? g[j][1] : _mm512_add_ps(_mm512_maskz_loadu_ps(m1, q + 16), g[j][1]));
          }
        }
        _mm512_storeu_si512(ga + ((row / 16) * KB + n0 / 32) * kTile + (row % 16) * 16,
                            reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(g[j][1], g[j][0])));
      }
      pairs[0][i / 2] = interleave(reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(g[1][0], g[0][0])));
      pairs[1][i / 2] = interleave(reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(g[1][1], g[0][1])));
    }
    for (int64_t c = 0; c < 2; ++c) {
      transpose16(pairs[c]);
      uint32_t* t = gt + ((n0 / 16 + c) * KBr + i0 / 32) * kTile;
      for (int r = 0; r < 16; ++r) _mm512_storeu_si512(t + r * 16, pairs[c][r]);
    }
  }
};

// 16 pairs of k in [32 kb, 32 kb + 32) of a row holding k contiguously (K of them; zeros past K).
HGAD_AMX_TARGET inline __m512i row_pairs(const float* row, int64_t K, int64_t kb) {
  const int64_t k = kb * 32, rest = std::max<int64_t>(0, std::min<int64_t>(32, K - k));
  const __mmask16 ml = rest >= 16 ? __mmask16(0xffff) : __mmask16((1u << rest) - 1);
  const __mmask16 mh = rest >= 32 ? __mmask16(0xffff) : rest > 16 ? __mmask16((1u << (rest - 16)) - 1) : __mmask16(0);
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(mh, row + k + 16), _mm512_maskz_loadu_ps(ml, row + k)));
}

// Tiles of a matrix X [R][Kdim] whose rows hold k contiguously (A, or B^T stored), R rows (zeros past
// R, up to RB * 16): transposed = false gives tiles of rows x k-pairs (A's, row blocks outer), true
// tiles of k-pairs x rows (B's, row blocks outer as column blocks are B's outer order).
HGAD_AMX_TARGET void tiles_from_rows(const float* X, int64_t ld, int64_t R, int64_t Kdim, int64_t RB, int64_t KB,
                                     bool transposed, uint32_t* out) {
  for (int64_t rb = 0; rb < RB; ++rb)
    for (int64_t kb = 0; kb < KB; ++kb) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t row = rb * 16 + i;
        r[i] = row < R ? row_pairs(X + row * ld, Kdim, kb) : _mm512_setzero_si512();
      }
      if (transposed) transpose16(r);
      uint32_t* t = out + (rb * KB + kb) * kTile;
      for (int i = 0; i < 16; ++i) _mm512_storeu_si512(t + i * 16, r[i]);
    }
}

// Tiles of a matrix X [Kdim][Ccount] whose rows are k (A^T or B stored): pairs across rows 2kp, 2kp+1;
// transposed = false gives tiles of k-pairs x columns (B's), true tiles of columns x k-pairs (A's);
// column blocks outer, CB * 16 columns (zeros past Ccount), KB * 16 k-pairs (zeros past Kdim).
HGAD_AMX_TARGET void tiles_from_columns(const float* X, int64_t ld, int64_t Kdim, int64_t Ccount, int64_t CB, int64_t KB,
                                        bool transposed, uint32_t* out) {
  // k blocks outer: each pass reads a band of 32 rows of X from left to right (column blocks outer read
  // 64 bytes from each of hundreds of rows per tile, and the packing waited on those loads).
  for (int64_t kb = 0; kb < KB; ++kb)
    for (int64_t cb = 0; cb < CB; ++cb) {
      __m512i r[16];
      const int64_t c0 = cb * 16, n = std::max<int64_t>(0, std::min<int64_t>(16, Ccount - c0));
      for (int i = 0; i < 16; ++i) {
        const int64_t k = (kb * 16 + i) * 2;
        r[i] = k < Kdim && n > 0 ? pairs16(X + k * ld + c0, k + 1 < Kdim ? X + (k + 1) * ld + c0 : nullptr, n)
                                 : _mm512_setzero_si512();
      }
      if (transposed) transpose16(r);
      uint32_t* t = out + (cb * KB + kb) * kTile;
      for (int i = 0; i < 16; ++i) _mm512_storeu_si512(t + i * 16, r[i]);
    }
}

// One operand of run_amx as its tiles, zero-padded to whole 32-row blocks and KB * 16 k-pairs (KB set
// here): X [R, K] (R the rows of A or the columns of B), stored with each row holding k contiguously
// (rows_hold_k: A, B^T) or with k down the rows (A^T, B). A's tiles are rows x k-pairs, B's k-pairs x
// columns, so which of the two storages needs the in-register transpose depends on the side.
HGAD_AMX_TARGET const uint32_t* pack_amx(bool is_b, bool rows_hold_k, int64_t R, int64_t K, const float* X, int64_t ld,
                                         std::vector<uint32_t>& buf, int64_t& KB) {
  KB = round_up((K + 1) / 2, kAmxKP) / 16;
  const int64_t RB = round_up(R, 32) / 16;
  uint32_t* out = scratch(buf, RB * KB * kTile);
  if (rows_hold_k)
    tiles_from_rows(X, ld, R, K, RB, KB, is_b, out);
  else
    tiles_from_columns(X, ld, K, R, RB, KB, !is_b, out);
  return out;
}

HGAD_AMX_TARGET const uint32_t* pack_a_amx(bool transA, int64_t M, int64_t K, const float* A, int64_t lda, int64_t& KB) {
  thread_local std::vector<uint32_t> tiles;
  return pack_amx(false, !transA, M, K, A, lda, tiles, KB);
}

HGAD_AMX_TARGET const uint32_t* pack_b_amx(bool transB, int64_t K, int64_t N, const float* B, int64_t ldb, int64_t& KB) {
  thread_local std::vector<uint32_t> tiles;
  return pack_amx(true, transB, N, K, B, ldb, tiles, KB);
}

// The tiled entry points below (gemm_bf16_relu_amx and its kin): each operand either given as tiles
// already laid out for run_amx, or a float matrix op(X) (rows ld apart) packed here.
struct AmxOperand {
  const uint32_t* tiles;
  bool trans;
  const float* x;
  int64_t ld;
};

// false where the product cannot run on AMX (no AMX, or an empty product): the caller throws.
template <class Store>
HGAD_AMX_TARGET bool amx_product(int64_t M, int64_t N, int64_t K, const AmxOperand& a, const AmxOperand& b,
                                 const Store& store) {
  if (!bf16_amx_available() || M <= 0 || N <= 0 || K <= 0) return false;
  int64_t KB = round_up((K + 1) / 2, kAmxKP) / kAmxKP;  // what packing sets too
  const uint32_t* pb = b.tiles ? b.tiles : pack_b_amx(b.trans, K, N, b.x, b.ld, KB);
  const uint32_t* pa = a.tiles ? a.tiles : pack_a_amx(a.trans, M, K, a.x, a.ld, KB);
  run_amx(M, N, KB, pa, pb, store);
  return true;
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

namespace {
std::atomic<bool> amx_enabled{true};
}

void bf16_amx_enable(bool on) { amx_enabled.store(on); }

bool bf16_amx_available() {
#ifdef HGAD_HAVE_BF16_KERNEL
  return cpu_features().avx512_bf16 && cpu_features().amx_bf16 && amx_enabled.load(std::memory_order_relaxed);
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
  if (bf16_amx_available()) {
    int64_t KB;
    const uint32_t* b = pack_b_amx(transB, K, N, B, ldb, KB);
    const uint32_t* a = pack_a_amx(transA, M, K, A, lda, KB);
    run_amx(M, N, KB, a, b, StoreScaled{alpha, beta, C, ldc});
    return;
  }
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
    : K_(K), N_(N), KP_((K + 1) / 2), NP_((N + kNr - 1) / kNr * kNr),
      pairs_(static_cast<size_t>(round_up(KP_, kAmxKP) * NP_), 0u) {  // zero k-pairs past KP for AMX's whole tiles
  pack_pairs_scalar(K, N, b, stride_k, stride_n, pairs_.data(), NP_, 1);
#ifdef HGAD_HAVE_BF16_KERNEL
  if (bf16_amx_available()) {
    tiles_.resize(pairs_.size());
    to_tiles(pairs_.data(), round_up(KP_, kAmxKP), NP_, NP_, true, tiles_.data());
  }
#endif
}

int64_t amx_tiles_size(int64_t M, int64_t N) { return round_up(M, 32) * round_up(N, 32) / 2; }

void gemm_bf16_relu_amx(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, int64_t ldb,
                        const float* const* qa, const float* const* qb, float* H, int64_t ldh, uint32_t* ha, uint32_t* hb) {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_product(M, N, K, {nullptr, false, A, lda}, {nullptr, true, Bt, ldb},
                  StoreReluTrain{qa, qb, H, ldh, ha, (N + 31) / 32, hb, (M + 31) / 32}))
    return;
#endif
  (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Bt, (void)ldb, (void)qa, (void)qb, (void)H, (void)ldh, (void)ha, (void)hb;
  throw std::logic_error("gemm_bf16_relu_amx needs AMX and a non-empty product");
}

void gemm_bf16_tiled_a(int64_t M, int64_t N, int64_t K, const uint32_t* ha, bool transB, const float* B, int64_t ldb,
                       float alpha, float beta, float* C, int64_t ldc) {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_product(M, N, K, {ha, false, nullptr, 0}, {nullptr, transB, B, ldb}, StoreScaled{alpha, beta, C, ldc})) return;
#endif
  (void)M, (void)N, (void)K, (void)ha, (void)transB, (void)B, (void)ldb, (void)alpha, (void)beta, (void)C, (void)ldc;
  throw std::logic_error("gemm_bf16_tiled_a needs AMX and a non-empty product");
}

void gemm_bf16_tiled_b(bool transA, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* hb,
                       float alpha, float beta, float* C, int64_t ldc) {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_product(M, N, K, {nullptr, transA, A, lda}, {hb, false, nullptr, 0}, StoreScaled{alpha, beta, C, ldc})) return;
#endif
  (void)transA, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)hb, (void)alpha, (void)beta, (void)C, (void)ldc;
  throw std::logic_error("gemm_bf16_tiled_b needs AMX and a non-empty product");
}

void gemm_bf16_relu_grad_amx(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                             const float* h, int64_t ldh, float* G, float* gsum, int64_t ldg, int64_t tp, uint32_t* ga,
                             uint32_t* gt) {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_product(M, N, K, {nullptr, false, A, lda}, {nullptr, false, B, ldb},
                  StoreReluGrad{h, ldh, G, gsum, ldg, tp, ga, (N + 31) / 32, gt, (M + 31) / 32}))
    return;
#endif
  (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)h, (void)ldh, (void)G, (void)gsum, (void)ldg,
      (void)tp, (void)ga, (void)gt;
  throw std::logic_error("gemm_bf16_relu_grad_amx needs AMX and a non-empty product");
}

bool Bf16Matrix::amx_tiles() const { return !tiles_.empty() && K_ > 0 && N_ > 0 && bf16_amx_available(); }

const uint32_t* Bf16Matrix::multiply_relu_to_tiles(int64_t M, const float* A, int64_t lda, const float* const* qa,
                                                   const float* const* qb) const {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_tiles()) {
    thread_local std::vector<uint32_t> h;
    int64_t KB;
    const uint32_t* a = pack_a_amx(false, M, K_, A, lda, KB);
    const int64_t HKB = (N_ + 31) / 32;
    uint32_t* out = scratch(h, round_up(M, kAmxM) / 16 * HKB * kTile);
    run_amx(M, N_, KB, a, tiles_.data(), StoreReluTiles{qa, qb, out, HKB});
    return out;
  }
#endif
  (void)M, (void)A, (void)lda, (void)qa, (void)qb;
  throw std::logic_error("Bf16Matrix::multiply_relu_to_tiles needs AMX (amx_tiles())");
}

void Bf16Matrix::multiply_tiles(int64_t M, const uint32_t* h, float* C, int64_t ldc) const {
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_tiles()) {
    run_amx(M, N_, round_up(KP_, kAmxKP) / kAmxKP, h, tiles_.data(), StoreScaled{1.0f, 0.0f, C, ldc});
    return;
  }
#endif
  (void)M, (void)h, (void)C, (void)ldc;
  throw std::logic_error("Bf16Matrix::multiply_tiles needs AMX (amx_tiles())");
}

void Bf16Matrix::multiply(int64_t M, const float* A, int64_t lda, float* C, int64_t ldc) const {
  if (M == 0 || N_ == 0) return;
#ifdef HGAD_HAVE_BF16_KERNEL
  if (amx_tiles()) {
    int64_t KB;
    const uint32_t* a = pack_a_amx(false, M, K_, A, lda, KB);
    run_amx(M, N_, KB, a, tiles_.data(), StoreScaled{1.0f, 0.0f, C, ldc});
    return;
  }
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
