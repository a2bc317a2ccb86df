// A detector file can only load if it can score sensibly: every pipeline value is checked at load
// against the range scoring can use (MODEL_FILE errors naming the field), the backbone is named by
// preset or by a file whose sha256 the detector carries (checked before parsing), and dispose() is
// final.
import { createHash } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { HgadError } from '../lib/errors';
import { buildDemoBackbone, DEMO_TAPS } from '../lib/features/demo-backbone';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { decodeSpec, PipelineSpec } from '../lib/pipeline/spec';
import { calibrate } from '../lib/score/calibrate';
import { AnomalyResult, scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { Dataset } from '../lib/data';
import { tinyDataset, tinyTrainOptions } from './tiny-detector';

// Decode failures reject (rather than coming back as results): these tests are about the detector.
const THROW = { onError: 'throw' } as const;

let dir: string;
let dataset: Dataset;
let detector: AnomalyDetector;
let file: string;
let image: string;

async function collect(gen: AsyncGenerator<AnomalyResult>): Promise<AnomalyResult[]> {
  const out: AnomalyResult[] = [];
  for await (const r of gen) out.push(r);
  return out;
}

/** The detector's file with its pipeline metadata replaced by `text` (written as the file format does). */
async function withMetadata(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await detector.model.save(path, { optimizer: false, metadata: { pipeline: text } });
  return path;
}

async function loadError(path: string, options = {}): Promise<HgadError> {
  try {
    const d = await AnomalyDetector.load(path, options);
    await collect(scoreImages(d, [image], THROW));
    await d.dispose();
  } catch (e) {
    expect(e).toBeInstanceOf(HgadError);
    return e as HgadError;
  }
  throw new Error(`${path} loaded and scored`);
}

const clone = (): PipelineSpec => JSON.parse(JSON.stringify(detector.spec)) as PipelineSpec;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-detector-file-'));
  dataset = await tinyDataset(join(dir, 'data'));
  detector = await train(tinyTrainOptions(dataset));
  file = join(dir, 'tiny.hgad');
  await detector.save(file);
  image = dataset.samples('test', 'carpet')[0]!.path;
}, 300000);

afterAll(async () => {
  await detector?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('pipeline values are checked at load against what scoring can use', () => {
  // Each edit makes a file the old loader accepted (and then scored as garbage or failed on later).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const cases: [string, (s: any) => void, RegExp][] = [
    ['nentTop 1e308 (every score Infinity)', (s) => { s.calibration!.nentTop = 1e308; }, /calibration\.nentTop/],
    ['logpTop -1e308 (every map zero)', (s) => { s.calibration!.logpTop = -1e308; }, /calibration\.logpTop/],
    ['logpTop 0', (s) => { s.calibration!.logpTop = 0; }, /calibration\.logpTop/],
    ['a top above the level count', (s) => { s.calibration!.logpTop = 3.5; }, /calibration\.logpTop/],
    ['a class without a threshold', (s) => { delete s.calibration!.thresholds.pill; }, /calibration\.thresholds\.pill is missing/],
    ['a threshold for an unknown class', (s) => { s.calibration!.thresholds.bolt = 1; }, /calibration\.thresholds\.bolt/],
    ['a negative threshold (every image anomalous)', (s) => { s.calibration!.thresholds.carpet = -1; }, /calibration\.thresholds\.carpet/],
    ['a threshold above any score', (s) => { s.calibration!.thresholds.carpet = 1e6; }, /calibration\.thresholds\.carpet/],
    ['logpShift 1e308', (s) => { s.calibration!.logpShift[1] = 1e308; }, /calibration\.logpShift\[1\]/],
    ['a negative-entropy shift above 0', (s) => { s.calibration!.nentShift[0] = 3; }, /calibration\.nentShift\[0\]/],
    ['a negative-entropy shift below -ln(classes)', (s) => { s.calibration!.nentShift[2] = -1; }, /calibration\.nentShift\[2\]/],
    ['quantile 2', (s) => { s.calibration!.quantile = 2; }, /calibration\.quantile/],
    ['images 0', (s) => { s.calibration!.images = 0; }, /calibration\.images/],
    ['input size 1e9', (s) => { s.backbone.inputSize = 1e9; }, /backbone\.inputSize/],
    ['a negative std', (s) => { s.backbone.std = [0.2, -0.2, 0.2]; }, /backbone\.std/],
    ['a zero std', (s) => { s.backbone.std = [0, 0.2, 0.2]; }, /backbone\.std/],
    ['a huge mean', (s) => { s.backbone.mean = [1e30, 0, 0]; }, /backbone\.mean/],
    ['blur sigma 1e6', (s) => { s.map.sigma = 1e6; }, /map\.sigma/],
    ['a negative blur sigma', (s) => { s.map.sigma = -1; }, /map\.sigma/],
    ['map size 1e6', (s) => { s.map.size = 1e6; }, /map\.size/],
    ['repeated taps', (s) => { s.backbone.taps = [DEMO_TAPS[0]!, DEMO_TAPS[0]!, DEMO_TAPS[1]!]; }, /backbone\.taps/],
    ['scales that disagree with inputSize', (s) => { s.backbone.taps = [DEMO_TAPS[0]!]; s.backbone.scales = [128, 64, 32]; }, /backbone\.inputSize/],
    ['a scale of 1e9', (s) => { s.backbone.taps = [DEMO_TAPS[0]!]; s.backbone.scales = [1e9, 32, 16]; s.backbone.inputSize = 1e9; }, /backbone\.scales\[0\]/],
    ['a learning rate of 1e300', (s) => { s.training!.schedule.lr = 1e300; }, /training\.schedule\.lr/],
    ['an epoch past the schedule', (s) => { s.training!.epoch = 7; }, /training\.epoch/],
    ['a batch size of 1e9', (s) => { s.training!.batchSize = 1e9; }, /training\.batchSize/],
    ['an unknown field (a typo)', (s) => { s.calibration!.nenTop = 1; }, /calibration\.nenTop is not a known field/],
    ['an unknown top-level field', (s) => { s.extra = {}; }, /spec\.extra is not a known field/],
    ['a missing field', (s) => { delete s.backbone.std; }, /backbone\.std is missing/],
  ];
  test.each(cases)('%s: MODEL_FILE error naming the field', async (_name, edit, field) => {
    const s = clone();
    edit(s);
    const e = await loadError(await withMetadata('edited.hgad', JSON.stringify(s)));
    expect(e.code).toBe('MODEL_FILE');
    expect(e.message).toMatch(field);
  });

  test('the real detector passes, and its own values sit inside every range', async () => {
    const d = await AnomalyDetector.load(file);
    expect(d.spec).toEqual(detector.spec);
    const results = await collect(scoreImages(d, [image], THROW));
    expect(Number.isFinite(results[0]!.imageScore)).toBe(true);
    await d.dispose();
  });

  test('a calibration measured by calibrate() always passes the checks', async () => {
    for (const quantile of [0, 0.5, 1]) {
      const c = await calibrate(detector, dataset.samples('train'), { quantile });
      expect(() => decodeSpec(JSON.stringify({ ...detector.spec, calibration: c }), 'f', 3, detector.classes)).not.toThrow();
    }
  });
});

describe('the backbone is named by preset or by a file whose sha256 the detector carries', () => {
  const withBackbone = (name: string, backbone: Partial<PipelineSpec['backbone']>): Promise<string> =>
    withMetadata(name, JSON.stringify({ ...clone(), backbone: { ...clone().backbone, ...backbone } }));

  test('a bare path (no sha256) is refused at load, without opening the file', async () => {
    const e = await loadError(await withBackbone('passwd.hgad', { model: '/etc/passwd', sha256: null }));
    expect(e.code).toBe('MODEL_FILE');
    expect(e.message).toMatch(/backbone\.sha256 is required when backbone\.model is a file path/);
  });

  test('a path with a wrong sha256 is refused before the file is parsed', async () => {
    const junk = join(dir, 'junk.onnx');
    await writeFile(junk, 'not an onnx model');
    const e = await loadError(await withBackbone('junk.hgad', { model: junk, sha256: 'a'.repeat(64) }));
    expect(e.code).toBe('MODEL_FILE');
    expect(e.message).toMatch(/not the one this detector was trained with/);
    expect(e.message).not.toMatch(/ONNX|onnxruntime/);
  });

  test('a device or folder named as the backbone is refused at once, not read', async () => {
    for (const model of ['/dev/zero', `${dir}/`]) {
      const e = await loadError(await withBackbone('dev.hgad', { model, sha256: 'b'.repeat(64) }));
      expect(e.code).toBe('IO');
      expect(e.message).toMatch(/not a regular file/);
    }
  });

  test('a preset with another sha256 than the preset\'s, or a built-in preset with one, is refused', async () => {
    let e = await loadError(await withBackbone('preset.hgad', { model: 'mobilenetv2-int8', sha256: 'c'.repeat(64), taps: ['a', 'b', 'c'] }));
    expect(e.message).toMatch(/backbone\.sha256 does not match the preset mobilenetv2-int8/);
    e = await loadError(await withBackbone('demo-sha.hgad', { sha256: 'c'.repeat(64) }));
    expect(e.message).toMatch(/backbone\.sha256 must be null for the built-in preset demo/);
    e = await loadError(await withBackbone('name.hgad', { model: 'no-such-preset', sha256: 'c'.repeat(64) }));
    expect(e.message).toMatch(/backbone\.model must be a preset name/);
  });

  test('a converted (npm) preset carries its conversion\'s sha256: loads with one, is refused without', async () => {
    // The hash is the converter's output, so the preset pins none; openBackbone compares it with the
    // cached conversion. resnet-npm.test.ts trains, saves, loads and scores with the real one.
    const d = await AnomalyDetector.load(await withBackbone('npm.hgad', { model: 'resnet50-npm', sha256: 'd'.repeat(64) }));
    expect(d.spec.backbone).toMatchObject({ model: 'resnet50-npm', sha256: 'd'.repeat(64) });
    await d.dispose();
    const e = await loadError(await withBackbone('npm-null.hgad', { model: 'resnet50-npm', sha256: null }));
    expect(e.code).toBe('MODEL_FILE');
    expect(e.message).toMatch(/backbone\.sha256 is required for the converted preset resnet50-npm/);
  });

  test('a file backbone: stored absolute with its hash; a moved copy is used through options.backbone, hash-checked', async () => {
    const onnx = join(dir, 'demo-backbone.onnx');
    const bytes = buildDemoBackbone(0);
    await writeFile(onnx, bytes);
    const d = await train({ ...tinyTrainOptions(dataset), backbone: { model: onnx, taps: [...DEMO_TAPS], inputSize: 64 } });
    expect(d.spec.backbone.model).toBe(onnx);
    expect(d.spec.backbone.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const saved = join(dir, 'file-backbone.hgad');
    await d.save(saved);
    const before = await collect(scoreImages(d, [image], THROW));
    await d.dispose();

    const moved = join(dir, 'elsewhere.onnx');
    await rename(onnx, moved);
    expect((await loadError(saved)).code).toBe('IO');
    const again = await AnomalyDetector.load(saved, { backbone: moved });
    expect((await collect(scoreImages(again, [image], THROW)))[0]!.imageScore).toBe(before[0]!.imageScore);
    await again.dispose();

    const other = join(dir, 'other.onnx');
    await writeFile(other, buildDemoBackbone(1));
    const e = await loadError(saved, { backbone: other });
    expect([e.code, e.parameter]).toEqual(['MODEL_FILE', 'options.backbone']);
    await expect(AnomalyDetector.load(file, { backbone: moved })).rejects.toMatchObject({ parameter: 'options.backbone' });
  }, 120000);
});

describe('dispose() is final', () => {
  test('every later use is a typed error instead of silently reopening the backbone', async () => {
    const d = await AnomalyDetector.load(file);
    await collect(scoreImages(d, [image], THROW));
    await d.dispose();
    const disposed = { code: 'INVALID_ARGUMENT', parameter: 'this', message: expect.stringMatching(/disposed/) };
    await expect(collect(scoreImages(d, [image], THROW))).rejects.toMatchObject(disposed);
    await expect(d.backbone()).rejects.toMatchObject(disposed);
    await expect(d.save(join(dir, 'after.hgad'))).rejects.toMatchObject(disposed);
    await expect(calibrate(d, dataset.samples('train'))).rejects.toMatchObject(disposed);
    expect(d.isDisposed).toBe(true);
    // Plain data stays readable (reports are drawn after dispose).
    expect(d.classes).toEqual(detector.classes);
    await d.dispose(); // twice is harmless
  });

  test('disposing while the backbone is still opening leaves nothing open and nothing usable', async () => {
    const d = await AnomalyDetector.load(file);
    const opening = d.backbone();
    await d.dispose();
    const backbone = await opening;
    await expect(backbone.extract(new Uint8Array(64 * 64 * 3), 1)).rejects.toMatchObject({ message: expect.stringMatching(/disposed/) });
    await expect(d.backbone()).rejects.toMatchObject({ parameter: 'this' });
  });
});
