// How a level's work is cut: tiles of images x positions, image-major inside a tile, handed to the
// threads round-robin (a fixed assignment, so per-thread sums are reproducible).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "level.h"

namespace hgad {

// Images [b0, b1) x positions [p0, p1).
struct Tile {
  int64_t b0, b1, p0, p1;
  int64_t tp() const { return p1 - p0; }
  int64_t rows() const { return (b1 - b0) * (p1 - p0); }
  int64_t global_row(int64_t r, int64_t HW) const { return (b0 + r / tp()) * HW + p0 + r % tp(); }
};

// As many images per tile as fit (they share the positional work), then as many positions.
struct Tiling {
  int64_t B, HW, nb, tp, chunks, count;
  Tiling(const FeatureShape& fs, int64_t target_rows) : B(fs.batch), HW(fs.positions()) {
    nb = std::min(B, std::max<int64_t>(1, target_rows));
    tp = std::min(HW, std::max<int64_t>(1, target_rows / nb));
    chunks = (HW + tp - 1) / tp;
    count = ((B + nb - 1) / nb) * chunks;
  }
  Tile tile(int64_t t) const {
    const int64_t g = t / chunks, c = t % chunks;
    return {g * nb, std::min(B, g * nb + nb), c * tp, std::min(HW, c * tp + tp)};
  }
};

// Rows of `tile` from a [B*HW, C] array into a [rows, C] buffer, and back.
template <typename T>
void gather(const Tile& t, int64_t HW, int64_t C, const T* src, T* dst) {
  for (int64_t b = t.b0; b < t.b1; ++b)
    std::memcpy(dst + (b - t.b0) * t.tp() * C, src + (b * HW + t.p0) * C, sizeof(T) * t.tp() * C);
}

template <typename T>
void scatter(const Tile& t, int64_t HW, int64_t C, const T* src, T* dst) {
  for (int64_t b = t.b0; b < t.b1; ++b)
    std::memcpy(dst + (b * HW + t.p0) * C, src + (b - t.b0) * t.tp() * C, sizeof(T) * t.tp() * C);
}

// An exception must not leave an OpenMP region (the runtime would terminate the process): the first
// one is kept and rethrown by the caller after the region.
class RegionErrors {
 public:
  template <typename F>
  void run(F&& fn) noexcept {
    try {
      fn();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
};

// fn(thread id, workspace, tile) for every tile, in parallel.
template <typename W, typename F>
void for_each_tile(std::vector<std::unique_ptr<W>>& ws, const Tiling& tl, int threads, F fn) {
  RegionErrors errors;
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    errors.run([&] {
      for (int64_t t = tid; t < tl.count; t += nt) fn(tid, *ws[tid], tl.tile(t));
    });
  }
  errors.rethrow();
}

}  // namespace hgad
