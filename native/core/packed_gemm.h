// A matrix B that stays fixed across many products C[M, N] = A[M, K] B[K, N] (the weights between two
// parameter updates), reordered once into the layout oneDNN's matmul kernels read fastest. On this
// project's shapes that is about 19% faster than dnnl_sgemm, which repacks B on every call.
// With HGAD_GEMM_OPENBLAS (packed_gemm_openblas.cpp) it is a contiguous copy of B multiplied with
// cblas_sgemm: OpenBLAS has no API to keep its packed panels between calls.
// bf16 = true: the products take bf16 inputs with float accumulation and output (the scoring precision
// 'bf16'): oneDNN's bf16 matmul (weights reordered to bf16 once, A rounded to bf16 per call) for source
// builds, hgad's own AVX512-BF16 kernel (bf16_gemm.h) for the OpenBLAS build, which has no bf16 GEMM.
#pragma once
#include <cstdint>
#include <memory>

namespace hgad {

class Bf16Matrix;

class PackedMatrix {
 public:
  // Element (k, n) of B is b[k * stride_k + n * stride_n]; A rows are lda apart, C rows ldc apart.
  PackedMatrix(int64_t K, int64_t N, const float* b, int64_t stride_k, int64_t stride_n, int64_t lda, int64_t ldc,
               bool bf16 = false);
  ~PackedMatrix();
  PackedMatrix(PackedMatrix&&) noexcept;
  PackedMatrix& operator=(PackedMatrix&&) noexcept;

  // C = A B for M rows (C is overwritten). Safe to call from several threads at once.
  void multiply(int64_t M, const float* A, float* C) const;
  // The bf16 copy when products run on hgad's AMX kernel (Bf16Matrix::amx_tiles), else null.
  const Bf16Matrix* amx() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The packed weights of one coupling block, for inference.
struct PackedBlock {
  PackedMatrix w1a;  // W1[:, :C1]^T: v1 -> first hidden layer
  PackedMatrix w2;   // W2^T
  PackedMatrix rot;  // R^T: u' -> w
  PackedMatrix rot_inverse;  // R: w -> u'
};

}  // namespace hgad
