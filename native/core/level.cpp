// Level: parameter layout, initialisation and the state derived from the parameters (caches,
// packed weights, workspaces).
#include "level.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "elementwise.h"
#include "level_detail.h"
#include "posenc.h"
#include "rng.h"
#include "tiling.h"
#include "workspace.h"

namespace hgad {

using namespace level_detail;

LevelLayout level_layout(const LevelConfig& cfg) {
  const int64_t C = cfg.channels, K = cfg.blocks, Y = cfg.classes, M = cfg.centres;
  const BlockDims d(cfg.channels, cfg.pos_dim);
  LevelLayout out;
  int64_t& off = out.params;
  int64_t& rot_off = out.rotations;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, ParamGroup group) {
    int64_t size = 1;
    for (int64_t s : shape) size *= s;
    int64_t& cursor = group == kGroupFixed ? rot_off : off;
    out.specs.push_back({name, std::move(shape), cursor, size, group});
    cursor += size;
  };
  for (int64_t k = 0; k < K; ++k) {
    const std::string p = "blocks." + std::to_string(k) + ".";
    out.block_offset.push_back(off);
    add(p + "w1", {d.hid, d.n}, kGroupFlow);
    add(p + "b1", {d.hid}, kGroupFlow);
    add(p + "w2", {2 * d.C2, d.hid}, kGroupFlow);
    add(p + "b2", {2 * d.C2}, kGroupFlow);
    add(p + "gamma", {C}, kGroupFlow);
    add(p + "offset", {C}, kGroupFlow);
    add(p + "rotation", {C, C}, kGroupFixed);
  }
  out.flow_end = off;
  out.mu_off = off;
  add("mu", {Y, C}, kGroupCentres);
  out.delta_off = off;
  add("delta", {Y, M - 1, C}, kGroupCentres);
  out.centres_end = off;
  out.phi_off = off;
  add("phi", {Y}, kGroupLogits);
  out.psi_off = off;
  add("psi", {Y, M}, kGroupLogits);
  return out;
}

double level_footprint_bytes(const LevelConfig& cfg, int threads) {
  const double C = static_cast<double>(cfg.channels), P = static_cast<double>(cfg.pos_dim);
  const double K = static_cast<double>(cfg.blocks), Y = static_cast<double>(cfg.classes);
  const double M = static_cast<double>(cfg.centres), T = static_cast<double>(threads < 1 ? 1 : threads);
  const double C1 = std::ceil(C / 2), C2 = std::floor(C / 2), n = C1 + P, hid = 2 * n, J = Y * M;
  const double per_block = hid * n + hid + 2 * C2 * hid + 2 * C2 + 2 * C;
  const double params = K * per_block + Y * C + Y * (M - 1) * C + Y + Y * M;
  const double rotations = K * C * C;
  const double packed = K * (C1 * hid + hid * 2 * C2 + 2 * C * C);
  const double derived = J * C + J + 2 * K * C;
  // Level::position_tables (and the encodings they are built from), maps up to 256 x 256.
  const double position_cache = K * 2 * 256 * hid + 2 * 256 * P;
  // One training workspace per thread (workspace.h) at the default tile of 512 rows; threads after
  // the first also keep their own gradient buffer.
  const double R = 512;
  // The position tables' gradients (dpos) are sized for the same largest map.
  // Mixed-precision training on AMX adds h's and dh's bf16 tiles (K + 2 copies of rows x hid / 2 uint32).
  const double workspace = (K + 1) * R * C + K * R * (hid + C2 + C) + R * (2 * C2 + C) + R * (3 * J + 4 * C) +
                           R * (2 * C2 + 2 * hid) + 2 * J * C + 3 * J + Y + K * 2 * 256 * hid + (K + 2) * R * hid / 2;
  const double floats = 4 * params + rotations + packed + derived + position_cache + T * workspace + (T - 1) * params;
  // Building the level's random rotations works on two n x n float64 matrices at a time.
  const double init = 2 * C * C * 8;
  return 4 * floats + init;
}

template <typename T>
Level<T>::Level(const LevelConfig& cfg, uint64_t seed, bool initialise) : cfg_(cfg), dims_(cfg.channels, cfg.pos_dim) {
  LevelLayout layout = level_layout(cfg);
  specs_ = std::move(layout.specs);
  block_offset_ = std::move(layout.block_offset);
  flow_end_ = layout.flow_end;
  mu_off_ = layout.mu_off;
  delta_off_ = layout.delta_off;
  centres_end_ = layout.centres_end;
  phi_off_ = layout.phi_off;
  psi_off_ = layout.psi_off;
  params_.assign(layout.params, T(0));
  grads_.assign(layout.params, T(0));
  m_.assign(layout.params, T(0));
  v_.assign(layout.params, T(0));
  rot_.assign(layout.rotations, T(0));
  if (initialise) init(seed);
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
  // Single Gaussian: every centre stays at the origin (never trained), so the mixture is N(0, I).
  const int64_t blocks = cfg_.prior == kPriorSingleGaussian ? 0 : C / Y;
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
  // with_packed: an inference call.
  const bool bf16 = std::is_same_v<T, float> && (with_packed ? bf16_inference : bf16_training);
  return {b.w1, b.b1, b.w2, b.b2, b.offset, rot_.data() + k * d.C * d.C, g_.data() + k * d.C, logdet_g_[k],
          static_cast<T>(cfg_.clamp), packed, bf16};
}

template <typename T>
void Level<T>::pack_weights() {
  if constexpr (std::is_same_v<T, float>) {
    if (packed_current_ && packed_version_ == version_ && packed_bf16_ == bf16_inference) return;
    packed_current_ = false;
    packed_.clear();
    const bool bf = bf16_inference;
    const BlockDims& d = dims_;
    for (int64_t k = 0; k < cfg_.blocks; ++k) {
      const BlockSlots<const float*> b = block_slots(d, static_cast<const float*>(params_.data() + block_offset_[k]));
      const float* rot = rot_.data() + k * d.C * d.C;
      packed_.push_back({PackedMatrix(d.C1, d.hid, b.w1, 1, d.n, d.C, d.hid, bf),
                         PackedMatrix(d.hid, 2 * d.C2, b.w2, 1, d.hid, d.hid, 2 * d.C2, bf),
                         PackedMatrix(d.C, d.C, rot, 1, d.C, d.C, d.C, bf),
                         PackedMatrix(d.C, d.C, rot, d.C, 1, d.C, d.C, bf)});
    }
    packed_bf16_ = bf;
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
void Level<T>::position_tables(int64_t H, int64_t W, bool rebuild) {
  if (!rebuild && ptab_h_ == H && ptab_w_ == W && ptab_version_ == version_) return;
  const int64_t P = cfg_.pos_dim, half = P / 2, hid = dims_.hid, K = cfg_.blocks;
  ptab_h_ = -1;
  // The encoding of (y, 0) keeps its row half, that of (0, x) its column half (posenc.h): [H + W, P].
  ptab_pe_.assign((H + W) * P, T(0));
  T* pe_row = ptab_pe_.data();
  T* pe_col = pe_row + H * P;
  for (int64_t y = 0; y < H; ++y) {
    positional_encoding(P, W, y * W, y * W + 1, pe_row + y * P);
    std::fill(pe_row + y * P, pe_row + y * P + half, T(0));
  }
  for (int64_t x = 0; x < W; ++x) {
    positional_encoding(P, W, x, x + 1, pe_col + x * P);
    std::fill(pe_col + x * P + half, pe_col + (x + 1) * P, T(0));
  }
  ptab_.resize(K * (H + W) * hid);
  for (int64_t k = 0; k < K; ++k) {
    T* row = ptab_.data() + k * (H + W) * hid;
    block_position_table(dims_, block(k), H, W, pe_row, pe_col, row, row + H * hid);
  }
  ptab_h_ = H;
  ptab_w_ = W;
  ptab_version_ = version_;
}

template <typename T>
PositionTable<T> Level<T>::position_table(int64_t k, int64_t p0) const {
  const T* row = ptab_.data() + k * (ptab_h_ + ptab_w_) * dims_.hid;
  return {row, row + ptab_h_ * dims_.hid, ptab_w_, p0};
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

template class Level<float>;
template class Level<double>;

}  // namespace hgad
