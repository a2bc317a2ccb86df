// The CUDA backend as the binding sees it: plain C++, no CUDA headers, so native/binding compiles the
// same with or without a CUDA toolkit (the binding only includes this when HGAD_WITH_CUDA is set).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "../core/level.h"
#include "../core/model.h"

namespace hgad {
namespace cuda {

struct Status {
  bool available = false;  // a usable device (driver loaded, at least one device)
  int devices = 0;
  std::string device_name;  // of device 0
  std::string reason;       // why not available
  std::string gemm;         // "cublas" or "builtin"
};

// Never throws: queries the driver (cudaGetDeviceCount) and reports what it found.
Status status();

struct BackendState;

// The device side of one hgad::Model: one stream, one CudaLevel per level. The host Model keeps the
// parameters as the tensor API and model files see them; pull/host_changed keep the two in step.
// Every method may throw std::runtime_error (CUDA errors, out of memory) or hgad::InputError.
class Backend {
 public:
  explicit Backend(Model& host);  // throws std::runtime_error when no device can be used
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  void forward(int64_t level, const FeatureShape& fs, const float* x, float* z, float* logdet);
  void inverse(int64_t level, const FeatureShape& fs, const float* z, float* x);
  void score(int64_t level, const FeatureShape& fs, const float* x, const int32_t* image_class, float* logp,
             float* neg_entropy, float* class_logits, int32_t* class_out, float* class_posterior, bool with_logdet);
  Losses gradients(int64_t level, const FeatureShape& fs, const float* x, const Labels& labels, const float* weights,
                   float* dx);
  void adam_step(int64_t level, double lr);
  // Before reading the host copy of a level: bring back what the device changed.
  void pull(int64_t level);
  // After writing the host copy of a level (pull() first): upload before the next device operation.
  void host_changed(int64_t level);
  // Rows per tile of every level (tests use small tiles to exercise the tiling).
  void set_tile_rows(int64_t rows);

 private:
  std::unique_ptr<BackendState> state_;
};

}  // namespace cuda
}  // namespace hgad
