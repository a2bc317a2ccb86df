// npm run bench:flow [-- --threads N --seconds S --rounds R --device cpu|cuda --no-python]
//
// Speed of one HGAD level at the paper's configuration (C=200, P=256, K=12, Y=15, M=10), 4096 vectors
// per call (batch 4 of 32x32 feature maps): vectors/s for scoring and for a phase-2 training step,
// for hgad and for the PyTorch baseline (benchmarks/python/bench_flow.py) measured in the same run,
// printed as ratios, plus hgad's achieved GEMM GFLOP/s against the sgemm peak measured here (CPU).
// Then, on the CPU, a table of both precisions (fp32, and bf16 where the CPU has AVX512-BF16 or
// AMX-BF16; lib/precision.ts) over three shapes with the same 4096 vectors (1x64x64, 4x32x32,
// 16x16x16), for scoring and training, with bf16's ratios to hgad fp32 and to the tuned PyTorch.
// --device cuda runs both on the GPU (hgad's CUDA backend, torch on cuda); hgad's figures include
// copying the features from and the results to host memory, torch keeps its batch on the GPU.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { cpuPrecision, HgadModel } from '../lib';
import { cudaInfo } from '../lib/model';
import { native } from '../lib/native';

interface Args {
  threads: number;
  seconds: number;
  /** Alternated rounds of the precision table (its figures are medians). */
  rounds: number;
  device: string;
  python: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { threads: 2, seconds: 5, rounds: 3, device: 'cpu', python: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--threads') args.threads = Number(value());
    else if (a === '--seconds') args.seconds = Number(value());
    else if (a === '--rounds') args.rounds = Number(value());
    else if (a === '--device') args.device = value();
    else if (a === '--no-python') args.python = false;
    else throw new Error(`unknown argument ${a} (expected --threads N, --seconds S, --rounds R, --device cpu|cuda, --no-python)`);
  }
  if (!Number.isInteger(args.threads) || args.threads < 1) throw new Error('--threads must be a positive integer');
  if (!(args.seconds > 0)) throw new Error('--seconds must be positive');
  if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new Error('--rounds must be a positive integer');
  if (args.device !== 'cpu' && args.device !== 'cuda') throw new Error(`--device ${args.device}: expected cpu or cuda`);
  return args;
}

const C = 200, P = 256, K = 12, Y = 15, M = 10, B = 4, H = 32, W = 32;

interface Rate {
  /** Vectors per second of wall time. */
  wall: number;
  /** Vectors per second of the CPU time the process received, per thread (user + system / threads). */
  cpu: number;
}

// Wall-clock rate, and the rate per CPU-second received: on a shared VM the hypervisor takes the CPU
// away (steal time) for stretches of seconds, which moves wall-clock rates by tens of percent between
// back-to-back runs; time the process was not given the CPU is not in its CPU time.
async function rates(seconds: number, vectors: number, threads: number, fn: () => Promise<unknown>): Promise<Rate> {
  for (let i = 0; i < 2; i++) await fn();
  let calls = 0;
  const t0 = process.hrtime.bigint();
  const u0 = process.cpuUsage();
  let elapsed = 0;
  while (elapsed < seconds) {
    await fn();
    calls++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  const u = process.cpuUsage(u0);
  return { wall: (calls * vectors) / elapsed, cpu: (calls * vectors * threads * 1e6) / (u.user + u.system) };
}

async function rate(seconds: number, vectors: number, fn: () => Promise<unknown>): Promise<number> {
  return (await rates(seconds, vectors, 1, fn)).wall;
}

// /proc/stat's all-CPU counters (user, nice, system, idle, iowait, irq, softirq, steal, ...), or none.
function stealTicks(): number[] {
  try {
    return fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  } catch {
    return [];
  }
}

// Share of all CPUs' time between two stealTicks() readings that the hypervisor gave to others (steal).
function stealShare(from: number[], to: number[]): number {
  if (from.length < 8 || to.length < 8) return NaN;
  const d = to.map((v, i) => v - (from[i] ?? 0));
  const total = d.slice(0, 8).reduce((a, b) => a + b, 0);
  return total > 0 ? d[7]! / total : NaN;
}

// GEMM flops hgad executes per vector. The positional half of the first Linear layer (W1b p + b1) runs
// on the CPU through position tables, (H + W) rows per block and call (coupling.h), left out here as
// negligible; the CUDA backend still runs it per position, once for the `share` images of a tile (all
// 4 here), forward and backward. The first block computes no input gradient.
function gemmFlops(share: number | null): { score: number; train: number } {
  const C1 = Math.ceil(C / 2), C2 = Math.floor(C / 2), hid = 2 * (C1 + P), J = Y * M;
  const coupling = 2 * C1 * hid + 2 * hid * 2 * C2 + 2 * C * C;
  const position = share === null ? 0 : (2 * P * hid) / share;
  const backward = 2 * C * C + 2 * (2 * C2 * hid) * 2 + 2 * hid * C1 * 2 + position;
  const mixture = 2 * C * J;
  return {
    score: K * coupling + mixture,
    train: K * (coupling + position + backward) - 2 * hid * C1 + 3 * mixture,
  };
}

// The PyTorch baseline as the issue defines it (same thread count, OpenBLAS given its core type), or
// `tuned`: also OMP_WAIT_POLICY=PASSIVE, which stops torch's idle OpenMP threads from spinning on the
// cores OpenBLAS's own threads need. Both are reported.
function pythonBaseline(args: Args, tuned: boolean): Record<string, unknown> | null {
  const py = '/usr/bin/python3';
  if (!args.python || !fs.existsSync(py)) return null;
  // Debian's OpenBLAS needs its core type on some AVX-512 CPUs or it runs a slow generic kernel: give
  // the baseline the kernel its CPU deserves, whatever the environment says.
  const flags = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const env = { ...process.env };
  delete env.OMP_WAIT_POLICY;
  if (/\bavx512f\b/.test(flags)) env.OPENBLAS_CORETYPE = 'SkylakeX';
  else if (/\bavx2\b/.test(flags)) env.OPENBLAS_CORETYPE = 'Haswell';
  const script = path.resolve(__dirname, '..', '..', 'benchmarks', 'python', 'bench_flow.py');
  const argv = [script, '--threads', String(args.threads), '--seconds', String(args.seconds), '--device', args.device];
  if (tuned) argv.push('--passive-omp');
  const r = spawnSync(py, argv, { encoding: 'utf8', env });
  if (r.status !== 0) {
    console.error(`PyTorch baseline failed:\n${r.stderr}`);
    return null;
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const model = HgadModel.create({
    levels: [{ channels: C }], classes: Array.from({ length: Y }, (_, i) => `class${i}`), centersPerClass: M,
    couplingLayers: K, posEmbedDim: P, seed: 1, threads: args.threads, device: args.device as 'cpu' | 'cuda',
  });
  const gpu = model.device === 'cuda';
  const vectors = B * H * W;
  const data = new Float32Array(vectors * C);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  const x = { data, batch: B, height: H, width: W, channels: C };
  const labels = Int32Array.from([0, 3, 7, 14]);

  // The peak: the best oneDNN sgemm rate over the flow's main shapes and a large square one.
  const shapes: [number, number, number][] = [[512, 712, 100], [512, 200, 712], [512, 200, 200], [1024, 1024, 1024]];
  const peak = gpu ? NaN : Math.max(...shapes.map(([m, n, k]) => native().measureSgemm(m, n, k, args.threads, 1)));
  const score = await rate(args.seconds, vectors, () => model.score(0, x));
  const train = await rate(args.seconds, vectors, () => model.trainStep(0, x, labels, { phase: 2, lr: 2e-5 }));
  const flops = gemmFlops(gpu ? B : null);
  const scoreGflops = (score * flops.score) / 1e9;
  const trainGflops = (train * flops.train) / 1e9;
  const baselines = [pythonBaseline(args, false), pythonBaseline(args, true)];

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const where = gpu ? `CUDA on ${cudaInfo().deviceName} (GEMM: ${cudaInfo().gemm})` : `${args.threads} threads`;
  console.log(`hgad bench:flow  C=${C} P=${P} K=${K} Y=${Y} M=${M}, ${vectors} vectors/call (${B}x${H}x${W}), ` +
    `${where}, ${cpu}, ${os.cpus().length} logical CPUs`);
  const ofPeak = (g: number): string => (gpu ? '' : `, ${((100 * g) / peak).toFixed(0)}% of peak`);
  if (!gpu) {
    console.log(`sgemm peak (oneDNN, best of ${shapes.map((d) => d.join('x')).join(', ')}, one tile per thread, ` +
      `${args.threads} threads): ${peak.toFixed(0)} GFLOP/s`);
  }
  console.log(`hgad  score: ${score.toFixed(0)} vectors/s  (${scoreGflops.toFixed(0)} GEMM GFLOP/s${ofPeak(scoreGflops)})`);
  console.log(`hgad  train: ${train.toFixed(0)} vectors/s  (${trainGflops.toFixed(0)} GEMM GFLOP/s${ofPeak(trainGflops)})`);
  const labels2 = ['torch (same threads, dispatched BLAS)', 'torch tuned (+ OMP_WAIT_POLICY=PASSIVE)'];
  baselines.forEach((b, i) => {
    if (!b) return;
    const ps = b.score_vectors_per_s as number, pt = b.train_vectors_per_s as number;
    const env = b.env as Record<string, string>;
    console.log(`${labels2[i]}: score ${ps.toFixed(0)}, train ${pt.toFixed(0)} vectors/s  (torch ${String(b.torch)}, ` +
      `OPENBLAS_CORETYPE=${env.OPENBLAS_CORETYPE}, OPENBLAS_NUM_THREADS=${env.OPENBLAS_NUM_THREADS})`);
    console.log(`  ratio hgad/${i === 0 ? 'torch' : 'torch tuned'}  score: ${(score / ps).toFixed(2)}x   ` +
      `train: ${(train / pt).toFixed(2)}x`);
  });
  if (!baselines[0]) console.log('torch baseline: not measured (no /usr/bin/python3 with torch, or --no-python)');
  if (!gpu) await precisionTable(args, baselines[1] ?? baselines[0] ?? null);
}

// Both precisions over three map shapes of 4096 vectors; ratios against this run's own fp32 figure of
// the same shape and against the PyTorch baseline (measured at 4x32x32). The machine's speed drifts by
// tens of percent within minutes (a shared VM): each round measures every shape at both precisions, and
// the table gives the medians over `rounds` rounds of the rates and of each round's bf16/fp32 ratio;
// then each shape's rate per CPU-second against the best shape's (the shape target).
async function precisionTable(args: Args, torch: Record<string, unknown> | null): Promise<void> {
  const cpu = cpuPrecision();
  const precisions: ('fp32' | 'bf16')[] = cpu.bf16 ? ['fp32', 'bf16'] : ['fp32'];
  const shapes: [number, number, number][] = [[1, 64, 64], [4, 32, 32], [16, 16, 16]];
  console.log(`\nprecision table (${args.threads} threads; CPU: avx512_bf16 ${cpu.avx512Bf16}, amx_bf16 ${cpu.amxBf16}; ` +
    `GEMM ${cpu.gemm}${cpu.bf16 ? '' : '; no bf16 on this CPU: fp32 only'}; medians of ${args.rounds} alternated rounds)`);
  console.log('precision  shape      score vec/s  train vec/s  score/fp32  train/fp32  score/torch  train/torch');
  const models = precisions.map((precision) => HgadModel.create({
    levels: [{ channels: C }], classes: Array.from({ length: Y }, (_, i) => `class${i}`), centersPerClass: M,
    couplingLayers: K, posEmbedDim: P, seed: 1, threads: args.threads, device: 'cpu', precision, trainPrecision: precision,
  }));
  const median = (v: number[]): number => {
    const o = [...v].sort((a, b) => a - b);
    return o.length % 2 ? o[(o.length - 1) / 2]! : (o[o.length / 2 - 1]! + o[o.length / 2]!) / 2;
  };
  const ps = torch ? (torch.score_vectors_per_s as number) : NaN, pt = torch ? (torch.train_vectors_per_s as number) : NaN;
  const lines: string[][] = precisions.map(() => []);
  const perCpu: { precision: string; shape: string; score: number; train: number }[] = [];
  // Rounds outer: every round measures every shape at both precisions, so a drift of the machine's
  // speed during the table moves all shapes alike instead of the shapes measured last.
  const inputs = shapes.map(([b, h, w]) => {
    const vectors = b * h * w;
    const data = new Float32Array(vectors * C);
    let s = 777 + b;
    for (let i = 0; i < data.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      data[i] = (s / 2 ** 32 - 0.5) * 2;
    }
    return { key: `${b}x${h}x${w}`, vectors, x: { data, batch: b, height: h, width: w, channels: C },
      labels: Int32Array.from({ length: b }, (_, i) => i % Y),
      scoreRates: precisions.map((): Rate[] => []), trainRates: precisions.map((): Rate[] => []) };
  });
  const steal0 = stealTicks();
  for (let r = 0; r < args.rounds; r++) {
    for (const it of inputs) {
      for (let p = 0; p < precisions.length; p++) {
        it.scoreRates[p]!.push(await rates(args.seconds, it.vectors, args.threads, () => models[p]!.score(0, it.x)));
      }
      for (let p = 0; p < precisions.length; p++) {
        it.trainRates[p]!.push(await rates(args.seconds, it.vectors, args.threads,
          () => models[p]!.trainStep(0, it.x, it.labels, { phase: 2, lr: 2e-5 })));
      }
    }
  }
  for (const { key, scoreRates, trainRates } of inputs) {
    const score = scoreRates.map((v) => v.map((q) => q.wall)), train = trainRates.map((v) => v.map((q) => q.wall));
    precisions.forEach((precision, p) => {
      perCpu.push({ precision, shape: key, score: median(scoreRates[p]!.map((q) => q.cpu)),
        train: median(trainRates[p]!.map((q) => q.cpu)) });
      const sr = median(score[p]!.map((v, r) => v / score[0]![r]!)), tr = median(train[p]!.map((v, r) => v / train[0]![r]!));
      const sv = median(score[p]!), tv = median(train[p]!);
      lines[p]!.push(`${precision.padEnd(9)}  ${key.padEnd(9)}  ${sv.toFixed(0).padStart(11)}  ${tv.toFixed(0).padStart(11)}  ` +
        `${sr.toFixed(2).padStart(9)}x  ${tr.toFixed(2).padStart(9)}x  ` +
        `${torch ? `${(sv / ps).toFixed(2).padStart(10)}x  ${(tv / pt).toFixed(2).padStart(10)}x` : '       n/a          n/a'}`);
    });
  }
  for (const l of lines) for (const line of l) console.log(line);
  // The shape target (any shape within 10% of the best) is read per CPU-second: steal time moves the
  // wall-clock medians above by more than the differences between shapes.
  const steal = stealShare(steal0, stealTicks());
  console.log(`\nshapes, vectors per CPU-second per thread (medians; steal time during the table: ` +
    `${Number.isFinite(steal) ? `${(100 * steal).toFixed(1)}%` : 'unknown'} of all CPU time), each as % of the best shape:`);
  for (const precision of precisions) {
    for (const mode of ['score', 'train'] as const) {
      const row = perCpu.filter((r) => r.precision === precision);
      const best = Math.max(...row.map((r) => r[mode]));
      console.log(`${precision.padEnd(5)} ${mode.padEnd(5)}  ` +
        row.map((r) => `${r.shape} ${r[mode].toFixed(0)} (${((100 * r[mode]) / best).toFixed(0)}%)`).join('   '));
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
