// Typed view of the addon's image-level operations (native/binding/image_ops.h) and the mapping of
// their errors to HgadError. The public wrappers (lib/score, lib/eval) validate every argument first;
// the addon's own checks are the safety net for direct callers.
import { HgadError, HgadNonFiniteError } from './errors';
import { native } from './native';

export interface NativeLevelMaps {
  logp: Float32Array;
  negEntropy: Float32Array;
  height: number;
  width: number;
}

export interface NativeImageOps {
  mapLevelMaxima(levels: NativeLevelMaps[], batch: number): Promise<{ logp: number[]; nent: number[] }>;
  mapSumMaxima(levels: NativeLevelMaps[], batch: number, logpShift: number[], nentShift: number[], height: number,
    width: number): Promise<{ logp: number; nent: number }>;
  anomalyMaps(levels: NativeLevelMaps[], batch: number, logpShift: number[], nentShift: number[], logpTop: number,
    nentTop: number, height: number, width: number, sigma: number, logpOnly: boolean): Promise<{ maps: Float32Array; scores: Float32Array }>;
  colorize(map: Float32Array, height: number, width: number, min: number, max: number): Promise<Uint8Array>;
  rocAuc(scores: Float32Array, labels: Uint8Array): Promise<number>;
  f1Max(scores: Float32Array, labels: Uint8Array): Promise<{ f1: number; threshold: number }>;
  aupro(maps: Float32Array, masks: Uint8Array, count: number, height: number, width: number, maxFpr: number): Promise<number>;
}

/** The feature operations (native/binding/feature_ops.h): channel statistics and reduction. */
export interface NativeFeatureOps {
  channelMoments(x: Float32Array, rows: number, channels: number): Promise<{ sum: Float64Array; sumsq: Float64Array }>;
  projectChannels(x: Float32Array, rows: number, inChannels: number, mean: Float32Array, scale: Float32Array,
    weight: Float32Array, outChannels: number): Promise<Float32Array>;
  orthonormalRows(seed: number, rows: number, inChannels: number): Promise<Float32Array>;
  channelCrossMoments(x: Float32Array, rows: number, channels: number, shift: Float32Array, sum: Float64Array,
    cross: Float64Array): Promise<{ sum: Float64Array; cross: Float64Array }>;
  principalDirections(cross: Float64Array, sum: Float64Array, rows: number, scale: Float32Array, outChannels: number,
    whiten: boolean): Promise<{ weight: Float32Array; values: Float64Array; total: number }>;
}

export function featureOps(): NativeFeatureOps {
  return native() as unknown as NativeFeatureOps;
}

export function imageOps(): NativeImageOps {
  return native() as unknown as NativeImageOps;
}

/** Tag check, not instanceof: arrays from another realm (jest, vm) carry a different constructor; a Buffer passes. */
export function isUint8Array(v: unknown): v is Uint8Array {
  return Object.prototype.toString.call(v) === '[object Uint8Array]';
}

/** Maps an error from the addon to a typed HgadError. */
export function fromNativeError(e: unknown): HgadError {
  if (e instanceof HgadError) return e;
  const err = e as { message?: string; code?: string; parameter?: string; index?: number };
  const message = err?.message ?? String(e);
  if (err?.code === 'NON_FINITE_INPUT' && err.parameter !== undefined) {
    const nf = new HgadNonFiniteError(err.parameter, err.index ?? -1, NaN);
    nf.message = message;
    return nf;
  }
  if (err?.code === 'INVALID_ARGUMENT') return new HgadError('INVALID_ARGUMENT', message, err.parameter);
  if (err?.code === 'MODEL_STATE') return new HgadError('MODEL_STATE', message, err.parameter);
  return new HgadError('NATIVE', message);
}

/** Runs an addon call, turning both a synchronous throw and a rejection into an HgadError. */
export async function callNative<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNativeError(e);
  }
}
