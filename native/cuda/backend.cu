// Backend: device selection, the model's Context and its CudaLevels.
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "check.cuh"
#include "context.cuh"
#include "level.cuh"

namespace hgad {
namespace cuda {

Status status() {
  Status s;
  s.gemm = gemm_backend();
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    int runtime = 0;
    cudaRuntimeGetVersion(&runtime);
    const std::string version = std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
    if (e == cudaErrorInsufficientDriver)
      s.reason = "no NVIDIA driver found, or one older than this build's CUDA runtime " + version + " needs";
    else if (e == cudaErrorNoDevice)
      s.reason = "no CUDA device found";
    else
      s.reason = std::string("CUDA is unusable: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    s.reason += std::string(" (") + cudaGetErrorName(e) + ")";
    return s;
  }
  if (count == 0) {
    s.reason = "no CUDA device found";
    return s;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) s.device_name = prop.name;
  cudaGetLastError();
  s.devices = count;
  s.available = true;
  return s;
}

struct BackendState {
  Context ctx;
  std::vector<std::unique_ptr<CudaLevel>> levels;
  CudaLevel& level(int64_t l) {
    if (l < 0 || l >= static_cast<int64_t>(levels.size())) throw CudaError("CUDA backend: no level " + std::to_string(l));
    return *levels[l];
  }
};

namespace {
// The device every model uses: device 0 (CUDA_VISIBLE_DEVICES picks which physical one that is).
void select_device() {
  const Status s = status();
  if (!s.available) throw CudaError("CUDA requested but unavailable: " + s.reason);
  HGAD_CUDA_CHECK(cudaSetDevice(0));
}
}  // namespace

Backend::Backend(Model& host) {
  select_device();
  state_ = std::make_unique<BackendState>();
  for (int64_t l = 0; l < host.num_levels(); ++l)
    state_->levels.push_back(std::make_unique<CudaLevel>(host.level(l), state_->ctx));
}

Backend::~Backend() = default;

// Work runs on libuv pool threads: the device is current per thread, so every entry sets it.
#define HGAD_ON_DEVICE HGAD_CUDA_CHECK(cudaSetDevice(0))

void Backend::forward(int64_t level, const FeatureShape& fs, const float* x, float* z, float* logdet) {
  HGAD_ON_DEVICE;
  state_->level(level).forward(fs, x, z, logdet);
}
void Backend::inverse(int64_t level, const FeatureShape& fs, const float* z, float* x) {
  HGAD_ON_DEVICE;
  state_->level(level).inverse(fs, z, x);
}
void Backend::score(int64_t level, const FeatureShape& fs, const float* x, const int32_t* image_class, float* logp,
                    float* neg_entropy, float* class_logits, int32_t* class_out, float* class_posterior,
                    bool with_logdet) {
  HGAD_ON_DEVICE;
  state_->level(level).score(fs, x, image_class, logp, neg_entropy, class_logits, class_out, class_posterior,
                             with_logdet);
}
Losses Backend::gradients(int64_t level, const FeatureShape& fs, const float* x, const Labels& labels,
                          const float* weights, float* dx) {
  HGAD_ON_DEVICE;
  return state_->level(level).gradients(fs, x, labels, weights, dx);
}
void Backend::adam_step(int64_t level, double lr) {
  HGAD_ON_DEVICE;
  state_->level(level).adam_step(lr);
}
void Backend::pull(int64_t level) {
  HGAD_ON_DEVICE;
  state_->level(level).pull();
}
void Backend::host_changed(int64_t level) { state_->level(level).host_changed(); }
void Backend::set_tile_rows(int64_t rows) {
  for (auto& l : state_->levels) l->tile_rows = rows < 1 ? 1 : rows;
}

}  // namespace cuda
}  // namespace hgad
