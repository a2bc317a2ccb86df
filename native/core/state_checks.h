// Checks of a model's values as they come from outside (a model file): each tensor must hold values
// the code can use and that training could have produced, so a damaged file is refused when it is
// loaded, naming the tensor, instead of scoring garbage or failing later as if the caller's input
// were at fault.
#pragma once
#include <string>

#include "model.h"

namespace hgad {

// A tensor of the model whose values cannot be right; `tensor` is its model-file name
// ("levels.0.blocks.3.rotation", "optimizer.levels.1.v.mu").
struct StateError {
  std::string tensor, message;
};

// Trainable parameters: finite, |value| <= this. Training HGAD never gets near it; beyond it the flow
// overflows float32 for ordinary features.
constexpr double kMaxParameterMagnitude = 1e6;
// Fixed rotations R: max |R R^T - I| at most this (float32 products over C <= 65536 terms stay
// far below it; a scaled or edited matrix does not).
constexpr double kRotationTolerance = 1e-3;

// Throws StateError for the first tensor that fails, in model-file order:
//  - parameters finite and within kMaxParameterMagnitude;
//  - rotations orthogonal within kRotationTolerance;
//  - Adam moments: m and v finite, v >= 0, and m^2 <= c v with the bound c that Adam's updates
//    (beta1, beta2) imply for any gradients (Cauchy-Schwarz over the exponential averages), with
//    slack for float32 rounding; with a step count of 0 both moments are zero.
// Uses up to `threads` threads for the rotation products.
void check_model_state(Model& model, int threads);

// The bound c of m^2 <= c v above for these Adam constants.
double adam_moment_bound(double beta1, double beta2);

}  // namespace hgad
