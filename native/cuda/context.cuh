// What every device function of a model runs on: its one stream and, when built with cuBLAS, the
// cuBLAS handle bound to that stream.
#pragma once
#include <cuda_runtime.h>

namespace hgad {
namespace cuda {

class Context {
 public:
  Context();  // creates the stream (and cuBLAS handle) on the current device; throws CudaError
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  cudaStream_t stream() const { return stream_; }
  void* blas() const { return blas_; }
  void sync() const;

 private:
  cudaStream_t stream_ = nullptr;
  void* blas_ = nullptr;  // cublasHandle_t when HGAD_CUDA_CUBLAS
};

// Row-major C[M, N] = alpha op(A) op(B) + beta C, op = transpose when trans is set (gemm.h's contract).
void gemm(const Context& ctx, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// "cublas" or "builtin": which GEMM this build uses.
const char* gemm_backend();

}  // namespace cuda
}  // namespace hgad
