// Fuzz target: images. Seeded mutations of real PNG, JPEG and BMP files (truncations, byte flips,
// chunk / segment / header length fields, huge declared dimensions, inserted and deleted runs) go
// through the decode path (loadImage, loadMask) and, for every fourth case, through scoring with a real
// detector (scoreImages). Contract: decoded pixels of the asked size, a finite score, or a typed error;
// a crash, hang, untyped error or wrong-sized result is a failure.
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

import { loadImage, loadMask } from '../../lib/data/image';
import { HGAD_ERROR_CODES, HgadError } from '../../lib/errors';
import { AnomalyDetector } from '../../lib/pipeline/detector';
import { scoreImages } from '../../lib/score/scorer';
import { writeBmp24, writeBmp32, writeBmp8Grey } from '../data-fixtures';
import { tinyDetector } from '../tiny-detector';
import type { FuzzContext, FuzzTarget } from './harness';
import { HOSTILE_U32, mutateBytes, Rng, setField } from './pipeline-mutations';

interface Seed {
  name: string;
  kind: 'png' | 'jpeg' | 'bmp';
  bytes: Buffer;
}

interface ImageCase {
  what: string;
  ext: string;
  bytes: Buffer;
  mode: 'image' | 'mask' | 'score';
  index: number;
}

let seeds: Seed[] = [];
let detector: AnomalyDetector | null = null;

const SHARED = join(__dirname, '..', '..', '..', 'shared', 'data');
/** Real files from the shared data (MVTec layout) when present, else images the demo generator made. */
const REAL = [
  ['metal_plate/train/good/000.png', 'png'],
  ['magnetic_tile/train/good/exp0_num_743.jpg', 'jpeg'],
  ['magnetic_tile/ground_truth/uneven/exp2_num_352504_mask.png', 'png'],
] as const;

async function prepare(ctx: FuzzContext): Promise<void> {
  const file = join(ctx.workDir, 'tiny.hgad');
  if (!existsSync(file)) await (await tinyDetector(ctx.workDir)).detector.dispose();
  detector = await AnomalyDetector.load(file, { threads: 1 });
  const out: Seed[] = [];
  for (const [rel, kind] of REAL) {
    const path = join(SHARED, rel);
    if (existsSync(path)) out.push({ name: rel, kind, bytes: await readFile(path) });
  }
  const demo = join(ctx.workDir, 'data', 'carpet', 'test', 'good', '000.png');
  const source = out[0]?.bytes ?? (await readFile(demo));
  // Small re-encodings of the real image keep every case fast; the originals stay in the pool.
  const small = sharp(source).resize(48, 40, { fit: 'fill' });
  out.push({ name: 'small.png', kind: 'png', bytes: await small.clone().png().toBuffer() });
  out.push({ name: 'small-interlaced.png', kind: 'png', bytes: await small.clone().png({ progressive: true }).toBuffer() });
  out.push({ name: 'small.jpg', kind: 'jpeg', bytes: await small.clone().jpeg({ quality: 80 }).toBuffer() });
  out.push({ name: 'small-progressive.jpg', kind: 'jpeg', bytes: await small.clone().jpeg({ progressive: true }).toBuffer() });
  const rgb = await small.clone().removeAlpha().raw().toBuffer();
  const grey = await small.clone().greyscale().raw().toBuffer();
  for (const [name, write] of [
    ['small24.bmp', (f: string) => writeBmp24(f, 48, 40, rgb)],
    ['small24-topdown.bmp', (f: string) => writeBmp24(f, 48, 40, rgb, true)],
    ['small32.bmp', (f: string) => writeBmp32(f, 48, 40, rgb)],
    ['small8.bmp', (f: string) => writeBmp8Grey(f, 48, 40, grey)],
  ] as const) {
    const f = join(ctx.workDir, `seed-${process.pid}-${name}`);
    out.push({ name, kind: 'bmp', bytes: await readFile(await write(f)) });
    await rm(f, { force: true });
  }
  seeds = out;
}

/** Offsets of PNG chunk length fields and of IHDR's width and height. */
function pngFields(b: Buffer): number[] {
  const at: number[] = [16, 20];
  for (let p = 8; p + 8 <= b.length && at.length < 40; ) {
    at.push(p);
    const len = b.readUInt32BE(p);
    if (len > b.length) break;
    p += 12 + len;
  }
  return at;
}

/** Offsets of JPEG segment lengths and of the frame header's height and width. */
function jpegFields(b: Buffer): number[] {
  const at: number[] = [];
  for (let p = 2; p + 4 <= b.length && at.length < 40; ) {
    if (b[p] !== 0xff) break;
    const marker = b[p + 1]!;
    if (marker === 0xda) break; // entropy-coded data follows
    at.push(p + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) at.push(p + 5, p + 7);
    p += 2 + b.readUInt16BE(p + 2);
  }
  return at;
}

/** BMP header fields: file size, offset, header size, width, height, planes, bit depth, compression, colours. */
const BMP_FIELDS: [number, 2 | 4][] = [[2, 4], [10, 4], [14, 4], [18, 4], [22, 4], [26, 2], [28, 2], [30, 4], [34, 4], [46, 4]];

function mutateFormat(rng: Rng, seed: Seed): { what: string; data: Buffer } {
  const b = seed.bytes;
  if (seed.kind === 'bmp') {
    const [at, width] = rng.pick(BMP_FIELDS);
    const v = rng.chance(0.2) ? -rng.int(100000) : rng.pick(HOSTILE_U32);
    return { what: `BMP field at ${at} = ${v}`, data: setField(b, at, width, false, v) };
  }
  const fields = seed.kind === 'png' ? pngFields(b) : jpegFields(b);
  const at = rng.pick(fields.length > 0 ? fields : [0]);
  const width = seed.kind === 'png' ? 4 : 2;
  const v = rng.pick(HOSTILE_U32);
  let data = setField(b, at, width, true, v);
  if (seed.kind === 'png' && (at === 16 || at === 20) && data.length >= 33 && rng.chance(0.7)) {
    // A valid CRC, so only the declared size is a lie (what a decompression bomb looks like).
    data.writeUInt32BE(crc32(data.subarray(12, 29)), 29);
  }
  if (rng.chance(0.2)) data = Buffer.concat([data, Buffer.alloc(rng.int(4096), rng.int(256))]);
  return { what: `${seed.kind.toUpperCase()} field at ${at} = ${v}`, data };
}

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

const EXT = { png: '.png', jpeg: '.jpg', bmp: '.bmp' };

export const target: FuzzTarget<ImageCase> = {
  async setup(ctx) {
    await prepare(ctx);
  },

  generate(seed, index) {
    const rng = new Rng(seed, index, 'image');
    // Small seeds most of the time: they make the cases fast; the real files keep their structure.
    const pool = rng.chance(0.8) ? seeds.filter((s) => s.name.startsWith('small')) : seeds;
    const s = rng.pick(pool);
    const edits = rng.chance(0.5) ? 1 : 1 + rng.int(3);
    let data = s.bytes;
    const what: string[] = [];
    for (let i = 0; i < edits; i++) {
      const m = rng.chance(0.4) ? mutateFormat(rng, { ...s, bytes: data }) : mutateBytes(rng, data);
      data = m.data;
      what.push(m.what);
    }
    const mode = index % 4 === 3 ? 'score' : index % 4 === 2 ? 'mask' : 'image';
    // A wrong extension now and then: decoding goes by content, not by name.
    const ext = rng.chance(0.9) ? EXT[s.kind] : rng.pick(['.png', '.jpg', '.bmp', '.tif']);
    return { what: `${s.name} (${mode}): ${what.join('; ')}`, ext, bytes: data, mode, index };
  },

  describe: (c) => c.what.slice(0, 300),

  async run(c, ctx) {
    const file = join(ctx.workDir, `case-${process.pid}${c.ext}`);
    await writeFile(file, c.bytes);
    try {
      if (c.mode === 'image') {
        const img = await loadImage(file, { width: 32, height: 24 });
        if (img.pixels.length !== 32 * 24 * 3) throw new Error(`loadImage returned ${img.pixels.length} bytes`);
      } else if (c.mode === 'mask') {
        const mask = await loadMask(file, { width: 16, height: 16 });
        if (mask.length !== 256 || mask.some((v) => v !== 0 && v !== 255)) throw new Error('loadMask returned a bad mask');
      } else {
        // Both ways scoring reports an image it cannot decode: a rejection, or a result carrying the
        // typed error as data (which must name one of the HgadError codes).
        if (c.index % 8 === 3) {
          for await (const r of scoreImages(detector!, [file], { batchSize: 1, concurrency: 1, onError: 'throw' })) {
            if (!Number.isFinite(r.imageScore)) throw new Error(`scored ${r.imageScore}`);
          }
        } else {
          for await (const r of scoreImages(detector!, [file], { batchSize: 1, concurrency: 1, onError: 'result' })) {
            if (r.error !== null) {
              if (!(HGAD_ERROR_CODES as readonly string[]).includes(r.error.code)) throw new Error(`untyped per-image error ${JSON.stringify(r.error)}`);
              throw new HgadError(r.error.code, r.error.message, r.error.parameter);
            }
            if (!Number.isFinite(r.imageScore)) throw new Error(`scored ${r.imageScore}`);
          }
        }
      }
    } finally {
      await rm(file, { force: true });
    }
  },

  async teardown() {
    await detector?.dispose();
  },
};
