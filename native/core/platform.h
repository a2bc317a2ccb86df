// Shared between the CPU build and nvcc: per-element math is written once with HGAD_HD.
#pragma once
#if defined(__CUDACC__)
#define HGAD_HD __host__ __device__ __forceinline__
#else
#define HGAD_HD inline
#endif
