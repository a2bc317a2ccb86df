// The nearest-neighbour reference's wrapper (lib/eval/nearest.ts): typed errors for bad arguments and
// small cases worked by hand for the 3x3 averaging, the nearest distances (one bank and the union of
// two) and the distance maps; the bf16 search against a double-precision loop over bf16-rounded inputs.
import { mulberry32 } from '../lib/data/random';
import { HgadArgumentError, HgadNonFiniteError } from '../lib/errors';
import { distanceMaps, halfResolution, localAverage, nearestDistances } from '../lib/eval/nearest';
import { cpuPrecision } from '../lib/precision';

const close = (got: Float32Array, want: number[]): void => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 5));
};

async function rejects(p: Promise<unknown>, type: typeof HgadArgumentError | typeof HgadNonFiniteError, parameter: string): Promise<void> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(type);
  expect((e as HgadArgumentError).parameter).toBe(parameter);
}

describe('localAverage', () => {
  test('is the 3x3 mean with the zero padding counted', async () => {
    // 2x2, one channel: every window covers all four values.
    close((await localAverage({ data: Float32Array.from([1, 2, 3, 4]), batch: 1, height: 2, width: 2, channels: 1 })).data,
      [10 / 9, 10 / 9, 10 / 9, 10 / 9]);
    // 1x3, two channels, two images (the second is the first times -1).
    const out = await localAverage({ data: Float32Array.from([1, 10, 2, 20, 3, 30, -1, -10, -2, -20, -3, -30]), batch: 2, height: 1, width: 3, channels: 2 });
    expect(out).toMatchObject({ batch: 2, height: 1, width: 3, channels: 2 });
    close(out.data, [3 / 9, 30 / 9, 6 / 9, 60 / 9, 5 / 9, 50 / 9, -3 / 9, -30 / 9, -6 / 9, -60 / 9, -5 / 9, -50 / 9]);
  });

  test('rejects bad shapes and non-finite features', async () => {
    await rejects(localAverage({ data: new Float32Array(3), batch: 1, height: 2, width: 2, channels: 1 }), HgadArgumentError, 'level.data');
    await rejects(localAverage({ data: new Float32Array(4), batch: 1, height: 2.5, width: 2, channels: 1 }), HgadArgumentError, 'level.height');
    await rejects(localAverage(null as never), HgadArgumentError, 'level');
    await rejects(localAverage({ data: Float32Array.from([0, NaN, 0, 0]), batch: 1, height: 2, width: 2, channels: 1 }), HgadNonFiniteError, 'data');
  });
});

describe('halfResolution', () => {
  test('is the 2x2 block mean, an odd last row and column dropped', async () => {
    // 3x3, two channels (the second is 10x the first), two images (the second is the first times -1).
    const one = [1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((v) => [v, 10 * v]);
    const out = await halfResolution({ data: Float32Array.from([...one, ...one.map((v) => -v)]), batch: 2, height: 3, width: 3, channels: 2 });
    expect(out).toMatchObject({ batch: 2, height: 1, width: 1, channels: 2 });
    close(out.data, [3, 30, -3, -30]);
    // 2x4, one channel: two blocks.
    close((await halfResolution({ data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), batch: 1, height: 2, width: 4, channels: 1 })).data, [3.5, 5.5]);
  });

  test('needs 2 x 2 positions and finite features', async () => {
    await rejects(halfResolution({ data: new Float32Array(3), batch: 1, height: 1, width: 3, channels: 1 }), HgadArgumentError, 'level');
    await rejects(halfResolution({ data: new Float32Array(3), batch: 1, height: 2, width: 2, channels: 1 }), HgadArgumentError, 'level.data');
    await rejects(halfResolution({ data: Float32Array.from([0, Infinity, 0, 0]), batch: 1, height: 2, width: 2, channels: 1 }), HgadNonFiniteError, 'data');
  });
});

describe('nearestDistances', () => {
  const queries = Float32Array.from([0, 0, 3, 4, 1, 1]);
  const bank = Float32Array.from([0, 1, 6, 8]);

  test('finds the nearest bank vector of each query', async () => {
    close(await nearestDistances(queries, bank, { dim: 2 }), [1, Math.sqrt(18), 1]);
    // An exact match is 0, not a rounding below it.
    close(await nearestDistances(Float32Array.from([6, 8]), bank, { dim: 2 }), [0]);
  });

  test('into: the nearest over the union of banks, in a new array', async () => {
    const into = await nearestDistances(queries, bank, { dim: 2 });
    const before = Float32Array.from(into);
    const out = await nearestDistances(queries, Float32Array.from([3, 4]), { dim: 2, into });
    expect(out).not.toBe(into);
    expect(into).toEqual(before);
    close(out, [1, 0, 1]);
  });

  test('bf16: the products of bf16-rounded inputs (float norms), across query and bank blocks; near fp32', async () => {
    // 300 queries and 2500 bank rows of 128: several 128-query and 1024-row blocks, a partial one of each.
    const next = mulberry32(5);
    const gauss = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()));
    const D = 128, nq = 300, nb = 2500;
    const q = gauss(nq * D), b = gauss(nb * D);
    const fp32 = await nearestDistances(q, b, { dim: D });
    if (!cpuPrecision().bf16) {
      await expect(nearestDistances(q, b, { dim: D, precision: 'bf16' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'options.precision' });
      expect(await nearestDistances(q, b, { dim: D, precision: 'auto' })).toEqual(fp32);
      return;
    }
    const got = await nearestDistances(q, b, { dim: D, precision: 'bf16' });
    expect(await nearestDistances(q, b, { dim: D, precision: 'auto' })).toEqual(got);
    const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
    const round = (x: number): number => { f[0] = x; bits[0] = ((bits[0]! + 0x7fff + ((bits[0]! >>> 16) & 1)) >>> 16) << 16; return f[0]!; };
    const qr = q.map(round), br = b.map(round);
    const norm = (a: Float32Array, i: number): number => { let s = 0; for (let k = 0; k < D; k++) s += a[i * D + k]! ** 2; return s; };
    const bn = Array.from({ length: nb }, (_, j) => norm(b, j));
    let worstRef = 0, worstFp32 = 0;
    for (let i = 0; i < nq; i++) {
      let best = Infinity;
      for (let j = 0; j < nb; j++) {
        let p = 0;
        for (let k = 0; k < D; k++) p += qr[i * D + k]! * br[j * D + k]!;
        best = Math.min(best, bn[j]! - 2 * p);
      }
      const want = Math.sqrt(Math.max(0, best + norm(q, i)));
      worstRef = Math.max(worstRef, Math.abs(got[i]! - want) / want);
      worstFp32 = Math.max(worstFp32, Math.abs(got[i]! - fp32[i]!) / fp32[i]!);
    }
    expect(worstRef).toBeLessThan(1e-4); // float accumulation against double: the same arithmetic
    expect(worstFp32).toBeLessThan(5e-3);
    expect(worstFp32).toBeGreaterThan(0); // the rounding did happen
  });

  test('rejects bad arguments, naming them', async () => {
    await rejects(nearestDistances(queries, bank, { dim: 2, precision: 'fp16' as never }), HgadArgumentError, 'options.precision');
    await rejects(nearestDistances(queries, bank, { dim: 0 }), HgadArgumentError, 'options.dim');
    await rejects(nearestDistances(queries, bank, { dim: 4 }), HgadArgumentError, 'queries');
    await rejects(nearestDistances(queries, Float32Array.from([1, 2, 3]), { dim: 2 }), HgadArgumentError, 'bank');
    await rejects(nearestDistances(queries, new Float32Array(0), { dim: 2 }), HgadArgumentError, 'bank');
    await rejects(nearestDistances(Array.from(queries) as never, bank, { dim: 2 }), HgadArgumentError, 'queries');
    await rejects(nearestDistances(queries, bank, { dim: 2, into: new Float32Array(2) }), HgadArgumentError, 'options.into');
    await rejects(nearestDistances(queries, bank, { dim: 2, k: 1 } as never), HgadArgumentError, 'options.k');
    await rejects(nearestDistances(queries, Float32Array.from([0, 1, Infinity, 8]), { dim: 2 }), HgadNonFiniteError, 'bank');
  });
});

describe('distanceMaps', () => {
  test('upsamples with aligned corners, sums the levels, takes the max as the score', async () => {
    const fine = { values: Float32Array.from([0, 1, 2, 3, 4, 4, 4, 4]), height: 2, width: 2 };
    const coarse = { values: Float32Array.from([10, 20]), height: 1, width: 1 };
    const { maps, scores } = await distanceMaps([fine, coarse], 2, { height: 3, width: 3, sigma: 0 });
    close(maps, [10, 10.5, 11, 11, 11.5, 12, 12, 12.5, 13, 24, 24, 24, 24, 24, 24, 24, 24, 24]);
    close(scores, [13, 24]);
    // Blurring a constant map leaves it constant (reflect padding, normalised kernel).
    const blurred = await distanceMaps([coarse], 2, { height: 16, width: 16 });
    expect(blurred.maps.slice(0, 256).every((v) => Math.abs(v - 10) < 1e-4)).toBe(true);
    close(blurred.scores, [10, 20]);
  });

  test('rejects bad arguments, naming them', async () => {
    const level = { values: new Float32Array(4), height: 2, width: 2 };
    await rejects(distanceMaps([level], 2, { height: 8, width: 8 }), HgadArgumentError, 'levels[0].values');
    await rejects(distanceMaps([], 1, { height: 8, width: 8 }), HgadArgumentError, 'levels');
    await rejects(distanceMaps([level], 1, { height: 8, width: 8, sigma: -1 }), HgadArgumentError, 'size.sigma');
    await rejects(distanceMaps([level], 1, { height: 0, width: 8 }), HgadArgumentError, 'size.height');
    await rejects(distanceMaps([level], 1, { height: 8, width: 8, blur: 2 } as never), HgadArgumentError, 'size.blur');
    await rejects(distanceMaps([{ ...level, values: Float32Array.from([0, 0, NaN, 0]) }], 1, { height: 8, width: 8 }),
      HgadNonFiniteError, 'levels[0].values');
  });
});
