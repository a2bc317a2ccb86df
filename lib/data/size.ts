// The { width, height } arguments of the image loaders.
import { HgadArgumentError } from '../errors';
import { checkKeys, isInteger } from '../validate';

export interface ImageSize {
  width: number;
  height: number;
}

/** Largest side accepted; sharp's own default input limit is 0x3FFF as well. */
export const MAX_SIDE = 16384;

/** A size given as one number (square) or { width, height }, checked. */
export function checkSize(parameter: string, size: unknown): ImageSize {
  if (isInteger(size)) {
    if (size < 1 || size > MAX_SIDE) throw new HgadArgumentError(parameter, `an integer in [1, ${MAX_SIDE}]`, size);
    return { width: size, height: size };
  }
  if (typeof size !== 'object' || size === null) {
    throw new HgadArgumentError(parameter, `a side length or an object { width, height } with integers in [1, ${MAX_SIDE}]`, size);
  }
  checkKeys(parameter, size, ['width', 'height']);
  const { width, height } = size as Record<string, unknown>;
  for (const [key, v] of [['width', width], ['height', height]] as const) {
    if (!isInteger(v) || v < 1 || v > MAX_SIDE) throw new HgadArgumentError(`${parameter}.${key}`, `an integer in [1, ${MAX_SIDE}]`, v);
  }
  return { width: width as number, height: height as number };
}
