// Feature-level operations of the pipeline (channel statistics, channel reduction before the flow) as
// promise-returning functions on the libuv pool, like the image operations.
#pragma once
#include <napi.h>

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
  Napi::Env env = info.Env();
  const int64_t rows = to_int(info[1], "rows", 1, int64_t(1) << 40);
  const int64_t C = to_int(info[2], "channels", 1, kMaxChannels);
  auto x = typed<Napi::Float32Array>(info[0], napi_float32_array, "x", rows * C);
  Napi::Float64Array sum = Napi::Float64Array::New(env, static_cast<size_t>(C));
  Napi::Float64Array sumsq = Napi::Float64Array::New(env, static_cast<size_t>(C));
  const float* xp = x.Data();
  double* sp = sum.Data();
  double* qp = sumsq.Data();
  auto sum_ref = std::make_shared<Napi::Reference<Napi::Float64Array>>(Napi::Persistent(sum));
  auto sumsq_ref = std::make_shared<Napi::Reference<Napi::Float64Array>>(Napi::Persistent(sumsq));
  return queue_op(
      env, {x, sum, sumsq},
      [xp, rows, C, sp, qp] {
        hgad::check_finite(xp, rows * C, "x");
        hgad::channel_moments(xp, rows, C, sp, qp);
      },
      [sum_ref, sumsq_ref](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("sum", sum_ref->Value());
        r.Set("sumsq", sumsq_ref->Value());
        return r;
      });
}

// projectChannels(x, rows, in, mean, scale, weight, out) -> Promise<Float32Array (rows * out)>
inline Napi::Value ProjectChannels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t rows = to_int(info[1], "rows", 1, int64_t(1) << 40);
  const int64_t in = to_int(info[2], "in", 1, kMaxChannels);
  const int64_t out = to_int(info[6], "out", 1, in);
  auto x = typed<Napi::Float32Array>(info[0], napi_float32_array, "x", rows * in);
  auto mean = typed<Napi::Float32Array>(info[3], napi_float32_array, "mean", in);
  auto scale = typed<Napi::Float32Array>(info[4], napi_float32_array, "scale", in);
  auto weight = typed<Napi::Float32Array>(info[5], napi_float32_array, "weight", out * in);
  Napi::Float32Array y = Napi::Float32Array::New(env, static_cast<size_t>(rows * out));
  const float *xp = x.Data(), *mp = mean.Data(), *sp = scale.Data(), *wp = weight.Data();
  float* yp = y.Data();
  auto y_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(y));
  return queue_op(
      env, {x, mean, scale, weight, y},
      [xp, rows, in, mp, sp, wp, out, yp] {
        hgad::check_finite(xp, rows * in, "x");
        hgad::project_channels(xp, rows, in, mp, sp, wp, out, yp);
      },
      [y_ref](Napi::Env) -> Napi::Value { return y_ref->Value(); });
}

// orthonormalRows(seed, rows, in) -> Promise<Float32Array (rows * in)>
inline Napi::Value OrthonormalRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t seed = to_int(info[0], "seed", 0, (int64_t(1) << 53) - 1);
  const int64_t in = to_int(info[2], "in", 1, kMaxChannels);
  const int64_t rows = to_int(info[1], "rows", 1, in);
  auto out = std::make_shared<std::vector<float>>();
  return queue_op(
      env, {}, [seed, rows, in, out] { *out = hgad::orthonormal_rows(static_cast<uint64_t>(seed), rows, in); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Float32Array a = Napi::Float32Array::New(e, out->size());
        std::copy(out->begin(), out->end(), a.Data());
        return a;
      });
}

inline void RegisterFeatureOps(Napi::Env env, Napi::Object exports) {
  exports.Set("channelMoments", Napi::Function::New(env, ChannelMoments));
  exports.Set("projectChannels", Napi::Function::New(env, ProjectChannels));
  exports.Set("orthonormalRows", Napi::Function::New(env, OrthonormalRows));
}

}  // namespace hgadnode
