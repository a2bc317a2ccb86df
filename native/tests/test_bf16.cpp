// bf16 conversion and GEMM kernels against their scalar references; the position tables against the
// per-position product they replace; bf16 inference and training against float.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "../core/bf16.h"
#include "../core/bf16_gemm.h"
#include "../core/coupling.h"
#include "../core/cpu_features.h"
#include "../core/elementwise.h"
#include "../core/gemm.h"
#include "../core/packed_gemm.h"
#include "../core/posenc.h"
#include "check.h"
#include "fixtures.h"

namespace {
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// max |C - R| / (|alpha| sum_k |a_ik b_kj| + |beta c_ij|), the error relative to the product's scale.
double relative_error(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const std::vector<float>& A,
                      const std::vector<float>& B, float beta, const std::vector<float>& C0, const std::vector<float>& C,
                      const std::vector<float>& R) {
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double scale = std::fabs(beta * C0[i * N + j]);
      for (int64_t k = 0; k < K; ++k)
        scale += std::fabs(alpha) * std::fabs((ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]));
      worst = std::max(worst, std::fabs(static_cast<double>(C[i * N + j]) - R[i * N + j]) / (scale + 1e-30));
    }
  return worst;
}
}  // namespace

HGAD_TEST(bf16_rounds_to_nearest_even) {
  CHECK(hgad::to_bf16(1.0f) == 0x3f80, "1.0");
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to the even mantissa (1.0).
  CHECK(hgad::to_bf16(from_bits(0x3f808000u)) == 0x3f80, "tie down to even");
  CHECK(hgad::to_bf16(from_bits(0x3f818000u)) == 0x3f82, "tie up to even");
  CHECK(hgad::to_bf16(from_bits(0x3f808001u)) == 0x3f81, "above the tie rounds up");
  CHECK(hgad::to_bf16(from_bits(0x3f807fffu)) == 0x3f80, "below the tie rounds down");
  CHECK(hgad::to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80, "inf");
  CHECK(hgad::to_bf16(from_bits(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
  CHECK((hgad::to_bf16(std::numeric_limits<float>::quiet_NaN()) & 0x7fc0) == 0x7fc0, "NaN stays NaN");
  CHECK((hgad::to_bf16(from_bits(0x7f800001u)) & 0x7fc0) == 0x7fc0, "signalling NaN becomes a quiet NaN");
  CHECK(hgad::to_bf16(from_bits(0x00000001u)) == 0x0000, "denormal to zero");
  CHECK(hgad::to_bf16(from_bits(0x80400000u)) == 0x8000, "negative denormal to -0");
  CHECK(hgad::from_bf16(0xc040) == -3.0f, "from_bf16");
}

HGAD_TEST(bf16_vector_conversion_matches_scalar) {
  std::vector<float> x = hgadtest::random_vector<float>(1000 + 37, 5, 3.0);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), from_bits(0x7f800001u),
                            from_bits(0x3f808000u), from_bits(0x3f818000u), from_bits(0x00000010u),
                            from_bits(0x7f7fffffu), 1e-40f, -65504.5f};
  for (size_t i = 0; i < sizeof(specials) / sizeof(float); ++i) x[i * 97] = specials[i];
  std::vector<uint16_t> v(x.size());
  hgad::convert_to_bf16(x.data(), v.data(), static_cast<int64_t>(x.size()));
  int64_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint16_t s = hgad::to_bf16(x[i]);
    const bool nan = (s & 0x7f80) == 0x7f80 && (s & 0x7f);
    if (nan ? !((v[i] & 0x7f80) == 0x7f80 && (v[i] & 0x7f)) : v[i] != s) ++mismatches;
  }
  CHECK(mismatches == 0, "%lld of %zu differ (kernel: %s)", static_cast<long long>(mismatches), x.size(),
        hgad::bf16_kernel_available() ? "avx512-bf16" : "scalar");
}

namespace {

// Runs check once per bf16 kernel this CPU has: AMX (when granted) and AVX512-BF16 (or the scalar path).
template <typename F>
void for_each_kernel(F check) {
  if (hgad::bf16_amx_available()) {
    check("amx");
    hgad::bf16_amx_enable(false);
    check(hgad::bf16_kernel_available() ? "avx512-bf16" : "scalar");
    hgad::bf16_amx_enable(true);
  } else {
    check(hgad::bf16_kernel_available() ? "avx512-bf16" : "scalar");
  }
}

}  // namespace

HGAD_TEST(bf16_gemm_matches_scalar_reference) {
  // N past whole 32-column panels by 1, 7, 13 (the 16-wide kernel), 18 (the 32-wide one, masked) and 8 (the
  // flow's 200 channels); M and K past AMX's 32-row blocks and 16-pair tiles.
  const int64_t shapes[][3] = {{1, 1, 1},      {7, 33, 5},   {37, 45, 29},  {9, 64, 2},   {130, 71, 300},
                               {8, 32, 64},    {13, 50, 17}, {20, 200, 40}, {33, 17, 65}, {64, 48, 32}};
  for_each_kernel([&](const char* kernel) {
    for (const auto& s : shapes)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
          const int64_t M = s[0], N = s[1], K = s[2];
          const std::vector<float> A = hgadtest::random_vector<float>(M * K, 11 + M, 1.0);
          const std::vector<float> B = hgadtest::random_vector<float>(K * N, 13 + N, 1.0);
          const std::vector<float> C0 = hgadtest::random_vector<float>(M * N, 17, 1.0);
          for (const float beta : {0.0f, 1.0f, -0.5f}) {
            std::vector<float> C = C0, R = C0;
            hgad::gemm_bf16(ta, tb, M, N, K, -2.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, beta, C.data(), N);
            hgad::gemm_bf16_reference(ta, tb, M, N, K, -2.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, beta,
                                      R.data(), N);
            // Same bf16 inputs, float accumulation in another order: a few float ulps of the scale.
            const double err = relative_error(ta, tb, M, N, K, -2.0f, A, B, beta, C0, C, R);
            CHECK(err < 2e-6, "%s: %lldx%lldx%lld ta=%d tb=%d beta=%g: relative error %g", kernel, static_cast<long long>(M),
                  static_cast<long long>(N), static_cast<long long>(K), ta, tb, beta, err);
          }
        }
  });
}

HGAD_TEST(bf16_gemm_is_within_bf16_rounding_of_fp32) {
  const int64_t M = 64, N = 96, K = 200;
  const std::vector<float> A = hgadtest::random_vector<float>(M * K, 3, 1.0), B = hgadtest::random_vector<float>(K * N, 4, 1.0);
  std::vector<float> C(M * N), R(M * N), Z(M * N, 0.0f);
  hgad::gemm_bf16(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
  hgad::gemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, R.data(), N);
  // Each input is off by at most 2^-9 relative, so each product by about 2^-8.
  const double err = relative_error(false, true, M, N, K, 1.0f, A, B, 0.0f, Z, C, R);
  CHECK(err < 1.0 / 256 && err > 1e-6, "relative error %g (a bf16 product, not a float one)", err);
}

HGAD_TEST(bf16_packed_matrices_match_reference) {
  const int64_t M = 45, N = 70, K = 33;
  // B^T stored (n, k) at b[n * K + k], as the weights are.
  const std::vector<float> A = hgadtest::random_vector<float>(M * 40, 21, 1.0), Bt = hgadtest::random_vector<float>(N * K, 22, 1.0);
  std::vector<float> R(M * 80, 0.0f), C1(M * 80, 0.0f), C2(M * 80, 0.0f);
  hgad::gemm_bf16_reference(false, true, M, N, K, 1.0f, A.data(), 40, Bt.data(), K, 0.0f, R.data(), 80);
  for_each_kernel([&](const char* kernel) {
    hgad::Bf16Matrix own(K, N, Bt.data(), 1, K);
    std::fill(C1.begin(), C1.end(), 0.0f);
    own.multiply(M, A.data(), 40, C1.data(), 80);
    double e = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) e = std::max(e, static_cast<double>(std::fabs(C1[i * 80 + j] - R[i * 80 + j])));
    CHECK(e < 1e-4, "Bf16Matrix (%s): max abs error %g", kernel, e);
  });
  if (hgad::bf16_supported()) {  // oneDNN's bf16 matmul needs the instructions; the reference does not
    hgad::PackedMatrix packed(K, N, Bt.data(), 1, K, 40, 80, true);
    packed.multiply(M, A.data(), C2.data());
  } else {
    C2 = R;
  }
  double e2 = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) e2 = std::max(e2, static_cast<double>(std::fabs(C2[i * 80 + j] - R[i * 80 + j])));
  CHECK(e2 < 1e-4, "PackedMatrix bf16 (%s): max abs error %g", hgad::gemm_backend(), e2);
}

HGAD_TEST(bf16_fused_first_layer_matches_its_steps) {
  // Inference's first coupling layer on AMX writes relu(A W1 + qa + qb) straight into the second
  // product's bf16 tiles: bitwise what multiply, the ReLU with the row's two terms and multiply give.
  if (!hgad::bf16_amx_available()) {
    std::printf("  (skipped: no AMX-BF16 on this CPU, and the fused path is AMX-only)\n");
    return;
  }
  // M, K and both widths past whole 32-row blocks, 16-pair tiles and 16-column halves; the flow's own.
  const int64_t shapes[][4] = {{37, 29, 45, 50}, {5, 7, 16, 3}, {33, 64, 33, 17}, {20, 100, 712, 200}, {64, 3, 8, 40}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1], N1 = s[2], N2 = s[3], lda = K + 3;
    const std::vector<float> A = hgadtest::random_vector<float>(M * lda, 41 + M, 1.0);
    const std::vector<float> w1t = hgadtest::random_vector<float>(N1 * K, 42 + K, 1.0);  // (n, k) at n * K + k
    const std::vector<float> w2t = hgadtest::random_vector<float>(N2 * N1, 43 + N1, 1.0);
    const std::vector<float> ta = hgadtest::random_vector<float>(3 * N1, 44, 1.0), tb = hgadtest::random_vector<float>(4 * N1, 45, 1.0);
    std::vector<const float*> qa(M), qb(M);
    for (int64_t i = 0; i < M; ++i) {
      qa[i] = ta.data() + (i % 3) * N1;
      qb[i] = tb.data() + (i % 4) * N1;
    }
    const hgad::Bf16Matrix first(K, N1, w1t.data(), 1, K), second(N1, N2, w2t.data(), 1, N1);
    CHECK(first.amx_tiles() && second.amx_tiles(), "AMX tiles for %lldx%lld", static_cast<long long>(K), static_cast<long long>(N1));
    std::vector<float> H(M * N1), R(M * N2), C(M * N2, -1.0f);
    first.multiply(M, A.data(), lda, H.data(), N1);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N1; ++j) H[i * N1 + j] = hgad::relu_add(H[i * N1 + j], qa[i][j] + qb[i][j]);
    second.multiply(M, H.data(), N1, R.data(), N2);
    second.multiply_tiles(M, first.multiply_relu_to_tiles(M, A.data(), lda, qa.data(), qb.data()), C.data(), N2);
    CHECK(std::memcmp(C.data(), R.data(), C.size() * sizeof(float)) == 0, "fused %lldx%lldx%lldx%lld differs from its steps",
          static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N1), static_cast<long long>(N2));
  }
}

HGAD_TEST(bf16_training_first_layer_tiles_match_plain_products) {
  // Mixed-precision training on AMX keeps h as the tiles of its two products: h itself, a = h W2^T and
  // W2's gradient D^T h must be bitwise what gemm_bf16 gives on the float h.
  if (!hgad::bf16_amx_available()) {
    std::printf("  (skipped: no AMX-BF16 on this CPU, and the tiled path is AMX-only)\n");
    return;
  }
  const int64_t shapes[][4] = {{37, 29, 45, 50}, {5, 7, 16, 3}, {64, 100, 712, 200}, {33, 3, 8, 17}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1], N = s[2], N2 = s[3], lda = K + 2;
    const std::vector<float> A = hgadtest::random_vector<float>(M * lda, 51 + M, 1.0);
    const std::vector<float> w1t = hgadtest::random_vector<float>(N * (K + 5), 52 + K, 1.0);  // rows K + 5 apart
    const std::vector<float> w2t = hgadtest::random_vector<float>(N2 * N, 53 + N, 1.0);
    const std::vector<float> D = hgadtest::random_vector<float>(M * N2, 54, 1.0);  // [M, N2]: D^T h is [N2, N]
    const std::vector<float> ta = hgadtest::random_vector<float>(5 * N, 55, 1.0), tb = hgadtest::random_vector<float>(2 * N, 56, 1.0);
    std::vector<const float*> qa(M), qb(M);
    for (int64_t i = 0; i < M; ++i) {
      qa[i] = ta.data() + (i % 5) * N;
      qb[i] = tb.data() + (i % 2) * N;
    }
    std::vector<float> Href(M * N), H(M * N, -7.0f), Cref(M * N2), C(M * N2), G0 = hgadtest::random_vector<float>(N2 * N, 57, 1.0);
    std::vector<float> Gref = G0, G = G0;
    hgad::gemm_bf16(false, true, M, N, K, 1.0f, A.data(), lda, w1t.data(), K + 5, 0.0f, Href.data(), N);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) Href[i * N + j] = hgad::relu_add(Href[i * N + j], qa[i][j] + qb[i][j]);
    hgad::gemm_bf16(false, true, M, N2, N, 1.0f, Href.data(), N, w2t.data(), N, 0.0f, Cref.data(), N2);
    hgad::gemm_bf16(true, false, N2, N, M, 1.0f, D.data(), N2, Href.data(), N, 1.0f, Gref.data(), N);
    std::vector<uint32_t> ha(hgad::amx_tiles_size(M, N), 1u), hb(hgad::amx_tiles_size(M, N), 1u);
    hgad::gemm_bf16_relu_amx(M, N, K, A.data(), lda, w1t.data(), K + 5, qa.data(), qb.data(), H.data(), N, ha.data(), hb.data());
    hgad::gemm_bf16_tiled_a(M, N2, N, ha.data(), true, w2t.data(), N, 1.0f, 0.0f, C.data(), N2);
    hgad::gemm_bf16_tiled_b(true, N2, N, M, D.data(), N2, hb.data(), 1.0f, 1.0f, G.data(), N);
    const auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
      return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    CHECK(same(H, Href) && same(C, Cref) && same(G, Gref), "%lldx%lldx%lldx%lld: h %d, h W2^T %d, D^T h %d (1: bitwise equal)",
          static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), static_cast<long long>(N2),
          same(H, Href), same(C, Cref), same(G, Gref));
  }
}

HGAD_TEST(bf16_training_relu_backward_tiles_match_plain_products) {
  // Its backward: dh = relu_grad(h, da W2), summed per position over the tile's images (tp positions
  // per image) or kept as floats for a tile of one image, and dh, dh^T as tiles for dh W1a and dh^T v.
  if (!hgad::bf16_amx_available()) {
    std::printf("  (skipped: no AMX-BF16 on this CPU, and the tiled path is AMX-only)\n");
    return;
  }
  const int64_t shapes[][5] = {{37, 29, 45, 50, 37}, {40, 7, 16, 3, 8}, {96, 64, 712, 100, 32}, {33, 3, 8, 17, 11}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1], N = s[2], N2 = s[3], tp = s[4];
    const std::vector<float> A = hgadtest::random_vector<float>(M * K, 61 + M, 1.0), W = hgadtest::random_vector<float>(K * N, 62, 1.0);
    std::vector<float> h = hgadtest::random_vector<float>(M * N, 63, 1.0);
    for (size_t i = 0; i < h.size(); i += 7) h[i] = 0.0f;  // the ReLU's own zeros
    const std::vector<float> V = hgadtest::random_vector<float>(M * N2, 64, 1.0), W1 = hgadtest::random_vector<float>(N * N2, 65, 1.0);
    std::vector<float> G(M * N), Gsum(tp * N, 0.0f), Pr(N * N2, 0.5f), Qr(M * N2, 0.25f);
    hgad::gemm_bf16(false, false, M, N, K, 1.0f, A.data(), K, W.data(), N, 0.0f, G.data(), N);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) {
        const float g = hgad::relu_grad(h[r * N + j], G[r * N + j]);
        G[r * N + j] = g;
        Gsum[(r % tp) * N + j] = r < tp ? g : Gsum[(r % tp) * N + j] + g;
      }
    hgad::gemm_bf16(true, false, N, N2, M, 1.0f, G.data(), N, V.data(), N2, 1.0f, Pr.data(), N2);  // dh^T v
    hgad::gemm_bf16(false, false, M, N2, N, 1.0f, G.data(), N, W1.data(), N2, 1.0f, Qr.data(), N2);  // dh W1a
    std::vector<uint32_t> ga(hgad::amx_tiles_size(M, N), 1u), gt(hgad::amx_tiles_size(M, N), 1u);
    std::vector<float> Gf(M * N, -3.0f), Sf(tp * N, -3.0f), P(N * N2, 0.5f), Q(M * N2, 0.25f);
    // Once with the sums (a tile of several images), once with the floats (a tile of one image).
    hgad::gemm_bf16_relu_grad_amx(M, N, K, A.data(), K, W.data(), N, h.data(), N, nullptr, Sf.data(), N, tp, ga.data(), gt.data());
    hgad::gemm_bf16_relu_grad_amx(M, N, K, A.data(), K, W.data(), N, h.data(), N, Gf.data(), nullptr, N, M, ga.data(), gt.data());
    hgad::gemm_bf16_tiled_a(N, N2, M, gt.data(), false, V.data(), N2, 1.0f, 1.0f, P.data(), N2);
    hgad::gemm_bf16_tiled_a(M, N2, N, ga.data(), false, W1.data(), N2, 1.0f, 1.0f, Q.data(), N2);
    const auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
      return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    CHECK(same(Gf, G) && same(Sf, Gsum) && same(P, Pr) && same(Q, Qr),
          "%lldx%lldx%lld tp %lld: dh %d, sums %d, dh^T v %d, dh W1a %d (1: bitwise equal)", static_cast<long long>(M),
          static_cast<long long>(K), static_cast<long long>(N), static_cast<long long>(tp), same(Gf, G), same(Sf, Gsum),
          same(P, Pr), same(Q, Qr));
  }
}

HGAD_TEST(position_table_equals_per_position_product) {
  const hgad::BlockDims d(9, 8);
  const int64_t H = 5, W = 7, P = d.P, hid = d.hid;
  const std::vector<double> w1 = hgadtest::random_vector<double>(hid * d.n, 31, 0.5), b1 = hgadtest::random_vector<double>(hid, 32, 0.5);
  hgad::BlockParams<double> bp{w1.data(), b1.data(), nullptr, nullptr, nullptr, nullptr, nullptr, 0.0, 1.9, nullptr};
  std::vector<double> pe(H * W * P), q(H * W * hid), pe_row(H * P), pe_col(W * P), row(H * hid), col(W * hid);
  hgad::positional_encoding(P, W, 0, H * W, pe.data());
  hgad::block_pos_forward(d, bp, H * W, pe.data(), q.data());
  for (int64_t y = 0; y < H; ++y)
    for (int64_t i = P / 2; i < P; ++i) pe_row[y * P + i] = pe[y * W * P + i];
  for (int64_t x = 0; x < W; ++x)
    for (int64_t i = 0; i < P / 2; ++i) pe_col[x * P + i] = pe[x * P + i];
  hgad::block_position_table(d, bp, H, W, pe_row.data(), pe_col.data(), row.data(), col.data());
  double worst = 0;
  for (int64_t p = 0; p < H * W; ++p)
    for (int64_t j = 0; j < hid; ++j)
      worst = std::max(worst, std::fabs(q[p * hid + j] - row[(p / W) * hid + j] - col[(p % W) * hid + j]));
  CHECK(worst < 1e-12, "max abs difference %g", worst);
}

HGAD_TEST(level_scores_do_not_depend_on_map_shape_or_tiling) {
  // One 8 x 8 map scored alone and as the second image of three, with tiles cutting rows mid-map.
  hgad::Level<double> lv(hgadtest::small_config(), 41);
  hgadtest::jitter(lv, 42, 0.05);
  const int64_t C = 7, HW = 64;
  const std::vector<double> x3 = hgadtest::random_vector<double>(3 * HW * C, 43, 1.0);
  std::vector<double> z1(HW * C), ld1(HW), z3(3 * HW * C), ld3(3 * HW);
  lv.tile_rows = 24;
  lv.forward({3, 8, 8}, x3.data(), z3.data(), ld3.data(), 2);
  lv.tile_rows = 5;
  lv.forward({1, 8, 8}, x3.data() + HW * C, z1.data(), ld1.data(), 2);
  double worst = 0;
  for (int64_t i = 0; i < HW * C; ++i) worst = std::max(worst, std::fabs(z1[i] - z3[HW * C + i]));
  for (int64_t i = 0; i < HW; ++i) worst = std::max(worst, std::fabs(ld1[i] - ld3[HW + i]));
  CHECK(worst < 1e-12, "max abs difference %g", worst);
}

HGAD_TEST(level_bf16_inference_and_training_stay_close_to_float) {
  if (!hgad::bf16_supported()) {
    std::printf("    (no AVX512-BF16/AMX-BF16 here: bf16 levels not exercised)\n");
    return;
  }
  hgad::LevelConfig cfg;
  cfg.channels = 64;
  cfg.pos_dim = 32;
  cfg.blocks = 4;
  cfg.classes = 2;
  cfg.centres = 3;
  hgad::Level<float> lv(cfg, 51);
  hgadtest::jitter(lv, 52, 0.01);
  const hgad::FeatureShape fs{2, 6, 6};
  const int64_t n = fs.vectors();
  const std::vector<float> x = hgadtest::random_vector<float>(n * 64, 53, 1.0);
  const int32_t cls[] = {0, 1};
  std::vector<float> a(n), b(n), ne(n), logits(n * 2), post(4);
  std::vector<int32_t> out(2);
  lv.score(fs, x.data(), cls, a.data(), ne.data(), logits.data(), out.data(), post.data(), 2);
  lv.bf16_inference = true;
  lv.score(fs, x.data(), cls, b.data(), ne.data(), logits.data(), out.data(), post.data(), 2);
  double worst = 0, spread = 0;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    spread = std::max(spread, static_cast<double>(std::fabs(a[i] - a[0])));
  }
  CHECK(worst > 0 && worst < 0.02 * (1 + spread), "bf16 logp differs by %g (spread of logp %g)", worst, spread);
  // Mixed-precision gradients: same loss to bf16 accuracy, gradient direction preserved.
  const int32_t labels[] = {0, 1};
  float weights[hgad::kNumTerms];
  hgad::Level<float>::phase_weights(2, weights);
  const hgad::Losses lf = lv.gradients(fs, x.data(), {labels, false}, weights, nullptr, 2);
  const std::vector<float> gf = lv.grads();
  lv.bf16_training = true;
  const hgad::Losses lb = lv.gradients(fs, x.data(), {labels, false}, weights, nullptr, 2);
  const std::vector<float>& gb = lv.grads();
  double dot = 0, nf = 0, nb = 0;
  for (size_t i = 0; i < gf.size(); ++i) {
    dot += static_cast<double>(gf[i]) * gb[i];
    nf += static_cast<double>(gf[i]) * gf[i];
    nb += static_cast<double>(gb[i]) * gb[i];
  }
  const double cosine = dot / std::sqrt(nf * nb);
  CHECK(std::fabs(lf.total - lb.total) < 0.01 * (1 + std::fabs(lf.total)), "loss %g vs %g", lf.total, lb.total);
  CHECK(cosine > 0.99, "gradient cosine %g", cosine);
}
