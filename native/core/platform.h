// Shared between the CPU build and nvcc: per-element math is written once with HGAD_HD.
#pragma once
#if defined(__CUDACC__)
#define HGAD_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Always inlined, so that each ISA copy of a kernel (target_clones) compiles them for its ISA.
#define HGAD_HD inline __attribute__((always_inline))
#else
#define HGAD_HD inline
#endif
