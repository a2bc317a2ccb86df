// Scoring outputs against a direct evaluation of the mixture density.
#include <cmath>

#include "check.h"
#include "fixtures.h"

using hgad::Level;

HGAD_TEST(score_matches_direct_mixture_density) {
  Level<double> lv(hgadtest::small_config(), 4);
  hgadtest::jitter(lv, 6, 0.5);
  const hgad::FeatureShape fs{2, 2, 3};
  const int64_t N = fs.vectors(), C = 7, Y = 3, M = 3;
  std::vector<double> x = hgadtest::random_vector<double>(N * C, 12), z(N * C), ld(N);
  lv.forward(fs, x.data(), z.data(), ld.data(), 1);
  std::vector<double> logp(N), nent(N), logits(N * Y), latent(N), nent2(N), logits2(N * Y);
  std::vector<int32_t> cls = {2, 0}, out(2);
  lv.score(fs, x.data(), cls.data(), logp.data(), nent.data(), logits.data(), out.data(), nullptr, 2);
  lv.score(fs, x.data(), cls.data(), latent.data(), nent2.data(), logits2.data(), out.data(), nullptr, 2, false);
  CHECK(nent2 == nent && logits2 == logits, "the density does not change class logits or negative entropy");
  const double* mu = lv.data(*lv.find("mu"));
  const double* delta = lv.data(*lv.find("delta"));
  const double* phi = lv.data(*lv.find("phi"));
  const double* psi = lv.data(*lv.find("psi"));
  double worst = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y = cls[i / 6];
    double psum = 0, zpsi = 0;
    for (int64_t m = 0; m < M; ++m) zpsi += std::exp(psi[y * M + m]);
    double density = 0;
    for (int64_t m = 0; m < M; ++m) {
      double d2 = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double centre = mu[y * C + c] + (m > 0 ? delta[(y * (M - 1) + m - 1) * C + c] : 0.0);
        d2 += (z[i * C + c] - centre) * (z[i * C + c] - centre);
      }
      density += std::exp(psi[y * M + m]) / zpsi * std::pow(2 * M_PI, -C / 2.0) * std::exp(-d2 / 2);
    }
    const double direct = (std::log(density) + ld[i]) / C;
    worst = std::max(worst, std::fabs(direct - logp[i]));
    worst = std::max(worst, std::fabs(std::log(density) / C - latent[i]));  // with_logdet false
    // class logits and negative entropy
    double zphi = 0, q[3], qs = 0;
    for (int64_t k = 0; k < Y; ++k) zphi += std::exp(phi[k]);
    for (int64_t k = 0; k < Y; ++k) {
      double d2 = 0;
      for (int64_t c = 0; c < C; ++c) d2 += (z[i * C + c] - mu[k * C + c]) * (z[i * C + c] - mu[k * C + c]);
      worst = std::max(worst, std::fabs(logits[i * Y + k] - (-d2 / 2 + std::log(std::exp(phi[k]) / zphi))));
      q[k] = std::exp(-d2 / 2);
      qs += q[k];
    }
    double ne = 0;
    for (int64_t k = 0; k < Y; ++k) ne += q[k] / qs * std::log(q[k] / qs);
    worst = std::max(worst, std::fabs(ne - nent[i]));
    psum += 0;
  }
  CHECK(worst < 1e-10, "max deviation %g", worst);
  CHECK(out[0] == 2 && out[1] == 0, "returned classes");
}

// Without a class, each image takes the argmax of its mean class logits, and logp follows that class.
HGAD_TEST(score_infers_class) {
  Level<double> lv(hgadtest::small_config(), 4);
  const hgad::FeatureShape fs{3, 2, 2};
  const int64_t N = fs.vectors(), Y = 3;
  std::vector<double> x = hgadtest::random_vector<double>(N * 7, 13), logp(N), nent(N), logits(N * Y), logp_k(N);
  std::vector<int32_t> out(3), given(3);
  std::vector<double> posterior(3 * Y);
  lv.score(fs, x.data(), nullptr, logp.data(), nent.data(), logits.data(), out.data(), posterior.data(), 1);
  for (int64_t b = 0; b < 3; ++b) {
    int best = 0;
    double best_sum = -1e300, total = 0;
    for (int y = 0; y < Y; ++y) {
      double s = 0, q = 0;
      for (int p = 0; p < 4; ++p) {
        const double* l = &logits[(b * 4 + p) * Y];
        s += l[y];
        double z = 0;
        for (int k = 0; k < Y; ++k) z += std::exp(l[k] - l[y]);
        q += 1.0 / z / 4.0;
      }
      if (s > best_sum) best_sum = s, best = y;
      CHECK(std::abs(posterior[b * Y + y] - q) < 1e-12, "image %lld class %d: posterior %g, expected %g", (long long)b, y,
            posterior[b * Y + y], q);
      total += posterior[b * Y + y];
    }
    CHECK(std::abs(total - 1) < 1e-12, "image %lld: posteriors sum to %g", (long long)b, total);
    CHECK(out[b] == best, "image %lld: inferred %d, expected %d", (long long)b, out[b], best);
    given[b] = best;
  }
  lv.score(fs, x.data(), given.data(), logp_k.data(), nent.data(), logits.data(), out.data(), nullptr, 1);
  CHECK(logp == logp_k, "logp under the inferred class differs from logp under the same class given");
}

HGAD_TEST(bad_labels_are_rejected) {
  Level<double> lv(hgadtest::small_config(), 4);
  const hgad::FeatureShape fs{2, 1, 2};
  std::vector<double> x(fs.vectors() * 7, 0.1);
  std::vector<int32_t> lab = {0, 3};
  const double w[5] = {1, 0, 0, 0, 0};
  bool threw = false;
  try {
    lv.gradients(fs, x.data(), {lab.data(), false}, w, nullptr, 1);
  } catch (const hgad::InputError& e) {
    threw = e.parameter == "labels" && e.index == 1;
  }
  CHECK(threw, "label 3 with 3 classes was accepted");
}
