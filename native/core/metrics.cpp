#include "metrics.h"

#include <omp.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "components.h"
#include "radix_sort.h"
#include "tiling.h"

namespace hgad {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Sorted keys of the positive and the negative samples.
struct Split {
  std::vector<uint32_t> pos, neg;
};

Split split_sorted(const float* scores, const uint8_t* labels, int64_t n) {
  // Counts per fixed chunk first, so that every chunk writes its own slice of each array.
  const int chunks = n < (1 << 16) ? 1 : std::max(1, omp_get_max_threads());
  std::vector<int64_t> npos(chunks + 1, 0), nneg(chunks + 1, 0);
#pragma omp parallel for schedule(static) num_threads(chunks)
  for (int c = 0; c < chunks; ++c) {
    int64_t p = 0;
    for (int64_t i = n * c / chunks; i < n * (c + 1) / chunks; ++i) p += labels[i] != 0;
    npos[c + 1] = p;
    nneg[c + 1] = n * (c + 1) / chunks - n * c / chunks - p;
  }
  for (int c = 0; c < chunks; ++c) {
    npos[c + 1] += npos[c];
    nneg[c + 1] += nneg[c];
  }
  Split s;
  s.pos.resize(npos[chunks]);
  s.neg.resize(nneg[chunks]);
#pragma omp parallel for schedule(static) num_threads(chunks)
  for (int c = 0; c < chunks; ++c) {
    int64_t p = npos[c], q = nneg[c];
    for (int64_t i = n * c / chunks; i < n * (c + 1) / chunks; ++i) {
      if (labels[i] != 0)
        s.pos[p++] = float_key(scores[i]);
      else
        s.neg[q++] = float_key(scores[i]);
    }
  }
  std::vector<uint32_t> tmp(std::max(s.pos.size(), s.neg.size()));
  radix_sort(s.pos.data(), tmp.data(), static_cast<int64_t>(s.pos.size()), 0, 3);
  radix_sort(s.neg.data(), tmp.data(), static_cast<int64_t>(s.neg.size()), 0, 3);
  return s;
}

// fn(key, positives at key, negatives at key) for every distinct key, from the highest down.
template <typename F>
void walk_thresholds(const Split& s, F fn) {
  int64_t i = static_cast<int64_t>(s.pos.size()) - 1, j = static_cast<int64_t>(s.neg.size()) - 1;
  while (i >= 0 || j >= 0) {
    const uint32_t key = i < 0 ? s.neg[j] : j < 0 ? s.pos[i] : std::max(s.pos[i], s.neg[j]);
    int64_t dp = 0, dn = 0;
    for (; i >= 0 && s.pos[i] == key; --i) ++dp;
    for (; j >= 0 && s.neg[j] == key; --j) ++dn;
    fn(key, dp, dn);
  }
}

}  // namespace

double roc_auc(const float* scores, const uint8_t* labels, int64_t n) {
  const Split s = split_sorted(scores, labels, n);
  const int64_t P = static_cast<int64_t>(s.pos.size()), N = static_cast<int64_t>(s.neg.size());
  if (P == 0 || N == 0) return kNaN;
  // Twice the Mann-Whitney U: each negative counts the positives above it once and the tied ones a
  // half, which is the trapezoidal area of the ROC curve over the distinct thresholds.
  unsigned __int128 u2 = 0;
  int64_t tp = 0;
  walk_thresholds(s, [&](uint32_t, int64_t dp, int64_t dn) {
    u2 += static_cast<unsigned __int128>(dn) * static_cast<unsigned __int128>(2 * tp + dp);
    tp += dp;
  });
  return static_cast<double>(u2) / (2.0 * static_cast<double>(P) * static_cast<double>(N));
}

F1Max f1_max(const float* scores, const uint8_t* labels, int64_t n) {
  const Split s = split_sorted(scores, labels, n);
  const int64_t P = static_cast<int64_t>(s.pos.size());
  if (P == 0) return {kNaN, kNaN};
  F1Max best{-1.0, kNaN};
  int64_t tp = 0, fp = 0;
  walk_thresholds(s, [&](uint32_t key, int64_t dp, int64_t dn) {
    tp += dp;
    fp += dn;
    // F1 = 2 TP / (2 TP + FP + FN) with FN = P - TP.
    const double f1 = 2.0 * static_cast<double>(tp) / static_cast<double>(tp + fp + P);
    if (f1 > best.f1) best = {f1, static_cast<double>(key_float(key))};
  });
  return best;
}

double aupro(const float* maps, const uint8_t* masks, int64_t count, int64_t H, int64_t W, double max_fpr) {
  const int64_t HW = H * W;
  // Pass 1: per image, normal pixels, anomalous pixels and regions (so pass 2 can write in parallel).
  std::vector<int64_t> normal(count + 1, 0), anomalous(count + 1, 0), regions(count + 1, 0);
  RegionErrors errors;
#pragma omp parallel
  errors.run([&] {
    std::vector<int32_t> labels(HW);
    std::vector<int64_t> stack;
    for (int64_t b = omp_get_thread_num(); b < count; b += omp_get_num_threads()) {
      const uint8_t* m = masks + b * HW;
      int64_t a = 0;
      for (int64_t i = 0; i < HW; ++i) a += m[i] != 0;
      anomalous[b + 1] = a;
      normal[b + 1] = HW - a;
      regions[b + 1] = a == 0 ? 0 : label_components(m, H, W, labels.data(), stack);
    }
  });
  errors.rethrow();
  for (int64_t b = 0; b < count; ++b) {
    normal[b + 1] += normal[b];
    anomalous[b + 1] += anomalous[b];
    regions[b + 1] += regions[b];
  }
  const int64_t N0 = normal[count], A = anomalous[count], R = regions[count];
  if (R == 0 || N0 == 0) return kNaN;
  if (R > static_cast<int64_t>(UINT32_MAX)) throw std::length_error("aupro: more than 2^32 regions");
  // Pass 2: keys of the normal pixels; key << 32 | region of the anomalous ones; region sizes.
  std::vector<uint32_t> nkeys(N0);
  std::vector<uint64_t> akeys(A);
  std::vector<int64_t> size(R, 0);
#pragma omp parallel
  errors.run([&] {
    std::vector<int32_t> labels(HW);
    std::vector<int64_t> stack;
    for (int64_t b = omp_get_thread_num(); b < count; b += omp_get_num_threads()) {
      const uint8_t* m = masks + b * HW;
      const float* s = maps + b * HW;
      int64_t pn = normal[b], pa = anomalous[b];
      if (regions[b + 1] > regions[b]) label_components(m, H, W, labels.data(), stack);
      for (int64_t i = 0; i < HW; ++i) {
        if (m[i] == 0) {
          nkeys[pn++] = float_key(s[i]);
        } else {
          const int64_t r = regions[b] + labels[i] - 1;
          ++size[r];
          akeys[pa++] = static_cast<uint64_t>(float_key(s[i])) << 32 | static_cast<uint64_t>(r);
        }
      }
    }
  });
  errors.rethrow();
  {
    std::vector<uint32_t> tmp(N0);
    radix_sort(nkeys.data(), tmp.data(), N0, 0, 3);
  }
  {
    std::vector<uint64_t> tmp(A);
    radix_sort(akeys.data(), tmp.data(), A, 4, 7);
  }
  std::vector<double> inv(R);
  for (int64_t r = 0; r < R; ++r) inv[r] = 1.0 / (static_cast<double>(size[r]) * static_cast<double>(R));
  // Walk the thresholds down: (FPR, PRO) after each distinct score, trapezoids from (0, 0), the last
  // one cut at max_fpr by linear interpolation (as the MVTec AD evaluation code's trapezoid()).
  int64_t i = N0 - 1, j = A - 1, fp = 0;
  double pro = 0, x0 = 0, y0 = 0, area = 0;
  while (i >= 0 || j >= 0) {
    const uint32_t ak = j >= 0 ? static_cast<uint32_t>(akeys[j] >> 32) : 0;
    const uint32_t key = i < 0 ? ak : j < 0 ? nkeys[i] : std::max(nkeys[i], ak);
    for (; i >= 0 && nkeys[i] == key; --i) ++fp;
    for (; j >= 0 && static_cast<uint32_t>(akeys[j] >> 32) == key; --j) pro += inv[akeys[j] & 0xffffffffu];
    const double x1 = static_cast<double>(fp) / static_cast<double>(N0), y1 = std::min(pro, 1.0);
    if (x1 > max_fpr) {
      const double y = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0);
      area += 0.5 * (y0 + y) * (max_fpr - x0);
      break;
    }
    area += 0.5 * (y0 + y1) * (x1 - x0);
    x0 = x1;
    y0 = y1;
  }
  return area / max_fpr;
}

}  // namespace hgad
