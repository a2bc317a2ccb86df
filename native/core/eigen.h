// Eigen-decomposition of a real symmetric matrix, for the principal directions of the channel
// reduction: Householder reduction to tridiagonal form, then the implicit QL method with Wilkinson
// shifts, both in float64. O(n^3); a 1024 x 1024 covariance takes seconds on one core.
#pragma once
#include <cstdint>

namespace hgad {

// a: n x n symmetric, row-major (only read). values: n eigenvalues in descending order; vectors:
// n x n row-major, row k the unit eigenvector of values[k], its largest-magnitude entry positive so
// the result does not depend on the solver's sign choices. Throws InputError when the iteration does
// not converge (a matrix holding non-finite values).
void symmetric_eigen(int64_t n, const double* a, double* values, double* vectors);

}  // namespace hgad
