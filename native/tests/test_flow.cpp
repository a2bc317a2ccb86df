// Invertibility, log-determinant and precision of the coupling flow; initialisation; Adam.
#include <algorithm>
#include <cmath>

#include "check.h"
#include "fixtures.h"

using hgad::Level;
using hgad::LevelConfig;

namespace {
LevelConfig paper_level() {
  LevelConfig c;
  c.channels = 200;
  c.pos_dim = 256;
  c.blocks = 12;
  c.classes = 15;
  c.centres = 10;
  return c;
}

template <typename T>
double round_trip_error(uint64_t seed) {
  Level<T> lv(paper_level(), seed);
  hgadtest::jitter(lv, seed + 1, 0.02);
  const hgad::FeatureShape fs{2, 4, 5};
  const int64_t n = fs.vectors() * 200;
  std::vector<T> x = hgadtest::random_vector<T>(n, seed + 2, 2.0), z(n), ld(fs.vectors()), back(n);
  lv.forward(fs, x.data(), z.data(), ld.data(), 2);
  lv.inverse(fs, z.data(), back.data(), 2);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(static_cast<double>(x[i] - back[i])));
  return worst;
}
}  // namespace

HGAD_TEST(flow_round_trip_float_C200_K12) {
  const double err = round_trip_error<float>(21);
  CHECK(err <= 1e-4, "max abs error %g", err);
}

HGAD_TEST(flow_round_trip_double_C200_K12) {
  const double err = round_trip_error<double>(22);
  CHECK(err <= 1e-10, "max abs error %g", err);
}

// log|det J| of each vector equals the log-determinant of the numerically computed Jacobian.
HGAD_TEST(flow_logdet_matches_numeric_jacobian) {
  LevelConfig cfg = hgadtest::small_config();
  cfg.channels = 5;
  cfg.blocks = 3;
  Level<double> lv(cfg, 8);
  hgadtest::jitter(lv, 9, 0.4);
  const hgad::FeatureShape fs{1, 2, 2};
  const int64_t C = 5, N = fs.vectors();
  std::vector<double> x = hgadtest::random_vector<double>(N * C, 10), z(N * C), ld(N), zp(N * C), zm(N * C), tmp(N);
  lv.forward(fs, x.data(), z.data(), ld.data(), 1);
  for (int64_t v = 0; v < N; ++v) {
    std::vector<double> J(C * C);
    const double eps = 1e-6;
    for (int64_t j = 0; j < C; ++j) {
      const double keep = x[v * C + j];
      x[v * C + j] = keep + eps;
      lv.forward(fs, x.data(), zp.data(), tmp.data(), 1);
      x[v * C + j] = keep - eps;
      lv.forward(fs, x.data(), zm.data(), tmp.data(), 1);
      x[v * C + j] = keep;
      for (int64_t i = 0; i < C; ++i) J[i * C + j] = (zp[v * C + i] - zm[v * C + i]) / (2 * eps);
    }
    const double numeric = hgadtest::log_abs_det(J, C);
    CHECK(std::fabs(numeric - ld[v]) < 1e-7, "vector %lld: numeric %.12f vs analytic %.12f", (long long)v,
          numeric, ld[v]);
  }
}

// The float product path (oneDNN GEMM, approximate exp/tanh) agrees with the float64 reference.
HGAD_TEST(flow_float_matches_double) {
  Level<float> f(paper_level(), 31);
  Level<double> d(paper_level(), 31);
  for (size_t i = 0; i < f.params().size(); ++i) d.params()[i] = f.params()[i];
  for (const auto& s : f.tensors())
    if (s.group == hgad::kGroupFixed)
      for (int64_t i = 0; i < s.size; ++i) d.data(s)[i] = f.data(s)[i];
  const hgad::FeatureShape fs{3, 4, 4};
  const int64_t n = fs.vectors() * 200;
  std::vector<float> xf = hgadtest::random_vector<float>(n, 5), zf(n), lf(fs.vectors());
  std::vector<double> xd(xf.begin(), xf.end()), zd(n), lD(fs.vectors());
  f.forward(fs, xf.data(), zf.data(), lf.data(), 2);
  d.forward(fs, xd.data(), zd.data(), lD.data(), 2);
  double zerr = 0, lerr = 0;
  for (int64_t i = 0; i < n; ++i) zerr = std::max(zerr, std::fabs(zf[i] - zd[i]) / (1.0 + std::fabs(zd[i])));
  for (int64_t i = 0; i < fs.vectors(); ++i) lerr = std::max(lerr, std::fabs(lf[i] - lD[i]) / (1.0 + std::fabs(lD[i])));
  CHECK(zerr < 1e-4, "z relative error %g", zerr);
  CHECK(lerr < 1e-4, "logdet relative error %g", lerr);
}

HGAD_TEST(init_is_deterministic_and_as_specified) {
  Level<float> a(paper_level(), 5), b(paper_level(), 5), c(paper_level(), 6);
  CHECK(a.params() == b.params(), "same seed gave different parameters");
  CHECK(a.params() != c.params(), "different seeds gave the same parameters");
  const hgad::TensorSpec& mu = *a.find("mu");
  const float s0 = static_cast<float>(5.0 / std::sqrt(26.0));  // floor(2*200/15) = 26
  const float* m = a.data(mu);
  CHECK(m[0 * 200 + 0] == s0 && m[1 * 200 + 1] == s0 && m[0 * 200 + 15] == s0, "mu block identity");
  CHECK(m[0 * 200 + 1] == 0.0f && m[14 * 200 + 199] == 0.0f, "mu zero elsewhere");
  // Rotation: orthogonal with determinant +1.
  Level<double> r(hgadtest::small_config(), 5);
  const double* R = r.data(*r.find("blocks.1.rotation"));
  double worst = 0;
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 7; ++j) {
      double dot = 0;
      for (int k = 0; k < 7; ++k) dot += R[i * 7 + k] * R[j * 7 + k];
      worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  CHECK(worst < 1e-12, "R R^T - I = %g", worst);
  std::vector<double> copy(R, R + 49);
  double sign_det = 1;
  {  // determinant sign via LU
    std::vector<double>& a2 = copy;
    for (int c2 = 0; c2 < 7; ++c2) {
      int piv = c2;
      for (int rr = c2 + 1; rr < 7; ++rr)
        if (std::fabs(a2[rr * 7 + c2]) > std::fabs(a2[piv * 7 + c2])) piv = rr;
      if (piv != c2) {
        for (int k = 0; k < 7; ++k) std::swap(a2[c2 * 7 + k], a2[piv * 7 + k]);
        sign_det = -sign_det;
      }
      sign_det *= a2[c2 * 7 + c2] < 0 ? -1 : 1;
      for (int rr = c2 + 1; rr < 7; ++rr) {
        const double f = a2[rr * 7 + c2] / a2[c2 * 7 + c2];
        for (int k = c2; k < 7; ++k) a2[rr * 7 + k] -= f * a2[c2 * 7 + k];
      }
    }
  }
  CHECK(sign_det > 0, "rotation has determinant -1");
  // gamma initialised so that g == 1.
  const double gamma = r.data(*r.find("blocks.0.gamma"))[3];
  CHECK(std::fabs(0.2 * std::log1p(std::exp(0.5 * gamma)) - 1.0) < 1e-12, "g(gamma0) != 1");
}

// One Adam step from zero state moves each parameter by lr * g / (|g| + eps) (bias-corrected), with L2
// weight decay added to the flow group's gradient and lr x3 for the centres.
HGAD_TEST(adam_first_step) {
  Level<double> lv(hgadtest::small_config(), 2);
  const std::vector<double> before = lv.params();
  for (size_t i = 0; i < lv.grads().size(); ++i) lv.grads()[i] = 0.01 * (static_cast<double>(i % 7) - 3.0);
  const std::vector<double> g = lv.grads();
  lv.adam_step(1e-3, 2);
  const int64_t mu_off = lv.find("mu")->offset, phi_off = lv.find("phi")->offset;
  double worst = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    const bool flow = static_cast<int64_t>(i) < mu_off;
    const double gi = g[i] + (flow ? 1e-4 * before[i] : 0.0);
    const double lr = static_cast<int64_t>(i) >= mu_off && static_cast<int64_t>(i) < phi_off ? 3e-3 : 1e-3;
    const double expect = before[i] - lr * gi / (std::fabs(gi) + 1e-8);
    worst = std::max(worst, std::fabs(lv.params()[i] - expect));
  }
  CHECK(worst < 1e-12, "max deviation %g", worst);
  CHECK(lv.adam_steps() == 1, "step count %lld", (long long)lv.adam_steps());
}
