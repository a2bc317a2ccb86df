// Adam with decoupled parameter groups, torch.optim.Adam semantics (L2 weight decay added to the
// gradient, bias correction on both moments).
#pragma once
#include <cstdint>

namespace hgad {

struct AdamGroup {
  int64_t begin, end;     // element range in the flat parameter buffer
  double lr_scale;        // multiplier on the step's learning rate
  double weight_decay;
};

struct AdamHyper {
  double beta1 = 0.95, beta2 = 0.99, eps = 1e-8;
};

// One step over [begin, end) of every group; `step` is the 1-based step count after this update.
template <typename T>
void adam_update(const AdamGroup& g, const AdamHyper& h, double lr, int64_t step, T* param, const T* grad, T* m,
                 T* v, int threads);

}  // namespace hgad
