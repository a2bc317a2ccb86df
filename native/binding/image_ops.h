// Image-level numerics for the pipeline (anomaly maps, heatmap colours, metrics) as promise-returning
// functions: arguments are checked and copied on the JS thread, the work runs on the libuv pool over
// those native copies (a caller's ArrayBuffer may be transferred away meanwhile), and the result
// arrays are made on the JS thread when it is done.
#pragma once
#include <napi.h>

#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/checks.h"
#include "../core/colormap.h"
#include "../core/maps.h"
#include "../core/metrics.h"
#include "convert.h"
#include "workers.h"

namespace hgadnode {

// Model-free jobs (workers.h, without a lock).
inline Napi::Promise queue_op(Napi::Env env, AsyncJob::Job job, AsyncJob::Result result) {
  return queue_job(env, nullptr, {}, std::move(job), std::move(result));
}

template <typename T, typename A>
A new_array(Napi::Env env, const HostPtr<T>& h) {
  A a = A::New(env, h->size);
  if (h->size) std::memcpy(a.Data(), h->data.get(), sizeof(T) * h->size);
  return a;
}

inline double to_double(const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "Expected a number for " + name);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw Napi::RangeError::New(v.Env(), "Expected a finite number for " + name);
  return d;
}

inline std::vector<double> to_doubles(const Napi::Value& v, const std::string& name, size_t length) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != length)
    throw Napi::TypeError::New(v.Env(), "Expected an array of " + std::to_string(length) + " numbers for " + name);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out(length);
  for (uint32_t i = 0; i < length; ++i) out[i] = to_double(a.Get(i), name + "[" + std::to_string(i) + "]");
  return out;
}

inline Napi::Uint8Array to_bytes(const Napi::Value& v, const std::string& name, int64_t length) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(v.Env(), "Expected a Uint8Array for " + name);
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  if (length >= 0 && static_cast<int64_t>(a.ElementLength()) != length)
    throw Napi::RangeError::New(v.Env(), "Expected " + std::to_string(length) + " elements in " + name +
                                             " but received " + std::to_string(a.ElementLength()));
  return a;
}

// levels: [{ logp: Float32Array, negEntropy: Float32Array, height, width }], each batch*height*width,
// copied: the MapLevel pointers point into `copies`, which the job must keep.
struct LevelCopies {
  std::vector<HostPtr<float>> arrays;
  std::vector<hgad::MapLevel> levels;
};
inline std::shared_ptr<LevelCopies> to_levels(const Napi::Value& v, int64_t batch) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() == 0)
    throw Napi::TypeError::New(v.Env(), "Expected a non-empty array for levels");
  Napi::Array a = v.As<Napi::Array>();
  auto out = std::make_shared<LevelCopies>();
  for (uint32_t l = 0; l < a.Length(); ++l) {
    const std::string name = "levels[" + std::to_string(l) + "]";
    if (!a.Get(l).IsObject()) throw Napi::TypeError::New(v.Env(), "Expected an object for " + name);
    Napi::Object o = a.Get(l).As<Napi::Object>();
    const int64_t h = to_int(o.Get("height"), (name + ".height").c_str(), 1, 1 << 16);
    const int64_t w = to_int(o.Get("width"), (name + ".width").c_str(), 1, 1 << 16);
    auto logp = copy_in<float>(
        typed<Napi::Float32Array>(o.Get("logp"), napi_float32_array, (name + ".logp").c_str(), batch * h * w));
    auto nent = copy_in<float>(typed<Napi::Float32Array>(o.Get("negEntropy"), napi_float32_array,
                                                         (name + ".negEntropy").c_str(), batch * h * w));
    out->arrays.push_back(logp);
    out->arrays.push_back(nent);
    out->levels.push_back({logp->data.get(), nent->data.get(), h, w});
  }
  return out;
}

inline Napi::Array number_array(Napi::Env env, const std::vector<double>& x) {
  Napi::Array a = Napi::Array::New(env, x.size());
  for (uint32_t i = 0; i < x.size(); ++i) a.Set(i, Napi::Number::New(env, x[i]));
  return a;
}

// mapLevelMaxima(levels, batch) -> Promise<{ logp: number[], nent: number[] }>
inline Napi::Value MapLevelMaxima(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  auto in = to_levels(info[0], batch);
  auto out = std::make_shared<std::pair<std::vector<double>, std::vector<double>>>();
  out->first.resize(in->levels.size());
  out->second.resize(in->levels.size());
  return queue_op(
      env,
      [in, batch, out] {
        hgad::check_levels_finite(in->levels, batch);
        hgad::map_level_maxima(in->levels, batch, out->first.data(), out->second.data());
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("logp", number_array(e, out->first));
        r.Set("nent", number_array(e, out->second));
        return r;
      });
}

// mapSumMaxima(levels, batch, logpShift, nentShift, height, width) -> Promise<{ logp, nent }>
inline Napi::Value MapSumMaxima(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  auto in = to_levels(info[0], batch);
  hgad::MapConstants c;
  c.logp_shift = to_doubles(info[2], "logpShift", in->levels.size());
  c.nent_shift = to_doubles(info[3], "nentShift", in->levels.size());
  const int64_t H = to_int(info[4], "height", 1, 1 << 14), W = to_int(info[5], "width", 1, 1 << 14);
  auto out = std::make_shared<std::array<double, 2>>();
  return queue_op(
      env,
      [in, batch, c, H, W, out] {
        hgad::check_levels_finite(in->levels, batch);
        hgad::map_sum_maxima(in->levels, batch, c, H, W, &(*out)[0], &(*out)[1]);
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("logp", Napi::Number::New(e, (*out)[0]));
        r.Set("nent", Napi::Number::New(e, (*out)[1]));
        return r;
      });
}

// anomalyMaps(levels, batch, logpShift, nentShift, logpTop, nentTop, height, width, sigma, logpOnly?)
//   -> Promise<{ maps: Float32Array (batch*H*W), scores: Float32Array (batch) }>
inline Napi::Value AnomalyMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t batch = to_int(info[1], "batch", 1, 1 << 24);
  auto in = to_levels(info[0], batch);
  hgad::MapConstants c;
  c.logp_shift = to_doubles(info[2], "logpShift", in->levels.size());
  c.nent_shift = to_doubles(info[3], "nentShift", in->levels.size());
  c.logp_top = to_double(info[4], "logpTop");
  c.nent_top = to_double(info[5], "nentTop");
  const int64_t H = to_int(info[6], "height", 1, 1 << 14), W = to_int(info[7], "width", 1, 1 << 14);
  const double sigma = to_double(info[8], "sigma");
  if (sigma < 0) throw Napi::RangeError::New(env, "Expected sigma >= 0");
  c.logp_only = info.Length() > 9 && info[9].IsBoolean() && info[9].As<Napi::Boolean>().Value();
  auto maps = host_array<float>(static_cast<size_t>(batch * H * W));
  auto scores = host_array<float>(static_cast<size_t>(batch));
  return queue_op(
      env,
      [in, batch, c, H, W, sigma, maps, scores] {
        hgad::check_levels_finite(in->levels, batch);
        hgad::anomaly_maps(in->levels, batch, c, H, W, sigma, maps->data.get(), scores->data.get());
      },
      [maps, scores](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("maps", new_array<float, Napi::Float32Array>(e, maps));
        r.Set("scores", new_array<float, Napi::Float32Array>(e, scores));
        return r;
      });
}

// colorize(map, height, width, min, max) -> Promise<Uint8Array (H*W*3, RGB)>
inline Napi::Value Colorize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t H = to_int(info[1], "height", 1, 1 << 16), W = to_int(info[2], "width", 1, 1 << 16);
  auto map = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "map", H * W));
  const double lo = to_double(info[3], "range.min"), hi = to_double(info[4], "range.max");
  if (!(hi > lo)) throw Napi::RangeError::New(env, "Expected range.max > range.min");
  auto rgb = host_array<uint8_t>(static_cast<size_t>(H * W * 3));
  return queue_op(
      env,
      [map, rgb, H, W, lo, hi] {
        hgad::check_finite(map->data.get(), H * W, "map");
        hgad::colorize(map->data.get(), H * W, lo, hi, rgb->data.get());
      },
      [rgb](Napi::Env e) -> Napi::Value { return new_array<uint8_t, Napi::Uint8Array>(e, rgb); });
}

// rocAuc(scores, labels) -> Promise<number>; f1Max(scores, labels) -> Promise<{ f1, threshold }>
inline Napi::Value RankingMetric(const Napi::CallbackInfo& info, bool f1) {
  auto scores = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "scores", -1));
  const int64_t n = static_cast<int64_t>(scores->size);
  auto labels = copy_in<uint8_t>(to_bytes(info[1], "labels", n));
  auto out = std::make_shared<hgad::F1Max>(hgad::F1Max{0, 0});
  return queue_op(
      info.Env(),
      [scores, labels, n, f1, out] {
        hgad::check_finite(scores->data.get(), n, "scores");
        if (f1)
          *out = hgad::f1_max(scores->data.get(), labels->data.get(), n);
        else
          out->f1 = hgad::roc_auc(scores->data.get(), labels->data.get(), n);
      },
      [out, f1](Napi::Env e) -> Napi::Value {
        if (!f1) return Napi::Number::New(e, out->f1);
        Napi::Object r = Napi::Object::New(e);
        r.Set("f1", Napi::Number::New(e, out->f1));
        r.Set("threshold", Napi::Number::New(e, out->threshold));
        return r;
      });
}

inline Napi::Value RocAuc(const Napi::CallbackInfo& info) { return RankingMetric(info, false); }
inline Napi::Value F1MaxOp(const Napi::CallbackInfo& info) { return RankingMetric(info, true); }

// aupro(maps, masks, count, height, width, maxFpr) -> Promise<number>
inline Napi::Value Aupro(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t count = to_int(info[2], "count", 1, int64_t(1) << 40);
  const int64_t H = to_int(info[3], "height", 1, 1 << 16), W = to_int(info[4], "width", 1, 1 << 16);
  auto maps = copy_in<float>(typed<Napi::Float32Array>(info[0], napi_float32_array, "maps", count * H * W));
  auto masks = copy_in<uint8_t>(to_bytes(info[1], "masks", count * H * W));
  const double max_fpr = to_double(info[5], "maxFpr");
  if (!(max_fpr > 0 && max_fpr <= 1)) throw Napi::RangeError::New(env, "Expected maxFpr in (0, 1]");
  auto out = std::make_shared<double>(0);
  return queue_op(
      env,
      [maps, masks, count, H, W, max_fpr, out] {
        hgad::check_finite(maps->data.get(), count * H * W, "maps");
        *out = hgad::aupro(maps->data.get(), masks->data.get(), count, H, W, max_fpr);
      },
      [out](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *out); });
}

// Each operation through guarded() (convert.h): no C++ exception reaches N-API.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&] { return F(info); });
}

inline void RegisterImageOps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapLevelMaxima", Napi::Function::New(env, Guarded<MapLevelMaxima>));
  exports.Set("mapSumMaxima", Napi::Function::New(env, Guarded<MapSumMaxima>));
  exports.Set("anomalyMaps", Napi::Function::New(env, Guarded<AnomalyMaps>));
  exports.Set("colorize", Napi::Function::New(env, Guarded<Colorize>));
  exports.Set("rocAuc", Napi::Function::New(env, Guarded<RocAuc>));
  exports.Set("f1Max", Napi::Function::New(env, Guarded<F1MaxOp>));
  exports.Set("aupro", Napi::Function::New(env, Guarded<Aupro>));
}

}  // namespace hgadnode
