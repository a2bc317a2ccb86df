#include "projection.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "gemm.h"
#include "rng.h"

namespace hgad {

namespace {
// Row blocks of a fixed size: each block's partial sums are added in block order, so the result is
// the same whatever the number of threads.
constexpr int64_t kMomentRows = 256;
constexpr int64_t kProjectRows = 512;
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

std::vector<float> orthonormal_rows(uint64_t seed, int64_t rows, int64_t in) {
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
  return std::vector<float>(q.begin(), q.end());
}

}  // namespace hgad
