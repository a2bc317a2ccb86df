// Image and mask decoding with sharp. Every image comes out the same way whatever its file holds:
// EXIF orientation applied, 16-bit scaled to 8-bit, grey expanded to R=G=B, CMYK converted to sRGB,
// and any alpha channel (RGBA, grey+alpha) flattened onto black, so transparent areas read as black
// background rather than as whatever colour the file stored under alpha 0. The image is then resized
// to the requested size without keeping the aspect ratio and without cropping (fit 'fill'), with
// sharp's default lanczos3 kernel, like the PIL ANTIALIAS (Lanczos) resize of the reference code.
import { promises as fs } from 'fs';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { HgadArgumentError, HgadError } from '../errors';
import { isBmp, openBmp } from './bmp';
import { checkDeclaredSize, describeDecodeFailure, HgadImageError, MAX_IMAGE_PIXELS } from './decode-error';
import { checkSize, ImageSize } from './size';
import type { ImageSource } from './source';

/** Largest image file read (bytes); also refuses devices and pipes such as /dev/zero. */
export const MAX_IMAGE_BYTES = 1 << 30;

export interface LoadedImage {
  /** height * width * 3 bytes, RGB, row-major. */
  pixels: Uint8Array;
  width: number;
  height: number;
  /** Size of the file's image after EXIF orientation, before resizing. */
  originalWidth: number;
  originalHeight: number;
}

// 'error' aborts on truncated or corrupt pixel data but, unlike the stricter 'warning', still reads
// files with harmless warnings (e.g. extra bytes after a JPEG's end marker), which real datasets have.
const FAIL_ON = 'error' as const;

function decodeError(file: string, e: unknown): HgadError {
  if (e instanceof HgadError) return e;
  return new HgadImageError(file, describeDecodeFailure(e instanceof Error ? e.message : String(e)));
}

async function readBytes(file: string): Promise<Buffer> {
  let handle;
  try {
    handle = await fs.open(file, 'r');
  } catch (e) {
    throw new HgadError('IO', `Cannot read ${file}: ${(e as Error).message}`, 'path');
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new HgadImageError(file, 'not a regular file (a folder, device or pipe)');
    if (st.size > MAX_IMAGE_BYTES) {
      throw new HgadImageError(file, `the file has ${st.size} bytes, more than the ${MAX_IMAGE_BYTES} an image may have`);
    }
    return await handle.readFile();
  } catch (e) {
    if (e instanceof HgadError) throw e;
    throw new HgadError('IO', `Cannot read ${file}: ${(e as Error).message}`, 'path');
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * A sharp pipeline over the file's pixels (or the in-memory source's, `file` then only names it in
 * messages), orientation applied, and its oriented size.
 */
async function openImage(file: string, source?: ImageSource): Promise<{ image: Sharp; width: number; height: number }> {
  if (source && 'raw' in source) {
    const { data, width, height, channels } = source.raw;
    return { image: sharp(data, { raw: { width, height, channels } }), width, height };
  }
  const data = source ? Buffer.from(source.bytes.buffer, source.bytes.byteOffset, source.bytes.byteLength) : await readBytes(file);
  if (data.length === 0) throw new HgadImageError(file, 'the file is empty');
  if (isBmp(data)) return openBmp(data, file);
  // The header alone (no limit, so the error can say the size), then the decoder, which enforces the
  // same limit again while decoding.
  const meta = await sharp(data, { failOn: FAIL_ON, autoOrient: true, limitInputPixels: false }).metadata();
  checkDeclaredSize(file, meta.width, meta.height);
  const limit = Math.min(source?.maxPixels ?? MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS);
  const image = sharp(data, { failOn: FAIL_ON, autoOrient: true, limitInputPixels: limit });
  return { image, width: meta.autoOrient.width, height: meta.autoOrient.height };
}

function checkPath(parameter: string, file: unknown): asserts file is string {
  if (typeof file !== 'string' || file === '') throw new HgadArgumentError(parameter, 'a file path', file);
}

/** Decodes an image file (or, with `source`, in-memory bytes or pixels named `path`) to 8-bit RGB of exactly `size`. */
export async function loadImage(path: string, size: ImageSize, source?: ImageSource): Promise<LoadedImage> {
  checkPath('path', path);
  const { width, height } = checkSize('size', size);
  try {
    const opened = await openImage(path, source);
    const { data, info } = await opened.image
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .resize(width, height, { fit: 'fill' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== width || info.height !== height || data.length !== width * height * 3) {
      throw new HgadImageError(path, `sharp returned ${info.width}x${info.height}x${info.channels} instead of ${width}x${height}x3 bytes`);
    }
    return {
      pixels: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width, height, originalWidth: opened.width, originalHeight: opened.height,
    };
  } catch (e) {
    throw decodeError(path, e);
  }
}

/**
 * Decodes a ground-truth mask to `size`, one byte per pixel, 0 or 255: grey conversion, nearest-neighbour
 * resize (no new grey levels at the edges) and a threshold at 128, all inside sharp. A null path gives
 * an all-zero mask (a normal image, or a defect image whose mask is not available).
 */
export async function loadMask(path: string | null, size: ImageSize): Promise<Uint8Array> {
  const { width, height } = checkSize('size', size);
  if (path === null) return new Uint8Array(width * height);
  checkPath('path', path);
  try {
    const { image } = await openImage(path);
    const { data, info } = await image
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('b-w')
      .resize(width, height, { fit: 'fill', kernel: 'nearest' })
      .threshold(128)
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1 || data.length !== width * height) {
      throw new HgadImageError(path, `the mask came out of sharp as ${info.width}x${info.height}x${info.channels} instead of ${width}x${height}x1`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (e) {
    throw decodeError(path, e);
  }
}
