// The nearest-neighbour reference's kernels against brute force: nearest distances through the GEMM
// (several blocks of queries and bank, accumulation over banks, exact matches) against a float64 scan,
// the 3x3 averaging against the neighbourhood mean with zero padding counted, and the distance maps
// against a direct bilinear sum (no blur) and a constant (blurred).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/nearest.h"
#include "check.h"
#include "fixtures.h"

namespace {

struct Reference {
  double d2;     // min squared distance
  double scale;  // ||q||^2 + max ||b||^2, the size the float32 rounding is relative to
};

std::vector<Reference> brute_force(const std::vector<float>& q, int64_t nq, const std::vector<float>& b, int64_t nb,
                                   int64_t dim) {
  double bmax = 0;
  for (int64_t j = 0; j < nb; ++j) {
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) s += double(b[j * dim + k]) * b[j * dim + k];
    bmax = std::max(bmax, s);
  }
  std::vector<Reference> out(nq);
  for (int64_t i = 0; i < nq; ++i) {
    double best = std::numeric_limits<double>::infinity(), qn = 0;
    for (int64_t k = 0; k < dim; ++k) qn += double(q[i * dim + k]) * q[i * dim + k];
    for (int64_t j = 0; j < nb; ++j) {
      double s = 0;
      for (int64_t k = 0; k < dim; ++k) {
        const double d = double(q[i * dim + k]) - b[j * dim + k];
        s += d * d;
      }
      best = std::min(best, s);
    }
    out[i] = {best, qn + bmax};
  }
  return out;
}

// Features with a common offset, as backbone features have (post-ReLU means), so ||q||^2 - 2 q.b +
// ||b||^2 cancels and the rounding shows.
std::vector<float> features(int64_t n, int64_t dim, uint64_t seed) {
  std::vector<float> v = hgadtest::random_vector<float>(n * dim, seed);
  for (int64_t i = 0; i < n * dim; ++i) v[i] += 2.0f + 0.01f * float(i % dim);
  return v;
}

// |d^2 - reference| within a few float32 roundings of the norms (the GEMM sums dim products).
bool close(float d, const Reference& r, int64_t dim) {
  const double tol = 4.0 * double(dim) * std::numeric_limits<float>::epsilon() * r.scale + 1e-6;
  return d >= 0 && std::fabs(double(d) * d - r.d2) <= tol;
}

}  // namespace

HGAD_TEST(nearest_distances_match_brute_force) {
  struct Case {
    int64_t nq, nb, dim;
  };
  // Single rows, a query block and a bank block exactly, and both crossed with remainders.
  const Case cases[] = {{1, 1, 1}, {5, 3, 7}, {128, 1024, 16}, {130, 1030, 33}, {300, 2100, 64}, {257, 1500, 512}};
  uint64_t seed = 11;
  for (const Case& c : cases) {
    const std::vector<float> q = features(c.nq, c.dim, seed++), b = features(c.nb, c.dim, seed++);
    std::vector<float> d(c.nq, -1.0f);
    hgad::nearest_distances(q.data(), c.nq, b.data(), c.nb, c.dim, d.data(), false);
    const std::vector<Reference> ref = brute_force(q, c.nq, b, c.nb, c.dim);
    int bad = 0;
    for (int64_t i = 0; i < c.nq; ++i) bad += !close(d[i], ref[i], c.dim);
    CHECK(bad == 0, "nq %lld nb %lld dim %lld: %d of %lld distances off (first: %g vs %g)", (long long)c.nq,
          (long long)c.nb, (long long)c.dim, bad, (long long)c.nq, double(d[0]), std::sqrt(ref[0].d2));
  }
}

HGAD_TEST(nearest_distances_zero_for_bank_members) {
  const int64_t nb = 1100, dim = 96;
  const std::vector<float> b = features(nb, dim, 5);
  // Every 7th bank row as a query: its nearest distance is 0 up to rounding, never negative or NaN.
  std::vector<float> q;
  for (int64_t j = 0; j < nb; j += 7) q.insert(q.end(), b.begin() + j * dim, b.begin() + (j + 1) * dim);
  const int64_t nq = int64_t(q.size()) / dim;
  std::vector<float> d(nq);
  hgad::nearest_distances(q.data(), nq, b.data(), nb, dim, d.data(), false);
  const std::vector<Reference> ref = brute_force(q, nq, b, nb, dim);
  float worst = 0;
  for (int64_t i = 0; i < nq; ++i) {
    CHECK(std::isfinite(d[i]) && d[i] >= 0, "query %lld: %g", (long long)i, double(d[i]));
    CHECK(close(d[i], ref[i], dim), "query %lld", (long long)i);
    worst = std::max(worst, d[i]);
  }
  // ||b||^2 ~ 96 * 6: a distance of 0.1 would be far above the rounding of the squared form.
  CHECK(worst < 0.1f, "largest self-distance %g", double(worst));
}

HGAD_TEST(nearest_distances_accumulate_over_banks) {
  const int64_t nq = 200, na = 700, nb = 1300, dim = 40;
  const std::vector<float> q = features(nq, dim, 21), a = features(na, dim, 22), b = features(nb, dim, 23);
  std::vector<float> both(a);
  both.insert(both.end(), b.begin(), b.end());
  std::vector<float> d(nq);
  hgad::nearest_distances(q.data(), nq, a.data(), na, dim, d.data(), false);
  const std::vector<float> own = d;
  hgad::nearest_distances(q.data(), nq, b.data(), nb, dim, d.data(), true);
  const std::vector<Reference> ref = brute_force(q, nq, both, na + nb, dim);
  int bad = 0, grew = 0;
  for (int64_t i = 0; i < nq; ++i) {
    bad += !close(d[i], ref[i], dim);
    grew += d[i] > own[i];
  }
  CHECK(bad == 0, "%d of %lld distances to the union off", bad, (long long)nq);
  CHECK(grew == 0, "%d distances grew when a bank was added", grew);
  // A smaller value already there stays.
  std::vector<float> zeros(nq, 0.0f);
  hgad::nearest_distances(q.data(), nq, b.data(), nb, dim, zeros.data(), true);
  CHECK(*std::max_element(zeros.begin(), zeros.end()) == 0.0f, "accumulate keeps the smaller value");
}

HGAD_TEST(nearest_avg_pool3x3_matches_neighbourhood_mean) {
  struct Case {
    int64_t b, h, w, c;
  };
  const Case cases[] = {{2, 5, 4, 3}, {1, 1, 1, 2}, {1, 1, 6, 1}, {3, 7, 1, 5}, {1, 8, 8, 17}};
  uint64_t seed = 31;
  for (const Case& s : cases) {
    const std::vector<float> in = hgadtest::random_vector<float>(s.b * s.h * s.w * s.c, seed++);
    std::vector<float> out(in.size(), NAN);
    hgad::avg_pool3x3(in.data(), s.b, s.h, s.w, s.c, out.data());
    double worst = 0;
    for (int64_t n = 0; n < s.b; ++n)
      for (int64_t y = 0; y < s.h; ++y)
        for (int64_t x = 0; x < s.w; ++x)
          for (int64_t k = 0; k < s.c; ++k) {
            double sum = 0;
            for (int64_t dy = -1; dy <= 1; ++dy)
              for (int64_t dx = -1; dx <= 1; ++dx) {
                const int64_t yy = y + dy, xx = x + dx;
                if (yy >= 0 && yy < s.h && xx >= 0 && xx < s.w) sum += in[((n * s.h + yy) * s.w + xx) * s.c + k];
              }
            worst = std::max(worst, std::fabs(out[((n * s.h + y) * s.w + x) * s.c + k] - sum / 9.0));
          }
    CHECK(worst < 1e-6, "b %lld h %lld w %lld c %lld: max deviation %g", (long long)s.b, (long long)s.h, (long long)s.w,
          (long long)s.c, worst);
  }
}

HGAD_TEST(nearest_distance_maps_sum_upsampled_levels) {
  // Two levels, no blur: the map is the sum of the levels' aligned-corner bilinear upsamplings.
  const int64_t batch = 3, H = 9, W = 13;
  const int64_t h0 = 4, w0 = 5, h1 = 2, w1 = 3;
  const std::vector<float> v0 = hgadtest::random_vector<float>(batch * h0 * w0, 41);
  const std::vector<float> v1 = hgadtest::random_vector<float>(batch * h1 * w1, 42);
  std::vector<float> maps(batch * H * W), scores(batch);
  hgad::distance_maps({{v0.data(), h0, w0}, {v1.data(), h1, w1}}, batch, H, W, 0.0, maps.data(), scores.data());
  auto bilinear = [](const float* in, int64_t h, int64_t w, int64_t y, int64_t x) {
    const double sy = y * double(h - 1) / double(H - 1), sx = x * double(w - 1) / double(W - 1);
    const int64_t y0 = std::min<int64_t>(int64_t(sy), h - 1), x0 = std::min<int64_t>(int64_t(sx), w - 1);
    const int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
    const double fy = sy - y0, fx = sx - x0;
    return (1 - fy) * ((1 - fx) * in[y0 * w + x0] + fx * in[y0 * w + x1]) + fy * ((1 - fx) * in[y1 * w + x0] + fx * in[y1 * w + x1]);
  };
  double worst = 0;
  for (int64_t b = 0; b < batch; ++b) {
    float m = -INFINITY;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const double want = bilinear(v0.data() + b * h0 * w0, h0, w0, y, x) + bilinear(v1.data() + b * h1 * w1, h1, w1, y, x);
        worst = std::max(worst, std::fabs(maps[(b * H + y) * W + x] - want));
        m = std::max(m, maps[(b * H + y) * W + x]);
      }
    CHECK(scores[b] == m, "image %lld: score %g is not the map's max %g", (long long)b, double(scores[b]), double(m));
  }
  CHECK(worst < 1e-5, "max deviation %g", worst);
  // Constant levels stay constant through the blur (reflect padding, normalised kernel).
  const std::vector<float> c0(h0 * w0, 1.5f), c1(h1 * w1, 2.0f);
  std::vector<float> flat(64 * 64), score(1);
  hgad::distance_maps({{c0.data(), h0, w0}, {c1.data(), h1, w1}}, 1, 64, 64, 4.0, flat.data(), score.data());
  double dev = 0;
  for (float v : flat) dev = std::max(dev, std::fabs(double(v) - 3.5));
  CHECK(dev < 1e-5 && std::fabs(score[0] - 3.5f) < 1e-5f, "constant map deviates by %g", dev);
}
