// Anomaly maps from the per-level flow scores (HGAD.md section 6): exp of the shifted score, bilinear
// upsampling with aligned corners, the sum over levels, top - sum, a Gaussian blur, and the product of
// the logp and negative-entropy maps. The shifts and tops are inputs, so the same code serves the
// authors' batch protocol (constants from the batch itself) and calibrated, batch-independent maps.
#pragma once
#include <cstdint>
#include <vector>

namespace hgad {

// One level's scores for `batch` images, row-major [batch, h, w].
struct MapLevel {
  const float* logp;
  const float* nent;
  int64_t h, w;
};

struct MapConstants {
  std::vector<double> logp_shift, nent_shift;  // one per level
  double logp_top = 0, nent_top = 0;
  // The map is A_logp alone (the nent constants are ignored): for a single-Gaussian prior, whose
  // negative entropy is the same constant everywhere.
  bool logp_only = false;
};

// out[y * W + x] += bilinear sample of in (h x w) at output pixel (y, x) of an H x W grid, with the
// corners of both grids aligned (torch F.interpolate(mode='bilinear', align_corners=True)).
void upsample_add(const double* in, int64_t h, int64_t w, int64_t H, int64_t W, double* out,
                  std::vector<double>& scratch);

// scipy.ndimage.gaussian_filter1d's kernel: truncate 4, radius int(4 sigma + 0.5), normalised.
std::vector<double> gaussian_kernel(double sigma);

// In-place separable Gaussian blur of an H x W image, scipy.ndimage.gaussian_filter semantics (mode
// 'reflect': d c b a | a b c d | d c b a). sigma 0 leaves the image unchanged.
void gaussian_blur(double* image, int64_t H, int64_t W, double sigma, std::vector<double>& scratch);

// Index of position i after reflect padding of [0, n) (half-sample symmetric, repeated for |i| >= n).
inline int64_t reflect_index(int64_t i, int64_t n) {
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// Per-level maxima of logp and nent over all images and positions.
void map_level_maxima(const std::vector<MapLevel>& levels, int64_t batch, double* logp_max, double* nent_max);

// Max over the images of the summed, upsampled exp(v - shift) of each quantity (S before top - S).
void map_sum_maxima(const std::vector<MapLevel>& levels, int64_t batch, const MapConstants& shifts, int64_t H,
                    int64_t W, double* logp_max, double* nent_max);

// The final maps [batch, H, W] and image scores (the max of each map).
void anomaly_maps(const std::vector<MapLevel>& levels, int64_t batch, const MapConstants& c, int64_t H, int64_t W,
                  double sigma, float* maps, float* scores);

// Throws InputError for the first non-finite element, naming it levels[l].logp / levels[l].negEntropy.
void check_levels_finite(const std::vector<MapLevel>& levels, int64_t batch);

}  // namespace hgad
