// Images held in memory rather than in files: encoded bytes (an upload, a camera frame) or raw 8-bit
// pixels. They go through the same sharp pipeline as files (orientation, alpha, colour, resizing).
import { HgadArgumentError } from '../errors';
import { isInteger } from '../validate';
import { MAX_SIDE } from './size';

/** Raw 8-bit pixels, row-major, channels interleaved: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

/** Where the loader takes an image's pixels from when not from its path. */
export type ImageSource =
  | { bytes: Uint8Array; maxPixels?: number }
  | { raw: RawImage };

const BYTE_TAGS = ['[object Uint8Array]', '[object Uint8ClampedArray]'];

/** Uint8Array (Buffer included) or Uint8ClampedArray; tag checks, as arrays may come from another realm. */
export function isByteArray(v: unknown): v is Uint8Array | Uint8ClampedArray {
  return BYTE_TAGS.includes(Object.prototype.toString.call(v));
}

/** A raw image checked up front: its size and channel count agree with its data. */
export function checkRawImage(parameter: string, v: Record<string, unknown>): RawImage {
  if (!isByteArray(v.data)) throw new HgadArgumentError(`${parameter}.data`, 'a Uint8Array of pixels', v.data);
  for (const key of ['width', 'height'] as const) {
    const n = v[key];
    if (!isInteger(n) || n < 1 || n > MAX_SIDE) throw new HgadArgumentError(`${parameter}.${key}`, `an integer in [1, ${MAX_SIDE}]`, n);
  }
  const channels = v.channels;
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
    throw new HgadArgumentError(`${parameter}.channels`, '1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)', channels);
  }
  const width = v.width as number, height = v.height as number;
  const expected = width * height * channels;
  if (v.data.length !== expected) {
    throw new HgadArgumentError(`${parameter}.data`, `width * height * channels = ${width}*${height}*${channels} = ${expected} bytes`, v.data);
  }
  return { data: v.data, width, height, channels };
}
