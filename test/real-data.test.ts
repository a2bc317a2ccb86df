// End to end on real defect images (../shared/data: magnetic_tile, metal_plate) with the real
// ImageNet backbone (../shared/models/mobilenetv2-12-int8.onnx): one small unified detector on both
// classes, their test splits scored, image AUROC well above chance for each class. Sized for CI
// (2 cores): a subset of the training images and a few passes.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';

import { openDataset } from '../lib/data';
import { evaluateDetector, EvaluationOutput } from '../lib/eval/run';
import { reportToMarkdown } from '../lib/eval/table';
import { main } from '../lib/cli/main';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { train } from '../lib/train/trainer';

const SHARED = resolve(__dirname, '..', '..', 'shared');
const DATA = join(SHARED, 'data');
const BACKBONE = join(SHARED, 'models', 'mobilenetv2-12-int8.onnx');
const present = existsSync(join(DATA, 'magnetic_tile')) && existsSync(join(DATA, 'metal_plate')) && existsSync(BACKBONE);
if (!present) console.warn(`skipping the real-data tests: ${DATA} or ${BACKBONE} is missing`);
const maybe = present ? describe : describe.skip;

// Settings chosen on the training images' behaviour and CI time, not on the test split's scores.
export const REAL_DATA_SETUP = {
  backbone: { model: BACKBONE, taps: ['365_quantized', '426_quantized', '452_quantized'], inputSize: 256 },
  limitPerClass: 120,
  schedule: { metaEpochs: 4, subEpochs: 4, lr: 1e-3, warmupEpochs: 1, phase1Epochs: 1 },
  seed: 0,
  threads: 2,
};

maybe('real data, real backbone', () => {
  let dir: string;
  let detector: AnomalyDetector;
  let evaluation: EvaluationOutput;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-real-'));
    const dataset = await openDataset({ root: DATA, layout: 'mvtec' });
    detector = await train({ data: dataset, ...REAL_DATA_SETUP, progressBar: false });
    evaluation = await evaluateDetector(detector, dataset, { limitPerDefect: 30 });
    console.log(`${reportToMarkdown(evaluation.report)}\n${evaluation.images.length} test images scored in ${evaluation.seconds.toFixed(1)} s`);
  }, 1800000);

  afterAll(async () => {
    await detector?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('one unified detector localises and detects defects in both classes well above chance', () => {
    const byClass = Object.fromEntries(evaluation.report.classes.map((c) => [c.className, c]));
    expect(Object.keys(byClass).sort()).toEqual(['magnetic_tile', 'metal_plate']);
    for (const c of evaluation.report.classes) {
      expect({ className: c.className, imageAurocAboveChance: c.imageAuroc >= 0.7 }).toEqual({ className: c.className, imageAurocAboveChance: true });
      expect({ className: c.className, pixelAurocAboveChance: c.pixelAuroc >= 0.7 }).toEqual({ className: c.className, pixelAurocAboveChance: true });
    }
  });

  test('the class of a test image is inferred correctly without being given', async () => {
    const dataset = await openDataset({ root: DATA, layout: 'mvtec' });
    const inferred = await evaluateDetector(detector, dataset, { limitPerDefect: 4, inferClass: true });
    expect(inferred.classAccuracy).toBeGreaterThanOrEqual(0.95);
  }, 600000);

  test('the CLI scores real images with a saved detector and writes heatmaps', async () => {
    const model = join(dir, 'real.hgad');
    await detector.save(model);
    const out = join(dir, 'scores.json');
    const heat = join(dir, 'heat');
    const images = [join(DATA, 'metal_plate', 'test', 'good'), join(DATA, 'magnetic_tile', 'test', 'crack')];
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await main(['score', '--model', model, '--out', out, '--heatmaps', heat, '--threads', '2', ...images]);
    } finally {
      write.mockRestore();
    }
    expect(code).toBe(0);
    const results = JSON.parse(await readFile(out, 'utf8')) as { path: string; className: string; isAnomaly: boolean }[];
    expect(results).toHaveLength(26 + 57);
    expect(results.every((r) => typeof r.isAnomaly === 'boolean')).toBe(true);
    // The class is inferred per image: each folder's images under their own class.
    const right = results.filter((r) => r.className === (r.path.includes('metal_plate') ? 'metal_plate' : 'magnetic_tile'));
    expect(right.length).toBeGreaterThanOrEqual(0.95 * results.length);
    for (const name of ['000', 'exp1_num_249594']) {
      for (const kind of ['heatmap', 'overlay']) {
        const png = await sharp(join(heat, `${name}_${kind}.png`)).metadata();
        expect([png.width, png.height]).toEqual([256, 256]);
      }
    }
  }, 600000);
});
