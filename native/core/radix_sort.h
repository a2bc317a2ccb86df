// Sorting of float scores for the ranking metrics: a float maps to an unsigned key with the same
// order, and keys (alone, or in the high half of a 64-bit word with a payload below) are sorted by a
// parallel LSD radix sort, 8 bits a pass. Tens of millions of pixels sort in a few passes over memory.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace hgad {

// Order-preserving key: key(a) < key(b) iff a < b for non-NaN floats; -0 and +0 get the same key.
inline uint32_t float_key(float x) {
  if (x == 0.0f) x = 0.0f;
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

inline float key_float(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Stable ascending sort of a[0, n) by bytes [first_byte, last_byte] of each element (byte 0 the least
// significant); tmp holds n elements. Passes where every element has the same digit are skipped.
template <typename T>
void radix_sort(T* a, T* tmp, int64_t n, int first_byte, int last_byte) {
  const int nt = n < (1 << 16) ? 1 : std::max(1, omp_get_max_threads());
  std::vector<int64_t> count(static_cast<size_t>(nt) * 256);
  T* src = a;
  T* dst = tmp;
  for (int byte = first_byte; byte <= last_byte; ++byte) {
    const int shift = 8 * byte;
    std::fill(count.begin(), count.end(), 0);
#pragma omp parallel num_threads(nt)
    {
      // nt fixed chunks whatever team size the runtime grants, the same in both regions.
      for (int ch = omp_get_thread_num(); ch < nt; ch += omp_get_num_threads()) {
        const int64_t b0 = n * ch / nt, b1 = n * (ch + 1) / nt;
        int64_t* c = count.data() + static_cast<size_t>(ch) * 256;
        for (int64_t i = b0; i < b1; ++i) ++c[(src[i] >> shift) & 0xff];
      }
    }
    // Offsets digit-major, chunk-minor: each chunk lands after the earlier chunks' elements
    // of the same digit, which keeps the sort stable.
    int64_t total = 0;
    bool single = false;
    for (int d = 0; d < 256; ++d) {
      int64_t digit_total = 0;
      for (int t = 0; t < nt; ++t) {
        const int64_t c = count[static_cast<size_t>(t) * 256 + d];
        count[static_cast<size_t>(t) * 256 + d] = total;
        total += c;
        digit_total += c;
      }
      if (digit_total == n) single = true;
    }
    if (single) continue;
#pragma omp parallel num_threads(nt)
    {
      for (int ch = omp_get_thread_num(); ch < nt; ch += omp_get_num_threads()) {
        const int64_t b0 = n * ch / nt, b1 = n * (ch + 1) / nt;
        int64_t* c = count.data() + static_cast<size_t>(ch) * 256;
        for (int64_t i = b0; i < b1; ++i) dst[c[(src[i] >> shift) & 0xff]++] = src[i];
      }
    }
    std::swap(src, dst);
  }
  if (src != a) std::memcpy(a, src, sizeof(T) * static_cast<size_t>(n));
}

}  // namespace hgad
