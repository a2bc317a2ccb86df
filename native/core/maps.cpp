#include "maps.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "checks.h"
#include "tiling.h"

namespace hgad {

namespace {

// Source index and weight of output position i on an aligned-corner grid.
struct Tap {
  int64_t i0, i1;
  double l1;
};

std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(out);
  const double scale = out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  for (int64_t o = 0; o < out; ++o) {
    const double src = scale * static_cast<double>(o);
    const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(src), in - 1);
    t[o] = {i0, std::min<int64_t>(i0 + 1, in - 1), src - static_cast<double>(i0)};
  }
  return t;
}

// Per-thread buffers of one image's work.
struct ImageWork {
  std::vector<double> p, s_logp, s_nent, scratch;
};

// S = sum over levels of upsampled exp(v - shift) for image b of one quantity.
void summed(const std::vector<MapLevel>& levels, int64_t b, bool logp, const std::vector<double>& shift, int64_t H,
            int64_t W, double* S, ImageWork& w) {
  std::fill(S, S + H * W, 0.0);
  for (size_t l = 0; l < levels.size(); ++l) {
    const MapLevel& lv = levels[l];
    const int64_t n = lv.h * lv.w;
    const float* v = (logp ? lv.logp : lv.nent) + b * n;
    w.p.resize(n);
    for (int64_t i = 0; i < n; ++i) w.p[i] = std::exp(static_cast<double>(v[i]) - shift[l]);
    upsample_add(w.p.data(), lv.h, lv.w, H, W, S, w.scratch);
  }
}

double max_of(const double* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

}  // namespace

void upsample_add(const double* in, int64_t h, int64_t w, int64_t H, int64_t W, double* out,
                  std::vector<double>& scratch) {
  const std::vector<Tap> tx = taps(w, W), ty = taps(h, H);
  // Rows first (h x W), then columns, each output row a blend of two of those rows.
  scratch.resize(h * W);
  double* rows = scratch.data();
  for (int64_t r = 0; r < h; ++r) {
    const double* src = in + r * w;
    double* dst = rows + r * W;
    for (int64_t x = 0; x < W; ++x) dst[x] = (1.0 - tx[x].l1) * src[tx[x].i0] + tx[x].l1 * src[tx[x].i1];
  }
  for (int64_t y = 0; y < H; ++y) {
    const double l1 = ty[y].l1, l0 = 1.0 - l1;
    const double* r0 = rows + ty[y].i0 * W;
    const double* r1 = rows + ty[y].i1 * W;
    double* dst = out + y * W;
    for (int64_t x = 0; x < W; ++x) dst[x] += l0 * r0[x] + l1 * r1[x];
  }
}

std::vector<double> gaussian_kernel(double sigma) {
  const int64_t radius = static_cast<int64_t>(4.0 * sigma + 0.5);
  std::vector<double> k(2 * radius + 1);
  double sum = 0;
  for (int64_t j = -radius; j <= radius; ++j) {
    k[j + radius] = std::exp(-0.5 / (sigma * sigma) * static_cast<double>(j * j));
    sum += k[j + radius];
  }
  for (double& v : k) v /= sum;
  return k;
}

void gaussian_blur(double* image, int64_t H, int64_t W, double sigma, std::vector<double>& scratch) {
  // scipy skips an axis whose sigma is (numerically) zero.
  if (!(sigma > 1e-15)) return;
  const std::vector<double> k = gaussian_kernel(sigma);
  const int64_t r = (static_cast<int64_t>(k.size()) - 1) / 2;
  scratch.resize(H * W + W + 2 * r);
  double* cols = scratch.data();
  double* line = scratch.data() + H * W;
  // Along the height (axis 0, scipy's first): each output row a weighted sum of whole input rows.
  for (int64_t y = 0; y < H; ++y) {
    double* dst = cols + y * W;
    std::fill(dst, dst + W, 0.0);
    for (int64_t j = -r; j <= r; ++j) {
      const double kj = k[j + r];
      const double* src = image + reflect_index(y + j, H) * W;
      for (int64_t x = 0; x < W; ++x) dst[x] += kj * src[x];
    }
  }
  // Along the width, through a padded copy of each row.
  for (int64_t y = 0; y < H; ++y) {
    const double* src = cols + y * W;
    for (int64_t i = 0; i < W + 2 * r; ++i) line[i] = src[reflect_index(i - r, W)];
    double* dst = image + y * W;
    for (int64_t x = 0; x < W; ++x) {
      double acc = 0;
      for (int64_t j = 0; j <= 2 * r; ++j) acc += k[j] * line[x + j];
      dst[x] = acc;
    }
  }
}

void map_level_maxima(const std::vector<MapLevel>& levels, int64_t batch, double* logp_max, double* nent_max) {
  for (size_t l = 0; l < levels.size(); ++l) {
    const int64_t n = batch * levels[l].h * levels[l].w;
    const float* a = levels[l].logp;
    const float* e = levels[l].nent;
    float ma = -std::numeric_limits<float>::infinity(), me = ma;
#pragma omp parallel for reduction(max : ma, me) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      ma = std::max(ma, a[i]);
      me = std::max(me, e[i]);
    }
    logp_max[l] = ma;
    nent_max[l] = me;
  }
}

void map_sum_maxima(const std::vector<MapLevel>& levels, int64_t batch, const MapConstants& shifts, int64_t H,
                    int64_t W, double* logp_max, double* nent_max) {
  double ml = -std::numeric_limits<double>::infinity(), mn = ml;
  // Images round-robin over the threads, without a worksharing construct an exception could leave.
  RegionErrors errors;
#pragma omp parallel
  errors.run([&] {
    ImageWork w;
    w.s_logp.resize(H * W);
    double tl = -std::numeric_limits<double>::infinity(), tn = tl;
    for (int64_t b = omp_get_thread_num(); b < batch; b += omp_get_num_threads()) {
      summed(levels, b, true, shifts.logp_shift, H, W, w.s_logp.data(), w);
      tl = std::max(tl, max_of(w.s_logp.data(), H * W));
      summed(levels, b, false, shifts.nent_shift, H, W, w.s_logp.data(), w);
      tn = std::max(tn, max_of(w.s_logp.data(), H * W));
    }
#pragma omp critical
    {
      ml = std::max(ml, tl);
      mn = std::max(mn, tn);
    }
  });
  errors.rethrow();
  *logp_max = ml;
  *nent_max = mn;
}

void anomaly_maps(const std::vector<MapLevel>& levels, int64_t batch, const MapConstants& c, int64_t H, int64_t W,
                  double sigma, float* maps, float* scores) {
  RegionErrors errors;
#pragma omp parallel
  errors.run([&] {
    ImageWork w;
    w.s_logp.resize(H * W);
    w.s_nent.resize(H * W);
    for (int64_t b = omp_get_thread_num(); b < batch; b += omp_get_num_threads()) {
      double* sl = w.s_logp.data();
      double* sn = w.s_nent.data();
      summed(levels, b, true, c.logp_shift, H, W, sl, w);
      for (int64_t i = 0; i < H * W; ++i) sl[i] = std::max(0.0, c.logp_top - sl[i]);
      gaussian_blur(sl, H, W, sigma, w.scratch);
      if (c.logp_only) {
        std::fill(sn, sn + H * W, 1.0);
      } else {
        summed(levels, b, false, c.nent_shift, H, W, sn, w);
        for (int64_t i = 0; i < H * W; ++i) sn[i] = std::max(0.0, c.nent_top - sn[i]);
        gaussian_blur(sn, H, W, sigma, w.scratch);
      }
      float* out = maps + b * H * W;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < H * W; ++i) {
        out[i] = static_cast<float>(sl[i] * sn[i]);
        m = std::max(m, out[i]);
      }
      scores[b] = m;
    }
  });
  errors.rethrow();
}

void check_levels_finite(const std::vector<MapLevel>& levels, int64_t batch) {
  for (size_t l = 0; l < levels.size(); ++l) {
    const int64_t n = batch * levels[l].h * levels[l].w;
    const std::string prefix = "levels[" + std::to_string(l) + "].";
    check_finite(levels[l].logp, n, (prefix + "logp").c_str());
    check_finite(levels[l].nent, n, (prefix + "negEntropy").c_str());
  }
}

}  // namespace hgad
