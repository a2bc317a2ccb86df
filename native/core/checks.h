// Input checks run on the worker thread before any work, so bad input becomes a typed error instead
// of NaNs in the parameters or an out-of-bounds read.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "level.h"

namespace hgad {

template <typename T>
void check_finite(const T* x, int64_t n, const char* parameter) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      InputError e;
      e.parameter = parameter;
      e.index = i;
      e.non_finite = true;
      e.message = "Expected finite numbers in " + e.parameter + " but element " + std::to_string(i) + " is " +
                  (std::isnan(x[i]) ? "NaN" : (x[i] > 0 ? "Infinity" : "-Infinity"));
      throw e;
    }
  }
}

// Finite input can still overflow the flow (|x| ~ 1e30): report it instead of returning NaN scores.
template <typename T>
void check_output_finite(const T* out, int64_t n, int64_t per_vector, const char* parameter) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) {
      InputError e;
      e.parameter = parameter;
      e.index = i / per_vector;
      e.message = "The features in " + e.parameter + " are outside the range the model can map: the output for vector " +
                  std::to_string(i / per_vector) + " is not finite";
      throw e;
    }
  }
}

inline void check_classes(const int32_t* c, int64_t n, int64_t classes, const char* parameter) {
  for (int64_t i = 0; i < n; ++i) {
    if (c[i] < 0 || c[i] >= classes) {
      InputError e;
      e.parameter = parameter;
      e.index = i;
      e.message = "Expected class indices in [0, " + std::to_string(classes) + ") in " + e.parameter +
                  " but element " + std::to_string(i) + " is " + std::to_string(c[i]);
      throw e;
    }
  }
}

}  // namespace hgad
