// The model's stream and GEMM. cuBLAS (HGAD_CUDA_CUBLAS, when CMake finds it in the toolkit) does the
// matrix products; without it a plain shared-memory tiled kernel does, so a toolkit that ships nvcc
// alone still builds a working backend. Both compute in FP32 (no TF32), like the CPU path.
#include <cstdint>
#include <string>

#include "check.cuh"
#include "context.cuh"

#if defined(HGAD_CUDA_CUBLAS)
#include <cublas_v2.h>
#endif

namespace hgad {
namespace cuda {

namespace {

#if defined(HGAD_CUDA_CUBLAS)
void check_blas(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  if (s == CUBLAS_STATUS_ALLOC_FAILED) throw CudaError(std::string("CUDA out of memory (") + what + ")");
  throw CudaError(std::string("cuBLAS error in ") + what + ": status " + std::to_string(static_cast<int>(s)));
}
#else
// 64 x 64 tiles of C per block of 256 threads, each thread 4 x 4 of them in registers; 16-deep slices of
// op(A) and op(B) staged through shared memory, loaded along the stored rows (coalesced) whatever the
// transposition. Element (i, k) of op(A) is A[i * lda + k], or A[k * lda + i] when transposed; likewise
// op(B)(k, j) is B[k * ldb + j] or B[j * ldb + k].
constexpr int kBM = 64, kBN = 64, kBK = 16, kTM = 4, kTN = 4, kGemmThreads = 256;

__global__ void __launch_bounds__(kGemmThreads)
    gemm_tiled(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  __shared__ float as[kBK][kBM + 4];  // as[k][i]
  __shared__ float bs[kBK][kBN + 4];  // bs[k][j]
  const int tid = static_cast<int>(threadIdx.x);
  const int tr = tid / (kBN / kTN), tc = tid % (kBN / kTN);
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBM, col0 = static_cast<int64_t>(blockIdx.x) * kBN;
  float acc[kTM][kTN];
#pragma unroll
  for (int m = 0; m < kTM; ++m)
#pragma unroll
    for (int n = 0; n < kTN; ++n) acc[m][n] = 0.0f;
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    for (int e = tid; e < kBM * kBK; e += kGemmThreads) {
      const int i = transA ? e % kBM : e / kBK, k = transA ? e / kBM : e % kBK;
      const int64_t gi = row0 + i, gk = k0 + k;
      as[k][i] = gi < M && gk < K ? (transA ? A[gk * lda + gi] : A[gi * lda + gk]) : 0.0f;
    }
    for (int e = tid; e < kBK * kBN; e += kGemmThreads) {
      const int j = transB ? e / kBK : e % kBN, k = transB ? e % kBK : e / kBN;
      const int64_t gj = col0 + j, gk = k0 + k;
      bs[k][j] = gk < K && gj < N ? (transB ? B[gj * ldb + gk] : B[gk * ldb + gj]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      float a[kTM], b[kTN];
#pragma unroll
      for (int m = 0; m < kTM; ++m) a[m] = as[k][tr * kTM + m];
#pragma unroll
      for (int n = 0; n < kTN; ++n) b[n] = bs[k][tc * kTN + n];
#pragma unroll
      for (int m = 0; m < kTM; ++m)
#pragma unroll
        for (int n = 0; n < kTN; ++n) acc[m][n] += a[m] * b[n];
    }
    __syncthreads();
  }
#pragma unroll
  for (int m = 0; m < kTM; ++m) {
    const int64_t i = row0 + tr * kTM + m;
    if (i >= M) continue;
#pragma unroll
    for (int n = 0; n < kTN; ++n) {
      const int64_t j = col0 + tc * kTN + n;
      if (j >= N) continue;
      float* c = C + i * ldc + j;
      *c = beta == 0.0f ? alpha * acc[m][n] : alpha * acc[m][n] + beta * *c;
    }
  }
}
#endif

}  // namespace

Context::Context() {
  HGAD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
#if defined(HGAD_CUDA_CUBLAS)
  cublasHandle_t h = nullptr;
  const cublasStatus_t s = cublasCreate(&h);
  if (s != CUBLAS_STATUS_SUCCESS) {
    cudaStreamDestroy(stream_);
    check_blas(s, "cublasCreate");
  }
  blas_ = h;
  check_blas(cublasSetStream(h, stream_), "cublasSetStream");
  check_blas(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
#endif
}

Context::~Context() {
#if defined(HGAD_CUDA_CUBLAS)
  if (blas_) cublasDestroy(static_cast<cublasHandle_t>(blas_));
#endif
  if (stream_) cudaStreamDestroy(stream_);
}

void Context::sync() const { HGAD_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

const char* gemm_backend() {
#if defined(HGAD_CUDA_CUBLAS)
  return "cublas";
#else
  return "builtin";
#endif
}

void gemm(const Context& ctx, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t limit = int64_t{1} << 31;
  if (M >= limit || N >= limit || K >= limit || lda >= limit || ldb >= limit || ldc >= limit)
    throw CudaError("CUDA GEMM dimensions above 2^31");
#if defined(HGAD_CUDA_CUBLAS)
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  check_blas(cublasSgemm(static_cast<cublasHandle_t>(ctx.blas()), transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                         transA ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                         static_cast<int>(K), &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C,
                         static_cast<int>(ldc)),
             "cublasSgemm");
#else
  const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>((M + kBM - 1) / kBM));
  if (grid.y > 65535) throw CudaError("CUDA GEMM: more than 65535 x 64 rows in one product");
  gemm_tiled<<<grid, kGemmThreads, 0, ctx.stream()>>>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  HGAD_CUDA_LAUNCHED("gemm_tiled");
#endif
}

}  // namespace cuda
}  // namespace hgad
