// Channel reduction before the flow (one per feature level). Wide backbone taps (ResNet's 512 and 1024
// channels) make the flow's cost grow with the square of the width, so each level can be standardised
// with statistics of the training features and projected onto fixed orthonormal directions:
//   y = W ((x - mean) * scale),  W: out x in, orthonormal rows.
// The statistics are accumulated in float64 in a fixed order, so they do not depend on the thread count.
#pragma once
#include <cstdint>
#include <vector>

namespace hgad {

// sum[c] += sum_r x[r, c], sumsq[c] += sum_r x[r, c]^2 over rows x channels (row-major).
void channel_moments(const float* x, int64_t rows, int64_t channels, double* sum, double* sumsq);

// y[r, :] = W ((x[r, :] - mean) * scale) for every row; W is out x in (row-major), y rows x out.
void project_channels(const float* x, int64_t rows, int64_t in, const float* mean, const float* scale,
                      const float* W, int64_t out, float* y);

// `rows` Haar-random orthonormal directions of R^in (rows <= in), row-major; seeded, the same on every
// platform (the project's own Rng, no std:: distributions).
std::vector<float> orthonormal_rows(uint64_t seed, int64_t rows, int64_t in);

}  // namespace hgad
