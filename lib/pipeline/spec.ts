// What a detector stores beside the flow's tensors (model-file metadata key "pipeline"): the backbone
// and how images reach it, the map geometry, the calibration constants and thresholds, and where
// training stands (for checkpoints). Everything is validated on load against the range the code can
// use (a file that loads scores sensibly or not at all); a bad value is a MODEL_FILE error naming it.
import { describe, HgadError, HgadModelFileError } from '../errors';
import { MAX_SIZE, MIN_SIZE, tripleProblem } from '../features/backbone';
import { PRESETS } from '../features/presets';
import { Density, DENSITIES } from '../model';
import { MAX_SIGMA } from '../score/maps';
import { resolveSchedule } from '../train/schedule';
import { BANK_SIZE_RANGE, NearestSpec } from './latent-banks';
import { PROJECTIONS, Projection, ReductionSpec } from './reduction';

export const PIPELINE_KEY = 'pipeline';
/** The version of a detector's spec. */
export const PIPELINE_VERSION = 1;
/**
 * Version 2 added `history`, `staleThresholds` and `calibration.classConstants` (classes added to a
 * trained detector). Only such detectors are written as version 2, so detectors that were never
 * extended stay readable by earlier hgad.
 */
export const EXTENDED_PIPELINE_VERSION = 2;
/**
 * Version 3 added `map.classCombine` (classes whose maps combine otherwise than `map.combine`: classes
 * added to a one-class detector). Only detectors that have it are written as version 3, so the other
 * extended detectors stay readable by hgad that reads version 2.
 */
export const CLASS_COMBINE_PIPELINE_VERSION = 3;
/**
 * Version 4 added `classFlows`: classes that have a flow of their own (classes added by extendDetector
 * with its default 'class' flow), whose tensors are stored beside the shared flow's. Only detectors
 * that have one are written as version 4.
 */
export const CLASS_FLOW_PIPELINE_VERSION = 4;
/**
 * Version 5 added `map.nearest`: maps of latent nearest-neighbour distances, from banks stored as
 * "pipeline.bank.<class index>.<level>" tensors. Only detectors that have it are written as version 5.
 */
export const NEAREST_PIPELINE_VERSION = 5;
export const READABLE_PIPELINE_VERSIONS = [PIPELINE_VERSION, EXTENDED_PIPELINE_VERSION, CLASS_COMBINE_PIPELINE_VERSION,
  CLASS_FLOW_PIPELINE_VERSION, NEAREST_PIPELINE_VERSION];

/**
 * A flow of one class's own (version 4): its maps come from it, while the class posterior (which class
 * an image is) still comes from the shared flow's mixture. Same levels, widths, clamp and positional
 * encoding as the shared flow; one class with `centersPerClass` centres. Its tensors are stored as
 * "pipeline.classFlow.<index in classFlows>.<tensor name>".
 */
export interface ClassFlowSpec {
  className: string;
  couplingLayers: number;
  centersPerClass: number;
  seed: number;
}

/** Limits of a class flow's settings read from a file (a flow's own limits are checked when it is built). */
export const CLASS_FLOW_LIMITS = { couplingLayers: [1, 64], centersPerClass: [1, 256] } as const;

export interface BackboneSpec {
  /** Preset name, 'demo', or a path to an .onnx file (then sha256 is required). */
  model: string;
  /**
   * sha256 of the ONNX file the model was trained with, checked before the file is parsed: the
   * preset's own for a downloaded preset, null for a built-in one, required for a file path.
   */
  sha256: string | null;
  taps: string[];
  /** Input sizes of the authors' multi-scale setup, or null for one pass at inputSize. */
  scales: number[] | null;
  inputSize: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** Per-level shifts and the tops of the summed maps (HGAD.md section 6, measured on normal images). */
export interface Calibration {
  logpShift: number[];
  nentShift: number[];
  logpTop: number;
  nentTop: number;
  /** Image-score threshold per class name: above it, isAnomaly. */
  thresholds: Record<string, number>;
  /** Normal images the constants were measured on. */
  images: number;
  quantile: number;
  /**
   * Map constants of their own for some classes (version 2): classes added to a trained detector, whose
   * latents the detector-wide constants above were not measured on, measured on their held-out images.
   */
  classConstants?: Record<string, ClassConstants>;
}

/** The map constants of one class (Calibration.classConstants). */
export interface ClassConstants {
  logpShift: number[];
  nentShift: number[];
  logpTop: number;
  nentTop: number;
  images: number;
}

export interface TrainingState {
  /** Meta epochs, passes and batches completed; training resumes at the next pass. */
  epoch: number;
  subEpoch: number;
  seed: number;
  batchSize: number;
  schedule: { metaEpochs: number; subEpochs: number; lr: number; warmupEpochs: number; phase1Epochs: number };
  /** Training images (paths relative to nothing: as given), so a resume can check it sees the same set. */
  trainImages: number;
  trainDigest: string;
  complete: boolean;
}

/**
 * How the two score maps make the anomaly map: 'logp*nent' (HGAD.md section 6: the product of the
 * logp and negative-entropy maps) or 'logp' alone (a single-Gaussian prior, whose negative entropy is
 * the same constant everywhere: single-Gaussian prior or a one-class model). Files written before this
 * setting existed read as 'logp*nent', or 'logp' for one-class models.
 */
export type MapCombine = 'logp*nent' | 'logp';
export const MAP_COMBINES: readonly MapCombine[] = ['logp*nent', 'logp'];

/** One change made to a trained detector, in the order they were made (extendDetector). */
export interface HistoryEntry {
  /** 'extend': classes added with the flow and the earlier classes frozen. */
  action: 'extend';
  /** When it was made, ISO 8601 UTC. */
  at: string;
  classes: string[];
  /** The dataset's root folder, or null for a Dataset object given in code. */
  data: string | null;
  /** Images the new classes were trained on, and held out to calibrate their thresholds. */
  trainImages: number;
  calibrationImages: number;
  /** sha256 of the classes and training file list. */
  trainDigest: string;
  schedule: TrainingState['schedule'];
  /** The schedule of the new classes' own flows (spec.classFlows), when they got one. */
  classFlowSchedule?: TrainingState['schedule'];
  seed: number;
  batchSize: number;
  /** Wall-clock seconds the extension took (latents, training, calibration). */
  seconds: number;
}

export interface MapSpec {
  size: number;
  sigma: number;
  /** How the maps of every class not in classCombine are made. */
  combine: MapCombine;
  /** Which log-density the maps read (HgadModel.score); files without it: 'full'. */
  density: Density;
  /**
   * Classes whose maps combine otherwise than `combine` (version 3). extendDetector adds the new
   * classes here when they differ: the classes added to a one-class detector use 'logp*nent' (the
   * detector now has several classes, so their negative entropy carries something) while the original
   * class keeps its 'logp' maps bit for bit. Absent: every class uses `combine`.
   */
  classCombine?: Record<string, MapCombine>;
  /**
   * Present: the maps are nearest-neighbour distances in the flow's latent space
   * (lib/pipeline/latent-banks.ts; version 5), and `combine`, `classCombine` and `density` play no part
   * in them (they still describe the flow's own scores). Absent: the maps are the flow's density maps.
   */
  nearest?: NearestSpec;
}

/** The map combination of `className`'s maps: its own (map.classCombine), else map.combine. */
export function combineOf(map: MapSpec, className: string): MapCombine {
  const own = map.classCombine;
  return own !== undefined && Object.prototype.hasOwnProperty.call(own, className) ? own[className]! : map.combine;
}

export interface PipelineSpec {
  version: number;
  backbone: BackboneSpec;
  map: MapSpec;
  calibration: Calibration | null;
  training: TrainingState | null;
  /** Channel reduction before the flow (its tensors are stored beside the flow's); null: none. */
  reduction: ReductionSpec | null;
  /** Changes made after training (absent or empty: none). */
  history?: HistoryEntry[];
  /**
   * Classes whose stored thresholds were measured before a later change to the model that can move
   * their scores, and not measured again. Calibrating again on normal images of every class clears it:
   * spec = { ...spec, calibration: await calibrate(detector, normals), staleThresholds: [] }. Absent: none.
   */
  staleThresholds?: string[];
  /** Classes with a flow of their own (version 4; absent or empty: none). */
  classFlows?: ClassFlowSpec[];
}

/** Side of the anomaly maps (pixels). */
export const MAP_SIZE_RANGE: readonly [number, number] = [8, 4096];
/**
 * |logpShift| bound. logp is a per-dimension log-likelihood (the flow's row log-likelihood / C), O(1)
 * to O(100) for any trained flow; maps use exp(logp - shift), which is 0 or overflows for every score a
 * flow gives once the shift is off by more than ~700, so a stored shift beyond this bound can only
 * give constant maps.
 */
export const LOGP_SHIFT_LIMIT = 1e6;
/** Slack for float32/double rounding in the range checks of measured constants. */
const ROUNDING = 1e-5;

/** The version a spec is written as: the lowest that holds its fields (so earlier hgad reads what it can). */
export function specVersion(spec: PipelineSpec): number {
  if (spec.map.nearest !== undefined) return NEAREST_PIPELINE_VERSION;
  if ((spec.classFlows?.length ?? 0) > 0) return CLASS_FLOW_PIPELINE_VERSION;
  if (spec.map.classCombine !== undefined) return CLASS_COMBINE_PIPELINE_VERSION;
  const extended = (spec.history?.length ?? 0) > 0 || (spec.staleThresholds?.length ?? 0) > 0 || spec.calibration?.classConstants !== undefined;
  return extended ? EXTENDED_PIPELINE_VERSION : PIPELINE_VERSION;
}

export function encodeSpec(spec: PipelineSpec): string {
  const { history, staleThresholds, map, classFlows, ...body } = spec;
  // 'full' maps are written as before the setting existed, so earlier versions of hgad still read them.
  const { density, ...before } = map;
  const rest = { ...body, map: density === 'full' ? before : map, ...(classFlows && classFlows.length > 0 ? { classFlows } : {}) };
  const version = specVersion(spec);
  return JSON.stringify(version > PIPELINE_VERSION
    ? { ...rest, version, history: history ?? [], staleThresholds: staleThresholds ?? [] }
    : { ...rest, version });
}

type Bad = (problem: string) => never;

const SPEC_KEYS = ['version', 'backbone', 'map', 'calibration', 'training', 'reduction', 'history', 'staleThresholds', 'classFlows'];
const CLASS_FLOW_KEYS = ['className', 'couplingLayers', 'centersPerClass', 'seed'];
const HISTORY_KEYS = ['action', 'at', 'classes', 'data', 'trainImages', 'calibrationImages', 'trainDigest', 'schedule', 'seed',
  'batchSize', 'seconds', 'classFlowSchedule'];
/** Entries a history may hold (each extension adds one). */
const MAX_HISTORY = 10000;
const SPEC_REQUIRED = ['version', 'backbone', 'map', 'calibration', 'training'];
const REDUCTION_KEYS = ['inChannels', 'channels', 'standardize', 'localAverage', 'images', 'seed', 'projection', 'whiten', 'retained'];
const REDUCTION_REQUIRED = ['inChannels', 'channels', 'standardize', 'images', 'seed'];
/** The widest level the reduction takes (the native feature operations' own limit). */
const MAX_CHANNELS = 1 << 16;
const BACKBONE_KEYS = ['model', 'sha256', 'taps', 'scales', 'inputSize', 'mean', 'std'];
const MAP_KEYS = ['size', 'sigma', 'combine', 'classCombine', 'density', 'nearest'];
const NEAREST_KEYS = ['cap', 'seed', 'coarse'];
/** Largest threshold of nearest-neighbour maps (sums of distances: finite float32). */
const MAX_DISTANCE_SCORE = 3.4e38;
const CALIBRATION_KEYS = ['logpShift', 'nentShift', 'logpTop', 'nentTop', 'thresholds', 'images', 'quantile', 'classConstants'];
const CALIBRATION_REQUIRED = CALIBRATION_KEYS.filter((k) => k !== 'classConstants');
const CLASS_CONSTANT_KEYS = ['logpShift', 'nentShift', 'logpTop', 'nentTop', 'images'];
const TRAINING_KEYS = ['epoch', 'subEpoch', 'seed', 'batchSize', 'schedule', 'trainImages', 'trainDigest', 'complete'];
const SCHEDULE_KEYS = ['metaEpochs', 'subEpochs', 'lr', 'warmupEpochs', 'phase1Epochs'];
/** Longest model path or tap name read from a file. */
const MAX_NAME = 4096;

function object(v: unknown, what: string, keys: readonly string[], bad: Bad, required = keys): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) bad(`${what}.${k.length > 60 ? `${k.slice(0, 57)}...` : k} is not a known field (${what} holds ${keys.join(', ')})`);
  }
  for (const k of required) if (!(k in o)) bad(`${what}.${k} is missing`);
  return o;
}

function number(v: unknown, what: string, lo: number, hi: number, bad: Bad, open: 'lo' | 'none' = 'none'): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (open === 'lo' ? v > lo : v >= lo) && v <= hi;
  if (!ok) bad(`${what} must be a number in ${open === 'lo' ? '(' : '['}${lo}, ${hi}] but is ${describe(v)}`);
  return v as number;
}

function integer(v: unknown, what: string, lo: number, hi: number, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < lo || v > hi) {
    bad(`${what} must be an integer in [${lo}, ${hi}] but is ${describe(v)}`);
  }
  return v as number;
}

function numbers(v: unknown, length: number, what: string, lo: number, hi: number, bad: Bad): number[] {
  if (!Array.isArray(v) || v.length !== length) bad(`${what} must be an array of ${length} numbers (one per level)`);
  (v as unknown[]).forEach((x, i) => number(x, `${what}[${i}]`, lo, hi, bad));
  return [...(v as number[])];
}

function name(v: unknown, what: string, bad: Bad): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_NAME) bad(`${what} must be a non-empty string of at most ${MAX_NAME} characters`);
  return v as string;
}

function decodeBackbone(v: unknown, levels: number, bad: Bad): BackboneSpec {
  const b = object(v, 'backbone', BACKBONE_KEYS, bad);
  const model = name(b.model, 'backbone.model', bad);
  if (b.sha256 !== null && (typeof b.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.sha256))) {
    bad('backbone.sha256 must be null or 64 lower-case hex digits');
  }
  const sha256 = b.sha256 as string | null;
  // A detector file names its backbone by preset, or by a file whose hash it carries: never a bare
  // path, so a crafted file cannot make the loader open and parse an arbitrary file.
  const preset = Object.prototype.hasOwnProperty.call(PRESETS, model) ? PRESETS[model]! : null;
  if (preset?.build && sha256 !== null) bad(`backbone.sha256 must be null for the built-in preset ${model}`);
  // A downloaded preset's hash is pinned in the preset; a converted one's (npm) is the converter's
  // output, stored at training and compared with the cached conversion when the backbone opens.
  if (preset?.url && sha256 !== preset.sha256) {
    bad(`backbone.sha256 does not match the preset ${model} (expected ${preset.sha256})`);
  }
  if (preset?.npm && sha256 === null) bad(`backbone.sha256 is required for the converted preset ${model}`);
  if (!preset) {
    if (!/\.onnx$/i.test(model) && !model.includes('/') && !model.includes('\\')) {
      bad(`backbone.model must be a preset name (${Object.keys(PRESETS).join(', ')}) or a path to an .onnx file`);
    }
    if (sha256 === null) bad('backbone.sha256 is required when backbone.model is a file path');
  }
  if (!Array.isArray(b.taps) || b.taps.length === 0) bad('backbone.taps must be a non-empty array of tensor names');
  const taps = (b.taps as unknown[]).map((t, i) => name(t, `backbone.taps[${i}]`, bad));
  if (new Set(taps).size !== taps.length) bad('backbone.taps must name distinct tensors');
  let scales: number[] | null = null;
  if (b.scales !== null) {
    if (!Array.isArray(b.scales) || b.scales.length === 0) bad('backbone.scales must be null or a non-empty array of pixel sizes');
    scales = (b.scales as unknown[]).map((x, i) => integer(x, `backbone.scales[${i}]`, MIN_SIZE, MAX_SIZE, bad));
    if (new Set(scales).size !== scales.length) bad('backbone.scales must be distinct sizes');
  }
  const inputSize = integer(b.inputSize, 'backbone.inputSize', MIN_SIZE, MAX_SIZE, bad);
  if (scales && inputSize !== Math.max(...scales)) bad(`backbone.inputSize must be the largest of backbone.scales (${Math.max(...scales)})`);
  for (const key of ['mean', 'std'] as const) {
    const problem = tripleProblem(b[key], key === 'std');
    if (problem !== null) bad(`backbone.${key} must be ${problem}`);
  }
  const levelCount = taps.length * (scales?.length ?? 1);
  if (levelCount !== levels) bad(`backbone gives ${levelCount} feature levels but the flow has ${levels}`);
  return {
    model, sha256, taps, scales, inputSize,
    mean: [...(b.mean as number[])] as [number, number, number], std: [...(b.std as number[])] as [number, number, number],
  };
}

function decodeMap(v: unknown, classes: readonly string[], version: number, bad: Bad): MapSpec {
  const m = object(v, 'map', MAP_KEYS, bad, ['size', 'sigma']);
  // Files from before the setting: the product map, except for one-class models, whose negative
  // entropy is 0 everywhere (the product would be a constant map).
  const combine = m.combine ?? (classes.length === 1 ? 'logp' : 'logp*nent');
  if (!(MAP_COMBINES as readonly unknown[]).includes(combine)) bad(`map.combine must be one of ${MAP_COMBINES.join(', ')}`);
  const density = m.density ?? 'full';
  if (!(DENSITIES as readonly unknown[]).includes(density)) bad(`map.density must be one of ${DENSITIES.join(', ')}`);
  const size = integer(m.size, 'map.size', MAP_SIZE_RANGE[0], MAP_SIZE_RANGE[1], bad);
  // A kernel wider than the map only reflects the map onto itself; the limit also bounds the blur's work.
  const sigma = number(m.sigma, 'map.sigma', 0, Math.min(MAX_SIGMA, size), bad);
  let classCombine: Record<string, MapCombine> | undefined;
  if (m.classCombine !== undefined) {
    if (version < CLASS_COMBINE_PIPELINE_VERSION) bad(`map.classCombine needs version ${CLASS_COMBINE_PIPELINE_VERSION}`);
    const o = object(m.classCombine, 'map.classCombine', classes, bad, []);
    classCombine = {};
    for (const cls of Object.keys(o)) {
      if (!(MAP_COMBINES as readonly unknown[]).includes(o[cls])) bad(`map.classCombine.${cls} must be one of ${MAP_COMBINES.join(', ')}`);
      classCombine[cls] = o[cls] as MapCombine;
    }
  }
  let nearest: NearestSpec | undefined;
  if (m.nearest !== undefined) {
    if (version < NEAREST_PIPELINE_VERSION) bad(`map.nearest needs version ${NEAREST_PIPELINE_VERSION}`);
    const n = object(m.nearest, 'map.nearest', NEAREST_KEYS, bad, ['cap', 'seed']);
    if (n.coarse !== undefined && typeof n.coarse !== 'boolean') bad(`map.nearest.coarse must be true or false but is ${describe(n.coarse)}`);
    nearest = {
      cap: integer(n.cap, 'map.nearest.cap', ...BANK_SIZE_RANGE, bad), seed: integer(n.seed, 'map.nearest.seed', 0, 2 ** 31 - 1, bad),
      ...(n.coarse === true ? { coarse: true } : {}),
    };
  }
  return {
    size, sigma, combine: combine as MapCombine, density: density as Density, ...(classCombine ? { classCombine } : {}), ...(nearest ? { nearest } : {}),
  };
}

/**
 * The ranges follow from how maps are made (score/maps.ts): the shifts are the per-level maxima of
 * the calibration images' scores, so on them exp(v - shift) <= 1 and each summed map S <= levels; the
 * tops are maxima of S, in (0, levels]; the negative entropy of a posterior over Y classes lies in
 * [-ln Y, 0]; a map is (top - S)+ blurred (or the product of two), so image scores and thresholds lie
 * in [0, logpTop * nentTop]. Nearest-neighbour maps (map.nearest) are sums of distances: their
 * thresholds are any finite non-negative float32.
 */
function decodeConstants(c: Record<string, unknown>, what: string, levels: number, classes: readonly string[], bad: Bad): Omit<ClassConstants, 'images'> {
  const topMax = levels * (1 + ROUNDING);
  return {
    logpShift: numbers(c.logpShift, levels, `${what}.logpShift`, -LOGP_SHIFT_LIMIT, LOGP_SHIFT_LIMIT, bad),
    nentShift: numbers(c.nentShift, levels, `${what}.nentShift`, -Math.log(classes.length) - 1e-3, 1e-3, bad),
    logpTop: number(c.logpTop, `${what}.logpTop`, 0, topMax, bad, 'lo'),
    nentTop: number(c.nentTop, `${what}.nentTop`, 0, topMax, bad, 'lo'),
  };
}

function decodeCalibration(v: unknown, levels: number, classes: readonly string[], map: MapSpec, version: number, bad: Bad): Calibration {
  const c = object(v, 'calibration', CALIBRATION_KEYS, bad, CALIBRATION_REQUIRED);
  const { logpShift, nentShift, logpTop, nentTop } = decodeConstants(c, 'calibration', levels, classes, bad);
  let classConstants: Record<string, ClassConstants> | undefined;
  if (c.classConstants !== undefined) {
    if (version < 2) bad('calibration.classConstants needs version 2');
    const o = object(c.classConstants, 'calibration.classConstants', classes, bad, []);
    classConstants = {};
    for (const cls of Object.keys(o)) {
      const what = `calibration.classConstants.${cls}`;
      const e = object(o[cls], what, CLASS_CONSTANT_KEYS, bad);
      classConstants[cls] = { ...decodeConstants(e, what, levels, classes, bad), images: integer(e.images, `${what}.images`, 1, 2 ** 31 - 1, bad) };
    }
  }
  // A class's scores are bounded by the tops of the constants its maps are made with.
  const maxScore = (cls: string): number => {
    if (map.nearest) return MAX_DISTANCE_SCORE;
    const k = classConstants?.[cls] ?? { logpTop, nentTop };
    return (combineOf(map, cls) === 'logp' ? k.logpTop : k.logpTop * k.nentTop) * (1 + ROUNDING);
  };
  const t = object(c.thresholds, 'calibration.thresholds', classes, bad);
  const thresholds: Record<string, number> = {};
  for (const cls of classes) thresholds[cls] = number(t[cls], `calibration.thresholds.${cls}`, 0, maxScore(cls), bad);
  return {
    logpShift, nentShift, logpTop, nentTop, thresholds,
    images: integer(c.images, 'calibration.images', 1, 2 ** 31 - 1, bad),
    quantile: number(c.quantile, 'calibration.quantile', 0, 1, bad),
    ...(classConstants ? { classConstants } : {}),
  };
}

function decodeReduction(v: unknown, levels: number, bad: Bad): ReductionSpec {
  const r = object(v, 'reduction', REDUCTION_KEYS, bad, REDUCTION_REQUIRED);
  const inChannels = numbers(r.inChannels, levels, 'reduction.inChannels', 1, MAX_CHANNELS, bad)
    .map((c, l) => integer(c, `reduction.inChannels[${l}]`, 1, MAX_CHANNELS, bad));
  const channels = numbers(r.channels, levels, 'reduction.channels', 1, MAX_CHANNELS, bad)
    .map((c, l) => integer(c, `reduction.channels[${l}]`, 1, inChannels[l]!, bad));
  if (typeof r.standardize !== 'boolean') bad(`reduction.standardize must be true or false but is ${describe(r.standardize)}`);
  const localAverage = r.localAverage ?? false;
  if (typeof localAverage !== 'boolean') bad(`reduction.localAverage must be true or false but is ${describe(localAverage)}`);
  const projection = r.projection ?? 'random';
  if (!PROJECTIONS.includes(projection as Projection)) bad(`reduction.projection must be one of ${PROJECTIONS.join(', ')} but is ${describe(projection)}`);
  const whiten = r.whiten ?? false;
  if (typeof whiten !== 'boolean') bad(`reduction.whiten must be true or false but is ${describe(whiten)}`);
  const retained = r.retained === undefined ? undefined : numbers(r.retained, levels, 'reduction.retained', 0, 1, bad);
  return {
    inChannels, channels, standardize: r.standardize as boolean, localAverage: localAverage as boolean,
    images: integer(r.images, 'reduction.images', 0, 2 ** 40, bad), seed: integer(r.seed, 'reduction.seed', 0, 2 ** 53, bad),
    ...(r.projection !== undefined || r.whiten !== undefined ? { projection: projection as Projection, whiten: whiten as boolean } : {}),
    ...(retained ? { retained } : {}),
  };
}

function decodeTraining(v: unknown, bad: Bad): TrainingState {
  const t = object(v, 'training', TRAINING_KEYS, bad);
  const s = object(t.schedule, 'training.schedule', SCHEDULE_KEYS, bad);
  let schedule: TrainingState['schedule'];
  try {
    schedule = resolveSchedule(s, 'training.schedule');
  } catch (e) {
    return bad((e as HgadError).message);
  }
  const epoch = integer(t.epoch, 'training.epoch', 0, schedule.metaEpochs, bad);
  const subEpoch = integer(t.subEpoch, 'training.subEpoch', 0, schedule.subEpochs - 1, bad);
  if (epoch === schedule.metaEpochs && subEpoch !== 0) bad('training.subEpoch must be 0 once every meta epoch is done');
  if (typeof t.trainDigest !== 'string' || !/^[0-9a-f]{64}$/.test(t.trainDigest)) bad('training.trainDigest must be 64 hex digits');
  if (typeof t.complete !== 'boolean') bad('training.complete must be true or false');
  if (t.complete && epoch !== schedule.metaEpochs) bad('training.complete is true but training.epoch is not the last');
  return {
    epoch, subEpoch,
    seed: integer(t.seed, 'training.seed', 0, 2 ** 31 - 1, bad),
    batchSize: integer(t.batchSize, 'training.batchSize', 1, 4096, bad),
    schedule,
    trainImages: integer(t.trainImages, 'training.trainImages', 0, 2 ** 31 - 1, bad),
    trainDigest: t.trainDigest as string,
    complete: t.complete as boolean,
  };
}

function decodeHistory(v: unknown, classes: readonly string[], bad: Bad): HistoryEntry[] {
  if (!Array.isArray(v) || v.length > MAX_HISTORY) bad(`history must be an array of at most ${MAX_HISTORY} entries`);
  const seen = new Set<string>();
  return (v as unknown[]).map((raw, i) => {
    const what = `history[${i}]`;
    const h = object(raw, what, HISTORY_KEYS, bad, HISTORY_KEYS.filter((k) => k !== 'classFlowSchedule'));
    if (h.action !== 'extend') bad(`${what}.action must be "extend"`);
    if (typeof h.at !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(h.at)) bad(`${what}.at must be an ISO 8601 UTC time`);
    if (!Array.isArray(h.classes) || h.classes.length === 0) bad(`${what}.classes must be a non-empty array of class names`);
    const added = (h.classes as unknown[]).map((c, k) => {
      if (typeof c !== 'string' || !classes.includes(c) || seen.has(c)) bad(`${what}.classes[${k}] must be a class of the detector added only once`);
      seen.add(c as string);
      return c as string;
    });
    const data = h.data === null ? null : name(h.data, `${what}.data`, bad);
    if (typeof h.trainDigest !== 'string' || !/^[0-9a-f]{64}$/.test(h.trainDigest)) bad(`${what}.trainDigest must be 64 hex digits`);
    const scheduleOf = (key: 'schedule' | 'classFlowSchedule'): TrainingState['schedule'] => {
      try {
        return resolveSchedule(object(h[key], `${what}.${key}`, SCHEDULE_KEYS, bad), `${what}.${key}`);
      } catch (e) {
        return bad((e as HgadError).message);
      }
    };
    const schedule = scheduleOf('schedule');
    return {
      action: 'extend', at: h.at as string, classes: added, data,
      trainImages: integer(h.trainImages, `${what}.trainImages`, 1, 2 ** 31 - 1, bad),
      calibrationImages: integer(h.calibrationImages, `${what}.calibrationImages`, 1, 2 ** 31 - 1, bad),
      trainDigest: h.trainDigest as string, schedule,
      ...(h.classFlowSchedule !== undefined ? { classFlowSchedule: scheduleOf('classFlowSchedule') } : {}),
      seed: integer(h.seed, `${what}.seed`, 0, 2 ** 31 - 1, bad),
      batchSize: integer(h.batchSize, `${what}.batchSize`, 1, 4096, bad),
      seconds: number(h.seconds, `${what}.seconds`, 0, 1e9, bad),
    };
  });
}

function decodeClassFlows(v: unknown, classes: readonly string[], map: MapSpec, bad: Bad): ClassFlowSpec[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > classes.length) bad(`classFlows must be an array of 1 to ${classes.length} entries`);
  const seen = new Set<string>();
  return (v as unknown[]).map((raw, i) => {
    const what = `classFlows[${i}]`;
    const f = object(raw, what, CLASS_FLOW_KEYS, bad);
    const className = f.className;
    if (typeof className !== 'string' || !classes.includes(className) || seen.has(className)) {
      bad(`${what}.className must be one of the detector's classes, each at most once`);
    }
    seen.add(className as string);
    // Its mixture has one class: the negative entropy of its posterior is 0 everywhere.
    if (combineOf(map, className as string) !== 'logp') bad(`${what}: a class with a flow of its own makes 'logp' maps (map.classCombine)`);
    return {
      className: className as string,
      couplingLayers: integer(f.couplingLayers, `${what}.couplingLayers`, ...CLASS_FLOW_LIMITS.couplingLayers, bad),
      centersPerClass: integer(f.centersPerClass, `${what}.centersPerClass`, ...CLASS_FLOW_LIMITS.centersPerClass, bad),
      seed: integer(f.seed, `${what}.seed`, 0, 2 ** 31 - 1, bad),
    };
  });
}

function decodeStale(v: unknown, classes: readonly string[], bad: Bad): string[] {
  if (!Array.isArray(v)) bad('staleThresholds must be an array of class names');
  const out = (v as unknown[]).map((c, i) => {
    if (typeof c !== 'string' || !classes.includes(c)) bad(`staleThresholds[${i}] must be one of the detector's classes`);
    return c as string;
  });
  if (new Set(out).size !== out.length) bad('staleThresholds must name each class once');
  return out;
}

/** Parses and checks the stored spec; levels is the flow's level count, classes its class names. */
export function decodeSpec(text: string | undefined, path: string, levels: number, classes: readonly string[]): PipelineSpec {
  const bad: Bad = (problem) => {
    throw new HgadModelFileError(path, `metadata.${PIPELINE_KEY}: ${problem}`);
  };
  if (text === undefined) bad('missing: this file holds a bare flow (HgadModel.load reads it), not a detector');
  let raw: unknown;
  try {
    raw = JSON.parse(text!);
  } catch {
    bad('not valid JSON');
  }
  const o = object(raw, 'spec', SPEC_KEYS, bad, SPEC_REQUIRED);
  if (!READABLE_PIPELINE_VERSIONS.includes(o.version as number)) {
    bad(`version ${describe(o.version)} is not supported (this hgad reads versions ${READABLE_PIPELINE_VERSIONS.join(', ')})`);
  }
  const version = o.version as number;
  if (version === 1 && ('history' in o || 'staleThresholds' in o)) bad('history and staleThresholds need version 2');
  if (version >= 2 && !('history' in o && 'staleThresholds' in o)) bad(`version ${version} needs history and staleThresholds`);
  if ('classFlows' in o && version < CLASS_FLOW_PIPELINE_VERSION) bad(`classFlows needs version ${CLASS_FLOW_PIPELINE_VERSION}`);
  const backbone = decodeBackbone(o.backbone, levels, bad);
  const map = decodeMap(o.map, classes, version, bad);
  return {
    version,
    backbone,
    reduction: o.reduction === undefined || o.reduction === null ? null : decodeReduction(o.reduction, levels, bad),
    map,
    calibration: o.calibration === null ? null : decodeCalibration(o.calibration, levels, classes, map, version, bad),
    training: o.training === null ? null : decodeTraining(o.training, bad),
    ...(version >= 2 ? { history: decodeHistory(o.history, classes, bad), staleThresholds: decodeStale(o.staleThresholds, classes, bad) } : {}),
    ...(o.classFlows !== undefined ? { classFlows: decodeClassFlows(o.classFlows, classes, map, bad) } : {}),
  };
}
