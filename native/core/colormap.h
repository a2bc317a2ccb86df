// Heatmap colouring: the "jet" colormap (matplotlib's piecewise-linear definition) as a 256-entry
// RGB table, applied to a map scaled to [min, max] and clamped.
#pragma once
#include <array>
#include <cstdint>

namespace hgad {

// Entry i is jet at x = i / 255, each channel round(255 * value).
const std::array<std::array<uint8_t, 3>, 256>& jet_table();

// rgb[3 i .. 3 i + 2] = jet entry min(255, floor(256 t)), t = clamp((map[i] - min) / (max - min), 0, 1)
// (matplotlib's lookup of a value in a 256-colour map). Requires max > min and finite map values.
void colorize(const float* map, int64_t n, double min, double max, uint8_t* rgb);

}  // namespace hgad
