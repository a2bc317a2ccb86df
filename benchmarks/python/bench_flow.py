"""PyTorch speed baseline of one HGAD level at the paper config (C=200, P=256, K=12, Y=15, M=10).

    /usr/bin/python3 benchmarks/python/bench_flow.py [--threads N] [--device cpu|cuda] [--seconds S]
                                                     [--passive-omp]

Prints one JSON line with vectors/s for scoring and for a phase-2 training step, 4096 vectors
(batch 4 of 32x32 NHWC features) per call.
"""
import argparse
import json
import os
import sys
import time


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def loaded_blas():
    """The BLAS shared object actually mapped (BLAS_INFO says only 'generic' on Debian)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower()}
        return sorted(os.path.basename(l) for l in libs if l.startswith("/"))
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    ap.add_argument("--passive-omp", action="store_true",
                    help="also set OMP_WAIT_POLICY=PASSIVE (tuning beyond torch's defaults, see below)")
    args = ap.parse_args()

    # All read once when torch loads. Debian's OpenBLAS falls back to a slow generic kernel on some
    # CPUs unless told its core type, and its own pthread pool ignores torch.set_num_threads. Torch's
    # OpenMP workers spin between ops by default, stealing the cores OpenBLAS's threads need (about
    # 2x slower on a 2-core box); --passive-omp makes them sleep instead (OMP_WAIT_POLICY=PASSIVE).
    flags = cpu_flags()
    coretype = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else None
    if coretype:
        os.environ.setdefault("OPENBLAS_CORETYPE", coretype)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    if args.passive_omp:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")}
    print(" ".join(f"{k}={v}" for k, v in env.items()), file=sys.stderr)
    if coretype and env["OPENBLAS_CORETYPE"] != coretype:
        print(f"warning: OPENBLAS_CORETYPE preset in the environment; this CPU supports {coretype}",
              file=sys.stderr)

    import torch
    from hgad_torch import HgadLevel, positional_encoding_2d

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    C, P, K, Y, M, clamp = 200, 256, 12, 15, 10, 1.9
    B, H, W = 4, 32, 32
    N = B * H * W
    torch.manual_seed(0)
    level = HgadLevel(C, P, K, Y, M, clamp).to(dev)
    opt = torch.optim.Adam(level.param_groups(lr=2e-4, weight_decay=1e-4), betas=(0.95, 0.99))
    x = torch.randn(B, H, W, C, device=dev)
    labels = torch.randint(0, Y, (B,), device=dev).repeat_interleave(H * W)

    def pos():
        return positional_encoding_2d(P, H, W, device=dev).repeat(B, 1)

    def score_step():
        with torch.no_grad():
            z, logdet = level.flow(x.reshape(N, C), pos())
            return level.score(z, logdet, labels)

    def train_step():
        z, logdet = level.flow(x.reshape(N, C), pos())
        L = level.losses(z, logdet, labels)
        loss = L["Lg"] - 100 * L["Lmi"] + L["Le"] + L["Lgi"] + L["Lz"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def measure(step):
        for _ in range(2):  # warm-up: allocator, thread pools, Adam state
            step()
        sync()
        calls, t0 = 0, time.perf_counter()
        while True:
            step()
            calls += 1
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= args.seconds:
                return calls * N / elapsed

    blas = next((kv.split("=", 1)[1] for kv in torch.__config__.show().replace(",", "\n").split()
                 if kv.startswith("BLAS_INFO=")), "unknown")
    result = {"score_vectors_per_s": round(measure(score_step), 1),
              "train_vectors_per_s": round(measure(train_step), 1),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas,
              "blas_library": loaded_blas(), "env": env,
              "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
