// oneDNN backend (the default); packed_gemm_openblas.cpp holds the one for HGAD_GEMM_OPENBLAS.
#ifndef HGAD_GEMM_OPENBLAS
#include "packed_gemm.h"

#include <dnnl.hpp>
#include <vector>

#include "bf16.h"
#include "bf16_gemm.h"

namespace hgad {

namespace {
const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}
}  // namespace

struct PackedMatrix::Impl {
  int64_t K, N, lda, ldc;
  dnnl::matmul prim;
  dnnl::memory weights;
  bool bf16 = false;     // prim reads bf16 A (rounded per call) and bf16 weights
  bool own_bf16 = false;  // oneDNN has no bf16 matmul for this CPU: hgad's kernel instead
  Bf16Matrix b16;
};

PackedMatrix::PackedMatrix(int64_t K, int64_t N, const float* b, int64_t stride_k, int64_t stride_n, int64_t lda,
                           int64_t ldc, bool bf16)
    : impl_(std::make_unique<Impl>()) {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  const dnnl::engine& eng = cpu_engine();
  impl_->K = K;
  impl_->N = N;
  impl_->lda = lda;
  impl_->ldc = ldc;
  impl_->bf16 = bf16;
  // On AMX, hgad's own kernel: oneDNN 2.6's matmul with a run-time M takes its AVX512-BF16 gemm there.
  if (bf16 && bf16_amx_available()) {
    impl_->own_bf16 = true;
    impl_->b16 = Bf16Matrix(K, N, b, stride_k, stride_n);
    return;
  }
  // M is a run-time dimension: one primitive serves every tile height. bf16: A is rounded into a
  // contiguous [M, K] bf16 copy per call, so its stride is K.
  const dnnl::memory::desc a = bf16 ? dnnl::memory::desc({DNNL_RUNTIME_DIM_VAL, K}, dt::bf16, dims{K, 1})
                                    : dnnl::memory::desc({DNNL_RUNTIME_DIM_VAL, K}, dt::f32, dims{lda, 1});
  const dnnl::memory::desc w({K, N}, bf16 ? dt::bf16 : dt::f32, dnnl::memory::format_tag::any);
  const dnnl::memory::desc c({DNNL_RUNTIME_DIM_VAL, N}, dt::f32, dims{ldc, 1});
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, w, c), eng);
  } catch (const dnnl::error&) {
    if (!bf16) throw;
    impl_->own_bf16 = true;  // this oneDNN has no bf16 matmul for the CPU
    impl_->b16 = Bf16Matrix(K, N, b, stride_k, stride_n);
    return;
  }
  impl_->prim = dnnl::matmul(pd);
  impl_->weights = dnnl::memory(pd.weights_desc(), eng);
  dnnl::memory src(dnnl::memory::desc({K, N}, dt::f32, dims{stride_k, stride_n}), eng, const_cast<float*>(b));
  dnnl::stream stream(eng);
  dnnl::reorder(src, impl_->weights).execute(stream, src, impl_->weights);
  stream.wait();
}

PackedMatrix::~PackedMatrix() = default;
PackedMatrix::PackedMatrix(PackedMatrix&&) noexcept = default;
PackedMatrix& PackedMatrix::operator=(PackedMatrix&&) noexcept = default;

const Bf16Matrix* PackedMatrix::amx() const { return impl_->own_bf16 && impl_->b16.amx_tiles() ? &impl_->b16 : nullptr; }

void PackedMatrix::multiply(int64_t M, const float* A, float* C) const {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  const Impl& p = *impl_;
  if (p.own_bf16) return p.b16.multiply(M, A, p.lda, C, p.ldc);
  const dnnl::engine& eng = cpu_engine();
  thread_local std::vector<uint16_t> a16;
  dnnl::memory a;
  if (p.bf16) {
    if (static_cast<int64_t>(a16.size()) < M * p.K) a16.resize(static_cast<size_t>(M * p.K));
    for (int64_t i = 0; i < M; ++i) convert_to_bf16(A + i * p.lda, a16.data() + i * p.K, p.K);
    a = dnnl::memory(dnnl::memory::desc({M, p.K}, dt::bf16, dims{p.K, 1}), eng, a16.data());
  } else {
    a = dnnl::memory(dnnl::memory::desc({M, p.K}, dt::f32, dims{p.lda, 1}), eng, const_cast<float*>(A));
  }
  dnnl::memory c(dnnl::memory::desc({M, p.N}, dt::f32, dims{p.ldc, 1}), eng, C);
  dnnl::stream stream(eng);
  p.prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, c}});
  stream.wait();
}

}  // namespace hgad
#endif  // HGAD_GEMM_OPENBLAS
