// The prior option (HgadConfig.prior / TrainOptions.prior): the single-Gaussian baseline against the
// classic flow's loss and density computed by hand from forward(), frozen centres and logits, the
// inter-only ablation's phase-1 losses, storage in model files (old files read as 'hgad'), the
// logp-only anomaly map, and scoring rules of a single-Gaussian detector.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { trainOptionsFrom, TRAIN_OPTIONS } from '../lib/cli/train';
import { parse } from '../lib/cli/args';
import { resolveConfig } from '../lib/config';
import { openDataset, Dataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadArgumentError } from '../lib/errors';
import { HgadModel } from '../lib/model';
import { decodeSpec } from '../lib/pipeline/spec';
import { anomalyMaps, batchConstants, LevelMaps } from '../lib/score/maps';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';

function noise(seed: number, n: number, scale = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = scale * (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5);
  }
  return out;
}

const C = 6, Y = 3;
const config = (prior?: 'hgad' | 'single-gaussian' | 'inter-only') => ({
  levels: [{ channels: C }], classes: ['a', 'b', 'c'], couplingLayers: 2, posEmbedDim: 8, seed: 4, threads: 1,
  device: 'cpu' as const, precision: 'fp32' as const, ...(prior ? { prior } : {}),
});
const batch = { batch: 2, height: 2, width: 3, channels: C, data: noise(9, 2 * 2 * 3 * C, 3) };
const labels = Int32Array.from([2, 0]);

describe('config', () => {
  test("defaults to 'hgad' with 10 centres; the other priors have 1", () => {
    expect(resolveConfig(config())).toMatchObject({ prior: 'hgad', centersPerClass: 10 });
    expect(resolveConfig(config('single-gaussian'))).toMatchObject({ prior: 'single-gaussian', centersPerClass: 1 });
    expect(resolveConfig(config('inter-only'))).toMatchObject({ prior: 'inter-only', centersPerClass: 1 });
  });

  test('bad priors and centre counts are typed errors naming the setting', () => {
    expect(() => resolveConfig({ ...config(), prior: 'gaussian' })).toThrow(HgadArgumentError);
    expect(() => resolveConfig({ ...config(), prior: 'gaussian' })).toThrow(/config\.prior/);
    expect(() => resolveConfig({ ...config('single-gaussian'), centersPerClass: 10 })).toThrow(/config\.centersPerClass/);
    expect(() => resolveConfig({ ...config('inter-only'), centersPerClass: 1 })).not.toThrow();
  });
});

describe('single-gaussian', () => {
  test('loss and logp are the classic flow (computed from forward by hand); centres and logits stay 0', async () => {
    const m = HgadModel.create(config('single-gaussian'));
    const mu0 = await m.getTensor('levels.0.mu');
    const phi0 = await m.getTensor('levels.0.phi');
    expect([...mu0].every((v) => v === 0)).toBe(true);
    expect([...phi0].every((v) => v === 0)).toBe(true);
    // A few steps (with phase 2 asked for) so the flow is no longer at its initialisation.
    for (let i = 0; i < 3; i++) await m.trainStep(0, batch, labels, { phase: 2, lr: 1e-2 });
    expect([...(await m.getTensor('levels.0.mu'))].every((v) => v === 0)).toBe(true);
    expect([...(await m.getTensor('levels.0.phi'))].every((v) => v === 0)).toBe(true);
    expect([...(await m.getTensor('optimizer.levels.0.m.mu'))].every((v) => v === 0)).toBe(true);

    const { z, logDet } = await m.forward(0, batch);
    const N = logDet.length;
    let lg = 0;
    const logp = new Float64Array(N);
    for (let r = 0; r < N; r++) {
      let sq = 0;
      for (let c = 0; c < C; c++) sq += z[r * C + c]! ** 2;
      lg += (sq / 2 - logDet[r]!) / C / N;
      logp[r] = (-sq / 2 - (C / 2) * Math.log(2 * Math.PI) + logDet[r]!) / C;
    }
    const g = await m.gradients(0, batch, labels, { phase: 2 });
    expect(g.losses.Lg).toBeCloseTo(lg, 4);
    expect(Math.abs(g.losses.Lmi)).toBeLessThan(1e-6);
    expect(g.losses.Le).toBeCloseTo(Math.log(Y), 5);
    // Phase 2 was asked for, phase 1 was used: the total is L_g - 100 L_mi + L_e only.
    expect(g.losses.loss).toBeCloseTo(g.losses.Lg - 100 * g.losses.Lmi + g.losses.Le, 5);
    for (const cls of [0, 1, 2]) {
      const s = await m.score(0, batch, cls);
      for (let r = 0; r < N; r++) expect(s.logp[r]).toBeCloseTo(logp[r]!, 4);
      for (let r = 0; r < N; r++) expect(s.negEntropy[r]).toBeCloseTo(-Math.log(Y), 5);
    }
  });

  test('the prior is stored in the model file; files without it load as hgad', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hgad-prior-'));
    try {
      const m = HgadModel.create(config('single-gaussian'));
      await m.save(join(dir, 'sg.hgad'));
      expect((await HgadModel.load(join(dir, 'sg.hgad'), { device: 'cpu' })).config.prior).toBe('single-gaussian');
      // An hgad file as written before the prior existed: drop the key from the stored config.
      const h = HgadModel.create(config());
      await h.save(join(dir, 'old.hgad'));
      const bytes = await readFile(join(dir, 'old.hgad'));
      const len = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8'));
      const stored = JSON.parse(header.__metadata__.config);
      expect(stored.prior).toBe('hgad');
      delete stored.prior;
      header.__metadata__.config = JSON.stringify(stored);
      let text = JSON.stringify(header);
      while ((Buffer.byteLength(text) + 8) % 8 !== 0) text += ' ';
      const head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
      await writeFile(join(dir, 'old2.hgad'), Buffer.concat([head, Buffer.from(text), bytes.subarray(8 + len)]));
      const old = await HgadModel.load(join(dir, 'old2.hgad'), { device: 'cpu' });
      expect(old.config.prior).toBe('hgad');
      expect(old.config.centersPerClass).toBe(10);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('inter-only', () => {
  test('trains with the phase-1 losses whatever phase is asked; centres move', async () => {
    const a = HgadModel.create(config('inter-only'));
    const g2 = await a.gradients(0, batch, labels, { phase: 2 });
    const g1 = await a.gradients(0, batch, labels, { phase: 1 });
    expect(g2.losses.loss).toBe(g1.losses.loss);
    expect(g1.losses.loss).toBeCloseTo(g1.losses.Lg - 100 * g1.losses.Lmi + g1.losses.Le, 5);
    for (const [name, grad] of g1.grads) expect(g2.grads.get(name)).toEqual(grad);
    const hg = await HgadModel.create(config()).gradients(0, batch, labels, { phase: 2 });
    expect(hg.losses.loss).not.toBeCloseTo(hg.losses.Lg - 100 * hg.losses.Lmi + hg.losses.Le, 3);
    const mu0 = await a.getTensor('levels.0.mu');
    await a.trainStep(0, batch, labels, { phase: 2, lr: 1e-2 });
    expect(await a.getTensor('levels.0.mu')).not.toEqual(mu0);
  });
});

describe("map combine 'logp'", () => {
  const levels = (seed: number): LevelMaps[] => [[4, 4], [2, 2]].map(([h, w], l) => ({
    logp: noise(seed + l, 2 * h! * w!, 2), negEntropy: noise(seed + 10 + l, 2 * h! * w!), height: h!, width: w!,
  }));

  test('is the logp map alone: sqrt of the product map whose nent inputs are the logp ones', async () => {
    const size = { height: 8, width: 8, sigma: 1 };
    const lv = levels(3);
    const c = await batchConstants(lv, 2, size);
    const only = await anomalyMaps(lv, 2, c, size, 'logp');
    // Reference: with negEntropy := logp and the nent constants := the logp ones, A_logp * A_nent = A_logp^2.
    const twin = lv.map((l) => ({ ...l, negEntropy: l.logp }));
    const sq = await anomalyMaps(twin, 2, { ...c, nentShift: c.logpShift, nentTop: c.logpTop }, size, 'logp*nent');
    let worst = 0;
    for (let i = 0; i < only.maps.length; i++) worst = Math.max(worst, Math.abs(only.maps[i]! - Math.sqrt(sq.maps[i]!)));
    expect(worst).toBeLessThan(1e-5);
    expect(Math.max(...only.maps)).toBeGreaterThan(0.01);
    // The negative entropy plays no part.
    const other = await anomalyMaps(lv.map((l, i) => ({ ...l, negEntropy: noise(99 + i, l.negEntropy.length) })), 2,
      { ...c, nentTop: c.nentTop + 5 }, size, 'logp');
    expect(other.maps).toEqual(only.maps);
    await expect(anomalyMaps(lv, 2, c, size, 'nent' as never)).rejects.toMatchObject({ parameter: 'combine' });
  });

  test("the spec reads map.combine (absent: by class count); other values are MODEL_FILE errors", () => {
    const spec = (map: object) => JSON.stringify({
      version: 1, backbone: { model: 'demo', sha256: null, taps: ['t'], scales: null, inputSize: 64, mean: [0, 0, 0], std: [1, 1, 1] },
      map, calibration: null, training: null,
    });
    expect(decodeSpec(spec({ size: 64, sigma: 4 }), 'f', 1, ['a']).map.combine).toBe('logp');
    expect(decodeSpec(spec({ size: 64, sigma: 4, combine: 'logp*nent' }), 'f', 1, ['a']).map.combine).toBe('logp*nent');
    expect(() => decodeSpec(spec({ size: 64, sigma: 4, combine: 'nent' }), 'f', 1, ['a'])).toThrow(/map\.combine/);
    // Old files: the product map for several classes, logp alone for one (its negative entropy is 0).
    expect(decodeSpec(spec({ size: 64, sigma: 4 }), 'f', 1, ['a', 'b']).map.combine).toBe('logp*nent');
  });
});

describe('a single-gaussian detector', () => {
  let dir: string;
  let dataset: Dataset;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-prior-det-'));
    await generateDemoDataset({ root: join(dir, 'data'), seed: 2, classes: ['carpet', 'pill'], trainPerClass: 6, testGoodPerClass: 1, testDefectPerClass: 1 });
    dataset = await openDataset({ root: join(dir, 'data'), layout: 'mvtec' });
  }, 120000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("uses logp maps, needs a class to score, and says classSource 'given'", async () => {
    const d = await train({
      data: dataset, backbone: { model: 'demo' }, prior: 'single-gaussian', batchSize: 4, seed: 1, threads: 2, progressBar: false,
      schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 0 }, flow: { couplingLayers: 2 }, holdout: 0.3,
    });
    try {
      expect(d.model.config.prior).toBe('single-gaussian');
      expect(d.spec.map.combine).toBe('logp');
      const files = dataset.samples('test', 'pill').map((s) => s.path);
      const run = async (opts: object) => {
        const out = [];
        for await (const r of scoreImages(d, files, { ...opts, onError: 'throw' })) out.push(r);
        return out;
      };
      await expect(run({})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'options.className' });
      const given = await run({ className: 'pill' });
      expect(given.map((r) => r.classSource)).toEqual(files.map(() => 'given'));
      expect(given.every((r) => Number.isFinite(r.imageScore) && r.map.some((v) => v > 0))).toBe(true);
      await expect(train({ data: dataset, backbone: { model: 'demo' }, prior: 'single-gaussian', flow: { centersPerClass: 4 } }))
        .rejects.toMatchObject({ parameter: 'config.centersPerClass' });
    } finally {
      await d.dispose();
    }
  }, 120000);

  test("a one-class HGAD detector uses logp maps (its negative entropy is 0 everywhere): maps are not constant", async () => {
    const d = await train({
      data: dataset, classes: ['pill'], backbone: { model: 'demo' }, batchSize: 4, seed: 1, threads: 2, progressBar: false,
      schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 0 }, flow: { couplingLayers: 2, centersPerClass: 2 }, holdout: 0.3,
    });
    try {
      expect(d.spec.map.combine).toBe('logp');
      const out = [];
      for await (const r of scoreImages(d, dataset.samples('test', 'pill').map((s) => s.path), { normalization: 'batch', onError: 'throw' })) out.push(r);
      for (const r of out) expect(Math.max(...r.map)).toBeGreaterThan(Math.min(...r.map));
    } finally {
      await d.dispose();
    }
  }, 120000);

  test('hgad train --prior', () => {
    const p = parse('train', ['--data', 'x', '--out', 'y', '--prior', 'inter-only'], TRAIN_OPTIONS);
    expect(trainOptionsFrom(p).prior).toBe('inter-only');
    expect(() => trainOptionsFrom(parse('train', ['--data', 'x', '--out', 'y', '--prior', 'flat'], TRAIN_OPTIONS))).toThrow(/prior/);
  });
});
