#include "eigen.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "level.h"

namespace hgad {

namespace {

// Householder tridiagonalisation (the classic tred2 scheme). V(r, c) is stored at v[c * n + r]: the
// scheme's inner loops run down columns, which this layout makes contiguous. On return row c of v is
// column c of the orthogonal transform Q; d holds the diagonal and e the sub-diagonal (e[0] = 0).
void tridiagonalize(int64_t n, std::vector<double>& v, std::vector<double>& d, std::vector<double>& e) {
  auto V = [&](int64_t r, int64_t c) -> double& { return v[static_cast<size_t>(c * n + r)]; };
  for (int64_t j = 0; j < n; ++j) d[j] = V(n - 1, j);
  for (int64_t i = n - 1; i > 0; --i) {
    double scale = 0.0, h = 0.0;
    for (int64_t k = 0; k < i; ++k) scale += std::fabs(d[k]);
    if (scale == 0.0) {
      e[i] = d[i - 1];
      for (int64_t j = 0; j < i; ++j) {
        d[j] = V(i - 1, j);
        V(i, j) = 0.0;
        V(j, i) = 0.0;
      }
    } else {
      for (int64_t k = 0; k < i; ++k) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = f > 0 ? -std::sqrt(h) : std::sqrt(h);
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (int64_t j = 0; j < i; ++j) e[j] = 0.0;
      for (int64_t j = 0; j < i; ++j) {
        f = d[j];
        V(j, i) = f;
        g = e[j] + V(j, j) * f;
        for (int64_t k = j + 1; k < i; ++k) {
          g += V(k, j) * d[k];
          e[k] += V(k, j) * f;
        }
        e[j] = g;
      }
      f = 0.0;
      for (int64_t j = 0; j < i; ++j) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const double hh = f / (h + h);
      for (int64_t j = 0; j < i; ++j) e[j] -= hh * d[j];
      for (int64_t j = 0; j < i; ++j) {
        f = d[j];
        g = e[j];
        for (int64_t k = j; k < i; ++k) V(k, j) -= f * e[k] + g * d[k];
        d[j] = V(i - 1, j);
        V(i, j) = 0.0;
      }
    }
    d[i] = h;
  }
  // Accumulate the reflections into Q.
  for (int64_t i = 0; i < n - 1; ++i) {
    V(n - 1, i) = V(i, i);
    V(i, i) = 1.0;
    const double h = d[i + 1];
    if (h != 0.0) {
      for (int64_t k = 0; k <= i; ++k) d[k] = V(k, i + 1) / h;
      for (int64_t j = 0; j <= i; ++j) {
        double g = 0.0;
        for (int64_t k = 0; k <= i; ++k) g += V(k, i + 1) * V(k, j);
        for (int64_t k = 0; k <= i; ++k) V(k, j) -= g * d[k];
      }
    }
    for (int64_t k = 0; k <= i; ++k) V(k, i + 1) = 0.0;
  }
  for (int64_t j = 0; j < n; ++j) {
    d[j] = V(n - 1, j);
    V(n - 1, j) = 0.0;
  }
  V(n - 1, n - 1) = 1.0;
  e[0] = 0.0;
}

// Implicit QL on the tridiagonal (d, e). q holds Q transposed (row i = basis vector i), so every
// rotation touches two contiguous rows.
void ql_implicit(int64_t n, std::vector<double>& q, std::vector<double>& d, std::vector<double>& e) {
  constexpr int kMaxIterations = 64;  // per eigenvalue; a handful is typical
  for (int64_t i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0.0;
  double f = 0.0, tst1 = 0.0;
  const double eps = std::numeric_limits<double>::epsilon();
  for (int64_t l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::fabs(d[l]) + std::fabs(e[l]));
    int64_t m = l;
    while (m < n - 1 && std::fabs(e[m]) > eps * tst1) ++m;
    if (m > l) {
      int iterations = 0;
      do {
        if (++iterations > kMaxIterations) {
          InputError err;
          err.parameter = "covariance";
          err.message = "The eigen-decomposition of the covariance did not converge (eigenvalue " + std::to_string(l) +
                        " after " + std::to_string(kMaxIterations) + " iterations)";
          throw err;
        }
        double g = d[l];
        double p = (d[l + 1] - g) / (2.0 * e[l]);
        double r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int64_t i = l + 2; i < n; ++i) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1.0, c2 = 1.0, c3 = 1.0, s = 0.0, s2 = 0.0;
        const double el1 = e[l + 1];
        for (int64_t i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          double* qi = q.data() + i * n;
          double* qi1 = qi + n;
          for (int64_t k = 0; k < n; ++k) {
            const double t = qi1[k];
            qi1[k] = s * qi[k] + c * t;
            qi[k] = c * qi[k] - s * t;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::fabs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0.0;
  }
}

}  // namespace

void symmetric_eigen(int64_t n, const double* a, double* values, double* vectors) {
  if (n <= 0) return;
  // a is symmetric, so its row-major copy is also the transposed layout tridiagonalize() works in.
  std::vector<double> q(a, a + n * n), d(static_cast<size_t>(n)), e(static_cast<size_t>(n));
  tridiagonalize(n, q, d, e);
  ql_implicit(n, q, d, e);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return d[x] > d[y]; });
  for (int64_t k = 0; k < n; ++k) {
    const double* src = q.data() + order[k] * n;
    int64_t big = 0;
    for (int64_t j = 1; j < n; ++j)
      if (std::fabs(src[j]) > std::fabs(src[big])) big = j;
    const double sign = src[big] < 0 ? -1.0 : 1.0;
    values[k] = d[order[k]];
    for (int64_t j = 0; j < n; ++j) vectors[k * n + j] = sign * src[j];
  }
}

}  // namespace hgad
