// The real data in ../shared/data (README there): sample counts, masks, and real images through the
// loader. Also logs the decode throughput at 256x256.
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { imageBatches, openDataset, Dataset, Sample } from '../lib/data';

const DATA = path.resolve(__dirname, '../../shared/data');
let ds: Dataset;

beforeAll(async () => {
  ds = await openDataset({ root: DATA });
});

const count = (list: Sample[], pred: (s: Sample) => boolean): number => list.filter(pred).length;

test('layout, classes and the counts of the README table', () => {
  expect(ds.layout).toBe('mvtec');
  expect(ds.classes).toEqual(['magnetic_tile', 'metal_plate']);
  const table: Record<string, [number, number, number]> = { magnetic_tile: [714, 238, 388], metal_plate: [54, 26, 71] };
  for (const [c, [train, good, bad]] of Object.entries(table)) {
    const test = ds.samples('test', c);
    expect([ds.samples('train', c).length, count(test, (s) => s.label === 0), count(test, (s) => s.label === 1)]).toEqual([train, good, bad]);
  }
  const tile = ds.samples('test', 'magnetic_tile');
  const perDefect = Object.fromEntries(['blowhole', 'break', 'crack', 'fray', 'uneven'].map((d) => [d, count(tile, (s) => s.defect === d)]));
  expect(perDefect).toEqual({ blowhole: 115, break: 85, crack: 57, fray: 32, uneven: 99 });
});

test('every defect image has a mask file, and normal images none', async () => {
  const test = ds.samples('test');
  for (const s of test) {
    if (s.label === 0) {
      expect(s.maskPath).toBeNull();
      continue;
    }
    expect(s.maskPath).toBe(path.join(DATA, s.className, 'ground_truth', s.defect, `${path.basename(s.path, path.extname(s.path))}_mask.png`));
    expect((await fs.stat(s.maskPath as string)).isFile()).toBe(true);
  }
});

test('one batch of real images of each class loads with the right shapes', async () => {
  for (const c of ds.classes) {
    const defects = ds.samples('test', c).filter((s) => s.label === 1).slice(0, 3);
    const list = [...ds.samples('train', c).slice(0, 3), ...defects];
    const it = imageBatches(list, { batchSize: 6, size: 224, maskSize: 56 });
    const { value: batch } = await it.next();
    expect(batch).toBeDefined();
    if (!batch) return;
    expect([batch.batch, batch.width, batch.height, batch.pixels.length]).toEqual([6, 224, 224, 6 * 224 * 224 * 3]);
    expect([batch.maskWidth, batch.maskHeight, batch.masks?.length]).toEqual([56, 56, 6 * 56 * 56]);
    const masks = batch.masks as Uint8Array;
    for (let b = 0; b < 6; b++) {
      const m = masks.subarray(b * 56 * 56, (b + 1) * 56 * 56);
      const on = m.reduce((n, v) => n + (v === 255 ? 1 : 0), 0);
      expect(on + m.reduce((n, v) => n + (v === 0 ? 1 : 0), 0)).toBe(56 * 56); // only 0 and 255
      // Normal images have empty masks; the defect masks are not empty (the README dropped empty ones).
      if (b < 3) expect(on).toBe(0);
      else expect(on).toBeGreaterThan(0);
    }
    if (c === 'magnetic_tile') {
      // Grayscale JPEGs: R = G = B everywhere (checked on one image row).
      const row = batch.pixels.subarray(100 * 224 * 3, 101 * 224 * 3);
      for (let x = 0; x < 224; x++) expect([row[3 * x], row[3 * x + 1]]).toEqual([row[3 * x + 2], row[3 * x + 2]]);
    }
    expect((await it.next()).done).toBe(true);
  }
});

test('decode throughput at 256x256 (magnetic_tile, default concurrency)', async () => {
  const list = [...ds.samples('train', 'magnetic_tile'), ...ds.samples('test', 'magnetic_tile')];
  const start = process.hrtime.bigint();
  let n = 0;
  for await (const b of imageBatches(list, { batchSize: 16, size: 256 })) n += b.batch;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  expect(n).toBe(1340);
  // eslint-disable-next-line no-console
  console.log(`decode throughput: ${n} magnetic_tile images at 256x256 in ${seconds.toFixed(2)} s = ` +
    `${(n / seconds).toFixed(0)} images/s (concurrency ${2 * os.availableParallelism()}, ${os.availableParallelism()} cores, ` +
    `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'})`);
});
