// Adding classes to a trained detector (extendDetector, hgad train --from --add-classes): the old
// classes' parameters, logp maps and (one-class detectors) scores stay bit for bit, the new class is
// trained and calibrated and detects its defects, the errors users hit name their parameter, the file
// records the history, and nothing half-written is left behind.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Dataset, openDataset, Sample } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadArgumentError, HgadError } from '../lib/errors';
import { auroc } from '../lib/eval/metrics';
import { HgadModel } from '../lib/model';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { decodeSpec, encodeSpec, HistoryEntry } from '../lib/pipeline/spec';
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

async function scores(d: AnomalyDetector, samples: Sample[]): Promise<Float32Array> {
  const out: number[] = [];
  for await (const r of scoreImages(d, samples.map((s) => ({ path: s.path, className: s.className })), { onError: 'throw' })) out.push(r.imageScore);
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
  test('one-class detector: old parameters and scores unchanged bit for bit; the new class detects its defects', async () => {
    const ext = await extendDetector(one, { data: dataset, classes: ['carpet'] });
    try {
      expect(ext.classes).toEqual(['pill', 'carpet']);
      expect(ext.spec.map.combine).toBe('logp');
      // Every old tensor, and the old class's rows of the class tensors, are the old ones.
      for (const t of one.model.tensorInfo()) {
        const a = await one.model.getTensor(t.name), b = await ext.model.getTensor(t.name);
        expect(sameBits(a, b.subarray(0, a.length))).toBe(true);
      }
      const pillTest = dataset.samples('test', 'pill');
      expect(sameBits(await scores(one, pillTest), await scores(ext, pillTest))).toBe(true);
      expect(ext.spec.calibration!.thresholds.pill).toBe(one.spec.calibration!.thresholds.pill);
      expect(ext.spec.staleThresholds).toEqual([]);
      // The new class: a threshold and map constants of its own, and its defects score above its good images.
      const carpetTest = dataset.samples('test', 'carpet');
      const s = await scores(ext, carpetTest);
      expect(await auroc(s, Uint8Array.from(carpetTest, (x) => x.label))).toBeGreaterThanOrEqual(0.75);
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

  test('multi-class detector: old logp maps unchanged bit for bit; old thresholds marked stale (the entropy map moves)', async () => {
    const ext = await extendDetector(two, { data: dataset, classes: ['carpet'] });
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
    } finally {
      await ext.dispose();
    }
  }, 120000);

  test('the file records the history; extending again appends to it', async () => {
    const ext = await extendDetector(one, { data: { root }, classes: ['carpet'], schedule: { metaEpochs: 1 } });
    const file = join(dir, 'ext.hgad');
    await ext.save(file);
    await ext.dispose();
    expect(JSON.parse((await HgadModel.load(oneFile)).metadata.pipeline!).version).toBe(1);
    const back = await AnomalyDetector.load(file);
    try {
      expect(JSON.parse(back.model.metadata.pipeline!).version).toBe(2);
      expect(back.spec.history).toHaveLength(1);
      const h = back.spec.history![0]!;
      expect(h).toMatchObject({ action: 'extend', classes: ['carpet'], data: root, trainImages: 7, calibrationImages: 1, seed: 1, batchSize: 4 });
      expect(h.schedule.metaEpochs).toBe(1);
      expect(Date.parse(h.at)).toBeGreaterThan(Date.now() - 600000);
      expect(back.spec.calibration!.classConstants!.carpet).toEqual(ext.spec.calibration!.classConstants!.carpet);
      const again = await extendDetector(back, { data: dataset, classes: ['nut'], schedule: { metaEpochs: 1 } });
      expect(again.classes).toEqual(['pill', 'carpet', 'nut']);
      expect(again.spec.history!.map((e) => e.classes)).toEqual([['carpet'], ['nut']]);
      // Now three classes with logp maps: still nothing stale.
      expect(again.spec.staleThresholds).toEqual([]);
      await again.dispose();
    } finally {
      await back.dispose();
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
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], flow: {} } as never))).toEqual(['INVALID_ARGUMENT', 'options.flow']);
    expect(await code(extendDetector(one, { data: dataset, classes: ['carpet'], holdout: 1 }))).toEqual(['INVALID_ARGUMENT', 'holdout']);
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

describe('detector file, pipeline version 2', () => {
  test('history, staleThresholds and classConstants are checked on load; other detectors stay version 1', () => {
    const classes = ['pill', 'carpet'];
    const L = one.model.config.levels.length;
    const cal = one.spec.calibration!;
    const entry: HistoryEntry = {
      action: 'extend', at: '2026-11-30T17:00:00.000Z', classes: ['carpet'], data: '/data', trainImages: 7, calibrationImages: 1,
      trainDigest: 'a'.repeat(64), schedule: one.spec.training!.schedule, seed: 1, batchSize: 4, seconds: 3.5,
    };
    const good = {
      ...one.spec, history: [entry], staleThresholds: [],
      calibration: { ...cal, thresholds: { ...cal.thresholds, carpet: 0.01 }, classConstants: { carpet: { ...cal, thresholds: undefined, quantile: undefined, images: 1 } } },
    };
    const text = encodeSpec(JSON.parse(JSON.stringify(good)));
    expect(JSON.parse(text).version).toBe(2);
    expect(decodeSpec(text, 'f', L, classes).history).toEqual([entry]);
    expect(JSON.parse(encodeSpec(one.spec)).version).toBe(1);
    const bad = (mutate: (o: Record<string, any>) => void, message: RegExp): void => {
      const o = JSON.parse(text);
      mutate(o);
      expect(() => decodeSpec(JSON.stringify(o), 'f', L, classes)).toThrow(message);
    };
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
    await back.dispose();

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
    expect(existsSync(out)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.includes('tmp'))).toEqual([]);
  }, 120000);
});
