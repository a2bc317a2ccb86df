#include "level.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "checks.h"
#include "elementwise.h"
#include "posenc.h"
#include "rng.h"
#include "tiling.h"
#include "workspace.h"

namespace hgad {

namespace {

template <typename T>
void log_softmax(const T* x, int64_t n, T* out) {
  T mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  const T lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - lse;
}

// Gradient through out = log_softmax(x): dx_j = dout_j - softmax(x)_j * sum(dout).
template <typename T>
void log_softmax_backward(const T* logp, const T* dout, int64_t n, T* dx) {
  T total = 0;
  for (int64_t i = 0; i < n; ++i) total += dout[i];
  for (int64_t i = 0; i < n; ++i) dx[i] = dout[i] - std::exp(logp[i]) * total;
}

// Where the tensors of one block sit in a flat buffer (parameters, gradients), in spec order.
template <typename P>
struct BlockSlots {
  P w1, b1, w2, b2, gamma, offset;
};

template <typename P>
BlockSlots<P> block_slots(const BlockDims& d, P base) {
  BlockSlots<P> s;
  s.w1 = base;
  s.b1 = s.w1 + d.hid * d.n;
  s.w2 = s.b1 + d.hid;
  s.b2 = s.w2 + 2 * d.C2 * d.hid;
  s.gamma = s.b2 + 2 * d.C2;
  s.offset = s.gamma + d.C;
  return s;
}

}  // namespace

template <typename T>
Level<T>::Level(const LevelConfig& cfg, uint64_t seed) : cfg_(cfg), dims_(cfg.channels, cfg.pos_dim) {
  const int64_t C = cfg.channels, K = cfg.blocks, Y = cfg.classes, M = cfg.centres;
  const BlockDims& d = dims_;
  int64_t off = 0, rot_off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, ParamGroup group) {
    int64_t size = 1;
    for (int64_t s : shape) size *= s;
    int64_t& cursor = group == kGroupFixed ? rot_off : off;
    specs_.push_back({name, std::move(shape), cursor, size, group});
    cursor += size;
  };
  for (int64_t k = 0; k < K; ++k) {
    const std::string p = "blocks." + std::to_string(k) + ".";
    block_offset_.push_back(off);
    add(p + "w1", {d.hid, d.n}, kGroupFlow);
    add(p + "b1", {d.hid}, kGroupFlow);
    add(p + "w2", {2 * d.C2, d.hid}, kGroupFlow);
    add(p + "b2", {2 * d.C2}, kGroupFlow);
    add(p + "gamma", {C}, kGroupFlow);
    add(p + "offset", {C}, kGroupFlow);
    add(p + "rotation", {C, C}, kGroupFixed);
  }
  flow_end_ = off;
  mu_off_ = off;
  add("mu", {Y, C}, kGroupCentres);
  delta_off_ = off;
  add("delta", {Y, M - 1, C}, kGroupCentres);
  centres_end_ = off;
  phi_off_ = off;
  add("phi", {Y}, kGroupLogits);
  psi_off_ = off;
  add("psi", {Y, M}, kGroupLogits);
  params_.assign(off, T(0));
  grads_.assign(off, T(0));
  m_.assign(off, T(0));
  v_.assign(off, T(0));
  rot_.assign(rot_off, T(0));
  init(seed);
}

template <typename T>
Level<T>::~Level() = default;

template <typename T>
const TensorSpec* Level<T>::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

template <typename T>
void Level<T>::init(uint64_t seed) {
  Rng rng(seed);
  const int64_t C = cfg_.channels, Y = cfg_.classes;
  const BlockDims& d = dims_;
  for (int64_t k = 0; k < cfg_.blocks; ++k) {
    // torch.nn.Linear's default: weight and bias uniform in +-1/sqrt(fan_in).
    const BlockSlots<T*> b = block_slots(d, params_.data() + block_offset_[k]);
    const double bound1 = 1.0 / std::sqrt(static_cast<double>(d.n));
    const double bound2 = 1.0 / std::sqrt(static_cast<double>(d.hid));
    for (int64_t i = 0; i < d.hid * d.n; ++i) b.w1[i] = static_cast<T>(rng.uniform(-bound1, bound1));
    for (int64_t i = 0; i < d.hid; ++i) b.b1[i] = static_cast<T>(rng.uniform(-bound1, bound1));
    for (int64_t i = 0; i < 2 * d.C2 * d.hid; ++i) b.w2[i] = static_cast<T>(rng.uniform(-bound2, bound2));
    for (int64_t i = 0; i < 2 * d.C2; ++i) b.b2[i] = static_cast<T>(rng.uniform(-bound2, bound2));
    for (int64_t i = 0; i < C; ++i) b.gamma[i] = global_scale_identity<T>();
    const std::vector<double> r = random_rotation(rng, C);
    T* rot = rot_.data() + k * C * C;
    for (int64_t i = 0; i < C * C; ++i) rot[i] = static_cast<T>(r[i]);
  }
  // Class centres start equidistant: block k of Y columns of mu is s0 * I_Y.
  const int64_t blocks = C / Y;
  if (blocks > 0) {
    const T s0 = static_cast<T>(5.0 / std::sqrt(static_cast<double>((2 * C) / Y)));
    for (int64_t k = 0; k < blocks; ++k)
      for (int64_t y = 0; y < Y; ++y) params_[mu_off_ + y * C + k * Y + y] = s0;
  }
  for (int64_t i = delta_off_; i < centres_end_; ++i) params_[i] = static_cast<T>(rng.normal());
}

template <typename T>
void Level<T>::phase_weights(int phase, T* w) {
  w[kLg] = T(1);
  w[kLmi] = T(-100);
  w[kLe] = T(1);
  w[kLgi] = phase >= 2 ? T(1) : T(0);
  w[kLz] = phase >= 2 ? T(1) : T(0);
}

template <typename T>
BlockParams<T> Level<T>::block(int64_t k, bool with_packed) const {
  const BlockDims& d = dims_;
  const BlockSlots<const T*> b = block_slots(d, params_.data() + block_offset_[k]);
  const PackedBlock* packed = with_packed && packed_current_ ? &packed_[k] : nullptr;
  return {b.w1, b.b1, b.w2, b.b2, b.offset, rot_.data() + k * d.C * d.C, g_.data() + k * d.C, logdet_g_[k],
          static_cast<T>(cfg_.clamp), packed};
}

template <typename T>
void Level<T>::pack_weights() {
  if constexpr (std::is_same_v<T, float>) {
    if (packed_current_ && packed_version_ == version_) return;
    packed_current_ = false;
    packed_.clear();
    const BlockDims& d = dims_;
    for (int64_t k = 0; k < cfg_.blocks; ++k) {
      const BlockSlots<const float*> b = block_slots(d, static_cast<const float*>(params_.data() + block_offset_[k]));
      const float* rot = rot_.data() + k * d.C * d.C;
      packed_.push_back({PackedMatrix(d.C1, d.hid, b.w1, 1, d.n, d.C, d.hid),
                         PackedMatrix(d.hid, 2 * d.C2, b.w2, 1, d.hid, d.hid, 2 * d.C2),
                         PackedMatrix(d.C, d.C, rot, 1, d.C, d.C, d.C), PackedMatrix(d.C, d.C, rot, d.C, 1, d.C, d.C)});
    }
    packed_version_ = version_;
    packed_current_ = true;
  }
}

template <typename T>
void Level<T>::prepare() {
  const BlockDims& d = dims_;
  const int64_t C = d.C, K = cfg_.blocks, Y = cfg_.classes, M = cfg_.centres;
  g_.resize(K * C);
  logdet_g_.resize(K);
  for (int64_t k = 0; k < K; ++k) {
    const T* gamma = block_slots(d, params_.data() + block_offset_[k]).gamma;
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) {
      g_[k * C + c] = global_scale(gamma[c]);
      sum += std::log(g_[k * C + c]);
    }
    logdet_g_[k] = sum;
  }
  centres_.resize(Y * M * C);
  cnorm_.resize(Y * M);
  for (int64_t y = 0; y < Y; ++y) {
    const T* mu = params_.data() + mu_off_ + y * C;
    for (int64_t m = 0; m < M; ++m) {
      T* c = centres_.data() + (y * M + m) * C;
      const T* delta = m > 0 ? params_.data() + delta_off_ + (y * (M - 1) + m - 1) * C : nullptr;
      T norm = 0;
      for (int64_t i = 0; i < C; ++i) {
        c[i] = delta ? mu[i] + delta[i] : mu[i];
        norm += c[i] * c[i];
      }
      cnorm_[y * M + m] = norm;
    }
  }
  logpi_.resize(Y);
  log_softmax(params_.data() + phi_off_, Y, logpi_.data());
  logpi_intra_.resize(Y * M);
  for (int64_t y = 0; y < Y; ++y)
    log_softmax(params_.data() + psi_off_ + y * M, M, logpi_intra_.data() + y * M);
}

template <typename T>
const T* Level<T>::positional(int64_t H, int64_t W) {
  const auto key = std::make_pair(H, W);
  auto it = pe_cache_.find(key);
  if (it != pe_cache_.end()) return it->second.data();
  if (pe_cache_.size() >= 8) pe_cache_.clear();
  std::vector<T> pe(H * W * cfg_.pos_dim);
  positional_encoding(cfg_.pos_dim, W, 0, H * W, pe.data());
  return pe_cache_.emplace(key, std::move(pe)).first->second.data();
}

template <typename T>
const T* Level<T>::position_cache(int64_t H, int64_t W, const T* pe, int threads) {
  const int64_t HW = H * W, hid = dims_.hid, K = cfg_.blocks;
  if (static_cast<int64_t>(sizeof(T)) * K * HW * hid > position_cache_bytes) return nullptr;
  if (qcache_h_ == H && qcache_w_ == W && qcache_version_ == version_) return qcache_.data();
  qcache_.resize(K * HW * hid);
  qcache_h_ = -1;
  const int64_t chunk = 256, chunks = (HW + chunk - 1) / chunk;
  RegionErrors errors;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < chunks; ++c) {
      errors.run([&] {
        const int64_t p0 = c * chunk, rows = std::min(chunk, HW - p0);
        block_pos_forward(dims_, block(k), rows, pe + p0 * cfg_.pos_dim, qcache_.data() + (k * HW + p0) * hid);
      });
    }
  errors.rethrow();
  qcache_h_ = H;
  qcache_w_ = W;
  qcache_version_ = version_;
  return qcache_.data();
}

template <typename T>
const T* Level<T>::tile_q(const T* cache, int64_t k, int64_t HW, const BlockParams<T>& bp, int64_t p0, int64_t tp,
                          const T* pe, T* scratch) const {
  if (cache) return cache + (k * HW + p0) * dims_.hid;
  block_pos_forward(dims_, bp, tp, pe + p0 * cfg_.pos_dim, scratch);
  return scratch;
}

template <typename T>
void Level<T>::ensure_workspaces(int threads, bool train) {
  const int64_t rows = std::max<int64_t>(1, tile_rows);
  if (static_cast<int>(ws_.size()) < threads) ws_.resize(threads);
  for (int t = 0; t < threads; ++t) {
    auto& w = ws_[t];
    if (!w) w = std::make_unique<Workspace<T>>();
    if (w->rows != rows || (train && !w->train))
      w->resize(dims_, cfg_.blocks, cfg_.classes, cfg_.centres, rows, train || w->train,
                t == 0 ? 0 : num_params());
  }
}

// oneDNN sizes its own thread team from the calling thread's OpenMP setting whenever it is not inside
// an active parallel region, which includes our regions of one thread: cap it at `threads`, so the
// thread count asked for is the one used.
static void use_threads(int threads) { omp_set_num_threads(threads); }

template <typename T>
const T* Level<T>::begin_inference(const FeatureShape& fs, int threads) {
  use_threads(threads);
  prepare();
  ensure_workspaces(threads, false);
  const T* pe = positional(fs.height, fs.width);
  qcache_active_ = position_cache(fs.height, fs.width, pe, threads);
  pack_weights();
  return pe;
}

template <typename T>
T* Level<T>::flow_tile(Workspace<T>& w, const Tile& tile, int64_t HW, const T* x, const T* pe) const {
  const int64_t R = tile.rows(), C = dims_.C;
  T* cur = w.acts.data();
  T* next = cur + w.rows * C;
  gather(tile, HW, C, x, cur);
  std::fill(w.ld.begin(), w.ld.begin() + R, T(0));
  for (int64_t k = 0; k < cfg_.blocks; ++k) {
    const BlockParams<T> bp = block(k, true);
    const T* q = tile_q(qcache_active_, k, HW, bp, tile.p0, tile.tp(), pe, w.q.data());
    block_forward(dims_, bp, R, tile.tp(), cur, q, w.h.data(), w.s.data(), w.u.data(), w.a.data(), w.up.data(), next,
                  w.ld.data());
    std::swap(cur, next);
  }
  return cur;
}

template <typename T>
void Level<T>::forward(const FeatureShape& fs, const T* x, T* z, T* logdet, int threads) {
  const T* pe = begin_inference(fs, threads);
  const Tiling tl(fs, tile_rows);
  for_each_tile(ws_, tl, threads, [&](int, Workspace<T>& w, const Tile& tile) {
    scatter(tile, tl.HW, dims_.C, flow_tile(w, tile, tl.HW, x, pe), z);
    scatter(tile, tl.HW, 1, w.ld.data(), logdet);
  });
}

template <typename T>
void Level<T>::inverse(const FeatureShape& fs, const T* z, T* x, int threads) {
  const T* pe = begin_inference(fs, threads);
  const Tiling tl(fs, tile_rows);
  const int64_t C = dims_.C;
  for_each_tile(ws_, tl, threads, [&](int, Workspace<T>& w, const Tile& tile) {
    T* cur = w.acts.data();
    T* next = cur + w.rows * C;
    gather(tile, tl.HW, C, z, cur);
    for (int64_t k = cfg_.blocks - 1; k >= 0; --k) {
      const BlockParams<T> bp = block(k, true);
      const T* q = tile_q(qcache_active_, k, tl.HW, bp, tile.p0, tile.tp(), pe, w.q.data());
      block_inverse(dims_, bp, tile.rows(), tile.tp(), cur, q, w.h.data(), w.a.data(), w.up.data(), next);
      std::swap(cur, next);
    }
    scatter(tile, tl.HW, C, cur, x);
  });
}

template <typename T>
void Level<T>::score(const FeatureShape& fs, const T* x, const int32_t* image_class, T* logp, T* neg_entropy,
                     T* class_logits, int32_t* class_out, int threads) {
  if (image_class) check_classes(image_class, fs.batch, cfg_.classes, "classIndex");
  const T* pe = begin_inference(fs, threads);
  const Tiling tl(fs, tile_rows);
  const int64_t C = dims_.C, Y = cfg_.classes, M = cfg_.centres, HW = tl.HW;
  logp_all_.resize(fs.vectors() * Y);
  const MixtureParams<T> mp{C, Y, M, centres_.data(), cnorm_.data(), logpi_.data(), logpi_intra_.data()};
  for_each_tile(ws_, tl, threads, [&](int, Workspace<T>& w, const Tile& tile) {
    const T* z = flow_tile(w, tile, HW, x, pe);
    mixture_distances(mp, tile.rows(), z, w.zn.data(), w.D.data());
    for (int64_t r = 0; r < tile.rows(); ++r) {
      const int64_t g = tile.global_row(r, HW);
      mixture_score_rows(mp, 1, w.D.data() + r * Y * M, w.ld.data() + r, class_logits + g * Y, neg_entropy + g,
                         logp_all_.data() + g * Y, w.rowbuf.data());
    }
  });
  for (int64_t b = 0; b < fs.batch; ++b) {
    int32_t cls;
    if (image_class) {
      cls = image_class[b];
    } else {
      int64_t best = 0;
      double best_sum = -INFINITY;
      for (int64_t y = 0; y < Y; ++y) {
        double sum = 0;
        for (int64_t p = 0; p < HW; ++p) sum += class_logits[(b * HW + p) * Y + y];
        if (sum > best_sum) best_sum = sum, best = y;
      }
      cls = static_cast<int32_t>(best);
    }
    class_out[b] = cls;
    for (int64_t p = 0; p < HW; ++p) logp[b * HW + p] = logp_all_[(b * HW + p) * Y + cls];
  }
}

template <typename T>
void Level<T>::train_tile(Workspace<T>& w, const Tile& tile, int64_t HW, const T* x, const Labels& labels,
                          const T* pe, const T* weights, T scale, T* gp, T* dx) const {
  const BlockDims& d = dims_;
  const int64_t C = d.C, K = cfg_.blocks, R = tile.rows(), tp = tile.tp(), rows = w.rows;
  const MixtureParams<T> mp{C, cfg_.classes, cfg_.centres, centres_.data(), cnorm_.data(), logpi_.data(),
                            logpi_intra_.data()};
  const MixtureGrads<T> mg{w.gz_full.data(), w.gz_det.data(), w.col_full.data(), w.col_det.data(),
                           w.dlogpi.data(), w.dlogpi_intra.data(), w.loss};
  const T* pe_t = pe + tile.p0 * cfg_.pos_dim;
  auto act = [&](int64_t k) { return w.acts.data() + k * rows * C; };
  gather(tile, HW, C, x, act(0));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t g = tile.global_row(r, HW);
    w.label[r] = labels.per_vector ? labels.data[g] : labels.data[g / HW];
  }
  std::fill(w.ld.begin(), w.ld.begin() + R, T(0));
  for (int64_t k = 0; k < K; ++k) {
    const BlockParams<T> bp = block(k);
    block_pos_forward(d, bp, tp, pe_t, w.q.data());
    block_forward(d, bp, R, tp, act(k), w.q.data(), w.h.data() + k * rows * d.hid, w.s.data() + k * rows * d.C2,
                  w.u.data() + k * rows * C, w.a.data(), w.up.data(), act(k + 1), w.ld.data());
  }
  mixture_distances(mp, R, act(K), w.zn.data(), w.D.data());
  mixture_loss_rows(mp, R, w.D.data(), w.ld.data(), w.label.data(), weights, scale, T(0.02), w.A_full.data(),
                    w.A_det.data(), w.dld.data(), mg, w.rowbuf.data());
  mixture_backward(mp, R, act(K), w.A_full.data(), w.A_det.data(), w.dcur.data(), mg);
  T* dcur = w.dcur.data();
  T* dnext = w.dnext.data();
  for (int64_t k = K - 1; k >= 0; --k) {
    // The gamma slot collects dL/dg; gradients() maps it to dL/dgamma once per step.
    const BlockSlots<T*> g = block_slots(d, gp + block_offset_[k]);
    // The first block's input gradient is only computed when the caller asks for it.
    block_backward(d, block(k), R, tp, pe_t, act(k), w.h.data() + k * rows * d.hid, w.s.data() + k * rows * d.C2,
                   w.u.data() + k * rows * C, dcur, w.dld.data(), w.da.data(), w.dh.data(), w.dqsum.data(),
                   w.du.data(), BlockGrads<T>{g.w1, g.b1, g.w2, g.b2, g.gamma, g.offset},
                   k > 0 || dx ? dnext : nullptr);
    std::swap(dcur, dnext);
  }
  if (dx) scatter(tile, HW, C, dcur, dx);
}

template <typename T>
Losses Level<T>::gradients(const FeatureShape& fs, const T* x, const Labels& labels, const T* weights, T* dx,
                           int threads) {
  check_classes(labels.data, labels.per_vector ? fs.vectors() : fs.batch, cfg_.classes, "labels");
  use_threads(threads);
  prepare();
  const Tiling tl(fs, tile_rows);
  ensure_workspaces(threads, true);
  const T* pe = positional(fs.height, fs.width);
  const BlockDims& d = dims_;
  const int64_t C = d.C, K = cfg_.blocks, Y = cfg_.classes, M = cfg_.centres, J = Y * M;
  const T scale = T(1) / static_cast<T>(fs.vectors());
  // Thread t accumulates into its own buffers (thread 0 straight into grads_), zeroed here.
  for (int t = 0; t < threads; ++t) {
    Workspace<T>& w = *ws_[t];
    T* gp = t == 0 ? grads_.data() : w.gparams.data();
    std::fill(gp, gp + num_params(), T(0));
    for (auto* v : {&w.gz_full, &w.gz_det, &w.col_full, &w.col_det, &w.dlogpi, &w.dlogpi_intra})
      std::fill(v->begin(), v->end(), T(0));
    std::fill(w.loss, w.loss + kNumTerms, 0.0);
  }
  for_each_tile(ws_, tl, threads, [&](int tid, Workspace<T>& w, const Tile& tile) {
    train_tile(w, tile, tl.HW, x, labels, pe, weights, scale, tid == 0 ? grads_.data() : w.gparams.data(), dx);
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
  const AdamGroup groups[] = {{0, flow_end_, 1.0, 1e-4}, {flow_end_, centres_end_, 3.0, 0.0},
                              {centres_end_, num_params(), 1.0, 0.0}};
  for (const AdamGroup& g : groups)
    adam_update(g, hyper_, lr, steps_, params_.data(), grads_.data(), m_.data(), v_.data(), threads);
}

template class Level<float>;
template class Level<double>;

}  // namespace hgad
