// Small image trees for the data tests, written with sharp (and a hand-written BMP encoder, since
// sharp cannot write BMP) into a fresh temp folder.
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { HgadError } from '../lib/errors';

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `hgad-${prefix}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
}

/** A solid-colour image in the format given by the extension (png, jpg, tif, webp). */
export async function writeImage(file: string, width: number, height: number,
  colour: { r: number; g: number; b: number } = { r: 120, g: 60, b: 30 }): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const ext = path.extname(file).toLowerCase();
  if (ext === '.bmp') return writeBmp24(file, width, height, Buffer.alloc(width * height * 3, 90));
  const base = sharp({ create: { width, height, channels: 3, background: colour } });
  const out = ext === '.png' ? base.png() : ext === '.tif' || ext === '.tiff' ? base.tiff() : ext === '.webp' ? base.webp()
    : base.jpeg();
  await out.toFile(file);
  return file;
}

/** A black mask with a white rectangle [x0, x1) x [y0, y1). */
export async function writeMask(file: string, width: number, height: number,
  rect: { x0: number; y0: number; x1: number; y1: number }): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const px = Buffer.alloc(width * height);
  for (let y = rect.y0; y < rect.y1; y++) px.fill(255, y * width + rect.x0, y * width + rect.x1);
  await sharp(px, { raw: { width, height, channels: 1 } }).png().toFile(file);
  return file;
}

/** Grey raw pixels -> PNG. */
export async function writeGreyPng(file: string, width: number, height: number, grey: Uint8Array): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await sharp(Buffer.from(grey), { raw: { width, height, channels: 1 } }).png().toFile(file);
  return file;
}

function bmpHeader(fileSize: number, offset: number, width: number, height: number, bpp: number,
  compression: number, dibSize: number, colours: number): Buffer {
  const h = Buffer.alloc(14 + dibSize);
  h.write('BM', 0, 'ascii');
  h.writeUInt32LE(fileSize, 2);
  h.writeUInt32LE(offset, 10);
  h.writeUInt32LE(dibSize, 14);
  h.writeInt32LE(width, 18);
  h.writeInt32LE(height, 22);
  h.writeUInt16LE(1, 26);
  h.writeUInt16LE(bpp, 28);
  h.writeUInt32LE(compression, 30);
  h.writeUInt32LE(colours, 46);
  return h;
}

/**
 * An uncompressed 24-bit BMP of `rgb` (top row first). Rows are stored bottom-up (or top-down when
 * topDown), as BGR, padded to 4 bytes: the encoding written out by hand, independent of the decoder.
 */
export async function writeBmp24(file: string, width: number, height: number, rgb: Uint8Array,
  topDown = false): Promise<string> {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const pixels = Buffer.alloc(stride * height, 0xee); // non-zero padding must be ignored
  for (let y = 0; y < height; y++) {
    const row = topDown ? y : height - 1 - y;
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      const d = row * stride + x * 3;
      pixels[d] = rgb[s + 2] as number;
      pixels[d + 1] = rgb[s + 1] as number;
      pixels[d + 2] = rgb[s] as number;
    }
  }
  const header = bmpHeader(54 + pixels.length, 54, width, topDown ? -height : height, 24, 0, 40, 0);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, Buffer.concat([header, pixels]));
  return file;
}

/** An 8-bit BMP with a grey palette (entry i = (i, i, i)), bottom-up. */
export async function writeBmp8Grey(file: string, width: number, height: number, grey: Uint8Array): Promise<string> {
  const stride = Math.ceil(width / 4) * 4;
  const palette = Buffer.alloc(1024);
  for (let i = 0; i < 256; i++) palette.fill(i, 4 * i, 4 * i + 3);
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) pixels.set(grey.subarray(y * width, (y + 1) * width), (height - 1 - y) * stride);
  const offset = 54 + 1024;
  const header = bmpHeader(offset + pixels.length, offset, width, height, 8, 0, 40, 256);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, Buffer.concat([header, palette, pixels]));
  return file;
}

/** A 32-bit BI_RGB BMP (BGRX, X ignored), bottom-up. */
export async function writeBmp32(file: string, width: number, height: number, rgb: Uint8Array): Promise<string> {
  const pixels = Buffer.alloc(width * height * 4, 0);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      const d = ((height - 1 - y) * width + x) * 4;
      pixels[d] = rgb[s + 2] as number;
      pixels[d + 1] = rgb[s + 1] as number;
      pixels[d + 2] = rgb[s] as number;
    }
  }
  const header = bmpHeader(54 + pixels.length, 54, width, height, 32, 0, 40, 0);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, Buffer.concat([header, pixels]));
  return file;
}

/** A 16-bit BMP header with some pixels: a variant the loader refuses. */
export async function writeBmp16(file: string, width: number, height: number): Promise<string> {
  const stride = Math.ceil((width * 2) / 4) * 4;
  const header = bmpHeader(54 + stride * height, 54, width, height, 16, 0, 40, 0);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, Buffer.concat([header, Buffer.alloc(stride * height, 7)]));
  return file;
}

/** The error `fn` rejects or throws with, checked to be an HgadError. */
export async function errorOf(fn: () => unknown): Promise<HgadError> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  if (error === undefined) throw new Error('expected an error, but the call succeeded');
  if (!(error instanceof HgadError)) throw new Error(`expected an HgadError, got ${String(error)}`);
  return error;
}

/** An MVTec AD class: train/good, test/good, and defects with <name>_mask.png masks. */
export async function makeMvtecClass(root: string, name: string, counts: { train: number; good: number;
  defects: Record<string, number> }, ext = '.png', size = 16): Promise<void> {
  const dir = path.join(root, name);
  for (let i = 0; i < counts.train; i++) await writeImage(path.join(dir, 'train', 'good', `${pad(i)}${ext}`), size, size);
  for (let i = 0; i < counts.good; i++) await writeImage(path.join(dir, 'test', 'good', `${pad(i)}${ext}`), size, size);
  for (const [defect, n] of Object.entries(counts.defects)) {
    for (let i = 0; i < n; i++) {
      await writeImage(path.join(dir, 'test', defect, `${pad(i)}${ext}`), size, size);
      await writeMask(path.join(dir, 'ground_truth', defect, `${pad(i)}_mask.png`), size, size, { x0: 2, y0: 2, x1: 6, y1: 6 });
    }
  }
}

export function pad(i: number): string {
  return String(i).padStart(3, '0');
}
