// Anomaly-map building blocks against direct formulas: bilinear upsampling with aligned corners, the
// Gaussian blur against a non-separable convolution over an explicitly mirrored image, and the whole
// map (no blur) against its definition.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/maps.h"
#include "check.h"
#include "fixtures.h"

namespace {

// Bilinear value of in (h x w) at output (y, x) of H x W, corners aligned: source = o * (n-1)/(N-1).
double bilinear(const std::vector<double>& in, int64_t h, int64_t w, int64_t H, int64_t W, int64_t y, int64_t x) {
  const double sy = H > 1 ? y * double(h - 1) / double(H - 1) : 0.0;
  const double sx = W > 1 ? x * double(w - 1) / double(W - 1) : 0.0;
  const int64_t y0 = std::min<int64_t>(int64_t(std::floor(sy)), h - 1), x0 = std::min<int64_t>(int64_t(std::floor(sx)), w - 1);
  const int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
  const double fy = sy - y0, fx = sx - x0;
  return (1 - fy) * ((1 - fx) * in[y0 * w + x0] + fx * in[y0 * w + x1]) +
         fy * ((1 - fx) * in[y1 * w + x0] + fx * in[y1 * w + x1]);
}

// Mirror an out-of-range index back step by step (d c b a | a b c d | d c b a).
int64_t mirror(int64_t i, int64_t n) {
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
  return i;
}

std::vector<double> direct_blur(const std::vector<double>& img, int64_t H, int64_t W, double sigma) {
  const int64_t r = int64_t(4 * sigma + 0.5);
  std::vector<double> g(2 * r + 1);
  double sum = 0;
  for (int64_t j = -r; j <= r; ++j) sum += g[j + r] = std::exp(-double(j * j) / (2 * sigma * sigma));
  std::vector<double> out(H * W, 0.0);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t a = -r; a <= r; ++a)
        for (int64_t b = -r; b <= r; ++b)
          out[y * W + x] += g[a + r] * g[b + r] / (sum * sum) * img[mirror(y + a, H) * W + mirror(x + b, W)];
  return out;
}

}  // namespace

HGAD_TEST(maps_upsample_matches_direct_bilinear) {
  struct Case {
    int64_t h, w, H, W;
  };
  const Case cases[] = {{4, 5, 16, 23}, {1, 3, 4, 9}, {3, 1, 7, 1}, {6, 6, 6, 6}, {5, 4, 1, 1}, {8, 8, 3, 5}};
  double worst = 0;
  uint64_t seed = 1;
  for (const Case& c : cases) {
    const std::vector<double> in = hgadtest::random_vector<double>(c.h * c.w, seed++);
    std::vector<double> out(c.H * c.W, 0.5), scratch;
    hgad::upsample_add(in.data(), c.h, c.w, c.H, c.W, out.data(), scratch);
    for (int64_t y = 0; y < c.H; ++y)
      for (int64_t x = 0; x < c.W; ++x)
        worst = std::max(worst, std::fabs(out[y * c.W + x] - 0.5 - bilinear(in, c.h, c.w, c.H, c.W, y, x)));
    // Corners are the input's corners exactly (align_corners).
    if (c.H > 1 && c.W > 1) {
      CHECK(std::fabs(out[0] - 0.5 - in[0]) < 1e-12, "top-left corner");
      CHECK(std::fabs(out[c.H * c.W - 1] - 0.5 - in[c.h * c.w - 1]) < 1e-12, "bottom-right corner");
    }
  }
  CHECK(worst < 1e-12, "max deviation %g", worst);
}

HGAD_TEST(maps_reflect_index_mirrors) {
  for (int64_t n : {1, 2, 3, 7})
    for (int64_t i = -40; i < 40; ++i) CHECK(hgad::reflect_index(i, n) == mirror(i, n), "n %lld i %lld", (long long)n, (long long)i);
}

HGAD_TEST(maps_gaussian_kernel_as_scipy) {
  const std::vector<double> k = hgad::gaussian_kernel(4.0);
  CHECK(k.size() == 33, "radius 16 for sigma 4 (size %zu)", k.size());
  double sum = 0;
  for (double v : k) sum += v;
  CHECK(std::fabs(sum - 1) < 1e-14, "normalised");
  CHECK(std::fabs(k[16] / k[0] - std::exp(128.0 / 16)) < 1e-6 * std::exp(8.0), "shape exp(-x^2 / 2 sigma^2)");
  CHECK(hgad::gaussian_kernel(1.3).size() == 11, "radius int(5.2 + 0.5) = 5");
}

HGAD_TEST(maps_blur_matches_direct_convolution) {
  struct Case {
    int64_t H, W;
    double sigma;
  };
  // Includes images smaller than the kernel radius (repeated reflection).
  const Case cases[] = {{13, 17, 1.3}, {5, 7, 2.0}, {24, 20, 4.0}, {1, 9, 0.7}};
  uint64_t seed = 20;
  for (const Case& c : cases) {
    std::vector<double> img = hgadtest::random_vector<double>(c.H * c.W, seed++), scratch;
    const std::vector<double> expected = direct_blur(img, c.H, c.W, c.sigma);
    hgad::gaussian_blur(img.data(), c.H, c.W, c.sigma, scratch);
    double worst = 0;
    for (int64_t i = 0; i < c.H * c.W; ++i) worst = std::max(worst, std::fabs(img[i] - expected[i]));
    CHECK(worst < 1e-12, "%lldx%lld sigma %g: max deviation %g", (long long)c.H, (long long)c.W, c.sigma, worst);
  }
  std::vector<double> img = hgadtest::random_vector<double>(12, 3), copy = img, scratch;
  hgad::gaussian_blur(img.data(), 3, 4, 0.0, scratch);
  CHECK(img == copy, "sigma 0 is the identity");
}

HGAD_TEST(maps_unblurred_map_matches_definition) {
  const int64_t B = 3, H = 9, W = 11;
  const int64_t hs[] = {4, 2}, ws[] = {5, 3};
  std::vector<std::vector<float>> lp(2), ne(2);
  std::vector<hgad::MapLevel> levels;
  for (int l = 0; l < 2; ++l) {
    for (double v : hgadtest::random_vector<double>(B * hs[l] * ws[l], 40 + l)) lp[l].push_back(float(v));
    for (double v : hgadtest::random_vector<double>(B * hs[l] * ws[l], 50 + l, 0.3)) ne[l].push_back(float(-std::fabs(v)));
    levels.push_back({lp[l].data(), ne[l].data(), hs[l], ws[l]});
  }
  hgad::MapConstants c;
  c.logp_shift = {0.5, -0.25};
  c.nent_shift = {0.0, 0.1};
  c.logp_top = 5.0;
  c.nent_top = 2.5;
  std::vector<float> maps(B * H * W), scores(B);
  hgad::anomaly_maps(levels, B, c, H, W, 0.0, maps.data(), scores.data());
  double worst = 0, worst_score = 0;
  for (int64_t b = 0; b < B; ++b) {
    double m = -1e300;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        double sl = 0, sn = 0;
        for (int l = 0; l < 2; ++l) {
          const int64_t n = hs[l] * ws[l];
          std::vector<double> pl(n), pn(n);
          for (int64_t i = 0; i < n; ++i) {
            pl[i] = std::exp(lp[l][b * n + i] - c.logp_shift[l]);
            pn[i] = std::exp(ne[l][b * n + i] - c.nent_shift[l]);
          }
          sl += bilinear(pl, hs[l], ws[l], H, W, y, x);
          sn += bilinear(pn, hs[l], ws[l], H, W, y, x);
        }
        const double expected = std::max(0.0, c.logp_top - sl) * std::max(0.0, c.nent_top - sn);
        worst = std::max(worst, std::fabs(maps[(b * H + y) * W + x] - expected) / std::max(1.0, expected));
        m = std::max(m, double(maps[(b * H + y) * W + x]));
      }
    worst_score = std::max(worst_score, std::fabs(scores[b] - m));
  }
  CHECK(worst < 1e-6, "max relative deviation %g", worst);
  CHECK(worst_score == 0, "score is the map's max");

  // Maxima: per level over everything; of the sums, the largest S over the images.
  std::vector<double> ml(2), mn(2);
  hgad::map_level_maxima(levels, B, ml.data(), mn.data());
  for (int l = 0; l < 2; ++l) {
    CHECK(ml[l] == *std::max_element(lp[l].begin(), lp[l].end()), "logp max of level %d", l);
    CHECK(mn[l] == *std::max_element(ne[l].begin(), ne[l].end()), "nent max of level %d", l);
  }
  // With tops below every S the clamp makes the map zero; with S's max as top the map has a zero.
  double sl_max = 0, sn_max = 0;
  hgad::map_sum_maxima(levels, B, c, H, W, &sl_max, &sn_max);
  hgad::MapConstants t = c;
  t.logp_top = sl_max;
  t.nent_top = sn_max;
  hgad::anomaly_maps(levels, B, t, H, W, 0.0, maps.data(), scores.data());
  CHECK(*std::min_element(maps.begin(), maps.end()) == 0.0f, "the pixel at max S is zero");
  t.logp_top = 0;
  hgad::anomaly_maps(levels, B, t, H, W, 0.0, maps.data(), scores.data());
  CHECK(*std::max_element(maps.begin(), maps.end()) == 0.0f, "tops under S clamp to zero");
}

HGAD_TEST(maps_reject_non_finite_levels) {
  std::vector<float> a(8, 0.0f), e(8, 0.0f);
  e[5] = NAN;
  std::vector<hgad::MapLevel> levels = {{a.data(), a.data(), 2, 2}, {a.data(), e.data(), 2, 2}};
  bool thrown = false;
  try {
    hgad::check_levels_finite(levels, 2);
  } catch (const hgad::InputError& err) {
    thrown = err.parameter == "levels[1].negEntropy" && err.index == 5 && err.non_finite;
  }
  CHECK(thrown, "names levels[1].negEntropy, element 5");
}
