// Shared by the CUDA tests: device copies of host vectors and the comparison every test makes.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "../cuda/buffer.cuh"
#include "../tests/check.h"

namespace hgadtest {

// A device copy of a host vector (or n zeros), read back with get().
template <typename T>
struct Dev {
  hgad::cuda::DeviceBuffer<T> buf;
  int64_t n;
  explicit Dev(const std::vector<T>& h) : n(static_cast<int64_t>(h.size())) {
    HGAD_CUDA_CHECK(cudaMemcpy(buf.ensure(n), h.data(), sizeof(T) * h.size(), cudaMemcpyHostToDevice));
  }
  explicit Dev(int64_t count) : n(count) {
    HGAD_CUDA_CHECK(cudaMemset(buf.ensure(n), 0, sizeof(T) * static_cast<size_t>(n > 0 ? n : 1)));
    HGAD_CUDA_CHECK(cudaDeviceSynchronize());  // the kernels run on a non-blocking stream
  }
  T* p() { return buf.get(); }
  std::vector<T> get() const {
    HGAD_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(static_cast<size_t>(n));
    HGAD_CUDA_CHECK(cudaMemcpy(h.data(), buf.get(), sizeof(T) * h.size(), cudaMemcpyDeviceToHost));
    return h;
  }
};

// max |got - want| over max |want|: the error relative to the array's scale (1e-4 is the issue's bar).
template <typename A, typename B>
double rel_err(const A& got, const B& want, size_t count = static_cast<size_t>(-1)) {
  const size_t n = std::min({got.size(), want.size(), count});
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    diff = std::isfinite(g) ? std::max(diff, std::fabs(g - w)) : INFINITY;
    scale = std::max(scale, std::fabs(w));
  }
  if (got.size() < n || want.size() < n) return INFINITY;
  return diff / std::max(scale, 1e-30);
}

constexpr double kTol = 1e-4;

#define CHECK_CLOSE(got, want, what)                                                              \
  do {                                                                                            \
    const double e_ = hgadtest::rel_err(got, want);                                               \
    CHECK((got).size() == (want).size() && e_ <= hgadtest::kTol, "%s: relative error %.3g", what, e_); \
  } while (0)

}  // namespace hgadtest
