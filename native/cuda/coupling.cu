// Device twin of core/coupling.cpp: the same GEMMs (cuBLAS or the built-in kernel), and one fused
// kernel for each element-wise stage of the CPU code (add_relu, affine_forward_rows,
// affine_backward_rows, relu_backward, affine_inverse_rows), computing the formulas of elementwise.h.
#include "../core/elementwise.h"
#include "check.cuh"
#include "kernels.cuh"
#include "warp.cuh"

namespace hgad {
namespace cuda {

namespace {

// q[r, j] += b[j].
__global__ void add_bias_kernel(float* q, const float* b, int64_t rows, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * n) q[i] += b[i % n];
}

// add_relu: h[r, j] = relu(h[r, j] + q[r % tp, j]).
__global__ void add_relu_kernel(float* h, const float* q, int64_t R, int64_t tp, int64_t hid) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * hid) return;
  const int64_t r = i / hid, j = i % hid;
  h[i] = relu_add(h[i], q[(r % tp) * hid + j]);
}

// affine_forward_rows, one warp per row: s, u = [v1, v2 e^s + t], u' = u g + offset, ld += sum s + sum ln g.
__global__ void affine_forward_kernel(DeviceBlock bp, int64_t R, int64_t C, int64_t C1, int64_t C2, const float* v,
                                      const float* a, float* s, float* u, float* up, float* ld) {
  const int64_t r = warp_row();
  if (r >= R) return;  // uniform per warp
  const int lane = lane_id();
  const float* vr = v + r * C;
  const float* ar = a + r * 2 * C2;
  float* sr = s + r * C2;
  float* ur = u + r * C;
  float* upr = up + r * C;
  float sum = 0.0f;
  for (int64_t j = lane; j < C2; j += 32) {
    const float sj = coupling_log_scale(ar[j], bp.b2[j], bp.clamp);
    const float tj = coupling_shift(ar[C2 + j], bp.b2[C2 + j]);
    sr[j] = sj;
    const float u2 = vr[C1 + j] * fast_exp(sj) + tj;
    ur[C1 + j] = u2;
    upr[C1 + j] = u2 * bp.g[C1 + j] + bp.offset[C1 + j];
    sum += sj;
  }
  for (int64_t j = lane; j < C1; j += 32) {
    ur[j] = vr[j];
    upr[j] = vr[j] * bp.g[j] + bp.offset[j];
  }
  sum = warp_sum(sum);
  if (lane == 0) ld[r] += sum + *bp.logdet_g;
}

// affine_backward_rows, one thread per element: du (dL/du', left unchanged here) times g is dL/du;
// from it da and, when dv is given, dv.
__global__ void affine_backward_kernel(DeviceBlock bp, int64_t R, int64_t C, int64_t C1, int64_t C2, const float* v,
                                       const float* s, const float* dld, const float* du, float* da, float* dv) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * C) return;
  const int64_t r = i / C, j = i % C;
  const float dus = du[i] * bp.g[j];
  if (j < C1) {
    if (dv) dv[i] = dus;
    return;
  }
  const int64_t k = j - C1;
  const float sk = s[r * C2 + k];
  const float es = fast_exp(sk);
  if (dv) dv[i] = dus * es;
  da[r * 2 * C2 + k] = coupling_grad_s(dus, v[i], es, dld[r], sk, bp.clamp);
  da[r * 2 * C2 + C2 + k] = coupling_grad_t(dus);
}

// relu_backward, one thread per (position, unit): dh through the ReLU and dqsum[p] = the sum over the
// tile's images, in image order as on the CPU.
__global__ void relu_backward_kernel(const float* h, float* dh, float* dqsum, int64_t R, int64_t tp, int64_t hid) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tp * hid) return;
  const int64_t p = i / hid, j = i % hid;
  float acc = 0.0f;
  for (int64_t r = p; r < R; r += tp) {
    const float g = relu_grad(h[r * hid + j], dh[r * hid + j]);
    dh[r * hid + j] = g;
    acc = r == p ? g : acc + g;
  }
  dqsum[i] = acc;
}

// gr.g[j] += (sum of dld) / g[j]: log|det| holds sum ln g for every row.
__global__ void logdet_g_grad_kernel(float* gg, const float* dld_sum, const float* g, int64_t C) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j < C) gg[j] += *dld_sum / g[j];
}

// block_inverse's first stage: u' = w R recovered in up; u = (u' - offset) / g in place; v1 = u1.
__global__ void global_affine_inverse_kernel(DeviceBlock bp, int64_t R, int64_t C, int64_t C1, float* up, float* v) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * C) return;
  const int64_t r = i / C, j = i % C;
  const float x = (up[i] - bp.offset[j]) / bp.g[j];
  up[i] = x;
  if (j < C1) v[r * C + j] = x;
}

// affine_inverse_rows: v2 = (u2 - t) e^-s.
__global__ void affine_inverse_kernel(DeviceBlock bp, int64_t R, int64_t C, int64_t C1, int64_t C2, const float* a,
                                      const float* up, float* v) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * C2) return;
  const int64_t r = i / C2, k = i % C2;
  const float* ar = a + r * 2 * C2;
  const float sk = coupling_log_scale(ar[k], bp.b2[k], bp.clamp);
  const float tk = coupling_shift(ar[C2 + k], bp.b2[C2 + k]);
  v[r * C + C1 + k] = (up[r * C + C1 + k] - tk) * fast_exp(-sk);
}

// out[j] (+)= sum_r a[r, j] (* b[r, j]): 32 columns x 8 row lanes per block, partial sums through shared
// memory, one atomic per column and block.
__global__ void column_sums_kernel(int64_t R, int64_t C, const float* a, const float* b, int64_t ld, float* out) {
  __shared__ float part[8][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  float acc = 0.0f;
  if (j < C)
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * 8 + ty; r < R; r += static_cast<int64_t>(gridDim.y) * 8)
      acc += b ? a[r * ld + j] * b[r * ld + j] : a[r * ld + j];
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && j < C) {
    float sum = 0.0f;
    for (int k = 0; k < 8; ++k) sum += part[k][tx];
    atomicAdd(out + j, sum);
  }
}

// h = relu(v1 W1a^T + q[position]); a = h W2^T (the bias and 0.1 enter in the affine kernels).
void subnet_forward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                    const float* v, const float* q, float* h, float* a) {
  gemm(ctx, false, true, R, d.hid, d.C1, 1.0f, v, d.C, bp.w1, d.n, 0.0f, h, d.hid);
  add_relu_kernel<<<grid_for(R * d.hid), kThreads, 0, ctx.stream()>>>(h, q, R, tp, d.hid);
  HGAD_CUDA_LAUNCHED("add_relu_kernel");
  gemm(ctx, false, true, R, 2 * d.C2, d.hid, 1.0f, h, d.hid, bp.w2, d.hid, 0.0f, a, 2 * d.C2);
}

}  // namespace

void column_sums(const Context& ctx, int64_t R, int64_t C, const float* a, const float* b, int64_t ld, float* out) {
  if (R <= 0 || C <= 0) return;
  const int64_t row_blocks = (R + 8 * 64 - 1) / (8 * 64);  // about 64 rows per thread
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(row_blocks < 1024 ? row_blocks : 1024));
  column_sums_kernel<<<grid, 256, 0, ctx.stream()>>>(R, C, a, b, ld, out);
  HGAD_CUDA_LAUNCHED("column_sums_kernel");
}

void block_pos_forward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t tp, const float* pe,
                       float* q) {
  gemm(ctx, false, true, tp, d.hid, d.P, 1.0f, pe, d.P, bp.w1 + d.C1, d.n, 0.0f, q, d.hid);
  add_bias_kernel<<<grid_for(tp * d.hid), kThreads, 0, ctx.stream()>>>(q, bp.b1, tp, d.hid);
  HGAD_CUDA_LAUNCHED("add_bias_kernel");
}

void block_forward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                   const float* v, const float* q, float* h, float* s, float* u, float* a, float* up, float* w,
                   float* ld) {
  subnet_forward(ctx, d, bp, R, tp, v, q, h, a);
  affine_forward_kernel<<<grid_for_rows(R), kThreads, 0, ctx.stream()>>>(bp, R, d.C, d.C1, d.C2, v, a, s, u, up, ld);
  HGAD_CUDA_LAUNCHED("affine_forward_kernel");
  gemm(ctx, false, true, R, d.C, d.C, 1.0f, up, d.C, bp.rot, d.C, 0.0f, w, d.C);
}

void block_backward(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                    const float* pe, const float* v, const float* h, const float* s, const float* u, const float* dw,
                    const float* dld, float* da, float* dh, float* dqsum, float* du, const BlockGrads<float>& gr,
                    float* dv, float* scratch) {
  const int64_t C = d.C, C1 = d.C1, C2 = d.C2, hid = d.hid;
  cudaStream_t st = ctx.stream();
  // w = u' R^T  =>  du' = dw R.
  gemm(ctx, false, false, R, C, C, 1.0f, dw, C, bp.rot, C, 0.0f, du, C);
  column_sums(ctx, R, C, du, nullptr, C, gr.offset);
  column_sums(ctx, R, C, du, u, C, gr.g);
  HGAD_CUDA_CHECK(cudaMemsetAsync(scratch, 0, sizeof(float), st));
  column_sums(ctx, R, 1, dld, nullptr, 1, scratch);
  logdet_g_grad_kernel<<<grid_for(C), kThreads, 0, st>>>(gr.g, scratch, bp.g, C);
  HGAD_CUDA_LAUNCHED("logdet_g_grad_kernel");
  affine_backward_kernel<<<grid_for(R * C), kThreads, 0, st>>>(bp, R, C, C1, C2, v, s, dld, du, da, dv);
  HGAD_CUDA_LAUNCHED("affine_backward_kernel");
  gemm(ctx, true, false, 2 * C2, hid, R, 1.0f, da, 2 * C2, h, hid, 1.0f, gr.w2, hid);
  column_sums(ctx, R, 2 * C2, da, nullptr, 2 * C2, gr.b2);
  gemm(ctx, false, false, R, hid, 2 * C2, 1.0f, da, 2 * C2, bp.w2, hid, 0.0f, dh, hid);
  relu_backward_kernel<<<grid_for(tp * hid), kThreads, 0, st>>>(h, dh, dqsum, R, tp, hid);
  HGAD_CUDA_LAUNCHED("relu_backward_kernel");
  gemm(ctx, true, false, hid, C1, R, 1.0f, dh, hid, v, C, 1.0f, gr.w1, d.n);
  gemm(ctx, true, false, hid, d.P, tp, 1.0f, dqsum, hid, pe, d.P, 1.0f, gr.w1 + C1, d.n);
  column_sums(ctx, tp, hid, dqsum, nullptr, hid, gr.b1);
  if (dv) gemm(ctx, false, false, R, C1, hid, 1.0f, dh, hid, bp.w1, d.n, 1.0f, dv, C);
}

void block_inverse(const Context& ctx, const BlockDims& d, const DeviceBlock& bp, int64_t R, int64_t tp,
                   const float* w, const float* q, float* h, float* a, float* up, float* v) {
  gemm(ctx, false, false, R, d.C, d.C, 1.0f, w, d.C, bp.rot, d.C, 0.0f, up, d.C);
  global_affine_inverse_kernel<<<grid_for(R * d.C), kThreads, 0, ctx.stream()>>>(bp, R, d.C, d.C1, up, v);
  HGAD_CUDA_LAUNCHED("global_affine_inverse_kernel");
  subnet_forward(ctx, d, bp, R, tp, v, q, h, a);
  affine_inverse_kernel<<<grid_for(R * d.C2), kThreads, 0, ctx.stream()>>>(bp, R, d.C, d.C1, d.C2, a, up, v);
  HGAD_CUDA_LAUNCHED("affine_inverse_kernel");
}

}  // namespace cuda
}  // namespace hgad
