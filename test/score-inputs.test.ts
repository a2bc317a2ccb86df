// scoreImages beyond files: encoded bytes and raw pixels held in memory, ids, an image that cannot be
// decoded among good ones (a result carrying its error, in its place; the others unchanged), threshold
// overrides and where the threshold came from; and hgad score's error rows and exit status.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';

import { openDataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadError } from '../lib/errors';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { AnomalyResult, ImageResult, scoreImages, ScoreOptions, ImageInput } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { hgad } from './run-cli';

let dir: string;
let detector: AnomalyDetector;
let model: string;
let files: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-inputs-'));
  await generateDemoDataset({ root: join(dir, 'data'), seed: 7, classes: ['carpet', 'pill'], trainPerClass: 8, testGoodPerClass: 2, testDefectPerClass: 2 });
  const dataset = await openDataset({ root: join(dir, 'data'), layout: 'mvtec' });
  detector = await train({
    data: dataset, backbone: { model: 'demo' }, schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4, seed: 3, threads: 2, progressBar: false, flow: { couplingLayers: 2, centersPerClass: 2 }, holdout: 0.25,
  });
  model = join(dir, 'model.hgad');
  await detector.save(model);
  files = dataset.classes.flatMap((c) => dataset.samples('test', c)).map((s) => s.path);
}, 300000);

afterAll(async () => {
  await detector?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function all(images: readonly ImageInput[], options: ScoreOptions = {}): Promise<ImageResult[]> {
  const out: ImageResult[] = [];
  for await (const r of scoreImages(detector, images, options)) out.push(r);
  return out;
}

function scored(r: ImageResult | undefined): AnomalyResult {
  if (!r || r.error !== null) throw new Error(`expected a scored image, got ${JSON.stringify(r?.error)}`);
  return r;
}

describe('in-memory inputs', () => {
  test('encoded bytes and raw pixels score exactly like the file they come from', async () => {
    const file = files[0]!;
    const bytes = await readFile(file);
    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    const grey = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
    const rgba = await sharp(file).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const out = await all([
      file,
      bytes,
      { data: new Uint8Array(bytes), id: 'camera-1', className: 'carpet' },
      { data, width: info.width, height: info.height, channels: info.channels as 3, id: 'raw' },
      { data: rgba.data, width: rgba.info.width, height: rgba.info.height, channels: 4 },
      { data: grey.data, width: grey.info.width, height: grey.info.height, channels: 1 },
    ], { batchSize: 4 });
    const [fromFile, fromBuffer, given, raw, fromRgba, fromGrey] = out.map(scored);
    expect(fromFile!.path).toBe(file);
    expect(fromFile!.id).toBe(file);
    expect(fromBuffer!).toMatchObject({ index: 1, id: '1', path: null, imageScore: fromFile!.imageScore, className: fromFile!.className });
    expect(Array.from(fromBuffer!.map)).toEqual(Array.from(fromFile!.map));
    expect(given).toMatchObject({ id: 'camera-1', path: null, className: 'carpet', classSource: 'given' });
    expect(raw).toMatchObject({ index: 3, id: 'raw', imageScore: fromFile!.imageScore });
    // opaque alpha is flattened away: the same pixels
    expect(fromRgba!.imageScore).toBe(fromFile!.imageScore);
    // grey pixels are other pixels: still a score, not the same one
    expect(Number.isFinite(fromGrey!.imageScore)).toBe(true);
  }, 120000);

  test('malformed inputs are refused up front, naming the item and the key', async () => {
    const bad: [unknown, string][] = [
      [{ data: new Uint8Array(12), width: 2, height: 2, channels: 2 }, 'images[0].data'],
      [{ data: new Uint8Array(12), width: 2, height: 2 }, 'images[0].channels'],
      [{ data: new Uint8Array(12), width: 2, height: 0, channels: 3 }, 'images[0].height'],
      [{ data: [1, 2, 3] }, 'images[0].data'],
      [{ path: files[0], data: new Uint8Array(4) }, 'images[0]'],
      [{ path: files[0], clas: 'carpet' }, 'images[0].clas'],
      [{ path: files[0], id: 7 }, 'images[0].id'],
      [new Float32Array(4), 'images[0]'],
      ['', 'images[0]'],
    ];
    for (const [input, parameter] of bad) {
      await expect(all([input as ImageInput])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter });
    }
    await expect(all([files[0]!], { batchsize: 2 } as ScoreOptions)).rejects.toMatchObject({ parameter: 'options.batchsize' });
  });
});

describe('an image that cannot be decoded', () => {
  test('yields its error in its place; the others are scored as if it were not there', async () => {
    const corrupt = join(dir, 'corrupt.png');
    const good = await readFile(files[1]!);
    await writeFile(corrupt, good.subarray(0, 200)); // a truncated PNG
    const inputs: ImageInput[] = [files[0]!, corrupt, join(dir, 'missing.png'), Buffer.from('not an image'), files[1]!, files[2]!];
    const out = await all(inputs, { batchSize: 2 });
    expect(out.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(out.map((r) => r.error?.code ?? null)).toEqual([null, 'INVALID_ARGUMENT', 'IO', 'INVALID_ARGUMENT', null, null]);
    expect(out[1]).toMatchObject({ id: corrupt, path: corrupt });
    expect(out[1]!.error!.message).toMatch(/corrupt\.png/);
    expect(out[3]).toMatchObject({ id: '3', path: null });
    const alone = (await all([files[0]!, files[1]!, files[2]!], { batchSize: 2 })).map(scored);
    expect([out[0], out[4], out[5]].map((r) => scored(r).imageScore)).toEqual(alone.map((r) => r.imageScore));
    // a batch with no image left still passes its failures through
    const none = await all([corrupt, Buffer.from('x')], { batchSize: 2 });
    expect(none.map((r) => r.error?.code)).toEqual(['INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
  }, 120000);

  test("onError 'throw' rejects with the typed error after the results before it", async () => {
    const seen: AnomalyResult[] = [];
    const run = async (): Promise<void> => {
      for await (const r of scoreImages(detector, [files[0]!, Buffer.from('garbage')], { batchSize: 1, onError: 'throw' })) seen.push(r);
    };
    await expect(run()).rejects.toBeInstanceOf(HgadError);
    expect(seen).toHaveLength(1);
    await expect(all([files[0]!], { onError: 'skip' as never })).rejects.toMatchObject({ parameter: 'options.onError' });
  });

  test('batch normalisation leaves failed images out of its constants', async () => {
    const out = await all([files[0]!, Buffer.from('garbage'), files[1]!], { normalization: 'batch' });
    const clean = (await all([files[0]!, files[1]!], { normalization: 'batch' })).map(scored);
    expect(out[1]!.error?.code).toBe('INVALID_ARGUMENT');
    expect([scored(out[0]).imageScore, scored(out[2]).imageScore]).toEqual(clean.map((r) => r.imageScore));
  });
});

describe('thresholds at inference', () => {
  test('a global or per-class override decides isAnomaly, and the result says where the threshold came from', async () => {
    const cal = detector.spec.calibration!.thresholds;
    const base = (await all(files)).map(scored);
    expect(base.every((r) => r.thresholdSource === 'calibration' && r.threshold === cal[r.className])).toBe(true);
    const low = (await all(files, { threshold: -1e9 })).map(scored);
    expect(low.every((r) => r.isAnomaly === true && r.threshold === -1e9 && r.thresholdSource === 'global')).toBe(true);
    const perClass = (await all(files, { threshold: { pill: 1e9 } })).map(scored);
    for (const r of perClass) {
      if (r.className === 'pill') expect(r).toMatchObject({ threshold: 1e9, thresholdSource: 'class', isAnomaly: false });
      else expect(r).toMatchObject({ threshold: cal[r.className], thresholdSource: 'calibration' });
    }
    expect(perClass.map((r) => r.imageScore)).toEqual(base.map((r) => r.imageScore));
    // batch-normalised scores have no stored threshold; an override still applies
    const batch = (await all(files.slice(0, 2), { normalization: 'batch' })).map(scored);
    expect(batch.every((r) => r.threshold === null && r.thresholdSource === null && r.isAnomaly === null)).toBe(true);
    const batchOverride = (await all(files.slice(0, 2), { normalization: 'batch', threshold: 0.5 })).map(scored);
    expect(batchOverride.every((r) => r.thresholdSource === 'global' && r.isAnomaly === r.imageScore > 0.5)).toBe(true);
  }, 120000);

  test('bad overrides name the parameter', async () => {
    await expect(all(files, { threshold: NaN })).rejects.toMatchObject({ parameter: 'options.threshold' });
    await expect(all(files, { threshold: { bolt: 1 } })).rejects.toMatchObject({ parameter: 'options.threshold.bolt' });
    await expect(all(files, { threshold: { pill: Infinity } })).rejects.toMatchObject({ parameter: 'options.threshold.pill' });
    await expect(all(files, { threshold: {} })).rejects.toMatchObject({ parameter: 'options.threshold' });
    await expect(all(files, { threshold: '0.5' as never })).rejects.toMatchObject({ parameter: 'options.threshold' });
  });
});

describe('hgad score', () => {
  test('writes an error row for a corrupt image, exits 0 unless --fail-on-error, and applies --threshold', async () => {
    const corrupt = join(dir, 'broken.png');
    await writeFile(corrupt, 'this is not a png');
    const csv = join(dir, 'scores.csv');
    const r = await hgad('score', '--model', model, files[0]!, corrupt, files[1]!, '--format', 'csv', '--out', csv, '--threshold', 'carpet=-5');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/1 of 3 images could not be scored/);
    const rows = (await readFile(csv, 'utf8')).trim().split('\n');
    expect(rows[0]).toBe('path,imageScore,isAnomaly,threshold,className,classConfidence,classSource,thresholdSource,errorCode,error');
    expect(rows).toHaveLength(4);
    expect(rows[2]).toMatch(new RegExp(`^${corrupt},,,,,,,,INVALID_ARGUMENT,`));
    const carpet = rows.slice(1).find((row) => row.includes(',carpet,'));
    expect(carpet).toMatch(/,-5,carpet,[0-9.]+,inferred,class,,$/);
    const failing = await hgad('score', '--model', model, files[0]!, corrupt, '--fail-on-error');
    expect(failing.code).toBe(3);
    const json = JSON.parse(failing.stdout) as ImageResult[];
    expect(json.map((x) => x.error?.code ?? null)).toEqual([null, 'INVALID_ARGUMENT']);
    expect(json[0]).not.toHaveProperty('map');
    const clean = await hgad('score', '--model', model, files[0]!, '--fail-on-error');
    expect(clean.code).toBe(0);
    const bad = await hgad('score', '--model', model, files[0]!, '--threshold', 'bolt=1');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--threshold\.bolt/);
  }, 120000);
});
