// Parity of the native core with the plain PyTorch reference (benchmarks/python/hgad_torch.py), run in
// float64 by benchmarks/python/parity.py. Covers, per level: the flow (z, log|det J|), the scoring
// outputs, the five loss terms, and the gradients of every trainable tensor and of the input for each
// single loss term and for both phase losses (HGAD.md sections 2-4, 6; docs/FORMAT.md).
//
// Needs /usr/bin/python3 with torch (CI installs python3-torch); skipped, with a message, without it.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { readSafetensors, writeSafetensorsAtomic, type TensorEntry } from '../lib/io/safetensors';
import { HgadModel, LOSS_TERMS, type LossTerm, type LossTerms } from '../lib/model';

const PYTHON = '/usr/bin/python3';
const PARITY_SCRIPT = resolve(__dirname, '..', 'benchmarks', 'python', 'parity.py');

const torchCheck = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
const HAVE_TORCH = torchCheck.status === 0;
if (!HAVE_TORCH) {
  const why = torchCheck.error ? torchCheck.error.message : (torchCheck.stderr || '').trim().split('\n').pop();
  // eslint-disable-next-line no-console
  console.log(`parity.test.ts skipped: \`${PYTHON} -c "import torch"\` failed (${why ?? `exit ${torchCheck.status}`}); `
    + 'install PyTorch for /usr/bin/python3 (e.g. apt-get install python3-torch) to run the parity checks.');
}
const describeParity = HAVE_TORCH ? describe : describe.skip;

// ---- setup -----------------------------------------------------------------------------------------

const CLASSES = ['bottle', 'cable', 'screw'];
const CHANNELS = [16, 9]; // an even and an odd C (ceil/floor split of the coupling)
const M = 4;
const K = 3;
const P = 8;
const B = 2;
const H = 3;
const W = 4;
const N = B * H * W;
const Y = CLASSES.length;
/** gamma with g = 0.2 ln(1 + exp(0.5 gamma)) = 1 (HGAD.md section 2). */
const GAMMA_UNIT = 2 * Math.log(Math.expm1(5));

/** Weights of a phase, as in docs/FORMAT.md. */
const PHASES: Record<'phase1' | 'phase2', Record<LossTerm, number>> = {
  phase1: { Lg: 1, Lmi: -100, Le: 1, Lgi: 0, Lz: 0 },
  phase2: { Lg: 1, Lmi: -100, Le: 1, Lgi: 1, Lz: 1 },
};
const OBJECTIVES = [...LOSS_TERMS, 'phase1', 'phase2'] as const;
type Objective = (typeof OBJECTIVES)[number];

/** mulberry32: a small deterministic PRNG so the test data never changes between runs. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): () => number {
  return () => {
    const u = 1 - rand(); // (0, 1]
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

// ---- comparison ------------------------------------------------------------------------------------

/**
 * Two error measures of a float32 result a against the float64 reference b (stored as F32):
 * - norm: ||a - b|| / ||b||, the fair relative error of a whole tensor (small entries of a tensor carry
 *   absolute float32 error of the order of the large ones, so an entry-by-entry relative error is not);
 * - max: max|a - b| / max|b|, the worst single entry relative to the tensor's scale.
 * Both must be <= TOL. Scales are per tensor: a tensor far smaller than the others of its objective
 * (phi's gradient in a phase loss gets no -100 L_mi part) is still held to TOL of its own size.
 * A reference that is exactly zero (a term that does not reach a tensor: stop-gradient or no path)
 * cannot scale anything; there `zeroFloor`, round-off of the objective's largest gradient, bounds |a|.
 */
const TOL = 1e-4;
/** Float32 round-off relative to the largest gradient of the objective, for exactly-zero references. */
const ZERO_REL = 1e-6;

interface Stat {
  quantity: string;
  level: number;
  name: string;
  norm: number;
  max: number;
  scale: number;
  ok: boolean;
}

const stats: Stat[] = [];

function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]!));
  return m;
}

function compare(quantity: string, level: number, name: string, a: ArrayLike<number>, b: ArrayLike<number>,
  zeroFloor = 0): Stat {
  expect(a.length).toBe(b.length);
  let diff2 = 0;
  let ref2 = 0;
  let maxDiff = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= maxDiff)) maxDiff = d; // a NaN sticks
    diff2 += d * d;
    ref2 += b[i]! * b[i]!;
  }
  const maxRef = maxAbs(b);
  const normDiff = Math.sqrt(diff2);
  const normRef = Math.sqrt(ref2);
  const norm = normRef > 0 ? normDiff / normRef : normDiff === 0 ? 0 : Infinity;
  const max = maxRef > 0 ? maxDiff / maxRef : maxDiff === 0 ? 0 : Infinity;
  const ok = maxRef > 0 ? normDiff <= TOL * normRef && maxDiff <= TOL * maxRef : maxDiff <= zeroFloor;
  const s = { quantity, level, name, norm, max, scale: maxRef, ok };
  stats.push(s);
  return s;
}

function failures(list: Stat[]): string[] {
  return list.filter((s) => !s.ok).map((s) =>
    `${s.quantity} ${s.name} (level ${s.level}): ||a-b||/||b|| = ${s.norm.toExponential(2)}, `
    + `max|a-b|/max|b| = ${s.max.toExponential(2)}, max|b| = ${s.scale.toExponential(2)}`);
}

// ---- the test --------------------------------------------------------------------------------------

interface LevelData {
  x: Float32Array;
  labels: Int32Array;
  ref: Map<string, Float32Array>;
}

describeParity('parity with the PyTorch reference (float64)', () => {
  let dir = '';
  let model: HgadModel;
  const levels: LevelData[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-parity-'));
    model = HgadModel.create({
      levels: CHANNELS.map((channels) => ({ channels })),
      classes: CLASSES,
      centersPerClass: M,
      couplingLayers: K,
      posEmbedDim: P,
      seed: 7,
      threads: 2,
      precision: 'fp32', // the reference is float64; bf16 has its own test (precision.test.ts)
    });

    // Move every parameter away from its initial value so that no gradient is trivially zero or
    // symmetric: g != 1, b != 0, non-uniform mixture weights, centres off the initial grid.
    const randn = gaussian(rng(1234));
    const noise = (n: number, s: number): Float32Array => Float32Array.from({ length: n }, () => s * randn());
    for (const info of model.tensorInfo()) {
      if (info.group === 'fixed') continue;
      const v = await model.getTensor(info.name);
      const leaf = info.name.split('.').pop();
      const n = v.length;
      let next: Float32Array;
      switch (leaf) {
        case 'gamma': next = noise(n, 1.5).map((e) => GAMMA_UNIT + e); break; // g ~ 1 +- 0.15
        case 'offset': next = noise(n, 0.2); break;
        case 'phi': next = noise(n, 0.5); break;
        case 'psi': next = noise(n, 0.5); break;
        case 'mu': next = v.map((e) => e + 0.3 * randn()); break;
        case 'delta': next = v.map((e) => 0.6 * e + 0.1 * randn()); break;
        default: next = v.map((e) => e * (1 + 0.2 * randn())); break; // w1, b1, w2, b2
      }
      await model.setTensor(info.name, next);
    }
    const modelPath = join(dir, 'model.safetensors');
    await model.save(modelPath, { optimizer: false });

    const run = promisify(execFile);
    await Promise.all(CHANNELS.map(async (C, level) => {
      const x = noise(N * C, 1);
      // per-vector labels, every class present in every image
      const pick = rng(99 + level);
      const labels = Int32Array.from({ length: N }, (_, i) => (i % (H * W) < Y ? (i + level) % Y : Math.floor(pick() * Y)));
      const tensors: TensorEntry[] = [
        { name: 'x', dtype: 'F32', shape: [B, H, W, C], data: x },
        { name: 'labels', dtype: 'I32', shape: [N], data: labels },
      ];
      const inputs = join(dir, `inputs.${level}.safetensors`);
      await writeSafetensorsAtomic(inputs, tensors, { level: String(level) });
      const out = join(dir, `out.${level}.safetensors`);
      try {
        await run(PYTHON, [PARITY_SCRIPT, '--model', modelPath, '--inputs', inputs, '--out', out],
          { timeout: 120_000, maxBuffer: 16 << 20 });
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`parity.py failed for level ${level}: ${err.stderr || err.message}`);
      }
      const { tensors: ref } = await readSafetensors(out);
      levels[level] = {
        x,
        labels,
        ref: new Map([...ref].map(([k, t]) => [k, t.data as Float32Array])),
      };
    }));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    if (stats.length === 0) return;
    // Worst errors per quantity, for the log.
    const worst = new Map<string, Stat>();
    const worstMax = new Map<string, Stat>();
    for (const s of stats) {
      const w = worst.get(s.quantity);
      if (!w || s.norm > w.norm) worst.set(s.quantity, s);
      const m = worstMax.get(s.quantity);
      if (!m || s.max > m.max) worstMax.set(s.quantity, s);
    }
    const lines = [...worst.keys()].map((q) => {
      const w = worst.get(q)!;
      const m = worstMax.get(q)!;
      return `  ${q.padEnd(16)} norm ${w.norm.toExponential(2)} (${w.name}, level ${w.level})   `
        + `max ${m.max.toExponential(2)} (${m.name}, level ${m.level})`;
    });
    // eslint-disable-next-line no-console
    console.log(`hgad vs PyTorch float64, worst relative errors (tolerance ${TOL}):\n${lines.join('\n')}`);
  });

  const ref = (level: number, key: string): Float32Array => {
    const t = levels[level]!.ref.get(key);
    if (!t) throw new Error(`parity.py wrote no "${key}" for level ${level}`);
    return t;
  };
  const batch = (level: number) => ({ batch: B, height: H, width: W, channels: CHANNELS[level]!, data: levels[level]!.x });

  describe.each(CHANNELS.map((C, level) => ({ C, level })))('level $level (C = $C)', ({ level }) => {
    test('forward: z and log|det J|', async () => {
      const { z, logDet } = await model.forward(level, batch(level));
      const s = [
        compare('forward', level, 'z', z, ref(level, 'z')),
        compare('forward', level, 'logDet', logDet, ref(level, 'logdet')),
      ];
      expect(failures(s)).toEqual([]);
    });

    test('score: logp, negEntropy, classLogits', async () => {
      // hgad scores each image under one class; the reference scores each vector under its own label.
      // Score every image under every class (a different class per image in each call) and compare
      // each vector's logp from the call whose class is that vector's label.
      const labels = levels[level]!.labels;
      const logp = new Float32Array(N).fill(NaN);
      let first: { negEntropy: Float32Array; classLogits: Float32Array } | undefined;
      for (let shift = 0; shift < Y; shift++) {
        const classes = Int32Array.from({ length: B }, (_, b) => (b + shift) % Y);
        const r = await model.score(level, batch(level), classes);
        expect([...r.classIndex]).toEqual([...classes]);
        for (let i = 0; i < N; i++) {
          if (labels[i] === classes[Math.floor(i / (H * W))]) logp[i] = r.logp[i]!;
        }
        if (first) {
          // the class does not enter these two
          expect([...r.negEntropy]).toEqual([...first.negEntropy]);
          expect([...r.classLogits]).toEqual([...first.classLogits]);
        } else first = r;
      }
      // Without a class, each image is scored under the class of its largest mean class logit.
      const refLogits = ref(level, 'score.classLogits');
      const expected = Array.from({ length: B }, (_, b) => {
        const mean = new Float64Array(Y);
        for (let i = b * H * W; i < (b + 1) * H * W; i++) for (let y = 0; y < Y; y++) mean[y]! += refLogits[i * Y + y]!;
        const order = [...mean.keys()].sort((p, q) => mean[q]! - mean[p]!);
        // a near tie could legitimately go either way in float32
        expect((mean[order[0]!]! - mean[order[1]!]!) / (H * W)).toBeGreaterThan(1e-3);
        return order[0]!;
      });
      expect([...(await model.score(level, batch(level))).classIndex]).toEqual(expected);

      const s = [
        compare('score', level, 'logp', logp, ref(level, 'score.logp')),
        compare('score', level, 'negEntropy', first!.negEntropy, ref(level, 'score.negEntropy')),
        compare('score', level, 'classLogits', first!.classLogits, ref(level, 'score.classLogits')),
      ];
      expect(failures(s)).toEqual([]);
    });

    test.each(OBJECTIVES.map((o) => ({ objective: o })))('gradients of $objective', async ({ objective }) => {
      const options = objective === 'phase1' ? { phase: 1 as const }
        : objective === 'phase2' ? { phase: 2 as const }
          : { weights: { [objective]: 1 } };
      const { losses, grads, inputGrad } = await model.gradients(level, batch(level), levels[level]!.labels, options);
      const s: Stat[] = [];

      // the five terms, and the weighted loss of this call
      const refTerm = (t: LossTerm) => ref(level, `loss.${t}`)[0]!;
      for (const t of LOSS_TERMS) {
        s.push(compare('loss', level, t, [losses[t]], [refTerm(t)]));
      }
      const weights: Record<LossTerm, number> = objective in PHASES ? PHASES[objective as keyof typeof PHASES]
        : { Lg: 0, Lmi: 0, Le: 0, Lgi: 0, Lz: 0, [objective]: 1 };
      const total = LOSS_TERMS.reduce((acc, t) => acc + weights[t] * refTerm(t), 0);
      s.push(compare('loss', level, `loss(${objective})`, [(losses as LossTerms).loss], [total]));

      // every trainable tensor of the level, and the input
      const prefix = `grad.${objective}.`;
      const refNames = [...levels[level]!.ref.keys()]
        .filter((k) => k.startsWith(prefix) && k !== `${prefix}input`)
        .map((k) => k.slice(prefix.length))
        .sort();
      expect([...grads.keys()].sort()).toEqual(refNames);
      const zeroFloor = ZERO_REL * Math.max(...[...refNames, 'input'].map((n) => maxAbs(ref(level, `${prefix}${n}`))));
      for (const name of refNames) {
        s.push(compare(`grad.${objective}`, level, name, grads.get(name)!, ref(level, `${prefix}${name}`), zeroFloor));
      }
      s.push(compare(`grad.${objective}`, level, 'input', inputGrad, ref(level, `${prefix}input`), zeroFloor));
      expect(failures(s)).toEqual([]);
    });
  });
});
