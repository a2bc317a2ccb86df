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

// The widest level principal directions are computed for: the covariance is C x C float64, and its
// eigen-decomposition O(C^3).
constexpr int64_t kMaxPrincipalChannels = 4096;

// Cross-moments about a fixed shift (a first estimate of the mean, so float32 products do not cancel):
// sum[c] += sum_r (x[r, c] - shift[c]); cross[i, j] += sum_r (x[r, i] - shift[i]) (x[r, j] - shift[j]).
// cross is channels x channels row-major. Independent of the thread count, like channel_moments.
void channel_cross_moments(const float* x, int64_t rows, int64_t channels, const float* shift, double* sum,
                           double* cross);

// The `out` leading principal directions of features with those cross-moments (over `rows` rows),
// after scaling each channel by scale[c]: the eigenvectors of S (cross / rows - m m^T) S, m = sum / rows,
// S = diag(scale), by descending eigenvalue. W (out x channels, row-major) gets them as rows, divided by
// sqrt(eigenvalue + floor) when `whiten` (the floor 1e-2 of the mean eigenvalue, so near-null directions
// are not blown up). values gets the out leading eigenvalues; the return value is the trace (the total
// variance), so a caller can say what fraction the directions keep.
double principal_directions(const double* cross, const double* sum, int64_t rows, const float* scale,
                            int64_t channels, int64_t out, bool whiten, float* W, double* values);

// `rows` Haar-random orthonormal directions of R^in (rows <= in), row-major; seeded, the same on every
// platform (the project's own Rng, no std:: distributions).
std::vector<float> orthonormal_rows(uint64_t seed, int64_t rows, int64_t in);
// The same frame before rounding to float32 (tests build matrices of known spectrum from it).
std::vector<double> orthonormal_rows_f64(uint64_t seed, int64_t rows, int64_t in);

}  // namespace hgad
