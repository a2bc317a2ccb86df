// Ranking metrics of anomaly scores: ROC AUC (ties as sklearn.metrics.roc_auc_score), the best F1
// over all thresholds, and AUPRO (the MVTec AD per-region overlap curve, integrated up to a false
// positive rate). Each sorts the scores once (radix_sort.h) and walks the distinct thresholds from
// the highest down. Scores must be finite (check before calling).
#pragma once
#include <cstdint>

namespace hgad {

// NaN when only one class is present.
double roc_auc(const float* scores, const uint8_t* labels, int64_t n);

struct F1Max {
  double f1, threshold;  // prediction: score >= threshold is anomalous
};
// NaN (both) when there is no anomalous sample.
F1Max f1_max(const float* scores, const uint8_t* labels, int64_t n);

// maps and masks: count x H x W; mask nonzero = anomalous. NaN without regions or normal pixels.
double aupro(const float* maps, const uint8_t* masks, int64_t count, int64_t H, int64_t W, double max_fpr);

}  // namespace hgad
