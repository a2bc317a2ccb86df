// 2-D sinusoidal positional encoding (HGAD.md section 1): entries [0, P/2) encode the column,
// [P/2, P) the row; entry 2i is sin(pos * f_i), 2i+1 cos(pos * f_i), f_i = exp(-2i ln(1e4) / (P/2)).
#pragma once
#include <cmath>
#include <cstdint>

namespace hgad {

// Writes rows [p0, p1) of the [H*W, P] encoding (position p = y*W + x) into out.
template <typename T>
void positional_encoding(int64_t P, int64_t W, int64_t p0, int64_t p1, T* out) {
  const int64_t half = P / 2;
  for (int64_t p = p0; p < p1; ++p) {
    const double y = static_cast<double>(p / W), x = static_cast<double>(p % W);
    T* row = out + (p - p0) * P;
    for (int64_t i = 0; i < half; i += 2) {
      const double f = std::exp(-static_cast<double>(i) * std::log(1e4) / static_cast<double>(half));
      row[i] = static_cast<T>(std::sin(x * f));
      row[i + 1] = static_cast<T>(std::cos(x * f));
      row[half + i] = static_cast<T>(std::sin(y * f));
      row[half + i + 1] = static_cast<T>(std::cos(y * f));
    }
  }
}

}  // namespace hgad
