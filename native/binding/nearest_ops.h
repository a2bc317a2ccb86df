// The nearest-neighbour reference's operations (core/nearest.h) as promise-returning functions, in the
// manner of image_ops.h: arguments checked and copied on the JS thread, the work on the libuv pool
// over the copies, the result arrays made on the JS thread when it is done.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../core/checks.h"
#include "../core/nearest.h"
#include "convert.h"
#include "image_ops.h"

namespace hgadnode {

using PoolKernel = void (*)(const float*, int64_t, int64_t, int64_t, int64_t, float*);

// avgPool3x3 / avgPool2x2(data, batch, height, width, channels) -> Promise<Float32Array>: NHWC data
// pooled to [batch, height / kStride, width / kStride, channels] by kKernel (core/nearest.h); height
// and width at least kMinSide.
template <PoolKernel kKernel, int64_t kStride, int64_t kMinSide>
Napi::Value AvgPool(const Napi::CallbackInfo& info) {
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  const int64_t h = to_int(info[2], "height", kMinSide, 1 << 16), w = to_int(info[3], "width", kMinSide, 1 << 16);
  const int64_t c = to_int(info[4], "channels", 1, 1 << 20);
  auto in = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "data", batch * h * w * c));
  auto out = host_array<float>(static_cast<size_t>(batch * (h / kStride) * (w / kStride) * c));
  return queue_op(
      info.Env(),
      [in, out, batch, h, w, c] {
        hgad::check_finite(in->data.get(), batch * h * w * c, "data");
        kKernel(in->data.get(), batch, h, w, c, out->data.get());
      },
      [out](Napi::Env e) -> Napi::Value { return new_array<float, Napi::Float32Array>(e, out); });
}

// nearestDistances(queries, count, bank, bankCount, dim, into?, bf16?) -> Promise<Float32Array (count)>: the
// distances, or with `into` the element-wise smaller of it and the new distances (a new array).
inline Napi::Value NearestDistances(const Napi::CallbackInfo& info) {
  const int64_t count = to_int(info[1], "count", 1, int64_t(1) << 40);
  const int64_t bank_count = to_int(info[3], "bankCount", 1, int64_t(1) << 40);
  const int64_t dim = to_int(info[4], "dim", 1, 1 << 20);
  auto queries = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "queries", count * dim));
  auto bank = copy_in<float>(typed<Napi::Float32Array>(info[2], napi_float32_array, "bank", bank_count * dim));
  const bool accumulate = info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull();
  const bool bf16 = info.Length() > 6 && info[6].ToBoolean().Value();
  auto d = accumulate ? copy_in<float>(typed<Napi::Float32Array>(info[5], napi_float32_array, "into", count))
                      : host_array<float>(static_cast<size_t>(count));
  return queue_op(
      info.Env(),
      [queries, bank, d, count, bank_count, dim, accumulate, bf16] {
        hgad::check_finite(queries->data.get(), count * dim, "queries");
        hgad::check_finite(bank->data.get(), bank_count * dim, "bank");
        if (accumulate) hgad::check_finite(d->data.get(), count, "into");
        hgad::nearest_distances(queries->data.get(), count, bank->data.get(), bank_count, dim, d->data.get(), accumulate, bf16);
      },
      [d](Napi::Env e) -> Napi::Value { return new_array<float, Napi::Float32Array>(e, d); });
}

// distanceMaps(levels: [{ values, height, width }], batch, height, width, sigma)
//   -> Promise<{ maps: Float32Array (batch*H*W), scores: Float32Array (batch) }>
inline Napi::Value DistanceMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0)
    throw Napi::TypeError::New(env, "Expected a non-empty array for levels");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<HostPtr<float>> copies;
  std::vector<hgad::PlaneLevel> levels;
  for (uint32_t l = 0; l < a.Length(); ++l) {
    const std::string name = "levels[" + std::to_string(l) + "]";
    if (!a.Get(l).IsObject()) throw Napi::TypeError::New(env, "Expected an object for " + name);
    Napi::Object o = a.Get(l).As<Napi::Object>();
    const int64_t h = to_int(o.Get("height"), (name + ".height").c_str(), 1, 1 << 16);
    const int64_t w = to_int(o.Get("width"), (name + ".width").c_str(), 1, 1 << 16);
    auto values = copy_in<float>(
        typed<Napi::Float32Array>(o.Get("values"), napi_float32_array, (name + ".values").c_str(), batch * h * w));
    copies.push_back(values);
    levels.push_back({values->data.get(), h, w});
  }
  const int64_t H = to_int(info[2], "height", 1, 1 << 14), W = to_int(info[3], "width", 1, 1 << 14);
  const double sigma = to_double(info[4], "sigma");
  if (sigma < 0) throw Napi::RangeError::New(env, "Expected sigma >= 0");
  auto maps = host_array<float>(static_cast<size_t>(batch * H * W));
  auto scores = host_array<float>(static_cast<size_t>(batch));
  return queue_op(
      env,
      [copies, levels, batch, H, W, sigma, maps, scores] {
        for (size_t l = 0; l < levels.size(); ++l)
          hgad::check_finite(levels[l].values, batch * levels[l].h * levels[l].w,
                             ("levels[" + std::to_string(l) + "].values").c_str());
        hgad::distance_maps(levels, batch, H, W, sigma, maps->data.get(), scores->data.get());
      },
      [maps, scores](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("maps", new_array<float, Napi::Float32Array>(e, maps));
        r.Set("scores", new_array<float, Napi::Float32Array>(e, scores));
        return r;
      });
}

inline void RegisterNearestOps(Napi::Env env, Napi::Object exports) {
  exports.Set("avgPool3x3", Napi::Function::New(env, Guarded<AvgPool<hgad::avg_pool3x3, 1, 1>>));
  exports.Set("avgPool2x2", Napi::Function::New(env, Guarded<AvgPool<hgad::avg_pool2x2, 2, 2>>));
  exports.Set("nearestDistances", Napi::Function::New(env, Guarded<NearestDistances>));
  exports.Set("distanceMaps", Napi::Function::New(env, Guarded<DistanceMaps>));
}

}  // namespace hgadnode
