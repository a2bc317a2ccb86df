#include "state_checks.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "gemm.h"
#include "level_detail.h"

namespace hgad {

namespace {

// As JavaScript prints numbers where it matters (NaN, Infinity), so messages read the same as the API's.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

[[noreturn]] void fail(const std::string& tensor, const std::string& message) {
  throw StateError{tensor, message};
}

void check_values(const float* x, int64_t n, double limit, const std::string& tensor) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (!std::isfinite(v)) fail(tensor, "element " + std::to_string(i) + " is " + number(v) + ", not finite");
    if (std::fabs(v) > limit)
      fail(tensor, "element " + std::to_string(i) + " is " + number(v) + ", outside [-" + number(limit) + ", " +
                       number(limit) + "] (a damaged or diverged model)");
  }
}

// max |R R^T - I| of a C x C row-major matrix, with the GEMM library (C^3 flops; 0.5 s at C = 1024).
double orthogonality_error(const float* R, int64_t C, std::vector<float>& product, int threads) {
  product.assign(static_cast<size_t>(C * C), 0.0f);
  level_detail::use_threads(threads);
  gemm(false, true, C, C, C, 1.0f, R, C, R, C, 0.0f, product.data(), C);
  double worst = 0;
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const double e = std::fabs(static_cast<double>(product[i * C + j]) - (i == j ? 1.0 : 0.0));
      if (!(e <= worst)) worst = e;  // NaN propagates as a failure
    }
  return worst;
}

}  // namespace

double adam_moment_bound(double beta1, double beta2) {
  // m_t = (1-b1) sum_k b1^k g_{t-k}, v_t = (1-b2) sum_k b2^k g_{t-k}^2. Cauchy-Schwarz with weights
  // b2^k: m_t^2 <= (1-b1)^2 (sum_k (b1^2/b2)^k) (sum_k b2^k g^2) <= (1-b1)^2 / (1-b2) / (1 - b1^2/b2) v_t.
  const double r = beta1 * beta1 / beta2;
  return (1 - beta1) * (1 - beta1) / (1 - beta2) / (1 - r);
}

void check_model_state(Model& model, int threads) {
  std::vector<float> product;
  for (int64_t l = 0; l < model.num_levels(); ++l) {
    const Level<float>& lv = model.level(l);
    const std::string prefix = "levels." + std::to_string(l) + ".";
    for (const TensorSpec& s : lv.tensors()) {
      const std::string name = prefix + s.name;
      const float* x = lv.data(s);
      if (s.group != kGroupFixed) {
        check_values(x, s.size, kMaxParameterMagnitude, name);
        continue;
      }
      check_values(x, s.size, 1.0 + kRotationTolerance, name);
      const double err = orthogonality_error(x, s.shape[0], product, threads);
      if (!(err <= kRotationTolerance))
        fail(name, "is not orthogonal: max |R R^T - I| is " + number(err) + ", above " + number(kRotationTolerance));
    }
    const AdamHyper& h = lv.adam_hyper();
    // Slack for float32 rounding of the moments' updates.
    const double bound = adam_moment_bound(h.beta1, h.beta2) * 1.01;
    const bool fresh = lv.adam_steps() == 0;
    for (const TensorSpec& s : lv.tensors()) {
      if (s.group == kGroupFixed) continue;
      const std::string mname = "optimizer.levels." + std::to_string(l) + ".m." + s.name;
      const std::string vname = "optimizer.levels." + std::to_string(l) + ".v." + s.name;
      const float* m = lv.adam_m(s);
      const float* v = lv.adam_v(s);
      for (int64_t i = 0; i < s.size; ++i) {
        const double mi = m[i], vi = v[i];
        if (!std::isfinite(mi)) fail(mname, "element " + std::to_string(i) + " is " + number(mi) + ", not finite");
        if (!std::isfinite(vi) || vi < 0)
          fail(vname, "element " + std::to_string(i) + " is " + number(vi) +
                          ": Adam's second moment is a mean of squares, finite and >= 0");
        if (fresh && (mi != 0 || vi != 0))
          fail(mi != 0 ? mname : vname, "element " + std::to_string(i) + " is not 0 although the optimizer has taken no step "
                                        "(metadata.optimizer.steps is 0 for level " + std::to_string(l) + ")");
        // 1e-30: a squared gradient can underflow float32 while the gradient itself does not.
        if (mi * mi > bound * vi + 1e-30)
          fail(mname, "element " + std::to_string(i) + " is " + number(mi) + " but the second moment is " + number(vi) +
                          ": Adam's updates keep m^2 <= " + number(bound) + " v");
      }
    }
  }
}

}  // namespace hgad
