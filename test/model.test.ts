// Behaviour of the public HgadModel API against the method (/work/shared/docs/HGAD.md) and the model
// file layout (docs/FORMAT.md): invertibility, the log-determinant, the mixture density, class
// inference, determinism, training and the serialisation of operations.
import { HgadConfig, HgadModel, FeatureBatch, LossTerms } from '../lib';

// ---------------------------------------------------------------------------------------------------
// Helpers

/** Small deterministic PRNG (mulberry32) with a Box-Muller normal. */
function rng(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, normal };
}

function randomBatch(seed: number, batch: number, height: number, width: number, channels: number, scale = 1): FeatureBatch {
  const r = rng(seed);
  const data = new Float32Array(batch * height * width * channels);
  for (let i = 0; i < data.length; i++) data[i] = scale * r.normal();
  return { batch, height, width, channels, data };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function bytesOf(a: Float32Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Exact (bitwise) equality of two typed arrays; NaN-safe and -0-aware. */
function expectBitEqual(a: Float32Array | Int32Array, b: Float32Array | Int32Array, what = ''): void {
  expect(a.length).toBe(b.length);
  if (!bytesOf(a).equals(bytesOf(b))) {
    let i = 0;
    while (i < a.length && Object.is(a[i], b[i])) i++;
    throw new Error(`${what}: arrays differ first at element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

function logSumExp(v: number[]): number {
  const mx = Math.max(...v);
  return mx + Math.log(v.reduce((s, x) => s + Math.exp(x - mx), 0));
}

function logSoftmax(v: ArrayLike<number>): number[] {
  const arr = Array.from(v);
  const lse = logSumExp(arr);
  return arr.map((x) => x - lse);
}

/** log|det A| of a dense n x n matrix (row-major, float64) by LU with partial pivoting. */
function logAbsDet(a: number[][]): number {
  const n = a.length;
  const m = a.map((r) => [...r]);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i]![k]!) > Math.abs(m[p]![k]!)) p = i;
    [m[k], m[p]] = [m[p]!, m[k]!];
    const pivot = m[k]![k]!;
    sum += Math.log(Math.abs(pivot));
    for (let i = k + 1; i < n; i++) {
      const f = m[i]![k]! / pivot;
      for (let j = k; j < n; j++) m[i]![j]! -= f * m[k]![j]!;
    }
  }
  return sum;
}

/** The value g = 1 of the global scale g = 0.2 ln(1 + exp(gamma / 2)) (HGAD.md section 2, step 5). */
const GAMMA_IDENTITY = 2 * Math.log(Math.exp(5) - 1);

async function allTensors(model: HgadModel, withOptimizer = false): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const t of model.tensorInfo()) {
    out.set(t.name, await model.getTensor(t.name));
    if (withOptimizer && t.group !== 'fixed') {
      for (const mv of ['m', 'v']) {
        const name = t.name.replace(/^levels\.(\d+)\./, `optimizer.levels.$1.${mv}.`);
        out.set(name, await model.getTensor(name));
      }
    }
  }
  return out;
}

const tiny = (over: Partial<HgadConfig> = {}): HgadConfig => ({
  levels: [{ channels: 4 }],
  classes: ['a', 'b'],
  centersPerClass: 3,
  couplingLayers: 2,
  posEmbedDim: 4,
  threads: 2,
  // the engine's accuracy against float64 references: fp32 (scoring's default is 'auto', bf16 where the CPU has it)
  precision: 'fp32',
  ...over,
});

// ---------------------------------------------------------------------------------------------------

describe('the flow', () => {
  test('inverse(forward(x)) recovers x at C=200, K=12, P=256', async () => {
    const model = HgadModel.create({
      levels: [{ channels: 200 }],
      classes: ['bottle', 'cable', 'capsule', 'carpet'],
      threads: 2,
      precision: 'fp32',
    });
    expect(model.config.couplingLayers).toBe(12);
    expect(model.config.posEmbedDim).toBe(256);
    const x = randomBatch(1, 2, 6, 5, 200, 2);
    const { z, logDet } = await model.forward(0, x);
    expect(z.length).toBe(x.data.length);
    expect(logDet.length).toBe(2 * 6 * 5);
    // The flow is not the identity (otherwise the round trip would prove nothing).
    expect(maxAbsDiff(z, x.data)).toBeGreaterThan(0.1);
    expect(z.every(Number.isFinite)).toBe(true);
    const back = await model.inverse(0, z, { batch: 2, height: 6, width: 5 });
    expect(back).toMatchObject({ batch: 2, height: 6, width: 5, channels: 200 });
    expect(maxAbsDiff(back.data, x.data)).toBeLessThanOrEqual(1e-4);
  });

  test('forward equals a float64 reference of HGAD.md section 2 with the tensor layout of FORMAT.md', async () => {
    // Odd C (C1 = 3, C2 = 2) and a grid that is not square, so split sizes and row/column order matter.
    const C = 5, P = 8, K = 2, H = 3, W = 4, clamp = 1.9;
    const model = HgadModel.create(tiny({ levels: [{ channels: C }], couplingLayers: K, posEmbedDim: P, seed: 21 }));
    const r = rng(123);
    for (let k = 0; k < K; k++) {
      await model.setTensor(`levels.0.blocks.${k}.gamma`, new Float32Array(C).map(() => GAMMA_IDENTITY + r.normal()));
      await model.setTensor(`levels.0.blocks.${k}.offset`, new Float32Array(C).map(() => 0.3 * r.normal()));
      for (const name of ['w2', 'b2']) {
        const t = await model.getTensor(`levels.0.blocks.${k}.${name}`);
        await model.setTensor(`levels.0.blocks.${k}.${name}`, t.map((e) => 25 * e)); // s reaches the soft clamp
      }
    }
    const blocks = [];
    for (let k = 0; k < K; k++) {
      const get = (n: string): Promise<Float32Array> => model.getTensor(`levels.0.blocks.${k}.${n}`);
      blocks.push({ w1: await get('w1'), b1: await get('b1'), w2: await get('w2'), b2: await get('b2'),
        gamma: await get('gamma'), offset: await get('offset'), rot: await get('rotation') });
    }
    const C1 = Math.ceil(C / 2), C2 = Math.floor(C / 2), n = C1 + P, hid = 2 * n;
    const posenc = (y: number, x: number): number[] => {
      const half = P / 2, out = new Array<number>(P);
      for (let i = 0; i < half; i += 2) {
        const f = Math.exp(-i * Math.log(1e4) / half);
        out[i] = Math.sin(x * f);
        out[i + 1] = Math.cos(x * f);
        out[half + i] = Math.sin(y * f);
        out[half + i + 1] = Math.cos(y * f);
      }
      return out;
    };
    const xb = randomBatch(77, 2, H, W, C, 1.5);
    const { z, logDet } = await model.forward(0, xb);
    let maxSum = 0;
    for (let vec = 0; vec < 2 * H * W; vec++) {
      const pos = vec % (H * W), y = Math.floor(pos / W), xc = pos % W;
      const p = posenc(y, xc);
      let v = Array.from(xb.data.subarray(vec * C, (vec + 1) * C));
      let ld = 0;
      for (const b of blocks) {
        const inp = [...v.slice(0, C1), ...p];
        const h = Array.from({ length: hid }, (_, j) => {
          let acc = b.b1[j]!;
          for (let i = 0; i < n; i++) acc += b.w1[j * n + i]! * inp[i]!;
          return Math.max(acc, 0);
        });
        const a = Array.from({ length: 2 * C2 }, (_, j) => {
          let acc = b.b2[j]!;
          for (let i = 0; i < hid; i++) acc += b.w2[j * hid + i]! * h[i]!;
          return 0.1 * acc;
        });
        const u = v.slice();
        for (let j = 0; j < C2; j++) {
          const sj = clamp * Math.tanh(a[j]! / clamp);
          u[C1 + j] = v[C1 + j]! * Math.exp(sj) + a[C2 + j]!;
          ld += sj;
          maxSum = Math.max(maxSum, Math.abs(sj));
        }
        const g = Array.from(b.gamma, (gm) => 0.2 * Math.log(1 + Math.exp(0.5 * gm)));
        const up = u.map((e, j) => e * g[j]! + b.offset[j]!);
        ld += g.reduce((acc, e) => acc + Math.log(e), 0);
        v = Array.from({ length: C }, (_, i) => up.reduce((acc, e, j) => acc + b.rot[i * C + j]! * e, 0));
      }
      for (let c = 0; c < C; c++) expect(Math.abs(z[vec * C + c]! - v[c]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(v[c]!)));
      expect(Math.abs(logDet[vec]! - ld)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(ld)));
    }
    expect(maxSum).toBeGreaterThan(1); // the soft clamp is far from linear here
    // R is special orthogonal: R R^T = I, det R = +1.
    for (const b of blocks) {
      const R = Array.from({ length: C }, (_, i) => Array.from(b.rot.subarray(i * C, (i + 1) * C)));
      for (let i = 0; i < C; i++) {
        for (let j = 0; j < C; j++) {
          const dot = R[i]!.reduce((acc, e, k) => acc + e * R[j]![k]!, 0);
          expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThanOrEqual(1e-5);
        }
      }
      expect(Math.abs(logAbsDet(R))).toBeLessThanOrEqual(1e-5);
      let det = 1;
      const m = R.map((row) => [...row]);
      for (let k = 0; k < C; k++) {
        let piv = k;
        for (let i = k + 1; i < C; i++) if (Math.abs(m[i]![k]!) > Math.abs(m[piv]![k]!)) piv = i;
        if (piv !== k) { [m[k], m[piv]] = [m[piv]!, m[k]!]; det = -det; }
        det *= m[k]![k]!;
        for (let i = k + 1; i < C; i++) {
          const f = m[i]![k]! / m[k]![k]!;
          for (let j = k; j < C; j++) m[i]![j]! -= f * m[k]![j]!;
        }
      }
      expect(det).toBeCloseTo(1, 5);
    }
  });

  test('scoring after setTensor or a train step uses the new weights, not cached ones', async () => {
    // Inference caches the positional part of the first layers and packs the weights; both must follow
    // every change of the parameters, and reading a tensor must not change any result.
    const cfg = tiny({ levels: [{ channels: 6 }], classes: ['a', 'b'], posEmbedDim: 8, seed: 5 });
    const model = HgadModel.create(cfg);
    const x = randomBatch(21, 2, 4, 5, 6, 1.0);
    const before = await model.score(0, x, 0);
    await model.getTensor('levels.0.blocks.0.w1');
    expectBitEqual((await model.score(0, x, 0)).logp, before.logp, 'after a read');
    for (const name of ['levels.0.blocks.0.w1', 'levels.0.blocks.1.w2', 'levels.0.blocks.0.b1']) {
      const t = await model.getTensor(name);
      await model.setTensor(name, t.map((v, i) => v + 0.05 * Math.sin(i)));
      const after = await model.score(0, x, 0);
      const fresh = HgadModel.create(cfg);
      for (const info of model.tensorInfo()) await fresh.setTensor(info.name, await model.getTensor(info.name));
      const expected = await fresh.score(0, x, 0);
      expect(maxAbsDiff(after.logp, before.logp)).toBeGreaterThan(1e-6);
      expect(maxAbsDiff(after.logp, expected.logp)).toBeLessThanOrEqual(1e-6);
    }
    await model.trainStep(0, x, Int32Array.from([0, 1]), { phase: 1, lr: 1e-2 });
    const trained = await model.score(0, x, 0);
    const fresh = HgadModel.create(cfg);
    for (const info of model.tensorInfo()) await fresh.setTensor(info.name, await model.getTensor(info.name));
    expect(maxAbsDiff(trained.logp, (await fresh.score(0, x, 0)).logp)).toBeLessThanOrEqual(1e-6);
  });

  test('an image gives the same results alone and inside a larger batch (several tiles)', async () => {
    const C = 6, H = 15, W = 20, B = 3;
    const model = HgadModel.create(tiny({ levels: [{ channels: C }], classes: ['a', 'b', 'c'], posEmbedDim: 8, seed: 12 }));
    const xb = randomBatch(71, B, H, W, C, 1.5);
    const alone = { batch: 1, height: H, width: W, channels: C, data: xb.data.slice(2 * H * W * C) };
    const f = await model.forward(0, xb);
    const f1 = await model.forward(0, alone);
    expect(maxAbsDiff(f.z.subarray(2 * H * W * C), f1.z)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(f.logDet.subarray(2 * H * W), f1.logDet)).toBeLessThanOrEqual(1e-5);
    const s = await model.score(0, xb, 1);
    const s1 = await model.score(0, alone, 1);
    expect(maxAbsDiff(s.logp.subarray(2 * H * W), s1.logp)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(s.classLogits.subarray(2 * H * W * 3), s1.classLogits)).toBeLessThanOrEqual(1e-4);
    const back = await model.inverse(0, f.z, { batch: B, height: H, width: W });
    expect(maxAbsDiff(back.data, xb.data)).toBeLessThanOrEqual(1e-4);
    // Positions differ: the same vector at every position does not give the same z everywhere.
    const flat = new Float32Array(H * W * C).map((_, i) => 0.1 * (i % C));
    const ff = await model.forward(0, { batch: 1, height: H, width: W, channels: C, data: flat });
    expect(maxAbsDiff(ff.z.subarray(0, C), ff.z.subarray((H * W - 1) * C))).toBeGreaterThan(1e-3);
  });

  test('log|det J| equals the log-determinant of the numerical Jacobian at a position other than (0, 0)', async () => {
    const C = 5;
    const model = HgadModel.create(tiny({ levels: [{ channels: C }], couplingLayers: 2, posEmbedDim: 4, seed: 7 }));
    // Move the flow away from its near-identity init: global scales g != 1 and larger coupling scales s
    // (not too large: the MLP has ReLU kinks, which central differences must not straddle).
    const r = rng(99);
    for (const k of [0, 1]) {
      const gamma = new Float32Array(C).map(() => GAMMA_IDENTITY + 1.5 * r.normal());
      await model.setTensor(`levels.0.blocks.${k}.gamma`, gamma);
      const w2 = await model.getTensor(`levels.0.blocks.${k}.w2`);
      await model.setTensor(`levels.0.blocks.${k}.w2`, w2.map((v) => 2 * v));
      const b2 = await model.getTensor(`levels.0.blocks.${k}.b2`);
      await model.setTensor(`levels.0.blocks.${k}.b2`, b2.map((v) => 2 * v));
    }
    const H = 2, W = 3, pos = 1 * W + 2; // position (y=1, x=2)
    const eps = 1e-2;
    for (const vseed of [11, 12, 13]) {
      const vr = rng(vseed);
      const v = Array.from({ length: C }, () => vr.normal());
      // Image 0 holds v, images 1 + 2j and 2 + 2j hold v +- eps e_j at the chosen position.
      const B = 2 * C + 1;
      const data = new Float32Array(B * H * W * C);
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          let value = v[c]!;
          if (b > 0) {
            const j = Math.floor((b - 1) / 2);
            if (c === j) value += (b - 1) % 2 === 0 ? eps : -eps;
          }
          for (let p = 0; p < H * W; p++) data[(b * H * W + p) * C + c] = p === pos ? value : 0.3 * (p + c);
        }
      }
      const { z, logDet } = await model.forward(0, { batch: B, height: H, width: W, channels: C, data });
      const zAt = (b: number, c: number): number => z[(b * H * W + pos) * C + c]!;
      // J[i][j] = dz_i / dx_j
      const J = Array.from({ length: C }, (_, i) =>
        Array.from({ length: C }, (_, j) => (zAt(1 + 2 * j, i) - zAt(2 + 2 * j, i)) / (2 * eps)));
      const numeric = logAbsDet(J);
      const reported = logDet[0 * H * W + pos]!;
      expect(Math.abs(reported)).toBeGreaterThan(0.1); // a non-trivial volume change
      expect(Math.abs(reported - numeric)).toBeLessThanOrEqual(2e-3);
    }
    // The position matters: the same vector at (0, 0) has a different log-determinant.
    const v = new Float32Array(C).fill(0.5);
    const data = new Float32Array(H * W * C);
    for (let p = 0; p < H * W; p++) data.set(v, p * C);
    const { logDet } = await model.forward(0, { batch: 1, height: H, width: W, channels: C, data });
    expect(Math.abs(logDet[0]! - logDet[pos]!)).toBeGreaterThan(1e-3);
  });
});

describe('scoring', () => {
  const C = 6, Y = 3, M = 4;
  const classes = ['bottle', 'cable', 'grid'];
  const config = tiny({ levels: [{ channels: C }], classes, centersPerClass: M, couplingLayers: 2, posEmbedDim: 8, seed: 3 });

  /** A model whose centres, deltas and logits have been moved away from their init. */
  async function perturbedModel(): Promise<HgadModel> {
    const model = HgadModel.create(config);
    const r = rng(5);
    const mu = await model.getTensor('levels.0.mu');
    await model.setTensor('levels.0.mu', mu.map((v) => v + 0.7 * r.normal()));
    const delta = await model.getTensor('levels.0.delta');
    await model.setTensor('levels.0.delta', delta.map((v) => 0.6 * v + 0.2 * r.normal()));
    await model.setTensor('levels.0.phi', new Float32Array(Y).map(() => r.normal()));
    await model.setTensor('levels.0.psi', new Float32Array(Y * M).map(() => 1.5 * r.normal()));
    return model;
  }

  test('logp, negEntropy and classLogits equal a direct float64 evaluation of the hierarchical mixture', async () => {
    const model = await perturbedModel();
    const mu = await model.getTensor('levels.0.mu');
    const delta = await model.getTensor('levels.0.delta');
    const phi = await model.getTensor('levels.0.phi');
    const psi = await model.getTensor('levels.0.psi');
    expect(mu.length).toBe(Y * C);
    expect(delta.length).toBe(Y * (M - 1) * C);
    const logPi = logSoftmax(phi);
    const logPiIntra = Array.from({ length: Y }, (_, y) => logSoftmax(psi.subarray(y * M, (y + 1) * M)));
    const centre = (y: number, m: number, i: number): number =>
      mu[y * C + i]! + (m === 0 ? 0 : delta[(y * (M - 1) + m - 1) * C + i]!);

    const x = randomBatch(21, 2, 3, 4, C, 1.2);
    const imageClass = Int32Array.from([0, 2]);
    const { z, logDet } = await model.forward(0, x);
    const s = await model.score(0, x, imageClass);
    expect(Array.from(s.classIndex)).toEqual([0, 2]);
    const HW = 12;
    const close = (got: number, want: number): void => {
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want)));
    };
    let spread = 0;
    for (let n = 0; n < 2 * HW; n++) {
      const zn = Array.from(z.subarray(n * C, (n + 1) * C));
      const y = imageClass[Math.floor(n / HW)]!;
      const comp = Array.from({ length: M }, (_, m) => {
        let d = 0;
        for (let i = 0; i < C; i++) d += (zn[i]! - centre(y, m, i)) ** 2;
        return -0.5 * C * Math.log(2 * Math.PI) - d / 2 + logPiIntra[y]![m]!;
      });
      close(s.logp[n]!, (logSumExp(comp) + logDet[n]!) / C);

      const negHalfD = Array.from({ length: Y }, (_, yy) => {
        let d = 0;
        for (let i = 0; i < C; i++) d += (zn[i]! - mu[yy * C + i]!) ** 2;
        return -d / 2;
      });
      const logQ = logSoftmax(negHalfD);
      const negEntropy = logQ.reduce((acc, lq) => acc + Math.exp(lq) * lq, 0);
      close(s.negEntropy[n]!, negEntropy);
      spread = Math.max(spread, Math.abs(negEntropy));
      for (let yy = 0; yy < Y; yy++) close(s.classLogits[n * Y + yy]!, negHalfD[yy]! + logPi[yy]!);
    }
    // The entropy term is not degenerate for this data (so the check above means something).
    expect(spread).toBeGreaterThan(1e-2);
  });

  test('without a class, each image gets the argmax of its mean class logits, and logp is that class\'s', async () => {
    const model = await perturbedModel();
    const mu = await model.getTensor('levels.0.mu');
    // Latent vectors near the centre of a chosen class per image, mapped back to features.
    const wanted = [2, 0, 1, 2];
    const B = wanted.length, H = 3, W = 3, HW = H * W;
    const r = rng(8);
    const z = new Float32Array(B * HW * C);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < HW; p++) {
        for (let i = 0; i < C; i++) z[(b * HW + p) * C + i] = mu[wanted[b]! * C + i]! + 0.3 * r.normal();
      }
    }
    const x = await model.inverse(0, z, { batch: B, height: H, width: W });
    const inferred = await model.score(0, x);
    // Recompute the argmax of the per-image mean class logits from the returned logits.
    const argmax = Array.from({ length: B }, (_, b) => {
      let best = -1, bestMean = -Infinity;
      for (let y = 0; y < Y; y++) {
        let sum = 0;
        for (let p = 0; p < HW; p++) sum += inferred.classLogits[(b * HW + p) * Y + y]!;
        if (sum / HW > bestMean) [best, bestMean] = [y, sum / HW];
      }
      return best;
    });
    expect(Array.from(inferred.classIndex)).toEqual(argmax);
    expect(argmax).toEqual(wanted);
    // The class posterior: mean over positions of softmax(logits); sums to 1, and the wanted class dominates.
    for (let b = 0; b < B; b++) {
      const post = inferred.classPosterior.subarray(b * Y, (b + 1) * Y);
      expect(post.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
      const expected = new Array<number>(Y).fill(0);
      for (let p = 0; p < HW; p++) {
        const row = Array.from(inferred.classLogits.subarray((b * HW + p) * Y, (b * HW + p + 1) * Y));
        const mx = Math.max(...row);
        const zsum = row.reduce((a, v) => a + Math.exp(v - mx), 0);
        row.forEach((v, y) => { expected[y]! += Math.exp(v - mx) / zsum / HW; });
      }
      expected.forEach((e, y) => expect(post[y]!).toBeCloseTo(e, 5));
      expect(post[wanted[b]!]!).toBeGreaterThan(0.5);
    }

    const given = await model.score(0, x, Int32Array.from(wanted));
    expectBitEqual(given.logp, inferred.logp, 'logp with the inferred classes given');
    expect(Array.from(given.classIndex)).toEqual(wanted);
    expectBitEqual(given.classLogits, inferred.classLogits, 'classLogits');
    expectBitEqual(given.negEntropy, inferred.negEntropy, 'negEntropy');

    // One class for every image, by name and by index.
    const byName = await model.score(0, x, 'cable');
    const byIndex = await model.score(0, x, 1);
    const byArray = await model.score(0, x, Int32Array.from([1, 1, 1, 1]));
    expect(Array.from(byName.classIndex)).toEqual([1, 1, 1, 1]);
    expectBitEqual(byName.logp, byIndex.logp, 'by name vs by index');
    expectBitEqual(byName.logp, byArray.logp, 'by name vs by Int32Array');
    // Image 1 is a "bottle" image: scored as "cable" its logp differs; image 2 (a cable) is unchanged.
    const img = (a: Float32Array, b: number): Float32Array => a.subarray(b * HW, (b + 1) * HW);
    expectBitEqual(img(byName.logp, 2), img(inferred.logp, 2), 'cable image');
    expect(maxAbsDiff(img(byName.logp, 1), img(inferred.logp, 1))).toBeGreaterThan(1e-3);
    const byNames = await model.score(0, x, Int32Array.from([classes.indexOf('grid'), 0, 1, 2]));
    expectBitEqual(byNames.logp, inferred.logp, 'Int32Array of indices');
  });
});

describe('initialisation', () => {
  const config = (seed: number): HgadConfig => ({
    levels: [{ channels: 16 }, { channels: 16 }],
    classes: ['a', 'b', 'c'],
    centersPerClass: 4,
    couplingLayers: 3,
    posEmbedDim: 8,
    seed,
    threads: 2,
  });

  test('the same seed and config give bit-identical tensors; another seed gives different random tensors', async () => {
    const a = await allTensors(HgadModel.create(config(42)));
    const b = await allTensors(HgadModel.create(config(42)));
    const c = await allTensors(HgadModel.create(config(43)));
    expect([...a.keys()]).toEqual([...b.keys()]);
    expect(a.size).toBe(2 * (3 * 7 + 4));
    for (const [name, t] of a) expectBitEqual(t, b.get(name)!, name);
    // Random draws (HGAD.md: Linear init, rotations, deltas) depend on the seed; mu, phi, psi, gamma
    // and offset have deterministic initial values.
    let differing = 0;
    for (const [name, t] of a) {
      const random = /\.(w1|b1|w2|b2|rotation|delta)$/.test(name);
      const same = bytesOf(t).equals(bytesOf(c.get(name)!));
      expect({ name, same }).toEqual({ name, same: !random });
      if (!same) differing++;
    }
    expect(differing).toBeGreaterThan(0);
    // The two levels have the same shapes but are not copies of each other.
    expect(bytesOf(a.get('levels.0.blocks.0.w1')!).equals(bytesOf(a.get('levels.1.blocks.0.w1')!))).toBe(false);
  });
});

describe('training', () => {
  // Two images of different classes whose features come from different distributions.
  const x = ((): FeatureBatch => {
    const b = randomBatch(31, 2, 3, 3, 4, 0.5);
    for (let i = 0; i < b.data.length / 2; i++) b.data[i]! += 1;
    return b;
  })();
  const labels = Int32Array.from([0, 1]);

  function expectLossFields(l: LossTerms, phase: 1 | 2): void {
    expect(Object.keys(l).sort()).toEqual(['Le', 'Lg', 'Lgi', 'Lmi', 'Lz', 'loss']);
    for (const v of Object.values(l)) expect(Number.isFinite(v)).toBe(true);
    const want = l.Lg - 100 * l.Lmi + l.Le + (phase === 2 ? l.Lgi + l.Lz : 0);
    expect(Math.abs(l.loss - want)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
  }

  test('trainStep reduces the loss on a fixed batch in phase 1 and in phase 2', async () => {
    const model = HgadModel.create(tiny({ seed: 1 }));
    const before = await model.getTensor('levels.0.blocks.0.w1');
    const phase1: LossTerms[] = [];
    for (let i = 0; i < 15; i++) phase1.push(await model.trainStep(0, x, labels, { phase: 1, lr: 1e-2 }));
    const phase2: LossTerms[] = [];
    for (let i = 0; i < 15; i++) phase2.push(await model.trainStep(0, x, labels, { phase: 2, lr: 1e-2 }));
    phase1.forEach((l) => expectLossFields(l, 1));
    phase2.forEach((l) => expectLossFields(l, 2));
    // The phase-2 terms are reported in phase 1 too, but do not count towards the loss there.
    expect(phase1[0]!.Lgi).not.toBe(0);
    expect(phase1[0]!.Lz).not.toBe(0);
    expect(phase1[14]!.loss).toBeLessThan(phase1[0]!.loss - 1e-3);
    expect(phase2[14]!.loss).toBeLessThan(phase2[0]!.loss - 1e-3);
    // The parameters moved.
    expect(maxAbsDiff(await model.getTensor('levels.0.blocks.0.w1'), before)).toBeGreaterThan(0);
  });

  test('gradients() follows the loss weights and the stop-gradients of HGAD.md section 4', async () => {
    const model = HgadModel.create(tiny({ seed: 2 }));
    // Perturbed logits so the softmax gradients are not at a symmetric point.
    await model.setTensor('levels.0.psi', Float32Array.from([0.3, -0.2, 0.5, -0.4, 0.1, 0.2]));
    await model.setTensor('levels.0.phi', Float32Array.from([0.2, -0.3]));
    const nonzero = (a: Float32Array): boolean => a.some((v) => v !== 0);
    const allZero = (a: Float32Array): boolean => a.every((v) => v === 0);

    const p2 = await model.gradients(0, x, labels, { phase: 2 });
    expectLossFields(p2.losses, 2);
    const names = model.tensorInfo().filter((t) => t.group !== 'fixed').map((t) => t.name);
    expect([...p2.grads.keys()].sort()).toEqual([...names].sort());
    expect(nonzero(p2.grads.get('levels.0.psi')!)).toBe(true);
    expect(nonzero(p2.inputGrad)).toBe(true);

    const p1 = await model.gradients(0, x, labels, { phase: 1 });
    expectLossFields(p1.losses, 1);
    expect(allZero(p1.grads.get('levels.0.psi')!)).toBe(true); // psi only enters L_gi and L_z
    expect(nonzero(p1.grads.get('levels.0.phi')!)).toBe(true);

    const lz = await model.gradients(0, x, labels, { weights: { Lz: 1 } });
    expect(lz.losses.loss).toBe(lz.losses.Lz);
    expect(lz.losses.Lz).toBeGreaterThan(0);
    expect(nonzero(lz.grads.get('levels.0.psi')!)).toBe(true);

    const lgi = await model.gradients(0, x, labels, { weights: { Lgi: 1 } });
    expect(lgi.losses.loss).toBe(lgi.losses.Lgi);
    expect(allZero(lgi.grads.get('levels.0.mu')!)).toBe(true); // mu is detached in L_gi
    expect(nonzero(lgi.grads.get('levels.0.delta')!)).toBe(true);
    expect(nonzero(lgi.grads.get('levels.0.psi')!)).toBe(true);

    const lmi = await model.gradients(0, x, labels, { weights: { Lmi: 1 } });
    expect(lmi.losses.loss).toBe(lmi.losses.Lmi);
    expect(allZero(lmi.grads.get('levels.0.phi')!)).toBe(true); // log pi is detached in L_mi
    expect(nonzero(lmi.grads.get('levels.0.mu')!)).toBe(true);

    // The loss terms do not depend on the weights; gradients() makes no update.
    expect(lz.losses.Lg).toBe(p2.losses.Lg);
    expect(lmi.losses.Lz).toBe(p2.losses.Lz);
    const again = await model.gradients(0, x, labels, { phase: 2 });
    expect(again.losses).toEqual(p2.losses);
  });

  test('gradients of centres, logits and global affine parameters match central differences of the loss', async () => {
    const C = 6;
    const model = HgadModel.create(tiny({ levels: [{ channels: C }], classes: ['a', 'b', 'c'], centersPerClass: 4, posEmbedDim: 8, seed: 1 }));
    await model.setTensor('levels.0.phi', Float32Array.from([0.3, -0.5, 0.1]));
    await model.setTensor('levels.0.psi', new Float32Array(12).map((_, i) => Math.cos(i)));
    const xb = randomBatch(61, 3, 15, 20, C, 1.5); // 900 vectors: several tiles on both threads
    const lab = Int32Array.from([0, 1, 2]);
    const all = { Lg: 1, Lmi: -100, Le: 1, Lgi: 1, Lz: 1 };
    // Terms whose dependence on the tensor is cut by a stop-gradient (HGAD.md section 4) are left out.
    const cases: [string, Partial<Record<'Lg' | 'Lmi' | 'Le' | 'Lgi' | 'Lz', number>>][] = [
      ['levels.0.phi', { ...all, Lmi: 0 }],
      ['levels.0.psi', all],
      ['levels.0.mu', { ...all, Lgi: 0 }],
      ['levels.0.delta', all],
      ['levels.0.blocks.1.gamma', all],
      ['levels.0.blocks.0.offset', all],
    ];
    const eps = 1e-2;
    for (const [name, weights] of cases) {
      const analytic = (await model.gradients(0, xb, lab, { weights })).grads.get(name)!;
      const p = await model.getTensor(name);
      for (const i of [0, 1, Math.min(5, p.length - 1)]) {
        const q = p.slice();
        q[i] = p[i]! + eps;
        await model.setTensor(name, q);
        const up = (await model.gradients(0, xb, lab, { weights })).losses.loss;
        q[i] = p[i]! - eps;
        await model.setTensor(name, q);
        const down = (await model.gradients(0, xb, lab, { weights })).losses.loss;
        await model.setTensor(name, p);
        const numeric = (up - down) / (2 * eps);
        expect({ name, i, ok: Math.abs(analytic[i]! - numeric) <= 2e-3 * Math.abs(numeric) + 1e-4 })
          .toEqual({ name, i, ok: true });
      }
      expect(analytic.some((v) => Math.abs(v) > 1e-3)).toBe(true);
    }
  });

  test('trainStep is one Adam step of HGAD.md section 5 and returns the losses before the step', async () => {
    const model = HgadModel.create(tiny({ seed: 6 }));
    await model.setTensor('levels.0.psi', Float32Array.from([0.3, -0.2, 0.5, -0.4, 0.1, 0.2]));
    const lr = 1e-3;
    const info = model.tensorInfo();
    const params = await allTensors(model);
    const m = new Map<string, Float64Array>();
    const v = new Map<string, Float64Array>();
    for (let step = 1; step <= 2; step++) {
      const phase = step === 1 ? 1 : 2;
      const { losses, grads } = await model.gradients(0, x, labels, { phase });
      const returned = await model.trainStep(0, x, labels, { phase, lr });
      expect(returned).toEqual(losses);
      const bc1 = 1 - 0.95 ** step, bc2 = 1 - 0.99 ** step;
      for (const t of info) {
        const now = await model.getTensor(t.name);
        const before = params.get(t.name)!;
        if (t.group === 'fixed') {
          expectBitEqual(now, before, `${t.name} (not trained)`);
          continue;
        }
        const g = grads.get(t.name)!;
        const scale = t.group === 'centres' ? 3 : 1;
        const decay = t.group === 'flow' ? 1e-4 : 0;
        const mt = m.get(t.name) ?? new Float64Array(g.length);
        const vt = v.get(t.name) ?? new Float64Array(g.length);
        let maxErr = 0, maxStep = 0;
        for (let i = 0; i < g.length; i++) {
          const gi = g[i]! + decay * before[i]!;
          mt[i] = 0.95 * mt[i]! + 0.05 * gi;
          vt[i] = 0.99 * vt[i]! + 0.01 * gi * gi;
          const want = before[i]! - (lr * scale / bc1) * mt[i]! / (Math.sqrt(vt[i]! / bc2) + 1e-8);
          maxErr = Math.max(maxErr, Math.abs(now[i]! - want));
          maxStep = Math.max(maxStep, Math.abs(now[i]! - before[i]!));
        }
        m.set(t.name, mt);
        v.set(t.name, vt);
        expect({ name: t.name, step, ok: maxErr <= 2e-3 * lr * scale }).toEqual({ name: t.name, step, ok: true });
        if (step === 1 && (t.name === 'levels.0.psi' || t.name === 'levels.0.delta')) {
          // In phase 1 the intra-class centres and logits get no gradient (only L_gi and L_z use them).
          expect({ name: t.name, zero: g.every((e) => e === 0) }).toEqual({ name: t.name, zero: true });
          expect(maxStep).toBe(0);
        } else if (step === 1) {
          // The first Adam step moves every parameter with a non-zero gradient by about lr * scale.
          expect({ name: t.name, maxStep: Math.abs(maxStep / (lr * scale) - 1) < 1e-2 }).toEqual({ name: t.name, maxStep: true });
        }
        const om = await model.getTensor(t.name.replace(/^levels\.0\./, 'optimizer.levels.0.m.'));
        for (let i = 0; i < g.length; i++) expect(Math.abs(om[i]! - mt[i]!)).toBeLessThanOrEqual(1e-6 * Math.abs(mt[i]!) + 1e-12);
        params.set(t.name, now);
      }
    }
  });

  test('levels are independent: training level 1 leaves every level-0 tensor unchanged', async () => {
    const model = HgadModel.create(tiny({ levels: [{ channels: 4 }, { channels: 6 }], seed: 4 }));
    const before = await allTensors(model, true);
    const x0 = randomBatch(41, 2, 2, 3, 4);
    const x1 = randomBatch(42, 2, 2, 3, 6);
    const f0 = await model.forward(0, x0);
    for (let i = 0; i < 3; i++) await model.trainStep(1, x1, labels, { phase: 2, lr: 1e-2 });
    await model.gradients(1, x1, labels);
    const after = await allTensors(model, true);
    let changedLevel1 = 0;
    for (const [name, t] of before) {
      const same = bytesOf(t).equals(bytesOf(after.get(name)!));
      if (/^(optimizer\.)?levels\.0\./.test(name)) expect({ name, same }).toEqual({ name, same: true });
      else if (!same) changedLevel1++;
    }
    expect(changedLevel1).toBeGreaterThan(10);
    expectBitEqual((await model.forward(0, x0)).z, f0.z, 'level-0 forward');
    // And the other way round: a level-0 step leaves level 1 alone.
    const mid = await allTensors(model, true);
    await model.trainStep(0, x0, labels, { phase: 1, lr: 1e-2 });
    const end = await allTensors(model, true);
    for (const [name, t] of mid) {
      if (/^(optimizer\.)?levels\.1\./.test(name)) expect(bytesOf(t).equals(bytesOf(end.get(name)!))).toBe(true);
    }
    expect(bytesOf(mid.get('levels.0.mu')!).equals(bytesOf(end.get('levels.0.mu')!))).toBe(false);
  });
});

describe('concurrency', () => {
  test('operations fired without awaiting run one at a time, in call order', async () => {
    const cfg = tiny({ levels: [{ channels: 4 }, { channels: 6 }], classes: ['a', 'b', 'c'], seed: 9 });
    const x0 = randomBatch(51, 3, 4, 4, 4);
    const x1 = randomBatch(52, 3, 4, 4, 6);
    const labels = Int32Array.from([0, 1, 2]);
    type Op = (m: HgadModel) => Promise<unknown>;
    const ops: Op[] = [
      (m) => m.score(0, x0),
      (m) => m.trainStep(0, x0, labels, { phase: 1, lr: 5e-2 }),
      (m) => m.forward(0, x0),
      (m) => m.trainStep(1, x1, labels, { phase: 2, lr: 5e-2 }),
      (m) => m.score(0, x0),
      (m) => m.trainStep(0, x0, labels, { phase: 2, lr: 5e-2 }),
      (m) => m.getTensor('levels.0.mu'),
      (m) => m.forward(1, x1),
      (m) => m.trainStep(0, x0, labels, { phase: 2, lr: 5e-2 }),
      (m) => m.score(1, x1, 'b'),
      (m) => m.gradients(0, x0, labels),
      (m) => m.forward(0, x0),
    ];
    const sequential = HgadModel.create(cfg);
    const want: unknown[] = [];
    for (const op of ops) want.push(await op(sequential));
    const concurrent = HgadModel.create(cfg);
    const got = await Promise.all(ops.map((op) => op(concurrent)));
    // Results of successive reads differ (training happened in between), so order matters.
    expect(got[0]).not.toEqual(got[4]);
    expect(got[2]).not.toEqual(got[11]);
    expect(got).toEqual(want);
    const a = await allTensors(sequential, true);
    const b = await allTensors(concurrent, true);
    for (const [name, t] of a) expectBitEqual(t, b.get(name)!, name);
  });
});
