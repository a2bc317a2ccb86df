// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, op = transpose when trans is true.
// float goes to the GEMM library chosen at build time (CMake HGAD_GEMM): oneDNN's dnnl_sgemm for source
// builds, a statically linked OpenBLAS (HGAD_GEMM_OPENBLAS) for the prebuilt binary that must need no
// shared BLAS on the user's machine. Both size their threads from OpenMP and run single-threaded inside
// an active parallel region, which is how the tiles call them. double is a plain reference used only by
// the float64 gradient checks.
#pragma once
#include <cstdint>

namespace hgad {

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// "onednn" or "openblas-static", and for OpenBLAS the kernel family it dispatched to ("SkylakeX", ...).
const char* gemm_backend();
const char* gemm_kernel();

}  // namespace hgad
