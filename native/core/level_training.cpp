// Level: loss, gradients and the Adam step.
#include "level.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "bf16_gemm.h"
#include "checks.h"
#include "elementwise.h"
#include "level_detail.h"
#include "tiling.h"
#include "workspace.h"

namespace hgad {

using namespace level_detail;

template <typename T>
void Level<T>::train_tile(Workspace<T>& w, const Tile& tile, int64_t HW, const T* x, const Labels& labels,
                          const T* weights, T scale, T* gp, T* dx, const T* latent_logdet) const {
  const BlockDims& d = dims_;
  const int64_t C = d.C, K = cfg_.blocks, R = tile.rows(), tp = tile.tp(), rows = w.rows;
  const MixtureParams<T> mp{C, cfg_.classes, cfg_.centres, centres_.data(), cnorm_.data(), logpi_.data(),
                            logpi_intra_.data()};
  const MixtureGrads<T> mg{w.gz_full.data(), w.gz_det.data(), w.col_full.data(), w.col_det.data(),
                           w.dlogpi.data(), w.dlogpi_intra.data(), w.loss};
  auto act = [&](int64_t k) { return w.acts.data() + k * rows * C; };
  // Latent input: the rows are the flow's outputs already (act(K)), with their log-dets.
  gather(tile, HW, C, x, latent_logdet ? act(K) : act(0));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t g = tile.global_row(r, HW);
    w.label[r] = labels.per_vector ? labels.data[g] : labels.data[g / HW];
    w.ld[r] = latent_logdet ? latent_logdet[g] : T(0);
  }
  // Mixed precision on AMX: each block's h and dh also go into the bf16 tiles their products read.
  const int64_t tiles_size = amx_tiles_size(rows, d.hid);
  const bool tiled = std::is_same_v<T, float> && bf16_training && bf16_amx_available() && R > 0;
  if (tiled) {
    for (auto* v : {&w.h_tiles_a, &w.h_tiles_at})
      if (static_cast<int64_t>(v->size()) < tiles_size) v->resize(static_cast<size_t>(tiles_size));
    if (static_cast<int64_t>(w.h_tiles_b.size()) < K * tiles_size) w.h_tiles_b.resize(static_cast<size_t>(K * tiles_size));
  }
  auto tiles = [&](int64_t k) {
    return HiddenTiles{w.h_tiles_a.data(), w.h_tiles_b.data() + k * tiles_size, w.h_tiles_at.data()};
  };
  for (int64_t k = 0; k < K && !latent_logdet; ++k) {
    const HiddenTiles t = tiled ? tiles(k) : HiddenTiles{};
    block_forward(d, block(k), R, tp, act(k), position_table(k, tile.p0), w.h.data() + k * rows * d.hid,
                  w.s.data() + k * rows * d.C2, w.u.data() + k * rows * C, w.a.data(), w.up.data(), act(k + 1),
                  w.ld.data(), tiled ? &t : nullptr);
  }
  mixture_distances(mp, R, act(K), w.zn.data(), w.D.data());
  mixture_loss_rows(mp, R, w.D.data(), w.ld.data(), w.label.data(), weights, scale, T(0.02), w.A_full.data(),
                    w.A_det.data(), w.dld.data(), mg, w.rowbuf.data());
  mixture_backward(mp, R, act(K), w.A_full.data(), w.A_det.data(), w.dcur.data(), mg);
  // A frozen flow needs no parameter gradients; without dx nothing else needs the backward pass.
  if (!train_flow_ && !dx) return;
  T* dcur = w.dcur.data();
  T* dnext = w.dnext.data();
  for (int64_t k = K - 1; k >= 0; --k) {
    // The gamma slot collects dL/dg; gradients() maps it to dL/dgamma once per step.
    const BlockSlots<T*> g = block_slots(d, gp + block_offset_[k]);
    const HiddenTiles t = tiled ? tiles(k) : HiddenTiles{};
    // The first block's input gradient is only computed when the caller asks for it. W1's positional
    // half and b1 get their gradients once per step, from the position tables' (gradients()).
    const T* dq = block_backward(d, block(k), R, tp, static_cast<const T*>(nullptr), act(k),
                                 w.h.data() + k * rows * d.hid, w.s.data() + k * rows * d.C2,
                                 w.u.data() + k * rows * C, dcur, w.dld.data(), w.da.data(), w.dh.data(),
                                 w.dqsum.data(), w.du.data(), BlockGrads<T>{g.w1, g.b1, g.w2, g.b2, g.gamma, g.offset},
                                 k > 0 || dx ? dnext : nullptr, tiled ? &t : nullptr);
    T* drow = w.dpos.data() + k * (ptab_h_ + ptab_w_) * d.hid;
    fold_position_grads(d.hid, tp, tile.p0, ptab_w_, dq, drow, drow + ptab_h_ * d.hid);
    std::swap(dcur, dnext);
  }
  if (dx) scatter(tile, HW, C, dcur, dx);
}

template <typename T>
Losses Level<T>::gradients(const FeatureShape& fs, const T* x, const Labels& labels, const T* weights, T* dx,
                           int threads, const T* latent_logdet) {
  if (latent_logdet && (train_flow_ || dx))
    throw InputError{"latents", "Training on latents needs a frozen flow and no input gradient", -1, false};
  check_classes(labels.data, labels.per_vector ? fs.vectors() : fs.batch, cfg_.classes, "labels");
  use_threads(threads);
  prepare();
  const Tiling tl(fs, tile_rows);
  ensure_workspaces(threads, true);
  const BlockDims& d = dims_;
  const int64_t C = d.C, K = cfg_.blocks, Y = cfg_.classes, M = cfg_.centres, J = Y * M;
  const int64_t H = fs.height, W = fs.width;
  // The flow runs forward through the position tables; its backward (parameter gradients, or dx)
  // collects their gradients per thread.
  const bool flow = !latent_logdet, backward = flow && (train_flow_ || dx);
  if (flow) position_tables(H, W, true);
  const T scale = T(1) / static_cast<T>(fs.vectors());
  // Thread t accumulates into its own buffers (thread 0 straight into grads_), zeroed here.
  for (int t = 0; t < threads; ++t) {
    Workspace<T>& w = *ws_[t];
    T* gp = t == 0 ? grads_.data() : w.gparams.data();
    std::fill(gp, gp + num_params(), T(0));
    for (auto* v : {&w.gz_full, &w.gz_det, &w.col_full, &w.col_det, &w.dlogpi, &w.dlogpi_intra})
      std::fill(v->begin(), v->end(), T(0));
    std::fill(w.loss, w.loss + kNumTerms, 0.0);
    if (backward) w.dpos.assign(K * (H + W) * d.hid, T(0));
  }
  for_each_tile(ws_, tl, threads, [&](int tid, Workspace<T>& w, const Tile& tile) {
    train_tile(w, tile, tl.HW, x, labels, weights, scale, tid == 0 ? grads_.data() : w.gparams.data(), dx,
               latent_logdet);
  });
  // Fixed-order reduction of the other threads' accumulators into thread 0's.
  Workspace<T>& w0 = *ws_[0];
  for (int t = 1; t < threads; ++t) {
    Workspace<T>& wt = *ws_[t];
    const T* src = wt.gparams.data();
    T* dst = grads_.data();
    const int64_t n = num_params();
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
    for (size_t i = 0; i < w0.gz_full.size(); ++i) w0.gz_full[i] += wt.gz_full[i];
    for (size_t i = 0; i < w0.gz_det.size(); ++i) w0.gz_det[i] += wt.gz_det[i];
    for (int64_t j = 0; j < J; ++j) {
      w0.col_full[j] += wt.col_full[j];
      w0.col_det[j] += wt.col_det[j];
      w0.dlogpi_intra[j] += wt.dlogpi_intra[j];
    }
    for (int64_t y = 0; y < Y; ++y) w0.dlogpi[y] += wt.dlogpi[y];
    for (int i = 0; i < kNumTerms; ++i) w0.loss[i] += wt.loss[i];
    if (backward)
      for (size_t i = 0; i < w0.dpos.size(); ++i) w0.dpos[i] += wt.dpos[i];
  }
  if (backward) {
    const T* pe_row = ptab_pe_.data();
    for (int64_t k = 0; k < K; ++k) {
      const T* drow = w0.dpos.data() + k * (H + W) * d.hid;
      const BlockSlots<T*> g = block_slots(d, grads_.data() + block_offset_[k]);
      block_position_table_backward(d, H, W, pe_row, pe_row + H * d.P, drow, drow + H * d.hid, g.w1, g.b1);
    }
  }
  // The gamma slots hold dL/dg; chain through g = 0.2 ln(1 + exp(gamma / 2)).
  for (int64_t k = 0; k < K; ++k) {
    T* dgamma = block_slots(d, grads_.data() + block_offset_[k]).gamma;
    const T* gamma = block_slots(d, params_.data() + block_offset_[k]).gamma;
    for (int64_t c = 0; c < C; ++c) dgamma[c] *= global_scale_grad(gamma[c]);
  }
  // Centre gradients: dL/dc_j = 2 (col_j c_j - sum_i A_ij z_i); mu gets the non-detached part of all of
  // its M centres, delta_{y,m} both parts.
  for (int64_t y = 0; y < Y; ++y) {
    T* gmu = grads_.data() + mu_off_ + y * C;
    for (int64_t m = 0; m < M; ++m) {
      const int64_t j = y * M + m;
      const T* c = centres_.data() + j * C;
      T* gdelta = m > 0 ? grads_.data() + delta_off_ + (y * (M - 1) + m - 1) * C : nullptr;
      for (int64_t i = 0; i < C; ++i) {
        const T full = T(2) * (w0.col_full[j] * c[i] - w0.gz_full[j * C + i]);
        gmu[i] += full;
        if (gdelta) gdelta[i] += full + T(2) * (w0.col_det[j] * c[i] - w0.gz_det[j * C + i]);
      }
    }
  }
  log_softmax_backward(logpi_.data(), w0.dlogpi.data(), Y, grads_.data() + phi_off_);
  for (int64_t y = 0; y < Y; ++y)
    log_softmax_backward(logpi_intra_.data() + y * M, w0.dlogpi_intra.data() + y * M, M,
                         grads_.data() + psi_off_ + y * M);
  Losses out{};
  out.total = 0;
  for (int i = 0; i < kNumTerms; ++i) {
    out.term[i] = w0.loss[i] / static_cast<double>(fs.vectors());
    out.total += static_cast<double>(weights[i]) * out.term[i];
  }
  return out;
}

template <typename T>
void Level<T>::adam_step(double lr, int threads) {
  ++steps_;
  ++version_;
  // Classes are the outer dimension of mu, delta, phi and psi: the trainable classes' rows of each are
  // one contiguous range. Frozen classes keep parameters and moments. With frozen classes the
  // inter-class logits phi are all frozen: trained on the new classes' data alone, the new classes'
  // shares of the prior would only grow (towards 1), and class inference reads phi.
  const int64_t C = cfg_.channels, Y = cfg_.classes, M = cfg_.centres, f = first_class_;
  const int64_t phi_from = f > 0 ? Y : f;
  const AdamGroup groups[] = {{0, train_flow_ ? flow_end_ : 0, 1.0, 1e-4},
                              {mu_off_ + f * C, mu_off_ + Y * C, 3.0, 0.0},
                              {delta_off_ + f * (M - 1) * C, centres_end_, 3.0, 0.0},
                              {phi_off_ + phi_from, phi_off_ + Y, 1.0, 0.0},
                              {psi_off_ + f * M, num_params(), 1.0, 0.0}};
  // Single Gaussian: centres and class logits are frozen at 0 (their moments stay 0 too).
  const int n_groups = cfg_.prior == kPriorSingleGaussian ? 1 : 5;
  for (int i = 0; i < n_groups; ++i) {
    const AdamGroup& g = groups[i];
    if (g.end > g.begin) adam_update(g, hyper_, lr, steps_, params_.data(), grads_.data(), m_.data(), v_.data(), threads);
  }
}

template <typename T>
void Level<T>::set_trainable(bool flow, int64_t first_class) {
  if (first_class < 0 || first_class > cfg_.classes)
    throw InputError{"firstClass", "Expected a class index in [0, classes]", first_class, false};
  train_flow_ = flow;
  first_class_ = first_class;
}

template class Level<float>;
template class Level<double>;

}  // namespace hgad
