// oneDNN backend (the default); packed_gemm_openblas.cpp holds the one for HGAD_GEMM_OPENBLAS.
#ifndef HGAD_GEMM_OPENBLAS
#include "packed_gemm.h"

#include <dnnl.hpp>

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
};

PackedMatrix::PackedMatrix(int64_t K, int64_t N, const float* b, int64_t stride_k, int64_t stride_n, int64_t lda,
                           int64_t ldc)
    : impl_(std::make_unique<Impl>()) {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  const dnnl::engine& eng = cpu_engine();
  // M is a run-time dimension: one primitive serves every tile height.
  const dnnl::memory::desc a({DNNL_RUNTIME_DIM_VAL, K}, dt::f32, dims{lda, 1});
  const dnnl::memory::desc w({K, N}, dt::f32, dnnl::memory::format_tag::any);
  const dnnl::memory::desc c({DNNL_RUNTIME_DIM_VAL, N}, dt::f32, dims{ldc, 1});
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, w, c), eng);
  impl_->K = K;
  impl_->N = N;
  impl_->lda = lda;
  impl_->ldc = ldc;
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

void PackedMatrix::multiply(int64_t M, const float* A, float* C) const {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  const Impl& p = *impl_;
  const dnnl::engine& eng = cpu_engine();
  dnnl::memory a(dnnl::memory::desc({M, p.K}, dt::f32, dims{p.lda, 1}), eng, const_cast<float*>(A));
  dnnl::memory c(dnnl::memory::desc({M, p.N}, dt::f32, dims{p.ldc, 1}), eng, C);
  dnnl::stream stream(eng);
  p.prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, c}});
  stream.wait();
}

}  // namespace hgad
#endif  // HGAD_GEMM_OPENBLAS
