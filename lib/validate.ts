// Argument checks shared by the public API. Each throws HgadArgumentError naming the parameter.
import { HgadArgumentError } from './errors';

export interface BatchShape {
  batch: number;
  height: number;
  width: number;
}

/** A feature batch in NHWC order: one C-vector per position of each image. */
export interface FeatureBatch extends BatchShape {
  data: Float32Array;
  channels: number;
}

export function isInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

// Tag checks rather than instanceof: arrays made by the addon or in another realm (jest, vm) carry a
// different constructor.
export function isFloat32Array(v: unknown): v is Float32Array {
  return Object.prototype.toString.call(v) === '[object Float32Array]';
}

export function isInt32Array(v: unknown): v is Int32Array {
  return Object.prototype.toString.call(v) === '[object Int32Array]';
}

export function checkInteger(parameter: string, v: unknown, lo: number, hi: number): void {
  if (!isInteger(v) || v < lo || v > hi) throw new HgadArgumentError(parameter, `an integer in [${lo}, ${hi}]`, v);
}

export function checkShape(parameter: string, s: unknown): BatchShape {
  if (typeof s !== 'object' || s === null) throw new HgadArgumentError(parameter, 'an object { batch, height, width }', s);
  const o = s as Record<string, unknown>;
  checkInteger(`${parameter}.batch`, o.batch, 1, 1 << 24);
  checkInteger(`${parameter}.height`, o.height, 1, 1 << 16);
  checkInteger(`${parameter}.width`, o.width, 1, 1 << 16);
  return { batch: o.batch as number, height: o.height as number, width: o.width as number };
}

export function checkBatch(parameter: string, x: unknown, channels: number): FeatureBatch {
  const shape = checkShape(parameter, x);
  const o = x as Record<string, unknown>;
  if (o.channels !== channels) {
    throw new HgadArgumentError(`${parameter}.channels`, `${channels} (the level's channels)`, o.channels);
  }
  if (!isFloat32Array(o.data)) throw new HgadArgumentError(`${parameter}.data`, 'a Float32Array', o.data);
  const expected = shape.batch * shape.height * shape.width * channels;
  if (o.data.length !== expected) {
    throw new HgadArgumentError(`${parameter}.data`,
      `a Float32Array of batch*height*width*channels = ${expected} elements`, o.data);
  }
  return { ...shape, channels, data: o.data };
}

/**
 * Rejects keys of an options object that the function does not read, so a typo (`centresPerClass`,
 * `batchsize`) fails loudly instead of silently running with the default. Keys whose value is
 * undefined count like any other: spreading `{ ...defaults, typo: undefined }` is still a typo.
 */
export function checkKeys(parameter: string, obj: unknown, allowed: readonly string[]): void {
  if (typeof obj !== 'object' || obj === null) return;
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new HgadArgumentError(`${parameter}.${key}`,
        allowed.length > 0 ? `one of the options ${allowed.join(', ')}` : 'no options', key);
    }
  }
}
