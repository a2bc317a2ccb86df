// One affine coupling block (HGAD.md section 2) over a tile of R rows, llm.c style: forward, backward
// and inverse side by side as plain functions over flat row-major arrays.
//
// A tile holds `nb` images x `tp` positions, image-major (row r is position r % tp of image r / tp).
// The positional-encoding half of the first Linear layer (q = W1b p + b1) comes from position tables
// (row[y] + col[x], PositionTable below) on the CPU, in inference and training alike; the per-position
// form (block_pos_forward, shared by a tile's images) is the CPU twin of the CUDA backend's.
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
  // Float GEMMs with bf16 inputs and float accumulation (bf16_gemm.h): mixed-precision training, and
  // inference products that have no packed copy. Ignored for double.
  bool bf16 = false;
};

// The positional half of the first Linear layer for inference, split by the encoding's two halves
// (posenc.h: entries [0, P/2) depend on the column only, [P/2, P) on the row only):
// q(y, x) = W1b p(y, x) + b1 = row[y] + col[x], row[y] = W1b [0, p_row(y)] + b1, col[x] = W1b [p_col(x), 0].
// (H + W) rows per block instead of H * W: small enough to keep for every map size.
template <typename T>
struct PositionTable {
  const T* row;   // [H, hid]
  const T* col;   // [W, hid]
  int64_t width;  // W
  int64_t p0;     // the tile's first position; row r of the tile is position p0 + r % tp
};

// Mixed-precision training on AMX: the first layer's output h is also kept as the bf16 operand tiles of
// the two products that read it (bf16_gemm.h: gemm_bf16_relu_amx), and the backward pass writes dh the
// same way, as the A operand of dh W1a and, transposed, of W1's gradient dh^T v: nothing packs them and
// no ReLU pass runs.
struct HiddenTiles {
  uint32_t* a;   // h as the A operand of a = h W2^T, then dh as that of dh W1a (scratch)
  uint32_t* b;   // h as the B operand of W2's gradient da^T h (kept from the forward to the backward pass)
  uint32_t* at;  // dh^T as the A operand of dh^T v (scratch of the backward pass)
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
// da[R, 2*C2] and dh[R, hid] are scratch. Returns dL/dq per position [tp, hid] (summed over the tile's
// images: in dqsum, or in dh for a tile of one image). With pe null the gradients of W1's positional
// half and of b1 are left to the caller (fold_position_grads, block_position_table_backward), else
// they are added here.
// tiles: the forward pass's HiddenTiles (float with bf16 on AMX), else null.
template <typename T>
const T* block_backward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* pe,
                        const T* v, const T* h, const T* s, const T* u, const T* dw, const T* dld, T* da, T* dh,
                        T* dqsum, T* du, const BlockGrads<T>& gr, T* dv, const HiddenTiles* tiles = nullptr);

// block_forward with q(p) = pos.row[y] + pos.col[x]. tiles: mixed-precision training on AMX only
// (float, bp.bf16, no packed weights), else null.
template <typename T>
void block_forward(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* v,
                   const PositionTable<T>& pos, T* h, T* s, T* u, T* a, T* up, T* w, T* ld,
                   const HiddenTiles* tiles = nullptr);

// w[R, C] -> v[R, C], the exact inverse of block_forward; h, a, up are scratch.
template <typename T>
void block_inverse(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w, const T* q,
                   T* h, T* a, T* up, T* v);
template <typename T>
void block_inverse(const BlockDims& d, const BlockParams<T>& bp, int64_t R, int64_t tp, const T* w,
                   const PositionTable<T>& pos, T* h, T* a, T* up, T* v);

// The position table of one block for an H x W map: row [H, hid] and col [W, hid] (PositionTable).
// pe_row, pe_col: [H, P] and [W, P], the encoding of (y, 0) with its column half zeroed and of (0, x)
// with its row half zeroed.
template <typename T>
void block_position_table(const BlockDims& d, const BlockParams<T>& bp, int64_t H, int64_t W, const T* pe_row,
                          const T* pe_col, T* row, T* col);

// Training through the table: the gradients of row and col (drow [H, hid], dcol [W, hid]) collect
// dL/dq of every position, and W1's positional half and b1 get their gradients from them once per
// step, (H + W) rows of work where a per-position product costs H * W (a third of a step's GEMM work
// for a single 64 x 64 map).
// drow[y] += dqsum[r], dcol[x] += dqsum[r] for the tile's positions p0 + r = y * W + x, r < tp.
template <typename T>
void fold_position_grads(int64_t hid, int64_t tp, int64_t p0, int64_t W, const T* dqsum, T* drow, T* dcol);
// The transpose of block_position_table: gw1 (W1's gradient, [hid, n]) += the positional half's,
// gb1 += the sum of drow's rows (b1 is in every row of the table).
template <typename T>
void block_position_table_backward(const BlockDims& d, int64_t H, int64_t W, const T* pe_row, const T* pe_col,
                                   const T* drow, const T* dcol, T* gw1, T* gb1);

}  // namespace hgad
