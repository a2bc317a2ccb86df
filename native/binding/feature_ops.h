// Feature-level operations of the pipeline (channel statistics, channel reduction before the flow) as
// promise-returning functions on the libuv pool, like the image operations: inputs copied on the JS
// thread, results made there when the job is done.
#pragma once
#include <napi.h>

#include <algorithm>
#include <memory>
#include <string>
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

// channelCrossMoments(x, rows, channels, shift, sum, cross) -> Promise<{ sum, cross }>: the running sums
// (Float64Array, channels and channels^2) with this batch added; the arguments are left as they were.
inline Napi::Value ChannelCrossMoments(const Napi::CallbackInfo& info) {
  const int64_t rows = to_int(info[1], "rows", 1, int64_t(1) << 40);
  const int64_t C = to_int(info[2], "channels", 1, hgad::kMaxPrincipalChannels);
  auto x = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "x", rows * C));
  auto shift = copy_in<float>(typed<Napi::Float32Array>(info[3], napi_float32_array, "shift", C));
  auto sum = copy_in<double>(typed<Napi::Float64Array>(info[4], napi_float64_array, "sum", C));
  auto cross = copy_in<double>(typed<Napi::Float64Array>(info[5], napi_float64_array, "cross", C * C));
  return queue_op(
      info.Env(),
      [x, rows, C, shift, sum, cross] {
        hgad::check_finite(x->data.get(), rows * C, "x");
        hgad::check_finite(shift->data.get(), C, "shift");
        hgad::channel_cross_moments(x->data.get(), rows, C, shift->data.get(), sum->data.get(), cross->data.get());
      },
      [sum, cross](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("sum", new_array<double, Napi::Float64Array>(e, sum));
        r.Set("cross", new_array<double, Napi::Float64Array>(e, cross));
        return r;
      });
}

// principalDirections(cross, sum, rows, scale, out, whiten) -> Promise<{ weight: Float32Array (out *
// channels), values: Float64Array (out), total: number }>; channels from scale's length.
inline Napi::Value PrincipalDirections(const Napi::CallbackInfo& info) {
  const int64_t C = static_cast<int64_t>(typed<Napi::Float32Array>(info[3], napi_float32_array, "scale", -1).ElementLength());
  if (C < 1 || C > hgad::kMaxPrincipalChannels) {
    throw Napi::RangeError::New(info.Env(), "Expected 1 to " + std::to_string(hgad::kMaxPrincipalChannels) +
                                                " elements in scale but received " + std::to_string(C));
  }
  const int64_t rows = to_int(info[2], "rows", 1, int64_t(1) << 53);
  const int64_t out = to_int(info[4], "out", 1, C);
  if (!info[5].IsBoolean()) throw Napi::TypeError::New(info.Env(), "Expected a boolean for whiten");
  const bool whiten = info[5].As<Napi::Boolean>().Value();
  auto cross = copy_in<double>(typed<Napi::Float64Array>(info[0], napi_float64_array, "cross", C * C));
  auto sum = copy_in<double>(typed<Napi::Float64Array>(info[1], napi_float64_array, "sum", C));
  auto scale = copy_in<float>(typed<Napi::Float32Array>(info[3], napi_float32_array, "scale", C));
  auto weight = host_array<float>(static_cast<size_t>(out * C));
  auto values = host_array<double>(static_cast<size_t>(out));
  auto total = std::make_shared<double>(0.0);
  return queue_op(
      info.Env(),
      [cross, sum, rows, scale, C, out, whiten, weight, values, total] {
        hgad::check_finite(cross->data.get(), C * C, "cross");
        hgad::check_finite(sum->data.get(), C, "sum");
        hgad::check_finite(scale->data.get(), C, "scale");
        *total = hgad::principal_directions(cross->data.get(), sum->data.get(), rows, scale->data.get(), C, out, whiten,
                                            weight->data.get(), values->data.get());
      },
      [weight, values, total](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("weight", new_array<float, Napi::Float32Array>(e, weight));
        r.Set("values", new_array<double, Napi::Float64Array>(e, values));
        r.Set("total", Napi::Number::New(e, *total));
        return r;
      });
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
  exports.Set("channelCrossMoments", Napi::Function::New(env, Guarded<ChannelCrossMoments>));
  exports.Set("principalDirections", Napi::Function::New(env, Guarded<PrincipalDirections>));
  exports.Set("orthonormalRows", Napi::Function::New(env, Guarded<OrthonormalRows>));
}

}  // namespace hgadnode
