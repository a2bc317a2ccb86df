// Hostile and damaged images: BMP headers are validated in full (a pixel offset inside the headers
// would score header bytes), every decode error is an HgadImageError naming the file and saying in
// words what is wrong, and huge declared sizes or non-files are refused before any pixel is decoded.
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';

import { HgadImageError, MAX_IMAGE_PIXELS } from '../lib/data/decode-error';
import { loadImage, loadMask } from '../lib/data/image';
import { HgadError } from '../lib/errors';
import { errorOf, removeDir, tempDir, writeBmp24, writeBmp32 } from './data-fixtures';

let dir: string;
let bmp: Buffer;

beforeAll(async () => {
  dir = await tempDir('image-hardening');
  const rgb = Buffer.alloc(6 * 4 * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 37) & 0xff;
  bmp = await fs.readFile(await writeBmp24(path.join(dir, 'good.bmp'), 6, 4, rgb));
});

afterAll(() => removeDir(dir));

async function bmpError(name: string, edit: (b: Buffer) => Buffer | void): Promise<HgadError> {
  const b = Buffer.from(bmp);
  const file = path.join(dir, name);
  await fs.writeFile(file, edit(b) ?? b);
  const e = await errorOf(() => loadImage(file, { width: 4, height: 4 }));
  expect(e).toBeInstanceOf(HgadImageError);
  expect(e.message).toContain(file);
  return e;
}

describe('BMP headers are validated in full', () => {
  test('a pixel offset of 0, or inside the headers, is refused instead of scoring header bytes', async () => {
    for (const offset of [0, 14, 53]) {
      const e = await bmpError(`offset-${offset}.bmp`, (b) => void b.writeUInt32LE(offset, 10));
      expect(e.message).toMatch(new RegExp(`pixel data offset ${offset} is not between the end of the headers \\(54\\)`));
    }
  });

  test('an offset past the end of the file', async () => {
    const e = await bmpError('offset-far.bmp', (b) => void b.writeUInt32LE(0xfffffff0, 10));
    expect(e.message).toMatch(/pixel data offset 4294967280/);
  });

  test('header size, planes, bit depth and compression must be BMP values', async () => {
    expect((await bmpError('dib.bmp', (b) => void b.writeUInt32LE(41, 14))).message).toMatch(/info header size 41 is not a BMP header size/);
    expect((await bmpError('dib-huge.bmp', (b) => void b.writeUInt32LE(124, 14))).message).toMatch(/124-byte info header is cut off/);
    expect((await bmpError('planes.bmp', (b) => void b.writeUInt16LE(0, 26))).message).toMatch(/0 colour planes/);
    expect((await bmpError('bpp.bmp', (b) => void b.writeUInt16LE(7, 28))).message).toMatch(/bit depth 7 is not a BMP bit depth/);
    expect((await bmpError('comp.bmp', (b) => void b.writeUInt32LE(9, 30))).message).toMatch(/compression 9 is not a BMP compression/);
    expect((await bmpError('rle.bmp', (b) => { b.writeUInt16LE(8, 28); b.writeUInt32LE(1, 30); })).message)
      .toMatch(/8-bit RLE8-compressed BMP images are not supported/);
  });

  test('bit-field masks after a 40-byte header must not overlap the pixels', async () => {
    const w = 2, h = 2;
    const f = await writeBmp32(path.join(dir, 'bf.bmp'), w, h, Buffer.alloc(w * h * 3, 50));
    const b = await fs.readFile(f);
    // BI_BITFIELDS with the standard masks right after the header, pixels claimed to start at 54.
    const withMasks = Buffer.concat([b.subarray(0, 54), Buffer.alloc(12), b.subarray(54)]);
    withMasks.writeUInt32LE(3, 30);
    withMasks.writeUInt32LE(0xff0000, 54);
    withMasks.writeUInt32LE(0xff00, 58);
    withMasks.writeUInt32LE(0xff, 62);
    const good = path.join(dir, 'bf-good.bmp');
    withMasks.writeUInt32LE(66, 10);
    await fs.writeFile(good, withMasks);
    expect(Array.from((await loadImage(good, { width: w, height: h })).pixels)).toEqual(new Array(w * h * 3).fill(50));
    withMasks.writeUInt32LE(54, 10);
    const bad = path.join(dir, 'bf-bad.bmp');
    await fs.writeFile(bad, withMasks);
    expect((await errorOf(() => loadImage(bad, { width: w, height: h }))).message).toMatch(/end of the headers \(66\)/);
  });

  test('a declared size beyond the decode limit is refused from the header', async () => {
    const e = await bmpError('huge.bmp', (b) => { b.writeInt32LE(16000, 18); b.writeInt32LE(16000, 22); });
    expect(e.message).toMatch(/declares 16000 x 16000 pixels, more than hgad decodes/);
  });
});

/** A PNG with its IHDR width and height replaced (CRC recomputed, so only the size is a lie). */
function withPngSize(png: Buffer, width: number, height: number): Buffer {
  const b = Buffer.from(png);
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  return b;
}

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('hostile sizes are bounded', () => {
  test('a PNG declaring 12000 x 12000 (a decompression bomb) is refused before decoding', async () => {
    expect(12000 * 12000).toBeGreaterThan(MAX_IMAGE_PIXELS);
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
    const file = path.join(dir, 'bomb.png');
    await fs.writeFile(file, withPngSize(png, 12000, 12000));
    for (const load of [() => loadImage(file, { width: 8, height: 8 }), () => loadMask(file, { width: 8, height: 8 })]) {
      const e = await errorOf(load);
      expect(e).toBeInstanceOf(HgadImageError);
      expect(e.message).toContain(`Cannot decode ${file}: the header declares 12000 x 12000 pixels`);
    }
  });

  test('a real 9000 x 8000 PNG (a few hundred kB) is refused at its header', async () => {
    const file = path.join(dir, 'big.png');
    await sharp({ create: { width: 9000, height: 8000, channels: 3, background: '#000' } }).greyscale().png({ compressionLevel: 9 }).toFile(file);
    expect((await fs.stat(file)).size).toBeLessThan(1 << 20);
    const e = await errorOf(() => loadImage(file, { width: 8, height: 8 }));
    expect(e.message).toMatch(/declares 9000 x 8000 pixels/);
  }, 60000);

  test('a device, a folder or an empty file is refused without reading', async () => {
    let e = await errorOf(() => loadImage('/dev/zero', { width: 8, height: 8 }));
    expect(e).toBeInstanceOf(HgadImageError);
    expect(e.message).toBe('Cannot decode /dev/zero: not a regular file (a folder, device or pipe)');
    e = await errorOf(() => loadImage(dir, { width: 8, height: 8 }));
    expect(e.message).toMatch(/not a regular file/);
    const empty = path.join(dir, 'empty.png');
    await fs.writeFile(empty, '');
    e = await errorOf(() => loadImage(empty, { width: 8, height: 8 }));
    expect(e.message).toBe(`Cannot decode ${empty}: the file is empty`);
  });
});

describe('every decode error says in words what is wrong', () => {
  test('a PNG whose size bytes are damaged (sharp: "Unknown error") and truncated headers (sharp: a bare colon)', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#806040' } }).png().toBuffer();
    const damaged: Buffer[] = [];
    for (const [at, v] of [[17, 1], [18, 255], [21, 1]] as const) {
      const b = Buffer.from(png);
      b[at] = v;
      damaged.push(b);
    }
    for (let n = 8; n < 62; n += 7) damaged.push(png.subarray(0, n));
    for (const [i, bytes] of damaged.entries()) {
      const file = path.join(dir, `damaged-${i}.png`);
      await fs.writeFile(file, bytes);
      const e = await errorOf(() => loadImage(file, { width: 8, height: 8 }));
      expect(e).toBeInstanceOf(HgadImageError);
      expect((e as HgadImageError).file).toBe(file);
      expect(e.message).not.toMatch(/Unknown error/);
      expect(e.message).not.toMatch(/[:\s]$/);
      expect((e as HgadImageError).problem).toMatch(/[a-z]{4,} [a-z]{2,}/);
    }
  });

  test('a repeated multi-line libjpeg message becomes one line', async () => {
    const jpg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#806040' } }).jpeg().toBuffer();
    const file = path.join(dir, 'cut.jpg');
    await fs.writeFile(file, jpg.subarray(0, 100));
    const e = await errorOf(() => loadImage(file, { width: 8, height: 8 }));
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(/damaged|premature end/);
  });
});
