// The CUDA test executable: every device twin against its CPU function, and CudaLevel against Level.
// Without a usable device it prints why and `0 passed, 0 failed` (CI builds it, a GPU machine runs it).
#include <cstdio>
#include <exception>

#include "../cuda/backend.h"
#include "../tests/check.h"

int main() {
  const hgad::cuda::Status s = hgad::cuda::status();
  if (!s.available) {
    std::printf("skipped: %s\n0 passed, 0 failed\n", s.reason.c_str());
    return 0;
  }
  std::printf("device: %s (%d device(s)), GEMM: %s\n", s.device_name.c_str(), s.devices, s.gemm.c_str());
  int passed = 0, failed = 0;
  for (const auto& c : hgadtest::registry()) {
    const int before = hgadtest::failures();
    bool threw = false;
    try {
      c.fn();
    } catch (const std::exception& e) {
      threw = true;
      std::printf("    threw: %s\n", e.what());
    }
    const bool ok = !threw && hgadtest::failures() == before;
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", c.name.c_str());
    ok ? ++passed : ++failed;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
