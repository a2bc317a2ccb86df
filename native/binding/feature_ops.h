// Feature-level operations of the pipeline (channel statistics, channel reduction before the flow) as
// promise-returning functions on the libuv pool, like the image operations: inputs copied on the JS
// thread, results made there when the job is done.
#pragma once
#include <napi.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "../core/checks.h"
#include "../core/projection.h"
#include "convert.h"
#include "image_ops.h"

namespace hgadnode {

constexpr int64_t kMaxChannels = 1 << 16;

// channelMoments(x, rows, channels) -> Promise<{ sum: Float64Array, sumsq: Float64Array }>
inline Napi::Value ChannelMoments(const Napi::CallbackInfo& info) {
  const int64_t rows = to_int(info[1], "rows", 1, int64_t(1) << 40);
  const int64_t C = to_int(info[2], "channels", 1, kMaxChannels);
  auto x = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "x", rows * C));
  auto sum = host_array<double>(static_cast<size_t>(C));
  auto sumsq = host_array<double>(static_cast<size_t>(C));
  return queue_op(
      info.Env(),
      [x, rows, C, sum, sumsq] {
        hgad::check_finite(x->data.get(), rows * C, "x");
        std::fill(sum->data.get(), sum->data.get() + C, 0.0);
        std::fill(sumsq->data.get(), sumsq->data.get() + C, 0.0);
        hgad::channel_moments(x->data.get(), rows, C, sum->data.get(), sumsq->data.get());
      },
      [sum, sumsq](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("sum", new_array<double, Napi::Float64Array>(e, sum));
        r.Set("sumsq", new_array<double, Napi::Float64Array>(e, sumsq));
        return r;
      });
}

// projectChannels(x, rows, in, mean, scale, weight, out) -> Promise<Float32Array (rows * out)>
inline Napi::Value ProjectChannels(const Napi::CallbackInfo& info) {
  const int64_t rows = to_int(info[1], "rows", 1, int64_t(1) << 40);
  const int64_t in = to_int(info[2], "in", 1, kMaxChannels);
  const int64_t out = to_int(info[6], "out", 1, in);
  auto x = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "x", rows * in));
  auto mean = copy_in<float>(typed<Napi::Float32Array>(info[3], napi_float32_array, "mean", in));
  auto scale = copy_in<float>(typed<Napi::Float32Array>(info[4], napi_float32_array, "scale", in));
  auto weight = copy_in<float>(typed<Napi::Float32Array>(info[5], napi_float32_array, "weight", out * in));
  auto y = host_array<float>(static_cast<size_t>(rows * out));
  return queue_op(
      info.Env(),
      [x, rows, in, mean, scale, weight, out, y] {
        hgad::check_finite(x->data.get(), rows * in, "x");
        hgad::project_channels(x->data.get(), rows, in, mean->data.get(), scale->data.get(), weight->data.get(), out,
                               y->data.get());
      },
      [y](Napi::Env e) -> Napi::Value { return new_array<float, Napi::Float32Array>(e, y); });
}

// orthonormalRows(seed, rows, in) -> Promise<Float32Array (rows * in)>
inline Napi::Value OrthonormalRows(const Napi::CallbackInfo& info) {
  const int64_t seed = to_int(info[0], "seed", 0, (int64_t(1) << 53) - 1);
  const int64_t in = to_int(info[2], "in", 1, kMaxChannels);
  const int64_t rows = to_int(info[1], "rows", 1, in);
  auto out = host_array<float>(static_cast<size_t>(rows * in));
  return queue_op(
      info.Env(),
      [seed, rows, in, out] {
        const std::vector<float> w = hgad::orthonormal_rows(static_cast<uint64_t>(seed), rows, in);
        std::copy(w.begin(), w.end(), out->data.get());
      },
      [out](Napi::Env e) -> Napi::Value { return new_array<float, Napi::Float32Array>(e, out); });
}

inline void RegisterFeatureOps(Napi::Env env, Napi::Object exports) {
  exports.Set("channelMoments", Napi::Function::New(env, Guarded<ChannelMoments>));
  exports.Set("projectChannels", Napi::Function::New(env, Guarded<ProjectChannels>));
  exports.Set("orthonormalRows", Napi::Function::New(env, Guarded<OrthonormalRows>));
}

}  // namespace hgadnode
