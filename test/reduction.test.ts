// Channel reduction before the flow: the native statistics and projection against direct float64
// references, the random directions' orthonormality, option validation, and a detector that reduces
// its levels trained, saved and loaded (same scores, tensors in the file, a damaged file refused).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse } from '../lib/cli/args';
import { trainOptionsFrom, TRAIN_OPTIONS } from '../lib/cli/train';
import { openDataset, Dataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import { HgadError } from '../lib/errors';
import { readSafetensors } from '../lib/io/safetensors';
import { featureOps } from '../lib/native-ops';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { localAverage } from '../lib/eval/nearest';
import { FeatureReduction, resolveReduction } from '../lib/pipeline/reduction';
import { scoreImages, AnomalyResult } from '../lib/score/scorer';
import { train, TrainOptions } from '../lib/train/trainer';

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

describe('native feature operations', () => {
  test('channelMoments equals direct float64 sums', async () => {
    const rows = 1000, C = 7;
    const x = seeded(rows * C, 1);
    const { sum, sumsq } = await featureOps().channelMoments(x, rows, C);
    for (let c = 0; c < C; c++) {
      let s = 0, q = 0;
      for (let r = 0; r < rows; r++) {
        s += x[r * C + c]!;
        q += x[r * C + c]! ** 2;
      }
      expect(sum[c]).toBeCloseTo(s, 9);
      expect(sumsq[c]).toBeCloseTo(q, 9);
    }
  });

  test('projectChannels computes W ((x - mean) * scale) for every row', async () => {
    const rows = 1100, C = 9, K = 4; // more rows than one tile, so the tiles' seams are covered
    const x = seeded(rows * C, 2), mean = seeded(C, 3), scale = seeded(C, 4).map((v) => 1 + v), w = seeded(K * C, 5);
    const y = await featureOps().projectChannels(x, rows, C, mean, scale, w, K);
    expect(y.length).toBe(rows * K);
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < K; k++) {
        let ref = 0;
        for (let c = 0; c < C; c++) ref += w[k * C + c]! * (x[r * C + c]! - mean[c]!) * scale[c]!;
        worst = Math.max(worst, Math.abs(ref - y[r * K + k]!));
      }
    }
    expect(worst).toBeLessThan(1e-5);
  });

  test('orthonormalRows gives orthonormal, seeded directions', async () => {
    const K = 12, C = 40;
    const w = await featureOps().orthonormalRows(7, K, C);
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) {
        let dot = 0;
        for (let c = 0; c < C; c++) dot += w[i * C + c]! * w[j * C + c]!;
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-5);
      }
    }
    expect(Buffer.from((await featureOps().orthonormalRows(7, K, C)).buffer).equals(Buffer.from(w.buffer))).toBe(true);
    expect(Buffer.from((await featureOps().orthonormalRows(8, K, C)).buffer).equals(Buffer.from(w.buffer))).toBe(false);
  });

  test('channelCrossMoments adds the shifted cross-products to the running sums', async () => {
    const rows = 700, C = 6;
    const x = seeded(rows * C, 12).map((v, i) => v + (i % C));
    const shift = Float32Array.from({ length: C }, (_, c) => c + 0.1);
    const start = { sum: seeded(C, 13).map(Number), cross: seeded(C * C, 14).map(Number) };
    const sum0 = Float64Array.from(start.sum), cross0 = Float64Array.from(start.cross);
    const r = await featureOps().channelCrossMoments(x, rows, C, shift, sum0, cross0);
    expect(Array.from(sum0)).toEqual(Array.from(start.sum)); // the arguments are left alone
    for (let i = 0; i < C; i++) {
      let s1 = start.sum[i]!;
      for (let k = 0; k < rows; k++) s1 += x[k * C + i]! - shift[i]!;
      expect(r.sum[i]).toBeCloseTo(s1, 3); // x - shift is rounded to float32 before the float64 sum
      for (let j = 0; j < C; j++) {
        let c = start.cross[i * C + j]!;
        for (let k = 0; k < rows; k++) c += (x[k * C + i]! - shift[i]!) * (x[k * C + j]! - shift[j]!);
        expect(Math.abs(r.cross[i * C + j]! - c)).toBeLessThan(1e-3);
      }
    }
  });

  test('principalDirections finds the dominant direction and its variance, and whitens it', async () => {
    // Rows along u = (1, 2, 0, -2) / 3 with variance 9, plus small independent noise.
    const rows = 4000, C = 4, u = [1 / 3, 2 / 3, 0, -2 / 3];
    const noise = seeded(rows * C, 15), t = seeded(rows, 16);
    const x = new Float32Array(rows * C);
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) x[r * C + c] = 5 + 3 * Math.sqrt(12) * t[r]! * u[c]! + 0.1 * noise[r * C + c]!;
    const m = await featureOps().channelCrossMoments(x, rows, C, new Float32Array(C).fill(5), new Float64Array(C), new Float64Array(C * C));
    const pd = await featureOps().principalDirections(m.cross, m.sum, rows, new Float32Array(C).fill(1), 2, false);
    expect(pd.weight.length).toBe(2 * C);
    const dot = u.reduce((a, v, c) => a + v * pd.weight[c]!, 0);
    expect(Math.abs(dot)).toBeGreaterThan(0.999);
    expect(pd.values[0]).toBeGreaterThan(8.5);
    expect(pd.values[0]).toBeLessThan(9.5);
    expect(pd.values[1]).toBeLessThan(0.01);
    expect(pd.total).toBeCloseTo(pd.values[0]! + 3 * (0.01 / 12), 2);
    const w = await featureOps().principalDirections(m.cross, m.sum, rows, new Float32Array(C).fill(1), 1, true);
    const floor = 1e-2 * pd.total / C;
    for (let c = 0; c < C; c++) expect(w.weight[c]).toBeCloseTo(pd.weight[c]! / Math.sqrt(pd.values[0]! + floor), 6);
  });

  test('bad arguments are rejected by the addon, not read out of bounds', async () => {
    const x = new Float32Array(10);
    expect(() => featureOps().projectChannels(x, 3, 5, new Float32Array(5), new Float32Array(5), new Float32Array(10), 2)).toThrow(/15 elements/);
    expect(() => featureOps().orthonormalRows(0, 6, 5)).toThrow(/rows/);
    await expect(featureOps().channelMoments(Float32Array.of(1, NaN), 1, 2)).rejects.toThrow(/finite/);
    expect(() => featureOps().channelCrossMoments(x, 5, 2, new Float32Array(2), new Float64Array(2), new Float64Array(3))).toThrow(/4 elements in cross/);
    expect(() => featureOps().channelCrossMoments(new Float32Array(5000), 1, 5000, new Float32Array(5000), new Float64Array(5000), new Float64Array(1))).toThrow(/channels/);
    expect(() => featureOps().principalDirections(new Float64Array(4), new Float64Array(2), 1, new Float32Array(2), 3, false)).toThrow(/out/);
    expect(() => featureOps().principalDirections(new Float64Array(4), new Float64Array(2), 1, new Float32Array(2), 1, 1 as unknown as boolean)).toThrow(/whiten/);
    await expect(featureOps().principalDirections(Float64Array.of(1, NaN, NaN, 1), new Float64Array(2), 1, new Float32Array(2).fill(1), 1, false)).rejects.toThrow(/finite/);
  });
});

describe('reduction options', () => {
  test('resolves widths and refuses what it cannot do', () => {
    expect(resolveReduction({ channels: 64 }, [32, 512, 1024])).toEqual({ channels: [32, 64, 64], standardize: true, images: 256, localAverage: false, projection: 'random', whiten: false });
    expect(resolveReduction({ channels: 64, projection: 'pca', whiten: true }, [32, 512])).toMatchObject({ projection: 'pca', whiten: true });
    expect(resolveReduction({ channels: [16, 8], standardize: false }, [32, 96]).channels).toEqual([16, 8]);
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return `${(e as HgadError).code} ${(e as HgadError).parameter}`;
      }
      return undefined;
    };
    expect(code(() => resolveReduction({ channel: 64 }, [32]))).toBe('INVALID_ARGUMENT reduction.channel');
    expect(code(() => resolveReduction({ channels: [64] }, [32]))).toBe('INVALID_ARGUMENT reduction.channels[0]');
    expect(code(() => resolveReduction({ channels: 1 }, [32]))).toBe('INVALID_ARGUMENT reduction.channels');
    expect(code(() => resolveReduction({ standardize: 'yes' }, [32]))).toBe('INVALID_ARGUMENT reduction.standardize');
    expect(code(() => resolveReduction({ localAverage: 1 }, [32]))).toBe('INVALID_ARGUMENT reduction.localAverage');
    expect(code(() => resolveReduction({ projection: 'svd' }, [32]))).toBe('INVALID_ARGUMENT reduction.projection');
    expect(code(() => resolveReduction({ whiten: true }, [32]))).toBe('INVALID_ARGUMENT reduction.whiten');
    expect(code(() => resolveReduction({ projection: 'pca', whiten: 'yes' }, [32]))).toBe('INVALID_ARGUMENT reduction.whiten');
    expect(code(() => resolveReduction({ channels: 64, projection: 'pca' }, [8192]))).toBe('INVALID_ARGUMENT reduction.projection');
  });
});

describe('hgad train flags', () => {
  const from = (...args: string[]): TrainOptions['reduction'] => trainOptionsFrom(parse('train', ['--data', 'x', '--out', 'y', ...args], TRAIN_OPTIONS)).reduction;
  test('--projection and --whiten reach the reduction; nonsense is refused with the flag named', () => {
    expect(from()).toBeUndefined();
    expect(from('--reduce', '64', '--projection', 'pca', '--whiten', 'on')).toEqual({ channels: 64, projection: 'pca', whiten: true });
    expect(from('--reduce', '64')).toEqual({ channels: 64 });
    expect(() => from('--reduce', '64', '--projection', 'svd')).toThrow(/--projection/);
    expect(() => from('--reduce', 'none', '--whiten', 'on')).toThrow(/--whiten/);
  });
});

describe('local averaging', () => {
  test('localAverage reduces the 3x3-averaged features: the same as averaging first', async () => {
    const level = { data: seeded(2 * 5 * 6 * 8, 11), batch: 2, height: 5, width: 6, channels: 8 };
    async function* once(levels: typeof level[]): AsyncGenerator<typeof level[]> {
      yield levels;
    }
    const averaged = await localAverage(level);
    const on = await FeatureReduction.fit([8], { channels: [4], standardize: true, localAverage: true }, once([level]), 3);
    const off = await FeatureReduction.fit([8], { channels: [4], standardize: true, localAverage: false }, once([averaged]), 3);
    expect(on.spec.localAverage).toBe(true);
    for (const [name, t] of on.tensors()) expect(Array.from(t.data)).toEqual(Array.from(off.tensors().get(name)!.data));
    const [a] = await on.apply([level]);
    const [b] = await off.apply([averaged]);
    expect(Array.from(a!.data)).toEqual(Array.from(b!.data));
  });
});

describe('principal directions', () => {
  async function* batches(levels: { data: Float32Array; batch: number; height: number; width: number; channels: number }[][]): AsyncGenerator<typeof levels[0]> {
    for (const l of levels) yield l;
  }
  // Channels 0-1 carry one strong common signal, the rest independent noise of another scale.
  const level = (seed: number): { data: Float32Array; batch: number; height: number; width: number; channels: number } => {
    const batch = 3, height = 6, width = 7, C = 10, n = batch * height * width;
    const t = seeded(n, seed), e = seeded(n * C, seed + 1);
    const data = new Float32Array(n * C);
    for (let r = 0; r < n; r++) for (let c = 0; c < C; c++) data[r * C + c] = (c < 2 ? 20 * t[r]! + 0.5 * e[r * C + c]! : 3 * e[r * C + c]!) * (c + 1) + 7;
    return { data, batch, height, width, channels: C };
  };

  test("'pca' keeps the leading standardised directions, records what they keep, and whitens on request", async () => {
    const data = [[level(20)], [level(22)]];
    const plain = await FeatureReduction.fit([10], { channels: [3], standardize: true, localAverage: false, projection: 'pca' }, batches(data), 1);
    expect(plain.spec).toMatchObject({ projection: 'pca', whiten: false, images: 6 });
    const w = plain.tensors().get('pipeline.reduction.0.weight')!.data;
    // Standardised, channels 0 and 1 are the same signal: the first direction is (1, 1, 0, ...) / sqrt 2
    // up to the noise channels' chance correlations over 252 rows.
    expect(Math.abs(w[0]! - Math.SQRT1_2)).toBeLessThan(0.03);
    expect(Math.abs(w[1]! - Math.SQRT1_2)).toBeLessThan(0.03);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      let dot = 0;
      for (let c = 0; c < 10; c++) dot += w[i * 10 + c]! * w[j * 10 + c]!;
      expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-5);
    }
    // Two of ten standardised channels are one direction (variance ~2 of ~10), plus two noise directions.
    expect(plain.spec.retained![0]).toBeGreaterThan(0.3);
    expect(plain.spec.retained![0]).toBeLessThan(0.5);
    // Whitened: every reduced channel has unit variance on the features it was measured on.
    const white = await FeatureReduction.fit([10], { channels: [3], standardize: true, localAverage: false, projection: 'pca', whiten: true }, batches(data), 1);
    const out = [...(await white.apply(data[0]!)), ...(await white.apply(data[1]!))];
    for (let k = 0; k < 3; k++) {
      let s = 0, q = 0, n = 0;
      for (const o of out) for (let r = 0; r < o.data.length / 3; r++, n++) {
        s += o.data[r * 3 + k]!;
        q += o.data[r * 3 + k]! ** 2;
      }
      const variance = q / n - (s / n) ** 2;
      expect(variance).toBeGreaterThan(0.9);
      expect(variance).toBeLessThan(1.01);
    }
  });

  test("'random' is the default and leaves the file's spec as before", async () => {
    const r = await FeatureReduction.fit([10], { channels: [3], standardize: true, localAverage: false }, batches([[level(20)]]), 1);
    expect(r.spec).not.toHaveProperty('projection');
    expect(r.spec).not.toHaveProperty('retained');
  });
});

describe('a detector that reduces its levels', () => {
  let dir: string;
  let dataset: Dataset;
  let detector: AnomalyDetector;

  const options = (): TrainOptions => ({
    data: dataset,
    backbone: { model: 'demo' },
    schedule: { metaEpochs: 1, subEpochs: 2, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4,
    seed: 2,
    threads: 2,
    progressBar: false,
    flow: { couplingLayers: 2, centersPerClass: 2 },
    holdout: 0.2,
    reduction: { channels: 24, images: 8 },
  });

  const scores = async (d: AnomalyDetector): Promise<number[]> => {
    const out: number[] = [];
    for await (const r of scoreImages(d, dataset.samples('test', 'carpet').map((s) => s.path))) out.push((r as AnomalyResult).imageScore);
    return out;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-reduction-'));
    await generateDemoDataset({ root: join(dir, 'data'), seed: 9, classes: ['carpet', 'wood'], trainPerClass: 8, testGoodPerClass: 2, testDefectPerClass: 2 });
    dataset = await openDataset({ root: join(dir, 'data'), layout: 'mvtec' });
    detector = await train(options());
  }, 300000);

  afterAll(async () => {
    await detector?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('the flow is as wide as the reduction, and the spec says so', () => {
    // demo taps have 32, 64 and 96 channels
    expect(detector.model.config.levels.map((l) => l.channels)).toEqual([24, 24, 24]);
    expect(detector.spec.reduction).toMatchObject({ inChannels: [32, 64, 96], channels: [24, 24, 24], standardize: true, images: 8, seed: 2 });
  });

  test('save and load give the same scores; the tensors are in the file', async () => {
    const file = join(dir, 'reduced.hgad');
    await detector.save(file);
    const { tensors } = await readSafetensors(file);
    expect(tensors.get('pipeline.reduction.2.weight')?.shape).toEqual([24, 96]);
    const loaded = await AnomalyDetector.load(file, { threads: 2 });
    try {
      expect(await scores(loaded)).toEqual(await scores(detector));
    } finally {
      await loaded.dispose();
    }
  }, 120000);

  test('the same seed gives the same reduction', async () => {
    const again = await train(options());
    try {
      for (const [name, t] of detector.reduction!.tensors()) {
        expect(Buffer.from(again.reduction!.tensors().get(name)!.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
      }
    } finally {
      await again.dispose();
    }
  }, 300000);

  test("principal directions survive save and load (a 'pca' detector scores the same after)", async () => {
    const pca = await train({ ...options(), reduction: { channels: 24, images: 8, projection: 'pca', whiten: true } });
    const file = join(dir, 'pca.hgad');
    try {
      expect(pca.spec.reduction).toMatchObject({ projection: 'pca', whiten: true, channels: [24, 24, 24] });
      expect(pca.spec.reduction!.retained!.every((r) => r > 0 && r <= 1)).toBe(true);
      await pca.save(file);
      const loaded = await AnomalyDetector.load(file, { threads: 2 });
      try {
        expect(loaded.spec.reduction).toEqual(pca.spec.reduction);
        expect(await scores(loaded)).toEqual(await scores(pca));
      } finally {
        await loaded.dispose();
      }
    } finally {
      await pca.dispose();
    }
  }, 300000);

  test('a file whose reduction does not fit its flow is refused', async () => {
    const file = join(dir, 'reduced.hgad');
    await detector.save(file);
    const bytes = await readFile(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
    // Same length, so the tensor offsets stay valid: the stored width of level 0 is changed.
    // (The spec is a JSON string inside the JSON header, so its quotes are escaped.)
    const edited = header.replace('\\"channels\\":[24,24,24]', '\\"channels\\":[23,24,24]');
    expect(edited).not.toBe(header);
    const bad = join(dir, 'bad.hgad');
    await writeFile(bad, Buffer.concat([bytes.subarray(0, 8), Buffer.from(edited, 'utf8'), bytes.subarray(8 + headerLength)]));
    await expect(AnomalyDetector.load(bad)).rejects.toMatchObject({ code: 'MODEL_FILE' });
  });
});
