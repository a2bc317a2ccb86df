// What the CPU this process runs on can do for reduced-precision GEMMs, read once with cpuid and
// xgetbv (an instruction set counts only when the OS also saves its registers). The binary is built
// for baseline x86-64: kernels that need more are compiled with target attributes and chosen here.
#pragma once

namespace hgad {

struct CpuFeatures {
  bool avx512_bf16 = false;  // AVX512F + BW + VL + AVX512_BF16 (vdpbf16ps), ZMM state enabled
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16, tile state enabled by the OS and granted to this process
};

// HGAD_CPU_BF16=0 in the environment reports neither (to test the FP32 fallback on any machine);
// HGAD_CPU_AMX=0 reports no AMX.
const CpuFeatures& cpu_features();

// Can bf16 GEMMs run here at full speed? (Otherwise 'auto' resolves to fp32 and 'bf16' is refused.)
inline bool bf16_supported() { return cpu_features().avx512_bf16 || cpu_features().amx_bf16; }

}  // namespace hgad
