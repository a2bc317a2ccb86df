// Training a detector on folders of normal images (HGAD.md section 5): backbone features of every
// batch, one optimiser step per level per batch, the warm-up + cosine schedule and the two loss
// phases; checkpoints at pass boundaries; then calibration on held-out normal images.
import { createHash } from 'node:crypto';

import { defaultThreads, Prior, PRIORS } from '../config';
import { Dataset, imageBatches, openDataset, Sample, splitHoldout } from '../data';
import { hashString, shuffled } from '../data/random';
import { HgadArgumentError, HgadError } from '../errors';
import type { FeatureLevel } from '../features/backbone';
import { checkDensity, Density, HgadModel, LossTerms } from '../model';
import { checkPrecision, DEFAULT_TRAINING_PRECISION, PrecisionChoice } from '../precision';
import { PRESETS } from '../features/presets';
import { BackboneChoice, openBackbone, specFromChoice } from '../pipeline/backbone-spec';
import { oneAhead } from '../pipeline/ahead';
import { AnomalyDetector } from '../pipeline/detector';
import { FeatureReduction, ReductionOptions, resolveReduction } from '../pipeline/reduction';
import type { MapSpec, PipelineSpec, TrainingState } from '../pipeline/spec';
import { MAP_SIZE_RANGE, PIPELINE_VERSION, specVersion } from '../pipeline/spec';
import { BANK_SIZE_RANGE, DEFAULT_BANK_SIZE, MAP_METHODS, MapMethod } from '../pipeline/latent-banks';
import { buildBanks } from './banks';
import { calibrate } from '../score/calibrate';
import { checkInteger, checkKeys } from '../validate';
import { FeatureCache } from './feature-cache';
import { ProgressLine, TrainProgress } from './progress';
import { learningRate, phaseAt, resolveSchedule, Schedule, ScheduleOptions } from './schedule';

export interface FlowOptions {
  couplingLayers?: number;
  centersPerClass?: number;
  clamp?: number;
  posEmbedDim?: number;
}

export interface TrainOptions {
  /** The training data: an opened dataset, or where to open one. */
  data: Dataset | { root: string; layout?: 'mvtec' | 'visa' | 'btad' | 'mvtec3d' | 'generic' | 'auto' };
  /** Classes to train on (default: all of the dataset's). */
  classes?: string[];
  /** Use at most this many training images per class (the first ones in name order). */
  limitPerClass?: number;
  backbone: BackboneChoice;
  /**
   * The flow's latent prior (HgadConfig.prior): 'hgad' (default), 'single-gaussian' (the classic flow
   * baseline; its anomaly maps use logp alone and scoring needs the class of every image) or
   * 'inter-only' (no intra-class centres, phase-1 losses throughout). With a prior other than 'hgad',
   * flow.centersPerClass must be 1 or left out.
   */
  prior?: Prior;
  /** The schedule; unset values come from the backbone preset's recommendation (Preset.schedule), else HGAD.md's defaults. */
  schedule?: ScheduleOptions;
  /** Images per batch. Default 8. */
  batchSize?: number;
  /** Seed of the flow's initialisation, the hold-out split and the shuffles. Default 0. */
  seed?: number;
  flow?: FlowOptions;
  /** Fraction of each class's training images held out for calibration. Default 0.1. */
  holdout?: number;
  /** Threshold quantile of the held-out images' scores, per class. Default 0.99. */
  thresholdQuantile?: number;
  /** Side of the anomaly maps. Default 256 (the authors' mask size). */
  mapSize?: number;
  /**
   * The log-density the anomaly maps read: 'latent' (default), the mixture's log p_Z(z); 'full', the
   * authors' log p_X(x) = log p_Z(z) + log|det J|. Chosen on validation splits (benchmarks/RESULTS.md,
   * "issue 10, session 4"): the log-determinant's spread across normal positions hides subtle defects.
   */
  density?: Density;
  /**
   * What the anomaly maps are: 'density', the flow's (HGAD.md section 6, with `density`); 'nearest',
   * each position's distance to the nearest training latent of its class (lib/pipeline/latent-banks.ts),
   * from banks built when training finishes and stored in the detector. Default: the backbone preset's
   * recommendation (Preset.maps), else 'density'.
   */
  maps?: MapMethod;
  /** With maps 'nearest': most latents per class and level kept in the banks. Default 16384. */
  bankSize?: number;
  /**
   * With maps 'nearest': one bank level more, the coarsest level at half its resolution (NearestSpec.coarse;
   * it needs a coarsest level of at least 2 x 2 positions). Default true.
   */
  coarseLevel?: boolean;
  threads?: number;
  /**
   * GEMM precision of the training steps (lib/precision.ts): 'bf16' is mixed precision (bf16 GEMM
   * inputs, float accumulation, float master weights and Adam state). Default 'fp32'. The detector's
   * model reports what ran in detector.model.precision.training.
   */
  precision?: PrecisionChoice;
  /** Save a checkpoint (detector + optimiser state) every `every` passes (default 1) to `path`. */
  checkpoint?: { path: string; every?: number };
  /** Continue from a checkpoint written by an earlier run with the same data and options. */
  resume?: string;
  onProgress?: (progress: TrainProgress) => void;
  /** Draw a progress line on stderr. Default: when stderr is a terminal. */
  progressBar?: boolean;
  /** Stops training after the current batch; the promise rejects with code ABORTED. */
  signal?: AbortSignal;
  /** Memory for keeping backbone features between passes. Default 2 GiB; 0 disables the cache. */
  featureCacheBytes?: number;
  /**
   * Channel reduction before the flow (see lib/pipeline/reduction.ts): each level standardised with
   * statistics of the training features and projected to `channels` fixed orthonormal directions.
   * Default: the backbone preset's recommendation (Preset.reduction), else none; false: none.
   */
  reduction?: ReductionOptions | false;
}

/** The density new detectors' maps read (TrainOptions.density). */
export const DEFAULT_DENSITY: Density = 'latent';

const TRAIN_KEYS = ['data', 'classes', 'limitPerClass', 'backbone', 'prior', 'schedule', 'batchSize', 'seed', 'flow', 'holdout',
  'thresholdQuantile', 'mapSize', 'density', 'maps', 'bankSize', 'coarseLevel', 'threads', 'precision', 'checkpoint', 'resume', 'onProgress', 'progressBar', 'signal', 'featureCacheBytes', 'reduction'];
const FLOW_KEYS = ['couplingLayers', 'centersPerClass', 'clamp', 'posEmbedDim'];

/** What a training run settles before its first step; train() and extend() each add their own. */
export interface TrainingPlan {
  train: Sample[];
  holdout: Sample[];
  schedule: Schedule;
  batchSize: number;
  seed: number;
  threads: number;
  /** Of the classes and training images, stored as the training state's trainDigest. */
  digest: string;
}

interface Plan extends TrainingPlan {
  classes: string[];
}

async function planOf(options: TrainOptions): Promise<Plan> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, TRAIN_KEYS);
  if (options.density !== undefined) checkDensity('density', options.density);
  if (options.maps !== undefined && !(MAP_METHODS as readonly unknown[]).includes(options.maps)) {
    throw new HgadArgumentError('maps', `one of ${MAP_METHODS.map((m) => `'${m}'`).join(', ')}`, options.maps);
  }
  if (options.bankSize !== undefined) checkInteger('bankSize', options.bankSize, ...BANK_SIZE_RANGE);
  if (options.flow !== undefined) {
    if (typeof options.flow !== 'object' || options.flow === null) throw new HgadArgumentError('flow', 'an object', options.flow);
    checkKeys('flow', options.flow, FLOW_KEYS);
  }
  if (options.checkpoint !== undefined) checkKeys('checkpoint', options.checkpoint, ['path', 'every']);
  const data = options.data;
  if (typeof data !== 'object' || data === null) throw new HgadArgumentError('data', 'a dataset or { root, layout }', data);
  const isDataset = 'samples' in data && typeof data.samples === 'function';
  if (!isDataset) checkKeys('data', data, ['root', 'layout']);
  const dataset: Dataset = isDataset
    ? data as Dataset
    : await openDataset({ root: (data as { root: string }).root, layout: (data as { layout?: 'auto' }).layout ?? 'auto' });
  const classes = options.classes ?? dataset.classes;
  if (!Array.isArray(classes) || classes.length === 0) throw new HgadArgumentError('classes', 'a non-empty array of class names', classes);
  classes.forEach((c, i) => {
    if (!dataset.classes.includes(c)) throw new HgadArgumentError(`classes[${i}]`, `one of the dataset's classes (${dataset.classes.join(', ')})`, c);
  });
  if (options.limitPerClass !== undefined) checkInteger('limitPerClass', options.limitPerClass, 1, 1 << 30);
  let all: Sample[] = [];
  for (const c of classes) {
    const own = dataset.samples('train', c);
    if (own.length === 0) throw new HgadArgumentError(`classes`, `classes with training images (${c} has none)`, c);
    all = all.concat(options.limitPerClass ? own.slice(0, options.limitPerClass) : own);
  }
  const seed = options.seed ?? 0;
  checkInteger('seed', seed, 0, 2 ** 31 - 1);
  const fraction = options.holdout ?? 0.1;
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1)) throw new HgadArgumentError('holdout', 'a fraction in [0, 1)', fraction);
  const { train, holdout } = fraction > 0 ? splitHoldout(all, fraction, seed) : { train: all, holdout: [] };
  const batchSize = options.batchSize ?? 8;
  checkInteger('batchSize', batchSize, 1, 4096);
  const threads = options.threads ?? defaultThreads();
  checkInteger('threads', threads, 1, 1024);
  checkPrecision('precision', options.precision, DEFAULT_TRAINING_PRECISION);
  if (options.prior !== undefined && !(PRIORS as readonly unknown[]).includes(options.prior)) {
    throw new HgadArgumentError('prior', `one of ${PRIORS.map((p) => `'${p}'`).join(', ')}`, options.prior);
  }
  const digest = createHash('sha256').update(JSON.stringify([classes, train.map((s) => [s.path, s.className])])).digest('hex');
  // A preset's recommended schedule (Preset.schedule) stands in for the authors' defaults; the caller's
  // own values win.
  const model = options.backbone?.model;
  const preset = typeof model === 'string' && Object.prototype.hasOwnProperty.call(PRESETS, model) ? PRESETS[model] : undefined;
  if (options.schedule !== undefined && (typeof options.schedule !== 'object' || options.schedule === null)) {
    throw new HgadArgumentError('schedule', 'an object', options.schedule);
  }
  const schedule = resolveSchedule({ ...(preset?.schedule ?? {}), ...(options.schedule ?? {}) });
  return { classes, train, holdout, schedule, batchSize, seed, threads, digest };
}

async function newDetector(options: TrainOptions, plan: Plan): Promise<AnomalyDetector> {
  const backbone = await specFromChoice(options.backbone);
  const mapSize = options.mapSize ?? 256;
  checkInteger('mapSize', mapSize, MAP_SIZE_RANGE[0], MAP_SIZE_RANGE[1]);
  const prior = options.prior ?? 'hgad';
  // With one Gaussian per image (single-Gaussian prior, or one class) the negative entropy is the same
  // constant everywhere and its map carries nothing.
  const combine = prior === 'single-gaussian' || plan.classes.length === 1 ? 'logp' : 'logp*nent';
  const density = options.density ?? DEFAULT_DENSITY;
  const maps = options.maps ?? PRESETS[backbone.model]?.maps ?? 'density';
  for (const key of ['bankSize', 'coarseLevel'] as const) {
    if (maps !== 'nearest' && options[key] !== undefined) throw new HgadArgumentError(key, "nothing: banks belong to maps 'nearest'", options[key]);
  }
  if (options.coarseLevel !== undefined && typeof options.coarseLevel !== 'boolean') {
    throw new HgadArgumentError('coarseLevel', 'true or false', options.coarseLevel);
  }
  const coarse = maps === 'nearest' && (options.coarseLevel ?? true);
  const nearest = maps === 'nearest' ? { nearest: { cap: options.bankSize ?? DEFAULT_BANK_SIZE, seed: plan.seed, ...(coarse ? { coarse } : {}) } } : {};
  const map: MapSpec = { size: mapSize, sigma: 4, combine, density, ...nearest };
  const spec: PipelineSpec = {
    version: PIPELINE_VERSION, backbone, map, calibration: null, training: null, reduction: null,
  };
  spec.version = specVersion(spec);
  const bb = await openBackbone(backbone, plan.threads);
  const inChannels = bb.levels.map((l) => l.channels);
  const coarsest = bb.levels[bb.levels.length - 1]!;
  if (coarse && (coarsest.height < 2 || coarsest.width < 2)) {
    await bb.dispose().catch(() => undefined);
    throw new HgadArgumentError('coarseLevel', `false: the coarsest level (${coarsest.name}) has ${coarsest.height} x ${coarsest.width} positions, too few to halve`, true);
  }
  let reduction: FeatureReduction | null = null;
  const wanted = options.reduction ?? PRESETS[backbone.model]?.reduction ?? false;
  if (wanted !== false) {
    const resolved = resolveReduction(wanted, inChannels);
    // Statistics from a seeded sample of the training images (the same sample for the same seed).
    const sample = shuffled(plan.train, hashString(`${plan.seed}:reduction`)).slice(0, resolved.images);
    const size = { width: bb.inputSize, height: bb.inputSize };
    const features = async function* (): AsyncGenerator<FeatureLevel[]> {
      for await (const batch of imageBatches(sample, { batchSize: plan.batchSize, size, concurrency: 2 * plan.threads })) {
        yield await bb.extract(batch.pixels, batch.batch);
      }
    };
    try {
      reduction = await FeatureReduction.fit(inChannels, resolved, features(), plan.seed);
    } catch (e) {
      await bb.dispose().catch(() => undefined);
      throw e;
    }
  }
  const model = HgadModel.create({
    levels: (reduction?.spec.channels ?? inChannels).map((channels) => ({ channels })),
    classes: plan.classes,
    prior,
    ...(options.flow ?? {}),
    seed: plan.seed,
    threads: plan.threads,
    trainPrecision: options.precision ?? DEFAULT_TRAINING_PRECISION,
  });
  return new AnomalyDetector(model, spec, plan.threads, bb, { reduction });
}

async function resumeDetector(path: string, plan: Plan, prior: Prior | undefined,
  precision: PrecisionChoice): Promise<AnomalyDetector> {
  const detector = await AnomalyDetector.load(path, { threads: plan.threads, trainPrecision: precision });
  const t = detector.spec.training;
  if (!t) throw new HgadArgumentError('resume', 'a checkpoint written during training (it has no training state)', path);
  if (t.trainDigest !== plan.digest || t.batchSize !== plan.batchSize || t.seed !== plan.seed ||
    JSON.stringify(t.schedule) !== JSON.stringify(plan.schedule)) {
    throw new HgadArgumentError('resume', 'a checkpoint of a run with the same data, classes, batch size, seed and schedule', path);
  }
  if (prior !== undefined && detector.model.config.prior !== prior) {
    throw new HgadArgumentError('prior', `the checkpoint's prior ('${detector.model.config.prior}') or nothing`, prior);
  }
  return detector;
}

function meanLosses(all: LossTerms[]): LossTerms {
  const out: LossTerms = { Lg: 0, Lmi: 0, Le: 0, Lgi: 0, Lz: 0, loss: 0 };
  for (const l of all) for (const k of Object.keys(out) as (keyof LossTerms)[]) out[k] += l[k] / all.length;
  return out;
}

/** Trains a detector; resolves once it is trained and calibrated. */
export async function train(options: TrainOptions): Promise<AnomalyDetector> {
  const plan = await planOf(options);
  if (options.checkpoint !== undefined) {
    if (typeof options.checkpoint?.path !== 'string') throw new HgadArgumentError('checkpoint.path', 'a file path', options.checkpoint?.path);
    checkInteger('checkpoint.every', options.checkpoint.every ?? 1, 1, 1 << 20);
  }
  const budget = options.featureCacheBytes ?? 2 ** 31;
  checkInteger('featureCacheBytes', budget, 0, Number.MAX_SAFE_INTEGER);
  const detector = options.resume !== undefined ? await resumeDetector(options.resume, plan, options.prior,
    options.precision ?? DEFAULT_TRAINING_PRECISION) : await newDetector(options, plan);
  try {
    await fit(detector, options, plan, budget);
  } catch (e) {
    // The backbone's onnxruntime session is released; the last checkpoint (if any) stays valid.
    await detector.dispose().catch(() => undefined);
    throw e;
  }
  return detector;
}

/** The passes of the schedule from where the detector's training state stands, then calibration. */
async function fit(detector: AnomalyDetector, options: TrainOptions, plan: Plan, budget: number): Promise<void> {
  const { schedule: s, batchSize } = plan;
  const model = detector.model;
  const backbone = await detector.backbone();
  const widths = detector.model.config.levels.map((l) => l.channels);
  const shapes = backbone.levels.map((l, i) => ({ height: l.height, width: l.width, channels: widths[i]! }));
  const cache = budget > 0 && FeatureCache.bytesPerImage(shapes) * plan.train.length <= budget ? new FeatureCache(shapes) : null;
  const index = new Map(plan.train.map((sample, i) => [sample.path, i]));
  const classOf = new Map(plan.classes.map((c, i) => [c, i]));
  const batchesPerPass = Math.ceil(plan.train.length / batchSize);
  const totalSteps = batchesPerPass * s.subEpochs * s.metaEpochs;
  const bar = options.progressBar ?? process.stderr.isTTY === true ? new ProgressLine(process.stderr) : null;
  const state: TrainingState = detector.spec.training ?? {
    epoch: 0, subEpoch: 0, seed: plan.seed, batchSize, schedule: s, trainImages: plan.train.length, trainDigest: plan.digest, complete: false,
  };
  const every = options.checkpoint?.every ?? 1;
  const started = Date.now();
  let stepsThisRun = 0, imagesThisRun = 0;

  const trainBatch = async (features: FeatureLevel[], samples: Sample[], epoch: number, sub: number, b: number): Promise<void> => {
    if (options.signal?.aborted) throw new HgadError('ABORTED', 'Training was aborted by options.signal', 'signal');
    const labels = Int32Array.from(samples, (x) => classOf.get(x.className)!);
    const phase = phaseAt(s, epoch);
    const lr = learningRate(s, { epoch, subEpoch: sub, batch: b }, batchesPerPass);
    const losses: LossTerms[] = [];
    for (let l = 0; l < features.length; l++) losses.push(await model.trainStep(l, features[l]!, labels, { phase, lr }));
    stepsThisRun += 1;
    imagesThisRun += samples.length;
    const step = (epoch * s.subEpochs + sub) * batchesPerPass + b + 1;
    const elapsed = (Date.now() - started) / 1000;
    const rate = imagesThisRun / Math.max(elapsed, 1e-6);
    const p: TrainProgress = {
      epoch, epochs: s.metaEpochs, subEpoch: sub, subEpochs: s.subEpochs, step, totalSteps, phase, lr,
      losses: meanLosses(losses), imagesPerSecond: rate,
      etaSeconds: stepsThisRun > 0 ? ((totalSteps - step) * elapsed) / stepsThisRun : null,
    };
    bar?.update(p);
    options.onProgress?.(p);
  };

  for (let epoch = state.epoch; epoch < s.metaEpochs; epoch++) {
    for (let sub = epoch === state.epoch ? state.subEpoch : 0; sub < s.subEpochs; sub++) {
      const order = shuffled(plan.train, hashString(`${plan.seed}:${epoch}:${sub}`));
      if (cache && order.every((x) => cache.has(index.get(x.path)!))) {
        for (let b = 0; b < batchesPerPass; b++) {
          const samples = order.slice(b * batchSize, (b + 1) * batchSize);
          await trainBatch(cache.batch(samples.map((x) => index.get(x.path)!)), samples, epoch, sub, b);
        }
      } else {
        // Decoding and the backbone run one batch ahead of the flow.
        let b = 0;
        const batches = imageBatches(order, { batchSize, size: { width: detector.inputSize, height: detector.inputSize }, concurrency: 2 * plan.threads });
        const extracted = oneAhead(batches, async (batch) => ({ features: await detector.features(batch.pixels, batch.batch), samples: batch.samples }));
        for await (const { features, samples } of extracted) {
          if (cache) samples.forEach((x, i) => cache.put(index.get(x.path)!, features, i));
          await trainBatch(features, samples, epoch, sub, b++);
        }
      }
      state.epoch = sub + 1 === s.subEpochs ? epoch + 1 : epoch;
      state.subEpoch = sub + 1 === s.subEpochs ? 0 : sub + 1;
      detector.spec = { ...detector.spec, training: { ...state } };
      const passes = epoch * s.subEpochs + sub + 1;
      if (options.checkpoint && passes % every === 0) await detector.save(options.checkpoint.path, { optimizer: true });
    }
  }
  if (detector.spec.map.nearest) {
    const cached = cache ? {
      has: (samples: Sample[]) => samples.every((x) => cache.has(index.get(x.path)!)),
      batch: (samples: Sample[]) => cache.batch(samples.map((x) => index.get(x.path)!)),
    } : undefined;
    detector.banks = await buildBanks(detector, plan.train, plan.classes, {
      batchSize, threads: plan.threads, ...(cached ? { cached } : {}), ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  const normals = plan.holdout.length > 0 ? plan.holdout : plan.train;
  const quantile = options.thresholdQuantile ?? 0.99;
  const calibration = await calibrate(detector, normals, { quantile, batchSize });
  detector.spec = { ...detector.spec, calibration, training: { ...state, complete: true } };
  if (options.checkpoint) await detector.save(options.checkpoint.path, { optimizer: true });
}
