// The channel reduction's principal directions: the symmetric eigen-solver against the defining
// identities (A v = lambda v, orthonormal vectors, trace kept) on matrices with distinct, repeated and
// zero eigenvalues, and the cross-moments against a float64 scan whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/eigen.h"
#include "../core/projection.h"
#include "check.h"
#include "fixtures.h"

namespace {

// Q diag(lambda) Q^T for a random orthogonal Q (the reduction's own seeded frame, in float64).
std::vector<double> with_spectrum(const std::vector<double>& lambda, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(lambda.size());
  const std::vector<double> q = hgad::orthonormal_rows_f64(seed, n, n);
  std::vector<double> a(n * n, 0.0);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) a[i * n + j] += lambda[k] * q[k * n + i] * q[k * n + j];
  return a;
}

// The worst of |A v - lambda v|, |v_i . v_j - [i == j]| and eigenvalue order; 0 when exact.
double eigen_error(const std::vector<double>& a, int64_t n, const std::vector<double>& values, const std::vector<double>& vectors) {
  double worst = 0;
  for (int64_t k = 0; k < n; ++k) {
    if (k > 0 && values[k] > values[k - 1]) worst = std::max(worst, values[k] - values[k - 1]);
    for (int64_t i = 0; i < n; ++i) {
      double av = 0;
      for (int64_t j = 0; j < n; ++j) av += a[i * n + j] * vectors[k * n + j];
      worst = std::max(worst, std::fabs(av - values[k] * vectors[k * n + i]));
    }
    for (int64_t m = 0; m <= k; ++m) {
      double dot = 0;
      for (int64_t j = 0; j < n; ++j) dot += vectors[k * n + j] * vectors[m * n + j];
      worst = std::max(worst, std::fabs(dot - (k == m ? 1.0 : 0.0)));
    }
  }
  return worst;
}

}  // namespace

HGAD_TEST(symmetric_eigen_decomposes) {
  // A random symmetric matrix, one with a known spectrum holding repeated and zero eigenvalues, a
  // diagonal one (already tridiagonal: nothing to reflect) and the 1 x 1 case.
  const int64_t n = 57;
  std::vector<double> r = hgadtest::random_vector<double>(n * n, 3);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) r[j * n + i] = r[i * n + j];
  std::vector<double> spectrum(n);
  for (int64_t k = 0; k < n; ++k) spectrum[k] = k < 10 ? 50.0 - k : (k < 30 ? 2.0 : 0.0);
  std::vector<double> diagonal(n * n, 0.0);
  for (int64_t k = 0; k < n; ++k) diagonal[k * n + k] = double((k * 7) % 11);
  const std::vector<std::vector<double>> cases = {r, with_spectrum(spectrum, 4), diagonal};
  for (const auto& a : cases) {
    std::vector<double> values(n), vectors(n * n);
    hgad::symmetric_eigen(n, a.data(), values.data(), vectors.data());
    const double err = eigen_error(a, n, values, vectors);
    CHECK(err < 1e-9, "n %lld: error %g", (long long)n, err);
    double trace = 0, sum = 0;
    for (int64_t k = 0; k < n; ++k) trace += a[k * n + k], sum += values[k];
    CHECK(std::fabs(trace - sum) < 1e-9 * std::max(1.0, std::fabs(trace)), "trace %g vs %g", trace, sum);
  }
  {
    std::vector<double> values(n), vectors(n * n);
    hgad::symmetric_eigen(n, cases[1].data(), values.data(), vectors.data());
    CHECK(std::fabs(values[0] - 50.0) < 1e-9 && std::fabs(values[15] - 2.0) < 1e-9 && std::fabs(values[n - 1]) < 1e-9,
          "spectrum %g %g %g", values[0], values[15], values[n - 1]);
    for (int64_t k = 0; k < n; ++k) {
      int64_t big = 0;
      for (int64_t j = 1; j < n; ++j)
        if (std::fabs(vectors[k * n + j]) > std::fabs(vectors[k * n + big])) big = j;
      CHECK(vectors[k * n + big] > 0, "vector %lld: largest entry negative", (long long)k);
    }
  }
  const double one = 3.5;
  double value = 0, vector = 0;
  hgad::symmetric_eigen(1, &one, &value, &vector);
  CHECK(value == 3.5 && vector == 1.0, "1 x 1: %g %g", value, vector);
}

HGAD_TEST(cross_moments_match_float64_and_thread_count) {
  // More rows than one group of blocks, and a partial last block.
  const int64_t rows = 2 * 8 * 256 + 77, C = 19;
  std::vector<float> x = hgadtest::random_vector<float>(rows * C, 5);
  for (int64_t i = 0; i < rows * C; ++i) x[i] += 3.0f + 0.1f * float(i % C);
  std::vector<float> shift(C);
  for (int64_t c = 0; c < C; ++c) shift[c] = 3.0f + 0.1f * float(c);
  std::vector<double> ref_sum(C, 0.0), ref_cross(C * C, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < C; ++i) {
      const double xi = double(x[r * C + i]) - shift[i];
      ref_sum[i] += xi;
      for (int64_t j = 0; j < C; ++j) ref_cross[i * C + j] += xi * (double(x[r * C + j]) - shift[j]);
    }
  std::vector<std::vector<double>> results;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    std::vector<double> sum(C, 0.0), cross(C * C, 0.0);
    hgad::channel_cross_moments(x.data(), rows, C, shift.data(), sum.data(), cross.data());
    double worst = 0;
    for (int64_t i = 0; i < C * C; ++i) worst = std::max(worst, std::fabs(cross[i] - ref_cross[i]) / double(rows));
    for (int64_t c = 0; c < C; ++c) worst = std::max(worst, std::fabs(sum[c] - ref_sum[c]) / double(rows));
    CHECK(worst < 1e-5, "threads %d: worst per-row difference %g", threads, worst);
    sum.insert(sum.end(), cross.begin(), cross.end());
    results.push_back(sum);
  }
  CHECK(results[0] == results[1], "the sums differ between 1 and 2 threads");
}

HGAD_TEST(principal_directions_of_known_covariance) {
  // Rows drawn with covariance Q diag(lambda) Q^T, channels then scaled by 1 / scale: after the
  // scaling the leading directions are Q's first rows, with variances lambda.
  const int64_t C = 12, K = 3, rows = 20000;
  const std::vector<double> lambda = {9, 4, 2, 0.5, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05};
  const std::vector<double> cov = with_spectrum(lambda, 9);
  // Cholesky of cov, to draw rows.
  std::vector<double> L(C * C, 0.0);
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = cov[i * C + j];
      for (int64_t k = 0; k < j; ++k) s -= L[i * C + k] * L[j * C + k];
      L[i * C + j] = i == j ? std::sqrt(s) : s / L[j * C + j];
    }
  std::vector<float> scale(C), x(rows * C);
  for (int64_t c = 0; c < C; ++c) scale[c] = 0.5f + 0.25f * float(c % 4);
  const std::vector<double> z = hgadtest::random_vector<double>(rows * C, 10);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < C; ++i) {
      double v = 0;
      for (int64_t k = 0; k <= i; ++k) v += L[i * C + k] * z[r * C + k];
      x[r * C + i] = static_cast<float>(7.0 + v / scale[i]);
    }
  std::vector<float> shift(C, 7.0f);
  std::vector<double> sum(C, 0.0), cross(C * C, 0.0), values(K);
  hgad::channel_cross_moments(x.data(), rows, C, shift.data(), sum.data(), cross.data());
  std::vector<float> W(K * C), Ww(K * C);
  const double total = hgad::principal_directions(cross.data(), sum.data(), rows, scale.data(), C, K, false, W.data(), values.data());
  double lsum = 0;
  for (double l : lambda) lsum += l;
  CHECK(std::fabs(total - lsum) < 0.05 * lsum, "total variance %g, expected about %g", total, lsum);
  std::vector<double> all(C), vectors(C * C);
  hgad::symmetric_eigen(C, cov.data(), all.data(), vectors.data());
  for (int64_t k = 0; k < K; ++k) {
    CHECK(std::fabs(values[k] - lambda[k]) < 0.05 * lambda[k], "eigenvalue %lld: %g, expected about %g", (long long)k, values[k], lambda[k]);
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += double(W[k * C + c]) * vectors[k * C + c];
    CHECK(std::fabs(std::fabs(dot) - 1.0) < 0.01, "direction %lld: |cos| with the true one %g", (long long)k, dot);
  }
  hgad::principal_directions(cross.data(), sum.data(), rows, scale.data(), C, K, true, Ww.data(), values.data());
  const double floor = 1e-2 * total / C + 1e-12;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const double want = W[k * C + c] / std::sqrt(values[k] + floor);
      CHECK(std::fabs(Ww[k * C + c] - want) < 1e-6, "whitened direction %lld differs at %lld", (long long)k, (long long)c);
    }
}
