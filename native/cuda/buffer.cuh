// A device array that only grows: sized once per shape and reused by every later call (plain
// cudaMalloc, no managed memory).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "check.cuh"

namespace hgad {
namespace cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // At least n elements; the contents are undefined after a reallocation.
  T* ensure(int64_t n) {
    if (n <= capacity_) return ptr_;
    if (ptr_) {
      cudaFree(ptr_);
      ptr_ = nullptr;
      capacity_ = 0;
    }
    void* p = nullptr;
    HGAD_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * static_cast<size_t>(n > 0 ? n : 1)));
    ptr_ = static_cast<T*>(p);
    capacity_ = n;
    return ptr_;
  }
  T* get() const { return ptr_; }
  int64_t capacity() const { return capacity_; }

 private:
  T* ptr_ = nullptr;
  int64_t capacity_ = 0;
};

}  // namespace cuda
}  // namespace hgad
