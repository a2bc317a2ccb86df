// The hierarchical Gaussian mixture head (HGAD.md sections 3, 4, 6) over a tile of R latent rows.
//
// All Y*M centres live in one [Y*M, C] matrix (centre (y, 0) is mu_y), so every squared distance of a
// tile comes from one GEMM: d = ||z||^2 - 2 z.c + ||c||^2.
#pragma once
#include <cstdint>

namespace hgad {

enum LossTerm { kLg = 0, kLmi = 1, kLe = 2, kLgi = 3, kLz = 4, kNumTerms = 5 };

template <typename T>
struct MixtureParams {
  int64_t C, Y, M;
  const T* centres;      // [Y*M, C]
  const T* cnorm;        // [Y*M]
  const T* logpi;        // [Y]   log_softmax(phi)
  const T* logpi_intra;  // [Y, M] log_softmax(psi_y)
};

// D[R, Y*M] = squared distances of z[R, C] to every centre; zn[R] is scratch.
template <typename T>
void mixture_distances(const MixtureParams<T>& mp, int64_t R, const T* z, T* zn, T* D);

// Accumulators of one thread's share of the mixture gradients.
template <typename T>
struct MixtureGrads {
  T* gz_full;       // [Y*M, C]  sum_i A_full[i, j] z_i   (terms whose gradient reaches mu)
  T* gz_det;        // [Y*M, C]  sum_i A_det[i, j] z_i    (L_gi: mu detached)
  T* col_full;      // [Y*M]     sum_i A_full[i, j]
  T* col_det;       // [Y*M]
  T* dlogpi;        // [Y]
  T* dlogpi_intra;  // [Y, M]
  double* loss;     // [kNumTerms] unweighted sums over rows
};

// Loss terms of R rows and their gradients. weights[t] scales term t in the loss, scale = 1/N (the
// mean over the vectors of the call). Writes A_full/A_det[R, Y*M] = dL/dD, dld[R] = dL/dlogdet.
// scratch holds 4 * max(Y, M) values.
template <typename T>
void mixture_loss_rows(const MixtureParams<T>& mp, int64_t R, const T* D, const T* ld, const int32_t* label,
                       const T* weights, T scale, T label_smoothing, T* A_full, T* A_det, T* dld,
                       const MixtureGrads<T>& gr, T* scratch);

// dz[R, C] from A_full/A_det (A_full is overwritten with their sum); accumulates gz_*, col_*.
template <typename T>
void mixture_backward(const MixtureParams<T>& mp, int64_t R, const T* z, T* A_full, const T* A_det, T* dz,
                      const MixtureGrads<T>& gr);

// Scoring outputs of R rows: class logits [R, Y] (-d_y/2 + log pi_y), negative entropy of
// softmax(-d/2) [R], and logp under every class [R, Y] (HGAD.md section 6, divided by C).
// scratch holds 2 * max(Y, M) values.
template <typename T>
void mixture_score_rows(const MixtureParams<T>& mp, int64_t R, const T* D, const T* ld, T* class_logits,
                        T* neg_entropy, T* logp_all, T* scratch);

// Per image of `batch` (HW rows each): the class it is scored under (image_class given, or the argmax
// of its summed class logits), its rows' logp under that class gathered from logp_all [rows, Y], and
// (class_posterior nullable, [batch, Y]) the mean over its rows of softmax(class logits).
template <typename T>
void mixture_image_scores(int64_t batch, int64_t HW, int64_t Y, const int32_t* image_class, const T* class_logits,
                          const T* logp_all, T* logp, int32_t* class_out, T* class_posterior);

}  // namespace hgad
