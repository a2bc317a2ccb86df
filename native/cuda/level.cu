// CudaLevel: Level<float>'s operations on the device (see level.cuh). Each operation mirrors the
// CPU one in level_inference.cpp / level_training.cpp step by step, with the device twins of
// kernels.cuh in place of the CPU functions.
#include <algorithm>
#include <cmath>
#include <string>

#include "../core/checks.h"
#include "../core/elementwise.h"
#include "../core/posenc.h"
#include "../core/tiling.h"
#include "check.cuh"
#include "level.cuh"
#include "warp.cuh"

namespace hgad {
namespace cuda {

namespace {

// Level::prepare: g = global_scale(gamma) of every block.
__global__ void global_scale_kernel(const float* params, int64_t K, int64_t C, int64_t stride, int64_t gamma_rel,
                                    float* g) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < K * C) g[i] = global_scale(params[(i / C) * stride + gamma_rel + i % C]);
}

// logdet_g[k] = sum_c ln g[k, c], one warp per block.
__global__ void logdet_g_kernel(const float* g, int64_t K, int64_t C, float* logdet) {
  const int64_t k = warp_row();
  if (k >= K) return;
  float acc = 0.0f;
  for (int64_t c = lane_id(); c < C; c += 32) acc += logf(g[k * C + c]);
  acc = warp_sum(acc);
  if (lane_id() == 0) logdet[k] = acc;
}

// Centre (y, m) = mu_y + delta_{y, m} (m > 0), mu_y (m = 0).
__global__ void centres_kernel(const float* params, int64_t mu_off, int64_t delta_off, int64_t Y, int64_t M, int64_t C,
                               float* centres) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= Y * M * C) return;
  const int64_t j = i / C, c = i % C, y = j / M, m = j % M;
  const float mu = params[mu_off + y * C + c];
  centres[i] = m > 0 ? mu + params[delta_off + (y * (M - 1) + m - 1) * C + c] : mu;
}

// out[g] = log_softmax(x[g]) for `groups` groups of n, one warp per group (level_detail::log_softmax).
__global__ void log_softmax_kernel(const float* x, int64_t groups, int64_t n, float* out) {
  const int64_t grp = warp_row();
  if (grp >= groups) return;
  const float* xg = x + grp * n;
  float mx = -INFINITY;
  for (int64_t i = lane_id(); i < n; i += 32) mx = fmaxf(mx, xg[i]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int64_t i = lane_id(); i < n; i += 32) sum += expf(xg[i] - mx);
  const float lse = mx + logf(warp_sum(sum));
  for (int64_t i = lane_id(); i < n; i += 32) out[grp * n + i] = xg[i] - lse;
}

// level_detail::log_softmax_backward: dx = dout - softmax * sum(dout), one warp per group.
__global__ void log_softmax_backward_kernel(const float* logp, const float* dout, int64_t groups, int64_t n,
                                            float* dx) {
  const int64_t grp = warp_row();
  if (grp >= groups) return;
  float total = 0.0f;
  for (int64_t i = lane_id(); i < n; i += 32) total += dout[grp * n + i];
  total = warp_sum(total);
  for (int64_t i = lane_id(); i < n; i += 32) dx[grp * n + i] = dout[grp * n + i] - expf(logp[grp * n + i]) * total;
}

// The gamma slots hold dL/dg; chain through g = global_scale(gamma).
__global__ void gamma_chain_kernel(const float* params, float* grads, int64_t K, int64_t C, int64_t stride,
                                   int64_t gamma_rel) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= K * C) return;
  const int64_t at = (i / C) * stride + gamma_rel + i % C;
  grads[at] *= global_scale_grad(params[at]);
}

// dL/dc_j = 2 (col_j c_j - sum_i A_ij z_i); mu gets the non-detached part of its M centres, delta both.
__global__ void centre_grads_kernel(int64_t Y, int64_t M, int64_t C, const float* centres, const float* col_full,
                                    const float* col_det, const float* gz_full, const float* gz_det, float* grads,
                                    int64_t mu_off, int64_t delta_off) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= Y * C) return;
  const int64_t y = i / C, c = i % C;
  float* gmu = grads + mu_off + y * C + c;
  for (int64_t m = 0; m < M; ++m) {
    const int64_t j = y * M + m;
    const float cj = centres[j * C + c];
    const float full = 2.0f * (col_full[j] * cj - gz_full[j * C + c]);
    *gmu += full;
    if (m > 0)
      grads[delta_off + (y * (M - 1) + m - 1) * C + c] += full + 2.0f * (col_det[j] * cj - gz_det[j * C + c]);
  }
}

int64_t offset_of(const Level<float>& lv, const std::string& name) {
  const TensorSpec* s = lv.find(name);
  if (!s) throw CudaError("CUDA level: no tensor " + name);
  return s->offset;
}

// Rows of a tile between a host [B*HW, width] array and a device [rows, width] buffer (gather/scatter).
void upload_tile(const Context& ctx, const Tile& t, int64_t HW, int64_t width, const float* host, float* dev) {
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(t.tp() * width);
  HGAD_CUDA_CHECK(cudaMemcpy2DAsync(dev, row_bytes, host + (t.b0 * HW + t.p0) * width, sizeof(float) * HW * width,
                                    row_bytes, static_cast<size_t>(t.b1 - t.b0), cudaMemcpyHostToDevice,
                                    ctx.stream()));
}
void download_tile(const Context& ctx, const Tile& t, int64_t HW, int64_t width, const float* dev, float* host) {
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(t.tp() * width);
  HGAD_CUDA_CHECK(cudaMemcpy2DAsync(host + (t.b0 * HW + t.p0) * width, sizeof(float) * HW * width, dev, row_bytes,
                                    row_bytes, static_cast<size_t>(t.b1 - t.b0), cudaMemcpyDeviceToHost,
                                    ctx.stream()));
}

}  // namespace

CudaLevel::CudaLevel(Level<float>& host, const Context& ctx)
    : host_(host), ctx_(ctx), d_(host.config().channels, host.config().pos_dim) {
  const LevelConfig& c = host.config();
  K_ = c.blocks;
  Y_ = c.classes;
  M_ = c.centres;
  J_ = Y_ * M_;
  P_ = c.pos_dim;
  const int64_t w1 = offset_of(host, "blocks.0.w1");
  block_stride_ = K_ > 1 ? offset_of(host, "blocks.1.w1") - w1 : offset_of(host, "mu") - w1;
  for (int64_t k = 0; k < K_; ++k)
    if (offset_of(host, "blocks." + std::to_string(k) + ".w1") != w1 + k * block_stride_ ||
        offset_of(host, "blocks." + std::to_string(k) + ".rotation") != k * d_.C * d_.C)
      throw CudaError("CUDA level: unexpected parameter layout");
  if (w1 != 0 || host.tensors().front().offset != 0) throw CudaError("CUDA level: unexpected parameter layout");
  gamma_rel_ = offset_of(host, "blocks.0.gamma") - w1;
  // block() and gradients() walk a block's tensors in this order: w1, b1, w2, b2, gamma, offset.
  if (offset_of(host, "blocks.0.b2") - w1 != d_.hid * d_.n + d_.hid + 2 * d_.C2 * d_.hid ||
      gamma_rel_ != offset_of(host, "blocks.0.b2") - w1 + 2 * d_.C2 ||
      offset_of(host, "blocks.0.offset") - w1 != gamma_rel_ + d_.C)
    throw CudaError("CUDA level: unexpected parameter layout");
  mu_off_ = offset_of(host, "mu");
  delta_off_ = offset_of(host, "delta");
  phi_off_ = offset_of(host, "phi");
  psi_off_ = offset_of(host, "psi");
  flow_end_ = mu_off_;
  centres_end_ = phi_off_;
  rot_size_ = K_ * d_.C * d_.C;
}

void CudaLevel::push() {
  if (device_current_) return;
  const int64_t n = host_.num_params();
  const TensorSpec& first = host_.tensors().front();
  const Level<float>& ch = host_;
  const TensorSpec* rot0 = host_.find("blocks.0.rotation");
  cudaStream_t st = ctx_.stream();
  const size_t bytes = sizeof(float) * static_cast<size_t>(n);
  HGAD_CUDA_CHECK(cudaMemcpyAsync(params_.ensure(n), ch.data(first), bytes, cudaMemcpyHostToDevice, st));
  HGAD_CUDA_CHECK(cudaMemcpyAsync(grads_.ensure(n), host_.grads().data(), bytes, cudaMemcpyHostToDevice, st));
  HGAD_CUDA_CHECK(cudaMemcpyAsync(m_.ensure(n), host_.adam_m(first), bytes, cudaMemcpyHostToDevice, st));
  HGAD_CUDA_CHECK(cudaMemcpyAsync(v_.ensure(n), host_.adam_v(first), bytes, cudaMemcpyHostToDevice, st));
  HGAD_CUDA_CHECK(cudaMemcpyAsync(rot_.ensure(rot_size_), ch.data(*rot0), sizeof(float) * rot_size_,
                                  cudaMemcpyHostToDevice, st));
  ctx_.sync();
  device_current_ = true;
}

void CudaLevel::pull() {
  if (host_current_) return;
  ctx_.sync();
  const int64_t n = host_.num_params();
  const TensorSpec& first = host_.tensors().front();
  const size_t bytes = sizeof(float) * static_cast<size_t>(n);
  // params() marks the host's derived state (caches, packed weights) stale.
  HGAD_CUDA_CHECK(cudaMemcpy(host_.params().data(), params_.get(), bytes, cudaMemcpyDeviceToHost));
  HGAD_CUDA_CHECK(cudaMemcpy(host_.grads().data(), grads_.get(), bytes, cudaMemcpyDeviceToHost));
  HGAD_CUDA_CHECK(cudaMemcpy(host_.adam_m(first), m_.get(), bytes, cudaMemcpyDeviceToHost));
  HGAD_CUDA_CHECK(cudaMemcpy(host_.adam_v(first), v_.get(), bytes, cudaMemcpyDeviceToHost));
  host_current_ = true;
}

void CudaLevel::prepare() {
  const int64_t C = d_.C;
  cudaStream_t st = ctx_.stream();
  global_scale_kernel<<<grid_for(K_ * C), kThreads, 0, st>>>(params_.get(), K_, C, block_stride_, gamma_rel_,
                                                             g_.ensure(K_ * C));
  HGAD_CUDA_LAUNCHED("global_scale_kernel");
  logdet_g_kernel<<<grid_for_rows(K_), kThreads, 0, st>>>(g_.get(), K_, C, logdet_g_.ensure(K_));
  HGAD_CUDA_LAUNCHED("logdet_g_kernel");
  centres_kernel<<<grid_for(J_ * C), kThreads, 0, st>>>(params_.get(), mu_off_, delta_off_, Y_, M_, C,
                                                        centres_.ensure(J_ * C));
  HGAD_CUDA_LAUNCHED("centres_kernel");
  row_norms(ctx_, J_, C, centres_.get(), cnorm_.ensure(J_));
  log_softmax_kernel<<<grid_for_rows(1), kThreads, 0, st>>>(params_.get() + phi_off_, 1, Y_, logpi_.ensure(Y_));
  HGAD_CUDA_LAUNCHED("log_softmax_kernel");
  log_softmax_kernel<<<grid_for_rows(Y_), kThreads, 0, st>>>(params_.get() + psi_off_, Y_, M_,
                                                             logpi_intra_.ensure(J_));
  HGAD_CUDA_LAUNCHED("log_softmax_kernel");
}

const float* CudaLevel::positional(int64_t H, int64_t W) {
  if (pe_h_ == H && pe_w_ == W) return pe_.get();
  std::vector<float> pe(static_cast<size_t>(H * W * P_));
  positional_encoding(P_, W, 0, H * W, pe.data());
  pe_h_ = -1;
  // On the model's stream, behind any kernel still reading the previous encoding.
  HGAD_CUDA_CHECK(cudaMemcpyAsync(pe_.ensure(H * W * P_), pe.data(), sizeof(float) * pe.size(),
                                  cudaMemcpyHostToDevice, ctx_.stream()));
  ctx_.sync();
  pe_h_ = H;
  pe_w_ = W;
  return pe_.get();
}

DeviceBlock CudaLevel::block(int64_t k) const {
  const BlockDims& d = d_;
  const float* w1 = params_.get() + k * block_stride_;
  const float* b1 = w1 + d.hid * d.n;
  const float* w2 = b1 + d.hid;
  const float* b2 = w2 + 2 * d.C2 * d.hid;
  const float* offset = b2 + 2 * d.C2 + d.C;  // after gamma
  return {w1, b1, w2, b2, offset, rot_.get() + k * d.C * d.C, g_.get() + k * d.C, logdet_g_.get() + k,
          static_cast<float>(host_.config().clamp)};
}

MixtureParams<float> CudaLevel::mixture() const {
  return {d_.C, Y_, M_, centres_.get(), cnorm_.get(), logpi_.get(), logpi_intra_.get()};
}

void CudaLevel::ensure_workspace(int64_t rows, bool train) {
  const BlockDims& d = d_;
  const int64_t copies = train ? K_ : 1;
  acts_.ensure((train ? K_ + 1 : 2) * rows * d.C);
  h_.ensure(copies * rows * d.hid);
  s_.ensure(copies * rows * d.C2);
  u_.ensure(copies * rows * d.C);
  a_.ensure(rows * 2 * d.C2);
  up_.ensure(rows * d.C);
  q_.ensure(rows * d.hid);
  ld_.ensure(rows);
  zn_.ensure(rows);
  D_.ensure(rows * J_);
  if (!train) {
    class_logits_.ensure(rows * Y_);
    neg_entropy_.ensure(rows);
    logp_all_.ensure(rows * Y_);
    return;
  }
  dld_.ensure(rows);
  A_full_.ensure(rows * J_);
  A_det_.ensure(rows * J_);
  dcur_.ensure(rows * d.C);
  dnext_.ensure(rows * d.C);
  du_.ensure(rows * d.C);
  da_.ensure(rows * 2 * d.C2);
  dh_.ensure(rows * d.hid);
  dqsum_.ensure(rows * d.hid);
  scratch_.ensure(1);
  label_.ensure(rows);
  gz_full_.ensure(J_ * d.C);
  gz_det_.ensure(J_ * d.C);
  col_full_.ensure(J_);
  col_det_.ensure(J_);
  dlogpi_.ensure(Y_);
  dlogpi_intra_.ensure(J_);
  loss_.ensure(kNumTerms);
}

float* CudaLevel::flow_rows(int64_t R, int64_t tp, const float* pe_t, float* cur, float* next) {
  HGAD_CUDA_CHECK(cudaMemsetAsync(ld_.get(), 0, sizeof(float) * R, ctx_.stream()));
  for (int64_t k = 0; k < K_; ++k) {
    const DeviceBlock bp = block(k);
    block_pos_forward(ctx_, d_, bp, tp, pe_t, q_.get());
    block_forward(ctx_, d_, bp, R, tp, cur, q_.get(), h_.get(), s_.get(), u_.get(), a_.get(), up_.get(), next,
                  ld_.get());
    std::swap(cur, next);
  }
  return cur;
}

void CudaLevel::forward(const FeatureShape& fs, const float* x, float* z, float* logdet) {
  push();
  prepare();
  const float* pe = positional(fs.height, fs.width);
  const Tiling tl(fs, tile_rows);
  ensure_workspace(tl.nb * tl.tp, false);
  const int64_t C = d_.C;
  for (int64_t t = 0; t < tl.count; ++t) {
    const Tile tile = tl.tile(t);
    float* act0 = acts_.get();
    upload_tile(ctx_, tile, tl.HW, C, x, act0);
    const float* out = flow_rows(tile.rows(), tile.tp(), pe + tile.p0 * P_, act0, act0 + tl.nb * tl.tp * C);
    download_tile(ctx_, tile, tl.HW, C, out, z);
    download_tile(ctx_, tile, tl.HW, 1, ld_.get(), logdet);
  }
  ctx_.sync();
}

void CudaLevel::inverse(const FeatureShape& fs, const float* z, float* x) {
  push();
  prepare();
  const float* pe = positional(fs.height, fs.width);
  const Tiling tl(fs, tile_rows);
  ensure_workspace(tl.nb * tl.tp, false);
  const int64_t C = d_.C;
  for (int64_t t = 0; t < tl.count; ++t) {
    const Tile tile = tl.tile(t);
    const int64_t R = tile.rows(), tp = tile.tp();
    float* cur = acts_.get();
    float* next = cur + tl.nb * tl.tp * C;
    upload_tile(ctx_, tile, tl.HW, C, z, cur);
    for (int64_t k = K_ - 1; k >= 0; --k) {
      const DeviceBlock bp = block(k);
      block_pos_forward(ctx_, d_, bp, tp, pe + tile.p0 * P_, q_.get());
      block_inverse(ctx_, d_, bp, R, tp, cur, q_.get(), h_.get(), a_.get(), up_.get(), next);
      std::swap(cur, next);
    }
    download_tile(ctx_, tile, tl.HW, C, cur, x);
  }
  ctx_.sync();
}

void CudaLevel::score(const FeatureShape& fs, const float* x, const int32_t* image_class, float* logp,
                      float* neg_entropy, float* class_logits, int32_t* class_out, float* class_posterior,
                      bool with_logdet) {
  if (image_class) check_classes(image_class, fs.batch, Y_, "classIndex");
  push();
  prepare();
  const float* pe = positional(fs.height, fs.width);
  const Tiling tl(fs, tile_rows);
  ensure_workspace(tl.nb * tl.tp, false);
  const int64_t C = d_.C, Y = Y_, HW = tl.HW;
  host_logp_all_.resize(static_cast<size_t>(fs.vectors() * Y));
  const MixtureParams<float> mp = mixture();
  for (int64_t t = 0; t < tl.count; ++t) {
    const Tile tile = tl.tile(t);
    const int64_t R = tile.rows();
    float* act0 = acts_.get();
    upload_tile(ctx_, tile, HW, C, x, act0);
    const float* z = flow_rows(R, tile.tp(), pe + tile.p0 * P_, act0, act0 + tl.nb * tl.tp * C);
    mixture_distances(ctx_, mp, R, z, zn_.get(), D_.get());
    if (!with_logdet) HGAD_CUDA_CHECK(cudaMemsetAsync(ld_.get(), 0, sizeof(float) * R, ctx_.stream()));
    mixture_score_rows(ctx_, mp, R, D_.get(), zn_.get(), ld_.get(), class_logits_.get(), neg_entropy_.get(),
                       logp_all_.get());
    download_tile(ctx_, tile, HW, Y, class_logits_.get(), class_logits);
    download_tile(ctx_, tile, HW, 1, neg_entropy_.get(), neg_entropy);
    download_tile(ctx_, tile, HW, Y, logp_all_.get(), host_logp_all_.data());
  }
  ctx_.sync();
  // Per image (host, as Level::score): the class to score under, its logp, the mean posterior.
  mixture_image_scores(fs.batch, HW, Y, image_class, class_logits, host_logp_all_.data(), logp, class_out,
                       class_posterior);
}

Losses CudaLevel::gradients(const FeatureShape& fs, const float* x, const Labels& labels, const float* weights,
                            float* dx) {
  check_classes(labels.data, labels.per_vector ? fs.vectors() : fs.batch, Y_, "labels");
  push();
  prepare();
  const float* pe = positional(fs.height, fs.width);
  const Tiling tl(fs, tile_rows);
  const int64_t rows = tl.nb * tl.tp;
  ensure_workspace(rows, true);
  const BlockDims& d = d_;
  const int64_t C = d.C, HW = tl.HW;
  cudaStream_t st = ctx_.stream();
  const int64_t n = host_.num_params();
  host_current_ = false;  // from here on the device's gradients (even half-computed, after an error) differ
  HGAD_CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, sizeof(float) * n, st));
  for (auto* b : {&gz_full_, &gz_det_, &col_full_, &col_det_, &dlogpi_, &dlogpi_intra_})
    HGAD_CUDA_CHECK(cudaMemsetAsync(b->get(), 0, sizeof(float) * b->capacity(), st));
  HGAD_CUDA_CHECK(cudaMemsetAsync(loss_.get(), 0, sizeof(double) * kNumTerms, st));
  const float scale = 1.0f / static_cast<float>(fs.vectors());
  LossWeights lw;
  for (int i = 0; i < kNumTerms; ++i) lw.w[i] = weights[i];
  const MixtureParams<float> mp = mixture();
  const MixtureGrads<float> mg{gz_full_.get(), gz_det_.get(), col_full_.get(), col_det_.get(),
                               dlogpi_.get(),  dlogpi_intra_.get(), loss_.get()};
  auto act = [&](int64_t k) { return acts_.get() + k * rows * C; };
  host_labels_.resize(static_cast<size_t>(rows));
  for (int64_t t = 0; t < tl.count; ++t) {
    const Tile tile = tl.tile(t);
    const int64_t R = tile.rows(), tp = tile.tp();
    const float* pe_t = pe + tile.p0 * P_;
    upload_tile(ctx_, tile, HW, C, x, act(0));
    for (int64_t r = 0; r < R; ++r) {
      const int64_t g = tile.global_row(r, HW);
      host_labels_[r] = labels.per_vector ? labels.data[g] : labels.data[g / HW];
    }
    // Pageable source: the call returns once the labels are staged, so the vector may be refilled.
    HGAD_CUDA_CHECK(
        cudaMemcpyAsync(label_.get(), host_labels_.data(), sizeof(int32_t) * R, cudaMemcpyHostToDevice, st));
    HGAD_CUDA_CHECK(cudaMemsetAsync(ld_.get(), 0, sizeof(float) * R, st));
    for (int64_t k = 0; k < K_; ++k) {
      const DeviceBlock bp = block(k);
      block_pos_forward(ctx_, d, bp, tp, pe_t, q_.get());
      block_forward(ctx_, d, bp, R, tp, act(k), q_.get(), h_.get() + k * rows * d.hid, s_.get() + k * rows * d.C2,
                    u_.get() + k * rows * C, a_.get(), up_.get(), act(k + 1), ld_.get());
    }
    mixture_distances(ctx_, mp, R, act(K_), zn_.get(), D_.get());
    mixture_loss_rows(ctx_, mp, R, D_.get(), zn_.get(), ld_.get(), label_.get(), lw, scale, 0.02f, A_full_.get(),
                      A_det_.get(), dld_.get(), mg);
    mixture_backward(ctx_, mp, R, act(K_), A_full_.get(), A_det_.get(), dcur_.get(), mg);
    float* dcur = dcur_.get();
    float* dnext = dnext_.get();
    for (int64_t k = K_ - 1; k >= 0; --k) {
      float* gw1 = grads_.get() + k * block_stride_;
      float* gb1 = gw1 + d.hid * d.n;
      float* gw2 = gb1 + d.hid;
      float* gb2 = gw2 + 2 * d.C2 * d.hid;
      float* ggamma = gb2 + 2 * d.C2;  // collects dL/dg; mapped to gamma below
      const BlockGrads<float> gr{gw1, gb1, gw2, gb2, ggamma, ggamma + C};
      block_backward(ctx_, d, block(k), R, tp, pe_t, act(k), h_.get() + k * rows * d.hid,
                     s_.get() + k * rows * d.C2, u_.get() + k * rows * C, dcur, dld_.get(), da_.get(), dh_.get(),
                     dqsum_.get(), du_.get(), gr, k > 0 || dx ? dnext : nullptr, scratch_.get());
      std::swap(dcur, dnext);
    }
    if (dx) download_tile(ctx_, tile, HW, C, dcur, dx);
  }
  gamma_chain_kernel<<<grid_for(K_ * C), kThreads, 0, st>>>(params_.get(), grads_.get(), K_, C, block_stride_,
                                                            gamma_rel_);
  HGAD_CUDA_LAUNCHED("gamma_chain_kernel");
  centre_grads_kernel<<<grid_for(Y_ * C), kThreads, 0, st>>>(Y_, M_, C, centres_.get(), col_full_.get(),
                                                             col_det_.get(), gz_full_.get(), gz_det_.get(),
                                                             grads_.get(), mu_off_, delta_off_);
  HGAD_CUDA_LAUNCHED("centre_grads_kernel");
  log_softmax_backward_kernel<<<grid_for_rows(1), kThreads, 0, st>>>(logpi_.get(), dlogpi_.get(), 1, Y_,
                                                                     grads_.get() + phi_off_);
  HGAD_CUDA_LAUNCHED("log_softmax_backward_kernel");
  log_softmax_backward_kernel<<<grid_for_rows(Y_), kThreads, 0, st>>>(logpi_intra_.get(), dlogpi_intra_.get(), Y_,
                                                                      M_, grads_.get() + psi_off_);
  HGAD_CUDA_LAUNCHED("log_softmax_backward_kernel");
  double loss[kNumTerms];
  HGAD_CUDA_CHECK(cudaMemcpyAsync(loss, loss_.get(), sizeof(loss), cudaMemcpyDeviceToHost, st));
  ctx_.sync();
  Losses out{};
  out.total = 0;
  for (int i = 0; i < kNumTerms; ++i) {
    out.term[i] = loss[i] / static_cast<double>(fs.vectors());
    out.total += static_cast<double>(weights[i]) * out.term[i];
  }
  return out;
}

void CudaLevel::adam_step(double lr) {
  push();
  const int64_t steps = host_.adam_steps() + 1;
  host_.set_adam_steps(steps);
  const AdamGroup groups[] = {{0, flow_end_, 1.0, 1e-4}, {flow_end_, centres_end_, 3.0, 0.0},
                              {centres_end_, host_.num_params(), 1.0, 0.0}};
  const AdamHyper hyper;
  host_current_ = false;
  // As the host Level: a single-Gaussian prior trains the flow group only.
  const int n_groups = host_.config().prior == kPriorSingleGaussian ? 1 : 3;
  for (int i = 0; i < n_groups; ++i) {
    const AdamGroup& g = groups[i];
    adam_update(ctx_, g, hyper, lr, steps, params_.get(), grads_.get(), m_.get(), v_.get());
  }
  ctx_.sync();
}

}  // namespace cuda
}  // namespace hgad
