// Adding classes to a trained detector (extendDetector, hgad train --from --add-classes): the old
// classes' parameters, logp maps and (one-class detectors) scores stay bit for bit, the new class is
// trained and calibrated and detects its defects, the errors users hit name their parameter, the file
// records the history, and nothing half-written is left behind.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Dataset, imageBatches, openDataset, Sample } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadArgumentError, HgadError } from '../lib/errors';
import { auroc } from '../lib/eval/metrics';
import { HgadModel } from '../lib/model';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { ClassFlows } from '../lib/pipeline/class-flows';
import { flowStage } from '../lib/pipeline/flow-stage';
import { combineOf, decodeSpec, encodeSpec, HistoryEntry, MapCombine } from '../lib/pipeline/spec';
import { calibrate } from '../lib/score/calibrate';
import { anomalyMaps } from '../lib/score/maps';
import { scoreImages } from '../lib/score/scorer';
import { extendDetector } from '../lib/train/extend';
import { train, TrainOptions } from '../lib/train/trainer';
import { hgad } from './run-cli';

let dir: string;
let dataset: Dataset;
let root: string;
/** One class (pill): its maps use logp alone. */
let one: AnomalyDetector;
let oneFile: string;
/** Two classes (pill, wood): logp * negative entropy. */
let two: AnomalyDetector;

function options(classes: string[]): TrainOptions {
  return {
    data: dataset, classes, backbone: { model: 'demo', inputSize: 64 },
    schedule: { metaEpochs: 2, subEpochs: 2, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4, seed: 1, threads: 2, progressBar: false, flow: { couplingLayers: 1, centersPerClass: 2 }, holdout: 0.25, mapSize: 32,
  };
}

async function scores(d: AnomalyDetector, samples: Sample[], normalization: 'calibrated' | 'batch' = 'calibrated'): Promise<Float32Array> {
  const out: number[] = [];
  const inputs = samples.map((s) => ({ path: s.path, className: s.className }));
  for await (const r of scoreImages(d, inputs, { onError: 'throw', normalization, batchSize: 4 })) out.push(r.imageScore);
  return Float32Array.from(out);
}

/**
 * Image scores made by hand from the flow's outputs: the images' classes given, the class's own map
 * constants and the combination asked for (what calibrated scoring must do for an added class).
 */
async function scoresBy(d: AnomalyDetector, samples: Sample[], className: string, combine: MapCombine,
  classFlows?: ClassFlows): Promise<Float32Array> {
  const out: number[] = [];
  const constants = d.spec.calibration!.classConstants![className]!;
  const size = { height: d.mapSize, width: d.mapSize, sigma: d.spec.map.sigma };
  for await (const batch of imageBatches(samples, { batchSize: 4, size: d.inputSize })) {
    const flow = await flowStage(d.model, await d.features(batch.pixels, batch.batch), new Int32Array(batch.batch).fill(d.classes.indexOf(className)),
      d.spec.map.density, classFlows);
    out.push(...(await anomalyMaps(flow.levels, batch.batch, constants, size, combine)).scores);
  }
  return Float32Array.from(out);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

async function rejection(p: Promise<unknown>): Promise<HgadError> {
  try {
    await p;
  } catch (e) {
    return e as HgadError;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-extend-'));
  root = join(dir, 'data');
  await generateDemoDataset({ root, seed: 3, classes: ['pill', 'wood', 'carpet', 'nut'], size: 64, trainPerClass: 8, testGoodPerClass: 4, testDefectPerClass: 4 });
  dataset = await openDataset({ root, layout: 'mvtec' });
  one = await train(options(['pill']));
  oneFile = join(dir, 'one.hgad');
  await one.save(oneFile);
  two = await train(options(['pill', 'wood']));
}, 300000);

afterAll(async () => {
  await one?.dispose();
  await two?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('extendDetector', () => {
  test("flow 'shared', one-class detector: old parameters and scores unchanged bit for bit; the new class detects its defects", async () => {
    const ext = await extendDetector(one, { data: dataset, classes: ['carpet'], flow: 'shared' });
    try {
      expect(ext.classes).toEqual(['pill', 'carpet']);
      // The old class keeps its logp maps; the new class, in a detector of two classes now, multiplies
      // in the negative entropy.
      expect(ext.spec.map.combine).toBe('logp');
      expect(ext.spec.map.classCombine).toEqual({ carpet: 'logp*nent' });
      expect(combineOf(ext.spec.map, 'pill')).toBe('logp');
      expect(combineOf(ext.spec.map, 'carpet')).toBe('logp*nent');
      expect(ext.spec.version).toBe(3);
      // Every old tensor, and the old class's rows of the class tensors, are the old ones.
      for (const t of one.model.tensorInfo()) {
        const a = await one.model.getTensor(t.name), b = await ext.model.getTensor(t.name);
        expect(sameBits(a, b.subarray(0, a.length))).toBe(true);
      }
      const pillTest = dataset.samples('test', 'pill');
      const carpetTest = dataset.samples('test', 'carpet');
      const pillBefore = await scores(one, pillTest), pillBatchBefore = await scores(one, pillTest, 'batch');
      expect(sameBits(pillBefore, await scores(ext, pillTest))).toBe(true);
      expect(sameBits(pillBatchBefore, await scores(ext, pillTest, 'batch'))).toBe(true);
      // Scored in the same batches as the new class's images (calibrated, and 'batch' normalisation,
      // which normalises each map combination's images together): still the same bits.
      const mixed = pillTest.flatMap((x, i) => [x, carpetTest[i]!]);
      const even = (a: Float32Array): Float32Array => a.filter((_, i) => i % 2 === 0);
      expect(sameBits(pillBefore, even(await scores(ext, mixed)))).toBe(true);
      expect(sameBits(pillBatchBefore, even(await scores(ext, mixed, 'batch')))).toBe(true);
      expect(ext.spec.calibration!.thresholds.pill).toBe(one.spec.calibration!.thresholds.pill);
      expect(ext.spec.staleThresholds).toEqual([]);
      // The new class's calibrated scores are its own constants' logp*nent maps, alone or mixed in.
      const carpetScores = await scores(ext, carpetTest);
      expect(sameBits(carpetScores, await scoresBy(ext, carpetTest, 'carpet', 'logp*nent'))).toBe(true);
      expect(sameBits(carpetScores, await scoresBy(ext, carpetTest, 'carpet', 'logp'))).toBe(false);
      expect(sameBits(carpetScores, (await scores(ext, mixed)).filter((_, i) => i % 2 === 1))).toBe(true);
      // The new class: a threshold and map constants of its own, and its defects score above its good images.
      expect(await auroc(carpetScores, Uint8Array.from(carpetTest, (x) => x.label))).toBeGreaterThanOrEqual(0.75);
      expect(ext.spec.calibration!.thresholds.carpet).toBeGreaterThan(0);
      expect(ext.spec.calibration!.classConstants!.carpet!.images).toBe(1);
      // The class is inferred right for the new class's images.
      let right = 0;
      for await (const r of scoreImages(ext, carpetTest.map((x) => x.path), { onError: 'throw' })) right += r.className === 'carpet' ? 1 : 0;
      expect(right).toBeGreaterThanOrEqual(carpetTest.length - 1);
      // The original detector is untouched and usable.
      expect(one.classes).toEqual(['pill']);
      expect(one.spec.history).toBeUndefined();
    } finally {
      await ext.dispose();
    }
  }, 120000);

  test('class flow (the default): the new class gets a flow of its own; old classes unchanged bit for bit; it survives save and load', async () => {
    const ext = await extendDetector(one, { data: dataset, classes: ['carpet'], classFlow: { couplingLayers: 2, schedule: { metaEpochs: 2, subEpochs: 4 } } });
    const file = join(dir, 'class-flow.hgad');
    try {
      expect(ext.classes).toEqual(['pill', 'carpet']);
      expect(ext.spec.classFlows).toEqual([{ className: 'carpet', couplingLayers: 2, centersPerClass: 2, seed: expect.any(Number) }]);
      expect(ext.classFlows.get('carpet')!.config).toMatchObject({ classes: ['carpet'], couplingLayers: 2, centersPerClass: 2 });
      // Its maps are logp maps, as the old class's: nothing per class to store in map.
      expect(ext.spec.map).toEqual(one.spec.map);
      expect(ext.spec.version).toBe(4);
      for (const t of one.model.tensorInfo()) {
        const a = await one.model.getTensor(t.name), b = await ext.model.getTensor(t.name);
        expect(sameBits(a, b.subarray(0, a.length))).toBe(true);
      }
      const pillTest = dataset.samples('test', 'pill'), carpetTest = dataset.samples('test', 'carpet');
      const pillBefore = await scores(one, pillTest), pillBatchBefore = await scores(one, pillTest, 'batch');
      const mixed = pillTest.flatMap((x, i) => [x, carpetTest[i]!]);
      const even = (a: Float32Array): Float32Array => a.filter((_, i) => i % 2 === 0);
      expect(sameBits(pillBefore, await scores(ext, pillTest))).toBe(true);
      expect(sameBits(pillBefore, even(await scores(ext, mixed)))).toBe(true);
      // 'batch' normalisation: carpet's maps (another flow's scale) are normalised apart from pill's,
      // though both are logp maps.
      expect(sameBits(pillBatchBefore, even(await scores(ext, mixed, 'batch')))).toBe(true);
      const carpetBatch = await scores(ext, carpetTest, 'batch');
      expect(sameBits(carpetBatch, (await scores(ext, mixed, 'batch')).filter((_, i) => i % 2 === 1))).toBe(true);
      expect(ext.spec.staleThresholds).toEqual([]);
      // carpet's calibrated scores are its own flow's logp maps under its own constants, alone or mixed
      // in with pill's images; not the shared flow's.
      const carpetScores = await scores(ext, carpetTest);
      expect(sameBits(carpetScores, await scoresBy(ext, carpetTest, 'carpet', 'logp', ext.classFlows))).toBe(true);
      expect(sameBits(carpetScores, await scoresBy(ext, carpetTest, 'carpet', 'logp'))).toBe(false);
      expect(sameBits(carpetScores, (await scores(ext, mixed)).filter((_, i) => i % 2 === 1))).toBe(true);
      expect(await auroc(carpetScores, Uint8Array.from(carpetTest, (x) => x.label))).toBeGreaterThanOrEqual(0.75);
      // Which class an image is still comes from the shared flow's mixture.
      let right = 0;
      for await (const r of scoreImages(ext, carpetTest.map((x) => x.path), { onError: 'throw' })) right += r.className === 'carpet' ? 1 : 0;
      expect(right).toBeGreaterThanOrEqual(carpetTest.length - 1);
      expect(ext.spec.history![0]!.classFlowSchedule).toMatchObject({ metaEpochs: 2, subEpochs: 4 });

      // Calibrating again measures carpet apart (constants of its own), pill as the one-class detector
      // does; without carpet's images, carpet keeps its constants and threshold.
      const pillNormals = dataset.samples('train', 'pill'), carpetNormals = dataset.samples('train', 'carpet');
      const both = await calibrate(ext, [...pillNormals, ...carpetNormals]);
      const pillOnly = await calibrate(one, pillNormals);
      expect(both.logpShift).toEqual(pillOnly.logpShift);
      expect(both.logpTop).toBe(pillOnly.logpTop);
      expect(both.thresholds.pill).toBe(pillOnly.thresholds.pill);
      expect(both.classConstants!.carpet!.images).toBe(carpetNormals.length);
      expect(both.classConstants!.carpet!.logpTop).not.toBe(both.logpTop);
      const withoutCarpet = await calibrate(ext, pillNormals);
      expect(withoutCarpet.classConstants!.carpet).toEqual(ext.spec.calibration!.classConstants!.carpet);
      expect(withoutCarpet.thresholds.carpet).toBe(ext.spec.calibration!.thresholds.carpet);
      expect(withoutCarpet.thresholds.pill).toBe(pillOnly.thresholds.pill);

      await ext.save(file);
      const back = await AnomalyDetector.load(file);
      try {
        expect(back.spec).toEqual(ext.spec);
        expect(sameBits(carpetScores, await scores(back, carpetTest))).toBe(true);
        expect(sameBits(pillBefore, await scores(back, pillTest))).toBe(true);
        // Adding another class keeps carpet's flow and adds nut's.
        const again = await extendDetector(back, { data: dataset, classes: ['nut'], classFlow: { couplingLayers: 1, schedule: { metaEpochs: 1 } } });
        try {
          expect(again.spec.classFlows!.map((f) => [f.className, f.couplingLayers])).toEqual([['carpet', 2], ['nut', 1]]);
          expect(again.classFlows.get('carpet')).toBe(back.classFlows.get('carpet'));
          expect(sameBits(carpetScores, await scores(again, carpetTest))).toBe(true);
          expect(again.spec.staleThresholds).toEqual([]);
        } finally {
          await again.dispose();
        }
      } finally {
        await back.dispose();
      }
    } finally {
      await ext.dispose();
    }
  }, 180000);

  test("flow 'shared', multi-class detector: old logp maps unchanged bit for bit; old thresholds marked stale (the entropy map moves)", async () => {
    const ext = await extendDetector(two, { data: dataset, classes: ['carpet'], flow: 'shared' });
    try {
      const features = await two.features(new Uint8Array(2 * 64 * 64 * 3).fill(90), 2);
      for (let l = 0; l < features.length; l++) {
        for (const cls of [0, 1]) {
          const a = await two.model.score(l, features[l]!, cls), b = await ext.model.score(l, features[l]!, cls);
          expect(sameBits(a.logp, b.logp)).toBe(true);
        }
      }
      expect(ext.spec.staleThresholds).toEqual(['pill', 'wood']);
      expect(ext.spec.calibration!.thresholds.pill).toBe(two.spec.calibration!.thresholds.pill);
      // Every class, old and new, makes logp*nent maps: nothing per class to store, still version 2.
      expect(ext.spec.map).toEqual(two.spec.map);
      expect(combineOf(ext.spec.map, 'carpet')).toBe('logp*nent');
      expect(JSON.parse(encodeSpec(ext.spec)).version).toBe(2);
    } finally {
      await ext.dispose();
    }
  }, 120000);

  test("flow 'shared': the file records the history; extending again appends to it", async () => {
    const ext = await extendDetector(one, { data: { root }, classes: ['carpet'], schedule: { metaEpochs: 1 }, flow: 'shared' });
    const file = join(dir, 'ext.hgad');
    await ext.save(file);
    await ext.dispose();
    expect(JSON.parse((await HgadModel.load(oneFile)).metadata.pipeline!).version).toBe(1);
    const back = await AnomalyDetector.load(file);
    try {
      expect(JSON.parse(back.model.metadata.pipeline!).version).toBe(3);
      expect(back.spec.version).toBe(3);
      expect(back.spec.map).toEqual({ ...one.spec.map, classCombine: { carpet: 'logp*nent' } });
      expect(back.spec.history).toHaveLength(1);
      const h = back.spec.history![0]!;
      expect(h).toMatchObject({ action: 'extend', classes: ['carpet'], data: root, trainImages: 7, calibrationImages: 1, seed: 1, batchSize: 4 });
      expect(h.schedule.metaEpochs).toBe(1);
      expect(Date.parse(h.at)).toBeGreaterThan(Date.now() - 600000);
      expect(back.spec.calibration!.classConstants!.carpet).toEqual(ext.spec.calibration!.classConstants!.carpet);
      const again = await extendDetector(back, { data: dataset, classes: ['nut'], schedule: { metaEpochs: 1 }, flow: 'shared' });
      expect(again.classes).toEqual(['pill', 'carpet', 'nut']);
      expect(again.spec.history!.map((e) => e.classes)).toEqual([['carpet'], ['nut']]);
      // pill keeps its logp maps (not stale); carpet's logp*nent maps now have nut in their posterior.
      expect(again.spec.map.classCombine).toEqual({ carpet: 'logp*nent', nut: 'logp*nent' });
      expect(again.spec.staleThresholds).toEqual(['carpet']);
      await again.dispose();
    } finally {
      await back.dispose();
    }
  }, 120000);

  test("flow 'shared', combine: 'logp' keeps the new class on logp maps (nothing per class to store: version 2)", async () => {
    const ext = await extendDetector(one, { data: dataset, classes: ['carpet'], combine: 'logp', schedule: { metaEpochs: 1 }, flow: 'shared' });
    try {
      expect(ext.spec.map).toEqual(one.spec.map);
      expect(combineOf(ext.spec.map, 'carpet')).toBe('logp');
      expect(ext.spec.version).toBe(2);
      const carpetTest = dataset.samples('test', 'carpet');
      expect(sameBits(await scores(ext, carpetTest), await scoresBy(ext, carpetTest, 'carpet', 'logp'))).toBe(true);
    } finally {
      await ext.dispose();
    }
  }, 120000);

  test('errors name their parameter', async () => {
    const code = async (p: Promise<unknown>): Promise<[string, string | undefined]> => {
      const e = await rejection(p);
      expect(e).toBeInstanceOf(HgadError);
      return [e.code, e.parameter];
    };
    expect(await code(extendDetector(one, { data: dataset, classes: ['pill'] }))).toEqual(['INVALID_ARGUMENT', 'classes[0]']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet', 'carpet'] }))).toEqual(['INVALID_ARGUMENT', 'classes[1]']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['bottle'] }))).toEqual(['INVALID_ARGUMENT', 'classes[0]']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], backbone: { model: 'demo', inputSize: 96 } })))
      .toEqual(['INVALID_ARGUMENT', 'backbone.inputSize']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], backbone: { model: 'mobilenetv2-int8' } })))
      .toEqual(['INVALID_ARGUMENT', 'backbone.model']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], flow: {} } as never))).toEqual(['INVALID_ARGUMENT', 'flow']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], flows: 'class' } as never))).toEqual(['INVALID_ARGUMENT', 'options.flows']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], combine: 'logp*nent' }))).toEqual(['INVALID_ARGUMENT', 'combine']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], flow: 'shared', classFlow: {} }))).toEqual(['INVALID_ARGUMENT', 'classFlow']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], classFlow: { couplingLayers: 0 } })))
      .toEqual(['INVALID_ARGUMENT', 'classFlow.couplingLayers']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], classFlow: { layers: 2 } as never })))
      .toEqual(['INVALID_ARGUMENT', 'classFlow.layers']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], classFlow: { schedule: { metaEpochs: 0 } } })))
      .toEqual(['INVALID_ARGUMENT', 'classFlow.schedule.metaEpochs']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], holdout: 1 }))).toEqual(['INVALID_ARGUMENT', 'holdout']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], combine: 'nent' as never, flow: 'shared' }))).toEqual(['INVALID_ARGUMENT', 'combine']);
    const [scheduleCode, scheduleParameter] = await code(extendDetector(one, { data: dataset, classes: ['carpet'], schedule: { passes: 2 } as never }));
    expect(scheduleCode).toBe('INVALID_ARGUMENT');
    expect(scheduleParameter).toMatch(/^schedule/);
    // A detector without training state (a bare spec, or a checkpoint of an unfinished run).
    const untrained = one.withModel(one.model, { ...one.spec, training: null });
    const e = await rejection(extendDetector(untrained, { data: dataset, classes: ['carpet'] }));
    expect(e).toBeInstanceOf(HgadArgumentError);
    expect(e.parameter).toBe('detector');
    expect(e.message).toMatch(/training state/);
    const unfinished = one.withModel(one.model, { ...one.spec, training: { ...one.spec.training!, complete: false } });
    expect((await rejection(extendDetector(unfinished, { data: dataset, classes: ['carpet'] }))).parameter).toBe('detector');
    await untrained.dispose();
    await unfinished.dispose();
    expect((await rejection(extendDetector({} as AnomalyDetector, { data: dataset, classes: ['carpet'] }))).parameter).toBe('detector');
  }, 120000);

  test('an aborted extension rejects and leaves the detector as it was', async () => {
    const abort = new AbortController();
    const e = await rejection(extendDetector(one, {
      data: dataset, classes: ['carpet'], signal: abort.signal, onProgress: () => abort.abort(),
    }));
    expect(e.code).toBe('ABORTED');
    expect(one.classes).toEqual(['pill']);
    expect(one.isDisposed).toBe(false);
  }, 60000);
});

// The spec-decoding tests: `one` (trained on pill) extended by carpet.
function decodeCarpet(text: string): ReturnType<typeof decodeSpec> {
  return decodeSpec(text, 'f', one.model.config.levels.length, ['pill', 'carpet']);
}

/** decodeSpec of `text` changed by `mutate` throws `message`. */
function expectDecodeError(text: string, mutate: (o: Record<string, any>) => void, message: RegExp): void {
  const o = JSON.parse(text);
  mutate(o);
  expect(() => decodeCarpet(JSON.stringify(o))).toThrow(message);
}

/** A history entry of the extension that added carpet; `fields` gives its time, digest and what else differs. */
function carpetEntry(fields: Partial<HistoryEntry> & Pick<HistoryEntry, 'at' | 'trainDigest'>): HistoryEntry {
  return {
    action: 'extend', classes: ['carpet'], data: null, trainImages: 7, calibrationImages: 1,
    schedule: one.spec.training!.schedule, seed: 1, batchSize: 4, seconds: 1, ...fields,
  };
}

describe('detector file, pipeline version 2', () => {
  test('history, staleThresholds and classConstants are checked on load; other detectors stay version 1', () => {
    const cal = one.spec.calibration!;
    const entry = carpetEntry({ at: '2026-11-30T17:00:00.000Z', data: '/data', trainDigest: 'a'.repeat(64), seconds: 3.5 });
    const good = {
      ...one.spec, history: [entry], staleThresholds: [],
      calibration: { ...cal, thresholds: { ...cal.thresholds, carpet: 0.01 }, classConstants: { carpet: { ...cal, thresholds: undefined, quantile: undefined, images: 1 } } },
    };
    const text = encodeSpec(JSON.parse(JSON.stringify(good)));
    expect(JSON.parse(text).version).toBe(2);
    expect(decodeCarpet(text).history).toEqual([entry]);
    expect(JSON.parse(encodeSpec(one.spec)).version).toBe(1);
    const bad = (mutate: (o: Record<string, any>) => void, message: RegExp): void => expectDecodeError(text, mutate, message);
    bad((o) => { o.version = 1; }, /need version 2/);
    bad((o) => { delete o.history; }, /version 2 needs/);
    bad((o) => { o.history[0].classes = ['bottle']; }, /history\[0\]\.classes\[0\]/);
    bad((o) => { o.history.push({ ...o.history[0] }); }, /history\[1\]\.classes\[0\]/);
    bad((o) => { o.history[0].at = 'yesterday'; }, /history\[0\]\.at/);
    bad((o) => { o.staleThresholds = ['bottle']; }, /staleThresholds\[0\]/);
    bad((o) => { o.calibration.classConstants = { bottle: o.calibration.classConstants.carpet }; }, /classConstants\.bottle is not a known field/);
    bad((o) => { o.calibration.classConstants.carpet.logpTop = 1000; }, /classConstants\.carpet\.logpTop/);
    bad((o) => { o.calibration.thresholds.carpet = 10; }, /thresholds\.carpet/);
  });

  test('version 3: map.classCombine is read back and checked; version-2 files without it still load', () => {
    const cal = one.spec.calibration!;
    const entry = carpetEntry({ at: '2026-12-01T02:00:00.000Z', trainDigest: 'b'.repeat(64) });
    const constants = { logpShift: cal.logpShift, nentShift: cal.nentShift.map(() => -0.5), logpTop: 1.5, nentTop: 1.2, images: 1 };
    const spec = {
      ...one.spec, map: { ...one.spec.map, classCombine: { carpet: 'logp*nent' as const } }, history: [entry], staleThresholds: [],
      // carpet's threshold lies above its logpTop: possible only for its product maps (bound logpTop * nentTop).
      calibration: { ...cal, thresholds: { ...cal.thresholds, carpet: 1.7 }, classConstants: { carpet: constants } },
    };
    const text = encodeSpec(spec);
    expect(JSON.parse(text).version).toBe(3);
    const back = decodeCarpet(text);
    expect(back.version).toBe(3);
    expect(back.map.classCombine).toEqual({ carpet: 'logp*nent' });
    expect(combineOf(back.map, 'pill')).toBe('logp');
    expect(combineOf(back.map, 'carpet')).toBe('logp*nent');
    expect(back.calibration!.thresholds.carpet).toBe(1.7);
    const bad = (mutate: (o: Record<string, any>) => void, message: RegExp): void => expectDecodeError(text, mutate, message);
    bad((o) => { o.version = 2; }, /map\.classCombine needs version 3/);
    bad((o) => { o.map.classCombine = { bottle: 'logp' }; }, /map\.classCombine\.bottle is not a known field/);
    bad((o) => { o.map.classCombine.carpet = 'nent'; }, /map\.classCombine\.carpet must be one of/);
    bad((o) => { o.map.classCombine = ['logp']; }, /map\.classCombine must be an object/);
    bad((o) => { delete o.staleThresholds; }, /version 3 needs history and staleThresholds/);
    bad((o) => { o.version = 6; }, /version number 6 is not supported/);
    // Under 'logp' maps (as a file from before version 3 reads carpet) 1.7 is above carpet's logpTop.
    bad((o) => { o.map.classCombine.carpet = 'logp'; }, /thresholds\.carpet/);
    // A version-2 file written by an hgad before per-class combinations: every class reads map.combine.
    const v2 = JSON.parse(text);
    delete v2.map.classCombine;
    v2.version = 2;
    v2.calibration.thresholds.carpet = 1.2;
    const old = decodeCarpet(JSON.stringify(v2));
    expect(old.version).toBe(2);
    expect(old.map.classCombine).toBeUndefined();
    expect(combineOf(old.map, 'carpet')).toBe('logp');
    expect(JSON.parse(encodeSpec(old)).version).toBe(2);
  });
});

describe('detector file, pipeline version 4 (class flows)', () => {
  test('classFlows are checked on load', () => {
    const cal = one.spec.calibration!;
    const entry = carpetEntry({
      at: '2026-12-01T11:00:00.000Z', trainDigest: 'c'.repeat(64), classFlowSchedule: { ...one.spec.training!.schedule, subEpochs: 8 },
    });
    const spec = {
      ...one.spec, history: [entry], staleThresholds: [], classFlows: [{ className: 'carpet', couplingLayers: 2, centersPerClass: 3, seed: 7 }],
      calibration: { ...cal, thresholds: { ...cal.thresholds, carpet: 0.5 }, classConstants: { carpet: { ...cal, thresholds: undefined, quantile: undefined, images: 1 } } },
    };
    const text = encodeSpec(JSON.parse(JSON.stringify(spec)));
    expect(JSON.parse(text).version).toBe(4);
    const back = decodeCarpet(text);
    expect(back.classFlows).toEqual(spec.classFlows);
    expect(back.history![0]!.classFlowSchedule!.subEpochs).toBe(8);
    const bad = (mutate: (o: Record<string, any>) => void, message: RegExp): void => expectDecodeError(text, mutate, message);
    bad((o) => { o.version = 3; }, /classFlows needs version 4/);
    bad((o) => { o.classFlows = []; }, /classFlows must be an array of 1 to 2/);
    bad((o) => { o.classFlows[0].className = 'bottle'; }, /classFlows\[0\]\.className/);
    bad((o) => { o.classFlows.push({ ...o.classFlows[0] }); }, /classFlows\[1\]\.className/);
    bad((o) => { o.classFlows[0].couplingLayers = 0; }, /classFlows\[0\]\.couplingLayers/);
    bad((o) => { o.classFlows[0].centersPerClass = 1e9; }, /classFlows\[0\]\.centersPerClass/);
    bad((o) => { o.classFlows[0].layers = 2; }, /classFlows\[0\]\.layers is not a known field/);
    bad((o) => { o.map.classCombine = { carpet: 'logp*nent' }; }, /classFlows\[0\]: a class with a flow of its own makes 'logp' maps/);
    bad((o) => { o.history[0].classFlowSchedule = { metaEpochs: 0 }; }, /history\[0\]\.classFlowSchedule/);
  });

  test("a class flow's stored tensors are checked: missing, stray or damaged ones are MODEL_FILE errors", async () => {
    const ext = await extendDetector(one, { data: dataset, classes: ['carpet'], classFlow: { couplingLayers: 1, schedule: { metaEpochs: 1, subEpochs: 1 } } });
    try {
      const tensors = new Map([...ext.reduction?.tensors() ?? [], ...await ext.classFlows.tensors(ext.spec)]);
      const names = [...tensors.keys()].filter((n) => n.startsWith('pipeline.classFlow.0.'));
      expect(names.length).toBeGreaterThan(3);
      const write = async (name: string, change: (t: Map<string, { shape: number[]; data: Float32Array }>) => void): Promise<string> => {
        const copy = new Map([...tensors].map(([k, v]) => [k, { shape: v.shape, data: v.data.slice() }]));
        change(copy);
        const file = join(dir, `${name}.hgad`);
        await ext.model.save(file, { optimizer: false, metadata: { pipeline: encodeSpec(ext.spec) }, tensors: copy });
        return file;
      };
      const fileError = async (file: string, message: RegExp): Promise<void> => {
        const e = await rejection(AnomalyDetector.load(file));
        expect(e.code).toBe('MODEL_FILE');
        expect(e.message).toMatch(message);
      };
      const fixed = ext.classFlows.get('carpet')!.tensorInfo().find((t) => t.group === 'fixed' && t.shape.length === 2)!;
      await fileError(await write('missing', (t) => t.delete(names[0]!)), /is missing, expected/);
      await fileError(await write('stray', (t) => t.set('pipeline.classFlow.1.levels.0.mu', { shape: [1], data: new Float32Array(1) })),
        /belongs to no class flow/);
      await fileError(await write('extra', (t) => t.set('pipeline.classFlow.0.levels.9.mu', { shape: [1], data: new Float32Array(1) })),
        /unexpected tensor "levels\.9\.mu"/);
      await fileError(await write('rotation', (t) => t.get(`pipeline.classFlow.0.${fixed.name}`)!.data.forEach((_, i, a) => { a[i]! *= 0.5; })),
        /not orthogonal/);
      const good = await AnomalyDetector.load(await write('good', () => undefined));
      expect(good.classFlows.size).toBe(1);
      await good.dispose();
    } finally {
      await ext.dispose();
    }
  }, 120000);
});

describe('hgad train --from --add-classes', () => {
  test('writes the extended detector; errors leave no file, half-written or whole', async () => {
    const out = join(dir, 'cli', 'new.hgad');
    const ok = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', join(dir, 'cli-ok.hgad'), '--epochs', '1');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/added carpet/);
    expect(ok.stdout).toMatch(/classes: pill, carpet;/);
    const back = await AnomalyDetector.load(join(dir, 'cli-ok.hgad'));
    expect(back.spec.history![0]!.schedule.metaEpochs).toBe(1);
    expect(back.spec.classFlows).toMatchObject([{ className: 'carpet', couplingLayers: 8 }]);
    await back.dispose();
    const shared = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', join(dir, 'cli-shared.hgad'),
      '--epochs', '1', '--flow', 'shared');
    expect(shared.code).toBe(0);
    const backShared = await AnomalyDetector.load(join(dir, 'cli-shared.hgad'));
    expect(backShared.spec.classFlows).toBeUndefined();
    expect(backShared.spec.map.classCombine).toEqual({ carpet: 'logp*nent' });
    await backShared.dispose();
    const small = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', join(dir, 'cli-small.hgad'),
      '--epochs', '1', '--class-flow-layers', '2', '--class-flow-epochs', '1', '--class-flow-passes', '3');
    expect(small.code).toBe(0);
    const backSmall = await AnomalyDetector.load(join(dir, 'cli-small.hgad'));
    expect(backSmall.spec.classFlows).toMatchObject([{ className: 'carpet', couplingLayers: 2 }]);
    expect(backSmall.spec.history![0]!.classFlowSchedule).toMatchObject({ metaEpochs: 1, subEpochs: 3 });
    await backSmall.dispose();
    const logp = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', join(dir, 'cli-logp.hgad'), '--epochs', '1',
      '--combine', 'logp', '--flow', 'shared');
    expect(logp.code).toBe(0);
    const backLogp = await AnomalyDetector.load(join(dir, 'cli-logp.hgad'));
    expect(backLogp.spec.map.classCombine).toBeUndefined();
    expect(backLogp.spec.map.combine).toBe('logp');
    await backLogp.dispose();

    const exists = await hgad('train', '--from', oneFile, '--add-classes', 'pill', '--data', root, '--out', out);
    expect(exists.code).not.toBe(0);
    expect(exists.stderr).toMatch(/classes\[0\]/);
    const size = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', out, '--input-size', '128');
    expect(size.code).not.toBe(0);
    expect(size.stderr).toMatch(/backbone\.inputSize/);
    const flag = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--classes', 'nut', '--data', root, '--out', out);
    expect(flag.code).not.toBe(0);
    expect(flag.stderr).toMatch(/--classes/);
    const noFrom = await hgad('train', '--add-classes', 'carpet', '--data', root, '--out', out);
    expect(noFrom.code).not.toBe(0);
    expect(noFrom.stderr).toMatch(/--from/);
    const badCombine = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', out, '--combine', 'nent');
    expect(badCombine.code).not.toBe(0);
    expect(badCombine.stderr).toMatch(/--combine/);
    const badFlow = await hgad('train', '--from', oneFile, '--add-classes', 'carpet', '--data', root, '--out', out, '--flow', 'own');
    expect(badFlow.code).not.toBe(0);
    expect(badFlow.stderr).toMatch(/--flow/);
    const layersNoFrom = await hgad('train', '--classes', 'carpet', '--data', root, '--out', out, '--class-flow-layers', '2');
    expect(layersNoFrom.code).not.toBe(0);
    expect(layersNoFrom.stderr).toMatch(/--class-flow-layers/);
    const combineNoFrom = await hgad('train', '--classes', 'carpet', '--data', root, '--out', out, '--combine', 'logp');
    expect(combineNoFrom.code).not.toBe(0);
    expect(combineNoFrom.stderr).toMatch(/--combine/);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.includes('tmp'))).toEqual([]);
  }, 120000);
});
