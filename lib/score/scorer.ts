// Scoring images end to end: decode (sharp, several images ahead) -> backbone (onnxruntime) -> flow
// (native) -> anomaly maps (native). The stages overlap: while the flow scores batch k, the backbone
// runs on batch k+1 and the decoder reads the batches after it.
import { imageBatches, ImageBatch, Sample } from '../data';
import { HgadArgumentError } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';
import { oneAhead } from '../pipeline/ahead';
import { flowStage, FlowStageResult } from '../pipeline/flow-stage';
import { checkInteger, checkKeys } from '../validate';
import { anomalyMaps, levelMaxima, MapConstants, sumMaxima } from './maps';

/** A file to score, optionally with its class (otherwise inferred). */
export type ImageInput = string | { path: string; className?: string };

export type Normalization = 'calibrated' | 'batch';

export interface ScoreOptions {
  /** Images per backbone/flow batch. Default 8. */
  batchSize?: number;
  /**
   * 'calibrated' (default): constants measured on normal training images and stored in the detector,
   * so an image's score never depends on the other images scored with it. 'batch': the authors'
   * protocol (HGAD.md section 6), normalised over all images of this call; for comparing with
   * published numbers; isAnomaly is then null.
   */
  normalization?: Normalization;
  /** The class of every image, when known (overrides a class given per image). */
  className?: string;
  /** Images decoded ahead. Default: 2 x threads. */
  concurrency?: number;
}

export interface AnomalyResult {
  path: string;
  /** Max of the anomaly map: higher is more anomalous. */
  imageScore: number;
  /** imageScore above the class's calibrated threshold; null with batch normalisation or no calibration. */
  isAnomaly: boolean | null;
  threshold: number | null;
  className: string;
  /** Mean class posterior of the class used (1: certainly that class). */
  classConfidence: number;
  classSource: 'given' | 'inferred';
  /** Row-major anomaly map, height x width (the detector's map size). */
  map: Float32Array;
  width: number;
  height: number;
}

export interface ScoredBatch {
  samples: Sample[];
  results: AnomalyResult[];
  /** Ground-truth masks at the map size (0/255), when asked for. */
  masks: Uint8Array | null;
}

export const SCORE_OPTION_KEYS = ['batchSize', 'normalization', 'className', 'concurrency'];

interface ResolvedScoreOptions {
  batchSize: number;
  normalization: Normalization;
  className: string | null;
  concurrency: number;
}

function resolveOptions(detector: AnomalyDetector, options: ScoreOptions): ResolvedScoreOptions {
  detector.assertUsable();
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, SCORE_OPTION_KEYS);
  const batchSize = options.batchSize ?? 8;
  checkInteger('options.batchSize', batchSize, 1, 4096);
  const normalization = options.normalization ?? 'calibrated';
  if (normalization !== 'calibrated' && normalization !== 'batch') {
    throw new HgadArgumentError('options.normalization', "'calibrated' or 'batch'", normalization);
  }
  if (normalization === 'calibrated' && !detector.calibrated) {
    throw new HgadArgumentError('options.normalization',
      "'batch' (this detector has no calibration: it was saved before training finished)", normalization);
  }
  if (options.className !== undefined) detector.classIndex('options.className', options.className);
  const concurrency = options.concurrency ?? 2 * detector.threads;
  checkInteger('options.concurrency', concurrency, 1, 1024);
  return { batchSize, normalization, className: options.className ?? null, concurrency };
}

/** ImageInputs -> samples for the loader; class names are checked here, before any work starts. */
export function samplesOf(detector: AnomalyDetector, inputs: readonly ImageInput[]): Sample[] {
  if (!Array.isArray(inputs)) throw new HgadArgumentError('images', 'an array of paths or { path, className }', inputs);
  return inputs.map((input, i) => {
    const path = typeof input === 'string' ? input : input?.path;
    if (typeof path !== 'string' || path.length === 0) {
      throw new HgadArgumentError(`images[${i}]`, 'a file path or { path, className }', input);
    }
    const className = typeof input === 'object' ? input.className : undefined;
    if (className !== undefined) detector.classIndex(`images[${i}].className`, className);
    return { path, className: className ?? '', split: 'test', defect: 'unknown', label: 0, maskPath: null };
  });
}

interface StagedBatch {
  batch: ImageBatch;
  flow: FlowStageResult;
  given: boolean[];
}

/** Decode -> backbone -> flow for every batch, with the stages overlapping. */
async function* flowBatches(detector: AnomalyDetector, samples: Sample[], o: ResolvedScoreOptions,
  withMasks: boolean): AsyncGenerator<StagedBatch> {
  await detector.backbone();
  const size = detector.inputSize;
  const run = async (batch: ImageBatch): Promise<StagedBatch> => {
    const features = await detector.features(batch.pixels, batch.batch);
    const flags = batch.samples.map((sample) => o.className !== null || sample.className !== '');
    const classOf = (sample: Sample): number => detector.classIndex('className', o.className ?? sample.className);
    let given: Int32Array | null = null;
    if (flags.every(Boolean)) {
      given = Int32Array.from(batch.samples, classOf);
    } else if (flags.some(Boolean)) {
      // The flow takes either a class for every image or none: infer all, then keep the given ones.
      const inferred = await flowStage(detector.model, features, null);
      given = Int32Array.from(batch.samples, (sample, b) => (flags[b] ? classOf(sample) : inferred.classIndex[b]!));
    }
    return { batch, flow: await flowStage(detector.model, features, given), given: flags };
  };
  const batches = imageBatches(samples, {
    batchSize: o.batchSize, size: { width: size, height: size }, concurrency: o.concurrency,
    ...(withMasks ? { maskSize: { width: detector.mapSize, height: detector.mapSize } } : {}),
  });
  yield* oneAhead(batches, run);
}

function resultsOf(detector: AnomalyDetector, staged: StagedBatch, maps: Float32Array, scores: Float32Array,
  normalization: Normalization): AnomalyResult[] {
  const S = detector.mapSize;
  const cal = detector.spec.calibration;
  return staged.batch.samples.map((sample, b) => {
    const className = detector.classes[staged.flow.classIndex[b]!]!;
    const threshold = normalization === 'calibrated' && cal ? cal.thresholds[className] ?? null : null;
    const imageScore = scores[b]!;
    return {
      path: sample.path,
      imageScore,
      isAnomaly: threshold === null ? null : imageScore > threshold,
      threshold,
      className,
      classConfidence: staged.flow.classConfidence[b]!,
      classSource: staged.given[b] ? 'given' : 'inferred',
      map: maps.slice(b * S * S, (b + 1) * S * S),
      width: S,
      height: S,
    };
  });
}

/**
 * A single-Gaussian detector maps every class to the same N(0, I): its class logits are all equal, so
 * a class cannot be inferred and every image needs one (its results then say classSource 'given').
 */
function requireClasses(detector: AnomalyDetector, samples: Sample[], o: ResolvedScoreOptions): void {
  if (detector.model.config.prior !== 'single-gaussian' || o.className !== null) return;
  const missing = samples.findIndex((s) => s.className === '');
  if (missing >= 0) {
    throw new HgadArgumentError('options.className',
      'a class for every image (options.className or a className per image): a single-gaussian detector cannot infer classes',
      `no class for image ${missing} (${samples[missing]!.path})`);
  }
}

/** Scores samples batch by batch; with 'batch' normalisation every image is staged before any map. */
export async function* scoredBatches(detector: AnomalyDetector, samples: Sample[], options: ScoreOptions = {},
  withMasks = false): AsyncGenerator<ScoredBatch> {
  const o = resolveOptions(detector, options);
  requireClasses(detector, samples, o);
  const size = { height: detector.mapSize, width: detector.mapSize, sigma: detector.spec.map.sigma };
  if (o.normalization === 'calibrated') {
    const constants = detector.spec.calibration as MapConstants;
    for await (const staged of flowBatches(detector, samples, o, withMasks)) {
      const { maps, scores } = await anomalyMaps(staged.flow.levels, staged.batch.batch, constants, size, detector.spec.map.combine);
      yield { samples: staged.batch.samples, results: resultsOf(detector, staged, maps, scores, o.normalization), masks: staged.batch.masks };
    }
    return;
  }
  const { staged, constants } = await stageAll(detector, samples, o, withMasks);
  for (const st of staged) {
    const { maps, scores } = await anomalyMaps(st.flow.levels, st.batch.batch, constants, size, detector.spec.map.combine);
    yield { samples: st.batch.samples, results: resultsOf(detector, st, maps, scores, o.normalization), masks: st.batch.masks };
  }
}

/**
 * The authors' normalisation constants over a set of images: per-level maxima of logp and negative
 * entropy, then the maxima of the summed, upsampled maps under those shifts.
 */
async function stageAll(detector: AnomalyDetector, samples: Sample[], o: ResolvedScoreOptions,
  withMasks: boolean): Promise<{ staged: StagedBatch[]; constants: MapConstants }> {
  const size = { height: detector.mapSize, width: detector.mapSize, sigma: detector.spec.map.sigma };
  const staged: StagedBatch[] = [];
  const L = detector.model.config.levels.length;
  const shifts = { logp: new Array<number>(L).fill(-Infinity), nent: new Array<number>(L).fill(-Infinity) };
  for await (const s of flowBatches(detector, samples, o, withMasks)) {
    staged.push(s);
    const m = await levelMaxima(s.flow.levels, s.batch.batch);
    for (let l = 0; l < L; l++) {
      shifts.logp[l] = Math.max(shifts.logp[l]!, m.logp[l]!);
      shifts.nent[l] = Math.max(shifts.nent[l]!, m.nent[l]!);
    }
  }
  let logpTop = -Infinity, nentTop = -Infinity;
  for (const s of staged) {
    const top = await sumMaxima(s.flow.levels, s.batch.batch, shifts, size);
    logpTop = Math.max(logpTop, top.logp);
    nentTop = Math.max(nentTop, top.nent);
  }
  return { staged, constants: { logpShift: shifts.logp, nentShift: shifts.nent, logpTop, nentTop } };
}

/**
 * Constants measured on (normal) images with their classes given, and each image's score under them:
 * what calibration stores. Works on a detector that is not calibrated yet.
 */
export async function measureConstants(detector: AnomalyDetector, samples: Sample[], options: { batchSize?: number } = {}):
  Promise<{ constants: MapConstants; scores: { className: string; score: number }[] }> {
  const o = resolveOptions(detector, { ...options, normalization: 'batch' });
  const size = { height: detector.mapSize, width: detector.mapSize, sigma: detector.spec.map.sigma };
  const { staged, constants } = await stageAll(detector, samples, o, false);
  const scores: { className: string; score: number }[] = [];
  for (const st of staged) {
    const out = await anomalyMaps(st.flow.levels, st.batch.batch, constants, size, detector.spec.map.combine);
    st.batch.samples.forEach((sample, b) => scores.push({ className: sample.className, score: out.scores[b]! }));
  }
  return { constants, scores };
}

/** Scores image files; results come in input order, one per image, as their batch completes. */
export async function* scoreImages(detector: AnomalyDetector, images: readonly ImageInput[],
  options: ScoreOptions = {}): AsyncGenerator<AnomalyResult> {
  for await (const b of scoredBatches(detector, samplesOf(detector, images), options)) yield* b.results;
}
