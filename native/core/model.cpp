#include "model.h"

#include <stdexcept>

#include "cpu_features.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace hgad {

namespace {
[[noreturn]] void bad(const std::string& parameter, const std::string& expected, const std::string& got) {
  InputError e;
  e.parameter = parameter;
  e.message = "Expected " + expected + " for " + parameter + " but received " + got;
  throw e;
}

uint64_t level_seed(uint64_t seed, int64_t l) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(l + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
LevelConfig level_config(const ModelConfig& c, size_t l) {
  LevelConfig lc;
  lc.channels = c.channels[l];
  lc.pos_dim = c.pos_dim;
  lc.blocks = c.blocks;
  lc.classes = c.classes;
  lc.centres = c.centres;
  lc.clamp = c.clamp;
  lc.prior = c.prior;
  return lc;
}
}  // namespace

void validate(const ModelConfig& c) {
  if (c.channels.empty()) bad("levels", "at least one level", "none");
  for (size_t l = 0; l < c.channels.size(); ++l)
    if (c.channels[l] < 2 || c.channels[l] > 65536)
      bad("levels[" + std::to_string(l) + "].channels", "an integer in [2, 65536]", std::to_string(c.channels[l]));
  if (c.classes < 1 || c.classes > 100000) bad("classes", "1 to 100000 classes", std::to_string(c.classes));
  if (c.centres < 1 || c.centres > 10000) bad("centersPerClass", "an integer in [1, 10000]", std::to_string(c.centres));
  if (c.blocks < 1 || c.blocks > 1000) bad("couplingLayers", "an integer in [1, 1000]", std::to_string(c.blocks));
  if (c.pos_dim < 4 || c.pos_dim % 4 != 0 || c.pos_dim > 65536)
    bad("posEmbedDim", "a positive multiple of 4 up to 65536", std::to_string(c.pos_dim));
  if (!(c.clamp > 0) || !(c.clamp < 1e6)) bad("clamp", "a positive number", std::to_string(c.clamp));
  if (c.prior < kPriorHgad || c.prior > kPriorInterOnly)
    bad("prior", "'hgad', 'single-gaussian' or 'inter-only'", std::to_string(c.prior));
  if (c.prior != kPriorHgad && c.centres != 1)
    bad("centersPerClass", "1 for the single-gaussian and inter-only priors", std::to_string(c.centres));
  if (c.threads < 1 || c.threads > 1024) bad("threads", "an integer in [1, 1024]", std::to_string(c.threads));
  // The TypeScript layer refuses configs above its own, lower limit first, naming the setting to
  // change; this is the safety net for direct callers (std::bad_alloc is no answer to a config).
  const double need = model_footprint_bytes(c), have = physical_memory_bytes();
  if (have > 0 && need > have)
    bad("config", "a model that fits in this machine's " + std::to_string(static_cast<int64_t>(have / (1 << 20))) +
                      " MiB of memory", "one needing about " + std::to_string(static_cast<int64_t>(need / (1 << 20))) + " MiB");
}

double model_footprint_bytes(const ModelConfig& c) {
  double total = 0;
  for (size_t l = 0; l < c.channels.size(); ++l) total += level_footprint_bytes(level_config(c, l), c.threads);
  return total;
}

double physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && size > 0) return static_cast<double>(pages) * static_cast<double>(size);
#endif
  return 0;
}

Model::Model(const ModelConfig& cfg, bool initialise) : cfg_(cfg) {
  validate(cfg_);
  for (size_t l = 0; l < cfg_.channels.size(); ++l)
    levels_.push_back(std::make_unique<Level<float>>(level_config(cfg_, l), level_seed(cfg_.seed, static_cast<int64_t>(l)),
                                                     initialise));
}

Level<float>& Model::level(int64_t l) {
  if (l < 0 || l >= num_levels())
    bad("level", "a level index in [0, " + std::to_string(num_levels()) + ")", std::to_string(l));
  return *levels_[l];
}

void Model::set_precision(bool bf16_inference, bool bf16_training) {
  if ((bf16_inference || bf16_training) && !bf16_supported())
    throw std::invalid_argument("precision 'bf16' needs a CPU with AVX512-BF16 or AMX-BF16, and this one has neither");
  for (auto& l : levels_) {
    l->bf16_inference = bf16_inference;
    l->bf16_training = bf16_training;
  }
}

void Model::set_threads(int t) {
  ModelConfig c = cfg_;
  c.threads = t;
  validate(c);
  cfg_.threads = t;
}

}  // namespace hgad
