// What a detector stores beside the flow's tensors (model-file metadata key "pipeline"): the backbone
// and how images reach it, the map geometry, the calibration constants and thresholds, and where
// training stands (for checkpoints). Everything is validated on load; a bad value is a MODEL_FILE error.
import { HgadModelFileError } from '../errors';
import type { ReductionSpec } from './reduction';

export const PIPELINE_KEY = 'pipeline';
export const PIPELINE_VERSION = 1;

export interface BackboneSpec {
  /** Preset name, 'demo', or a path to an .onnx file. */
  model: string;
  /** sha256 of the ONNX file the model was trained with (checked when the detector opens it). */
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

export interface PipelineSpec {
  version: number;
  backbone: BackboneSpec;
  map: { size: number; sigma: number; combine: MapCombine };
  calibration: Calibration | null;
  training: TrainingState | null;
  /** Channel reduction before the flow (its tensors are stored beside the flow's); null: none. */
  reduction?: ReductionSpec | null;
}

export function encodeSpec(spec: PipelineSpec): string {
  return JSON.stringify(spec);
}

type Bad = (problem: string) => never;

function finiteArray(v: unknown, length: number | null, what: string, bad: Bad): number[] {
  if (!Array.isArray(v) || (length !== null && v.length !== length) ||
    v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
    bad(`${what} must be an array of ${length ?? 'some'} finite numbers`);
  }
  return v as number[];
}

function positiveInt(v: unknown, what: string, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) bad(`${what} must be a positive integer`);
  return v as number;
}

function object(v: unknown, what: string, bad: Bad): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  return v as Record<string, unknown>;
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
  const o = object(raw, 'the spec', bad);
  if (o.version !== PIPELINE_VERSION) bad(`version ${JSON.stringify(o.version)} is not supported (this hgad reads ${PIPELINE_VERSION})`);
  const b = object(o.backbone, 'backbone', bad);
  if (typeof b.model !== 'string' || b.model.length === 0) bad('backbone.model must be a non-empty string');
  if (b.sha256 !== null && (typeof b.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(b.sha256))) {
    bad('backbone.sha256 must be null or 64 hex digits');
  }
  if (!Array.isArray(b.taps) || b.taps.length === 0 || b.taps.some((t) => typeof t !== 'string' || t.length === 0)) {
    bad('backbone.taps must be a non-empty array of tensor names');
  }
  const scales = b.scales === null ? null : finiteArray(b.scales, null, 'backbone.scales', bad);
  const inputSize = positiveInt(b.inputSize, 'backbone.inputSize', bad);
  const mean = finiteArray(b.mean, 3, 'backbone.mean', bad) as [number, number, number];
  const std = finiteArray(b.std, 3, 'backbone.std', bad) as [number, number, number];
  const levelCount = (b.taps as string[]).length * (scales?.length ?? 1);
  if (levelCount !== levels) bad(`backbone gives ${levelCount} feature levels but the flow has ${levels}`);
  const m = object(o.map, 'map', bad);
  // Files from before the setting: the product map, except for one-class models, whose negative
  // entropy is 0 everywhere (the product would be a constant map).
  const combine = m.combine ?? (classes.length === 1 ? 'logp' : 'logp*nent');
  if (!(MAP_COMBINES as readonly unknown[]).includes(combine)) bad(`map.combine must be one of ${MAP_COMBINES.join(', ')}`);
  const map = {
    size: positiveInt(m.size, 'map.size', bad), sigma: finiteArray([m.sigma], 1, 'map.sigma', bad)[0]!, combine: combine as MapCombine,
  };
  let calibration: Calibration | null = null;
  if (o.calibration !== null) {
    const c = object(o.calibration, 'calibration', bad);
    const thresholds = object(c.thresholds, 'calibration.thresholds', bad);
    for (const [name, t] of Object.entries(thresholds)) {
      if (!classes.includes(name)) bad(`calibration.thresholds names "${name}", which is not one of the model's classes`);
      if (typeof t !== 'number' || !Number.isFinite(t)) bad(`calibration.thresholds.${name} must be a finite number`);
    }
    calibration = {
      logpShift: finiteArray(c.logpShift, levels, 'calibration.logpShift', bad),
      nentShift: finiteArray(c.nentShift, levels, 'calibration.nentShift', bad),
      logpTop: finiteArray([c.logpTop], 1, 'calibration.logpTop', bad)[0]!,
      nentTop: finiteArray([c.nentTop], 1, 'calibration.nentTop', bad)[0]!,
      thresholds: thresholds as Record<string, number>,
      images: positiveInt(c.images, 'calibration.images', bad),
      quantile: finiteArray([c.quantile], 1, 'calibration.quantile', bad)[0]!,
    };
  }
  let training: TrainingState | null = null;
  if (o.training !== null) {
    const t = object(o.training, 'training', bad);
    const s = object(t.schedule, 'training.schedule', bad);
    const nonNegative = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${what} must be a non-negative integer`);
      return v as number;
    };
    if (typeof t.trainDigest !== 'string' || typeof t.complete !== 'boolean') bad('training.trainDigest / complete are malformed');
    training = {
      epoch: nonNegative(t.epoch, 'training.epoch'),
      subEpoch: nonNegative(t.subEpoch, 'training.subEpoch'),
      seed: nonNegative(t.seed, 'training.seed'),
      batchSize: positiveInt(t.batchSize, 'training.batchSize', bad),
      schedule: {
        metaEpochs: positiveInt(s.metaEpochs, 'training.schedule.metaEpochs', bad),
        subEpochs: positiveInt(s.subEpochs, 'training.schedule.subEpochs', bad),
        lr: finiteArray([s.lr], 1, 'training.schedule.lr', bad)[0]!,
        warmupEpochs: nonNegative(s.warmupEpochs, 'training.schedule.warmupEpochs'),
        phase1Epochs: nonNegative(s.phase1Epochs, 'training.schedule.phase1Epochs'),
      },
      trainImages: nonNegative(t.trainImages, 'training.trainImages'),
      trainDigest: t.trainDigest as string,
      complete: t.complete as boolean,
    };
  }
  let reduction: ReductionSpec | null = null;
  if (o.reduction !== undefined && o.reduction !== null) {
    const r = object(o.reduction, 'reduction', bad);
    const inChannels = finiteArray(r.inChannels, levels, 'reduction.inChannels', bad).map((c, l) => positiveInt(c, `reduction.inChannels[${l}]`, bad));
    const channels = finiteArray(r.channels, levels, 'reduction.channels', bad).map((c, l) => positiveInt(c, `reduction.channels[${l}]`, bad));
    channels.forEach((c, l) => {
      if (c > inChannels[l]! || inChannels[l]! > 1 << 16) bad(`reduction.channels[${l}] must be at most reduction.inChannels[${l}] (<= 65536)`);
    });
    if (typeof r.standardize !== 'boolean') bad('reduction.standardize must be a boolean');
    if (typeof r.seed !== 'number' || !Number.isSafeInteger(r.seed) || r.seed < 0) bad('reduction.seed must be a non-negative integer');
    if (typeof r.images !== 'number' || !Number.isSafeInteger(r.images) || r.images < 0) bad('reduction.images must be a non-negative integer');
    reduction = { inChannels, channels, standardize: r.standardize as boolean, images: r.images as number, seed: r.seed as number };
  }
  return {
    version: PIPELINE_VERSION,
    reduction,
    backbone: { model: b.model as string, sha256: (b.sha256 as string | null), taps: b.taps as string[], scales, inputSize, mean, std },
    map,
    calibration,
    training,
  };
}
