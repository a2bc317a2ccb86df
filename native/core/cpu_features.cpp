#include "cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace hgad {

namespace {

// Linux hands out AMX's 8 KiB of tile state only to processes that ask for it (kernel 5.16+); without
// the permission the first tile instruction faults. HGAD_CPU_AMX=0 keeps hgad off AMX (its AVX512-BF16
// kernel then runs: to compare the two on one machine).
bool amx_permitted() {
  const char* env = std::getenv("HGAD_CPU_AMX");
  if (env && std::strcmp(env, "0") == 0) return false;
#if defined(__x86_64__) && defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  const char* env = std::getenv("HGAD_CPU_BF16");
  if (env && std::strcmp(env, "0") == 0) return f;
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return f;  // no OSXSAVE: no xgetbv
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM; AMX: XTILECFG and XTILEDATA.
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;
  const bool tile_state = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31));  // F, BW, VL
  const bool amx = (d & (1u << 22)) && (d & (1u << 24));                         // AMX-BF16, AMX-TILE
  __cpuid_count(7, 1, a, b, c, d);
  const bool bf16 = a & (1u << 5);
  f.avx512_bf16 = zmm_state && avx512 && bf16;
  f.amx_bf16 = tile_state && amx && amx_permitted();
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace hgad
