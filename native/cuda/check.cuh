// CUDA and cuBLAS status checks: every failure becomes a CudaError (a std::runtime_error), which the
// binding turns into a NATIVE error, so no CUDA failure can take the Node process down.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace hgad {
namespace cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error, so the next operation starts clean
  if (e == cudaErrorMemoryAllocation)
    throw CudaError(std::string("CUDA out of memory (") + what + "): use a smaller batch or free GPU memory");
  throw CudaError(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace hgad

#define HGAD_CUDA_CHECK(call) ::hgad::cuda::check((call), #call)
// After a kernel launch: a bad launch configuration shows up here, an execution error at the next sync.
#define HGAD_CUDA_LAUNCHED(name) ::hgad::cuda::check(cudaGetLastError(), name)
