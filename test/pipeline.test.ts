// The pipeline end to end on a small generated dataset with the built-in demo backbone: training
// (determinism, checkpoints and resume), calibration, scoring (batch independence, class inference,
// the authors' batch normalisation), saving and loading a detector.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openDataset, Dataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadError } from '../lib/errors';
import { evaluateDetector } from '../lib/eval/run';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { scoreImages, AnomalyResult, ImageResult } from '../lib/score/scorer';
import { train, TrainOptions } from '../lib/train/trainer';
import type { TrainProgress } from '../lib/train/progress';

let dir: string;
let dataset: Dataset;

const base = (): TrainOptions => ({
  data: dataset,
  backbone: { model: 'demo' },
  schedule: { metaEpochs: 2, subEpochs: 2, lr: 1e-3, warmupEpochs: 1, phase1Epochs: 1 },
  batchSize: 4,
  seed: 3,
  threads: 2,
  progressBar: false,
  flow: { couplingLayers: 2, centersPerClass: 3 },
  holdout: 0.2,
});

async function tensors(d: AnomalyDetector): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const t of d.model.tensorInfo()) {
    const a = await d.model.getTensor(t.name);
    out.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  return out;
}

/** Every result, each required to be scored (a failed image fails the test with its error). */
async function collect(gen: AsyncGenerator<ImageResult>): Promise<AnomalyResult[]> {
  const out: AnomalyResult[] = [];
  for await (const r of gen) {
    if (r.error !== null) throw new HgadError(r.error.code, r.error.message, r.error.parameter);
    out.push(r);
  }
  return out;
}

let trained: AnomalyDetector;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-pipeline-'));
  await generateDemoDataset({ root: join(dir, 'data'), seed: 5, classes: ['carpet', 'pill'], trainPerClass: 10, testGoodPerClass: 3, testDefectPerClass: 4 });
  dataset = await openDataset({ root: join(dir, 'data'), layout: 'mvtec' });
  trained = await train(base());
}, 300000);

afterAll(async () => {
  await trained?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('training', () => {
  test('the same seed and data give a bit-identical detector', async () => {
    const again = await train(base());
    expect(await tensors(again)).toEqual(await tensors(trained));
    expect(again.spec.calibration).toEqual(trained.spec.calibration);
    await again.dispose();
  }, 300000);

  test('progress reports every step with the schedule\'s phase and learning rate', async () => {
    const seen: TrainProgress[] = [];
    const d = await train({ ...base(), schedule: { metaEpochs: 2, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 }, onProgress: (p) => seen.push(p) });
    await d.dispose();
    // 16 training images (20 minus the 20% held out) in batches of 4: 4 steps a pass.
    expect(seen.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(seen.map((p) => p.phase)).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
    expect(seen[0]!.lr).toBeCloseTo(1e-3, 12);
    expect(seen[7]!.lr).toBeCloseTo(1e-6 + (1e-3 - 1e-6) * (1 + Math.cos(Math.PI / 2)) / 2, 12);
    expect(seen.every((p) => Number.isFinite(p.losses.loss) && p.imagesPerSecond > 0)).toBe(true);
  }, 300000);

  test('a run stopped after a checkpoint and resumed gives the same detector as an uninterrupted run', async () => {
    const ckpt = join(dir, 'ckpt.hgad');
    const controller = new AbortController();
    const stopped = train({
      ...base(), checkpoint: { path: ckpt },
      // Abort in the first batch of the third pass: the checkpoint holds two finished passes.
      onProgress: (p) => { if (p.epoch === 1 && p.subEpoch === 0) controller.abort(); },
      signal: controller.signal,
    });
    await expect(stopped).rejects.toMatchObject({ code: 'ABORTED' });
    const partial = await AnomalyDetector.load(ckpt);
    expect(partial.spec.training).toMatchObject({ epoch: 1, subEpoch: 0, complete: false });
    expect(partial.spec.calibration).toBeNull();
    const resumed = await train({ ...base(), resume: ckpt });
    expect(await tensors(resumed)).toEqual(await tensors(trained));
    expect(resumed.spec.calibration).toEqual(trained.spec.calibration);
    await resumed.dispose();
    await partial.dispose();
    await expect(train({ ...base(), seed: 4, resume: ckpt })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'resume' });
  }, 300000);

  test('bad options are rejected before any work, naming the option', async () => {
    await expect(train({ ...base(), classes: ['carpet', 'nope'] })).rejects.toMatchObject({ parameter: 'classes[1]' });
    await expect(train({ ...base(), batchSize: 0 })).rejects.toMatchObject({ parameter: 'batchSize' });
    await expect(train({ ...base(), holdout: 1 })).rejects.toMatchObject({ parameter: 'holdout' });
    await expect(train({ ...base(), backbone: { model: 'no-such-backbone' } })).rejects.toBeInstanceOf(HgadError);
  });
});

describe('scoring', () => {
  const testFiles = (): { path: string; className: string; label: number }[] =>
    dataset.classes.flatMap((c) => dataset.samples('test', c)).map((s) => ({ path: s.path, className: s.className, label: s.label }));

  test('calibrated scores and maps do not depend on the other images of the batch', async () => {
    const files = testFiles();
    const alone = await collect(scoreImages(trained, [files[0]!], { batchSize: 1 }));
    const mixed = await collect(scoreImages(trained, files.slice(0, 5).reverse(), { batchSize: 5 }));
    const same = mixed[4]!;
    expect(same.path).toBe(files[0]!.path);
    expect(same.imageScore).toBeCloseTo(alone[0]!.imageScore, 4);
    let worst = 0;
    for (let i = 0; i < same.map.length; i++) worst = Math.max(worst, Math.abs(same.map[i]! - alone[0]!.map[i]!));
    expect(worst).toBeLessThan(1e-4 * Math.max(1, alone[0]!.imageScore));
  }, 120000);

  test('batch normalisation (the authors\' protocol) does depend on the other images', async () => {
    const files = testFiles();
    const alone = await collect(scoreImages(trained, [files[0]!], { normalization: 'batch' }));
    const mixed = await collect(scoreImages(trained, files.slice(0, 6), { normalization: 'batch' }));
    // Normalised over the call's images: the same image scores differently in other company.
    expect(Math.abs(mixed[0]!.imageScore - alone[0]!.imageScore)).toBeGreaterThan(1e-3 * alone[0]!.imageScore);
    expect(mixed[0]!.isAnomaly).toBeNull();
  }, 120000);

  test('results say which class was used and whether it was given or inferred', async () => {
    const files = testFiles();
    const inferred = await collect(scoreImages(trained, files.map((f) => f.path)));
    const correct = inferred.filter((r, i) => r.className === files[i]!.className).length;
    expect(correct / files.length).toBeGreaterThanOrEqual(0.9);
    expect(inferred.every((r) => r.classSource === 'inferred' && r.classConfidence > 0 && r.classConfidence <= 1)).toBe(true);
    const given = await collect(scoreImages(trained, files.map((f) => f.path), { className: 'pill' }));
    expect(given.every((r) => r.className === 'pill' && r.classSource === 'given')).toBe(true);
    const mixed = await collect(scoreImages(trained, [{ path: files[0]!.path, className: 'pill' }, files[1]!.path]));
    expect(mixed.map((r) => r.classSource)).toEqual(['given', 'inferred']);
    expect(mixed[0]!.className).toBe('pill');
    expect(inferred.every((r) => r.map.length === 256 * 256 && r.width === 256 && typeof r.isAnomaly === 'boolean')).toBe(true);
  }, 120000);

  test('batch normalisation in evaluation runs over each class\'s test images, as the authors evaluate', async () => {
    const both = await evaluateDetector(trained, dataset, { normalization: 'batch' });
    for (const c of dataset.classes) {
      const alone = await evaluateDetector(trained, dataset, { normalization: 'batch', classes: [c] });
      expect(both.report.classes.find((m) => m.className === c)).toEqual(alone.report.classes[0]);
    }
  }, 120000);

  test('a saved detector loads and scores identically', async () => {
    const path = join(dir, 'detector.hgad');
    await trained.save(path);
    const loaded = await AnomalyDetector.load(path, { threads: 2 });
    expect(loaded.spec).toEqual(trained.spec);
    const files = testFiles().slice(0, 4).map((f) => f.path);
    const a = await collect(scoreImages(trained, files));
    const b = await collect(scoreImages(loaded, files));
    expect(b.map((r) => r.imageScore)).toEqual(a.map((r) => r.imageScore));
    await loaded.dispose();
  }, 120000);

  test('bad inputs get typed errors naming the parameter', async () => {
    await expect(collect(scoreImages(trained, [join(dir, 'missing.png')], { onError: 'throw' }))).rejects.toBeInstanceOf(HgadError);
    await expect(collect(scoreImages(trained, [{ path: testFiles()[0]!.path, className: 'bolt' }])))
      .rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'images[0].className' });
    await expect(collect(scoreImages(trained, [testFiles()[0]!.path], { normalization: 'whatever' as never })))
      .rejects.toMatchObject({ parameter: 'options.normalization' });
  });
});
