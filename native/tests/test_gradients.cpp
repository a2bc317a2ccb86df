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

// Default: several tiles, images sharing positions inside a tile.
void check_gradients(const GradCase& gc, bool per_vector_labels, hgad::FeatureShape fs = {3, 2, 3},
                     int64_t tile_rows = 4) {
  Level<double> lv(small_config(), 11);
  lv.tile_rows = tile_rows;
  hgadtest::jitter(lv, 5, 0.3);
  const int64_t N = fs.vectors(), C = 7;
  std::vector<double> x = hgadtest::random_vector<double>(N * C, 9, 1.5);
  std::vector<int32_t> lab_img = {0, 2, 1};
  lab_img.resize(fs.batch, 1);
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
// One image: a tile holds one image's positions (its dL/dq is dh itself), and tiles start mid-row
// (positions 5-9 of a 3 x 4 map span two rows of the position tables).
HGAD_TEST(gradient_phase2_one_image_tiles) { check_gradients(phase(2), false, {1, 3, 4}, 5); }

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

// The single-Gaussian prior (centres and logits frozen at 0, M = 1) must be the classic flow exactly:
// L_g = (||z||^2 / 2 - logdet) / C, L_mi = 0, L_e = log Y with no gradient, logp the
// standard-normal log-density plus logdet; the flow gradient of the phase-1 loss matches finite
// differences of that reference computed from forward() alone; Adam leaves mu and phi at 0.
HGAD_TEST(single_gaussian_identities) {
  hgad::LevelConfig cfg = small_config();
  cfg.centres = 1;
  cfg.prior = hgad::kPriorSingleGaussian;
  Level<double> lv(cfg, 5);
  const int64_t C = cfg.channels, Y = cfg.classes;
  for (const auto& spec : lv.tensors()) {
    if (spec.group != hgad::kGroupCentres && spec.group != hgad::kGroupLogits) continue;
    for (int64_t i = 0; i < spec.size; ++i) CHECK(lv.data(spec)[i] == 0.0, "%s[%lld] initialised to %g", spec.name.c_str(), (long long)i, lv.data(spec)[i]);
  }
  hgad::Rng rng(8);
  for (const auto& spec : lv.tensors()) {
    if (spec.group != hgad::kGroupFlow) continue;
    double* p = lv.data(spec);
    for (int64_t i = 0; i < spec.size; ++i) p[i] += 0.3 * rng.normal();
  }
  const hgad::FeatureShape fs{2, 2, 3};
  const int64_t N = fs.vectors();
  std::vector<double> x = hgadtest::random_vector<double>(N * C, 4, 1.2);
  std::vector<int32_t> lab = {2, 0};
  const double log2pi = std::log(2 * M_PI);
  // Reference loss of the classic flow from forward() only.
  auto reference = [&](std::vector<double>* logp) {
    std::vector<double> z(N * C), ld(N);
    lv.forward(fs, x.data(), z.data(), ld.data(), 1);
    double total = 0;
    for (int64_t r = 0; r < N; ++r) {
      double sq = 0;
      for (int64_t c = 0; c < C; ++c) sq += z[r * C + c] * z[r * C + c];
      const double nll = sq / 2 + 0.5 * C * log2pi - ld[r];
      if (logp) (*logp)[r] = -nll / C;
      total += nll / C;
    }
    return total / N;
  };
  double w1[5];
  Level<double>::phase_weights(1, w1);
  std::vector<double> dx(N * C);
  const hgad::Losses l = lv.gradients(fs, x.data(), {lab.data(), false}, w1, dx.data(), 2);
  const std::vector<double> analytic = lv.grads();
  std::vector<double> logp_ref(N);
  const double lg_ref = reference(&logp_ref);
  // L_g leaves out the constant C/2 log 2 pi (its gradient is that of the reference).
  CHECK(std::fabs(l.term[hgad::kLg] - (lg_ref - 0.5 * log2pi)) < 1e-12, "L_g %.15g, reference %.15g",
        l.term[hgad::kLg], lg_ref - 0.5 * log2pi);
  CHECK(std::fabs(l.term[hgad::kLmi]) < 1e-12, "L_mi %.3g, expected 0", l.term[hgad::kLmi]);
  CHECK(std::fabs(l.term[hgad::kLe] - std::log(static_cast<double>(Y))) < 1e-12, "L_e %.15g, expected log Y", l.term[hgad::kLe]);
  // L_mi and L_e alone give no gradient to the input or the flow.
  for (int t : {hgad::kLmi, hgad::kLe}) {
    double w[5] = {0, 0, 0, 0, 0};
    w[t] = 1;
    std::vector<double> dxt(N * C);
    lv.gradients(fs, x.data(), {lab.data(), false}, w, dxt.data(), 1);
    double worst = 0;
    for (double v : dxt) worst = std::max(worst, std::fabs(v));
    for (const auto& spec : lv.tensors())
      if (spec.group == hgad::kGroupFlow)
        for (int64_t i = 0; i < spec.size; ++i) worst = std::max(worst, std::fabs(lv.grad(spec)[i]));
    CHECK(worst < 1e-12, "term %d moves the flow or input: %g", t, worst);
  }
  // Phase-1 loss = L_g - 100 * 0 + log Y: its flow and input gradients are those of the reference.
  const double eps = 1e-6;
  double worst = 0;
  for (const auto& spec : lv.tensors()) {
    if (spec.group != hgad::kGroupFlow) continue;
    // Writes go through data() every time: it marks the derived inference state stale.
    for (int64_t s = 0; s < std::min<int64_t>(spec.size, 4); ++s) {
      const int64_t i = (s * 7919 + 3) % spec.size;
      const double keep = lv.data(spec)[i];
      lv.data(spec)[i] = keep + eps;
      const double up = reference(nullptr);
      lv.data(spec)[i] = keep - eps;
      const double down = reference(nullptr);
      lv.data(spec)[i] = keep;
      const double num = (up - down) / (2 * eps), a = analytic[spec.offset + i];
      worst = std::max(worst, std::fabs(a - num) / std::max(1e-3, std::fabs(num)));
    }
  }
  for (int64_t s = 0; s < 10; ++s) {
    const int64_t i = (s * 37 + 5) % (N * C);
    const double keep = x[i];
    x[i] = keep + eps;
    const double up = reference(nullptr);
    x[i] = keep - eps;
    const double down = reference(nullptr);
    x[i] = keep;
    const double num = (up - down) / (2 * eps);
    worst = std::max(worst, std::fabs(dx[i] - num) / std::max(1e-3, std::fabs(num)));
  }
  CHECK(worst < 1e-6, "single-Gaussian gradient vs finite differences of the reference: %.3g", worst);
  // Scoring: logp is the standard-normal log-density (+ logdet) / C whatever the class; the class
  // logits are all equal.
  std::vector<double> logp(N), ne(N), cl(N * Y), post(fs.batch * Y);
  std::vector<int32_t> cls(fs.batch);
  lv.score(fs, x.data(), lab.data(), logp.data(), ne.data(), cl.data(), cls.data(), post.data(), 1);
  for (int64_t r = 0; r < N; ++r) {
    CHECK(std::fabs(logp[r] - logp_ref[r]) < 1e-12, "logp[%lld] %.15g, reference %.15g", (long long)r, logp[r], logp_ref[r]);
    for (int64_t y = 1; y < Y; ++y) CHECK(cl[r * Y + y] == cl[r * Y], "class logits differ at row %lld", (long long)r);
  }
  // Adam moves the flow only.
  const std::vector<double> before = lv.params();
  lv.gradients(fs, x.data(), {lab.data(), false}, w1, nullptr, 1);
  lv.adam_step(1e-2, 1);
  bool flow_moved = false;
  for (const auto& spec : lv.tensors()) {
    const double* p = static_cast<const Level<double>&>(lv).data(spec);
    for (int64_t i = 0; i < spec.size; ++i) {
      if (spec.group == hgad::kGroupCentres || spec.group == hgad::kGroupLogits)
        CHECK(p[i] == 0.0, "Adam moved %s[%lld] to %g", spec.name.c_str(), (long long)i, p[i]);
      else if (spec.group == hgad::kGroupFlow && p[i] != before[spec.offset + i])
        flow_moved = true;
    }
  }
  CHECK(flow_moved, "Adam did not move the flow");
}
