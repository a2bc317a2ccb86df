#include "gemm_peak.h"

#include <omp.h>

#include <chrono>
#include <vector>

#include "gemm.h"

namespace hgad {

double measure_sgemm_gflops(int64_t M, int64_t N, int64_t K, int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  int64_t calls = 0;
  omp_set_num_threads(threads);  // a one-thread region is inactive: keep the GEMM library to one thread too
  const auto t0 = clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : calls)
  {
    std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N, 0.0f);
    gemm(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);  // JIT warm-up
    const auto start = clock::now();
    while (std::chrono::duration<double>(clock::now() - start).count() < seconds) {
      for (int i = 0; i < 8; ++i) gemm(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
      calls += 8;
    }
  }
  const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  return 2.0 * static_cast<double>(M * N * K) * static_cast<double>(calls) / elapsed / 1e9;
}

}  // namespace hgad
