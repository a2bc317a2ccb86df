// Image and mask decoding: every input variant comes out as 8-bit RGB of the requested size, or as a
// typed error naming the file.
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { loadImage, loadMask } from '../lib/data';
import {
  errorOf, removeDir, tempDir, writeBmp16, writeBmp24, writeBmp32, writeBmp8Grey, writeGreyPng, writeMask,
} from './data-fixtures';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('image');
});
afterAll(async () => {
  await removeDir(dir);
});

/** A deterministic pattern of `n` bytes. */
const pattern = (n: number, mul = 37): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * mul + 11) % 256);

describe('loadImage', () => {
  test('RGB PNG at its own size comes back byte for byte', async () => {
    const rgb = pattern(7 * 5 * 3);
    const file = path.join(dir, 'rgb.png');
    await sharp(Buffer.from(rgb), { raw: { width: 7, height: 5, channels: 3 } }).png().toFile(file);
    const img = await loadImage(file, { width: 7, height: 5 });
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([7, 5, 7, 5]);
    expect(img.pixels).toBeInstanceOf(Uint8Array);
    expect(Array.from(img.pixels)).toEqual(Array.from(rgb));
  });

  test('grayscale becomes R=G=B with the grey values', async () => {
    const grey = pattern(6 * 4);
    const file = await writeGreyPng(path.join(dir, 'grey.png'), 6, 4, grey);
    const img = await loadImage(file, { width: 6, height: 4 });
    expect(Array.from(img.pixels)).toEqual(Array.from(grey).flatMap((v) => [v, v, v]));
  });

  test('16-bit PNG is scaled to 8 bits', async () => {
    const values = Uint16Array.from([0, 257, 65535, 128 * 257, 1000, 40000]);
    const file = path.join(dir, 'grey16.png');
    // A Uint16Array input tells sharp the raw pixels are 16-bit.
    await sharp(values, { raw: { width: 3, height: 2, channels: 1 } })
      .toColourspace('grey16').png().toFile(file);
    expect((await sharp(file).metadata()).depth).toBe('ushort');
    const img = await loadImage(file, { width: 3, height: 2 });
    const expected = Array.from(values).map((v) => Math.round(v / 257));
    const got = Array.from(img.pixels).filter((_, i) => i % 3 === 0);
    got.forEach((v, i) => expect(Math.abs(v - (expected[i] as number))).toBeLessThanOrEqual(1));
    expect(img.pixels[3]).toBe(img.pixels[4]);
  });

  test('RGBA is flattened onto black', async () => {
    const rgba = Buffer.from([200, 100, 50, 255, 200, 100, 50, 0, 200, 100, 50, 128, 10, 20, 30, 255]);
    const file = path.join(dir, 'rgba.png');
    await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toFile(file);
    const img = await loadImage(file, { width: 2, height: 2 });
    const expected = [200, 100, 50, 0, 0, 0, 100, 50, 25, 10, 20, 30];
    Array.from(img.pixels).forEach((v, i) => expect(Math.abs(v - (expected[i] as number))).toBeLessThanOrEqual(1));
  });

  test('grey + alpha is flattened onto black and expanded to RGB', async () => {
    const file = path.join(dir, 'la.png');
    await sharp(Buffer.from([200, 255, 200, 0]), { raw: { width: 2, height: 1, channels: 2 } })
      .toColourspace('b-w').png().toFile(file);
    const meta = await sharp(file).metadata();
    expect([meta.channels, meta.hasAlpha]).toEqual([2, true]);
    const img = await loadImage(file, { width: 2, height: 1 });
    expect(Array.from(img.pixels)).toEqual([200, 200, 200, 0, 0, 0]);
  });

  test('odd sizes are resized without cropping; halves keep their colours', async () => {
    // Left 18 columns red, right 19 blue: after a squash to 8x8 the left 4 columns are red-ish.
    const w = 37;
    const h = 53;
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < 18 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
    const file = path.join(dir, 'odd.PNG');
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
    const img = await loadImage(file, { width: 8, height: 8 });
    expect([img.width, img.height, img.originalWidth, img.originalHeight, img.pixels.length]).toEqual([8, 8, 37, 53, 192]);
    for (let y = 0; y < 8; y++) {
      expect(img.pixels[(y * 8 + 1) * 3]).toBeGreaterThan(200); // column 1 red
      expect(img.pixels[(y * 8 + 6) * 3 + 2]).toBeGreaterThan(200); // column 6 blue
    }
    const wide = await loadImage(file, { width: 20, height: 10 });
    expect([wide.width, wide.height, wide.pixels.length]).toEqual([20, 10, 600]);
  });

  test('EXIF orientation is applied', async () => {
    // Stored 40x20, top half red, bottom half blue, orientation 6 (display rotated 90 degrees clockwise):
    // displayed 20x40 with the red (top) half on the right.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(y < 10 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    const file = path.join(dir, 'rotated.jpg');
    await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toFile(file);
    expect((await sharp(file).metadata()).orientation).toBe(6);
    const img = await loadImage(file, { width: 20, height: 40 });
    expect([img.originalWidth, img.originalHeight]).toEqual([20, 40]);
    const px = (x: number, y: number): number[] => Array.from(img.pixels.subarray((y * 20 + x) * 3, (y * 20 + x) * 3 + 3));
    expect(px(17, 20)[0]).toBeGreaterThan(200);
    expect(px(17, 20)[2]).toBeLessThan(60);
    expect(px(2, 20)[2]).toBeGreaterThan(200);
    expect(px(2, 20)[0]).toBeLessThan(60);
  });

  test('CMYK JPEG is converted to sRGB', async () => {
    const file = path.join(dir, 'cmyk.jpg');
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 220, g: 30, b: 30 } } })
      .toColourspace('cmyk').jpeg({ quality: 100 }).toFile(file);
    expect((await sharp(file).metadata()).space).toBe('cmyk');
    const img = await loadImage(file, { width: 4, height: 4 });
    const [r, g, b] = Array.from(img.pixels.subarray(0, 3)) as [number, number, number];
    expect(r).toBeGreaterThan(150);
    expect(g).toBeLessThan(90);
    expect(b).toBeLessThan(90);
  });

  test('TIFF and WebP decode', async () => {
    for (const ext of ['tif', 'webp']) {
      const file = path.join(dir, `solid.${ext}`);
      await sharp({ create: { width: 5, height: 3, channels: 3, background: { r: 10, g: 200, b: 90 } } })
        .toFormat(ext === 'tif' ? 'tiff' : 'webp', { lossless: true }).toFile(file);
      const img = await loadImage(file, { width: 5, height: 3 });
      expect(Array.from(img.pixels.subarray(0, 3))).toEqual([10, 200, 90]);
    }
  });

  describe('BMP (decoded from its header by hand, pixels by sharp)', () => {
    const w = 5; // 15 bytes a row: 1 byte of padding
    const h = 3;
    const rgb = pattern(w * h * 3, 53);

    test('24-bit bottom-up and top-down, with row padding', async () => {
      for (const topDown of [false, true]) {
        const file = await writeBmp24(path.join(dir, `bmp24-${topDown}.bmp`), w, h, rgb, topDown);
        const img = await loadImage(file, { width: w, height: h });
        expect([img.originalWidth, img.originalHeight]).toEqual([w, h]);
        expect(Array.from(img.pixels)).toEqual(Array.from(rgb));
      }
    });

    test('32-bit BGRX and 8-bit grey palette; uppercase extension', async () => {
      const f32 = await writeBmp32(path.join(dir, 'bmp32.BMP'), w, h, rgb);
      expect(Array.from((await loadImage(f32, { width: w, height: h })).pixels)).toEqual(Array.from(rgb));
      const grey = pattern(w * h, 29);
      const f8 = await writeBmp8Grey(path.join(dir, 'bmp8.bmp'), w, h, grey);
      expect(Array.from((await loadImage(f8, { width: w, height: h })).pixels)).toEqual(Array.from(grey).flatMap((v) => [v, v, v]));
    });

    test('unsupported and truncated BMPs are typed errors', async () => {
      const f16 = await writeBmp16(path.join(dir, 'bmp16.bmp'), w, h);
      let e = await errorOf(() => loadImage(f16, { width: 4, height: 4 }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(f16);
      expect(e.message).toContain('16-bit BMP images are not supported');
      const full = await fs.readFile(await writeBmp24(path.join(dir, 'whole.bmp'), w, h, rgb));
      const cut = path.join(dir, 'cut.bmp');
      await fs.writeFile(cut, full.subarray(0, full.length - 10));
      e = await errorOf(() => loadImage(cut, { width: 4, height: 4 }));
      expect(e.message).toContain(cut);
      expect(e.message).toContain('truncated');
    });
  });

  test('corrupt, non-image and missing files are typed errors naming the file', async () => {
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png({ compressionLevel: 0 }).toBuffer();
    const truncated = path.join(dir, 'truncated.png');
    await fs.writeFile(truncated, png.subarray(0, Math.floor(png.length / 2)));
    let e = await errorOf(() => loadImage(truncated, { width: 8, height: 8 }));
    expect([e.code, e.parameter]).toEqual(['INVALID_ARGUMENT', 'path']);
    expect(e.message).toContain(`Cannot decode ${truncated}: `);
    expect(e.message).toMatch(/png/i);

    const text = path.join(dir, 'text.jpg');
    await fs.writeFile(text, 'this is not an image');
    e = await errorOf(() => loadImage(text, { width: 8, height: 8 }));
    expect(e.message).toContain(`Cannot decode ${text}: `);
    expect(e.message).toContain('unsupported image format');

    const missing = path.join(dir, 'missing.png');
    e = await errorOf(() => loadImage(missing, { width: 8, height: 8 }));
    expect(e.code).toBe('IO');
    expect(e.message).toContain(missing);
  });

  test('bad sizes are argument errors', async () => {
    const file = await writeGreyPng(path.join(dir, 'g.png'), 2, 2, new Uint8Array(4));
    expect((await errorOf(() => loadImage(file, { width: 0, height: 4 }))).parameter).toBe('size.width');
    expect((await errorOf(() => loadImage(file, { width: 4, height: 2.5 }))).parameter).toBe('size.height');
    expect((await errorOf(() => loadImage(file, null as unknown as { width: number; height: number }))).parameter).toBe('size');
    expect((await errorOf(() => loadImage(42 as unknown as string, { width: 4, height: 4 }))).parameter).toBe('path');
  });
});

describe('loadMask', () => {
  test('a rectangle lands where expected after downscaling, values only 0 and 255', async () => {
    // 64x64 with the rectangle [16, 40) x [8, 24): at 16x16 it covers [4, 10) x [2, 6).
    const file = await writeMask(path.join(dir, 'mask.png'), 64, 64, { x0: 16, y0: 8, x1: 40, y1: 24 });
    const m = await loadMask(file, { width: 16, height: 16 });
    expect(m).toHaveLength(256);
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        expect([x, y, m[y * 16 + x]]).toEqual([x, y, x >= 4 && x < 10 && y >= 2 && y < 6 ? 255 : 0]);
      }
    }
  });

  test('upscaling with a non-square size stays binary and aligned', async () => {
    // 8x4 with the rectangle [2, 4) x [1, 3): at 16x12 (x2, x3) it covers [4, 8) x [3, 9).
    const file = await writeMask(path.join(dir, 'small-mask.png'), 8, 4, { x0: 2, y0: 1, x1: 4, y1: 3 });
    const m = await loadMask(file, { width: 16, height: 12 });
    for (let y = 0; y < 12; y++) {
      for (let x = 0; x < 16; x++) {
        expect([x, y, m[y * 16 + x]]).toEqual([x, y, x >= 4 && x < 8 && y >= 3 && y < 9 ? 255 : 0]);
      }
    }
  });

  test('threshold at 128; RGB and 16-bit masks; null gives zeros', async () => {
    const grey = Uint8Array.from([0, 1, 127, 128, 200, 255]);
    const g = await writeGreyPng(path.join(dir, 'levels.png'), 6, 1, grey);
    expect(Array.from(await loadMask(g, { width: 6, height: 1 }))).toEqual([0, 0, 0, 255, 255, 255]);

    const rgb = path.join(dir, 'mask-rgb.png');
    await sharp(Buffer.from([255, 255, 255, 0, 0, 0]), { raw: { width: 2, height: 1, channels: 3 } }).png().toFile(rgb);
    expect(Array.from(await loadMask(rgb, { width: 2, height: 1 }))).toEqual([255, 0]);

    const m16 = path.join(dir, 'mask16.png');
    await sharp(Uint16Array.from([0, 65535, 65535, 0]), { raw: { width: 4, height: 1, channels: 1 } })
      .toColourspace('grey16').png().toFile(m16);
    expect(Array.from(await loadMask(m16, { width: 4, height: 1 }))).toEqual([0, 255, 255, 0]);

    expect(Array.from(await loadMask(null, { width: 3, height: 2 }))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('a corrupt mask is a typed error', async () => {
    const bad = path.join(dir, 'bad_mask.png');
    await fs.writeFile(bad, Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    const e = await errorOf(() => loadMask(bad, { width: 4, height: 4 }));
    expect(e.message).toContain(bad);
  });
});
