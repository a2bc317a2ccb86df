// The nearest-neighbour reference's operations (core/nearest.h) as promise-returning functions, in the
// manner of image_ops.h: arguments checked and outputs allocated on the JS thread, the work on the
// libuv pool reading the JS arrays in place.
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

// avgPool3x3(data, batch, height, width, channels) -> Promise<Float32Array> (same shape, NHWC)
inline Napi::Value AvgPool3x3(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  const int64_t h = to_int(info[2], "height", 1, 1 << 16), w = to_int(info[3], "width", 1, 1 << 16);
  const int64_t c = to_int(info[4], "channels", 1, 1 << 20);
  auto data = typed<Napi::Float32Array>(info[0], napi_float32_array, "data", batch * h * w * c);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(batch * h * w * c));
  const float* in = data.Data();
  float* op = out.Data();
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return queue_op(
      env, {data, out},
      [in, op, batch, h, w, c] {
        hgad::check_finite(in, batch * h * w * c, "data");
        hgad::avg_pool3x3(in, batch, h, w, c, op);
      },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

// nearestDistances(queries, count, bank, bankCount, dim, into?) -> Promise<Float32Array (count)>:
// a new array, or `into` with each element replaced by the smaller of it and the new distance.
inline Napi::Value NearestDistances(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t count = to_int(info[1], "count", 1, int64_t(1) << 40);
  const int64_t bank_count = to_int(info[3], "bankCount", 1, int64_t(1) << 40);
  const int64_t dim = to_int(info[4], "dim", 1, 1 << 20);
  auto queries = typed<Napi::Float32Array>(info[0], napi_float32_array, "queries", count * dim);
  auto bank = typed<Napi::Float32Array>(info[2], napi_float32_array, "bank", bank_count * dim);
  const bool accumulate = info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull();
  Napi::Float32Array out = accumulate ? typed<Napi::Float32Array>(info[5], napi_float32_array, "into", count)
                                      : Napi::Float32Array::New(env, static_cast<size_t>(count));
  const float* q = queries.Data();
  const float* b = bank.Data();
  float* d = out.Data();
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return queue_op(
      env, {queries, bank, out},
      [q, b, d, count, bank_count, dim, accumulate] {
        hgad::check_finite(q, count * dim, "queries");
        hgad::check_finite(b, bank_count * dim, "bank");
        if (accumulate) hgad::check_finite(d, count, "into");
        hgad::nearest_distances(q, count, b, bank_count, dim, d, accumulate);
      },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

// distanceMaps(levels: [{ values, height, width }], batch, height, width, sigma)
//   -> Promise<{ maps: Float32Array (batch*H*W), scores: Float32Array (batch) }>
inline Napi::Value DistanceMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0)
    throw Napi::TypeError::New(env, "Expected a non-empty array for levels");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<Napi::Value> keep;
  std::vector<hgad::PlaneLevel> levels;
  for (uint32_t l = 0; l < a.Length(); ++l) {
    const std::string name = "levels[" + std::to_string(l) + "]";
    if (!a.Get(l).IsObject()) throw Napi::TypeError::New(env, "Expected an object for " + name);
    Napi::Object o = a.Get(l).As<Napi::Object>();
    const int64_t h = to_int(o.Get("height"), (name + ".height").c_str(), 1, 1 << 16);
    const int64_t w = to_int(o.Get("width"), (name + ".width").c_str(), 1, 1 << 16);
    auto values = typed<Napi::Float32Array>(o.Get("values"), napi_float32_array, (name + ".values").c_str(), batch * h * w);
    keep.push_back(values);
    levels.push_back({values.Data(), h, w});
  }
  const int64_t H = to_int(info[2], "height", 1, 1 << 14), W = to_int(info[3], "width", 1, 1 << 14);
  const double sigma = to_double(info[4], "sigma");
  if (sigma < 0) throw Napi::RangeError::New(env, "Expected sigma >= 0");
  Napi::Float32Array maps = Napi::Float32Array::New(env, static_cast<size_t>(batch * H * W));
  Napi::Float32Array scores = Napi::Float32Array::New(env, static_cast<size_t>(batch));
  keep.push_back(maps);
  keep.push_back(scores);
  float* mp = maps.Data();
  float* sp = scores.Data();
  auto maps_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(maps));
  auto scores_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(scores));
  return queue_op(
      env, keep,
      [levels, batch, H, W, sigma, mp, sp] {
        for (size_t l = 0; l < levels.size(); ++l)
          hgad::check_finite(levels[l].values, batch * levels[l].h * levels[l].w,
                             ("levels[" + std::to_string(l) + "].values").c_str());
        hgad::distance_maps(levels, batch, H, W, sigma, mp, sp);
      },
      [maps_ref, scores_ref](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("maps", maps_ref->Value());
        r.Set("scores", scores_ref->Value());
        return r;
      });
}

inline void RegisterNearestOps(Napi::Env env, Napi::Object exports) {
  exports.Set("avgPool3x3", Napi::Function::New(env, AvgPool3x3));
  exports.Set("nearestDistances", Napi::Function::New(env, NearestDistances));
  exports.Set("distanceMaps", Napi::Function::New(env, DistanceMaps));
}

}  // namespace hgadnode
