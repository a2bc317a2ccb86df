// Device selection for NativeModel: the CPU (hgad::Level) or the CUDA backend (native/cuda), chosen by
// the config's `device`. Builds without a CUDA toolkit (binding.gyp, HGAD_CUDA=OFF) compile this
// without CUDA: cuda_info() then says so, and asking for 'cuda' is an INVALID_ARGUMENT error.
#pragma once
#include <napi.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "../core/level.h"
#include "../core/model.h"

#if defined(HGAD_WITH_CUDA)
#include "../cuda/backend.h"
#endif

namespace hgadnode {

struct CudaInfo {
  bool compiled = false;   // this addon carries the CUDA backend
  bool available = false;  // and a device can be used now
  int devices = 0;
  std::string device_name, reason, gemm;
};

inline CudaInfo cuda_info() {
  CudaInfo info;
#if defined(HGAD_WITH_CUDA)
  const hgad::cuda::Status s = hgad::cuda::status();
  info.compiled = true;
  info.available = s.available;
  info.devices = s.devices;
  info.device_name = s.device_name;
  info.reason = s.reason;
  info.gemm = s.gemm;
#else
  info.reason = "this build of hgad has no CUDA backend (built without a CUDA toolkit, or with HGAD_CUDA=OFF)";
#endif
  return info;
}

inline Napi::Object cuda_info_object(Napi::Env env) {
  const CudaInfo i = cuda_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", Napi::Boolean::New(env, i.compiled));
  o.Set("available", Napi::Boolean::New(env, i.available));
  o.Set("devices", Napi::Number::New(env, i.devices));
  o.Set("deviceName", Napi::String::New(env, i.device_name));
  o.Set("reason", Napi::String::New(env, i.reason));
  o.Set("gemm", Napi::String::New(env, i.gemm));
  return o;
}

#if defined(HGAD_WITH_CUDA)
using DeviceBackend = hgad::cuda::Backend;
#else
// Never constructed (make_device refuses 'cuda' first); it only lets native_model.h compile the same.
class DeviceBackend {
 public:
  [[noreturn]] static void none() { throw std::logic_error("hgad: no CUDA backend in this build"); }
  void forward(int64_t, const hgad::FeatureShape&, const float*, float*, float*) { none(); }
  void inverse(int64_t, const hgad::FeatureShape&, const float*, float*) { none(); }
  void score(int64_t, const hgad::FeatureShape&, const float*, const int32_t*, float*, float*, float*, int32_t*,
             float*, bool) {
    none();
  }
  hgad::Losses gradients(int64_t, const hgad::FeatureShape&, const float*, const hgad::Labels&, const float*,
                         float*) {
    none();
  }
  void adam_step(int64_t, double) { none(); }
  void pull(int64_t) { none(); }
  void host_changed(int64_t) { none(); }
  void set_tile_rows(int64_t) { none(); }
};
#endif

// The backend for config.device ("cpu": null). Errors name config.device: INVALID_ARGUMENT when this
// build or machine cannot run CUDA at all, NATIVE when starting it failed (out of memory, driver).
inline std::shared_ptr<DeviceBackend> make_device(Napi::Env env, const std::string& device, hgad::Model& model) {
  auto bad = [&](const std::string& message, const char* code) {
    Napi::Error err = Napi::Error::New(env, message);
    err.Set("code", Napi::String::New(env, code));
    err.Set("parameter", Napi::String::New(env, "config.device"));
    return err;
  };
  if (device == "cpu") return nullptr;
  if (device != "cuda")
    throw bad("Expected 'cpu' or 'cuda' for config.device but received '" + device + "'", "INVALID_ARGUMENT");
  const CudaInfo info = cuda_info();
  if (!info.available) throw bad("config.device is 'cuda' but CUDA is unavailable: " + info.reason, "INVALID_ARGUMENT");
#if defined(HGAD_WITH_CUDA)
  try {
    return std::make_shared<DeviceBackend>(model);
  } catch (const std::exception& e) {
    throw bad(std::string("config.device is 'cuda' but the CUDA backend could not start: ") + e.what(), "NATIVE");
  }
#else
  (void)model;
  return nullptr;
#endif
}

}  // namespace hgadnode
