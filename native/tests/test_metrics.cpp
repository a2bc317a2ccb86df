// Ranking metrics against brute-force definitions: the radix sort against std::sort, ROC AUC against
// pairwise counting, F1-max and AUPRO against an evaluation at every threshold, components by hand.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/components.h"
#include "../core/metrics.h"
#include "../core/radix_sort.h"
#include "../core/rng.h"
#include "check.h"

namespace {

// Scores with many ties: a few levels, negative values and both zeros.
std::vector<float> tied_scores(int64_t n, uint64_t seed, int levels) {
  hgad::Rng rng(seed);
  std::vector<float> s(n);
  for (auto& x : s) {
    const int k = int(rng.uniform() * levels) - levels / 2;
    x = k == 0 ? (rng.uniform() < 0.5 ? -0.0f : 0.0f) : float(k) * 0.37f;
  }
  return s;
}

std::vector<uint8_t> random_labels(int64_t n, uint64_t seed, double p) {
  hgad::Rng rng(seed);
  std::vector<uint8_t> y(n);
  for (auto& v : y) v = rng.uniform() < p ? uint8_t(1 + int(rng.uniform() * 254)) : 0;
  return y;
}

double pairwise_auc(const std::vector<float>& s, const std::vector<uint8_t>& y) {
  double num = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] && !y[j]) {
        pairs += 1;
        num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return num / pairs;
}

}  // namespace

HGAD_TEST(metrics_radix_sort_matches_std_sort) {
  hgad::Rng rng(7);
  for (int64_t n : {0, 1, 5, 1000, 300000}) {
    std::vector<float> f(n);
    for (auto& x : f) x = float(rng.normal() * std::pow(10.0, rng.uniform(-3, 3)));
    std::vector<uint32_t> k(n), tmp(n);
    for (int64_t i = 0; i < n; ++i) k[i] = hgad::float_key(f[i]);
    hgad::radix_sort(k.data(), tmp.data(), n, 0, 3);
    std::sort(f.begin(), f.end());
    bool same = true;
    for (int64_t i = 0; i < n; ++i) same = same && hgad::key_float(k[i]) == f[i];
    CHECK(same, "n %lld sorted as std::sort", (long long)n);
  }
  CHECK(hgad::float_key(-0.0f) == hgad::float_key(0.0f), "-0 and +0 tie");
  CHECK(hgad::float_key(-1.0f) < hgad::float_key(-0.5f) && hgad::float_key(0.5f) < hgad::float_key(1.0f), "order");
  // By the high half only, stable in the low half (the payload keeps its input order among ties).
  const int64_t n = 200000;
  std::vector<uint64_t> a(n), tmp(n);
  for (int64_t i = 0; i < n; ++i) a[i] = uint64_t(rng.next() % 50) << 32 | uint64_t(i);
  std::vector<uint64_t> expected = a;
  std::stable_sort(expected.begin(), expected.end(), [](uint64_t x, uint64_t y) { return (x >> 32) < (y >> 32); });
  hgad::radix_sort(a.data(), tmp.data(), n, 4, 7);
  CHECK(a == expected, "stable sort by the high 32 bits");
}

HGAD_TEST(metrics_auc_matches_pairwise_counting) {
  for (int levels : {3, 11, 1000}) {
    const std::vector<float> s = tied_scores(700, levels, levels);
    const std::vector<uint8_t> y = random_labels(700, levels + 1, 0.3);
    const double auc = hgad::roc_auc(s.data(), y.data(), 700);
    CHECK(std::fabs(auc - pairwise_auc(s, y)) < 1e-12, "levels %d: %.15f vs %.15f", levels, auc, pairwise_auc(s, y));
  }
  const float eq[] = {2, 2, 2, 2};
  const uint8_t y2[] = {1, 0, 255, 0}, y1[] = {1, 1, 1, 1};
  CHECK(hgad::roc_auc(eq, y2, 4) == 0.5, "all-equal scores");
  CHECK(std::isnan(hgad::roc_auc(eq, y1, 4)), "one class");
}

HGAD_TEST(metrics_f1_max_matches_every_threshold) {
  const std::vector<float> s = tied_scores(500, 3, 9);
  const std::vector<uint8_t> y = random_labels(500, 4, 0.4);
  double best = -1, best_t = 0;
  for (float t : s) {
    double tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      const bool pred = s[i] >= t;
      tp += pred && y[i];
      fp += pred && !y[i];
      fn += !pred && y[i];
    }
    const double f1 = 2 * tp / (2 * tp + fp + fn);
    if (f1 > best || (f1 == best && t > best_t)) best = f1, best_t = t;
  }
  const hgad::F1Max r = hgad::f1_max(s.data(), y.data(), 500);
  CHECK(std::fabs(r.f1 - best) < 1e-12 && r.threshold == best_t, "f1 %g at %g vs %g at %g", r.f1, r.threshold, best,
        best_t);
}

HGAD_TEST(metrics_components_are_8_connected) {
  // Two diagonal-touching pixels join; a separate blob is another region.
  const uint8_t m[] = {1, 0, 0, 0, 1,  //
                       0, 1, 0, 0, 1,  //
                       0, 0, 0, 0, 0,  //
                       1, 1, 0, 9, 0};
  std::vector<int32_t> labels(20);
  std::vector<int64_t> stack;
  const int32_t n = hgad::label_components(m, 4, 5, labels.data(), stack);
  CHECK(n == 4, "4 components (got %d)", n);
  CHECK(labels[0] == 1 && labels[6] == 1 && labels[4] == 2 && labels[9] == 2 && labels[15] == 3 && labels[16] == 3 &&
            labels[18] == 4 && labels[1] == 0,
        "labels in row-major order of first pixel");
}

HGAD_TEST(metrics_aupro_matches_every_threshold) {
  const int64_t count = 4, H = 12, W = 10, HW = H * W;
  hgad::Rng rng(11);
  std::vector<float> maps(count * HW);
  std::vector<uint8_t> masks(count * HW, 0);
  for (int64_t b = 0; b < count; ++b)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const bool in = (b % 2 == 0 && y >= 2 && y < 5 && x >= 1 && x < 4) || (b == 2 && y >= 8 && x >= 6);
        masks[b * HW + y * W + x] = in ? 255 : 0;
        maps[b * HW + y * W + x] = float(std::round((rng.uniform() + (in ? 0.4 : 0.0)) * 20) / 20);
      }
  // Reference: regions by hand (3), every distinct threshold evaluated from scratch.
  std::vector<int> region(count * HW, -1);
  for (int64_t b = 0; b < count; ++b)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        if (masks[b * HW + y * W + x]) region[b * HW + y * W + x] = b == 0 ? 0 : (y < 5 ? 1 : 2);
  std::vector<float> th(maps);
  std::sort(th.begin(), th.end(), std::greater<float>());
  th.erase(std::unique(th.begin(), th.end()), th.end());
  std::vector<double> xs = {0}, ys = {0};
  for (float t : th) {
    double fp = 0, normal = 0, in[3] = {0, 0, 0}, size[3] = {0, 0, 0};
    for (int64_t i = 0; i < count * HW; ++i) {
      if (region[i] < 0) {
        normal += 1;
        fp += maps[i] >= t;
      } else {
        size[region[i]] += 1;
        in[region[i]] += maps[i] >= t;
      }
    }
    xs.push_back(fp / normal);
    ys.push_back((in[0] / size[0] + in[1] / size[1] + in[2] / size[2]) / 3);
  }
  for (double limit : {0.3, 0.05, 1.0}) {
    double area = 0;
    for (size_t k = 1; k < xs.size(); ++k) {
      if (xs[k] <= limit) {
        area += 0.5 * (ys[k] + ys[k - 1]) * (xs[k] - xs[k - 1]);
      } else {
        const double yi = ys[k - 1] + (ys[k] - ys[k - 1]) * (limit - xs[k - 1]) / (xs[k] - xs[k - 1]);
        area += 0.5 * (yi + ys[k - 1]) * (limit - xs[k - 1]);
        break;
      }
    }
    const double got = hgad::aupro(maps.data(), masks.data(), count, H, W, limit);
    CHECK(std::fabs(got - area / limit) < 1e-12, "limit %g: %.15f vs %.15f", limit, got, area / limit);
  }
  std::vector<uint8_t> none(count * HW, 0);
  CHECK(std::isnan(hgad::aupro(maps.data(), none.data(), count, H, W, 0.3)), "no regions");
}
