// OpenBLAS backend of PackedMatrix: B copied once into a contiguous row-major [K, N] block, so every
// product reads it with unit stride whatever strides the weights had.
#ifdef HGAD_GEMM_OPENBLAS
#include <vector>

#include "bf16_gemm.h"
#include "gemm.h"
#include "packed_gemm.h"

namespace hgad {

struct PackedMatrix::Impl {
  int64_t K, N, lda, ldc;
  std::vector<float> b;
  Bf16Matrix b16;  // used when bf16
  bool bf16 = false;
};

PackedMatrix::PackedMatrix(int64_t K, int64_t N, const float* b, int64_t stride_k, int64_t stride_n, int64_t lda,
                           int64_t ldc, bool bf16)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.K = K;
  p.N = N;
  p.lda = lda;
  p.ldc = ldc;
  p.bf16 = bf16;
  if (bf16) {
    p.b16 = Bf16Matrix(K, N, b, stride_k, stride_n);
    return;
  }
  p.b.resize(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) p.b[k * N + n] = b[k * stride_k + n * stride_n];
}

PackedMatrix::~PackedMatrix() = default;
PackedMatrix::PackedMatrix(PackedMatrix&&) noexcept = default;
PackedMatrix& PackedMatrix::operator=(PackedMatrix&&) noexcept = default;

const Bf16Matrix* PackedMatrix::amx() const { return impl_->bf16 && impl_->b16.amx_tiles() ? &impl_->b16 : nullptr; }

void PackedMatrix::multiply(int64_t M, const float* A, float* C) const {
  const Impl& p = *impl_;
  if (p.bf16) return p.b16.multiply(M, A, p.lda, C, p.ldc);
  gemm(false, false, M, p.N, p.K, 1.0f, A, p.lda, p.b.data(), p.N, 0.0f, C, p.ldc);
}

}  // namespace hgad
#endif  // HGAD_GEMM_OPENBLAS
