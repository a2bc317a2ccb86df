// How the GEMM library was chosen: sgemm GFLOP/s on the flow's shapes, one independent row tile per
// thread (as the flow runs them), for oneDNN and for OpenBLAS. Run through run.sh, which also runs
// OpenBLAS with the core type forced, to show the dispatch trap of Debian's OpenBLAS 0.3.21.
#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" void openblas_set_num_threads(int);

int main(int argc, char** argv) {
  const bool openblas = argc > 1 && std::strcmp(argv[1], "openblas") == 0;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  openblas_set_num_threads(1);  // threads come from the tiles, as in hgad
  struct Shape { int m, n, k; char ta, tb; const char* what; };
  const Shape shapes[] = {
      {512, 712, 100, 'N', 'T', "v1 W1a^T (first Linear)"},
      {512, 200, 712, 'N', 'T', "h W2^T (second Linear)"},
      {512, 200, 200, 'N', 'T', "u' R^T (rotation)"},
      {200, 712, 512, 'T', 'N', "da^T h (dW2)"},
      {512, 712, 200, 'N', 'N', "da W2 (dh)"},
      {1024, 1024, 1024, 'N', 'N', "square reference"},
  };
  for (const Shape& s : shapes) {
    const int reps = s.m == 1024 ? 10 : 200;
    double elapsed = 0;
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> a(size_t(s.m) * s.k, 0.5f), b(size_t(s.k) * s.n, 0.25f), c(size_t(s.m) * s.n, 0.0f);
      const int lda = s.ta == 'N' ? s.k : s.m, ldb = s.tb == 'N' ? s.n : s.k;
      auto run = [&] {
        if (openblas)
          cblas_sgemm(CblasRowMajor, s.ta == 'N' ? CblasNoTrans : CblasTrans, s.tb == 'N' ? CblasNoTrans : CblasTrans,
                      s.m, s.n, s.k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), s.n);
        else
          dnnl_sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), s.n);
      };
      run();
#pragma omp barrier
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) run();
#pragma omp barrier
#pragma omp master
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("%-9s %4dx%4dx%4d %c%c %-26s %6.1f GFLOP/s\n", openblas ? "openblas" : "onednn", s.m, s.n, s.k, s.ta,
                s.tb, s.what, 2.0 * s.m * s.n * s.k * reps * threads / elapsed / 1e9);
  }
}
