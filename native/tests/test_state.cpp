// The value checks of a loaded model (state_checks.h), the bound they put on Adam's moments, and the
// layout computed without allocating (level_layout, used to check files and memory before building).
#include <cmath>
#include <vector>

#include "../core/adam.h"
#include "../core/model.h"
#include "../core/state_checks.h"
#include "check.h"
#include "fixtures.h"

using namespace hgad;

namespace {

// max over steps of m^2 / v under Adam's updates for a gradient sequence g(t).
template <typename G>
double worst_moment_ratio(G g, int steps) {
  const AdamHyper h;
  const AdamGroup group{0, 1, 1.0, 0.0};
  float param = 0, grad = 0, m = 0, v = 0;
  double worst = 0;
  for (int t = 1; t <= steps; ++t) {
    grad = static_cast<float>(g(t));
    adam_update<float>(group, h, 1e-3, t, &param, &grad, &m, &v, 1);
    if (v > 0) worst = std::max(worst, static_cast<double>(m) * m / v);
  }
  return worst;
}

std::string state_error(Model& model) {
  try {
    check_model_state(model, 1);
  } catch (const StateError& e) {
    return e.tensor + ": " + e.message;
  }
  return "";
}

ModelConfig small_model() {
  ModelConfig c;
  c.channels = {6};
  c.classes = 2;
  c.centres = 2;
  c.blocks = 2;
  c.pos_dim = 4;
  return c;
}

}  // namespace

HGAD_TEST(adam_moment_bound_holds_and_is_tight) {
  const AdamHyper h;
  const double bound = adam_moment_bound(h.beta1, h.beta2);
  CHECK(std::fabs(bound - 0.0025 / 0.01 / (1 - 0.9025 / 0.99)) < 1e-12, "bound %g", bound);
  Rng rng(3);
  // Random, heavy-tailed, sign-alternating and constant gradients stay within the bound...
  const double random = worst_moment_ratio([&](int) { return rng.normal() * std::exp(3 * rng.normal()); }, 3000);
  const double alternating = worst_moment_ratio([](int t) { return t % 2 ? 1.0 : -1.0; }, 3000);
  const double constant = worst_moment_ratio([](int) { return 0.7; }, 3000);
  // ...and the worst case of Cauchy-Schwarz, gradients growing by beta2 / beta1 per step, reaches it.
  const double growing = worst_moment_ratio([&](int t) { return 1e-12 * std::pow(h.beta2 / h.beta1, t); }, 600);
  for (double r : {random, alternating, constant, growing}) CHECK(r <= bound * 1.01, "ratio %g above bound %g", r, bound);
  CHECK(growing > 0.95 * bound, "worst case %g far below the bound %g", growing, bound);
}

HGAD_TEST(state_checks_accept_real_models_and_name_bad_tensors) {
  Model model(small_model());
  CHECK(state_error(model).empty(), "fresh model: %s", state_error(model).c_str());
  Level<float>& lv = model.level(0);
  std::vector<float> x = hgadtest::random_vector<float>(2 * 3 * 3 * 6, 5);
  const std::vector<int32_t> labels = {0, 1};
  float w[kNumTerms];
  Level<float>::phase_weights(2, w);
  for (int i = 0; i < 30; ++i) {
    lv.gradients({2, 3, 3}, x.data(), {labels.data(), false}, w, nullptr, 1);
    lv.adam_step(1e-2, 1);
  }
  CHECK(state_error(model).empty(), "trained model: %s", state_error(model).c_str());

  const TensorSpec* mu = lv.find("mu");
  const TensorSpec* rot = lv.find("blocks.1.rotation");
  const TensorSpec* b1 = lv.find("blocks.0.b1");
  const float v0 = lv.adam_v(*mu)[3], m0 = lv.adam_m(*mu)[3], b0 = lv.data(*b1)[2];

  lv.adam_v(*mu)[3] = -1e-7f;
  CHECK(state_error(model).rfind("optimizer.levels.0.v.mu: element 3 is -1e-07", 0) == 0, "%s", state_error(model).c_str());
  lv.adam_v(*mu)[3] = v0;
  lv.adam_m(*mu)[3] = 2 * std::sqrt(v0) + 1e-3f;
  CHECK(state_error(model).rfind("optimizer.levels.0.m.mu: element 3", 0) == 0, "%s", state_error(model).c_str());
  lv.adam_m(*mu)[3] = m0;

  lv.data(*b1)[2] = 1e20f;
  CHECK(state_error(model).rfind("levels.0.blocks.0.b1: element 2 is 1e+20", 0) == 0, "%s", state_error(model).c_str());
  lv.data(*b1)[2] = b0;

  std::vector<float> saved(lv.data(*rot), lv.data(*rot) + rot->size);
  lv.data(*rot)[7] += 2e-3f;
  CHECK(state_error(model).rfind("levels.0.blocks.1.rotation: is not orthogonal", 0) == 0, "%s", state_error(model).c_str());
  std::copy(saved.begin(), saved.end(), lv.data(*rot));

  lv.set_adam_steps(0);
  CHECK(state_error(model).find("no step") != std::string::npos, "%s", state_error(model).c_str());
  lv.set_adam_steps(30);
  CHECK(state_error(model).empty(), "restored: %s", state_error(model).c_str());
}

HGAD_TEST(layout_matches_the_level_and_an_uninitialised_model_is_zero) {
  const LevelConfig c = hgadtest::small_config();
  const LevelLayout layout = level_layout(c);
  Level<float> lv(c, 1);
  CHECK(layout.params == lv.num_params(), "params %lld vs %lld", static_cast<long long>(layout.params),
        static_cast<long long>(lv.num_params()));
  CHECK(layout.specs.size() == lv.tensors().size(), "spec count");
  for (size_t i = 0; i < layout.specs.size() && i < lv.tensors().size(); ++i)
    CHECK(layout.specs[i].name == lv.tensors()[i].name && layout.specs[i].shape == lv.tensors()[i].shape &&
              layout.specs[i].offset == lv.tensors()[i].offset,
          "spec %zu", i);
  Model zero(small_model(), false);
  bool all_zero = true;
  for (const auto& s : zero.level(0).tensors()) {
    const float* p = static_cast<const Level<float>&>(zero.level(0)).data(s);
    for (int64_t i = 0; i < s.size; ++i) all_zero = all_zero && p[i] == 0;
  }
  CHECK(all_zero, "initialise = false leaves tensors zero");
  // The estimate grows with every setting and is far above the bare parameters of a real config.
  LevelConfig paper;
  paper.channels = 200;
  paper.classes = 15;
  const double base = level_footprint_bytes(paper, 2);
  CHECK(base > 4.0 * 4 * level_layout(paper).params, "estimate %g", base);
  for (auto bump : {&LevelConfig::channels, &LevelConfig::pos_dim, &LevelConfig::blocks, &LevelConfig::classes}) {
    LevelConfig more = paper;
    more.*bump *= 2;
    CHECK(level_footprint_bytes(more, 2) > base, "estimate grows");
  }
  // An impossible config is refused by validate() before any allocation (the machine's memory).
  ModelConfig huge = small_model();
  huge.channels = {65536};
  bool refused = false;
  try {
    validate(huge);
  } catch (const InputError& e) {
    refused = e.parameter == "config";
  }
  CHECK(refused || physical_memory_bytes() == 0, "65536 channels refused");
}
