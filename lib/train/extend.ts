// Adding classes to a trained detector (issue 15) without retraining it. The shared flow and every
// earlier class stay frozen, so the old classes' maps and thresholds stay exactly as they were.
//
// Each new class gets (a) centres and logits in the shared flow's mixture, initialised from its own
// latents and trained with the flow frozen: they give the class posterior, i.e. which class an image
// is; and (b) by default (options.flow 'class'), a flow of its own over the same features, trained on
// its images alone, which makes its maps (lib/pipeline/class-flows.ts). Without (b) (flow 'shared')
// the new class's maps come from the frozen shared flow, whose latent space was never trained on it:
// on the shared data its maps were at chance (benchmarks/RESULTS.md, issue 15). Fine-tuning the
// shared flow instead would move every old class's latents, so their thresholds would have to be
// measured again on their images, which a plant adding a product may no longer have.
//
// Each new class gets map constants and a threshold of its own, measured on its held-out images.
import { createHash } from 'node:crypto';
import * as nodePath from 'node:path';

import { defaultThreads } from '../config';
import { Dataset, imageBatches, openDataset, Sample, splitHoldout } from '../data';
import { hashString, shuffled } from '../data/random';
import { HgadArgumentError, HgadError } from '../errors';
import type { FeatureLevel } from '../features/backbone';
import { PRESETS } from '../features/presets';
import { HgadModel, LossTerms } from '../model';
import { callNative, featureOps } from '../native-ops';
import { oneAhead } from '../pipeline/ahead';
import { BackboneChoice, specFromChoice } from '../pipeline/backbone-spec';
import { classFlowConfig } from '../pipeline/class-flows';
import { AnomalyDetector } from '../pipeline/detector';
import { CLASS_FLOW_LIMITS, combineOf, MAP_COMBINES, specVersion } from '../pipeline/spec';
import type { ClassConstants, ClassFlowSpec, HistoryEntry, MapCombine, MapSpec, PipelineSpec } from '../pipeline/spec';
import { quantile } from '../score/calibrate';
import { measureConstants } from '../score/scorer';
import { checkInteger, checkKeys } from '../validate';
import { buildBanks } from './banks';
import { FeatureCache } from './feature-cache';
import { ProgressLine, TrainProgress } from './progress';
import { learningRate, phaseAt, resolveSchedule, Schedule, ScheduleOptions } from './schedule';
import type { TrainingPlan } from './trainer';

export interface ExtendOptions {
  /** The new classes' images: an opened dataset, or where to open one. */
  data: Dataset | { root: string; layout?: 'mvtec' | 'visa' | 'btad' | 'mvtec3d' | 'generic' | 'auto' };
  /** The classes to add (names the detector does not have yet). */
  classes: string[];
  /** Use at most this many training images per new class (the first ones in name order). */
  limitPerClass?: number;
  /**
   * Only a check: the backbone the caller expects. Adding classes keeps the detector's backbone, input
   * size and reduction (the flow was trained on those features); a different one is an error.
   */
  backbone?: BackboneChoice;
  /**
   * Which flow makes the new classes' maps. 'class' (default): a flow of each new class's own, trained
   * on its images (classFlow); its maps are 'logp' maps. 'shared': the frozen shared flow, with the
   * new class's centres in its mixture (cheaper, but the shared flow never learnt the class).
   */
  flow?: 'class' | 'shared';
  /** The class flows' settings (flow 'class'). */
  classFlow?: ClassFlowOptions;
  /**
   * flow 'shared' only: how the new classes' maps combine the logp and negative-entropy maps. Default
   * 'logp*nent' (HGAD.md section 6). The old classes keep their own.
   */
  combine?: MapCombine;
  /** Default: the schedule the detector was trained with (its training state). */
  schedule?: ScheduleOptions;
  /** Default: the detector's training batch size. */
  batchSize?: number;
  /** Seed of the hold-out split, the centres' initialisation and the shuffles. Default: the detector's. */
  seed?: number;
  /** Fraction of each new class's images held out to calibrate its threshold. Default 0.1. */
  holdout?: number;
  /** Threshold quantile of the held-out images' scores. Default: the detector's calibration quantile. */
  thresholdQuantile?: number;
  threads?: number;
  /** Memory for keeping the new classes' latents between passes. Default 2 GiB; 0: recompute every pass. */
  featureCacheBytes?: number;
  onProgress?: (progress: TrainProgress) => void;
  /** Draw a progress line on stderr. Default: when stderr is a terminal. */
  progressBar?: boolean;
  /** Stops after the current batch; the promise rejects with code ABORTED (the detector is unchanged). */
  signal?: AbortSignal;
}

export interface ClassFlowOptions {
  /** Coupling blocks per level. Default 8. */
  couplingLayers?: number;
  /** Centres of the class in its flow's mixture. Default: the shared flow's centersPerClass. */
  centersPerClass?: number;
  /** Its training schedule. Default: CLASS_FLOW_SCHEDULE, with the detector's learning rate. */
  schedule?: ScheduleOptions;
}

/**
 * A class flow's default schedule: more passes than the detector's own, since one class's images are
 * few (the shared data's metal_plate has 54) and each pass costs the flow alone (features are computed
 * once). Chosen on the validation split (benchmarks/RESULTS.md, issue 15, session 6).
 */
export const CLASS_FLOW_SCHEDULE = { metaEpochs: 4, subEpochs: 8, warmupEpochs: 1, phase1Epochs: 1 } as const;
export const CLASS_FLOW_LAYERS = 8;

const FLOW_CHOICES = ['class', 'shared'];
const CLASS_FLOW_KEYS = ['couplingLayers', 'centersPerClass', 'schedule'];
const EXTEND_KEYS = ['data', 'classes', 'limitPerClass', 'backbone', 'flow', 'classFlow', 'combine', 'schedule', 'batchSize', 'seed', 'holdout', 'thresholdQuantile',
  'threads', 'featureCacheBytes', 'onProgress', 'progressBar', 'signal'];

interface Plan extends TrainingPlan {
  dataRoot: string | null;
  oldClasses: string[];
  newClasses: string[];
  flow: 'class' | 'shared';
  classFlow: { couplingLayers: number; centersPerClass: number; schedule: Schedule };
  combine: MapCombine;
  quantile: number;
  budget: number;
}

/** The detector checked for what adding classes needs: trained, calibrated, a prior with class centres. */
function checkDetector(detector: unknown): AnomalyDetector {
  if (!(detector instanceof AnomalyDetector)) throw new HgadArgumentError('detector', 'an AnomalyDetector', detector);
  detector.assertUsable();
  const t = detector.spec.training;
  if (!t || !t.complete || !detector.spec.calibration) {
    throw new HgadArgumentError('detector', 'a trained, calibrated detector with its training state (schedule, batch size, seed; ' +
      'written by hgad train)', t ? 'a checkpoint of a run that has not finished' : 'a detector without training state');
  }
  if (detector.model.config.prior === 'single-gaussian') {
    throw new HgadArgumentError('detector', "a detector with class centres (prior 'hgad' or 'inter-only'): a single-gaussian " +
      'detector maps every class to the same N(0, I), so a new class has nothing of its own to train', 'single-gaussian');
  }
  return detector;
}

async function checkBackbone(detector: AnomalyDetector, choice: BackboneChoice): Promise<void> {
  const have = detector.spec.backbone;
  if (typeof choice !== 'object' || choice === null) throw new HgadArgumentError('backbone', 'an object { model, ... }', choice);
  // Another model is refused before anything is fetched or read for it.
  const named = typeof choice.model === 'string' && !Object.prototype.hasOwnProperty.call(PRESETS, choice.model)
    ? nodePath.resolve(choice.model) : choice.model;
  if (named !== have.model) {
    throw new HgadArgumentError('backbone.model', `the detector's own (${have.model}): new classes are learnt on the features ` +
      'the flow was trained on; train a new detector for another backbone', choice.model);
  }
  const want = await specFromChoice(choice);
  const differs = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b);
  for (const key of ['model', 'sha256', 'taps', 'scales', 'inputSize', 'mean', 'std'] as const) {
    if (differs(want[key], have[key])) {
      const parameter = key === 'sha256' ? 'backbone.model' : `backbone.${key}`;
      throw new HgadArgumentError(parameter, `the detector's own (${JSON.stringify(have[key])}): new classes are learnt on the ` +
        "features the flow was trained on; train a new detector for another backbone or input size", want[key]);
    }
  }
}

async function planOf(detector: AnomalyDetector, options: ExtendOptions): Promise<Plan> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, EXTEND_KEYS);
  const data = options.data;
  if (typeof data !== 'object' || data === null) throw new HgadArgumentError('data', 'a dataset or { root, layout }', data);
  const isDataset = 'samples' in data && typeof data.samples === 'function';
  if (!isDataset) checkKeys('data', data, ['root', 'layout']);
  const old = [...detector.classes];
  const classes = options.classes;
  if (!Array.isArray(classes) || classes.length === 0) throw new HgadArgumentError('classes', 'a non-empty array of class names to add', classes);
  classes.forEach((c, i) => {
    if (typeof c !== 'string' || c.length === 0) throw new HgadArgumentError(`classes[${i}]`, 'a class name', c);
    if (old.includes(c)) throw new HgadArgumentError(`classes[${i}]`, `a class the detector does not have yet (it has ${old.join(', ')})`, c);
    if (classes.indexOf(c) !== i) throw new HgadArgumentError(`classes[${i}]`, 'each new class once', c);
  });
  if (options.limitPerClass !== undefined) checkInteger('limitPerClass', options.limitPerClass, 1, 1 << 30);
  const flow = options.flow ?? 'class';
  if (!FLOW_CHOICES.includes(flow)) throw new HgadArgumentError('flow', "'class' or 'shared'", flow);
  if (flow === 'class' && options.combine !== undefined && options.combine !== 'logp') {
    throw new HgadArgumentError('combine', "'logp' or nothing with flow 'class' (a class flow's mixture has one class: its negative entropy is 0)", options.combine);
  }
  if (flow === 'shared' && options.classFlow !== undefined) throw new HgadArgumentError('classFlow', "nothing with flow 'shared'", options.classFlow);
  const combine = options.combine ?? (flow === 'class' ? 'logp' : 'logp*nent');
  if (!(MAP_COMBINES as readonly unknown[]).includes(combine)) throw new HgadArgumentError('combine', MAP_COMBINES.map((c) => `'${c}'`).join(' or '), combine);
  const t = detector.spec.training!;
  const own = options.classFlow ?? {};
  if (typeof own !== 'object' || own === null) throw new HgadArgumentError('classFlow', 'an object', own);
  checkKeys('classFlow', own, CLASS_FLOW_KEYS);
  const couplingLayers = own.couplingLayers ?? CLASS_FLOW_LAYERS;
  checkInteger('classFlow.couplingLayers', couplingLayers, ...CLASS_FLOW_LIMITS.couplingLayers);
  const centersPerClass = own.centersPerClass ?? Math.max(detector.model.config.centersPerClass, 1);
  checkInteger('classFlow.centersPerClass', centersPerClass, ...CLASS_FLOW_LIMITS.centersPerClass);
  if (own.schedule !== undefined && (typeof own.schedule !== 'object' || own.schedule === null)) {
    throw new HgadArgumentError('classFlow.schedule', 'an object', own.schedule);
  }
  const classSchedule = resolveSchedule({ ...CLASS_FLOW_SCHEDULE, lr: t.schedule.lr, ...(own.schedule ?? {}) }, 'classFlow.schedule');
  const seed = options.seed ?? t.seed;
  checkInteger('seed', seed, 0, 2 ** 31 - 1);
  const batchSize = options.batchSize ?? t.batchSize;
  checkInteger('batchSize', batchSize, 1, 4096);
  const threads = options.threads ?? detector.threads ?? defaultThreads();
  checkInteger('threads', threads, 1, 1024);
  const fraction = options.holdout ?? 0.1;
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1)) throw new HgadArgumentError('holdout', 'a fraction in [0, 1)', fraction);
  const q = options.thresholdQuantile ?? detector.spec.calibration!.quantile;
  if (typeof q !== 'number' || !(q >= 0 && q <= 1)) throw new HgadArgumentError('thresholdQuantile', 'a number in [0, 1]', q);
  const budget = options.featureCacheBytes ?? 2 ** 31;
  checkInteger('featureCacheBytes', budget, 0, Number.MAX_SAFE_INTEGER);
  if (options.schedule !== undefined && (typeof options.schedule !== 'object' || options.schedule === null)) {
    throw new HgadArgumentError('schedule', 'an object', options.schedule);
  }
  const schedule = resolveSchedule({ ...t.schedule, ...(options.schedule ?? {}) });
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new HgadArgumentError('onProgress', 'a function', options.onProgress);
  }
  if (options.backbone !== undefined) await checkBackbone(detector, options.backbone);
  const dataset: Dataset = isDataset
    ? data as Dataset
    : await openDataset({ root: (data as { root: string }).root, layout: (data as { layout?: 'auto' }).layout ?? 'auto' });
  classes.forEach((c, i) => {
    if (!dataset.classes.includes(c)) throw new HgadArgumentError(`classes[${i}]`, `one of the dataset's classes (${dataset.classes.join(', ')})`, c);
  });
  let all: Sample[] = [];
  for (const c of classes) {
    const own = dataset.samples('train', c);
    if (own.length === 0) throw new HgadArgumentError('classes', `classes with training images (${c} has none)`, c);
    all = all.concat(options.limitPerClass ? own.slice(0, options.limitPerClass) : own);
  }
  const { train, holdout } = fraction > 0 ? splitHoldout(all, fraction, seed) : { train: all, holdout: [] };
  const digest = createHash('sha256').update(JSON.stringify([classes, train.map((s) => [s.path, s.className])])).digest('hex');
  return {
    dataRoot: isDataset ? null : (data as { root: string }).root, oldClasses: old, newClasses: [...classes], flow,
    classFlow: { couplingLayers, centersPerClass, schedule: classSchedule }, combine, train, holdout, schedule,
    batchSize, seed, threads, quantile: q, budget, digest,
  };
}

/** The enlarged flow: every tensor of the old one, the old classes' rows first, new rows for the new classes. */
async function enlargedModel(old: HgadModel, plan: Plan): Promise<HgadModel> {
  const c = old.config;
  const model = await HgadModel.createAsync({
    levels: c.levels.map((l) => ({ channels: l.channels })), classes: [...plan.oldClasses, ...plan.newClasses], prior: c.prior,
    centersPerClass: c.centersPerClass, couplingLayers: c.couplingLayers, clamp: c.clamp, posEmbedDim: c.posEmbedDim, seed: c.seed,
    threads: plan.threads, device: 'cpu',
  });
  for (const t of old.tensorInfo()) {
    const values = await old.getTensor(t.name);
    if (t.group === 'flow' || t.group === 'fixed') {
      await model.setTensor(t.name, values);
    } else {
      // Class-major tensors: the old classes' rows are the first ones.
      const into = await model.getTensor(t.name);
      into.set(values, 0);
      await model.setTensor(t.name, into);
    }
  }
  return model;
}

/** One image's latents per level (z, NHWC with batch 1) and log-dets (channels 1). */
interface Latents {
  z: FeatureLevel[];
  logDet: FeatureLevel[];
}

/**
 * Runs the new classes' images through the backbone and the frozen flow, batch by batch, in the
 * order given; `visit` gets each batch's latents.
 */
async function latentBatches(detector: AnomalyDetector, samples: Sample[], plan: Plan,
  visit: (latents: Latents, batch: Sample[], features: FeatureLevel[]) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const batches = imageBatches(samples, { batchSize: plan.batchSize, size: { width: detector.inputSize, height: detector.inputSize }, concurrency: 2 * plan.threads });
  const extracted = oneAhead(batches, async (batch) => ({ features: await detector.features(batch.pixels, batch.batch), samples: batch.samples }));
  for await (const { features, samples: batchSamples } of extracted) {
    if (signal?.aborted) throw new HgadError('ABORTED', 'Adding classes was aborted by options.signal', 'signal');
    const z: FeatureLevel[] = [], logDet: FeatureLevel[] = [];
    for (let l = 0; l < features.length; l++) {
      const f = features[l]!;
      const out = await detector.model.forward(l, f);
      z.push({ ...f, data: out.z });
      logDet.push({ data: out.logDet, batch: f.batch, height: f.height, width: f.width, channels: 1 });
    }
    await visit({ z, logDet }, batchSamples, features);
  }
}

/**
 * New classes' centres from their latents: mu = the mean latent of the class; the intra-class offsets
 * from seeded samples of the class's latent vectors (so every centre starts where the class's data is);
 * psi 0; the inter-class logits phi of the new classes give them the old classes' mean prior share.
 */
async function initialiseCentres(model: HgadModel, plan: Plan, sums: Float64Array[][], counts: number[][], picks: Float32Array[][][]): Promise<void> {
  const Yold = plan.oldClasses.length, M = model.config.centersPerClass;
  for (let l = 0; l < model.config.levels.length; l++) {
    const C = model.config.levels[l]!.channels;
    const mu = await model.getTensor(`levels.${l}.mu`);
    const delta = M > 1 ? await model.getTensor(`levels.${l}.delta`) : null;
    plan.newClasses.forEach((_, k) => {
      const y = Yold + k;
      const mean = Float32Array.from(sums[l]![k]!, (s) => s / counts[l]![k]!);
      mu.set(mean, y * C);
      for (let m = 1; m < M && delta; m++) {
        const v = picks[l]![k]![m - 1]!;
        delta.set(v.map((x, i) => x - mean[i]!), (y * (M - 1) + m - 1) * C);
      }
    });
    await model.setTensor(`levels.${l}.mu`, mu);
    if (delta) await model.setTensor(`levels.${l}.delta`, delta);
    const phi = await model.getTensor(`levels.${l}.phi`);
    const oldPhi = Array.from(phi.subarray(0, Yold));
    const top = Math.max(...oldPhi);
    const share = top + Math.log(oldPhi.reduce((s, p) => s + Math.exp(p - top), 0) / Yold);
    phi.fill(share, Yold);
    await model.setTensor(`levels.${l}.phi`, phi);
  }
}

function meanLosses(all: LossTerms[]): LossTerms {
  const out: LossTerms = { Lg: 0, Lmi: 0, Le: 0, Lgi: 0, Lz: 0, loss: 0 };
  for (const l of all) for (const k of Object.keys(out) as (keyof LossTerms)[]) out[k] += l[k] / all.length;
  return out;
}

/**
 * A new detector with `options.classes` added to `detector` (which is left as it was): the new classes'
 * centres and logits trained on their images with the flow and the old classes frozen, their thresholds
 * calibrated on their held-out images, the change recorded in spec.history.
 */
export async function extendDetector(detector: AnomalyDetector, options: ExtendOptions): Promise<AnomalyDetector> {
  const started = Date.now();
  const base = checkDetector(detector);
  const plan = await planOf(base, options);
  const model = await enlargedModel(base.model, plan);
  const spec: PipelineSpec = {
    ...base.spec, map: mapWithNewClasses(base.spec.map, plan),
    calibration: { ...base.spec.calibration!, thresholds: { ...base.spec.calibration!.thresholds } },
  };
  const out = base.withModel(model, spec, plan.threads);
  try {
    const features = await fitNewClasses(out, plan, options);
    if (plan.flow === 'class') {
      let flows = base.classFlows;
      const specs: ClassFlowSpec[] = [...(base.spec.classFlows ?? [])];
      for (const c of plan.newClasses) {
        const trained = await trainClassFlow(out, plan, c, features, options);
        flows = flows.with(c, trained.flow);
        specs.push(trained.spec);
      }
      out.classFlows = flows;
      out.spec = { ...out.spec, classFlows: specs };
    }
    // Latent banks of the new classes, through the flow that now makes each one's latents; the old
    // classes' banks stay valid, as the shared flow did not move.
    if (out.spec.map.nearest) out.banks = await buildBanks(out, plan.train, plan.newClasses, {
      batchSize: plan.batchSize, threads: plan.threads, ...(options.signal ? { signal: options.signal } : {}),
    });
    const { thresholds, constants } = await calibrateNewClasses(out, plan);
    const entry: HistoryEntry = {
      action: 'extend', at: new Date(started).toISOString(), classes: plan.newClasses, data: plan.dataRoot,
      trainImages: plan.train.length, calibrationImages: (plan.holdout.length > 0 ? plan.holdout : plan.train).length,
      trainDigest: plan.digest, schedule: plan.schedule, seed: plan.seed, batchSize: plan.batchSize,
      ...(plan.flow === 'class' ? { classFlowSchedule: plan.classFlow.schedule } : {}),
      seconds: (Date.now() - started) / 1000,
    };
    const calibration = out.spec.calibration!;
    const extended: PipelineSpec = {
      ...out.spec,
      calibration: { ...calibration, thresholds: { ...calibration.thresholds, ...thresholds }, classConstants: { ...(calibration.classConstants ?? {}), ...constants } },
      history: [...(base.spec.history ?? []), entry],
      // The old classes' logp maps are unchanged bit for bit. Those whose maps multiply in the negative
      // entropy ('logp*nent') now have the new classes in that posterior: their scores move by that
      // share, so their thresholds are marked stale until the detector is calibrated again on their
      // images. Those with 'logp' maps (a one-class detector's class) keep their scores bit for bit.
      // Nearest-neighbour maps do not read the posterior: every old class keeps its scores bit for bit.
      staleThresholds: [...new Set([...(base.spec.staleThresholds ?? []),
        ...plan.oldClasses.filter((c) => !base.spec.map.nearest && combineOf(base.spec.map, c) === 'logp*nent')])],
    };
    out.spec = { ...extended, version: specVersion(extended) };
    for (let l = 0; l < model.config.levels.length; l++) model.setTrainable(l, { flow: true, firstClass: 0 });
    return out;
  } catch (e) {
    await out.dispose().catch(() => undefined);
    throw e;
  }
}

/**
 * The map settings with the new classes' combination: the old classes keep theirs (so their maps stay
 * bit for bit); the new classes use plan.combine, by default 'logp*nent', the product map of HGAD.md
 * section 6, since the detector now has several classes and their negative entropy carries the class
 * posterior (a single-Gaussian detector, whose negative entropy is constant, cannot be extended). Only
 * classes whose combination differs from map.combine are listed in map.classCombine: extending a
 * detector of several classes with the default changes nothing here.
 */
function mapWithNewClasses(map: MapSpec, plan: Plan): MapSpec {
  const classCombine: Record<string, MapCombine> = { ...(map.classCombine ?? {}) };
  for (const c of plan.newClasses) if (plan.combine !== map.combine) classCombine[c] = plan.combine;
  return { ...map, ...(Object.keys(classCombine).length > 0 ? { classCombine } : {}) };
}

/**
 * Latents once (with the class means and samples the centres start from), then the schedule's passes on
 * them. With class flows, the features are kept too (within plan.budget) for trainClassFlow.
 */
async function fitNewClasses(detector: AnomalyDetector, plan: Plan, options: ExtendOptions): Promise<FeatureCache | null> {
  const model = detector.model;
  const L = model.config.levels.length, M = model.config.centersPerClass, Yold = plan.oldClasses.length;
  const classOf = new Map(plan.newClasses.map((c, k) => [c, k]));
  const backbone = await detector.backbone();
  const shapes = backbone.levels.map((lv, l) => ({ height: lv.height, width: lv.width, channels: model.config.levels[l]!.channels }));
  const ldShapes = shapes.map((s) => ({ ...s, channels: 1 }));
  const fits = (FeatureCache.bytesPerImage(shapes) + FeatureCache.bytesPerImage(ldShapes)) * plan.train.length <= plan.budget;
  const zCache = fits ? new FeatureCache(shapes) : null;
  const ldCache = fits ? new FeatureCache(ldShapes) : null;
  // The features fit the budget after the latents (the class flows train after the mixture: the
  // latents are released by then, but both are held while the first pass fills them).
  const keepFeatures = plan.flow === 'class' &&
    (2 * FeatureCache.bytesPerImage(shapes) + FeatureCache.bytesPerImage(ldShapes)) * plan.train.length <= plan.budget;
  const fCache = keepFeatures ? new FeatureCache(shapes) : null;
  const index = new Map(plan.train.map((s, i) => [s.path, i]));

  // Per level and new class: latent sums and counts, and M-1 latent vectors at seeded positions of
  // seeded images of the class.
  const sums = shapes.map((s) => plan.newClasses.map(() => new Float64Array(s.channels)));
  const counts = shapes.map(() => plan.newClasses.map(() => 0));
  const picks: Float32Array[][][] = shapes.map(() => plan.newClasses.map(() => []));
  const wanted = new Map<string, number[]>(); // sample path -> which picks (m) it provides
  for (const c of plan.newClasses) {
    const own = shuffled(plan.train.filter((s) => s.className === c), hashString(`${plan.seed}:extend:${c}`));
    for (let m = 0; m < M - 1; m++) {
      const s = own[m % own.length]!;
      wanted.set(s.path, [...(wanted.get(s.path) ?? []), m]);
    }
  }
  const ops = featureOps();
  await latentBatches(detector, plan.train, plan, async ({ z, logDet }, batch, features) => {
    batch.forEach((s, b) => {
      fCache?.put(index.get(s.path)!, features, b);
      if (zCache) {
        zCache.put(index.get(s.path)!, z, b);
        ldCache!.put(index.get(s.path)!, logDet, b);
      }
    });
    for (let l = 0; l < L; l++) {
      const f = z[l]!;
      const HW = f.height * f.width, C = f.channels;
      for (let b = 0; b < batch.length; b++) {
        const k = classOf.get(batch[b]!.className)!;
        const m = await callNative(() => ops.channelMoments(f.data.subarray(b * HW * C, (b + 1) * HW * C), HW, C));
        const acc = sums[l]![k]!;
        for (let i = 0; i < C; i++) acc[i]! += m.sum[i]!;
        counts[l]![k]! += HW;
        for (const pick of wanted.get(batch[b]!.path) ?? []) {
          const p = hashString(`${plan.seed}:extend:${l}:${pick}`) % HW;
          picks[l]![k]![pick] = f.data.slice((b * HW + p) * C, (b * HW + p + 1) * C);
        }
      }
    }
  }, options.signal);
  await initialiseCentres(model, plan, sums, counts, picks);
  for (let l = 0; l < L; l++) model.setTrainable(l, { flow: false, firstClass: Yold });

  const s = plan.schedule, batchSize = plan.batchSize;
  const batchesPerPass = Math.ceil(plan.train.length / batchSize);
  const totalSteps = batchesPerPass * s.subEpochs * s.metaEpochs;
  const bar = options.progressBar ?? process.stderr.isTTY === true ? new ProgressLine(process.stderr) : null;
  const trainStarted = Date.now();
  let step = 0, images = 0;
  const trainBatch = async (lat: Latents, samples: Sample[], epoch: number, sub: number, b: number): Promise<void> => {
    if (options.signal?.aborted) throw new HgadError('ABORTED', 'Adding classes was aborted by options.signal', 'signal');
    const labels = Int32Array.from(samples, (x) => Yold + classOf.get(x.className)!);
    const phase = phaseAt(s, epoch);
    const lr = learningRate(s, { epoch, subEpoch: sub, batch: b }, batchesPerPass);
    const losses: LossTerms[] = [];
    for (let l = 0; l < L; l++) losses.push(await model.trainStepLatent(l, lat.z[l]!, lat.logDet[l]!.data, labels, { phase, lr }));
    step += 1;
    images += samples.length;
    const elapsed = (Date.now() - trainStarted) / 1000;
    const p: TrainProgress = {
      epoch, epochs: s.metaEpochs, subEpoch: sub, subEpochs: s.subEpochs, step, totalSteps, phase, lr,
      losses: meanLosses(losses), imagesPerSecond: images / Math.max(elapsed, 1e-6),
      etaSeconds: ((totalSteps - step) * elapsed) / step,
    };
    bar?.update(p);
    options.onProgress?.(p);
  };
  for (let epoch = 0; epoch < s.metaEpochs; epoch++) {
    for (let sub = 0; sub < s.subEpochs; sub++) {
      const order = shuffled(plan.train, hashString(`${plan.seed}:extend:${epoch}:${sub}`));
      if (zCache && ldCache) {
        for (let b = 0; b < batchesPerPass; b++) {
          const samples = order.slice(b * batchSize, (b + 1) * batchSize);
          const ids = samples.map((x) => index.get(x.path)!);
          await trainBatch({ z: zCache.batch(ids), logDet: ldCache.batch(ids) }, samples, epoch, sub, b);
        }
      } else {
        let b = 0;
        await latentBatches(detector, order, plan, (lat, samples) => trainBatch(lat, samples, epoch, sub, b++), options.signal);
      }
    }
  }
  return fCache;
}

/**
 * A flow of `className`'s own (lib/pipeline/class-flows.ts), trained on its training images' features
 * (from `cache`, else extracted again each pass) with the HGAD losses of a one-class detector.
 */
async function trainClassFlow(detector: AnomalyDetector, plan: Plan, className: string, cache: FeatureCache | null,
  options: ExtendOptions): Promise<{ spec: ClassFlowSpec; flow: HgadModel }> {
  const spec: ClassFlowSpec = {
    className, couplingLayers: plan.classFlow.couplingLayers, centersPerClass: plan.classFlow.centersPerClass,
    seed: hashString(`${plan.seed}:classFlow:${className}`) % 2 ** 31,
  };
  const flow = await HgadModel.createAsync(classFlowConfig(detector.model, spec, plan.threads));
  const samples = plan.train.filter((x) => x.className === className);
  const index = new Map(plan.train.map((x, i) => [x.path, i]));
  const s = plan.classFlow.schedule, batchSize = plan.batchSize, L = flow.config.levels.length;
  const batchesPerPass = Math.ceil(samples.length / batchSize);
  const totalSteps = batchesPerPass * s.subEpochs * s.metaEpochs;
  const bar = options.progressBar ?? process.stderr.isTTY === true ? new ProgressLine(process.stderr) : null;
  const started = Date.now();
  let step = 0, images = 0;
  const trainBatch = async (features: FeatureLevel[], epoch: number, sub: number, b: number): Promise<void> => {
    if (options.signal?.aborted) throw new HgadError('ABORTED', 'Adding classes was aborted by options.signal', 'signal');
    const labels = new Int32Array(features[0]!.batch);
    const phase = phaseAt(s, epoch);
    const lr = learningRate(s, { epoch, subEpoch: sub, batch: b }, batchesPerPass);
    const losses: LossTerms[] = [];
    for (let l = 0; l < L; l++) losses.push(await flow.trainStep(l, features[l]!, labels, { phase, lr }));
    step += 1;
    images += labels.length;
    const elapsed = (Date.now() - started) / 1000;
    const p: TrainProgress = {
      epoch, epochs: s.metaEpochs, subEpoch: sub, subEpochs: s.subEpochs, step, totalSteps, phase, lr,
      losses: meanLosses(losses), imagesPerSecond: images / Math.max(elapsed, 1e-6), etaSeconds: ((totalSteps - step) * elapsed) / step,
    };
    bar?.update(p);
    options.onProgress?.(p);
  };
  for (let epoch = 0; epoch < s.metaEpochs; epoch++) {
    for (let sub = 0; sub < s.subEpochs; sub++) {
      const order = shuffled(samples, hashString(`${plan.seed}:classFlow:${className}:${epoch}:${sub}`));
      if (cache) {
        for (let b = 0; b < batchesPerPass; b++) {
          await trainBatch(cache.batch(order.slice(b * batchSize, (b + 1) * batchSize).map((x) => index.get(x.path)!)), epoch, sub, b);
        }
      } else {
        let b = 0;
        await latentBatches(detector, order, plan, (_, __, features) => trainBatch(features, epoch, sub, b++), options.signal);
      }
    }
  }
  return { spec, flow };
}

/**
 * Map constants and a threshold for each new class, measured on its held-out images (else its training
 * images), as train() calibrates a detector: the detector-wide constants were measured on the old
 * classes' latents, which need not cover the new classes' (maps made with them can saturate).
 */
async function calibrateNewClasses(detector: AnomalyDetector, plan: Plan): Promise<{ thresholds: Record<string, number>; constants: Record<string, ClassConstants> }> {
  const thresholds: Record<string, number> = {};
  const constants: Record<string, ClassConstants> = {};
  for (const c of plan.newClasses) {
    const held = plan.holdout.filter((x) => x.className === c);
    const normals = held.length > 0 ? held : plan.train.filter((x) => x.className === c);
    const measured = await measureConstants(detector, normals, { batchSize: plan.batchSize });
    thresholds[c] = quantile(measured.scores.map((x) => x.score), plan.quantile);
    constants[c] = { ...measured.constants, images: normals.length };
  }
  return { thresholds, constants };
}
