// GEMM with bfloat16 inputs and float accumulation and output: C = alpha op(A) op(B) + beta C, op(A) and
// op(B) rounded to bf16 (bf16.h) as they are packed. The kernels are hgad's own (tdpbf16ps on AMX, else
// vdpbf16ps on AVX512-BF16, compiled with target attributes and chosen at run time), so the prebuilt binary has it whatever
// BLAS it carries (Debian's OpenBLAS has no sbgemm); on a CPU without AVX512-BF16 the same rounding
// runs through a scalar loop (correct, slow: the callers choose fp32 there, see cpu_features.h).
// Single-threaded: it is called inside the level's parallel tiles, like gemm().
#pragma once
#include <cstdint>
#include <vector>

namespace hgad {

void gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The scalar path of gemm_bf16, always: the reference the kernel is tested against.
void gemm_bf16_reference(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Mixed-precision training's first coupling layer on AMX (bf16_amx_available(), non-empty sizes):
// H = relu(A op(B) + qa[i] + qb[i]) with B^T stored (Bt, rows ldb apart, as W1's rows are) and two [N]
// terms per row i, written as floats (H, rows ldh apart) for the backward pass and as bf16 tiles twice:
// ha, the A operand of the next product (gemm_bf16_tiled_a), and hb, the B operand of the weight
// gradient that reads H with k down its rows (gemm_bf16_tiled_b). Each holds amx_tiles_size(M, N)
// uint32s. Bitwise what gemm_bf16, the ReLU and gemm_bf16 on the float H give.
int64_t amx_tiles_size(int64_t M, int64_t N);
void gemm_bf16_relu_amx(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, int64_t ldb,
                        const float* const* qa, const float* const* qb, float* H, int64_t ldh, uint32_t* ha, uint32_t* hb);
// Its backward through the ReLU: G = relu_grad(h, A B) (B [K, N] stored as is, like W2), written as
// floats when G is set, summed per position into gsum when set (relu_backward's dqsum: row r adds to
// gsum[(r % tp) * ldg], rows below tp writing), and as the tiles of G (ga) and of G^T (gt) as A operands
// (gemm_bf16_tiled_a), amx_tiles_size(M, N) each. Bitwise what gemm_bf16 and relu_backward give.
void gemm_bf16_relu_grad_amx(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                             const float* h, int64_t ldh, float* G, float* gsum, int64_t ldg, int64_t tp, uint32_t* ga,
                             uint32_t* gt);
// C = alpha H op(B) + beta C, H [M, K] given by its tiles ha.
void gemm_bf16_tiled_a(int64_t M, int64_t N, int64_t K, const uint32_t* ha, bool transB, const float* B, int64_t ldb,
                       float alpha, float beta, float* C, int64_t ldc);
// C = alpha op(A) H + beta C, H [K, N] given by its tiles hb.
void gemm_bf16_tiled_b(bool transA, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const uint32_t* hb,
                       float alpha, float beta, float* C, int64_t ldc);

// B[K, N] (element (k, n) at b[k * stride_k + n * stride_n]) packed once for many products C = A B.
class Bf16Matrix {
 public:
  Bf16Matrix() = default;
  Bf16Matrix(int64_t K, int64_t N, const float* b, int64_t stride_k, int64_t stride_n);
  // C[M, N] = A[M, K] B (overwritten); A rows lda apart, C rows ldc apart.
  void multiply(int64_t M, const float* A, int64_t lda, float* C, int64_t ldc) const;
  // Inference's first layer on AMX: H = relu(A B + qa[i] + qb[i]) (two [N] terms per row i) is never
  // stored as floats: it goes straight into the bf16 operand tiles of the next product, which
  // multiply_tiles() reads (bitwise the same result as multiply, the ReLU, then multiply). Only where
  // amx_tiles() holds; the tiles live in a per-thread buffer until the thread's next call.
  bool amx_tiles() const;
  const uint32_t* multiply_relu_to_tiles(int64_t M, const float* A, int64_t lda, const float* const* qa,
                                         const float* const* qb) const;
  // C[M, N] = H B, H the tiles of a matrix with N = this one's K (from multiply_relu_to_tiles).
  void multiply_tiles(int64_t M, const uint32_t* h, float* C, int64_t ldc) const;
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }

 private:
  int64_t K_ = 0, N_ = 0, KP_ = 0, NP_ = 0;
  std::vector<uint32_t> pairs_;  // [KPP][NP]: bf16 of rows 2kp (low half) and 2kp+1 (high half); KPP = KP rounded up to 16
  std::vector<uint32_t> tiles_;  // pairs_ tile by tile, for the AMX kernel (empty without AMX)
};

// Whether gemm_bf16 runs the vector kernel on this CPU.
bool bf16_kernel_available();

// Whether it runs the AMX kernel (AMX-BF16 granted to this process; see cpu_features.h).
bool bf16_amx_available();

// Tests: off, gemm_bf16 and Bf16Matrix take the AVX512-BF16 kernel on an AMX machine too (default on).
void bf16_amx_enable(bool on);

}  // namespace hgad
