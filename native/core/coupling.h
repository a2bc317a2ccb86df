// One affine coupling block (HGAD.md section 2) over a tile of R rows, llm.c style: forward, backward
// and inverse side by side as plain functions over flat row-major arrays.
//
// A tile holds `nb` images x `tp` positions, image-major (row r is position r % tp of image r / tp),
// so the positional-encoding half of the first Linear layer (q = W1b p + b1) is computed once per
// position and shared by the tile's images, in the forward pass and in the weight gradient.
#pragma once
#include <cstdint>

namespace hgad {

struct PackedBlock;

struct BlockDims {
  int64_t C, C1, C2, P, n, hid;  // hid = 2n
  BlockDims(int64_t channels, int64_t posDim)
      : C(channels), C1((channels + 1) / 2), C2(channels / 2), P(posDim), n(C1 + posDim), hid(2 * n) {}
};

template <typename T>
struct BlockParams {
  const T* w1;      // [hid, n]
  const T* b1;      // [hid]
  const T* w2;      // [2*C2, hid]
  const T* b2;      // [2*C2]
  const T* offset;  // [C]
  const T* rot;     // [C, C]
  const T* g;       // [C] global scale, derived from gamma
  T logdet_g;       // sum ln g
  T clamp;
  const PackedBlock* packed;  // pre-packed w1a, w2, rot (float inference), or null
};

template <typename T>
struct BlockGrads {
  T* w1;
  T* b1;
  T* w2;
  T* b2;
  T* g;  // dL/dg; the caller maps it to gamma once per step
  T* offset;
};

// q[tp, hid] = pe[tp, P] W1b^T + b1.
template <typename T>
void block_pos_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t tp, const T* pe, T* q);

// v[R, C] -> w[R, C]; ld[R] += log|det J|. Saves h[R, hid] (after ReLU), s[R, C2] and u[R, C] (before
// the global affine) for the backward pass; a[R, 2*C2] and up[R, C] are scratch.
template <typename T>
void block_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v, const T* q,
                   T* h, T* s, T* u, T* a, T* up, T* w, T* ld);

// Given dw[R, C] and dld[R] (gradient of the loss w.r.t. the block output and each row's log-det),
// accumulates parameter gradients into gr and writes dv[R, C] (skipped when dv is null);
// da[R, 2*C2], dh[R, hid] and dqsum[tp, hid] are scratch.
template <typename T>
void block_backward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* pe, const T* v,
                    const T* h, const T* s, const T* u, const T* dw, const T* dld, T* da, T* dh, T* dqsum, T* du,
                    const BlockGrads<T>& gr, T* dv);

// w[R, C] -> v[R, C], the exact inverse of block_forward; h, a, up are scratch.
template <typename T>
void block_inverse(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w, const T* q,
                   T* h, T* a, T* up, T* v);

}  // namespace hgad
