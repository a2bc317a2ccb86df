// NativeModel: the JavaScript class over hgad::Model. Converts arguments, schedules the work on the
// libuv pool (workers.h) and maps native errors to JS errors. With config.device 'cuda' the operations
// run on the CUDA backend (device.h); the host Model still holds the tensors the API reads and writes.
// Every method runs inside guarded() (convert.h): no C++ exception reaches N-API.
#pragma once
#include <napi.h>

#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/checks.h"
#include "../core/cpu_features.h"
#include "../core/gemm.h"
#include "../core/model.h"
#include "../core/state_checks.h"
#include "convert.h"
#include "device.h"
#include "workers.h"

namespace hgadnode {

inline const char* group_name(hgad::ParamGroup g) {
  switch (g) {
    case hgad::kGroupFlow: return "flow";
    case hgad::kGroupCentres: return "centres";
    case hgad::kGroupLogits: return "logits";
    default: return "fixed";
  }
}

inline bool given(const Napi::Value& v) { return !v.IsNull() && !v.IsUndefined(); }

inline int64_t get_int(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  return to_int(o.Get(key), key, lo, hi);
}

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(
        env, "NativeModel",
        {InstanceMethod("tensorSpecs", &NativeModel::Guard<&NativeModel::TensorSpecs>),
         InstanceMethod("getTensor", &NativeModel::Guard<&NativeModel::GetTensor>),
         InstanceMethod("setTensor", &NativeModel::Guard<&NativeModel::SetTensor>),
         InstanceMethod("writeTensorBytes", &NativeModel::Guard<&NativeModel::WriteTensorBytes>),
         InstanceMethod("finishLoad", &NativeModel::Guard<&NativeModel::FinishLoad>),
         InstanceMethod("adamSteps", &NativeModel::Guard<&NativeModel::AdamSteps>),
         InstanceMethod("setAdamSteps", &NativeModel::Guard<&NativeModel::SetAdamSteps>),
         InstanceMethod("setThreads", &NativeModel::Guard<&NativeModel::SetThreads>),
         InstanceMethod("setPrecision", &NativeModel::Guard<&NativeModel::SetPrecision>),
         InstanceMethod("setTrainable", &NativeModel::Guard<&NativeModel::SetTrainable>),
         InstanceMethod("forward", &NativeModel::Guard<&NativeModel::Forward>),
         InstanceMethod("inverse", &NativeModel::Guard<&NativeModel::Inverse>),
         InstanceMethod("score", &NativeModel::Guard<&NativeModel::Score>),
         InstanceMethod("gradients", &NativeModel::Guard<&NativeModel::Gradients>),
         StaticMethod("cudaInfo", &NativeModel::CudaInfoJs),
         StaticMethod("cpuFeatures", &NativeModel::CpuFeaturesJs),
         StaticMethod("layout", &NativeModel::LayoutJs),
         StaticMethod("build", &NativeModel::BuildJs)});
    // Per environment (worker threads load the addon again): build() constructs through it.
    env.SetInstanceData<AddonData>(new AddonData{Napi::Persistent(f)});
    return f;
  }

  // new NativeModel(config): config as parsed by parse_config; config.init false leaves every tensor
  // zero (for loading). new NativeModel(config, external) adopts a model built by build().
  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    guarded(info.Env(), [&] { construct(info); });
  }

  // What the CPU offers for bf16 GEMMs, and which kernels use it in this build.
  static Napi::Value CpuFeaturesJs(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] {
      Napi::Env env = info.Env();
      const hgad::CpuFeatures& f = hgad::cpu_features();
      Napi::Object o = Napi::Object::New(env);
      o.Set("avx512Bf16", Napi::Boolean::New(env, f.avx512_bf16));
      o.Set("amxBf16", Napi::Boolean::New(env, f.amx_bf16));
      o.Set("bf16", Napi::Boolean::New(env, hgad::bf16_supported()));
      o.Set("gemm", Napi::String::New(env, hgad::gemm_backend()));
      return Napi::Value(o);
    });
  }

  static Napi::Value CudaInfoJs(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] { return Napi::Value(cuda_info_object(info.Env())); });
  }

  // layout(config, tensors = true) -> { tensors: [{ name, shape, group, level }], bytes, physicalBytes }:
  // what a model with this config holds and about how much memory it needs, without building it
  // (tensors false: an empty list, for estimates alone).
  static Napi::Value LayoutJs(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const hgad::ModelConfig c = parse_config(env, info[0]);
      const bool with_tensors = !(info.Length() > 1 && info[1].IsBoolean() && !info[1].As<Napi::Boolean>().Value());
      Napi::Object out = Napi::Object::New(env);
      Napi::Array tensors = Napi::Array::New(env);
      uint32_t n = 0;
      for (size_t l = 0; with_tensors && l < c.channels.size(); ++l) {
        hgad::LevelConfig lc;
        lc.channels = c.channels[l];
        lc.pos_dim = c.pos_dim;
        lc.blocks = c.blocks;
        lc.classes = c.classes;
        lc.centres = c.centres;
        const hgad::LevelLayout layout = hgad::level_layout(lc);
        for (const auto& s : layout.specs) tensors.Set(n++, spec_object(env, s, static_cast<int64_t>(l)));
      }
      out.Set("tensors", tensors);
      out.Set("bytes", Napi::Number::New(env, hgad::model_footprint_bytes(c)));
      out.Set("physicalBytes", Napi::Number::New(env, hgad::physical_memory_bytes()));
      return out;
    });
  }

  // build(config) -> Promise<NativeModel>: makes the model on the libuv pool (a big one takes a while
  // to allocate, and its random rotations O(C^3) to build): initialised as new NativeModel(config)
  // would, or with config.init false every tensor zero, ready for writeTensorBytes / finishLoad.
  static Napi::Value BuildJs(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const hgad::ModelConfig c = parse_config(env, info[0]);
      hgad::validate(c);
      auto built = std::make_shared<std::shared_ptr<hgad::Model>>();
      Napi::Object config = info[0].As<Napi::Object>();
      const bool initialise = initialised(config);
      auto config_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(config));
      return queue_job(
          env, nullptr, {}, [c, built, initialise] { *built = std::make_shared<hgad::Model>(c, initialise); },
          [built, config_ref](Napi::Env e) -> Napi::Value {
            auto* holder = new std::shared_ptr<hgad::Model>(*built);
            Napi::External<std::shared_ptr<hgad::Model>> ext = Napi::External<std::shared_ptr<hgad::Model>>::New(
                e, holder, [](Napi::Env, std::shared_ptr<hgad::Model>* p) { delete p; });
            return e.GetInstanceData<AddonData>()->model_ctor.New({config_ref->Value(), ext});
          });
    });
  }

 private:
  struct AddonData {
    Napi::FunctionReference model_ctor;
  };

  template <Napi::Value (NativeModel::*M)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] { return (this->*M)(info); });
  }

  static hgad::ModelConfig parse_config(Napi::Env env, const Napi::Value& v) {
    if (!v.IsObject()) throw Napi::TypeError::New(env, "Expected a config object");
    const Napi::Object o = v.As<Napi::Object>();
    hgad::ModelConfig c;
    if (!o.Get("channels").IsArray()) throw Napi::TypeError::New(env, "Expected an array for channels");
    const Napi::Array ch = o.Get("channels").As<Napi::Array>();
    if (ch.Length() > 4096) throw Napi::RangeError::New(env, "Expected at most 4096 levels");
    for (uint32_t i = 0; i < ch.Length(); ++i) c.channels.push_back(to_int(ch.Get(i), "channels", 0, 1 << 20));
    c.classes = get_int(o, "classes", 0, 1 << 20);
    c.centres = get_int(o, "centres", 0, 1 << 20);
    c.blocks = get_int(o, "blocks", 0, 1 << 20);
    c.pos_dim = get_int(o, "posDim", 0, 1 << 20);
    c.seed = static_cast<uint64_t>(get_int(o, "seed", 0, (int64_t{1} << 53) - 1));
    c.threads = static_cast<int>(get_int(o, "threads", 0, 1 << 20));
    if (!o.Get("clamp").IsNumber()) throw Napi::TypeError::New(env, "Expected a number for clamp");
    c.clamp = o.Get("clamp").As<Napi::Number>().DoubleValue();
    const Napi::Value pr = o.Get("prior");
    if (given(pr)) {
      const std::string p = pr.IsString() ? pr.As<Napi::String>().Utf8Value() : "";
      if (p == "hgad") c.prior = hgad::kPriorHgad;
      else if (p == "single-gaussian") c.prior = hgad::kPriorSingleGaussian;
      else if (p == "inter-only") c.prior = hgad::kPriorInterOnly;
      else throw Napi::TypeError::New(env, "Expected 'hgad', 'single-gaussian' or 'inter-only' for prior");
    }
    return c;
  }

  static Napi::Object spec_object(Napi::Env env, const hgad::TensorSpec& s, int64_t l) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", "levels." + std::to_string(l) + "." + s.name);
    Napi::Array shape = Napi::Array::New(env, s.shape.size());
    for (size_t i = 0; i < s.shape.size(); ++i) shape.Set(i, Napi::Number::New(env, static_cast<double>(s.shape[i])));
    o.Set("shape", shape);
    o.Set("group", group_name(s.group));
    o.Set("level", Napi::Number::New(env, static_cast<double>(l)));
    return o;
  }

  static bool initialised(const Napi::Object& config) {
    const Napi::Value init = config.Get("init");
    return !given(init) || init.ToBoolean().Value();
  }

  void construct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const hgad::ModelConfig c = parse_config(env, info[0]);
    const Napi::Object o = info[0].As<Napi::Object>();
    const Napi::Value dev = o.Get("device");
    if (given(dev) && !dev.IsString()) throw Napi::TypeError::New(env, "Expected 'cpu' or 'cuda' for device");
    const std::string device = given(dev) ? dev.As<Napi::String>().Utf8Value() : "cpu";
    const bool initialise = initialised(o);
    if (info.Length() > 1 && info[1].IsExternal()) model_ = *info[1].As<Napi::External<std::shared_ptr<hgad::Model>>>().Data();
    else model_ = std::make_shared<hgad::Model>(c, initialise);
    loading_ = !initialise;
    device_ = make_device(env, device, *model_);
  }

  // "levels.L.rest", "optimizer.levels.L.m.rest", "optimizer.levels.L.v.rest" or "grad.levels.L.rest".
  struct Resolved {
    enum Kind { kParam, kM, kV, kGrad };
    hgad::Level<float>* level;
    const hgad::TensorSpec* spec;
    Kind kind;
    int64_t index;
    // Reads leave the level's derived state (position cache, packed weights) valid; writes do not.
    const float* read() const {
      const hgad::Level<float>& lv = *level;
      return kind == kParam ? lv.data(*spec) : write_target();
    }
    float* write() const { return kind == kParam ? level->data(*spec) : write_target(); }

   private:
    float* write_target() const {
      return kind == kM ? level->adam_m(*spec) : kind == kV ? level->adam_v(*spec) : level->grad(*spec);
    }
  };
  Resolved resolve(Napi::Env env, const std::string& full) {
    std::string name = full;
    Resolved::Kind kind = Resolved::kParam;
    auto strip = [&](const char* prefix) {
      if (name.rfind(prefix, 0) != 0) return false;
      name = name.substr(std::strlen(prefix));
      return true;
    };
    if (strip("optimizer.")) kind = Resolved::kM;
    else if (strip("grad.")) kind = Resolved::kGrad;
    if (!strip("levels.")) throw Napi::Error::New(env, "Unknown tensor " + full);
    const size_t dot = name.find('.');
    int64_t l = -1;
    try {
      l = std::stoll(name.substr(0, dot));
    } catch (...) {
      throw Napi::Error::New(env, "Unknown tensor " + full);
    }
    if (dot == std::string::npos || l < 0 || l >= model_->num_levels())
      throw Napi::Error::New(env, "Unknown tensor " + full);
    name = name.substr(dot + 1);
    if (kind == Resolved::kM) {
      if (strip("m.")) kind = Resolved::kM;
      else if (strip("v.")) kind = Resolved::kV;
      else throw Napi::Error::New(env, "Unknown tensor " + full);
    }
    hgad::Level<float>& lv = model_->level(l);
    const hgad::TensorSpec* s = lv.find(name);
    if (!s || (kind != Resolved::kParam && s->group == hgad::kGroupFixed))
      throw Napi::Error::New(env, "Unknown tensor " + full);
    return {&lv, s, kind, l};
  }

  Napi::Value TensorSpecs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(model_->mutex());
    Napi::Array out = Napi::Array::New(env);
    uint32_t n = 0;
    for (int64_t l = 0; l < model_->num_levels(); ++l) {
      for (const auto& s : model_->level(l).tensors()) out.Set(n++, spec_object(env, s, l));
    }
    return out;
  }

  Napi::Value GetTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected a tensor name");
    std::lock_guard<std::mutex> lock(model_->mutex());
    const Resolved r = resolve(env, info[0].As<Napi::String>().Utf8Value());
    pull(r.index);
    Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(r.spec->size));
    if (r.spec->size) std::memcpy(out.Data(), r.read(), sizeof(float) * r.spec->size);
    return out;
  }

  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected a tensor name");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    std::lock_guard<std::mutex> lock(model_->mutex());
    const Resolved r = resolve(env, name);
    Napi::Float32Array a = typed<Napi::Float32Array>(info[1], napi_float32_array, name.c_str(), r.spec->size);
    hgad::check_finite(a.Data(), r.spec->size, name.c_str());
    if (r.kind == Resolved::kV) {
      // Adam's second moment is a mean of squares: a negative one turns the next step into NaN.
      for (int64_t i = 0; i < r.spec->size; ++i)
        if (a.Data()[i] < 0) {
          hgad::InputError e;
          e.parameter = name;
          e.index = i;
          e.message = "Expected values >= 0 in " + name + " (Adam's second moment) but element " + std::to_string(i) +
                      " is " + std::to_string(a.Data()[i]);
          throw e;
        }
    }
    // The rest of the level stays as the device left it: bring it back first, upload it all later.
    pull(r.index);
    if (r.spec->size) std::memcpy(r.write(), a.Data(), sizeof(float) * r.spec->size);
    if (device_) device_->host_changed(r.index);
    return env.Undefined();
  }

  // writeTensorBytes(name, byteOffset, bytes: Uint8Array): raw little-endian float32 bytes of a tensor
  // (or of its Adam moments) straight from a model file, chunk by chunk, without the checks of
  // setTensor: finishLoad() checks everything once all are written. Only between build() and
  // finishLoad().
  Napi::Value WriteTensorBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!loading_) throw Napi::Error::New(env, "writeTensorBytes is only for a model being loaded");
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected a tensor name");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    std::lock_guard<std::mutex> lock(model_->mutex());
    const Resolved r = resolve(env, name);
    if (r.kind == Resolved::kGrad) throw Napi::Error::New(env, "Unknown tensor " + name);
    const int64_t bytes = r.spec->size * static_cast<int64_t>(sizeof(float));
    const int64_t offset = to_int(info[1], "byteOffset", 0, bytes);
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "Expected a Uint8Array for bytes");
    Napi::Uint8Array chunk = info[2].As<Napi::Uint8Array>();
    if (static_cast<int64_t>(chunk.ElementLength()) > bytes - offset)
      throw Napi::RangeError::New(env, "Expected at most " + std::to_string(bytes - offset) + " bytes for " + name +
                                           " at byte " + std::to_string(offset));
    if (chunk.ElementLength()) std::memcpy(reinterpret_cast<uint8_t*>(r.write()) + offset, chunk.Data(), chunk.ElementLength());
    return env.Undefined();
  }

  // finishLoad() -> Promise: checks every tensor of the model written by writeTensorBytes
  // (state_checks.h: ranges, orthogonal rotations, Adam's moments against the step counts set
  // before) on the libuv pool; rejects with code MODEL_STATE naming the first bad tensor.
  Napi::Value FinishLoad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!loading_) throw Napi::Error::New(env, "finishLoad is only for a model being loaded");
    auto model = model_;
    auto device = device_;
    auto self = Napi::Persistent(Value());
    auto self_ref = std::make_shared<Napi::ObjectReference>(std::move(self));
    return queue_job(
        env, model_, {},
        [model, device] {
          hgad::check_model_state(*model, model->threads());
          if (device)
            for (int64_t l = 0; l < model->num_levels(); ++l) device->host_changed(l);
        },
        [this, self_ref](Napi::Env e) -> Napi::Value {
          loading_ = false;
          return e.Undefined();
        });
  }

  // Host copy of a level current before the JS thread reads or writes it (under the model's lock).
  void pull(int64_t level) {
    if (device_) device_->pull(level);
  }

  // Step counts are stored as JSON numbers and read back up to this (model-file.ts MAX_STEPS).
  static constexpr int64_t kMaxAdamSteps = int64_t{1} << 52;

  Napi::Value AdamSteps(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    const int64_t l = to_int(info[0], "level", 0, model_->num_levels() - 1);
    return Napi::Number::New(info.Env(), static_cast<double>(model_->level(l).adam_steps()));
  }

  Napi::Value SetAdamSteps(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    const int64_t l = to_int(info[0], "level", 0, model_->num_levels() - 1);
    model_->level(l).set_adam_steps(to_int(info[1], "steps", 0, kMaxAdamSteps));
    return info.Env().Undefined();
  }

  // (bf16 for inference, bf16 for training): CPU levels only; the CUDA backend runs float throughout.
  Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    if (!info[0].IsBoolean() || !info[1].IsBoolean())
      throw Napi::TypeError::New(info.Env(), "Expected two booleans (bf16 inference, bf16 training)");
    const bool inference = info[0].As<Napi::Boolean>(), training = info[1].As<Napi::Boolean>();
    if ((inference || training) && device_)
      throw Napi::Error::New(info.Env(), "precision 'bf16' runs on the CPU only; this model runs on CUDA");
    model_->set_precision(inference, training);
    return info.Env().Undefined();
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    model_->set_threads(static_cast<int>(to_int(info[0], "threads", 0, 1 << 20)));
    return info.Env().Undefined();
  }

  // (level, flow, firstClass): which parameters the level's optimiser steps update (Level::set_trainable).
  // The CUDA backend trains everything: a model with frozen parts trains on the CPU.
  Napi::Value SetTrainable(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    const int64_t l = to_int(info[0], "level", 0, model_->num_levels() - 1);
    hgad::Level<float>& lv = model_->level(l);
    const bool flow = info[1].ToBoolean();
    const int64_t first = to_int(info[2], "firstClass", 0, lv.config().classes);
    if (device_ && (!flow || first > 0))
      throw Napi::Error::New(info.Env(), "Freezing parameters is supported on the CPU only (load the model with device 'cpu')");
    lv.set_trainable(flow, first);
    return info.Env().Undefined();
  }

  // (level, data, batch, height, width) -> the level, its shape and the checked input array.
  struct Batch {
    hgad::Level<float>* level;
    hgad::FeatureShape shape;
    int64_t channels;
    int64_t index;
  };
  Batch batch(const Napi::CallbackInfo& info) {
    const int64_t l = to_int(info[0], "level", 0, model_->num_levels() - 1);
    hgad::Level<float>& lv = model_->level(l);
    hgad::FeatureShape fs{to_int(info[2], "batch", 1, 1 << 24), to_int(info[3], "height", 1, 1 << 16),
                          to_int(info[4], "width", 1, 1 << 16)};
    if (fs.vectors() > (int64_t{1} << 40) / lv.config().channels)
      throw Napi::RangeError::New(info.Env(), "Expected batch * height * width * channels below 2^40");
    return {&lv, fs, lv.config().channels, l};
  }

  // After a non-finite output: when the model gives non-finite outputs even for all-zero features of
  // the same height and width, its parameters are at fault (a damaged or diverged model), not the
  // caller's features. probe() runs the operation on such a batch of one image and says whether all
  // its outputs are finite.
  static void blame(const hgad::InputError& e, int64_t level, const std::function<bool()>& probe) {
    bool model_fault = false;
    try {
      model_fault = !probe();
    } catch (const hgad::InputError&) {
      model_fault = true;
    }
    if (!model_fault) throw e;
    throw AsyncJob::CodedError{"MODEL_STATE", "model",
                               "The model's parameters give non-finite outputs at level " + std::to_string(level) +
                                   " even for all-zero features: the model is damaged or has diverged (the values in " +
                                   e.parameter + " are not the cause)"};
  }

  static bool all_finite(const float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return false;
    return true;
  }

  // Where a level's operations run: the CUDA backend or the CPU level.
  struct Runner {
    std::shared_ptr<hgad::Model> model;
    std::shared_ptr<DeviceBackend> device;
    hgad::Level<float>* level;
    int64_t index;
    void forward(const hgad::FeatureShape& fs, const float* x, float* z, float* ld) const {
      if (device) device->forward(index, fs, x, z, ld);
      else level->forward(fs, x, z, ld, model->threads());
    }
    void inverse(const hgad::FeatureShape& fs, const float* z, float* x) const {
      if (device) device->inverse(index, fs, z, x);
      else level->inverse(fs, z, x, model->threads());
    }
    void score(const hgad::FeatureShape& fs, const float* x, const int32_t* cls, float* logp, float* nent,
               float* logits, int32_t* cls_out, float* post, bool with_logdet = true) const {
      if (device) device->score(index, fs, x, cls, logp, nent, logits, cls_out, post, with_logdet);
      else level->score(fs, x, cls, logp, nent, logits, cls_out, post, model->threads(), with_logdet);
    }
    // Scoring one all-zero image of this height and width gives finite logp and negative entropy.
    bool zero_score_finite(const hgad::FeatureShape& fs) const {
      const hgad::FeatureShape one{1, fs.height, fs.width};
      const int64_t n = one.vectors(), C = level->config().channels, Y = level->config().classes;
      std::vector<float> x(n * C, 0.0f), logp(n), nent(n), logits(n * Y);
      int32_t cls = 0;
      score(one, x.data(), nullptr, logp.data(), nent.data(), logits.data(), &cls, nullptr);
      return all_finite(logp.data(), n) && all_finite(nent.data(), n);
    }
  };
  Runner runner(const Batch& b) const { return {model_, device_, b.level, b.index}; }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors();
    auto x = copy_in<float>(typed<Napi::Float32Array>(info[1], napi_float32_array, "x", n * b.channels));
    Napi::Value zv = typed<Napi::Float32Array>(info[5], napi_float32_array, "z", n * b.channels);
    Napi::Value ldv = typed<Napi::Float32Array>(info[6], napi_float32_array, "logDet", n);
    auto z = host_array<float>(n * b.channels);
    auto ld = host_array<float>(n);
    const Runner run = runner(b);
    return queue_job(env, model_, {output(zv, z, "z"), output(ldv, ld, "logDet")}, [=]() {
      const float* px = x->data.get();
      hgad::check_finite(px, n * b.channels, "x.data");
      run.forward(b.shape, px, z->data.get(), ld->data.get());
      try {
        hgad::check_output_finite(ld->data.get(), n, 1, "x.data");
        hgad::check_output_finite(z->data.get(), n * b.channels, b.channels, "x.data");
      } catch (const hgad::InputError& e) {
        blame(e, b.index, [&] {
          const hgad::FeatureShape one{1, b.shape.height, b.shape.width};
          const int64_t m = one.vectors();
          std::vector<float> x0(m * b.channels, 0.0f), z0(m * b.channels), l0(m);
          run.forward(one, x0.data(), z0.data(), l0.data());
          return all_finite(z0.data(), m * b.channels) && all_finite(l0.data(), m);
        });
      }
    });
  }

  Napi::Value Inverse(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors() * b.channels;
    auto z = copy_in<float>(typed<Napi::Float32Array>(info[1], napi_float32_array, "z", n));
    Napi::Value xv = typed<Napi::Float32Array>(info[5], napi_float32_array, "x", n);
    auto x = host_array<float>(n);
    const Runner run = runner(b);
    return queue_job(env, model_, {output(xv, x, "x")}, [=]() {
      hgad::check_finite(z->data.get(), n, "z");
      run.inverse(b.shape, z->data.get(), x->data.get());
      try {
        hgad::check_output_finite(x->data.get(), n, b.channels, "z");
      } catch (const hgad::InputError& e) {
        blame(e, b.index, [&] {
          const hgad::FeatureShape one{1, b.shape.height, b.shape.width};
          const int64_t m = one.vectors() * b.channels;
          std::vector<float> z0(m, 0.0f), x0(m);
          run.inverse(one, z0.data(), x0.data());
          return all_finite(x0.data(), m);
        });
      }
    });
  }

  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors(), Y = b.level->config().classes;
    auto x = copy_in<float>(typed<Napi::Float32Array>(info[1], napi_float32_array, "x", n * b.channels));
    const bool has_cls = given(info[5]);
    HostPtr<int32_t> cls;
    if (has_cls) cls = copy_in<int32_t>(typed<Napi::Int32Array>(info[5], napi_int32_array, "classIndex", b.shape.batch));
    std::vector<Output> outs;
    auto logp = host_array<float>(n);
    auto nent = host_array<float>(n);
    auto logits = host_array<float>(n * Y);
    auto cls_out = host_array<int32_t>(b.shape.batch);
    outs.push_back(output(typed<Napi::Float32Array>(info[6], napi_float32_array, "logp", n), logp, "logp"));
    outs.push_back(output(typed<Napi::Float32Array>(info[7], napi_float32_array, "negEntropy", n), nent, "negEntropy"));
    outs.push_back(output(typed<Napi::Float32Array>(info[8], napi_float32_array, "classLogits", n * Y), logits, "classLogits"));
    outs.push_back(output(typed<Napi::Int32Array>(info[9], napi_int32_array, "classOut", b.shape.batch), cls_out, "classOut"));
    HostPtr<float> post;
    if (given(info[10])) {
      post = host_array<float>(b.shape.batch * Y);
      outs.push_back(output(typed<Napi::Float32Array>(info[10], napi_float32_array, "classPosterior", b.shape.batch * Y),
                            post, "classPosterior"));
    }
    // (..., classPosterior | null, withLogDet: false for the latent density alone)
    if (given(info[11]) && !info[11].IsBoolean()) throw Napi::TypeError::New(env, "Expected a boolean for withLogDet");
    const bool with_logdet = !given(info[11]) || info[11].As<Napi::Boolean>().Value();
    const Runner run = runner(b);
    return queue_job(env, model_, std::move(outs), [=]() {
      const float* px = x->data.get();
      hgad::check_finite(px, n * b.channels, "x.data");
      run.score(b.shape, px, cls ? cls->data.get() : nullptr, logp->data.get(), nent->data.get(), logits->data.get(),
                cls_out->data.get(), post ? post->data.get() : nullptr, with_logdet);
      try {
        hgad::check_output_finite(logp->data.get(), n, 1, "x.data");
        hgad::check_output_finite(nent->data.get(), n, 1, "x.data");
      } catch (const hgad::InputError& e) {
        blame(e, b.index, [&] { return run.zero_score_finite(b.shape); });
      }
    });
  }

  // (level, x, batch, height, width, labels, perVector, weights[5], dx | null, lr | null)
  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors();
    auto x = copy_in<float>(typed<Napi::Float32Array>(info[1], napi_float32_array, "x", n * b.channels));
    const bool per_vector = info[6].ToBoolean();
    auto labels = copy_in<int32_t>(
        typed<Napi::Int32Array>(info[5], napi_int32_array, "labels", per_vector ? n : b.shape.batch));
    auto weights = typed<Napi::Float64Array>(info[7], napi_float64_array, "weights", hgad::kNumTerms);
    std::vector<Output> outs;
    HostPtr<float> dx;
    if (given(info[8])) {
      dx = host_array<float>(n * b.channels);
      outs.push_back(output(typed<Napi::Float32Array>(info[8], napi_float32_array, "inputGrad", n * b.channels), dx,
                            "inputGrad"));
    }
    // info[10]: the log-dets of latent input (x holds the flow's outputs z; the flow must be frozen).
    HostPtr<float> latent_ld;
    if (given(info[10])) {
      latent_ld = copy_in<float>(typed<Napi::Float32Array>(info[10], napi_float32_array, "logDet", n));
      if (b.level->flow_trainable() || dx || device_)
        throw Napi::Error::New(env, "Training on latents needs a frozen flow (setTrainable), no input gradient and the CPU");
    }
    const bool step = info[9].IsNumber();
    const double lr = step ? info[9].As<Napi::Number>().DoubleValue() : 0.0;
    if (step && !(lr >= 0 && lr < 1e3)) throw Napi::RangeError::New(env, "Expected a learning rate in [0, 1000) for lr");
    std::array<float, hgad::kNumTerms> w5;
    for (int i = 0; i < hgad::kNumTerms; ++i) w5[i] = static_cast<float>(weights.Data()[i]);
    const Runner run = runner(b);
    auto losses = std::make_shared<hgad::Losses>();
    return queue_job(
        env, model_, std::move(outs),
        [=]() {
          if (step && b.level->adam_steps() >= kMaxAdamSteps)
            throw AsyncJob::CodedError{"MODEL_STATE", "model",
                                       "The optimizer of level " + std::to_string(b.index) + " has taken " +
                                           std::to_string(b.level->adam_steps()) +
                                           " steps, the most a model file can record (2^52): no update was made"};
          const float* px = x->data.get();
          hgad::check_finite(px, n * b.channels, "x.data");
          const hgad::Labels lab{labels->data.get(), per_vector};
          float* pdx = dx ? dx->data.get() : nullptr;
          const float* pld = latent_ld ? latent_ld->data.get() : nullptr;
          if (pld) hgad::check_finite(pld, n, "logDet");
          *losses = run.device ? run.device->gradients(b.index, b.shape, px, lab, w5.data(), pdx)
                               : b.level->gradients(b.shape, px, lab, w5.data(), pdx, run.model->threads(), pld);
          if (!std::isfinite(losses->total)) {
            hgad::InputError e;
            e.parameter = "x.data";
            e.message = "The loss is not finite for this batch (features far outside the training range?); "
                        "no update was made";
            blame(e, b.index, [&] { return run.zero_score_finite(b.shape); });
          }
          if (step) {
            if (run.device) run.device->adam_step(b.index, lr);
            else b.level->adam_step(lr, run.model->threads());
          }
        },
        [losses](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          const char* names[] = {"Lg", "Lmi", "Le", "Lgi", "Lz"};
          for (int i = 0; i < hgad::kNumTerms; ++i) o.Set(names[i], Napi::Number::New(e, losses->term[i]));
          o.Set("loss", Napi::Number::New(e, losses->total));
          return o;
        });
  }

  std::shared_ptr<hgad::Model> model_;
  // Between build() (or a config with init: false) and finishLoad(): tensors may be written raw.
  bool loading_ = false;
  // Declared after model_: destroyed first, while the host Model it mirrors still exists. Jobs hold
  // their own references, so a queued operation keeps both alive.
  std::shared_ptr<DeviceBackend> device_;
};

}  // namespace hgadnode
