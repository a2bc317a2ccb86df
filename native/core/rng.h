// Deterministic random numbers for initialisation: the same seed gives bit-identical parameters on
// every platform (no std:: distributions, whose output is implementation-defined).
#pragma once
#include <cstdint>
#include <vector>

namespace hgad {

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();                     // [0, 1)
  double uniform(double lo, double hi);
  double normal();                      // N(0, 1), Box-Muller

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// A Haar-random special-orthogonal n x n matrix (row-major): QR of a Gaussian matrix with the signs
// fixed, then one column negated when the determinant is -1.
std::vector<double> random_rotation(Rng& rng, int64_t n);

}  // namespace hgad
