#include "components.h"

#include <algorithm>

namespace hgad {

int32_t label_components(const uint8_t* mask, int64_t H, int64_t W, int32_t* labels, std::vector<int64_t>& stack) {
  std::fill(labels, labels + H * W, 0);
  int32_t n = 0;
  for (int64_t start = 0; start < H * W; ++start) {
    if (mask[start] == 0 || labels[start] != 0) continue;
    labels[start] = ++n;
    stack.assign(1, start);
    while (!stack.empty()) {
      const int64_t i = stack.back();
      stack.pop_back();
      const int64_t y = i / W, x = i % W;
      for (int64_t yy = std::max<int64_t>(0, y - 1); yy <= std::min(H - 1, y + 1); ++yy) {
        for (int64_t xx = std::max<int64_t>(0, x - 1); xx <= std::min(W - 1, x + 1); ++xx) {
          const int64_t j = yy * W + xx;
          if (mask[j] != 0 && labels[j] == 0) {
            labels[j] = n;
            stack.push_back(j);
          }
        }
      }
    }
  }
  return n;
}

}  // namespace hgad
