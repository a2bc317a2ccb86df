/**
 * The nearest-neighbour reference (PatchCore-style) in three native steps: 3x3 local averaging of a
 * feature map, the distance of every position to its nearest memory-bank vector, and the anomaly map
 * of those distances (summed over levels after the flow maps' upsampling, then blurred). All work runs
 * in native/core/nearest.cpp off the JavaScript thread; this file checks arguments and types results.
 */
import { HgadArgumentError } from '../errors';
import type { FeatureLevel } from '../features/backbone';
import { native } from '../native';
import { callNative } from '../native-ops';
import { checkPrecision, PrecisionChoice, resolvePrecision } from '../precision';
import { checkInteger, isFloat32Array } from '../validate';

/** One level's value per position for `batch` images (batch x height x width, row-major). */
export interface DistancePlane {
  values: Float32Array;
  height: number;
  width: number;
}

export interface DistanceMapSize {
  height: number;
  width: number;
  /** Gaussian blur sigma in map pixels (default 4, as the flow's maps). */
  sigma?: number;
}

interface NativeNearestOps {
  avgPool3x3(data: Float32Array, batch: number, height: number, width: number, channels: number): Promise<Float32Array>;
  avgPool2x2(data: Float32Array, batch: number, height: number, width: number, channels: number): Promise<Float32Array>;
  nearestDistances(queries: Float32Array, count: number, bank: Float32Array, bankCount: number, dim: number,
    into: Float32Array | undefined, bf16: boolean): Promise<Float32Array>;
  distanceMaps(levels: DistancePlane[], batch: number, height: number, width: number, sigma: number):
    Promise<{ maps: Float32Array; scores: Float32Array }>;
}

const ops = (): NativeNearestOps => native() as unknown as NativeNearestOps;

const MAX_SIDE = 1 << 14;
const MAX_SIGMA = 1000;

function checkKeys(parameter: string, o: object, allowed: string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new HgadArgumentError(`${parameter}.${k}`, `no other keys than ${allowed.join(', ')}`, (o as Record<string, unknown>)[k]);
  }
}

/**
 * PatchCore's local neighbourhood aggregation, torch.nn.AvgPool2d(3, 1, 1): every position becomes the
 * mean of its 3x3 neighbourhood, zero padding counted (so edges are divided by 9 too). Same shape out.
 */
export async function localAverage(level: FeatureLevel): Promise<FeatureLevel> {
  const { data, batch, height, width, channels } = checkLevel(level);
  const out = await callNative(() => ops().avgPool3x3(data, batch, height, width, channels));
  return { data: out, batch, height, width, channels };
}

function checkLevel(level: FeatureLevel): FeatureLevel {
  if (typeof level !== 'object' || level === null) {
    throw new HgadArgumentError('level', 'an object { data, batch, height, width, channels }', level);
  }
  const { data, batch, height, width, channels } = level;
  checkInteger('level.batch', batch, 1, 1 << 24);
  checkInteger('level.height', height, 1, 1 << 16);
  checkInteger('level.width', width, 1, 1 << 16);
  checkInteger('level.channels', channels, 1, 1 << 20);
  const n = batch * height * width * channels;
  if (!isFloat32Array(data) || data.length !== n) {
    throw new HgadArgumentError('level.data', `a Float32Array of batch*height*width*channels = ${n} elements`, data);
  }
  return level;
}

/**
 * torch.nn.AvgPool2d(2): each output position the mean of a 2x2 block, at half the resolution (an odd
 * last row or column dropped). Needs a level of at least 2 x 2.
 */
export async function halfResolution(level: FeatureLevel): Promise<FeatureLevel> {
  const { data, batch, height, width, channels } = checkLevel(level);
  if (height < 2 || width < 2) throw new HgadArgumentError('level', 'a level of at least 2 x 2 positions', `${height} x ${width}`);
  const out = await callNative(() => ops().avgPool2x2(data, batch, height, width, channels));
  return { data: out, batch, height: Math.floor(height / 2), width: Math.floor(width / 2), channels };
}

export interface NearestOptions {
  /** Vector length: queries and bank hold whole rows of `dim` floats. */
  dim: number;
  /**
   * Distances from earlier banks (one per query): each is replaced by the smaller of it and the
   * distance to this bank, so calling once per bank gives the nearest over their union. Read when the
   * call is made (not changed); the result is a new array.
   */
  into?: Float32Array;
  /**
   * GEMM precision of the products q.b: 'fp32' (default); 'bf16' (bf16-rounded inputs, float
   * accumulation, on AMX or AVX512-BF16; elsewhere an INVALID_ARGUMENT error); 'auto' (bf16 where the
   * CPU has it). The norms stay float: distances within 1% of fp32's (benchmarks/RESULTS.md, session 13).
   */
  precision?: PrecisionChoice;
}

/**
 * Euclidean distance from each query row to its nearest bank row (queries: count x dim, bank:
 * bankCount x dim, row-major). Exhaustive over the bank, through the GEMM (||q||^2 - 2 q.b + ||b||^2 in
 * float32, clamped at 0); cost count x bankCount x dim multiply-adds.
 */
export async function nearestDistances(queries: Float32Array, bank: Float32Array, options: NearestOptions): Promise<Float32Array> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { dim, into? }', options);
  checkKeys('options', options, ['dim', 'into', 'precision']);
  const { dim, into } = options;
  const precision = resolvePrecision('options.precision', checkPrecision('options.precision', options.precision, 'fp32'), 'cpu');
  checkInteger('options.dim', dim, 1, 1 << 20);
  if (!isFloat32Array(queries) || queries.length === 0 || queries.length % dim !== 0) {
    throw new HgadArgumentError('queries', `a non-empty Float32Array of whole rows of dim = ${dim} floats`, queries);
  }
  if (!isFloat32Array(bank) || bank.length === 0 || bank.length % dim !== 0) {
    throw new HgadArgumentError('bank', `a non-empty Float32Array of whole rows of dim = ${dim} floats`, bank);
  }
  const count = queries.length / dim;
  if (into !== undefined && (!isFloat32Array(into) || into.length !== count)) {
    throw new HgadArgumentError('options.into', `a Float32Array of ${count} distances (one per query)`, into);
  }
  return callNative(() => ops().nearestDistances(queries, count, bank, bank.length / dim, dim, into, precision === 'bf16'));
}

/**
 * Anomaly maps from per-level distances, built like the flow's maps (native/core/maps.cpp): each level
 * upsampled bilinearly with aligned corners to height x width, summed over levels, Gaussian-blurred;
 * the image score is the max of its map. maps: batch x height x width, row-major.
 */
export async function distanceMaps(levels: DistancePlane[], batch: number, size: DistanceMapSize):
  Promise<{ maps: Float32Array; scores: Float32Array }> {
  checkInteger('batch', batch, 1, 1 << 24);
  if (!Array.isArray(levels) || levels.length === 0) throw new HgadArgumentError('levels', 'a non-empty array of { values, height, width }', levels);
  const lv = levels.map((l, i) => {
    if (typeof l !== 'object' || l === null) throw new HgadArgumentError(`levels[${i}]`, 'an object { values, height, width }', l);
    checkKeys(`levels[${i}]`, l, ['values', 'height', 'width']);
    checkInteger(`levels[${i}].height`, l.height, 1, 1 << 16);
    checkInteger(`levels[${i}].width`, l.width, 1, 1 << 16);
    const n = batch * l.height * l.width;
    if (!isFloat32Array(l.values) || l.values.length !== n) {
      throw new HgadArgumentError(`levels[${i}].values`, `a Float32Array of batch*height*width = ${n} elements`, l.values);
    }
    return { values: l.values, height: l.height, width: l.width };
  });
  if (typeof size !== 'object' || size === null) throw new HgadArgumentError('size', 'an object { height, width, sigma? }', size);
  checkKeys('size', size, ['height', 'width', 'sigma']);
  checkInteger('size.height', size.height, 1, MAX_SIDE);
  checkInteger('size.width', size.width, 1, MAX_SIDE);
  const sigma = size.sigma ?? 4;
  if (typeof sigma !== 'number' || !(sigma >= 0 && sigma <= MAX_SIGMA)) {
    throw new HgadArgumentError('size.sigma', `a number in [0, ${MAX_SIGMA}]`, sigma);
  }
  return callNative(() => ops().distanceMaps(lv, batch, size.height, size.width, sigma));
}
