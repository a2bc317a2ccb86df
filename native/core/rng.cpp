#include "rng.h"

#include <cmath>
#include <utility>

namespace hgad {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {  // xoshiro256**
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

std::vector<double> random_rotation(Rng& rng, int64_t n) {
  std::vector<double> q(static_cast<size_t>(n * n));
  for (auto& v : q) v = rng.normal();
  // Modified Gram-Schmidt over columns; r_jj > 0 makes Q Haar-distributed on O(n).
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double dot = 0.0;
      for (int64_t i = 0; i < n; ++i) dot += q[i * n + k] * q[i * n + j];
      for (int64_t i = 0; i < n; ++i) q[i * n + j] -= dot * q[i * n + k];
    }
    double norm = 0.0;
    for (int64_t i = 0; i < n; ++i) norm += q[i * n + j] * q[i * n + j];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < n; ++i) q[i * n + j] /= norm;
  }
  // Sign of det(Q) by LU with partial pivoting on a copy.
  std::vector<double> lu = q;
  int sign = 1;
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(lu[r * n + c]) > std::fabs(lu[piv * n + c])) piv = r;
    if (piv != c) {
      for (int64_t k = 0; k < n; ++k) std::swap(lu[c * n + k], lu[piv * n + k]);
      sign = -sign;
    }
    if (lu[c * n + c] < 0) sign = -sign;
    for (int64_t r = c + 1; r < n; ++r) {
      const double f = lu[r * n + c] / lu[c * n + c];
      for (int64_t k = c; k < n; ++k) lu[r * n + k] -= f * lu[c * n + k];
    }
  }
  if (sign < 0)
    for (int64_t i = 0; i < n; ++i) q[i * n] = -q[i * n];
  return q;
}

}  // namespace hgad
