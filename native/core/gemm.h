// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, op = transpose when trans is true.
// float goes to oneDNN's dnnl_sgemm (JIT kernels chosen for the CPU at run time); double is a plain
// reference used only by the float64 gradient checks.
#pragma once
#include <cstdint>

namespace hgad {

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

}  // namespace hgad
