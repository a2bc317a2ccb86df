// bfloat16: the upper 16 bits of an IEEE float. Conversion from float rounds to nearest, ties to even,
// and treats denormals as zero (as AVX512-BF16's vcvtne2ps2bf16 does), so the scalar and the vector
// conversion give the same bits; NaN stays a (quiet) NaN.
#pragma once
#include <cstdint>
#include <cstring>

namespace hgad {

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t mag = u & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  if (mag < 0x00800000u) return static_cast<uint16_t>((u >> 16) & 0x8000u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// out[i] = to_bf16(in[i]): AVX512-BF16 when the CPU has it (cpu_features.h), else the scalar rule.
void convert_to_bf16(const float* in, uint16_t* out, int64_t n);

}  // namespace hgad
