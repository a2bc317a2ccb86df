// The one error type of image decoding: names the file and says in words what is wrong with it.
// sharp/libvips messages are often fragments ("Unknown error", "Input buffer has corrupt header:" with
// the detail on later lines, the same line repeated); they are turned into one readable sentence here.
import { HgadError } from '../errors';
import { MAX_SIDE } from './size';

/**
 * Largest image decoded (pixels, after the header is read and before any pixel is): 64 megapixels,
 * far above every anomaly-detection dataset (MVTec AD's largest is 1024 x 1024, VisA's ~1.5k x 1k) yet
 * small enough that several concurrent decodes fit in memory. A decompression bomb (a small PNG that
 * declares 16k x 16k) is refused at its header.
 */
export const MAX_IMAGE_PIXELS = 1 << 26;

export class HgadImageError extends HgadError {
  /** The image file. */
  readonly file: string;
  /** What is wrong, in words (the message without the file name). */
  readonly problem: string;

  constructor(file: string, problem: string) {
    super('INVALID_ARGUMENT', `Cannot decode ${file}: ${problem}`, 'path');
    this.file = file;
    this.problem = problem;
  }
}

const DAMAGED = 'the file is damaged or cut off';

/** Fixed libvips/sharp phrases that say too little on their own. */
const KNOWN: [RegExp, string][] = [
  [/^unknown error$/i, `the decoder failed without saying why: ${DAMAGED}`],
  [/^input buffer is empty$/i, 'the file is empty'],
  [/^input buffer contains unsupported image format$/i,
    'not an image in a supported format (PNG, JPEG, BMP, TIFF, WebP, GIF, AVIF) or its header is damaged (unsupported image format)'],
  [/^input image exceeds pixel limit$/i, 'the image has more pixels than hgad decodes (it exceeds the pixel limit)'],
  [/^vipspng: libpng read error$/i, `PNG data that libpng cannot read: ${DAMAGED}`],
];

/** libvips loader prefixes -> the format they speak for. */
const LOADERS: [RegExp, string][] = [
  [/^vipsjpeg$/i, 'JPEG'], [/^vipspng$|^pngload/i, 'PNG'], [/^tiff2vips$|^tiffload/i, 'TIFF'], [/^webp/i, 'WebP'],
  [/^gif/i, 'GIF'], [/^heif/i, 'HEIF/AVIF'], [/^vips/i, 'libvips'],
];

/** sharp's message -> one sentence: deduplicated lines, no dangling colon, never empty. */
export function describeDecodeFailure(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  let header = false;
  const details: string[] = [];
  for (let line of lines) {
    // "Input buffer has corrupt header: VipsJpeg: Bogus marker length", or the bare prefix.
    const h = /^input (?:buffer|file) has corrupt header:?\s*(.*)$/i.exec(line);
    if (h) {
      header = true;
      line = h[1]!;
      if (line.length === 0) continue;
    }
    const known = KNOWN.find(([re]) => re.test(line));
    if (known) {
      details.push(known[1]);
      continue;
    }
    const l = /^([A-Za-z0-9_]+)\s*:\s*(.*)$/.exec(line);
    const format = l ? LOADERS.find(([re]) => re.test(l[1]!))?.[1] : undefined;
    const text = (format ? l![2]! : line).replace(/[:\s]+$/, '');
    if (/[a-z]{3}/i.test(text)) details.push(format ? `${format}: ${text}` : text);
  }
  let text = [...new Set(details)].slice(0, 3).join('; ');
  if (text.length > 400) text = `${text.slice(0, 397)}...`;
  if (header) return `the header is damaged: ${text.length > 0 ? text : DAMAGED}`;
  return text.length > 0 ? text : DAMAGED;
}

/** Refuses a declared size before any pixel is decoded. */
export function checkDeclaredSize(file: string, width: number | undefined, height: number | undefined): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width! < 1 || height! < 1) {
    throw new HgadImageError(file, `the header declares no valid size (${width} x ${height})`);
  }
  if (width! > MAX_SIDE || height! > MAX_SIDE || width! * height! > MAX_IMAGE_PIXELS) {
    throw new HgadImageError(file, `the header declares ${width} x ${height} pixels, more than hgad decodes ` +
      `(at most ${MAX_SIDE} a side and ${MAX_IMAGE_PIXELS} in all)`);
  }
}
