// Asynchronous operations: each runs on the libuv pool under the model's lock. The job reads native
// copies of its inputs and writes native outputs (convert.h, HostArray); the results are copied into
// the caller's output arrays on the JS thread when the job is done, after checking that those arrays
// are still there (an ArrayBuffer transferred away meanwhile is detached: its length reads 0).
#pragma once
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/model.h"
#include "convert.h"

namespace hgadnode {

// One result array of an operation: the caller's typed array and the native buffer it receives.
struct Output {
  Napi::Value array;  // a TypedArray
  std::shared_ptr<void> owner;
  const void* data;
  size_t bytes;
  std::string name;
};

template <typename T>
Output output(const Napi::Value& array, const HostPtr<T>& h, const std::string& name) {
  return {array, h, h->data.get(), sizeof(T) * h->size, name};
}

class AsyncJob : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;

  // model: the lock to hold while the job runs (null for model-free operations).
  AsyncJob(Napi::Env env, std::shared_ptr<hgad::Model> model, std::vector<Output> outputs, Job job, Result result)
      : Napi::AsyncWorker(env, "hgad"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        job_(std::move(job)),
        result_(std::move(result)) {
    for (auto& o : outputs) outputs_.push_back({Napi::Persistent(o.array), std::move(o.owner), o.data, o.bytes, o.name});
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (model_) {
        std::lock_guard<std::mutex> lock(model_->mutex());
        job_();
      } else {
        job_();
      }
    } catch (const hgad::InputError& e) {
      input_error_ = std::make_unique<hgad::InputError>(e);
      SetError(e.message);
    } catch (const hgad::StateError& e) {
      state_error_ = std::make_unique<hgad::StateError>(e);
      SetError(e.message);
    } catch (const CodedError& e) {
      coded_ = std::make_unique<CodedError>(e);
      SetError(e.message);
    } catch (const std::bad_alloc&) {
      SetError("hgad: out of memory");
    } catch (const std::exception& e) {
      SetError(std::string("hgad native error: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      guarded(env, [&] {
        for (auto& o : outputs_) {
          Napi::TypedArray a = o.array.Value().As<Napi::TypedArray>();
          if (a.ByteLength() != o.bytes) {
            Napi::Error err = Napi::Error::New(env, "The output array " + o.name + " was detached (its ArrayBuffer transferred) "
                                                    "while the operation ran; its results are lost");
            err.Set("code", Napi::String::New(env, "INVALID_ARGUMENT"));
            err.Set("parameter", Napi::String::New(env, o.name));
            throw err;
          }
          if (o.bytes) std::memcpy(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), o.data, o.bytes);
        }
        deferred_.Resolve(result_ ? result_(env) : env.Undefined());
      });
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    if (input_error_) {
      deferred_.Reject(input_error(env, *input_error_).Value());
    } else if (state_error_) {
      deferred_.Reject(state_error(env, *state_error_).Value());
    } else if (coded_) {
      Napi::Error err = Napi::Error::New(env, coded_->message);
      err.Set("code", Napi::String::New(env, coded_->code));
      if (!coded_->parameter.empty()) err.Set("parameter", Napi::String::New(env, coded_->parameter));
      deferred_.Reject(err.Value());
    } else {
      deferred_.Reject(native_error(env, e.Message()).Value());
    }
  }

  // An error with its own code (MODEL_STATE for a model whose parameters are at fault).
  struct CodedError {
    std::string code, parameter, message;
  };

 private:
  struct Held {
    Napi::Reference<Napi::Value> array;
    std::shared_ptr<void> owner;
    const void* data;
    size_t bytes;
    std::string name;
  };
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<hgad::Model> model_;
  std::vector<Held> outputs_;
  Job job_;
  Result result_;
  std::unique_ptr<hgad::InputError> input_error_;
  std::unique_ptr<hgad::StateError> state_error_;
  std::unique_ptr<CodedError> coded_;
};

inline Napi::Promise queue_job(Napi::Env env, std::shared_ptr<hgad::Model> model, std::vector<Output> outputs,
                               AsyncJob::Job job, AsyncJob::Result result = nullptr) {
  auto* w = new AsyncJob(env, std::move(model), std::move(outputs), std::move(job), std::move(result));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace hgadnode
