// NativeModel: the JavaScript class over hgad::Model. Converts arguments, schedules the work on the
// libuv pool (workers.h) and maps native errors to JS errors. With config.device 'cuda' the operations
// run on the CUDA backend (device.h); the host Model still holds the tensors the API reads and writes.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "../core/checks.h"
#include "../core/model.h"
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
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("tensorSpecs", &NativeModel::TensorSpecs),
                        InstanceMethod("getTensor", &NativeModel::GetTensor),
                        InstanceMethod("setTensor", &NativeModel::SetTensor),
                        InstanceMethod("adamSteps", &NativeModel::AdamSteps),
                        InstanceMethod("setAdamSteps", &NativeModel::SetAdamSteps),
                        InstanceMethod("setThreads", &NativeModel::SetThreads),
                        InstanceMethod("forward", &NativeModel::Forward),
                        InstanceMethod("inverse", &NativeModel::Inverse),
                        InstanceMethod("score", &NativeModel::Score),
                        InstanceMethod("gradients", &NativeModel::Gradients),
                        StaticMethod("cudaInfo", &NativeModel::CudaInfoJs)});
  }

  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Expected a config object");
    const Napi::Object o = info[0].As<Napi::Object>();
    hgad::ModelConfig c;
    if (!o.Get("channels").IsArray()) throw Napi::TypeError::New(env, "Expected an array for channels");
    const Napi::Array ch = o.Get("channels").As<Napi::Array>();
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
    const Napi::Value dev = o.Get("device");
    if (given(dev) && !dev.IsString()) throw Napi::TypeError::New(env, "Expected 'cpu' or 'cuda' for device");
    const std::string device = given(dev) ? dev.As<Napi::String>().Utf8Value() : "cpu";
    try {
      model_ = std::make_shared<hgad::Model>(c);
    } catch (const hgad::InputError& e) {
      throw input_error(env, e);
    }
    device_ = make_device(env, device, *model_);
  }

  static Napi::Value CudaInfoJs(const Napi::CallbackInfo& info) { return cuda_info_object(info.Env()); }

 private:
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
      for (const auto& s : model_->level(l).tensors()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", "levels." + std::to_string(l) + "." + s.name);
        Napi::Array shape = Napi::Array::New(env, s.shape.size());
        for (size_t i = 0; i < s.shape.size(); ++i) shape.Set(i, Napi::Number::New(env, static_cast<double>(s.shape[i])));
        o.Set("shape", shape);
        o.Set("group", group_name(s.group));
        o.Set("level", Napi::Number::New(env, static_cast<double>(l)));
        out.Set(n++, o);
      }
    }
    return out;
  }

  Napi::Value GetTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected a tensor name");
    std::lock_guard<std::mutex> lock(model_->mutex());
    const Resolved r = resolve(env, info[0].As<Napi::String>().Utf8Value());
    pull(env, r.index);
    Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(r.spec->size));
    if (r.spec->size) std::memcpy(out.Data(), r.read(), sizeof(float) * r.spec->size);
    return out;
  }

  void SetTensorImpl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected a tensor name");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    std::lock_guard<std::mutex> lock(model_->mutex());
    const Resolved r = resolve(env, name);
    Napi::Float32Array a = typed<Napi::Float32Array>(info[1], napi_float32_array, name.c_str(), r.spec->size);
    try {
      hgad::check_finite(a.Data(), r.spec->size, name.c_str());
    } catch (const hgad::InputError& e) {
      throw input_error(env, e);
    }
    // The rest of the level stays as the device left it: bring it back first, upload it all later.
    pull(env, r.index);
    if (r.spec->size) std::memcpy(r.write(), a.Data(), sizeof(float) * r.spec->size);
    if (device_) device_->host_changed(r.index);
  }

  // Host copy of a level current before the JS thread reads or writes it (under the model's lock).
  void pull(Napi::Env env, int64_t level) {
    if (!device_) return;
    try {
      device_->pull(level);
    } catch (const std::exception& e) {
      Napi::Error err = Napi::Error::New(env, std::string("hgad native error: ") + e.what());
      err.Set("code", Napi::String::New(env, "NATIVE"));
      throw err;
    }
  }
  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    SetTensorImpl(info);
    return info.Env().Undefined();
  }

  Napi::Value AdamSteps(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    const int64_t l = to_int(info[0], "level", 0, model_->num_levels() - 1);
    return Napi::Number::New(info.Env(), static_cast<double>(model_->level(l).adam_steps()));
  }

  Napi::Value SetAdamSteps(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    const int64_t l = to_int(info[0], "level", 0, model_->num_levels() - 1);
    model_->level(l).set_adam_steps(to_int(info[1], "steps", 0, int64_t{1} << 52));
    return info.Env().Undefined();
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(model_->mutex());
    try {
      model_->set_threads(static_cast<int>(to_int(info[0], "threads", 0, 1 << 20)));
    } catch (const hgad::InputError& e) {
      throw input_error(info.Env(), e);
    }
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

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors();
    auto x = typed<Napi::Float32Array>(info[1], napi_float32_array, "x", n * b.channels);
    auto z = typed<Napi::Float32Array>(info[5], napi_float32_array, "z", n * b.channels);
    auto ld = typed<Napi::Float32Array>(info[6], napi_float32_array, "logDet", n);
    float *px = x.Data(), *pz = z.Data(), *pl = ld.Data();
    auto model = model_;
    auto device = device_;
    return queue(env, {x, z, ld}, [=]() {
      hgad::check_finite(px, n * b.channels, "x.data");
      if (device) device->forward(b.index, b.shape, px, pz, pl);
      else b.level->forward(b.shape, px, pz, pl, model->threads());
      hgad::check_output_finite(pl, n, 1, "x.data");
      hgad::check_output_finite(pz, n * b.channels, b.channels, "x.data");
    });
  }

  Napi::Value Inverse(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors() * b.channels;
    auto z = typed<Napi::Float32Array>(info[1], napi_float32_array, "z", n);
    auto x = typed<Napi::Float32Array>(info[5], napi_float32_array, "x", n);
    float *pz = z.Data(), *px = x.Data();
    auto model = model_;
    auto device = device_;
    return queue(env, {z, x}, [=]() {
      hgad::check_finite(pz, n, "z");
      if (device) device->inverse(b.index, b.shape, pz, px);
      else b.level->inverse(b.shape, pz, px, model->threads());
      hgad::check_output_finite(px, n, b.channels, "z");
    });
  }

  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors(), Y = b.level->config().classes;
    auto x = typed<Napi::Float32Array>(info[1], napi_float32_array, "x", n * b.channels);
    const bool has_cls = given(info[5]);
    Napi::Value cls_v = has_cls ? Napi::Value(typed<Napi::Int32Array>(info[5], napi_int32_array, "classIndex", b.shape.batch))
                                : env.Null();
    auto logp = typed<Napi::Float32Array>(info[6], napi_float32_array, "logp", n);
    auto nent = typed<Napi::Float32Array>(info[7], napi_float32_array, "negEntropy", n);
    auto logits = typed<Napi::Float32Array>(info[8], napi_float32_array, "classLogits", n * Y);
    auto cls_out = typed<Napi::Int32Array>(info[9], napi_int32_array, "classOut", b.shape.batch);
    const bool has_post = given(info[10]);
    Napi::Value post_v = has_post ? Napi::Value(typed<Napi::Float32Array>(info[10], napi_float32_array, "classPosterior",
                                                                          b.shape.batch * Y))
                                  : env.Null();
    float* pp = has_post ? post_v.As<Napi::Float32Array>().Data() : nullptr;
    const float* px = x.Data();
    const int32_t* pc = has_cls ? cls_v.As<Napi::Int32Array>().Data() : nullptr;
    float *pl = logp.Data(), *pn = nent.Data(), *pg = logits.Data();
    int32_t* po = cls_out.Data();
    auto model = model_;
    auto device = device_;
    return queue(env, {x, cls_v, logp, nent, logits, cls_out, post_v}, [=]() {
      hgad::check_finite(px, n * b.channels, "x.data");
      if (device) device->score(b.index, b.shape, px, pc, pl, pn, pg, po, pp);
      else b.level->score(b.shape, px, pc, pl, pn, pg, po, pp, model->threads());
      hgad::check_output_finite(pl, n, 1, "x.data");
      hgad::check_output_finite(pn, n, 1, "x.data");
    });
  }

  // (level, x, batch, height, width, labels, perVector, weights[5], dx | null, lr | null)
  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Batch b = batch(info);
    const int64_t n = b.shape.vectors();
    auto x = typed<Napi::Float32Array>(info[1], napi_float32_array, "x", n * b.channels);
    const bool per_vector = info[6].ToBoolean();
    auto labels = typed<Napi::Int32Array>(info[5], napi_int32_array, "labels", per_vector ? n : b.shape.batch);
    auto weights = typed<Napi::Float64Array>(info[7], napi_float64_array, "weights", hgad::kNumTerms);
    const bool has_dx = given(info[8]);
    Napi::Value dx_v = has_dx ? Napi::Value(typed<Napi::Float32Array>(info[8], napi_float32_array, "inputGrad", n * b.channels))
                              : env.Null();
    const bool step = info[9].IsNumber();
    const double lr = step ? info[9].As<Napi::Number>().DoubleValue() : 0.0;
    if (step && !(lr >= 0 && lr < 1e3)) throw Napi::RangeError::New(env, "Expected a learning rate in [0, 1000) for lr");
    float w5[hgad::kNumTerms];
    for (int i = 0; i < hgad::kNumTerms; ++i) w5[i] = static_cast<float>(weights.Data()[i]);
    const float* px = x.Data();
    const int32_t* pl = labels.Data();
    float* pdx = has_dx ? dx_v.As<Napi::Float32Array>().Data() : nullptr;
    auto model = model_;
    auto device = device_;
    auto losses = std::make_shared<hgad::Losses>();
    return queue(
        env, {x, labels, dx_v},
        [=]() {
          hgad::check_finite(px, n * b.channels, "x.data");
          *losses = device ? device->gradients(b.index, b.shape, px, {pl, per_vector}, w5, pdx)
                           : b.level->gradients(b.shape, px, {pl, per_vector}, w5, pdx, model->threads());
          if (!std::isfinite(losses->total)) {
            hgad::InputError e;
            e.parameter = "x.data";
            e.message = "The loss is not finite for this batch (features far outside the training range?); "
                        "no update was made";
            throw e;
          }
          if (step) {
            if (device) device->adam_step(b.index, lr);
            else b.level->adam_step(lr, model->threads());
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

  // Runs job on the libuv pool under the model's lock; keep holds the JS arrays it reads or writes.
  Napi::Value queue(Napi::Env env, std::vector<Napi::Value> keep, ModelWorker::Job job,
                    ModelWorker::Result result = nullptr) {
    auto* w = new ModelWorker(env, model_, std::move(keep), std::move(job), std::move(result));
    w->Queue();
    return w->promise();
  }

  std::shared_ptr<hgad::Model> model_;
  // Declared after model_: destroyed first, while the host Model it mirrors still exists. Jobs hold
  // their own references, so a queued operation keeps both alive.
  std::shared_ptr<DeviceBackend> device_;
};

}  // namespace hgadnode
