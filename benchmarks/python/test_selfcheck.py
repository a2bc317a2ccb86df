"""Self-checks of hgad_torch on a small random float64 model; exits non-zero on failure.

    /usr/bin/python3 benchmarks/python/test_selfcheck.py
"""
import math
import os
import sys
import tempfile

import torch

from hgad_torch import HgadLevel, positional_encoding_2d, read_safetensors, write_safetensors

failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        failures.append(name)


def naive_losses(level, z, logdet, labels):
    """HGAD.md section 4 written per vector and per component, without GEMMs or batching."""
    C, Y, M, eps = level.C, level.Y, level.M, 0.02
    mu, delta = level.mu.detach(), level.delta.detach()
    log_pi = torch.log_softmax(level.phi.detach(), 0)
    log_pim = torch.log_softmax(level.psi.detach(), 1)
    out = {k: 0.0 for k in ("Lg", "Lmi", "Le", "Lgi", "Lz")}
    logps, ents = [], []
    for i in range(z.shape[0]):
        zi, ys, ld = z[i].detach(), labels[i].item(), logdet[i].item()
        d = torch.stack([((zi - mu[y]) ** 2).sum() for y in range(Y)])
        cent = [mu[ys]] + [mu[ys] + delta[ys, m] for m in range(M - 1)]
        dm = torch.stack([((zi - c) ** 2).sum() for c in cent])
        t = torch.full((Y,), eps / Y, dtype=z.dtype)
        t[ys] += 1 - eps
        q = torch.softmax(-d / 2, 0)
        lse_m = torch.logsumexp(-dm / 2 + log_pim[ys], 0).item()
        logp = -C / 2 * math.log(2 * math.pi) + lse_m + ld
        out["Lg"] += (-torch.logsumexp(-d / 2 + log_pi, 0).item() - ld) / C
        out["Lmi"] += (t * (torch.log_softmax(-d / 2 + log_pi, 0) - log_pi)).sum().item()
        out["Le"] += -(q * q.log()).sum().item()
        out["Lgi"] += (-lse_m - ld) / C  # same value as L_z's mixture; only gradients differ
        out["Lz"] += -math.log(1 / (1 + math.exp(-logp / C)))
        logps.append(logp / C)
        ents.append(-(q * q.log()).sum().item())
    out = {k: v / z.shape[0] for k, v in out.items()}
    out["logp"] = torch.tensor(logps, dtype=z.dtype)
    out["ent"] = torch.tensor(ents, dtype=z.dtype)
    return out


def main():
    gen = torch.Generator().manual_seed(0)
    C, P, K, Y, M = 7, 4, 2, 3, 3
    # built directly in float64 so that the rotation is orthogonal to double precision
    level = HgadLevel(C, P, K, Y, M, clamp=1.9, dtype=torch.float64, generator=gen)
    with torch.no_grad():  # move away from g = 1, b = 0 so the affine part is exercised
        for b in level.blocks:
            b.gamma.add_(torch.randn(C, dtype=torch.float64, generator=gen))
            b.offset.normal_(generator=gen)
            b.w2.mul_(30)  # large a_s so the soft clamp is active

    B, H, W = 2, 3, 5
    x = 3 * torch.randn(B * H * W, C, dtype=torch.float64, generator=gen)
    p = positional_encoding_2d(P, H, W, dtype=torch.float64).repeat(B, 1)

    z, logdet = level.flow(x, p)
    err = (level.flow_inverse(z, p) - x).abs().max().item()
    check("inverse(forward(x)) == x", err < 1e-10, f"max err {err:.2e}")

    worst = 0.0
    for i in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(lambda v: level.flow(v[None], p[i:i + 1])[0][0], x[i])
        worst = max(worst, abs(torch.linalg.slogdet(J)[1].item() - logdet[i].item()))
    check("logdet == log|det jacobian|", worst < 1e-10, f"max err {worst:.2e}")

    # the positional encoding against CFlow's positionalencoding2d, written out element-wise
    P2, H2, W2 = 8, 3, 4
    pe = positional_encoding_2d(P2, H2, W2, dtype=torch.float64)
    half = P2 // 2
    ref = torch.empty(H2 * W2, P2, dtype=torch.float64)
    for yy in range(H2):
        for xx in range(W2):
            for i in range(half // 2):
                f = torch.exp(torch.tensor(-(2.0 * i) * torch.log(torch.tensor(1e4)).item() / half,
                                           dtype=torch.float64))
                r = yy * W2 + xx
                ref[r, 2 * i], ref[r, 2 * i + 1] = torch.sin(xx * f), torch.cos(xx * f)
                ref[r, half + 2 * i], ref[r, half + 2 * i + 1] = torch.sin(yy * f), torch.cos(yy * f)
    check("positional encoding", torch.allclose(pe, ref, atol=1e-12))

    tensors = {"a": torch.randn(3, 4, generator=gen), "i": torch.arange(-5, 7, dtype=torch.int32).reshape(2, 6),
               "e": torch.zeros(0, 3), "s": torch.tensor(2.5)}
    meta = {"level": "1", "config": '{"x": [1, 2]}'}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        write_safetensors(path, tensors, meta)
        back, back_meta = read_safetensors(path)
    same = back.keys() == tensors.keys() and all(
        back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v) for k, v in tensors.items())
    check("safetensors round trip", same and back_meta == meta)

    labels = torch.randint(0, Y, (x.shape[0],), generator=gen)
    losses = level.losses(z, logdet, labels)
    logp, nent, logits = level.score(z, logdet, labels)
    ref = naive_losses(level, z, logdet, labels)
    for k, v in losses.items():
        check(f"loss {k} == naive", abs(v.item() - ref[k]) < 1e-10, f"{v.item():.6f}")
    check("score logp == naive", torch.allclose(logp, ref["logp"], atol=1e-10))
    check("score negEntropy == -entropy", torch.allclose(nent, -ref["ent"], atol=1e-10))

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
