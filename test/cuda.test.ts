// The CUDA backend (native/cuda, issue 3). Device selection and its errors are checked everywhere; the
// agreement of a CUDA model with a CPU model of the same seed (every operation, to 1e-4 relative to
// each array's scale) runs only where a CUDA device is present, and is skipped with the reason elsewhere.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { HgadConfig, HgadError, HgadModel, FeatureBatch } from '../lib';
import { cudaInfo } from '../lib/model';
import { native } from '../lib/native';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
}

function randomBatch(seed: number, batch: number, height: number, width: number, channels: number): FeatureBatch {
  const normal = rng(seed);
  const data = new Float32Array(batch * height * width * channels);
  for (let i = 0; i < data.length; i++) data[i] = normal();
  return { batch, height, width, channels, data };
}

/** max |got - want| / max |want|. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  const e = relErr(got, want);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e} above ${tol}`);
}

const CONFIG: HgadConfig = {
  levels: [{ channels: 7 }, { channels: 24 }],
  classes: ['a', 'b', 'c'],
  centersPerClass: 4,
  couplingLayers: 3,
  posEmbedDim: 8,
  seed: 11,
  threads: 2,
  // CUDA computes in fp32: its CPU twin must too (scoring's default is 'auto', bf16 where the CPU has it)
  precision: 'fp32',
};

describe('device selection', () => {
  test('config.device is validated and named in the error', () => {
    expect(() => HgadModel.create({ ...CONFIG, device: 'gpu' as never })).toThrow(/config\.device/);
    try {
      HgadModel.create({ ...CONFIG, device: 'gpu' as never });
    } catch (e) {
      expect((e as HgadError).code).toBe('INVALID_ARGUMENT');
      expect((e as HgadError).parameter).toBe('config.device');
    }
  });

  test("'cpu' runs on the CPU; 'auto' picks CUDA exactly when it is available", () => {
    expect(HgadModel.create({ ...CONFIG, device: 'cpu' }).device).toBe('cpu');
    const info = cudaInfo();
    expect(typeof info.compiled).toBe('boolean');
    expect(typeof info.available).toBe('boolean');
    if (!info.compiled) expect(info.available).toBe(false);
    expect(HgadModel.create({ ...CONFIG, device: 'auto' }).device).toBe(info.available ? 'cuda' : 'cpu');
    expect(HgadModel.create(CONFIG).device).toBe(info.available ? 'cuda' : 'cpu');
    if (!info.available) expect(info.reason.length).toBeGreaterThan(0);
  });

  test("'cuda' without a usable device is a typed error naming config.device and the reason", () => {
    const info = cudaInfo();
    if (info.available) return; // covered by the device tests below
    let error: unknown;
    try {
      HgadModel.create({ ...CONFIG, device: 'cuda' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HgadError);
    expect((error as HgadError).code).toBe('INVALID_ARGUMENT');
    expect((error as HgadError).parameter).toBe('config.device');
    expect((error as HgadError).message).toContain(info.reason);
    // The addon refuses too, for callers that bypass HgadModel.
    const raw = { channels: [7], classes: 1, centres: 2, blocks: 1, posDim: 8, clamp: 1.9, seed: 0, threads: 1 };
    const Native = native().NativeModel as unknown as new (c: object) => unknown;
    for (const device of ['cuda', 'tpu']) {
      let e: { code?: string; parameter?: string } | undefined;
      try {
        new Native({ ...raw, device });
      } catch (x) {
        e = x as { code?: string; parameter?: string };
      }
      expect(e?.code).toBe('INVALID_ARGUMENT');
      expect(e?.parameter).toBe('config.device');
    }
    expect(new Native({ ...raw, device: 'cpu' })).toBeDefined();
  });

  test('the device is not stored in model files', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hgad-cuda-'));
    try {
      const file = path.join(dir, 'm.safetensors');
      await HgadModel.create({ ...CONFIG, device: 'cpu' }).save(file);
      const buf = fs.readFileSync(file);
      const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8'));
      expect(Object.keys(JSON.parse(header.__metadata__.config))).not.toContain('device');
      const loaded = await HgadModel.load(file, { device: 'cpu' });
      expect(loaded.device).toBe('cpu');
      await expect(HgadModel.load(file, { device: 'tpu' as never })).rejects.toThrow(/options\.device/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const info = cudaInfo();
const onDevice = info.available ? describe : describe.skip;
if (!info.available) {
  // eslint-disable-next-line no-console
  console.log(`cuda.test.ts: CUDA agreement tests skipped: ${info.reason}`);
}

onDevice(`CUDA model agrees with a CPU model of the same seed (${info.available ? info.deviceName : `skipped: ${info.reason}`})`, () => {
  const pair = (): { cpu: HgadModel; gpu: HgadModel } => ({
    cpu: HgadModel.create({ ...CONFIG, device: 'cpu' }),
    gpu: HgadModel.create({ ...CONFIG, device: 'cuda' }),
  });

  test('forward, inverse and score on both levels', async () => {
    const { cpu, gpu } = pair();
    expect(gpu.device).toBe('cuda');
    for (const [level, C] of [[0, 7], [1, 24]] as const) {
      const x = randomBatch(3 + level, 2, 5, 6, C);
      const a = await cpu.forward(level, x);
      const b = await gpu.forward(level, x);
      expectClose(b.z, a.z, 'z');
      expectClose(b.logDet, a.logDet, 'logDet');
      const shape = { batch: 2, height: 5, width: 6 };
      expectClose((await gpu.inverse(level, a.z, shape)).data, (await cpu.inverse(level, a.z, shape)).data, 'inverse');
      for (const cls of [undefined, Int32Array.from([2, 0])]) {
        const s = await cpu.score(level, x, cls);
        const t = await gpu.score(level, x, cls);
        expectClose(t.logp, s.logp, 'logp');
        expectClose(t.negEntropy, s.negEntropy, 'negEntropy');
        expectClose(t.classLogits, s.classLogits, 'classLogits');
        expectClose(t.classPosterior, s.classPosterior, 'classPosterior');
        expect(Array.from(t.classIndex)).toEqual(Array.from(s.classIndex));
      }
    }
  });

  test('gradients: loss terms, every parameter gradient and the input gradient', async () => {
    const { cpu, gpu } = pair();
    const x = randomBatch(21, 3, 4, 4, 24);
    for (const labels of [Int32Array.from([0, 2, 1]), Int32Array.from({ length: 48 }, (_, i) => i % 3)]) {
      const a = await cpu.gradients(1, x, labels);
      const b = await gpu.gradients(1, x, labels);
      for (const k of ['Lg', 'Lmi', 'Le', 'Lgi', 'Lz', 'loss'] as const) {
        expect(Math.abs(b.losses[k] - a.losses[k])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(a.losses[k])));
      }
      expectClose(b.inputGrad, a.inputGrad, 'inputGrad');
      expect([...b.grads.keys()]).toEqual([...a.grads.keys()]);
      for (const [name, g] of a.grads) expectClose(b.grads.get(name)!, g, `grad ${name}`);
    }
  });

  test('trainStep: losses, Adam moments and parameters', async () => {
    const { cpu, gpu } = pair();
    const lr = 1e-3;
    for (let step = 0; step < 3; step++) {
      const x = randomBatch(30 + step, 2, 4, 4, 7);
      const labels = Int32Array.from([step % 3, (step + 1) % 3]);
      const a = await cpu.trainStep(0, x, labels, { phase: 2, lr });
      const b = await gpu.trainStep(0, x, labels, { phase: 2, lr });
      expect(Math.abs(b.loss - a.loss)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(a.loss)));
    }
    for (const t of cpu.tensorInfo()) {
      if (t.level !== 0 || t.group === 'fixed') continue;
      const m = t.name.replace('levels.0.', 'optimizer.levels.0.m.');
      expectClose(await gpu.getTensor(m), await cpu.getTensor(m), m, 1e-3);
      // Adam moves a parameter whose gradient is ~0 by up to lr whatever its sign: allow 2 lr per step.
      const p = await cpu.getTensor(t.name);
      const q = await gpu.getTensor(t.name);
      const scale = p.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
      for (let i = 0; i < p.length; i++) expect(Math.abs(q[i]! - p[i]!)).toBeLessThanOrEqual(1e-4 * scale + 6 * lr);
    }
  });

  test('a model saved on one device loads on the other', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hgad-cuda-'));
    try {
      const gpu = HgadModel.create({ ...CONFIG, device: 'cuda' });
      const x = randomBatch(40, 2, 3, 3, 7);
      await gpu.trainStep(0, x, Int32Array.from([1, 2]), { phase: 2, lr: 1e-3 });
      const file = path.join(dir, 'gpu.safetensors');
      await gpu.save(file);
      const onCpu = await HgadModel.load(file, { device: 'cpu', precision: 'fp32' });
      expectClose((await onCpu.forward(0, x)).z, (await gpu.forward(0, x)).z, 'cuda -> cpu forward');
      expect(await onCpu.getTensor('levels.0.mu')).toEqual(await gpu.getTensor('levels.0.mu'));
      const back = path.join(dir, 'cpu.safetensors');
      await onCpu.save(back);
      const again = await HgadModel.load(back, { device: 'cuda' });
      expect(again.device).toBe('cuda');
      expectClose((await again.score(0, x)).logp, (await onCpu.score(0, x)).logp, 'cpu -> cuda score');
      // A tensor set on the host reaches the device before the next operation.
      const mu = await again.getTensor('levels.0.mu');
      await again.setTensor('levels.0.mu', mu.map((v) => v + 0.25));
      await onCpu.setTensor('levels.0.mu', mu.map((v) => v + 0.25));
      expectClose((await again.score(0, x)).logp, (await onCpu.score(0, x)).logp, 'after setTensor');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
