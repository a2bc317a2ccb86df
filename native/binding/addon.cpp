// The addon's entry point: the NativeModel class (native_model.h), the image-level operations
// (image_ops.h), the feature operations (feature_ops.h), the nearest-neighbour reference's operations
// (nearest_ops.h) and a benchmark helper. The TypeScript layer (lib/) is the public API.
#include <napi.h>

#include "../core/gemm_peak.h"
#include "convert.h"
#include "feature_ops.h"
#include "image_ops.h"
#include "native_model.h"
#include "nearest_ops.h"

namespace hgadnode {

// Benchmark helper: GFLOP/s of dnnl_sgemm on M x K times (N x K)^T tiles, one per thread, for
// `seconds`. Blocks the calling thread; meant for benchmarks, not for serving.
Napi::Value MeasureSgemm(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
  const int64_t M = to_int(info[0], "M", 1, 1 << 16), N = to_int(info[1], "N", 1, 1 << 16),
                K = to_int(info[2], "K", 1, 1 << 16);
  const int threads = static_cast<int>(to_int(info[3], "threads", 1, 1024));
  if (!info[4].IsNumber()) throw Napi::TypeError::New(info.Env(), "Expected a number for seconds");
  const double seconds = info[4].As<Napi::Number>().DoubleValue();
  return Napi::Number::New(info.Env(), hgad::measure_sgemm_gflops(M, N, K, threads, seconds));
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", NativeModel::Define(env));
  exports.Set("measureSgemm", Napi::Function::New(env, MeasureSgemm));
  RegisterImageOps(env, exports);
  RegisterFeatureOps(env, exports);
  RegisterNearestOps(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

NODE_API_MODULE(hgad, Init)

}  // namespace hgadnode
