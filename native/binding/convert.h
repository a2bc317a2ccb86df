// Argument conversion for the binding: every failure throws a JS TypeError/RangeError that names the
// argument (the TypeScript layer validates first; this is the safety net for direct callers).
#pragma once
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "../core/level.h"
#include "../core/state_checks.h"

namespace hgadnode {

inline Napi::Error input_error(Napi::Env env, const hgad::InputError& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.non_finite ? "NON_FINITE_INPUT" : "INVALID_ARGUMENT"));
  err.Set("parameter", Napi::String::New(env, e.parameter));
  if (e.index >= 0) err.Set("index", Napi::Number::New(env, static_cast<double>(e.index)));
  return err;
}

inline Napi::Error native_error(Napi::Env env, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, "NATIVE"));
  return err;
}

// A model tensor whose values cannot be right (state_checks.h): code MODEL_STATE, parameter = tensor.
inline Napi::Error state_error(Napi::Env env, const hgad::StateError& e) {
  Napi::Error err = Napi::Error::New(env, "tensor \"" + e.tensor + "\" " + e.message);
  err.Set("code", Napi::String::New(env, "MODEL_STATE"));
  err.Set("parameter", Napi::String::New(env, e.tensor));
  return err;
}

// Every entry point of the addon runs through this: a C++ exception that escaped into N-API would
// terminate the process, so each becomes a JS error with a code (out of memory included).
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const hgad::InputError& e) {
    throw input_error(env, e);
  } catch (const hgad::StateError& e) {
    throw state_error(env, e);
  } catch (const std::bad_alloc&) {
    throw native_error(env, "hgad: out of memory");
  } catch (const std::exception& e) {
    throw native_error(env, std::string("hgad native error: ") + e.what());
  }
}

// A native copy of a caller's array. Work on the libuv pool reads these, never the caller's memory:
// a JS ArrayBuffer can be transferred (postMessage, structuredClone) and freed while a job runs.
template <typename T>
struct HostArray {
  std::unique_ptr<T[]> data;
  size_t size = 0;
  explicit HostArray(size_t n) : data(new T[n > 0 ? n : 1]), size(n) {}
};

template <typename T>
using HostPtr = std::shared_ptr<HostArray<T>>;

template <typename T>
HostPtr<T> host_array(size_t n) {
  return std::make_shared<HostArray<T>>(n);
}

template <typename T, typename A>
HostPtr<T> copy_in(const A& a) {
  auto h = host_array<T>(a.ElementLength());
  if (h->size) std::memcpy(h->data.get(), a.Data(), sizeof(T) * h->size);
  return h;
}

inline int64_t to_int(const Napi::Value& v, const char* name, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string("Expected a number for ") + name);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw Napi::RangeError::New(v.Env(), std::string("Expected an integer in [") + std::to_string(lo) + ", " +
                                             std::to_string(hi) + "] for " + name);
  return static_cast<int64_t>(d);
}

template <typename A>
A typed(const Napi::Value& v, napi_typedarray_type type, const char* name, int64_t length) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(v.Env(), std::string("Expected a ") +
                                            (type == napi_float32_array ? "Float32Array" : type == napi_int32_array ? "Int32Array" : "Float64Array") +
                                            " for " + name);
  A a = v.As<A>();
  if (length >= 0 && static_cast<int64_t>(a.ElementLength()) != length)
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + std::to_string(length) + " elements in " + name +
                                             " but received " + std::to_string(a.ElementLength()));
  return a;
}

}  // namespace hgadnode
