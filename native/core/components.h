// Connected components of a binary mask, 8-connected (scipy.ndimage.label with a 3x3 structure of
// ones, as the MVTec AD evaluation code uses for the ground-truth regions of AUPRO).
#pragma once
#include <cstdint>
#include <vector>

namespace hgad {

// labels[i] = 0 where mask[i] == 0, else the 1-based index of the pixel's component, numbered in the
// row-major order of their first pixel. Returns the number of components. stack is scratch.
int32_t label_components(const uint8_t* mask, int64_t H, int64_t W, int32_t* labels, std::vector<int64_t>& stack);

}  // namespace hgad
