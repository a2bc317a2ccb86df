// Argument conversion for the binding: every failure throws a JS TypeError/RangeError that names the
// argument (the TypeScript layer validates first; this is the safety net for direct callers).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "../core/level.h"

namespace hgadnode {

inline Napi::Error input_error(Napi::Env env, const hgad::InputError& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.non_finite ? "NON_FINITE_INPUT" : "INVALID_ARGUMENT"));
  err.Set("parameter", Napi::String::New(env, e.parameter));
  if (e.index >= 0) err.Set("index", Napi::Number::New(env, static_cast<double>(e.index)));
  return err;
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
