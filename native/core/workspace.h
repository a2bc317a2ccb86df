// Per-thread scratch of a Level, sized once for the tile height and reused by every tile and call:
// the hot loops never allocate.
#pragma once
#include <cstdint>
#include <vector>

#include "coupling.h"

namespace hgad {

template <typename T>
struct Workspace {
  int64_t rows = 0;
  bool train = false;
  std::vector<T> acts;   // (K+1) x rows x C when training, else 2 x rows x C (ping-pong)
  std::vector<T> h, s, u;  // K (training) or 1 copies: rows x hid, rows x C2, rows x C
  std::vector<T> a, up;  // rows x 2*C2, rows x C
  std::vector<T> ld, dld, zn, D, A_full, A_det, dcur, dnext, du, da, dh, dqsum, rowbuf;
  // Training: per block, the gradients of the position tables' row [H, hid] and col [W, hid] parts
  // (sized per map by Level::gradients).
  std::vector<T> dpos;
  std::vector<int32_t> label;
  // Mixed-precision training on AMX: h and dh as bf16 operand tiles (HiddenTiles: a and at once, b per
  // block, kept for the backward pass). Grown by Level::train_tile when it takes that path.
  std::vector<uint32_t> h_tiles_a, h_tiles_at, h_tiles_b;
  // Gradient accumulators of this thread (thread 0 writes the level's own grads instead of gparams).
  std::vector<T> gparams, gz_full, gz_det, col_full, col_det, dlogpi, dlogpi_intra;
  double loss[5] = {0, 0, 0, 0, 0};

  void resize(const BlockDims& d, int64_t K, int64_t Y, int64_t M, int64_t R, bool with_grads,
              int64_t num_params) {
    rows = R;
    train = with_grads;
    const int64_t copies = with_grads ? K : 1, J = Y * M;
    acts.assign((with_grads ? K + 1 : 2) * R * d.C, T(0));
    h.assign(copies * R * d.hid, T(0));
    s.assign(copies * R * d.C2, T(0));
    u.assign(copies * R * d.C, T(0));
    a.assign(R * 2 * d.C2, T(0));
    up.assign(R * d.C, T(0));
    ld.assign(R, T(0));
    zn.assign(R, T(0));
    D.assign(R * J, T(0));
    rowbuf.assign(4 * (Y > M ? Y : M), T(0));
    label.assign(R, 0);
    if (!with_grads) return;
    dld.assign(R, T(0));
    A_full.assign(R * J, T(0));
    A_det.assign(R * J, T(0));
    dcur.assign(R * d.C, T(0));
    dnext.assign(R * d.C, T(0));
    du.assign(R * d.C, T(0));
    da.assign(R * 2 * d.C2, T(0));
    dh.assign(R * d.hid, T(0));
    dqsum.assign(R * d.hid, T(0));
    gparams.assign(num_params, T(0));
    gz_full.assign(J * d.C, T(0));
    gz_det.assign(J * d.C, T(0));
    col_full.assign(J, T(0));
    col_det.assign(J, T(0));
    dlogpi.assign(Y, T(0));
    dlogpi_intra.assign(J, T(0));
  }
};

}  // namespace hgad
