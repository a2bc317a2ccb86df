// Asynchronous operations: each runs on the libuv pool under the model's lock, reads its inputs in
// place (the JS arrays are kept alive by references) and writes into output arrays allocated on the
// JS thread beforehand, so no feature data is copied.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "../core/model.h"
#include "convert.h"

namespace hgadnode {

class ModelWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;

  ModelWorker(Napi::Env env, std::shared_ptr<hgad::Model> model, std::vector<Napi::Value> keep, Job job,
              Result result)
      : Napi::AsyncWorker(env, "hgad"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        job_(std::move(job)),
        result_(std::move(result)) {
    for (auto& v : keep)
      if (v.IsObject()) keep_.push_back(Napi::Persistent(v));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lock(model_->mutex());
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
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
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
  std::shared_ptr<hgad::Model> model_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  Job job_;
  Result result_;
  std::unique_ptr<hgad::InputError> input_error_;
};

}  // namespace hgadnode
