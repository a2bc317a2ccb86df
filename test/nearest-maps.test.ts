// Latent nearest-neighbour maps as the product's scoring (TrainOptions.maps 'nearest', map.nearest):
// the banks are the class's own averaged training latents, capped and stratified; scoring through the
// scorer equals the search done by hand; the banks survive a save and load; a damaged bank is the
// file's error; adding a class leaves the old classes' scores bit for bit.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Dataset, imageBatches, openDataset, Sample, splitHoldout } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import type { FeatureLevel } from '../lib/features/backbone';
import { HgadError, HgadModelFileError } from '../lib/errors';
import { distanceMaps, localAverage, nearestDistances } from '../lib/eval/nearest';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { LatentBanks } from '../lib/pipeline/latent-banks';
import { decodeSpec, encodeSpec, PipelineSpec } from '../lib/pipeline/spec';
import { heatmapRange } from '../lib/score/heatmap-files';
import { AnomalyResult, scoreImages } from '../lib/score/scorer';
import { extendDetector } from '../lib/train/extend';
import { train, TrainOptions } from '../lib/train/trainer';
import { trainOptionsFrom, TRAIN_OPTIONS } from '../lib/cli/train';
import { parse } from '../lib/cli/args';

const CLASSES = ['carpet', 'pill'];
const CAP = 40;

let dir: string;
let dataset: Dataset;
let detector: AnomalyDetector;
let file: string;

function options(extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    data: dataset, classes: CLASSES, backbone: { model: 'demo', inputSize: 64 },
    schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4, seed: 1, threads: 1, progressBar: false, flow: { couplingLayers: 1, centersPerClass: 2 }, holdout: 0.34, mapSize: 32,
    maps: 'nearest', bankSize: CAP, ...extra,
  };
}

async function results(d: AnomalyDetector, samples: Sample[], normalization: 'calibrated' | 'batch' = 'calibrated'): Promise<AnomalyResult[]> {
  const out: AnomalyResult[] = [];
  const inputs = samples.map((s) => ({ path: s.path, className: s.className }));
  for await (const r of scoreImages(d, inputs, { onError: 'throw', normalization, batchSize: 3 })) out.push(r);
  return out;
}

/**
 * Each sample's averaged latents through the shared flow, level by level (one image per entry), and the
 * coarse level: the last level's latents 2x2-averaged (checked against a plain loop), then 3x3-averaged.
 */
async function latentsOf(d: AnomalyDetector, samples: Sample[]): Promise<FeatureLevel[][]> {
  const out: FeatureLevel[][] = [];
  const size = d.inputSize;
  for await (const b of imageBatches(samples, { batchSize: 1, size: { width: size, height: size } })) {
    const features = await d.features(b.pixels, 1);
    const levels: FeatureLevel[] = [];
    for (let l = 0; l < features.length; l++) {
      const z = { ...features[l]!, data: (await d.model.forward(l, features[l]!)).z };
      levels.push(await localAverage(z));
      if (l === features.length - 1 && d.spec.map.nearest?.coarse) {
        const { height: h, width: w, channels: C } = z;
        const half = new Float32Array((h >> 1) * (w >> 1) * C);
        for (let y = 0; y < h >> 1; y++) for (let x = 0; x < w >> 1; x++) for (let c = 0; c < C; c++) {
          const at = (yy: number, xx: number): number => z.data[(yy * w + xx) * C + c]!;
          // float32 rounding in the native order: (row 0 pair + row 1 pair) / 4
          const top = Math.fround(at(2 * y, 2 * x) + at(2 * y, 2 * x + 1)), bottom = Math.fround(at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1));
          half[(y * (w >> 1) + x) * C + c] = Math.fround(0.25 * Math.fround(top + bottom));
        }
        levels.push(await localAverage({ data: half, batch: 1, height: h >> 1, width: w >> 1, channels: C }));
      }
    }
    out.push(levels);
  }
  return out;
}

const testOf = (c: string): Sample[] => dataset.samples('test', c);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-nearest-maps-'));
  const root = join(dir, 'data');
  await generateDemoDataset({ root, seed: 1, classes: [...CLASSES, 'wood'], size: 64, trainPerClass: 6, testGoodPerClass: 1, testDefectPerClass: 2 });
  dataset = await openDataset({ root, layout: 'mvtec' });
  detector = await train(options());
  file = join(dir, 'nearest.hgad');
  await detector.save(file);
}, 180000);

afterAll(async () => {
  await detector?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the spec says nearest; each class has banks of its own averaged training latents, capped and stratified', async () => {
  expect(detector.spec.version).toBe(5);
  expect(detector.spec.map.nearest).toEqual({ cap: CAP, seed: 1, coarse: true });
  const channels = detector.bankChannels();
  expect(channels).toHaveLength(detector.model.config.levels.length + 1);
  const { train: trained } = splitHoldout(CLASSES.flatMap((c) => dataset.samples('train', c)), 0.34, 1);
  const bb = await detector.backbone();
  for (const c of CLASSES) {
    const own = trained.filter((s) => s.className === c);
    const vectors = detector.banks.vectors(c, channels);
    const last = bb.levels[bb.levels.length - 1]!;
    const positions = [...bb.levels.map((l) => l.height * l.width), (last.height >> 1) * (last.width >> 1)];
    expect(vectors).toEqual(positions.map((p) => Math.min(CAP, own.length * p)));
    const latents = await latentsOf(detector, own);
    const banks = detector.banks.get(c)!;
    for (let l = 0; l < banks.length; l++) {
      const C = channels[l]!;
      const rows = new Set(latents.flatMap((img) => {
        const r: string[] = [];
        for (let p = 0; p < img[l]!.data.length; p += C) r.push(img[l]!.data.subarray(p, p + C).join());
        return r;
      }));
      for (let i = 0; i < banks[l]!.length; i += C) expect(rows.has(banks[l]!.subarray(i, i + C).join())).toBe(true);
    }
  }
}, 60000);

test('scoring is the search against the image\'s class bank, the same under both normalisations', async () => {
  const S = detector.mapSize;
  for (const c of CLASSES) {
    const samples = testOf(c);
    const got = await results(detector, samples);
    const latents = await latentsOf(detector, samples);
    for (let i = 0; i < samples.length; i++) {
      const planes = [];
      for (let l = 0; l < latents[i]!.length; l++) {
        const f = latents[i]![l]!;
        const d = await nearestDistances(f.data, detector.banks.get(c)![l]!, { dim: f.channels, precision: detector.model.precision.inference });
        planes.push({ values: d, height: f.height, width: f.width });
      }
      const want = await distanceMaps(planes, 1, { height: S, width: S, sigma: detector.spec.map.sigma });
      expect(got[i]!.map).toEqual(want.maps);
      expect(got[i]!.imageScore).toBe(want.scores[0]);
      expect(got[i]!.isAnomaly).toBe(got[i]!.imageScore > detector.spec.calibration!.thresholds[c]!);
      expect(got[i]!.maps).toBe('nearest');
      // Distances never reach 0: the heatmap scale starts at half the threshold.
      const t = got[i]!.threshold!;
      expect(heatmapRange(got[i]!)).toEqual({ min: 0.5 * t, max: 1.5 * t });
    }
    const batch = await results(detector, samples, 'batch');
    expect(batch.map((r) => r.map)).toEqual(got.map((r) => r.map));
    expect(batch.every((r) => r.isAnomaly === null)).toBe(true);
    // A class inferred (not given) picks the same class here, and so the same maps.
    const inferred: AnomalyResult[] = [];
    for await (const r of scoreImages(detector, samples.map((s) => s.path), { onError: 'throw' })) inferred.push(r);
    inferred.forEach((r, i) => {
      expect(r.classSource).toBe('inferred');
      if (r.className === c) expect(r.map).toEqual(got[i]!.map);
    });
  }
  expect(Object.values(detector.spec.calibration!.thresholds).every((t) => t > 0 && Number.isFinite(t))).toBe(true);
}, 60000);

test('the banks survive a save and load, and the loaded detector scores the same', async () => {
  const back = await AnomalyDetector.load(file, { threads: 1 });
  try {
    const channels = back.bankChannels();
    for (const c of CLASSES) expect(back.banks.get(c)).toEqual(detector.banks.get(c));
    expect(back.banks.vectors(CLASSES[0]!, channels)).toEqual(detector.banks.vectors(CLASSES[0]!, channels));
    expect(channels).toEqual(detector.bankChannels());
    const samples = testOf('pill');
    expect((await results(back, samples)).map((r) => r.imageScore)).toEqual((await results(detector, samples)).map((r) => r.imageScore));
  } finally {
    await back.dispose();
  }
}, 60000);

test('damaged or missing banks are the file\'s error; a detector without banks cannot score', async () => {
  const broken = async (banks: LatentBanks, spec = detector.spec): Promise<unknown> => {
    const path = join(dir, `broken-${Math.random().toString(36).slice(2)}.hgad`);
    const d = detector.withModel(detector.model, spec, 1);
    d.banks = banks;
    await d.save(path);
    return AnomalyDetector.load(path, { threads: 1 }).then(async (x) => {
      await x.dispose();
      return null;
    }, (e: unknown) => e);
  };
  const [a, b] = detector.banks.get('carpet')!;
  const nan = a!.slice();
  nan[3] = Number.NaN;
  const pill = detector.banks.get('pill')!;
  const cases: [LatentBanks, RegExp][] = [
    [new LatentBanks([['carpet', [nan, b!, ...detector.banks.get('carpet')!.slice(2)]], ['pill', pill]]), /non-finite/],
    [new LatentBanks([['pill', pill]]), /class carpet has no nearest-neighbour bank/],
    // More vectors than map.nearest.cap.
    [new LatentBanks([['carpet', [Float32Array.from([...a!, ...a!]), ...detector.banks.get('carpet')!.slice(1)]], ['pill', pill]]), /must have shape \[1\.\.40, /],
  ];
  for (const [banks, message] of cases) {
    const e = await broken(banks);
    expect(e).toBeInstanceOf(HgadModelFileError);
    expect((e as Error).message).toMatch(message);
  }
  // Banks in a file whose maps are the flow's.
  const { nearest: _n, ...density } = detector.spec.map;
  const L = detector.model.config.levels.length;
  const e = await broken(new LatentBanks(CLASSES.map((c) => [c, detector.banks.get(c)!.slice(0, L)])), { ...detector.spec, map: density, version: 1 });
  expect((e as Error).message).toMatch(/map has no nearest/);
  // A nearest detector whose banks were never built (a checkpoint before training finished).
  const bare = detector.withModel(detector.model, detector.spec, 1);
  bare.banks = new LatentBanks();
  const err = await results(bare, testOf('pill')).catch((x: unknown) => x);
  expect(err).toBeInstanceOf(HgadError);
  expect((err as HgadError).parameter).toBe('detector');
}, 60000);

test('map.nearest is read back, needs version 5 and a cap in range', () => {
  const o = JSON.parse(encodeSpec(detector.spec));
  const decode = (spec: unknown): PipelineSpec => decodeSpec(JSON.stringify(spec), 'f.hgad', detector.model.config.levels.length, detector.classes);
  expect(decode(o).map).toEqual(detector.spec.map);
  expect(() => decode({ ...o, version: 4 })).toThrow(/map.nearest needs version 5/);
  expect(() => decode({ ...o, map: { ...o.map, nearest: { cap: 0, seed: 1 } } })).toThrow(/map.nearest.cap must be an integer/);
  expect(() => decode({ ...o, map: { ...o.map, nearest: { cap: 8, seed: 1, k: 1 } } })).toThrow(/map.nearest.k is not a known field/);
  expect(() => decode({ ...o, map: { ...o.map, nearest: { cap: 8, seed: 1, coarse: 'yes' } } })).toThrow(/map.nearest.coarse must be true or false/);
  // Thresholds of distance maps are not bounded by the density constants' tops.
  expect(decode({ ...o, calibration: { ...o.calibration, thresholds: { carpet: 1e6, pill: 0 } } }).calibration!.thresholds.carpet).toBe(1e6);
  expect(() => decode({ ...o, calibration: { ...o.calibration, thresholds: { carpet: -1, pill: 0 } } })).toThrow(/thresholds.carpet/);
});

test('options: maps, bankSize and coarseLevel are checked; the CLI passes --maps, --bank-size and --coarse-level', async () => {
  await expect(train({ ...options(), maps: 'knn' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'maps' });
  await expect(train({ ...options(), bankSize: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'bankSize' });
  await expect(train({ ...options(), maps: 'density', bankSize: 10 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'bankSize' });
  await expect(train({ ...options({ bankSize: undefined }), maps: 'density', coarseLevel: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'coarseLevel' });
  await expect(train({ ...options(), coarseLevel: 'yes' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'coarseLevel' });
  const flat = await train({ ...options(), coarseLevel: false });
  expect(flat.spec.map.nearest).toEqual({ cap: CAP, seed: 1 });
  expect(flat.bankChannels()).toHaveLength(flat.model.config.levels.length);
  expect(flat.banks.get('pill')).toHaveLength(flat.model.config.levels.length);
  await flat.dispose();
  // The demo backbone's coarsest level at 16 px is 1 x 1: nothing to halve.
  await expect(train({ ...options(), backbone: { model: 'demo', inputSize: 16 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'coarseLevel' });
  const o = trainOptionsFrom(parse('train', ['--data', 'x', '--out', 'y', '--maps', 'nearest', '--bank-size', '512', '--coarse-level', 'off'], TRAIN_OPTIONS));
  expect([o.maps, o.bankSize, o.coarseLevel]).toEqual(['nearest', 512, false]);
  expect(() => trainOptionsFrom(parse('train', ['--data', 'x', '--out', 'y', '--maps', 'knn'], TRAIN_OPTIONS))).toThrow(/--maps/);
});

test('adding a class builds its bank and leaves the old classes\' scores bit for bit', async () => {
  const before = await results(detector, testOf('carpet'));
  const ext = await extendDetector(detector, { data: dataset, classes: ['wood'], classFlow: { couplingLayers: 1, schedule: { metaEpochs: 1, subEpochs: 2 } } });
  try {
    expect(ext.banks.get('wood')).toBeDefined();
    expect(ext.spec.staleThresholds).toEqual([]);
    expect((await results(ext, testOf('carpet'))).map((r) => r.map)).toEqual(before.map((r) => r.map));
    const wood = await results(ext, testOf('wood'));
    expect(wood.every((r) => r.className === 'wood' && Number.isFinite(r.imageScore))).toBe(true);
    expect(ext.spec.calibration!.thresholds.wood).toBeGreaterThan(0);
    const path = join(dir, 'extended.hgad');
    await ext.save(path);
    const back = await AnomalyDetector.load(path, { threads: 1 });
    expect((await results(back, testOf('wood'))).map((r) => r.imageScore)).toEqual(wood.map((r) => r.imageScore));
    await back.dispose();
  } finally {
    await ext.dispose();
  }
}, 120000);
