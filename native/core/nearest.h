// The nearest-neighbour reference (PatchCore-style, issue 10): local 3x3 averaging of backbone feature
// maps, the Euclidean distance of each query vector to its nearest memory-bank vector, and the anomaly
// map made of those distances with the same upsampling and blur as the flow's maps (maps.h).
#pragma once
#include <cstdint>
#include <vector>

namespace hgad {

// out = torch.nn.AvgPool2d(3, stride 1, padding 1) of NHWC in [batch, h, w, c]: the mean of the 3x3
// neighbourhood with the zero padding counted (count_include_pad, so always divided by 9).
void avg_pool3x3(const float* in, int64_t batch, int64_t h, int64_t w, int64_t c, float* out);

// out = torch.nn.AvgPool2d(2) of NHWC in [batch, h, w, c]: [batch, h / 2, w / 2, c], each output the mean
// of a 2x2 block; an odd last row or column is dropped (ceil_mode false). Needs h, w >= 2.
void avg_pool2x2(const float* in, int64_t batch, int64_t h, int64_t w, int64_t c, float* out);

// dist[i] = min over bank rows j of ||q_i - b_j|| for queries [nq, dim] and bank [nb, dim], row-major;
// with accumulate, dist[i] = min(dist[i], that) (the nearest over the union of several banks).
// The squared distance is ||q||^2 - 2 q.b + ||b||^2 with q.b from the GEMM, blocked over queries and
// bank so memory stays at one block of products per thread; float32, clamped at 0 before the root.
// With bf16, q.b takes bf16-rounded inputs with float accumulation (bf16_gemm.h: AMX or AVX512-BF16,
// the bank packed once per call); the norms stay float. Distances within 1% of fp32's (at most 0.6%
// on the shared data's latents, test/nearest.test.ts: 0.5%).
void nearest_distances(const float* queries, int64_t nq, const float* bank, int64_t nb, int64_t dim, float* dist,
                       bool accumulate, bool bf16 = false);

// One level's per-position values for `batch` images, row-major [batch, h, w].
struct PlaneLevel {
  const float* values;
  int64_t h, w;
};

// maps [batch, H, W] = Gaussian blur (sigma, maps.h) of the sum over levels of each level's values
// upsampled bilinearly with aligned corners to H x W; scores[b] = the max of map b.
void distance_maps(const std::vector<PlaneLevel>& levels, int64_t batch, int64_t H, int64_t W, double sigma, float* maps,
                   float* scores);

}  // namespace hgad
