// CudaLevel against Level<float>: two levels with the same config, seed and jitter, one on each side,
// must agree on every operation (forward, inverse, score, gradients, Adam), with tiles of every shape.
#include <vector>

#include "../core/level.h"
#include "../cuda/level.cuh"
#include "../tests/fixtures.h"
#include "harness.cuh"

namespace {

struct Pair {
  hgad::Level<float> cpu, host;
  hgad::cuda::Context ctx;
  hgad::cuda::CudaLevel gpu;
  explicit Pair(int64_t tile_rows) : cpu(hgadtest::small_config(), 3), host(hgadtest::small_config(), 3), gpu(host, ctx) {
    hgadtest::jitter(cpu, 5, 0.3);
    hgadtest::jitter(host, 5, 0.3);
    gpu.tile_rows = tile_rows;
  }
};

// 3 images of 2 x 3 positions; tile heights: a partial tile of positions (4), a whole image (6),
// several images with a remainder (13), everything at once (default).
const int64_t kTileRows[] = {4, 6, 13, 16384};

}  // namespace

HGAD_TEST(level_forward_inverse_score_match_cpu) {
  for (int64_t rows : kTileRows) {
    Pair p(rows);
    const hgad::FeatureShape fs{3, 2, 3};
    const int64_t N = fs.vectors(), C = 7, Y = 3;
    const std::vector<float> x = hgadtest::random_vector<float>(N * C, 40);
    std::vector<float> z(N * C), ld(N), gz(N * C), gld(N), xi(N * C), gxi(N * C);
    p.cpu.forward(fs, x.data(), z.data(), ld.data(), 1);
    p.gpu.forward(fs, x.data(), gz.data(), gld.data());
    CHECK_CLOSE(gz, z, "forward z");
    CHECK_CLOSE(gld, ld, "forward logdet");
    p.cpu.inverse(fs, z.data(), xi.data(), 1);
    p.gpu.inverse(fs, z.data(), gxi.data());
    CHECK_CLOSE(gxi, xi, "inverse");
    for (int given = 0; given < 2; ++given) {
      const std::vector<int32_t> cls = {2, 0, 1};
      std::vector<float> lp(N), ne(N), cl(N * Y), post(3 * Y), glp(N), gne(N), gcl(N * Y), gpost(3 * Y);
      std::vector<int32_t> out(3), gout(3);
      const int32_t* c = given ? cls.data() : nullptr;
      p.cpu.score(fs, x.data(), c, lp.data(), ne.data(), cl.data(), out.data(), post.data(), 1);
      p.gpu.score(fs, x.data(), c, glp.data(), gne.data(), gcl.data(), gout.data(), gpost.data());
      CHECK_CLOSE(glp, lp, "score logp");
      CHECK_CLOSE(gne, ne, "score negEntropy");
      CHECK_CLOSE(gcl, cl, "score classLogits");
      CHECK_CLOSE(gpost, post, "score classPosterior");
      CHECK(gout == out, "class index differs (tile rows %lld)", static_cast<long long>(rows));
      // the latent density alone (with_logdet false)
      p.cpu.score(fs, x.data(), c, lp.data(), ne.data(), cl.data(), out.data(), post.data(), 1, false);
      p.gpu.score(fs, x.data(), c, glp.data(), gne.data(), gcl.data(), gout.data(), gpost.data(), false);
      CHECK_CLOSE(glp, lp, "score logp, latent density");
    }
  }
}

HGAD_TEST(level_gradients_and_adam_match_cpu) {
  for (int64_t rows : kTileRows) {
    for (int per_vector = 0; per_vector < 2; ++per_vector) {
      Pair p(rows);
      const hgad::FeatureShape fs{3, 2, 3};
      const int64_t N = fs.vectors(), C = 7;
      const std::vector<float> x = hgadtest::random_vector<float>(N * C, 41);
      std::vector<int32_t> labels(per_vector ? N : 3);
      for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>((i * 5 + 1) % 3);
      float w[hgad::kNumTerms];
      hgad::Level<float>::phase_weights(2, w);
      std::vector<float> dx(N * C), gdx(N * C);
      const hgad::Losses a = p.cpu.gradients(fs, x.data(), {labels.data(), per_vector != 0}, w, dx.data(), 1);
      const hgad::Losses b = p.gpu.gradients(fs, x.data(), {labels.data(), per_vector != 0}, w, gdx.data());
      for (int i = 0; i < hgad::kNumTerms; ++i)
        CHECK(std::fabs(a.term[i] - b.term[i]) <= hgadtest::kTol * std::max(1.0, std::fabs(a.term[i])),
              "loss term %d: cpu %g cuda %g", i, a.term[i], b.term[i]);
      CHECK_CLOSE(gdx, dx, "input gradient");
      p.gpu.pull();
      for (const hgad::TensorSpec& s : p.cpu.tensors()) {
        if (s.group == hgad::kGroupFixed) continue;
        const std::vector<float> want(p.cpu.grad(s), p.cpu.grad(s) + s.size);
        const std::vector<float> got(p.host.grad(s), p.host.grad(s) + s.size);
        CHECK_CLOSE(got, want, ("grad " + s.name).c_str());
      }
      p.cpu.adam_step(1e-3, 1);
      p.gpu.adam_step(1e-3);
      p.gpu.pull();
      CHECK(p.host.adam_steps() == p.cpu.adam_steps(), "adam steps");
      for (const hgad::TensorSpec& s : p.cpu.tensors()) {
        if (s.group == hgad::kGroupFixed) continue;
        const hgad::Level<float>& cc = p.cpu;
        const hgad::Level<float>& hh = p.host;
        CHECK_CLOSE(std::vector<float>(hh.data(s), hh.data(s) + s.size),
                    std::vector<float>(cc.data(s), cc.data(s) + s.size), ("param after Adam " + s.name).c_str());
        CHECK_CLOSE(std::vector<float>(p.host.adam_m(s), p.host.adam_m(s) + s.size),
                    std::vector<float>(p.cpu.adam_m(s), p.cpu.adam_m(s) + s.size), ("m " + s.name).c_str());
      }
    }
  }
}

HGAD_TEST(host_writes_reach_the_device) {
  Pair p(16384);
  const hgad::FeatureShape fs{1, 2, 3};
  const int64_t N = fs.vectors(), C = 7;
  const std::vector<float> x = hgadtest::random_vector<float>(N * C, 42);
  std::vector<float> z(N * C), ld(N), gz(N * C), gld(N);
  p.gpu.forward(fs, x.data(), gz.data(), gld.data());  // uploads
  // A tensor written on the host after the upload, as setTensor does: pull, write, host_changed.
  p.gpu.pull();
  for (hgad::Level<float>* lv : {&p.cpu, &p.host}) {
    float* off = lv->data(*lv->find("blocks.1.offset"));
    for (int64_t c = 0; c < C; ++c) off[c] += 0.5f;
  }
  p.gpu.host_changed();
  p.cpu.forward(fs, x.data(), z.data(), ld.data(), 1);
  p.gpu.forward(fs, x.data(), gz.data(), gld.data());
  CHECK_CLOSE(gz, z, "forward after a host write");
}
