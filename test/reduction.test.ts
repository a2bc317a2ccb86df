// Channel reduction before the flow: the native statistics and projection against direct float64
// references, the random directions' orthonormality, option validation, and a detector that reduces
// its levels trained, saved and loaded (same scores, tensors in the file, a damaged file refused).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

  test('bad arguments are rejected by the addon, not read out of bounds', async () => {
    const x = new Float32Array(10);
    expect(() => featureOps().projectChannels(x, 3, 5, new Float32Array(5), new Float32Array(5), new Float32Array(10), 2)).toThrow(/15 elements/);
    expect(() => featureOps().orthonormalRows(0, 6, 5)).toThrow(/rows/);
    await expect(featureOps().channelMoments(Float32Array.of(1, NaN), 1, 2)).rejects.toThrow(/finite/);
  });
});

describe('reduction options', () => {
  test('resolves widths and refuses what it cannot do', () => {
    expect(resolveReduction({ channels: 64 }, [32, 512, 1024])).toEqual({ channels: [32, 64, 64], standardize: true, images: 256, localAverage: false });
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
