// Every options object of the pipeline rejects keys it does not read (a typo would otherwise run with
// the default without a word): an HgadArgumentError naming the key and listing the accepted ones.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Dataset, imageBatches, loadImage, openDataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadArgumentError } from '../lib/errors';
import { evaluate } from '../lib/eval/evaluate';
import { evaluateDetector, EvaluationOutput } from '../lib/eval/run';
import { Backbone } from '../lib/features/backbone';
import { resolveBackbone } from '../lib/features/presets';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { renderReport, writeReport } from '../lib/report';
import { calibrate } from '../lib/score/calibrate';
import { colorize } from '../lib/score/heatmap';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { resolveSchedule } from '../lib/train/schedule';
import { checkKeys } from '../lib/validate';
import { tinyDetector, tinyTrainOptions } from './tiny-detector';

let dir: string;
let dataset: Dataset;
let detector: AnomalyDetector;
let file: string;
let image: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-options-keys-'));
  ({ detector, file, dataset } = await tinyDetector(dir));
  image = dataset.samples('test', 'carpet')[0]!.path;
}, 300000);

afterAll(async () => {
  await detector?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** The call must fail with an argument error for `parameter` whose message lists `accepted`. */
async function rejectsKey(call: () => unknown, parameter: string, accepted: string[]): Promise<void> {
  let error: unknown;
  try {
    const r = call();
    if (r && typeof (r as AsyncGenerator)[Symbol.asyncIterator] === 'function') {
      for await (const _ of r as AsyncGenerator) { /* drain */ }
    } else {
      await r;
    }
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(HgadArgumentError);
  expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', parameter });
  for (const key of accepted) expect((error as Error).message).toContain(key);
}

test('checkKeys names the key and lists the accepted ones; undefined values count, prototype names do not slip through', () => {
  expect(() => checkKeys('options', { a: 1, b: undefined }, ['a', 'b'])).not.toThrow();
  expect(() => checkKeys('options', { a: 1, c: undefined }, ['a', 'b'])).toThrow(
    'Expected one of the options a, b for options.c but received string "c"');
  expect(() => resolveSchedule({ toString: 3 } as never)).toThrow(/schedule\.toString/);
});

test('training options, including nested ones', async () => {
  const base = tinyTrainOptions(dataset);
  await rejectsKey(() => train({ ...base, batchsize: 4 } as never), 'options.batchsize', ['batchSize', 'featureCacheBytes']);
  await rejectsKey(() => train({ ...base, flow: { centresPerClass: 4 } } as never), 'flow.centresPerClass', ['centersPerClass', 'posEmbedDim']);
  await rejectsKey(() => train({ ...base, schedule: { epochs: 3 } } as never), 'schedule.epochs', ['metaEpochs']);
  await rejectsKey(() => train({ ...base, checkpoint: { path: join(dir, 'c'), interval: 2 } } as never), 'checkpoint.interval', ['every']);
  await rejectsKey(() => train({ ...base, data: { root: dir, layuot: 'mvtec' } } as never), 'data.layuot', ['root', 'layout']);
  await rejectsKey(() => train({ ...base, backbone: { model: 'demo', tap: ['x'] } } as never), 'backbone.tap', ['taps', 'inputSize']);
});

test('scoring, evaluation, calibration', async () => {
  await rejectsKey(() => scoreImages(detector, [image], { batchsize: 2 } as never), 'options.batchsize', ['batchSize', 'normalization']);
  await rejectsKey(() => evaluateDetector(detector, dataset, { limitPerDefects: 1 } as never), 'options.limitPerDefects',
    ['limitPerDefect', 'batchSize', 'onResult']);
  await rejectsKey(() => evaluateDetector(detector, dataset, { className: 'carpet' } as never), 'options.className', ['inferClass']);
  await rejectsKey(() => calibrate(detector, dataset.samples('train'), { quantil: 0.9 } as never), 'options.quantil', ['quantile']);
  await rejectsKey(() => evaluate([], { maxFPR: 0.3 } as never), 'options.maxFPR', ['maxFpr']);
});

test('detector load and save, backbones, datasets, images, reports, the demo', async () => {
  await rejectsKey(() => AnomalyDetector.load(file, { thread: 2 } as never), 'options.thread', ['threads', 'backbone']);
  await rejectsKey(() => detector.save(join(dir, 'x.hgad'), { optimiser: true } as never), 'options.optimiser', ['optimizer']);
  await rejectsKey(() => Backbone.open({ model: 'demo', input: 64 } as never), 'options.input', ['inputSize', 'cacheDir']);
  await rejectsKey(() => resolveBackbone('demo', { cachedir: dir } as never), 'options.cachedir', ['cacheDir']);
  await rejectsKey(() => openDataset({ root: join(dir, 'data'), layot: 'mvtec' } as never), 'options.layot', ['layout', 'classes']);
  await rejectsKey(() => loadImage(image, { width: 8, height: 8, depth: 3 } as never), 'size.depth', ['width', 'height']);
  await rejectsKey(() => imageBatches(dataset.samples('train'), { batchSize: 2, size: 8, concurency: 2 } as never),
    'options.concurency', ['concurrency', 'shuffleSeed']);
  await rejectsKey(() => colorize(new Float32Array(1), 1, 1, { min: 0, max: 1, mid: 0.5 } as never), 'range.mid', ['min', 'max']);
  await rejectsKey(() => generateDemoDataset({ root: join(dir, 'demo'), sed: 3 } as never), 'options.sed', ['seed', 'trainPerClass']);
  const output: EvaluationOutput = { report: { classes: [], mean: {} as never, maxFpr: 0.3 } as never, classAccuracy: null, images: [], seconds: 0 };
  await rejectsKey(() => renderReport(output, { titel: 'x' } as never), 'options.titel', ['title', 'thumbnailSize']);
  await rejectsKey(() => writeReport(output, { path: join(dir, 'r.html'), maxImage: 3 } as never), 'options.maxImage', ['path', 'maxImages']);
});
