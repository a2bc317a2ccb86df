#include "nearest.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "bf16_gemm.h"
#include "checks.h"
#include "gemm.h"
#include "maps.h"
#include "tiling.h"

namespace hgad {

namespace {

// A block of query-bank products: 128 x 1024 floats (512 KiB) stays in L2 while its minima are taken.
constexpr int64_t kQueryBlock = 128;
constexpr int64_t kBankBlock = 1024;

void squared_norms(const float* x, int64_t n, int64_t dim, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * dim;
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) s += static_cast<double>(r[k]) * r[k];
    out[i] = static_cast<float>(s);
  }
}

// min_j (scale p[j] + norms[j]) over independent lanes: a plain running min is one serial dependency
// chain the compiler may not vectorise without -ffast-math. (scale is 1 or -2: exact in float.)
float row_min(const float* p, float scale, const float* norms, int64_t n) {
  constexpr int kLanes = 16;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] = std::min(lane[k], scale * p[j + k] + norms[j + k]);
  float m = *std::min_element(lane, lane + kLanes);
  for (; j < n; ++j) m = std::min(m, scale * p[j] + norms[j]);
  return m;
}

}  // namespace

void avg_pool3x3(const float* in, int64_t batch, int64_t h, int64_t w, int64_t c, float* out) {
  RegionErrors errors;
#pragma omp parallel
  errors.run([&] {
    // Column sums of the (up to) three input rows around output row y, then three of them across x.
    std::vector<float> rows(w * c);
    for (int64_t t = omp_get_thread_num(); t < batch * h; t += omp_get_num_threads()) {
      const int64_t b = t / h, y = t % h;
      std::fill(rows.begin(), rows.end(), 0.0f);
      for (int64_t yy = std::max<int64_t>(0, y - 1); yy <= std::min(h - 1, y + 1); ++yy) {
        const float* src = in + (b * h + yy) * w * c;
        for (int64_t i = 0; i < w * c; ++i) rows[i] += src[i];
      }
      float* dst = out + (b * h + y) * w * c;
      for (int64_t x = 0; x < w; ++x) {
        const float* mid = rows.data() + x * c;
        float* o = dst + x * c;
        for (int64_t k = 0; k < c; ++k) o[k] = mid[k];
        if (x > 0)
          for (int64_t k = 0; k < c; ++k) o[k] += mid[k - c];
        if (x + 1 < w)
          for (int64_t k = 0; k < c; ++k) o[k] += mid[k + c];
        for (int64_t k = 0; k < c; ++k) o[k] *= 1.0f / 9.0f;
      }
    }
  });
  errors.rethrow();
}

void avg_pool2x2(const float* in, int64_t batch, int64_t h, int64_t w, int64_t c, float* out) {
  const int64_t ho = h / 2, wo = w / 2;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < batch * ho; ++t) {
    const int64_t b = t / ho, y = t % ho;
    const float* r0 = in + (b * h + 2 * y) * w * c;
    const float* r1 = r0 + w * c;
    float* dst = out + t * wo * c;
    for (int64_t x = 0; x < wo; ++x) {
      const float* a = r0 + 2 * x * c;
      const float* d = r1 + 2 * x * c;
      float* o = dst + x * c;
      for (int64_t k = 0; k < c; ++k) o[k] = 0.25f * ((a[k] + a[k + c]) + (d[k] + d[k + c]));
    }
  }
}

void nearest_distances(const float* queries, int64_t nq, const float* bank, int64_t nb, int64_t dim, float* dist,
                       bool accumulate, bool bf16) {
  std::vector<float> bank_norms(nb), query_norms(nq);
  squared_norms(bank, nb, dim, bank_norms.data());
  squared_norms(queries, nq, dim, query_norms.data());
  // bf16: each bank block packed once (B = block^T, [dim, bn]) for every query block's products.
  std::vector<Bf16Matrix> packed;
  if (bf16) {
    packed.resize((nb + kBankBlock - 1) / kBankBlock);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < static_cast<int64_t>(packed.size()); ++i) {
      const int64_t b0 = i * kBankBlock;
      packed[i] = Bf16Matrix(dim, std::min(kBankBlock, nb - b0), bank + b0 * dim, 1, dim);
    }
  }
  const int64_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  RegionErrors errors;
#pragma omp parallel
  errors.run([&] {
    std::vector<float> products(kQueryBlock * kBankBlock), best(kQueryBlock);
    for (int64_t blk = omp_get_thread_num(); blk < blocks; blk += omp_get_num_threads()) {
      const int64_t q0 = blk * kQueryBlock, qn = std::min(kQueryBlock, nq - q0);
      std::fill(best.begin(), best.end(), std::numeric_limits<float>::infinity());
      for (int64_t b0 = 0; b0 < nb; b0 += kBankBlock) {
        const int64_t bn = std::min(kBankBlock, nb - b0);
        // products = -2 Q B^T (fp32) or Q B^T (bf16); single-threaded inside this parallel region.
        if (bf16)
          packed[b0 / kBankBlock].multiply(qn, queries + q0 * dim, dim, products.data(), bn);
        else
          gemm(false, true, qn, bn, dim, -2.0f, queries + q0 * dim, dim, bank + b0 * dim, dim, 0.0f, products.data(), bn);
        const float scale = bf16 ? -2.0f : 1.0f;
        const float* norms = bank_norms.data() + b0;
        for (int64_t i = 0; i < qn; ++i) best[i] = std::min(best[i], row_min(products.data() + i * bn, scale, norms, bn));
      }
      for (int64_t i = 0; i < qn; ++i) {
        const float d = std::sqrt(std::max(0.0f, best[i] + query_norms[q0 + i]));
        dist[q0 + i] = accumulate ? std::min(dist[q0 + i], d) : d;
      }
    }
  });
  errors.rethrow();
}

void distance_maps(const std::vector<PlaneLevel>& levels, int64_t batch, int64_t H, int64_t W, double sigma, float* maps,
                   float* scores) {
  RegionErrors errors;
#pragma omp parallel
  errors.run([&] {
    std::vector<double> sum(H * W), plane, scratch;
    for (int64_t b = omp_get_thread_num(); b < batch; b += omp_get_num_threads()) {
      std::fill(sum.begin(), sum.end(), 0.0);
      for (const PlaneLevel& lv : levels) {
        const float* v = lv.values + b * lv.h * lv.w;
        plane.assign(v, v + lv.h * lv.w);
        upsample_add(plane.data(), lv.h, lv.w, H, W, sum.data(), scratch);
      }
      gaussian_blur(sum.data(), H, W, sigma, scratch);
      float* out = maps + b * H * W;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < H * W; ++i) {
        out[i] = static_cast<float>(sum[i]);
        m = std::max(m, out[i]);
      }
      scores[b] = m;
    }
  });
  errors.rethrow();
}

}  // namespace hgad
