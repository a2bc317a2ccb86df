/**
 * Anomaly maps from the flow's per-level scores (HGAD.md section 6), computed natively
 * (native/core/maps.cpp). For each quantity q (logp and negative entropy) separately:
 *   p = exp(v - shift_q[l]) per level; bilinear upsampling (aligned corners, as torch's
 *   F.interpolate(align_corners=True)) to the output size; S_q = sum over levels;
 *   A_q = max(0, top_q - S_q); Gaussian blur (scipy.ndimage.gaussian_filter: truncate 4, mode 'reflect').
 * Final map = A_logp * A_nent (combine 'logp*nent'), or A_logp alone (combine 'logp', for a
 * single-Gaussian prior); image score = max of the map.
 *
 * Two ways to get the constants:
 * - the authors' protocol, batchConstants(): shifts = per-level maxima over the images scored together,
 *   tops = max of S over them (an image's map then depends on the others);
 * - calibrated: levelMaxima() over all calibration batches (running max), then sumMaxima() under
 *   those shifts (running max) - stored with the model, so maps no longer depend on the batch.
 */
import { HgadArgumentError } from '../errors';
import type { MapCombine } from '../pipeline/spec';
import { callNative, imageOps } from '../native-ops';
import { checkInteger, isFloat32Array } from '../validate';

/** One level's flow scores for `batch` images, row-major [batch, height, width]. */
export interface LevelMaps {
  logp: Float32Array;
  negEntropy: Float32Array;
  height: number;
  width: number;
}

export interface MapConstants {
  /** Per level: subtracted from logp before exp. */
  logpShift: number[];
  /** Per level: subtracted from the negative entropy before exp. */
  nentShift: number[];
  logpTop: number;
  nentTop: number;
}

export interface MapSize {
  height: number;
  width: number;
  /** Gaussian blur sigma in output pixels; 0 disables the blur. Default 4. */
  sigma?: number;
}

export interface LevelMaxima {
  logp: number[];
  nent: number[];
}

const MAX_SIDE = 1 << 14;
/** Largest blur sigma (output pixels) the maps accept. */
export const MAX_SIGMA = 1000;

function checkLevels(levels: unknown, batch: unknown): LevelMaps[] {
  checkInteger('batch', batch, 1, 1 << 24);
  if (!Array.isArray(levels) || levels.length === 0) {
    throw new HgadArgumentError('levels', 'a non-empty array of { logp, negEntropy, height, width }', levels);
  }
  levels.forEach((lv: unknown, l) => {
    const name = `levels[${l}]`;
    if (typeof lv !== 'object' || lv === null) {
      throw new HgadArgumentError(name, 'an object { logp, negEntropy, height, width }', lv);
    }
    const o = lv as Record<string, unknown>;
    checkInteger(`${name}.height`, o.height, 1, 1 << 16);
    checkInteger(`${name}.width`, o.width, 1, 1 << 16);
    const n = (batch as number) * (o.height as number) * (o.width as number);
    for (const key of ['logp', 'negEntropy']) {
      const a = o[key];
      if (!isFloat32Array(a) || a.length !== n) {
        throw new HgadArgumentError(`${name}.${key}`, `a Float32Array of batch*height*width = ${n} elements`, a);
      }
    }
  });
  return levels as LevelMaps[];
}

function checkNumbers(parameter: string, v: unknown, length: number): number[] {
  if (!Array.isArray(v) || v.length !== length) {
    throw new HgadArgumentError(parameter, `an array of ${length} finite numbers (one per level)`, v);
  }
  v.forEach((x: unknown, i) => checkFinite(`${parameter}[${i}]`, x));
  return v as number[];
}

function checkFinite(parameter: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new HgadArgumentError(parameter, 'a finite number', v);
  return v;
}

function checkSize(size: unknown): Required<MapSize> {
  if (typeof size !== 'object' || size === null) throw new HgadArgumentError('size', 'an object { height, width, sigma? }', size);
  const o = size as Record<string, unknown>;
  checkInteger('size.height', o.height, 1, MAX_SIDE);
  checkInteger('size.width', o.width, 1, MAX_SIDE);
  const sigma = o.sigma ?? 4;
  if (typeof sigma !== 'number' || !(sigma >= 0 && sigma <= MAX_SIGMA)) {
    throw new HgadArgumentError('size.sigma', `a number in [0, ${MAX_SIGMA}]`, sigma);
  }
  return { height: o.height as number, width: o.width as number, sigma };
}

/** Per-level maxima of logp and negative entropy over all images and positions of the batch. */
export async function levelMaxima(levels: LevelMaps[], batch: number): Promise<LevelMaxima> {
  const lv = checkLevels(levels, batch);
  return callNative(() => imageOps().mapLevelMaxima(lv, batch));
}

/**
 * Max over the batch's images of S_q (the summed, upsampled exp(v - shift)), for logp and negative
 * entropy. The blur sigma of `size` plays no part.
 */
export async function sumMaxima(levels: LevelMaps[], batch: number, shifts: LevelMaxima, size: MapSize):
  Promise<{ logp: number; nent: number }> {
  const lv = checkLevels(levels, batch);
  if (typeof shifts !== 'object' || shifts === null) throw new HgadArgumentError('shifts', 'an object { logp, nent }', shifts);
  const logp = checkNumbers('shifts.logp', shifts.logp, lv.length);
  const nent = checkNumbers('shifts.nent', shifts.nent, lv.length);
  const s = checkSize(size);
  return callNative(() => imageOps().mapSumMaxima(lv, batch, logp, nent, s.height, s.width));
}

/** The authors' constants: everything normalised over this batch. */
export async function batchConstants(levels: LevelMaps[], batch: number, size: MapSize): Promise<MapConstants> {
  const shifts = await levelMaxima(levels, batch);
  const top = await sumMaxima(levels, batch, shifts, size);
  return { logpShift: shifts.logp, nentShift: shifts.nent, logpTop: top.logp, nentTop: top.nent };
}

/** The anomaly maps (batch x height x width, row-major) and image scores (max of each map). */
export async function anomalyMaps(levels: LevelMaps[], batch: number, constants: MapConstants, size: MapSize,
  combine: MapCombine = 'logp*nent'): Promise<{ maps: Float32Array; scores: Float32Array }> {
  if (combine !== 'logp*nent' && combine !== 'logp') throw new HgadArgumentError('combine', "'logp*nent' or 'logp'", combine);
  const lv = checkLevels(levels, batch);
  if (typeof constants !== 'object' || constants === null) {
    throw new HgadArgumentError('constants', 'an object { logpShift, nentShift, logpTop, nentTop }', constants);
  }
  const logpShift = checkNumbers('constants.logpShift', constants.logpShift, lv.length);
  const nentShift = checkNumbers('constants.nentShift', constants.nentShift, lv.length);
  const logpTop = checkFinite('constants.logpTop', constants.logpTop);
  const nentTop = checkFinite('constants.nentTop', constants.nentTop);
  const s = checkSize(size);
  return callNative(() =>
    imageOps().anomalyMaps(lv, batch, logpShift, nentShift, logpTop, nentTop, s.height, s.width, s.sigma, combine === 'logp'));
}
