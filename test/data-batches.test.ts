// imageBatches: shapes, order, shuffles, partial batches, masks, errors, and the streaming bounds.
import * as path from 'path';
import sharp from 'sharp';
import { imageBatches, ImageBatch, loadImage, LoaderState, Sample } from '../lib/data';
import { errorOf, removeDir, tempDir, writeGreyPng, writeMask } from './data-fixtures';

let dir: string;
let samples: Sample[];
const N = 11;

/** Image i is solid (i*20, 255-i*20, i) so every batch slot can be traced to its sample. */
const colourOf = (i: number): [number, number, number] => [i * 20, 255 - i * 20, i];

beforeAll(async () => {
  dir = await tempDir('batches');
  samples = [];
  for (let i = 0; i < N; i++) {
    const file = path.join(dir, `img${String(i).padStart(2, '0')}.png`);
    const [r, g, b] = colourOf(i);
    // Odd, varying sizes: every image is resized to the batch size.
    await sharp({ create: { width: 9 + i, height: 13 - (i % 3), channels: 3, background: { r, g, b } } }).png().toFile(file);
    let maskPath: string | null = null;
    if (i % 2 === 1) maskPath = await writeMask(path.join(dir, `img${i}_mask.png`), 32, 32, { x0: 0, y0: 0, x1: 16, y1: 8 });
    samples.push({ path: file, className: 'c', split: 'test', defect: maskPath ? 'd' : 'good', label: maskPath ? 1 : 0, maskPath });
  }
});
afterAll(async () => {
  await removeDir(dir);
});

async function collect(list: Sample[], options: Parameters<typeof imageBatches>[1]): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of imageBatches(list, options)) out.push(b);
  return out;
}

/** The sample index whose colour is in slot b of the batch. */
const slotIndex = (batch: ImageBatch, b: number): number => {
  const at = b * batch.width * batch.height * 3;
  return (batch.pixels[at + 2] as number);
};

test('shapes, order and the last partial batch', async () => {
  const batches = await collect(samples, { batchSize: 4, size: { width: 6, height: 5 } });
  expect(batches.map((b) => b.batch)).toEqual([4, 4, 3]);
  for (const b of batches) {
    expect([b.width, b.height, b.pixels.length, b.masks, b.maskWidth, b.maskHeight]).toEqual([6, 5, b.batch * 90, null, 0, 0]);
  }
  expect(batches.flatMap((b) => b.samples)).toEqual(samples);
  // Every slot holds its own sample's pixels, equal to loadImage's output.
  const last = batches[2] as ImageBatch;
  for (let b = 0; b < 3; b++) {
    const single = await loadImage((last.samples[b] as Sample).path, { width: 6, height: 5 });
    expect(Array.from(last.pixels.subarray(b * 90, (b + 1) * 90))).toEqual(Array.from(single.pixels));
    expect(slotIndex(last, b)).toBe(8 + b);
    expect(Array.from(last.pixels.subarray(b * 90, b * 90 + 3))).toEqual(colourOf(8 + b));
  }
});

test('dropLast and a square size given as a number', async () => {
  const batches = await collect(samples, { batchSize: 4, size: 3, dropLast: true });
  expect(batches.map((b) => [b.batch, b.width, b.height, b.pixels.length])).toEqual([[4, 3, 3, 108], [4, 3, 3, 108]]);
  expect(await collect(samples.slice(0, 3), { batchSize: 4, size: 3, dropLast: true })).toEqual([]);
  expect(await collect([], { batchSize: 4, size: 3 })).toEqual([]);
});

test('shuffleSeed: a deterministic permutation, different for another seed', async () => {
  const order = async (seed: number): Promise<number[]> =>
    (await collect(samples, { batchSize: 3, size: 2, shuffleSeed: seed })).flatMap((b) => b.samples.map((_, i) => slotIndex(b, i)));
  const a = await order(42);
  expect(await order(42)).toEqual(a);
  expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: N }, (_, i) => i));
  expect(a).not.toEqual(Array.from({ length: N }, (_, i) => i));
  expect(await order(43)).not.toEqual(a);
  // The samples listed with each batch match its pixels.
  for (const b of await collect(samples, { batchSize: 3, size: 2, shuffleSeed: 42 })) {
    b.samples.forEach((s, i) => expect(samples.indexOf(s)).toBe(slotIndex(b, i)));
  }
});

test('masks: binary, at their own size, zeros where maskPath is null', async () => {
  const batches = await collect(samples, { batchSize: 4, size: 8, maskSize: { width: 8, height: 4 } });
  for (const batch of batches) {
    expect([batch.maskWidth, batch.maskHeight, batch.masks?.length]).toEqual([8, 4, batch.batch * 32]);
    const masks = batch.masks as Uint8Array;
    batch.samples.forEach((s, b) => {
      const m = masks.subarray(b * 32, (b + 1) * 32);
      // 32x32 rectangle [0, 16) x [0, 8) -> 8x4: [0, 4) x [0, 1).
      const expected = Array.from({ length: 32 }, (_, p) => (s.maskPath !== null && p % 8 < 4 && p < 8 ? 255 : 0));
      expect(Array.from(m)).toEqual(expected);
    });
  }
});

test('grayscale images arrive as R=G=B', async () => {
  const grey = Uint8Array.from({ length: 20 }, (_, i) => i * 12);
  const file = await writeGreyPng(path.join(dir, 'grey.png'), 5, 4, grey);
  const [batch] = await collect([{ ...(samples[0] as Sample), path: file }], { batchSize: 2, size: { width: 5, height: 4 } });
  expect(Array.from((batch as ImageBatch).pixels)).toEqual(Array.from(grey).flatMap((v) => [v, v, v]));
});

test('a corrupt image rejects the batch with a typed error, later batches are not needed', async () => {
  const bad = path.join(dir, 'bad.png');
  await require('fs').promises.writeFile(bad, Buffer.from('not a png at all'));
  const list = [...samples.slice(0, 5), { ...(samples[0] as Sample), path: bad }, ...samples.slice(5)];
  const seen: number[] = [];
  const e = await errorOf(async () => {
    for await (const b of imageBatches(list, { batchSize: 2, size: 4, concurrency: 3 })) seen.push(b.batch);
  });
  expect(seen).toEqual([2, 2]);
  expect(e.message).toContain(bad);
});

test('bad options are argument errors', async () => {
  const first = (o: object): Promise<unknown> => imageBatches(samples, o as Parameters<typeof imageBatches>[1]).next();
  expect((await errorOf(() => first({ batchSize: 0, size: 4 }))).parameter).toBe('options.batchSize');
  expect((await errorOf(() => first({ batchSize: 2, size: -1 }))).parameter).toBe('options.size');
  expect((await errorOf(() => first({ batchSize: 2, size: 4, maskSize: { width: 2 } }))).parameter).toBe('options.maskSize.height');
  expect((await errorOf(() => first({ batchSize: 2, size: 4, concurrency: 0 }))).parameter).toBe('options.concurrency');
  expect((await errorOf(() => first({ batchSize: 2, size: 4, shuffleSeed: 0.5 }))).parameter).toBe('options.shuffleSeed');
  expect((await errorOf(() => imageBatches([{ path: '' }] as Sample[], { batchSize: 2, size: 4 }).next())).parameter).toBe('samples[0]');
});

describe('streaming', () => {
  let many: Sample[];
  beforeAll(async () => {
    const sub = path.join(dir, 'many');
    await require('fs').promises.mkdir(sub);
    many = [];
    for (let i = 0; i < 400; i++) {
      const file = path.join(sub, `${String(i).padStart(3, '0')}.png`);
      await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: i % 256, g: i >> 8, b: 7 } } }).png().toFile(file);
      many.push({ path: file, className: 'c', split: 'train', defect: 'good', label: 0, maskPath: null });
    }
  }, 120000);

  test('400 images: decodes bounded by concurrency, buffered images by 2 batches, all in order', async () => {
    const batchSize = 8;
    const concurrency = 5;
    const states: LoaderState[] = [];
    let count = 0;
    const idle = async (): Promise<LoaderState> => {
      for (let t = 0; t < 2000; t++) {
        const last = states[states.length - 1] as LoaderState;
        if (last.inFlight === 0) return last;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      throw new Error('the loader did not go idle');
    };
    const bufferedWhileConsuming: number[] = [];
    for await (const b of imageBatches(many, { batchSize, size: 4, concurrency, monitor: (s) => states.push(s) })) {
      b.samples.forEach((s, i) => expect(s).toBe(many[count + i]));
      count += b.batch;
      // A slow consumer: the loader runs ahead until the bound stops it, never further.
      bufferedWhileConsuming.push((await idle()).buffered);
    }
    expect(count).toBe(400);
    expect(states.length).toBe(850); // one start and one end per image, one hand-out per batch
    expect(Math.max(...states.map((s) => s.inFlight))).toBe(concurrency);
    expect(Math.max(...states.map((s) => s.buffered))).toBe(2 * batchSize);
    // While the consumer works on a batch, exactly the next two batches (or what is left) are decoded.
    expect(bufferedWhileConsuming).toEqual(Array.from({ length: 50 }, (_, k) => Math.min(2 * batchSize, 400 - 8 * (k + 1))));
  });

  test('stopping early leaves nothing running', async () => {
    const states: LoaderState[] = [];
    for await (const b of imageBatches(many, { batchSize: 4, size: 4, concurrency: 3, monitor: (s) => states.push(s) })) {
      expect(b.batch).toBe(4);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((states[states.length - 1] as LoaderState).inFlight).toBe(0);
    expect(states.length).toBeLessThanOrEqual(2 * (4 + 8) + 1);
  });
});
