// Freezing parameter groups (adding classes to a trained model): a frozen flow and frozen classes keep
// their parameters and Adam moments bit for bit through optimiser steps, the trainable classes move,
// and training on the flow's outputs (latent input) gives the same mixture gradients as training on
// the features with the flow frozen.
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/level.h"
#include "check.h"
#include "fixtures.h"

using namespace hgad;
using namespace hgadtest;

namespace {

struct Batch {
  FeatureShape fs{2, 3, 4};
  std::vector<float> x;
  std::vector<int32_t> labels{0, 2};
};

Batch batch_for(const LevelConfig& c) {
  Batch b;
  b.x = random_vector<float>(b.fs.vectors() * c.channels, 11);
  return b;
}

}  // namespace

HGAD_TEST(frozen_flow_and_classes_stay_bit_identical) {
  const LevelConfig cfg = small_config();
  Level<float> lv(cfg, 5);
  jitter(lv, 6, 0.05);
  const std::vector<float> before = lv.params();
  lv.set_trainable(false, 2);
  Batch b = batch_for(cfg);
  float w[kNumTerms];
  Level<float>::phase_weights(2, w);
  for (int step = 0; step < 3; ++step) {
    lv.gradients(b.fs, b.x.data(), Labels{b.labels.data(), false}, w, nullptr, 2);
    lv.adam_step(1e-2, 2);
  }
  const std::vector<float>& after = lv.params();
  const TensorSpec* mu = lv.find("mu");
  const TensorSpec* delta = lv.find("delta");
  const TensorSpec* psi = lv.find("psi");
  const TensorSpec* phi = lv.find("phi");
  const int64_t C = cfg.channels, M = cfg.centres;
  // Frozen: everything before class 2's rows of each head tensor.
  auto frozen = [&](int64_t i) {
    if (i < mu->offset) return true;  // the flow
    if (i < mu->offset + mu->size) return i < mu->offset + 2 * C;
    if (i < delta->offset + delta->size) return i < delta->offset + 2 * (M - 1) * C;
    if (i < phi->offset + phi->size) return true;  // every phi, once any class is frozen
    return i < psi->offset + 2 * M;
  };
  int64_t changed_frozen = 0, changed_trainable = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    const bool same = std::memcmp(&after[i], &before[i], sizeof(float)) == 0;
    if (frozen(static_cast<int64_t>(i))) changed_frozen += !same;
    else changed_trainable += !same;
  }
  CHECK(changed_frozen == 0, "%lld frozen parameters changed", static_cast<long long>(changed_frozen));
  CHECK(changed_trainable > 0, "no trainable parameter changed");
  // Frozen moments stay zero (they were never updated).
  int64_t moved_moments = 0;
  for (const auto& s : lv.tensors()) {
    if (s.group == kGroupFixed) continue;
    for (int64_t i = 0; i < s.size; ++i)
      if (frozen(s.offset + i) && (lv.adam_m(s)[i] != 0 || lv.adam_v(s)[i] != 0)) ++moved_moments;
  }
  CHECK(moved_moments == 0, "%lld frozen moments moved", static_cast<long long>(moved_moments));
}

HGAD_TEST(latent_input_gives_the_mixture_gradients_of_feature_input) {
  const LevelConfig cfg = small_config();
  Level<float> a(cfg, 5), l(cfg, 5);
  jitter(a, 6, 0.05);
  jitter(l, 6, 0.05);
  a.set_trainable(false, 1);
  l.set_trainable(false, 1);
  Batch b = batch_for(cfg);
  float w[kNumTerms];
  Level<float>::phase_weights(2, w);
  const Losses la = a.gradients(b.fs, b.x.data(), Labels{b.labels.data(), false}, w, nullptr, 1);
  std::vector<float> z(b.x.size()), ld(b.fs.vectors());
  l.forward(b.fs, b.x.data(), z.data(), ld.data(), 1);
  const Losses ll = l.gradients(b.fs, z.data(), Labels{b.labels.data(), false}, w, nullptr, 1, ld.data());
  CHECK(std::fabs(la.total - ll.total) <= 1e-5 * (1 + std::fabs(la.total)), "loss %g vs %g", la.total, ll.total);
  const TensorSpec* mu = a.find("mu");
  double worst = 0;
  for (int64_t i = mu->offset; i < a.num_params(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(a.grads()[i] - l.grads()[i])) / (1e-3 + std::fabs(a.grads()[i])));
  CHECK(worst < 1e-3, "mixture gradients differ by %g (relative)", worst);
  // Latent input with a trainable flow is refused.
  Level<float> t(cfg, 5);
  bool refused = false;
  try {
    t.gradients(b.fs, z.data(), Labels{b.labels.data(), false}, w, nullptr, 1, ld.data());
  } catch (const InputError&) {
    refused = true;
  }
  CHECK(refused, "latent input with a trainable flow was accepted");
}
