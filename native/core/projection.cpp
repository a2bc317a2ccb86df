#include "projection.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "eigen.h"
#include "gemm.h"
#include "rng.h"

namespace hgad {

namespace {
// Row blocks of a fixed size: each block's partial sums are added in block order, so the result is
// the same whatever the number of threads.
constexpr int64_t kMomentRows = 256;
constexpr int64_t kProjectRows = 512;
// Cross-moments: blocks of kCrossRows rows, up to kCrossSlots of them multiplied at a time in parallel
// (one float32 GEMM each, their C x C products held within kCrossBytes), then added to the float64 sums
// in block order, so the slot count does not change the result.
constexpr int64_t kCrossRows = 256;
constexpr int64_t kCrossSlots = 8;
constexpr int64_t kCrossBytes = int64_t(64) << 20;
}  // namespace

void channel_moments(const float* x, int64_t rows, int64_t channels, double* sum, double* sumsq) {
  const int64_t blocks = (rows + kMomentRows - 1) / kMomentRows;
  std::vector<double> part(static_cast<size_t>(blocks * 2 * channels), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double* s = part.data() + b * 2 * channels;
    double* q = s + channels;
    const int64_t r1 = std::min(rows, (b + 1) * kMomentRows);
    for (int64_t r = b * kMomentRows; r < r1; ++r) {
      const float* row = x + r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const double v = row[c];
        s[c] += v;
        q[c] += v * v;
      }
    }
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const double* s = part.data() + b * 2 * channels;
    for (int64_t c = 0; c < channels; ++c) {
      sum[c] += s[c];
      sumsq[c] += s[channels + c];
    }
  }
}

void project_channels(const float* x, int64_t rows, int64_t in, const float* mean, const float* scale,
                      const float* W, int64_t out, float* y) {
  // W ((x - mean) * scale) = (W diag(scale)) x - (W diag(scale)) mean: one GEMM and a bias.
  std::vector<float> folded(static_cast<size_t>(out * in));
  std::vector<float> bias(static_cast<size_t>(out), 0.0f);
  for (int64_t o = 0; o < out; ++o) {
    double b = 0;
    for (int64_t i = 0; i < in; ++i) {
      const float w = W[o * in + i] * scale[i];
      folded[o * in + i] = w;
      b -= static_cast<double>(w) * mean[i];
    }
    bias[o] = static_cast<float>(b);
  }
  const int64_t tiles = (rows + kProjectRows - 1) / kProjectRows;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t r0 = t * kProjectRows, n = std::min(rows, r0 + kProjectRows) - r0;
    float* yt = y + r0 * out;
    gemm(false, true, n, out, in, 1.0f, x + r0 * in, in, folded.data(), in, 0.0f, yt, out);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) yt[r * out + o] += bias[o];
  }
}

void channel_cross_moments(const float* x, int64_t rows, int64_t channels, const float* shift, double* sum,
                           double* cross) {
  const int64_t C = channels, blocks = (rows + kCrossRows - 1) / kCrossRows;
  const int64_t group = std::max<int64_t>(1, std::min(kCrossSlots, kCrossBytes / (C * C * int64_t(sizeof(float)))));
  std::vector<float> centred(static_cast<size_t>(group * kCrossRows * C));
  std::vector<float> part(static_cast<size_t>(group * C * C));
  for (int64_t g = 0; g < blocks; g += group) {
    const int64_t slots = std::min(group, blocks - g);
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < slots; ++s) {
      const int64_t r0 = (g + s) * kCrossRows, n = std::min(rows, r0 + kCrossRows) - r0;
      float* xc = centred.data() + s * kCrossRows * C;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < C; ++c) xc[r * C + c] = x[(r0 + r) * C + c] - shift[c];
      gemm(true, false, C, C, n, 1.0f, xc, C, xc, C, 0.0f, part.data() + s * C * C, C);
    }
    for (int64_t s = 0; s < slots; ++s) {
      const int64_t r0 = (g + s) * kCrossRows, n = std::min(rows, r0 + kCrossRows) - r0;
      const float* xc = centred.data() + s * kCrossRows * C;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < C; ++c) sum[c] += xc[r * C + c];
      const float* p = part.data() + s * C * C;
      for (int64_t i = 0; i < C * C; ++i) cross[i] += p[i];
    }
  }
}

double principal_directions(const double* cross, const double* sum, int64_t rows, const float* scale,
                            int64_t channels, int64_t out, bool whiten, float* W, double* values) {
  const int64_t C = channels;
  std::vector<double> cov(static_cast<size_t>(C * C)), vectors(static_cast<size_t>(C * C)), all(static_cast<size_t>(C));
  const double n = static_cast<double>(rows);
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j) {
      // Symmetrised: the float32 block products are symmetric only up to rounding.
      const double c = 0.5 * (cross[i * C + j] + cross[j * C + i]) / n - (sum[i] / n) * (sum[j] / n);
      cov[i * C + j] = c * scale[i] * scale[j];
    }
  double trace = 0.0;
  for (int64_t i = 0; i < C; ++i) trace += cov[i * C + i];
  symmetric_eigen(C, cov.data(), all.data(), vectors.data());
  const double floor = 1e-2 * std::max(trace, 0.0) / static_cast<double>(C) + 1e-12;
  for (int64_t k = 0; k < out; ++k) {
    values[k] = all[k];
    const double f = whiten ? 1.0 / std::sqrt(std::max(all[k], 0.0) + floor) : 1.0;
    for (int64_t j = 0; j < C; ++j) W[k * C + j] = static_cast<float>(vectors[k * C + j] * f);
  }
  return trace;
}

std::vector<double> orthonormal_rows_f64(uint64_t seed, int64_t rows, int64_t in) {
  // Modified Gram-Schmidt over Gaussian rows: a Haar-random orthonormal frame, O(rows^2 in).
  Rng rng(seed);
  std::vector<double> q(static_cast<size_t>(rows * in));
  for (auto& v : q) v = rng.normal();
  for (int64_t j = 0; j < rows; ++j) {
    double* qj = q.data() + j * in;
    for (int64_t k = 0; k < j; ++k) {
      const double* qk = q.data() + k * in;
      double dot = 0.0;
      for (int64_t i = 0; i < in; ++i) dot += qk[i] * qj[i];
      for (int64_t i = 0; i < in; ++i) qj[i] -= dot * qk[i];
    }
    double norm = 0.0;
    for (int64_t i = 0; i < in; ++i) norm += qj[i] * qj[i];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < in; ++i) qj[i] /= norm;
  }
  return q;
}

std::vector<float> orthonormal_rows(uint64_t seed, int64_t rows, int64_t in) {
  const std::vector<double> q = orthonormal_rows_f64(seed, rows, in);
  return std::vector<float>(q.begin(), q.end());
}

}  // namespace hgad
