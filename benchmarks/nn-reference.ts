// The nearest-neighbour reference of bench:quality (issue 10): PatchCore's recipe on the backbone taps
// the flow gets, so each row of the quality table can have a flow-free reference from the same run.
// Per level: 3x3 local averaging (AvgPool2d(3, 1, 1)), a memory bank of training vectors per class,
// the Euclidean distance of each test position to its nearest bank vector; the distance maps are
// upsampled (bilinear, aligned corners, to the map size), summed over levels and blurred (sigma 4) like
// the flow's maps; the image score is the map's max. Two rows: the test image's own class's bank (class
// given) and the all-classes bank (the union of the per-class banks: no class needed). All numeric
// work is native (lib/eval/nearest.ts -> native/core/nearest.cpp).
//
// With `detector`, the same search runs in a trained detector's flow latent space instead: each level's
// vectors are the detector's flow inputs (reduced features) mapped through its flow (HgadModel.forward),
// then averaged and banked the same way. Session 11 of issue 10 found this space separates real defects
// from normal texture better than the flow's inputs or its mixture density (benchmarks/RESULTS.md);
// since session 12 it is the product's scoring (train({ maps: 'nearest' }), lib/pipeline/latent-banks.ts,
// same sampler and seeds), and this path is the independent check that the product gives its figures.
//
// The bank is built from the images the flow trains on: the train split minus the 10% calibration
// hold-out of the trainer (lib/train/trainer.ts planOf: splitHoldout over the union of the classes,
// same seed). Bank cap: at most `cap` vectors per class and level, drawn uniformly at random without
// replacement, the same number from every training image (stratified, so every image is
// represented); a level whose whole bank fits is kept whole. Random rather than PatchCore's greedy
// k-center coreset: on this 2-core machine one greedy iteration over the 658k candidate vectors of
// magnetic_tile's 32x32 level, projected to 128 dimensions, takes about 110 ms (35 ms at 32), so 16k
// selections take about 30 min per level and class, and the candidates (1.3 GB for ResNet-50 layer2)
// would all have to be kept; random subsampling streams with a bounded memory.
//
//   node dist/benchmarks/nn-reference.js [--model PATH|preset] [--taps a,b] [--size 256] [--cap 16384]
//     [--classes magnetic_tile,metal_plate] [--seed 0] [--batch 8] [--threads N] [--limit-per-defect n]
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { Dataset, imageBatches, openDataset, Sample, splitHoldout } from '../lib/data';
import { evaluate, EvalSample } from '../lib/eval/evaluate';
import { distanceMaps, DistancePlane, localAverage, nearestDistances } from '../lib/eval/nearest';
import type { FeatureLevel } from '../lib/features/backbone';
import { BackboneChoice, openBackbone, specFromChoice } from '../lib/pipeline/backbone-spec';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { BankSampler } from '../lib/pipeline/latent-banks';
import { HgadArgumentError } from '../lib/errors';
import { checkInteger } from '../lib/validate';

export interface NnMetrics {
  image: number;
  pixel: number;
  aupro: number;
}

export interface NnReferenceOptions {
  dataset: Dataset;
  classes: string[];
  /** The flow's backbone choice (model, taps, inputSize / scales); unused with `detector`. */
  backbone?: BackboneChoice;
  /** Search this trained detector's flow latents (see the file's comment) instead of the backbone's taps. */
  detector?: AnomalyDetector;
  /** Seed of the trainer's hold-out split and of the bank subsampling. */
  seed: number;
  /** Most vectors per class and level in a bank (default 16384). */
  cap?: number;
  batchSize?: number;
  threads?: number;
  limitPerDefect?: number;
  /** Map side and blur, as the flow's maps (256, 4). */
  mapSize?: number;
  sigma?: number;
  log?: (line: string) => void;
}

export interface NnBankSize {
  className: string;
  level: string;
  vectors: number;
  /** Vectors the training images have at this level (the bank when it is not capped). */
  available: number;
  channels: number;
}

export interface NnReferenceResult {
  /** Class given: each test image against its own class's bank. */
  perClassBank: Record<string, NnMetrics>;
  /** Against the union of all classes' banks. */
  allClassesBank: Record<string, NnMetrics>;
  /** What was searched: the backbone's taps, or the detector's flow latents. */
  space: 'backbone' | 'latent';
  banks: NnBankSize[];
  cap: number;
  trainImages: number;
  testImages: number;
  /**
   * Wall seconds: bank building (decode, backbone, averaging), testing (the same plus search, maps and
   * metrics), the search alone; cpu: the process's user + system CPU seconds (all threads), which on a
   * shared machine says how much of the wall time was this run's work.
   */
  seconds: { bank: number; test: number; search: number; total: number; cpu: number };
}

export const DEFAULT_NN_CAP = 16384;

/** What the search runs on: a backbone's taps (a Backbone is one), or a detector's flow latents. */
export interface VectorSource {
  inputSize: number;
  levels: { name: string; height: number; width: number; channels: number }[];
  extract(pixels: Uint8Array, batch: number): Promise<FeatureLevel[]>;
  dispose(): Promise<void>;
}

/** The detector's flow inputs mapped through its flow, level by level; the detector stays open. */
export async function latentSource(detector: AnomalyDetector): Promise<VectorSource> {
  const bb = await detector.backbone();
  const widths = detector.model.config.levels.map((l) => l.channels);
  return {
    inputSize: detector.inputSize,
    levels: bb.levels.map((l, i) => ({ name: l.name, height: l.height, width: l.width, channels: widths[i]! })),
    extract: async (pixels, batch) => {
      const out: FeatureLevel[] = [];
      for (const [i, f] of (await detector.features(pixels, batch)).entries()) out.push({ ...f, data: (await detector.model.forward(i, f)).z });
      return out;
    },
    dispose: async () => undefined,
  };
}

async function pooledFeatures(src: VectorSource, pixels: Uint8Array, batch: number): Promise<FeatureLevel[]> {
  const out: FeatureLevel[] = [];
  for (const f of await src.extract(pixels, batch)) out.push(await localAverage(f));
  return out;
}

/** One class's banks, one per level: `cap` vectors at most, the same share from every image (lib/pipeline/latent-banks.ts). */
async function buildBanks(bb: VectorSource, samples: Sample[], className: string, cap: number, seed: number, o: Required<Pick<NnReferenceOptions, 'batchSize' | 'threads'>>):
  Promise<{ banks: Float32Array[]; sizes: NnBankSize[] }> {
  const sampler = new BankSampler(samples.length, bb.levels, cap, seed, className);
  const size = bb.inputSize;
  for await (const batch of imageBatches(samples, { batchSize: o.batchSize, size: { width: size, height: size }, concurrency: 2 * o.threads })) {
    sampler.add(await pooledFeatures(bb, batch.pixels, batch.batch));
  }
  const sizes = bb.levels.map((l, li) => ({
    className, level: l.name, vectors: sampler.vectors[li]!, available: samples.length * l.height * l.width, channels: l.channels,
  }));
  return { banks: sampler.result(), sizes };
}

function testSamples(dataset: Dataset, className: string, limitPerDefect: number | undefined): Sample[] {
  const all = dataset.samples('test', className);
  if (limitPerDefect === undefined) return all;
  const seen = new Map<string, number>();
  return all.filter((s) => {
    const k = seen.get(s.defect) ?? 0;
    seen.set(s.defect, k + 1);
    return k < limitPerDefect;
  });
}

const metricsOf = (r: Awaited<ReturnType<typeof evaluate>>): NnMetrics => {
  const m = r.classes[0]!;
  return { image: m.imageAuroc, pixel: m.pixelAuroc, aupro: m.aupro };
};

/** Builds the banks, scores every test image of every class against them, and evaluates both rows. */
export async function runNnReference(options: NnReferenceOptions): Promise<NnReferenceResult> {
  const started = Date.now();
  const cpu0 = process.cpuUsage();
  const cap = options.cap ?? DEFAULT_NN_CAP;
  checkInteger('cap', cap, 1, 2 ** 30);
  const o = { batchSize: options.batchSize ?? 8, threads: options.threads ?? os.availableParallelism() };
  const S = options.mapSize ?? 256, sigma = options.sigma ?? 4;
  const log = options.log ?? (() => undefined);
  const { classes, dataset } = options;
  let all: Sample[] = [];
  for (const c of classes) all = all.concat(dataset.samples('train', c));
  const { train } = splitHoldout(all, 0.1, options.seed);
  if (options.detector === undefined && options.backbone === undefined) {
    throw new HgadArgumentError('options.backbone', 'a backbone choice, or options.detector', options.backbone);
  }
  // In latent space the search runs at the detector's scoring precision, as its own maps do.
  const precision = options.detector ? options.detector.model.precision.inference : 'fp32';
  const bb: VectorSource = options.detector
    ? await latentSource(options.detector)
    : await openBackbone(await specFromChoice(options.backbone!), o.threads);
  try {
    const banks = new Map<string, Float32Array[]>();
    const sizes: NnBankSize[] = [];
    for (const c of classes) {
      const built = await buildBanks(bb, train.filter((s) => s.className === c), c, cap, options.seed, o);
      banks.set(c, built.banks);
      sizes.push(...built.sizes);
      log(`nn bank ${c}: ${built.sizes.map((s) => `${s.level} ${s.vectors}/${s.available} x ${s.channels}`).join(', ')}`);
    }
    const bankSeconds = (Date.now() - started) / 1000;
    const perClassBank: Record<string, NnMetrics> = {}, allClassesBank: Record<string, NnMetrics> = {};
    let searchMs = 0, testImages = 0;
    for (const c of classes) {
      const samples = testSamples(dataset, c, options.limitPerDefect);
      const own: EvalSample[] = [], union: EvalSample[] = [];
      let i = 0;
      for await (const batch of imageBatches(samples, {
        batchSize: o.batchSize, size: { width: bb.inputSize, height: bb.inputSize }, concurrency: 2 * o.threads, maskSize: { width: S, height: S },
      })) {
        const features = await pooledFeatures(bb, batch.pixels, batch.batch);
        const t0 = Date.now();
        const ownPlanes: DistancePlane[] = [], unionPlanes: DistancePlane[] = [];
        for (let li = 0; li < features.length; li++) {
          const f = features[li]!;
          const d = await nearestDistances(f.data, banks.get(c)![li]!, { dim: f.channels, precision });
          let u: Float32Array = d.slice();
          for (const k of classes) if (k !== c) u = await nearestDistances(f.data, banks.get(k)![li]!, { dim: f.channels, into: u, precision });
          ownPlanes.push({ values: d, height: f.height, width: f.width });
          unionPlanes.push({ values: u, height: f.height, width: f.width });
        }
        searchMs += Date.now() - t0;
        const a = await distanceMaps(ownPlanes, batch.batch, { height: S, width: S, sigma });
        const b = await distanceMaps(unionPlanes, batch.batch, { height: S, width: S, sigma });
        for (let k = 0; k < batch.batch; k++, i++) {
          const sample = samples[i]!;
          const known = sample.label === 0 || sample.maskPath !== null;
          const mask = known && batch.masks ? batch.masks.slice(k * S * S, (k + 1) * S * S) : null;
          const base = { className: c, label: sample.label, mask, height: S, width: S };
          own.push({ ...base, imageScore: a.scores[k]!, map: a.maps.slice(k * S * S, (k + 1) * S * S) });
          union.push({ ...base, imageScore: b.scores[k]!, map: b.maps.slice(k * S * S, (k + 1) * S * S) });
        }
      }
      testImages += samples.length;
      perClassBank[c] = metricsOf(await evaluate(own));
      allClassesBank[c] = metricsOf(await evaluate(union));
      log(`nn ${c}: per-class bank ${JSON.stringify(perClassBank[c])}, all-classes bank ${JSON.stringify(allClassesBank[c])}`);
    }
    const total = (Date.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return {
      perClassBank, allClassesBank, space: options.detector ? 'latent' : 'backbone', banks: sizes, cap, trainImages: train.length, testImages,
      seconds: { bank: bankSeconds, test: total - bankSeconds, search: searchMs / 1000, total, cpu: (cpu.user + cpu.system) / 1e6 },
    };
  } finally {
    await bb.dispose();
  }
}

/** The table's note on the reference: what was searched and how big the banks were. */
export function nnNote(r: NnReferenceResult): string {
  const capped = r.banks.filter((b) => b.vectors < b.available);
  const banks = r.banks.map((b) => `${b.className} ${b.level.replace(/@\d+$/, '')} ${b.vectors}${b.vectors < b.available ? ` of ${b.available}` : ''}`).join(', ');
  const what = r.space === 'latent'
    ? 'Search in the flow\'s latent space: the detector\'s flow inputs mapped through its flow, 3x3-averaged'
    : 'NN reference (PatchCore-style, no training): 3x3-averaged backbone features';
  return `${what} per level, Euclidean distance ` +
    `to the nearest memory-bank vector, per-level distance maps upsampled, summed and blurred like the flow's; ` +
    `image score = map max. Bank cap ${r.cap} vectors per class and level, random subsampling stratified over ` +
    `the training images (${capped.length ? 'capped' : 'no bank needed capping'}; vectors per bank: ${banks}); the ` +
    `all-classes bank is the union of the per-class banks. ${r.trainImages} training images, ${r.testImages} test ` +
    `images; ${r.seconds.total.toFixed(0)} s in all (banks, the rows' 'training s': ${r.seconds.bank.toFixed(0)} s, test ${r.seconds.test.toFixed(0)} s ` +
    `of which nearest-neighbour search ${r.seconds.search.toFixed(0)} s; ${r.seconds.cpu.toFixed(0)} CPU s).`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    model: { type: 'string' }, taps: { type: 'string' }, size: { type: 'string' }, cap: { type: 'string' },
    classes: { type: 'string' }, seed: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' },
    'limit-per-defect': { type: 'string' },
  } });
  const shared = path.resolve(__dirname, '..', '..', '..', 'shared');
  const dataset = await openDataset({ root: path.join(shared, 'data'), layout: 'mvtec' });
  const model = values.model ?? path.join(shared, 'models', 'mobilenetv2-12-int8.onnx');
  const taps = (values.taps ?? '365_quantized,426_quantized,452_quantized').split(',');
  const r = await runNnReference({
    dataset, classes: (values.classes ?? 'magnetic_tile,metal_plate').split(','),
    backbone: { model, taps, inputSize: Number(values.size ?? 256) }, seed: Number(values.seed ?? 0),
    cap: Number(values.cap ?? DEFAULT_NN_CAP), batchSize: Number(values.batch ?? 8),
    ...(values.threads ? { threads: Number(values.threads) } : {}),
    ...(values['limit-per-defect'] ? { limitPerDefect: Number(values['limit-per-defect']) } : {}),
    log: (l) => console.log(l),
  });
  console.log(JSON.stringify({ model: path.basename(model), taps, ...r }, null, 1));
  console.log(nnNote(r));
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
