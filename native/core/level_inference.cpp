// Level: forward, inverse and scoring.
#include "level.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "checks.h"
#include "level_detail.h"
#include "tiling.h"
#include "workspace.h"

namespace hgad {

using namespace level_detail;

template <typename T>
void Level<T>::begin_inference(const FeatureShape& fs, int threads) {
  use_threads(threads);
  prepare();
  ensure_workspaces(threads, false);
  position_tables(fs.height, fs.width);
  pack_weights();
}

template <typename T>
T* Level<T>::flow_tile(Workspace<T>& w, const Tile& tile, int64_t HW, const T* x) const {
  const int64_t R = tile.rows(), C = dims_.C;
  T* cur = w.acts.data();
  T* next = cur + w.rows * C;
  gather(tile, HW, C, x, cur);
  std::fill(w.ld.begin(), w.ld.begin() + R, T(0));
  for (int64_t k = 0; k < cfg_.blocks; ++k) {
    block_forward(dims_, block(k, true), R, tile.tp(), cur, position_table(k, tile.p0), w.h.data(), w.s.data(),
                  w.u.data(), w.a.data(), w.up.data(), next, w.ld.data());
    std::swap(cur, next);
  }
  return cur;
}

template <typename T>
void Level<T>::forward(const FeatureShape& fs, const T* x, T* z, T* logdet, int threads) {
  begin_inference(fs, threads);
  const Tiling tl(fs, tile_rows);
  for_each_tile(ws_, tl, threads, [&](int, Workspace<T>& w, const Tile& tile) {
    scatter(tile, tl.HW, dims_.C, flow_tile(w, tile, tl.HW, x), z);
    scatter(tile, tl.HW, 1, w.ld.data(), logdet);
  });
}

template <typename T>
void Level<T>::inverse(const FeatureShape& fs, const T* z, T* x, int threads) {
  begin_inference(fs, threads);
  const Tiling tl(fs, tile_rows);
  const int64_t C = dims_.C;
  for_each_tile(ws_, tl, threads, [&](int, Workspace<T>& w, const Tile& tile) {
    T* cur = w.acts.data();
    T* next = cur + w.rows * C;
    gather(tile, tl.HW, C, z, cur);
    for (int64_t k = cfg_.blocks - 1; k >= 0; --k) {
      block_inverse(dims_, block(k, true), tile.rows(), tile.tp(), cur, position_table(k, tile.p0), w.h.data(),
                    w.a.data(), w.up.data(), next);
      std::swap(cur, next);
    }
    scatter(tile, tl.HW, C, cur, x);
  });
}

template <typename T>
void Level<T>::score(const FeatureShape& fs, const T* x, const int32_t* image_class, T* logp, T* neg_entropy,
                     T* class_logits, int32_t* class_out, T* class_posterior, int threads, bool with_logdet) {
  if (image_class) check_classes(image_class, fs.batch, cfg_.classes, "classIndex");
  begin_inference(fs, threads);
  const Tiling tl(fs, tile_rows);
  const int64_t C = dims_.C, Y = cfg_.classes, M = cfg_.centres, HW = tl.HW;
  logp_all_.resize(fs.vectors() * Y);
  const MixtureParams<T> mp{C, Y, M, centres_.data(), cnorm_.data(), logpi_.data(), logpi_intra_.data()};
  for_each_tile(ws_, tl, threads, [&](int, Workspace<T>& w, const Tile& tile) {
    const T* z = flow_tile(w, tile, HW, x);
    if (!with_logdet) std::fill(w.ld.begin(), w.ld.begin() + tile.rows(), T(0));
    mixture_distances(mp, tile.rows(), z, w.zn.data(), w.D.data());
    for (int64_t r = 0; r < tile.rows(); ++r) {
      const int64_t g = tile.global_row(r, HW);
      mixture_score_rows(mp, 1, w.D.data() + r * Y * M, w.ld.data() + r, class_logits + g * Y, neg_entropy + g,
                         logp_all_.data() + g * Y, w.rowbuf.data());
    }
  });
  mixture_image_scores(fs.batch, HW, Y, image_class, class_logits, logp_all_.data(), logp, class_out,
                       class_posterior);
}


template class Level<float>;
template class Level<double>;

}  // namespace hgad
