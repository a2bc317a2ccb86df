"""Reference outputs of one hgad level for parity tests, computed in float64.

    /usr/bin/python3 benchmarks/python/parity.py --model model.safetensors \
        --inputs inputs.safetensors --out out.safetensors

inputs: `x` F32 [B, H, W, C] (NHWC), `labels` I32 [B*H*W], metadata `level`.
out (all F32): z, logdet, loss.<T>, score.*, and grad.<T>.<param> / grad.<T>.input for the five
loss terms and the two phase losses (docs/FORMAT.md weights).
"""
import argparse

import torch

from hgad_torch import HgadLevel, load_hgad_file, positional_encoding_2d, read_safetensors, write_safetensors

TERMS = ("Lg", "Lmi", "Le", "Lgi", "Lz")
PHASES = {"phase1": (1, -100, 1, 0, 0), "phase2": (1, -100, 1, 1, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    config, tensors = load_hgad_file(args.model)
    inputs, meta = read_safetensors(args.inputs)
    lv = int(meta["level"])
    level = HgadLevel.from_tensors(config, tensors, lv).double()

    x = inputs["x"].double().requires_grad_(True)
    B, H, W, C = x.shape
    labels = inputs["labels"].long().reshape(-1)
    p = positional_encoding_2d(level.P, H, W, dtype=torch.float64).repeat(B, 1)

    z, logdet = level.flow(x.reshape(-1, C), p)
    losses = level.losses(z, logdet, labels)
    with torch.no_grad():
        logp, neg_entropy, class_logits = level.score(z, logdet, labels)

    out = {"z": z, "logdet": logdet,
           "score.logp": logp, "score.negEntropy": neg_entropy, "score.classLogits": class_logits}
    out.update({f"loss.{t}": losses[t].reshape(1) for t in TERMS})

    objectives = dict(losses)
    for name, weights in PHASES.items():
        objectives[name] = sum(w * losses[t] for w, t in zip(weights, TERMS) if w)

    names, params = zip(*level.named_parameters())  # the rotation is a buffer: not trained
    for oname, objective in objectives.items():
        grads = torch.autograd.grad(objective, list(params) + [x], retain_graph=True, allow_unused=True)
        for name, param, g in zip(names + ("input",), params + (x,), grads):
            # a term that does not reach a tensor (e.g. L_mi and phi) has a zero gradient
            key = f"grad.{oname}.input" if name == "input" else f"grad.{oname}.levels.{lv}.{name}"
            out[key] = torch.zeros_like(param) if g is None else g

    write_safetensors(args.out, {k: v.detach().float() for k, v in out.items()},
                      {"level": str(lv), "dtype": "computed in float64, stored as F32"})


if __name__ == "__main__":
    main()
