#include "colormap.h"

#include <algorithm>
#include <cmath>

namespace hgad {

namespace {

struct Knot {
  double x, y;
};

// Linear interpolation through the knots (x ascending, first at 0, last at 1).
template <size_t K>
double segment(const Knot (&k)[K], double x) {
  for (size_t i = 1; i < K; ++i)
    if (x <= k[i].x) return k[i - 1].y + (k[i].y - k[i - 1].y) * (x - k[i - 1].x) / (k[i].x - k[i - 1].x);
  return k[K - 1].y;
}

std::array<std::array<uint8_t, 3>, 256> make_jet() {
  static const Knot red[] = {{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}};
  static const Knot green[] = {{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}};
  static const Knot blue[] = {{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}};
  std::array<std::array<uint8_t, 3>, 256> t{};
  for (int i = 0; i < 256; ++i) {
    const double x = i / 255.0;
    t[i] = {static_cast<uint8_t>(std::lround(255 * segment(red, x))),
            static_cast<uint8_t>(std::lround(255 * segment(green, x))),
            static_cast<uint8_t>(std::lround(255 * segment(blue, x)))};
  }
  return t;
}

}  // namespace

const std::array<std::array<uint8_t, 3>, 256>& jet_table() {
  static const std::array<std::array<uint8_t, 3>, 256> table = make_jet();
  return table;
}

void colorize(const float* map, int64_t n, double min, double max, uint8_t* rgb) {
  const auto& lut = jet_table();
  const double scale = 256.0 / (max - min);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double t = (static_cast<double>(map[i]) - min) * scale;
    const int idx = t <= 0 ? 0 : t >= 255 ? 255 : static_cast<int>(t);
    rgb[3 * i] = lut[idx][0];
    rgb[3 * i + 1] = lut[idx][1];
    rgb[3 * i + 2] = lut[idx][2];
  }
}

}  // namespace hgad
