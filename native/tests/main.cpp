#include <cstdio>
#include <exception>

#include "check.h"

int main() {
  int passed = 0, failed = 0;
  for (const auto& c : hgadtest::registry()) {
    const int before = hgadtest::failures();
    bool threw = false;
    try {
      c.fn();
    } catch (const std::exception& e) {
      threw = true;
      std::printf("    threw: %s\n", e.what());
    } catch (...) {
      threw = true;
      std::printf("    threw a non-std exception\n");
    }
    const bool ok = !threw && hgadtest::failures() == before;
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", c.name.c_str());
    ok ? ++passed : ++failed;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
