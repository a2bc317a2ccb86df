// Central finite differences in float64 against the analytic backward, for every parameter tensor
// and the input, for each loss term alone and for both training phases.
#include <algorithm>
#include <cmath>
#include <string>

#include "check.h"
#include "fixtures.h"

using hgad::Level;
using hgadtest::small_config;

namespace {

struct GradCase {
  std::string label;
  double weights[hgad::kNumTerms];
};

void check_gradients(const GradCase& gc, bool per_vector_labels) {
  Level<double> lv(small_config(), 11);
  lv.tile_rows = 4;  // several tiles, images sharing positions inside a tile
  hgadtest::jitter(lv, 5, 0.3);
  const hgad::FeatureShape fs{3, 2, 3};
  const int64_t N = fs.vectors(), C = 7;
  std::vector<double> x = hgadtest::random_vector<double>(N * C, 9, 1.5);
  std::vector<int32_t> lab_img = {0, 2, 1};
  std::vector<int32_t> lab_vec(N);
  for (int64_t i = 0; i < N; ++i) lab_vec[i] = static_cast<int32_t>((i * 7 + 1) % 3);
  const hgad::Labels labels{per_vector_labels ? lab_vec.data() : lab_img.data(), per_vector_labels};

  std::vector<double> dx(N * C);
  lv.gradients(fs, x.data(), labels, gc.weights, dx.data(), 2);
  const std::vector<double> analytic = lv.grads();
  // Stop-gradients: every occurrence of phi in L_mi and of mu in L_gi is detached, so the finite
  // difference of those (tensor, term) pairs is left out of the reference.
  auto loss = [&](const std::string& tensor) {
    const hgad::Losses l = lv.gradients(fs, x.data(), labels, gc.weights, nullptr, 2);
    double total = 0;
    for (int t = 0; t < hgad::kNumTerms; ++t) {
      if ((tensor == "phi" && t == hgad::kLmi) || (tensor == "mu" && t == hgad::kLgi)) continue;
      total += gc.weights[t] * l.term[t];
    }
    return total;
  };

  // eps balances truncation (eps^2) against round-off of losses of size ~100 (the -100 L_mi weight).
  const double eps = 1e-5;
  double worst = 0;
  std::string worst_name;
  auto compare = [&](double a, double num, const std::string& name) {
    const double err = std::fabs(a - num) / std::max(1e-3, std::max(std::fabs(a), std::fabs(num)));
    if (err > worst) worst = err, worst_name = name + " (analytic " + std::to_string(a) + ", numeric " + std::to_string(num) + ")";
  };
  for (const auto& spec : lv.tensors()) {
    if (spec.group == hgad::kGroupFixed || spec.size == 0) continue;
    double* p = lv.data(spec);
    const int64_t samples = std::min<int64_t>(spec.size, 5);
    for (int64_t s = 0; s < samples; ++s) {
      const int64_t i = (s * 7919 + 3) % spec.size;
      const double keep = p[i];
      p[i] = keep + eps;
      const double up = loss(spec.name);
      p[i] = keep - eps;
      const double down = loss(spec.name);
      p[i] = keep;
      compare(analytic[spec.offset + i], (up - down) / (2 * eps), spec.name + "[" + std::to_string(i) + "]");
    }
  }
  for (int64_t s = 0; s < 12; ++s) {
    const int64_t i = (s * 37 + 5) % (N * C);
    const double keep = x[i];
    x[i] = keep + eps;
    const double up = loss("input");
    x[i] = keep - eps;
    const double down = loss("input");
    x[i] = keep;
    compare(dx[i], (up - down) / (2 * eps), "input[" + std::to_string(i) + "]");
  }
  CHECK(worst < 1e-5, "%s (%s labels): worst relative error %.3g at %s", gc.label.c_str(),
        per_vector_labels ? "per-vector" : "per-image", worst, worst_name.c_str());
}

GradCase term(const char* name, int t) {
  GradCase g{name, {0, 0, 0, 0, 0}};
  g.weights[t] = 1;
  return g;
}

GradCase phase(int p) {
  GradCase g{"phase " + std::to_string(p), {}};
  Level<double>::phase_weights(p, g.weights);
  return g;
}

}  // namespace

HGAD_TEST(gradient_Lg) { check_gradients(term("Lg", hgad::kLg), false); }
HGAD_TEST(gradient_Lmi) { check_gradients(term("Lmi", hgad::kLmi), false); }
HGAD_TEST(gradient_Le) { check_gradients(term("Le", hgad::kLe), false); }
HGAD_TEST(gradient_Lgi) { check_gradients(term("Lgi", hgad::kLgi), false); }
HGAD_TEST(gradient_Lz) { check_gradients(term("Lz", hgad::kLz), false); }
HGAD_TEST(gradient_phase1) { check_gradients(phase(1), false); }
HGAD_TEST(gradient_phase2) { check_gradients(phase(2), false); }
HGAD_TEST(gradient_phase2_per_vector_labels) { check_gradients(phase(2), true); }

// L_gi must not move mu (its centres are detached from mu), and L_mi must not move phi (sg(log pi)).
HGAD_TEST(gradient_stop_gradients) {
  Level<double> lv(small_config(), 3);
  hgadtest::jitter(lv, 4, 0.3);
  const hgad::FeatureShape fs{2, 2, 2};
  std::vector<double> x = hgadtest::random_vector<double>(fs.vectors() * 7, 2);
  std::vector<int32_t> lab = {1, 2};
  const double wgi[5] = {0, 0, 0, 1, 0}, wmi[5] = {0, 1, 0, 0, 0};
  lv.gradients(fs, x.data(), {lab.data(), false}, wgi, nullptr, 1);
  double mu_norm = 0, delta_norm = 0;
  for (int64_t i = 0; i < lv.find("mu")->size; ++i) mu_norm += std::fabs(lv.grad(*lv.find("mu"))[i]);
  for (int64_t i = 0; i < lv.find("delta")->size; ++i) delta_norm += std::fabs(lv.grad(*lv.find("delta"))[i]);
  CHECK(mu_norm == 0.0, "Lgi reached mu: %g", mu_norm);
  CHECK(delta_norm > 0.0, "Lgi did not reach delta");
  lv.gradients(fs, x.data(), {lab.data(), false}, wmi, nullptr, 1);
  double phi_norm = 0;
  for (int64_t i = 0; i < 3; ++i) phi_norm += std::fabs(lv.grad(*lv.find("phi"))[i]);
  CHECK(phi_norm == 0.0, "Lmi reached phi: %g", phi_norm);
}

// The thread count changes only the order of a few sums.
HGAD_TEST(gradient_thread_count_invariance) {
  Level<double> a(small_config(), 3);
  const hgad::FeatureShape fs{4, 3, 3};
  std::vector<double> x = hgadtest::random_vector<double>(fs.vectors() * 7, 2);
  std::vector<int32_t> lab = {1, 2, 0, 1};
  double w[5];
  Level<double>::phase_weights(2, w);
  a.tile_rows = 5;
  const hgad::Losses l1 = a.gradients(fs, x.data(), {lab.data(), false}, w, nullptr, 1);
  const std::vector<double> g1 = a.grads();
  const hgad::Losses l3 = a.gradients(fs, x.data(), {lab.data(), false}, w, nullptr, 3);
  double worst = 0;
  for (size_t i = 0; i < g1.size(); ++i) worst = std::max(worst, std::fabs(g1[i] - a.grads()[i]));
  CHECK(worst < 1e-12, "max gradient difference 1 vs 3 threads: %g", worst);
  CHECK(std::fabs(l1.total - l3.total) < 1e-12, "loss differs: %g vs %g", l1.total, l3.total);
}
