// The CUDA twin of hgad::Level<float>: the same operations over the same parameters, run on the
// device. The host Level stays the owner of the parameters as the model file and the tensor API see
// them; this class mirrors them in device memory and keeps track of which copy is newer:
//   - before a device operation, a host copy changed since the last upload is uploaded (push);
//   - after one that changes parameters, gradients or Adam's moments, pull() brings them back on
//     demand (getTensor, save).
// Tiles are cut as on the CPU (tiling.h), only larger, and run one after the other on the stream.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/level.h"
#include "buffer.cuh"
#include "context.cuh"
#include "kernels.cuh"

namespace hgad {
namespace cuda {

class CudaLevel {
 public:
  CudaLevel(Level<float>& host, const Context& ctx);

  // The rows of one tile: enough for the GEMMs to fill the GPU, small enough for training's K copies
  // of the activations.
  int64_t tile_rows = 16384;

  void forward(const FeatureShape& fs, const float* x, float* z, float* logdet);
  void inverse(const FeatureShape& fs, const float* z, float* x);
  // with_logdet false: logp without the flow's log|det J| (Level::score).
  void score(const FeatureShape& fs, const float* x, const int32_t* image_class, float* logp, float* neg_entropy,
             float* class_logits, int32_t* class_out, float* class_posterior, bool with_logdet = true);
  Losses gradients(const FeatureShape& fs, const float* x, const Labels& labels, const float* weights, float* dx);
  void adam_step(double lr);

  // Host copy up to date (downloads parameters, gradients and moments when the device is newer).
  void pull();
  // The host copy was written (after pull()): upload it before the next device operation.
  void host_changed() { device_current_ = false; }

 private:
  void push();
  void prepare();
  const float* positional(int64_t H, int64_t W);
  DeviceBlock block(int64_t k) const;
  MixtureParams<float> mixture() const;
  void ensure_workspace(int64_t rows, bool train);
  // Runs the K blocks forward over the tile in act0 (ping-pong through act1); returns the output rows.
  float* flow_rows(int64_t R, int64_t tp, const float* pe_t, float* act0, float* act1);

  Level<float>& host_;
  const Context& ctx_;
  BlockDims d_;
  int64_t K_, Y_, M_, J_, P_;
  int64_t block_stride_, gamma_rel_;  // block k's w1 at k * block_stride_; its gamma at + gamma_rel_
  int64_t mu_off_, delta_off_, phi_off_, psi_off_, flow_end_, centres_end_;
  int64_t rot_size_;
  bool device_current_ = false, host_current_ = true;

  DeviceBuffer<float> params_, grads_, m_, v_, rot_;
  DeviceBuffer<float> g_, logdet_g_, centres_, cnorm_, logpi_, logpi_intra_, pe_;
  int64_t pe_h_ = -1, pe_w_ = -1;
  DeviceBuffer<float> acts_, h_, s_, u_, a_, up_, q_, ld_, dld_, zn_, D_, A_full_, A_det_, dcur_, dnext_, du_, da_,
      dh_, dqsum_, scratch_;
  DeviceBuffer<float> gz_full_, gz_det_, col_full_, col_det_, dlogpi_, dlogpi_intra_;
  DeviceBuffer<float> class_logits_, neg_entropy_, logp_all_;
  DeviceBuffer<int32_t> label_;
  DeviceBuffer<double> loss_;
  std::vector<int32_t> host_labels_;
  std::vector<float> host_logp_all_;
};

}  // namespace cuda
}  // namespace hgad
