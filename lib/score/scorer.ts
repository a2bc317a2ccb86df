// Scoring images end to end: decode (sharp, several images ahead) -> backbone (onnxruntime, on its
// own thread) -> flow (native) -> anomaly maps (native). The stages overlap: while the flow scores
// batch k, the backbone runs on batch k+1 and the decoder reads the batches after it. An image that
// cannot be decoded becomes a result carrying its error, in its place, and the others are scored.
import { imageBatches, ImageBatch, Sample } from '../data';
import type { FailedSample } from '../data/batches';
import { checkRawImage, ImageSource, isByteArray, RawImage } from '../data/source';
import { HgadArgumentError, HgadError, HgadErrorCode } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';
import { oneAhead } from '../pipeline/ahead';
import { flowStage, FlowStageResult } from '../pipeline/flow-stage';
import type { FeatureLevel } from '../features/backbone';
import { MapMethod, nearestMaps, pooledLatents } from '../pipeline/latent-banks';
import { checkInteger, checkKeys } from '../validate';
import { batchGroupFor, calibratedMaps, combineFor, combineOfGroup, groupedMaps, groupImages, pickImages } from './class-constants';
import { anomalyMaps, levelMaxima, MapConstants, MapSize, sumMaxima } from './maps';
import { checkThreshold, ThresholdOverride, ThresholdSource, thresholdFor } from './threshold';

/** What every input may carry: an id echoed in its result, and its class (otherwise inferred). */
export interface InputLabels {
  id?: string;
  className?: string;
}

/**
 * An image to score: a file path; encoded bytes (PNG, JPEG, TIFF, WebP, BMP; a Buffer is a
 * Uint8Array); raw 8-bit pixels; or any of these as an object with an id and a class.
 */
export type ImageInput =
  | string
  | Uint8Array
  | ({ path: string } & InputLabels)
  | ({ data: Uint8Array } & InputLabels)
  | (RawImage & InputLabels);

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
  /**
   * The operating threshold instead of the calibrated one: a number for every class, or
   * { className: number } for some classes (the others keep theirs). Results say which applied.
   */
  threshold?: ThresholdOverride;
  /**
   * 'result' (default for scoreImages): an image that cannot be read or decoded yields a FailedImage
   * in its place and scoring goes on; 'throw': it rejects the whole call (results already yielded stay).
   */
  onError?: 'result' | 'throw';
  /** Encoded in-memory images larger than this many pixels are refused (default: sharp's 268 million). */
  maxPixels?: number;
}

/** Which input a result is about. */
export interface ResultOrigin {
  /** Position in the inputs. */
  index: number;
  /** The input's id; else its path; else its index as a string. */
  id: string;
  /** The file, or null for an in-memory image. */
  path: string | null;
}

/** Why an image has no score: a typed error as plain data (JSON-safe). */
export interface ImageError {
  code: HgadErrorCode;
  message: string;
  parameter?: string;
}

export interface FailedImage extends ResultOrigin {
  error: ImageError;
}

export interface AnomalyResult extends ResultOrigin {
  error: null;
  /** Max of the anomaly map: higher is more anomalous. */
  imageScore: number;
  /** imageScore above the threshold; null when none applies (batch normalisation without an override). */
  isAnomaly: boolean | null;
  threshold: number | null;
  /** Where the threshold came from: options.threshold ('global' or 'class') or the detector's 'calibration'. */
  thresholdSource: ThresholdSource | null;
  className: string;
  /** Mean class posterior of the class used (1: certainly that class). */
  classConfidence: number;
  classSource: 'given' | 'inferred';
  /**
   * What the map holds (the detector's map.nearest): 'density', the flow's density maps, 0 where an
   * image is at its most normal; 'nearest', distances to the nearest training latent of the class,
   * above 0 everywhere (normal texture has a floor of about half the threshold).
   */
  maps: MapMethod;
  /** Row-major anomaly map, height x width (the detector's map size). */
  map: Float32Array;
  width: number;
  height: number;
}

/** One image's outcome: scored (error null) or failed. */
export type ImageResult = AnomalyResult | FailedImage;

export interface ScoredBatch {
  samples: Sample[];
  results: AnomalyResult[];
  /** Images of this batch that could not be decoded (onError 'result'). */
  failed: FailedImage[];
  /** Ground-truth masks at the map size (0/255), when asked for. */
  masks: Uint8Array | null;
}

export const SCORE_OPTION_KEYS = ['batchSize', 'normalization', 'className', 'concurrency', 'threshold', 'onError', 'maxPixels'];

interface ResolvedScoreOptions {
  batchSize: number;
  normalization: Normalization;
  className: string | null;
  concurrency: number;
  threshold: ThresholdOverride | null;
  onError: 'result' | 'throw';
  maxPixels: number | null;
}

function resolveOptions(detector: AnomalyDetector, options: ScoreOptions, defaultOnError: 'result' | 'throw'): ResolvedScoreOptions {
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
  const threshold = options.threshold === undefined ? null : checkThreshold(detector, 'options.threshold', options.threshold);
  const onError = options.onError ?? defaultOnError;
  if (onError !== 'result' && onError !== 'throw') throw new HgadArgumentError('options.onError', "'result' or 'throw'", onError);
  if (options.maxPixels !== undefined) checkInteger('options.maxPixels', options.maxPixels, 1, Number.MAX_SAFE_INTEGER);
  if (detector.spec.map.nearest && detector.banks.size === 0) {
    throw new HgadError('INVALID_ARGUMENT', 'This detector has no nearest-neighbour banks yet: they are built when training finishes ' +
      '(score a finished detector, or resume this checkpoint to the end)', 'detector');
  }
  return {
    batchSize, normalization, className: options.className ?? null, concurrency, threshold, onError, maxPixels: options.maxPixels ?? null,
  };
}

/** A scored image's input: the sample the loader reads and where its result says it came from. */
export interface ScoreInput {
  sample: Sample;
  origin: ResultOrigin;
}

// A dataset Sample (lib/data) scores as it is: its other fields are read by evaluation, not here.
const INPUT_KEYS = ['path', 'data', 'width', 'height', 'channels', 'id', 'className', 'split', 'defect', 'label', 'maskPath'];
const INPUT_SHAPES = 'a file path, encoded image bytes (Uint8Array), { path | data, id?, className? } or raw pixels { data, width, height, channels, id?, className? }';

function sampleOf(path: string, className: string | undefined, source?: ImageSource): Sample {
  return { path, ...(source ? { source } : {}), className: className ?? '', split: 'test', defect: 'unknown', label: 0, maskPath: null };
}

/**
 * ImageInputs -> what the loader reads; shapes, raw sizes and class names are checked here, before
 * any work starts (an image that fails to decode is the only per-image failure).
 */
export function inputsOf(detector: AnomalyDetector, inputs: readonly ImageInput[], maxPixels: number | null = null): ScoreInput[] {
  if (!Array.isArray(inputs)) throw new HgadArgumentError('images', `an array; each item ${INPUT_SHAPES}`, inputs);
  const bytes = (data: Uint8Array): ImageSource => (maxPixels === null ? { bytes: data } : { bytes: data, maxPixels });
  return inputs.map((input: unknown, i): ScoreInput => {
    const at = `images[${i}]`;
    if (typeof input === 'string') {
      if (input.length === 0) throw new HgadArgumentError(at, INPUT_SHAPES, input);
      return { sample: sampleOf(input, undefined), origin: { index: i, id: input, path: input } };
    }
    if (isByteArray(input)) {
      const data = input as Uint8Array;
      return { sample: sampleOf(`image ${i} (${data.length} bytes)`, undefined, bytes(data)), origin: { index: i, id: String(i), path: null } };
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input) || ArrayBuffer.isView(input)) {
      throw new HgadArgumentError(at, INPUT_SHAPES, input);
    }
    const o = input as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!INPUT_KEYS.includes(key)) throw new HgadArgumentError(`${at}.${key}`, `one of the keys ${INPUT_KEYS.join(', ')}`, key);
    }
    if (o.id !== undefined && (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 1024)) {
      throw new HgadArgumentError(`${at}.id`, 'a non-empty string of at most 1024 characters', o.id);
    }
    const className = o.className;
    if (className !== undefined) detector.classIndex(`${at}.className`, className as string);
    const cls = className as string | undefined;
    const named = (fallback: string): string => (o.id as string | undefined) ?? fallback;
    if (o.path !== undefined) {
      if (typeof o.path !== 'string' || o.path.length === 0) throw new HgadArgumentError(`${at}.path`, 'a file path', o.path);
      if (o.data !== undefined) throw new HgadArgumentError(at, 'either path or data, not both', input);
      return { sample: sampleOf(o.path, cls), origin: { index: i, id: named(o.path), path: o.path } };
    }
    if (!isByteArray(o.data)) throw new HgadArgumentError(`${at}.data`, 'a Uint8Array (encoded image bytes or raw pixels)', o.data);
    const id = named(String(i));
    const name = o.id !== undefined ? `image ${JSON.stringify(o.id)}` : `image ${i}`;
    if (o.width === undefined && o.height === undefined && o.channels === undefined) {
      return { sample: sampleOf(name, cls, bytes(o.data as Uint8Array)), origin: { index: i, id, path: null } };
    }
    const raw = checkRawImage(at, o);
    return { sample: sampleOf(name, cls, { raw }), origin: { index: i, id, path: null } };
  });
}

/** ImageInputs -> samples for the loader (see inputsOf). */
export function samplesOf(detector: AnomalyDetector, inputs: readonly ImageInput[]): Sample[] {
  return inputsOf(detector, inputs).map((x) => x.sample);
}

interface StagedBatch {
  batch: ImageBatch;
  /** null for a batch none of whose images could be decoded. */
  flow: FlowStageResult | null;
  /** The 3x3-averaged latents of a detector with nearest-neighbour maps (spec.map.nearest), else null. */
  latents: FeatureLevel[] | null;
  given: boolean[];
}

/** Decode -> backbone -> flow for every batch, with the stages overlapping. */
async function* flowBatches(detector: AnomalyDetector, samples: Sample[], o: ResolvedScoreOptions,
  withMasks: boolean): AsyncGenerator<StagedBatch> {
  await detector.backbone();
  const size = detector.inputSize;
  const run = async (batch: ImageBatch): Promise<StagedBatch> => {
    if (batch.batch === 0) return { batch, flow: null, latents: null, given: [] };
    // the batch's pixels are this generator's own and not read again: handed to the backbone's thread
    const features = await detector.features(batch.pixels, batch.batch, { handOver: true });
    const flags = batch.samples.map((sample) => o.className !== null || sample.className !== '');
    const classOf = (sample: Sample): number => detector.classIndex('className', o.className ?? sample.className);
    let given: Int32Array | null = null;
    if (flags.every(Boolean)) {
      given = Int32Array.from(batch.samples, classOf);
    } else if (flags.some(Boolean)) {
      // The flow takes either a class for every image or none: infer all, then keep the given ones.
      const inferred = await flowStage(detector.model, features, null, detector.spec.map.density);
      given = Int32Array.from(batch.samples, (sample, b) => (flags[b] ? classOf(sample) : inferred.classIndex[b]!));
    }
    const flow = await flowStage(detector.model, features, given, detector.spec.map.density, detector.classFlows);
    const nearest = detector.spec.map.nearest;
    const latents = nearest ? await pooledLatents(detector.model, detector.classFlows, features, flow.classIndex, nearest.coarse === true) : null;
    return { batch, flow, latents, given: flags };
  };
  const batches = imageBatches(samples, {
    batchSize: o.batchSize, size: { width: size, height: size }, concurrency: o.concurrency,
    onError: o.onError === 'result' ? 'collect' : 'throw',
    ...(withMasks ? { maskSize: { width: detector.mapSize, height: detector.mapSize } } : {}),
  });
  // Batches scored before an image that fails (onError 'throw') are still handed out.
  yield* oneAhead(batches, run, true);
}

/** Where each loader position's result says it came from (the sample's path when not told). */
type Origins = (index: number, sample: Sample) => ResultOrigin;

const fileOrigins: Origins = (index, sample) => ({ index, id: sample.path, path: sample.path });

export function imageError(e: HgadError): ImageError {
  return { code: e.code, message: e.message, ...(e.parameter !== undefined ? { parameter: e.parameter } : {}) };
}

function failuresOf(failed: FailedSample[], origins: Origins): FailedImage[] {
  return failed.map((f) => ({ ...origins(f.index, f.sample), error: imageError(f.error) }));
}

function resultsOf(detector: AnomalyDetector, staged: StagedBatch, maps: Float32Array, scores: Float32Array,
  o: ResolvedScoreOptions, origins: Origins): AnomalyResult[] {
  const S = detector.mapSize;
  const flow = staged.flow;
  if (!flow) return [];
  return staged.batch.samples.map((sample, b) => {
    const className = detector.classes[flow.classIndex[b]!]!;
    const { threshold, thresholdSource } = thresholdFor(detector, className, o.normalization === 'calibrated', o.threshold);
    const imageScore = scores[b]!;
    return {
      ...origins(staged.batch.indices[b]!, sample),
      error: null,
      imageScore,
      isAnomaly: threshold === null ? null : imageScore > threshold,
      threshold,
      thresholdSource,
      className,
      classConfidence: flow.classConfidence[b]!,
      classSource: staged.given[b] ? 'given' : 'inferred',
      maps: detector.spec.map.nearest ? 'nearest' : 'density',
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

/**
 * Scores samples batch by batch; with 'batch' normalisation every image is staged before any map.
 * Decoding failures end the stream unless options.onError is 'result' (default here: 'throw').
 */
export async function* scoredBatches(detector: AnomalyDetector, samples: Sample[], options: ScoreOptions = {},
  withMasks = false, origins: Origins = fileOrigins): AsyncGenerator<ScoredBatch> {
  const o = resolveOptions(detector, options, 'throw');
  requireClasses(detector, samples, o);
  const size = { height: detector.mapSize, width: detector.mapSize, sigma: detector.spec.map.sigma };
  // constants null: the detector's calibration (which may hold constants of its own for some classes).
  const scored = async (st: StagedBatch, constants: GroupConstants | null): Promise<ScoredBatch> => {
    const { maps, scores } = !st.flow
      ? { maps: new Float32Array(0), scores: new Float32Array(0) }
      : st.latents
        ? await nearestMaps(detector.banks, detector.classes, st.latents, st.flow.classIndex, size, detector.model.precision.inference)
        : constants
          ? await batchMaps(detector, st, constants, size)
          : await calibratedMaps(detector, st.flow.levels, st.flow.classIndex, st.batch.batch, size);
    return {
      samples: st.batch.samples, results: resultsOf(detector, st, maps, scores, o, origins),
      failed: failuresOf(st.batch.failed, origins), masks: st.batch.masks,
    };
  };
  // Distances need no constants: nearest-neighbour maps are the same under both normalisations.
  if (o.normalization === 'calibrated' || detector.spec.map.nearest) {
    for await (const staged of flowBatches(detector, samples, o, withMasks)) yield await scored(staged, null);
    return;
  }
  const { staged, constants } = await stageAll(detector, samples, o, withMasks, true);
  for (const st of staged) yield await scored(st, constants);
}

/**
 * Constants measured together over groups of images: by map combination ('batch' scoring: images whose
 * maps combine alike are normalised together, as if scored in a call of their own; a class with a flow
 * of its own alone: batchGroupFor), or one group '' for all images (calibration: the detector-wide
 * constants).
 */
interface GroupConstants {
  byCombine: boolean;
  constants: Map<string, MapConstants>;
}

/** Maps of a staged batch under constants measured over groups: each image with its class's combination. */
function batchMaps(detector: AnomalyDetector, st: StagedBatch, c: GroupConstants, size: MapSize):
  Promise<{ maps: Float32Array; scores: Float32Array }> {
  const flow = st.flow!;
  const className = (b: number): string => detector.classes[flow.classIndex[b]!]!;
  const keyOf = c.byCombine ? (b: number) => batchGroupFor(detector, className(b)) : (b: number) => combineFor(detector, className(b));
  return groupedMaps(flow.levels, st.batch.batch, size, keyOf,
    (levels, n, key) => anomalyMaps(levels, n, c.constants.get(c.byCombine ? key : '')!, size, combineOfGroup(key)));
}

/**
 * The authors' normalisation constants over a set of images: per-level maxima of logp and negative
 * entropy, then the maxima of the summed, upsampled maps under those shifts; over all the images, or
 * (byCombine) over the images of each map combination separately.
 */
async function stageAll(detector: AnomalyDetector, samples: Sample[], o: ResolvedScoreOptions,
  withMasks: boolean, byCombine: boolean): Promise<{ staged: StagedBatch[]; constants: GroupConstants }> {
  const size = { height: detector.mapSize, width: detector.mapSize, sigma: detector.spec.map.sigma };
  const staged: StagedBatch[] = [];
  const L = detector.model.config.levels.length;
  const groupsOf = (s: StagedBatch): Map<string, number[]> => groupImages(s.batch.batch,
    (b) => (byCombine ? batchGroupFor(detector, detector.classes[s.flow!.classIndex[b]!]!) : ''));
  const shifts = new Map<string, { logp: number[]; nent: number[] }>();
  for await (const s of flowBatches(detector, samples, o, withMasks)) {
    staged.push(s);
    if (!s.flow) continue;
    for (const [key, images] of groupsOf(s)) {
      const m = await levelMaxima(pickImages(s.flow.levels, images, s.batch.batch), images.length);
      const acc = shifts.get(key) ?? { logp: new Array<number>(L).fill(-Infinity), nent: new Array<number>(L).fill(-Infinity) };
      shifts.set(key, acc);
      for (let l = 0; l < L; l++) {
        acc.logp[l] = Math.max(acc.logp[l]!, m.logp[l]!);
        acc.nent[l] = Math.max(acc.nent[l]!, m.nent[l]!);
      }
    }
  }
  const tops = new Map<string, { logp: number; nent: number }>();
  for (const s of staged) {
    if (!s.flow) continue;
    for (const [key, images] of groupsOf(s)) {
      const top = await sumMaxima(pickImages(s.flow.levels, images, s.batch.batch), images.length, shifts.get(key)!, size);
      const acc = tops.get(key) ?? { logp: -Infinity, nent: -Infinity };
      tops.set(key, { logp: Math.max(acc.logp, top.logp), nent: Math.max(acc.nent, top.nent) });
    }
  }
  const constants = new Map<string, MapConstants>();
  for (const [key, s] of shifts) {
    const top = tops.get(key)!;
    constants.set(key, { logpShift: s.logp, nentShift: s.nent, logpTop: top.logp, nentTop: top.nent });
  }
  return { staged, constants: { byCombine, constants } };
}

/**
 * Constants measured on (normal) images with their classes given, and each image's score under them:
 * what calibration stores. Works on a detector that is not calibrated yet.
 */
export async function measureConstants(detector: AnomalyDetector, samples: Sample[], options: { batchSize?: number } = {}):
  Promise<{ constants: MapConstants; scores: { className: string; score: number }[] }> {
  const o = resolveOptions(detector, { ...options, normalization: 'batch' }, 'throw');
  const size = { height: detector.mapSize, width: detector.mapSize, sigma: detector.spec.map.sigma };
  // One set of constants over all the images; each image scored with its class's map combination.
  const { staged, constants } = await stageAll(detector, samples, o, false, false);
  const scores: { className: string; score: number }[] = [];
  for (const st of staged) {
    if (!st.flow) continue;
    const out = st.latents
      ? await nearestMaps(detector.banks, detector.classes, st.latents, st.flow.classIndex, size, detector.model.precision.inference)
      : await batchMaps(detector, st, constants, size);
    st.batch.samples.forEach((sample, b) => scores.push({ className: sample.className, score: out.scores[b]! }));
  }
  // No image scored: the constants of nothing (-Infinity), as the running maxima start.
  const L = detector.model.config.levels.length;
  const none = { logpShift: new Array<number>(L).fill(-Infinity), nentShift: new Array<number>(L).fill(-Infinity), logpTop: -Infinity, nentTop: -Infinity };
  return { constants: constants.constants.get('') ?? none, scores };
}

/** Scored and failed images of a batch, in input order. */
export function batchResults(b: ScoredBatch): ImageResult[] {
  if (b.failed.length === 0) return b.results;
  return [...b.results, ...b.failed].sort((x, y) => x.index - y.index);
}

/**
 * Scores images (files, encoded bytes or raw pixels); results come in input order, one per image, as
 * their batch completes. An image that cannot be read or decoded yields a FailedImage (`error` set)
 * in its place, unless options.onError is 'throw'.
 */
export function scoreImages(detector: AnomalyDetector, images: readonly ImageInput[],
  options: ScoreOptions & { onError: 'throw' }): AsyncGenerator<AnomalyResult>;
export function scoreImages(detector: AnomalyDetector, images: readonly ImageInput[],
  options?: ScoreOptions): AsyncGenerator<ImageResult>;
export async function* scoreImages(detector: AnomalyDetector, images: readonly ImageInput[],
  options: ScoreOptions = {}): AsyncGenerator<ImageResult> {
  const onError = typeof options === 'object' && options !== null ? options.onError ?? 'result' : 'result';
  const maxPixels = typeof options === 'object' && options !== null && typeof options.maxPixels === 'number' ? options.maxPixels : null;
  const inputs = inputsOf(detector, images, maxPixels);
  const origins: Origins = (index) => inputs[index]!.origin;
  for await (const b of scoredBatches(detector, inputs.map((x) => x.sample), { ...options, onError }, false, origins)) yield* batchResults(b);
}
