// A whole model: one Level per feature level, the settings they share, and the lock that serialises
// operations on it (they mutate workspaces and parameters).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "level.h"

namespace hgad {

struct ModelConfig {
  std::vector<int64_t> channels;  // per level
  int64_t classes = 1, centres = 10, blocks = 12, pos_dim = 256;
  double clamp = 1.9;
  int prior = kPriorHgad;  // Prior (level.h)
  uint64_t seed = 0;
  int threads = 1;
};

class Model {
 public:
  // initialise = false: every tensor zero (a model file fills them), see Level.
  explicit Model(const ModelConfig& cfg, bool initialise = true);
  const ModelConfig& config() const { return cfg_; }
  int64_t num_levels() const { return static_cast<int64_t>(levels_.size()); }
  Level<float>& level(int64_t l);
  std::mutex& mutex() { return mutex_; }
  int threads() const { return cfg_.threads; }
  void set_threads(int t);
  // GEMM precision of every level (Level::bf16_inference / bf16_training); bf16 needs a CPU that has
  // it (cpu_features.h): std::invalid_argument otherwise.
  void set_precision(bool bf16_inference, bool bf16_training);

 private:
  ModelConfig cfg_;
  std::vector<std::unique_ptr<Level<float>>> levels_;
  std::mutex mutex_;
};

// Throws InputError naming the first setting that is out of range, or "config" when the model would
// need more memory than the machine has (model_footprint_bytes against physical_memory_bytes).
void validate(const ModelConfig& cfg);

// Estimated bytes the model holds once it has trained (sum of level_footprint_bytes).
double model_footprint_bytes(const ModelConfig& cfg);
// Physical memory of this machine, or 0 where it cannot be read (then no limit applies here).
double physical_memory_bytes();

}  // namespace hgad
