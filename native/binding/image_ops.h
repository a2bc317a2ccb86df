// Image-level numerics for the pipeline (anomaly maps, heatmap colours, metrics) as promise-returning
// functions: arguments are checked and outputs allocated on the JS thread, the work runs on the libuv
// pool reading the JS arrays in place (kept alive by references).
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

namespace hgadnode {

class OpWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;

  OpWorker(Napi::Env env, const std::vector<Napi::Value>& keep, Job job, Result result)
      : Napi::AsyncWorker(env, "hgad"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)),
        result_(std::move(result)) {
    for (const auto& v : keep)
      if (v.IsObject()) keep_.push_back(Napi::Persistent(v));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      job_();
    } catch (const hgad::InputError& e) {
      input_error_ = std::make_unique<hgad::InputError>(e);
      SetError(e.message);
    } catch (const std::bad_alloc&) {
      SetError("hgad: out of memory");
    } catch (const std::exception& e) {
      SetError(std::string("hgad native error: ") + e.what());
    }
  }

  void OnOK() override {
    try {
      deferred_.Resolve(result_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    if (input_error_) {
      deferred_.Reject(input_error(Env(), *input_error_).Value());
    } else {
      Napi::Error err = Napi::Error::New(Env(), e.Message());
      err.Set("code", Napi::String::New(Env(), "NATIVE"));
      deferred_.Reject(err.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  Job job_;
  Result result_;
  std::unique_ptr<hgad::InputError> input_error_;
};

inline Napi::Promise queue_op(Napi::Env env, const std::vector<Napi::Value>& keep, OpWorker::Job job,
                              OpWorker::Result result) {
  auto* w = new OpWorker(env, keep, std::move(job), std::move(result));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
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

// levels: [{ logp: Float32Array, negEntropy: Float32Array, height, width }], each batch*height*width.
inline std::vector<hgad::MapLevel> to_levels(const Napi::Value& v, int64_t batch, std::vector<Napi::Value>& keep) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() == 0)
    throw Napi::TypeError::New(v.Env(), "Expected a non-empty array for levels");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<hgad::MapLevel> levels;
  for (uint32_t l = 0; l < a.Length(); ++l) {
    const std::string name = "levels[" + std::to_string(l) + "]";
    if (!a.Get(l).IsObject()) throw Napi::TypeError::New(v.Env(), "Expected an object for " + name);
    Napi::Object o = a.Get(l).As<Napi::Object>();
    const int64_t h = to_int(o.Get("height"), (name + ".height").c_str(), 1, 1 << 16);
    const int64_t w = to_int(o.Get("width"), (name + ".width").c_str(), 1, 1 << 16);
    auto logp = typed<Napi::Float32Array>(o.Get("logp"), napi_float32_array, (name + ".logp").c_str(), batch * h * w);
    auto nent = typed<Napi::Float32Array>(o.Get("negEntropy"), napi_float32_array, (name + ".negEntropy").c_str(),
                                          batch * h * w);
    keep.push_back(logp);
    keep.push_back(nent);
    levels.push_back({logp.Data(), nent.Data(), h, w});
  }
  return levels;
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
  std::vector<Napi::Value> keep;
  auto levels = to_levels(info[0], batch, keep);
  auto out = std::make_shared<std::pair<std::vector<double>, std::vector<double>>>();
  out->first.resize(levels.size());
  out->second.resize(levels.size());
  return queue_op(
      env, keep,
      [levels, batch, out] {
        hgad::check_levels_finite(levels, batch);
        hgad::map_level_maxima(levels, batch, out->first.data(), out->second.data());
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
  std::vector<Napi::Value> keep;
  auto levels = to_levels(info[0], batch, keep);
  hgad::MapConstants c;
  c.logp_shift = to_doubles(info[2], "logpShift", levels.size());
  c.nent_shift = to_doubles(info[3], "nentShift", levels.size());
  const int64_t H = to_int(info[4], "height", 1, 1 << 14), W = to_int(info[5], "width", 1, 1 << 14);
  auto out = std::make_shared<std::array<double, 2>>();
  return queue_op(
      env, keep,
      [levels, batch, c, H, W, out] {
        hgad::check_levels_finite(levels, batch);
        hgad::map_sum_maxima(levels, batch, c, H, W, &(*out)[0], &(*out)[1]);
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
  std::vector<Napi::Value> keep;
  auto levels = to_levels(info[0], batch, keep);
  hgad::MapConstants c;
  c.logp_shift = to_doubles(info[2], "logpShift", levels.size());
  c.nent_shift = to_doubles(info[3], "nentShift", levels.size());
  c.logp_top = to_double(info[4], "logpTop");
  c.nent_top = to_double(info[5], "nentTop");
  const int64_t H = to_int(info[6], "height", 1, 1 << 14), W = to_int(info[7], "width", 1, 1 << 14);
  const double sigma = to_double(info[8], "sigma");
  if (sigma < 0) throw Napi::RangeError::New(env, "Expected sigma >= 0");
  c.logp_only = info.Length() > 9 && info[9].IsBoolean() && info[9].As<Napi::Boolean>().Value();
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
      [levels, batch, c, H, W, sigma, mp, sp] {
        hgad::check_levels_finite(levels, batch);
        hgad::anomaly_maps(levels, batch, c, H, W, sigma, mp, sp);
      },
      [maps_ref, scores_ref](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("maps", maps_ref->Value());
        r.Set("scores", scores_ref->Value());
        return r;
      });
}

// colorize(map, height, width, min, max) -> Promise<Uint8Array (H*W*3, RGB)>
inline Napi::Value Colorize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t H = to_int(info[1], "height", 1, 1 << 16), W = to_int(info[2], "width", 1, 1 << 16);
  auto map = typed<Napi::Float32Array>(info[0], napi_float32_array, "map", H * W);
  const double lo = to_double(info[3], "range.min"), hi = to_double(info[4], "range.max");
  if (!(hi > lo)) throw Napi::RangeError::New(env, "Expected range.max > range.min");
  Napi::Uint8Array rgb = Napi::Uint8Array::New(env, static_cast<size_t>(H * W * 3));
  const float* m = map.Data();
  uint8_t* out = rgb.Data();
  auto rgb_ref = std::make_shared<Napi::Reference<Napi::Uint8Array>>(Napi::Persistent(rgb));
  return queue_op(
      env, {map, rgb},
      [m, out, H, W, lo, hi] {
        hgad::check_finite(m, H * W, "map");
        hgad::colorize(m, H * W, lo, hi, out);
      },
      [rgb_ref](Napi::Env) -> Napi::Value { return rgb_ref->Value(); });
}

// rocAuc(scores, labels) -> Promise<number>; f1Max(scores, labels) -> Promise<{ f1, threshold }>
inline Napi::Value RankingMetric(const Napi::CallbackInfo& info, bool f1) {
  Napi::Env env = info.Env();
  auto scores = typed<Napi::Float32Array>(info[0], napi_float32_array, "scores", -1);
  const int64_t n = static_cast<int64_t>(scores.ElementLength());
  auto labels = to_bytes(info[1], "labels", n);
  const float* s = scores.Data();
  const uint8_t* y = labels.Data();
  auto out = std::make_shared<hgad::F1Max>(hgad::F1Max{0, 0});
  return queue_op(
      env, {scores, labels},
      [s, y, n, f1, out] {
        hgad::check_finite(s, n, "scores");
        if (f1)
          *out = hgad::f1_max(s, y, n);
        else
          out->f1 = hgad::roc_auc(s, y, n);
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
  auto maps = typed<Napi::Float32Array>(info[0], napi_float32_array, "maps", count * H * W);
  auto masks = to_bytes(info[1], "masks", count * H * W);
  const double max_fpr = to_double(info[5], "maxFpr");
  if (!(max_fpr > 0 && max_fpr <= 1)) throw Napi::RangeError::New(env, "Expected maxFpr in (0, 1]");
  const float* m = maps.Data();
  const uint8_t* k = masks.Data();
  auto out = std::make_shared<double>(0);
  return queue_op(
      env, {maps, masks},
      [m, k, count, H, W, max_fpr, out] {
        hgad::check_finite(m, count * H * W, "maps");
        *out = hgad::aupro(m, k, count, H, W, max_fpr);
      },
      [out](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *out); });
}

inline void RegisterImageOps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapLevelMaxima", Napi::Function::New(env, MapLevelMaxima));
  exports.Set("mapSumMaxima", Napi::Function::New(env, MapSumMaxima));
  exports.Set("anomalyMaps", Napi::Function::New(env, AnomalyMaps));
  exports.Set("colorize", Napi::Function::New(env, Colorize));
  exports.Set("rocAuc", Napi::Function::New(env, RocAuc));
  exports.Set("f1Max", Napi::Function::New(env, F1MaxOp));
  exports.Set("aupro", Napi::Function::New(env, Aupro));
}

}  // namespace hgadnode
