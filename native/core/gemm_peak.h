// Measures this machine's sgemm throughput the way the flow uses it: every thread multiplies its own
// row tile (M x K by K x N) at once, so the figure is the peak the tiled kernels can reach.
#pragma once
#include <cstdint>

namespace hgad {

double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int threads, double seconds);

}  // namespace hgad
