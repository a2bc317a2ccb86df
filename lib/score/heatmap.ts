/**
 * Heatmaps of anomaly maps: the map scaled to a fixed range and coloured with the jet colormap
 * (matplotlib's definition, a 256-entry table in native/core/colormap.cpp; values outside the range
 * clamp to its ends), as raw RGB or PNG, and blended over the image by sharp.
 */
import sharp from 'sharp';
import type { Sharp } from 'sharp';

import { HgadArgumentError } from '../errors';
import { callNative, imageOps, isUint8Array } from '../native-ops';
import { checkInteger, checkKeys, isFloat32Array } from '../validate';

export interface ColorRange {
  /** Map value shown with the colormap's first colour (dark blue). */
  min: number;
  /** Map value shown with its last colour (dark red); must be > min. */
  max: number;
}

function checkMap(map: unknown, height: unknown, width: unknown): void {
  checkInteger('height', height, 1, 1 << 16);
  checkInteger('width', width, 1, 1 << 16);
  const n = (height as number) * (width as number);
  if (!isFloat32Array(map) || map.length !== n) {
    throw new HgadArgumentError('map', `a Float32Array of height*width = ${n} elements`, map);
  }
}

function checkRange(range: unknown): ColorRange {
  if (typeof range !== 'object' || range === null) throw new HgadArgumentError('range', 'an object { min, max }', range);
  checkKeys('range', range, ['min', 'max']);
  const { min, max } = range as Record<string, unknown>;
  if (typeof min !== 'number' || !Number.isFinite(min)) throw new HgadArgumentError('range.min', 'a finite number', min);
  if (typeof max !== 'number' || !Number.isFinite(max) || !(max > min)) {
    throw new HgadArgumentError('range.max', `a finite number > range.min (${min})`, max);
  }
  return { min, max };
}

/** RGB bytes (height x width x 3) of the map: colour index min(255, floor(256 t)), t = (v - min) / (max - min) clamped to [0, 1]. */
export async function colorize(map: Float32Array, height: number, width: number, range: ColorRange): Promise<Uint8Array> {
  checkMap(map, height, width);
  const r = checkRange(range);
  return callNative(() => imageOps().colorize(map, height, width, r.min, r.max));
}

function raw(data: Uint8Array, width: number, height: number): Sharp {
  return sharp(data, { raw: { width, height, channels: 3 } });
}

/** The coloured map as a PNG. */
export async function heatmapPng(map: Float32Array, height: number, width: number, range: ColorRange): Promise<Buffer> {
  const rgb = await colorize(map, height, width, range);
  return raw(rgb, width, height).png().toBuffer();
}

/**
 * The coloured map blended over an RGB image of the same size: (1 - alpha) * image + alpha * heatmap.
 * imageRgb: width x height x 3 bytes, row-major; map: height x width.
 */
export async function overlayPng(imageRgb: Uint8Array, width: number, height: number, map: Float32Array,
  range: ColorRange, alpha = 0.5): Promise<Buffer> {
  checkMap(map, height, width);
  if (!isUint8Array(imageRgb) || imageRgb.length !== width * height * 3) {
    throw new HgadArgumentError('imageRgb', `a Uint8Array of width*height*3 = ${width * height * 3} bytes`, imageRgb);
  }
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1)) throw new HgadArgumentError('alpha', 'a number in [0, 1]', alpha);
  const rgb = await colorize(map, height, width, range);
  // The heatmap with a constant alpha channel, composited 'over' the opaque image.
  const heat = await raw(rgb, width, height).ensureAlpha(alpha).raw().toBuffer();
  return raw(imageRgb, width, height)
    .composite([{ input: heat, raw: { width, height, channels: 4 }, blend: 'over' }])
    .removeAlpha()
    .png()
    .toBuffer();
}
