// Each device twin (native/cuda/kernels.cuh) against its CPU function on the same inputs.
#include <cmath>
#include <vector>

#include "../core/adam.h"
#include "../core/coupling.h"
#include "../core/mixture.h"
#include "../core/rng.h"
#include "../cuda/kernels.cuh"
#include "harness.cuh"

using hgadtest::Dev;

namespace {

std::vector<float> rnd(int64_t n, uint64_t seed, double scale = 1.0) {
  hgad::Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

// One coupling block's parameters on the host and their device copies.
struct BlockFixture {
  hgad::BlockDims d{7, 4};  // odd C: C1 = 4, C2 = 3
  std::vector<float> w1, b1, w2, b2, offset, rot, g, logdet;
  Dev<float> dw1, db1, dw2, db2, doffset, drot, dg, dlogdet;
  static std::vector<float> rotation(int64_t C) {
    hgad::Rng rng(9);
    const std::vector<double> r = hgad::random_rotation(rng, C);
    return std::vector<float>(r.begin(), r.end());
  }
  static std::vector<float> scales(int64_t C) {
    std::vector<float> g(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) g[c] = 0.6f + 0.1f * static_cast<float>(c);
    return g;
  }
  static float sum_log(const std::vector<float>& g) {
    float s = 0;
    for (float x : g) s += std::log(x);
    return s;
  }
  BlockFixture()
      : w1(rnd(d.hid * d.n, 1, 0.4)), b1(rnd(d.hid, 2, 0.3)), w2(rnd(2 * d.C2 * d.hid, 3, 0.4)),
        b2(rnd(2 * d.C2, 4, 0.3)), offset(rnd(d.C, 5, 0.2)), rot(rotation(d.C)), g(scales(d.C)),
        logdet{sum_log(g)}, dw1(w1), db1(b1), dw2(w2), db2(b2), doffset(offset), drot(rot), dg(g), dlogdet(logdet) {}
  hgad::BlockParams<float> host() const {
    return {w1.data(), b1.data(), w2.data(), b2.data(), offset.data(), rot.data(), g.data(), logdet[0], 1.9f, nullptr};
  }
  hgad::cuda::DeviceBlock device() {
    return {dw1.p(), db1.p(), dw2.p(), db2.p(), doffset.p(), drot.p(), dg.p(), dlogdet.p(), 1.9f};
  }
};

constexpr int64_t kNb = 3, kTp = 5, kR = kNb * kTp;

}  // namespace

HGAD_TEST(block_forward_and_inverse_match_cpu) {
  hgad::cuda::Context ctx;
  BlockFixture f;
  const hgad::BlockDims& d = f.d;
  const std::vector<float> pe = rnd(kTp * d.P, 6), v = rnd(kR * d.C, 7);
  std::vector<float> q(kTp * d.hid), h(kR * d.hid), s(kR * d.C2), u(kR * d.C), a(kR * 2 * d.C2), up(kR * d.C),
      w(kR * d.C), ld(kR, 0.25f), vinv(kR * d.C);
  hgad::block_pos_forward(d, f.host(), kTp, pe.data(), q.data());
  hgad::block_forward(d, f.host(), kR, kTp, v.data(), q.data(), h.data(), s.data(), u.data(), a.data(), up.data(),
                      w.data(), ld.data());
  Dev<float> dpe(pe), dv(v), dq(kTp * d.hid), dh(kR * d.hid), ds(kR * d.C2), du(kR * d.C), da(kR * 2 * d.C2),
      dup(kR * d.C), dw(kR * d.C), dld(std::vector<float>(kR, 0.25f)), dvinv(kR * d.C);
  const hgad::cuda::DeviceBlock bp = f.device();
  hgad::cuda::block_pos_forward(ctx, d, bp, kTp, dpe.p(), dq.p());
  hgad::cuda::block_forward(ctx, d, bp, kR, kTp, dv.p(), dq.p(), dh.p(), ds.p(), du.p(), da.p(), dup.p(), dw.p(),
                            dld.p());
  CHECK_CLOSE(dq.get(), q, "q");
  CHECK_CLOSE(dh.get(), h, "h");
  CHECK_CLOSE(ds.get(), s, "s");
  CHECK_CLOSE(du.get(), u, "u");
  CHECK_CLOSE(dw.get(), w, "w");
  CHECK_CLOSE(dld.get(), ld, "logdet");
  hgad::block_inverse(d, f.host(), kR, kTp, w.data(), q.data(), h.data(), a.data(), up.data(), vinv.data());
  hgad::cuda::block_inverse(ctx, d, bp, kR, kTp, dw.p(), dq.p(), dh.p(), da.p(), dup.p(), dvinv.p());
  CHECK_CLOSE(dvinv.get(), vinv, "inverse");
  CHECK_CLOSE(dvinv.get(), v, "inverse recovers v");
}

HGAD_TEST(block_backward_matches_cpu) {
  hgad::cuda::Context ctx;
  BlockFixture f;
  const hgad::BlockDims& d = f.d;
  const std::vector<float> pe = rnd(kTp * d.P, 6), v = rnd(kR * d.C, 7), dwo = rnd(kR * d.C, 8),
                           dldv = rnd(kR, 10, 0.5);
  std::vector<float> q(kTp * d.hid), h(kR * d.hid), s(kR * d.C2), u(kR * d.C), a(kR * 2 * d.C2), up(kR * d.C),
      w(kR * d.C), ld(kR);
  hgad::block_pos_forward(d, f.host(), kTp, pe.data(), q.data());
  hgad::block_forward(d, f.host(), kR, kTp, v.data(), q.data(), h.data(), s.data(), u.data(), a.data(), up.data(),
                      w.data(), ld.data());
  std::vector<float> gw1(f.w1.size()), gb1(f.b1.size()), gw2(f.w2.size()), gb2(f.b2.size()), gg(d.C), goff(d.C),
      dv(kR * d.C), da(kR * 2 * d.C2), dh(kR * d.hid), dqsum(kR * d.hid), dus(kR * d.C);
  hgad::block_backward(d, f.host(), kR, kTp, pe.data(), v.data(), h.data(), s.data(), u.data(), dwo.data(),
                       dldv.data(), da.data(), dh.data(), dqsum.data(), dus.data(),
                       {gw1.data(), gb1.data(), gw2.data(), gb2.data(), gg.data(), goff.data()}, dv.data());
  // The device runs on the CPU's saved activations, so the backward pass is compared on its own.
  Dev<float> dpe(pe), dvv(v), dhh(h), dss(s), duu(u), ddw(dwo), ddld(dldv), dda(kR * 2 * d.C2), ddh(kR * d.hid),
      ddq(kR * d.hid), ddu(kR * d.C), ddv(kR * d.C), scratch(1);
  Dev<float> g1(static_cast<int64_t>(gw1.size())), g2(static_cast<int64_t>(gb1.size())),
      g3(static_cast<int64_t>(gw2.size())), g4(static_cast<int64_t>(gb2.size())), g5(d.C), g6(d.C);
  const hgad::BlockGrads<float> gr{g1.p(), g2.p(), g3.p(), g4.p(), g5.p(), g6.p()};
  hgad::cuda::block_backward(ctx, d, f.device(), kR, kTp, dpe.p(), dvv.p(), dhh.p(), dss.p(), duu.p(), ddw.p(),
                             ddld.p(), dda.p(), ddh.p(), ddq.p(), ddu.p(), gr, ddv.p(), scratch.p());
  CHECK_CLOSE(ddv.get(), dv, "dv");
  CHECK_CLOSE(g1.get(), gw1, "dw1");
  CHECK_CLOSE(g2.get(), gb1, "db1");
  CHECK_CLOSE(g3.get(), gw2, "dw2");
  CHECK_CLOSE(g4.get(), gb2, "db2");
  CHECK_CLOSE(g5.get(), gg, "dg");
  CHECK_CLOSE(g6.get(), goff, "doffset");
  // Without dv the parameter gradients accumulate a second, equal contribution.
  hgad::cuda::block_backward(ctx, d, f.device(), kR, kTp, dpe.p(), dvv.p(), dhh.p(), dss.p(), duu.p(), ddw.p(),
                             ddld.p(), dda.p(), ddh.p(), ddq.p(), ddu.p(), gr, nullptr, scratch.p());
  std::vector<float> twice = gw1;
  for (auto& x : twice) x *= 2;
  CHECK_CLOSE(g1.get(), twice, "dw1 accumulated");
}

HGAD_TEST(mixture_loss_backward_and_score_match_cpu) {
  hgad::cuda::Context ctx;
  const int64_t C = 7, Y = 3, M = 4, J = Y * M, R = 37;
  const std::vector<float> centres = rnd(J * C, 11), z = rnd(R * C, 12), ld = rnd(R, 13, 2.0);
  std::vector<float> cnorm(J), logpi(Y), logpi_intra(J);
  for (int64_t j = 0; j < J; ++j)
    for (int64_t c = 0; c < C; ++c) cnorm[j] += centres[j * C + c] * centres[j * C + c];
  const std::vector<float> phi = rnd(Y, 14), psi = rnd(J, 15);
  auto log_softmax = [](const float* x, int64_t n, float* out) {
    float mx = x[0], sum = 0;
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
    for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] - mx - std::log(sum);
  };
  log_softmax(phi.data(), Y, logpi.data());
  for (int64_t y = 0; y < Y; ++y) log_softmax(psi.data() + y * M, M, logpi_intra.data() + y * M);
  std::vector<int32_t> label(R);
  for (int64_t r = 0; r < R; ++r) label[r] = static_cast<int32_t>((r * 7) % Y);
  const float weights[hgad::kNumTerms] = {1, -100, 1, 1, 1};
  const float scale = 1.0f / R;

  const hgad::MixtureParams<float> mp{C, Y, M, centres.data(), cnorm.data(), logpi.data(), logpi_intra.data()};
  std::vector<float> zn(R), D(R * J), Af(R * J), Ad(R * J), dld(R), dz(R * C), scratch(4 * 4);
  std::vector<float> gz_full(J * C), gz_det(J * C), col_full(J), col_det(J), dlogpi(Y), dlogpi_intra(J);
  std::vector<double> loss(hgad::kNumTerms);
  const hgad::MixtureGrads<float> mg{gz_full.data(), gz_det.data(), col_full.data(), col_det.data(),
                                     dlogpi.data(), dlogpi_intra.data(), loss.data()};
  hgad::mixture_distances(mp, R, z.data(), zn.data(), D.data());
  hgad::mixture_loss_rows(mp, R, D.data(), ld.data(), label.data(), weights, scale, 0.02f, Af.data(), Ad.data(),
                          dld.data(), mg, scratch.data());
  const std::vector<float> Af_loss = Af;
  hgad::mixture_backward(mp, R, z.data(), Af.data(), Ad.data(), dz.data(), mg);

  Dev<float> dcent(centres), dcn(cnorm), dlp(logpi), dlpi(logpi_intra), dzz(z), dldd(ld), dzn(R), dD(R * J),
      dAf(R * J), dAd(R * J), ddld(R), ddz(R * C);
  Dev<int32_t> dlabel(label);
  Dev<float> g1(J * C), g2(J * C), g3(J), g4(J), g5(Y), g6(J);
  Dev<double> dloss(hgad::kNumTerms);
  const hgad::MixtureParams<float> dmp{C, Y, M, dcent.p(), dcn.p(), dlp.p(), dlpi.p()};
  const hgad::MixtureGrads<float> dmg{g1.p(), g2.p(), g3.p(), g4.p(), g5.p(), g6.p(), dloss.p()};
  hgad::cuda::mixture_distances(ctx, dmp, R, dzz.p(), dzn.p(), dD.p());
  // The device keeps -2 z.c and ||z||^2 apart; the distances are their sum with ||c||^2.
  {
    const std::vector<float> raw = dD.get(), norms = dzn.get();
    std::vector<float> full(R * J);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < J; ++j) full[r * J + j] = raw[r * J + j] + (norms[r] + cnorm[j]);
    CHECK_CLOSE(full, D, "distances");
  }
  hgad::cuda::LossWeights lw;
  for (int i = 0; i < hgad::kNumTerms; ++i) lw.w[i] = weights[i];
  hgad::cuda::mixture_loss_rows(ctx, dmp, R, dD.p(), dzn.p(), dldd.p(), dlabel.p(), lw, scale, 0.02f, dAf.p(),
                                dAd.p(), ddld.p(), dmg);
  CHECK_CLOSE(dAf.get(), Af_loss, "A_full");
  CHECK_CLOSE(dAd.get(), Ad, "A_det");
  CHECK_CLOSE(ddld.get(), dld, "dld");
  CHECK_CLOSE(g5.get(), dlogpi, "dlogpi");
  CHECK_CLOSE(g6.get(), dlogpi_intra, "dlogpi_intra");
  const std::vector<double> dl = dloss.get();
  for (int i = 0; i < hgad::kNumTerms; ++i)
    CHECK(std::fabs(dl[i] - loss[i]) <= hgadtest::kTol * std::max(1.0, std::fabs(loss[i])), "loss term %d: %g vs %g", i,
          dl[i], loss[i]);
  hgad::cuda::mixture_backward(ctx, dmp, R, dzz.p(), dAf.p(), dAd.p(), ddz.p(), dmg);
  CHECK_CLOSE(ddz.get(), dz, "dz");
  CHECK_CLOSE(dAf.get(), Af, "A_full + A_det");
  CHECK_CLOSE(g1.get(), gz_full, "gz_full");
  CHECK_CLOSE(g2.get(), gz_det, "gz_det");
  CHECK_CLOSE(g3.get(), col_full, "col_full");
  CHECK_CLOSE(g4.get(), col_det, "col_det");

  std::vector<float> cl(R * Y), ne(R), lpall(R * Y);
  hgad::mixture_score_rows(mp, R, D.data(), ld.data(), cl.data(), ne.data(), lpall.data(), scratch.data());
  Dev<float> dcl(R * Y), dne(R), dlpall(R * Y);
  hgad::cuda::mixture_score_rows(ctx, dmp, R, dD.p(), dzn.p(), dldd.p(), dcl.p(), dne.p(), dlpall.p());
  CHECK_CLOSE(dcl.get(), cl, "class logits");
  CHECK_CLOSE(dne.get(), ne, "negative entropy");
  CHECK_CLOSE(dlpall.get(), lpall, "logp per class");
}

HGAD_TEST(adam_matches_cpu) {
  hgad::cuda::Context ctx;
  const int64_t n = 1000;
  std::vector<float> p = rnd(n, 21), g = rnd(n, 22), m = rnd(n, 23, 0.1), v = rnd(n, 24, 0.1);
  for (auto& x : v) x = x * x;
  Dev<float> dp(p), dg(g), dm(m), dv(v);
  const hgad::AdamHyper hy;
  for (const hgad::AdamGroup& grp : {hgad::AdamGroup{0, 100, 1.0, 1e-4}, hgad::AdamGroup{100, 900, 3.0, 0.0},
                                     hgad::AdamGroup{900, n, 1.0, 0.0}}) {
    hgad::adam_update(grp, hy, 2e-3, 5, p.data(), g.data(), m.data(), v.data(), 1);
    hgad::cuda::adam_update(ctx, grp, hy, 2e-3, 5, dp.p(), dg.p(), dm.p(), dv.p());
  }
  CHECK_CLOSE(dp.get(), p, "param");
  CHECK_CLOSE(dm.get(), m, "m");
  CHECK_CLOSE(dv.get(), v, "v");
}

HGAD_TEST(gemm_matches_cpu_in_every_transpose) {
  hgad::cuda::Context ctx;
  const int64_t M = 37, N = 29, K = 53;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const std::vector<float> A = rnd(M * K, 31), B = rnd(K * N, 32), C0 = rnd(M * N, 33);
      std::vector<float> want(C0);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += static_cast<double>(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
          want[i * N + j] = static_cast<float>(0.5 * acc + 2.0 * C0[i * N + j]);
        }
      Dev<float> dA(A), dB(B), dC(C0);
      hgad::cuda::gemm(ctx, ta, tb, M, N, K, 0.5f, dA.p(), ta ? M : K, dB.p(), tb ? K : N, 2.0f, dC.p(), N);
      CHECK_CLOSE(dC.get(), want, ta ? (tb ? "gemm TT" : "gemm TN") : (tb ? "gemm NT" : "gemm NN"));
    }
}
