// The precision option (lib/precision.ts): validated up front, resolved from the CPU's features, bf16
// results within bf16 accuracy of fp32 (ranks of the scores kept), fp32 wherever bf16 cannot run;
// and the rank correlation the quality guard (benchmarks/precision-guard.ts) judges maps with.
import { readFileSync } from 'node:fs';

import { cpuPrecision, HgadArgumentError, HgadModel } from '../lib';
import { spearman } from '../benchmarks/rank-correlation';
import { runSnippet } from './child-process';

const C = 48, Y = 3;
function config(extra: Record<string, unknown> = {}): Parameters<typeof HgadModel.create>[0] {
  return {
    levels: [{ channels: C }], classes: ['a', 'b', 'c'], centersPerClass: 3, couplingLayers: 4, posEmbedDim: 32,
    seed: 7, threads: 2, device: 'cpu', ...extra,
  } as Parameters<typeof HgadModel.create>[0];
}
function batch(b: number, h: number, w: number): { data: Float32Array; batch: number; height: number; width: number; channels: number } {
  const data = new Float32Array(b * h * w * C);
  let s = 99;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 3;
  }
  return { data, batch: b, height: h, width: w, channels: C };
}
const cpuHasBf16 = process.platform === 'linux' && /\b(avx512_bf16|amx_bf16)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

describe('precision options', () => {
  test.each([
    [{ precision: 'fp16' }, 'config.precision'],
    [{ precision: 16 }, 'config.precision'],
    [{ trainPrecision: 'half' }, 'config.trainPrecision'],
  ])('%j is refused naming %s', (extra, parameter) => {
    expect(() => HgadModel.create(config(extra))).toThrow(HgadArgumentError);
    try {
      HgadModel.create(config(extra));
    } catch (e) {
      expect((e as HgadArgumentError).parameter).toBe(parameter);
      expect((e as Error).message).toMatch(/'fp32', 'bf16', 'auto'/);
    }
  });

  test('setPrecision validates its options before queueing anything', async () => {
    const model = HgadModel.create(config({ precision: 'fp32' }));
    await expect(model.setPrecision({ inference: 'bf8' as never })).rejects.toMatchObject({ parameter: 'options.inference' });
    await expect(model.setPrecision({ scoring: 'fp32' } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(model.setPrecision(null as never)).rejects.toBeInstanceOf(HgadArgumentError);
    expect(model.precision).toEqual({ inference: 'fp32', training: 'fp32' });
  });

  test('HgadModel.load refuses an unknown precision before reading the file', async () => {
    await expect(HgadModel.load('/nonexistent.hgad', { precision: 'int8' as never })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', parameter: 'options.precision',
    });
  });

  test('the CPU features follow /proc/cpuinfo, and the defaults resolve from them', () => {
    const cpu = cpuPrecision();
    expect(cpu.bf16).toBe(cpuHasBf16);
    expect(['onednn', 'openblas-static']).toContain(cpu.gemm);
    // scoring defaults to 'auto' (the quality guard held on the full test split); training to fp32
    expect(HgadModel.create(config()).precision).toEqual({ inference: cpuHasBf16 ? 'bf16' : 'fp32', training: 'fp32' });
    expect(HgadModel.create(config()).config.precision).toBe('auto');
    const auto = HgadModel.create(config({ precision: 'auto', trainPrecision: 'auto' }));
    const expected = cpuHasBf16 ? 'bf16' : 'fp32';
    expect(auto.precision).toEqual({ inference: expected, training: expected });
    expect(auto.config.precision).toBe('auto');
  });
});

(cpuHasBf16 ? describe : describe.skip)('bf16 on a CPU that has it', () => {
  test('scores within bf16 accuracy of fp32 and keeps their ranks, on every map shape', async () => {
    const f = HgadModel.create(config({ precision: 'fp32' }));
    const b = HgadModel.create(config({ precision: 'bf16' }));
    for (const [n, h, w] of [[1, 16, 16], [4, 8, 8], [16, 4, 4]] as const) {
      const x = batch(n, h, w);
      const rf = await f.score(0, x, Int32Array.from({ length: n }, (_, i) => i % Y));
      const rb = await b.score(0, x, Int32Array.from({ length: n }, (_, i) => i % Y));
      expect(rf.precision).toBe('fp32');
      expect(rb.precision).toBe('bf16');
      let worst = 0;
      for (let i = 0; i < rf.logp.length; i++) worst = Math.max(worst, Math.abs(rf.logp[i]! - rb.logp[i]!));
      expect(worst).toBeGreaterThan(0);  // the bf16 GEMMs did run
      expect(worst).toBeLessThan(0.05);
      expect(spearman(rf.logp, rb.logp)).toBeGreaterThan(0.999);
    }
  });

  test('switching precision changes the results and switching back restores them exactly', async () => {
    const model = HgadModel.create(config({ precision: 'fp32' }));
    const x = batch(2, 8, 8);
    const a = await model.score(0, x, 0);
    expect(await model.setPrecision({ inference: 'bf16' })).toEqual({ inference: 'bf16', training: 'fp32' });
    const b = await model.score(0, x, 0);
    await model.setPrecision({ inference: 'fp32' });
    const c = await model.score(0, x, 0);
    expect(Array.from(b.logp)).not.toEqual(Array.from(a.logp));
    expect(Array.from(c.logp)).toEqual(Array.from(a.logp));
  });

  test('mixed-precision training steps follow the fp32 ones', async () => {
    const f = HgadModel.create(config({ trainPrecision: 'fp32' }));
    const b = HgadModel.create(config({ trainPrecision: 'bf16' }));
    expect(b.precision.training).toBe('bf16');
    const x = batch(4, 8, 8);
    const labels = Int32Array.from([0, 1, 2, 0]);
    for (let step = 0; step < 5; step++) {
      const lf = await f.trainStep(0, x, labels, { phase: 2, lr: 1e-3 });
      const lb = await b.trainStep(0, x, labels, { phase: 2, lr: 1e-3 });
      expect(Math.abs(lf.loss - lb.loss)).toBeLessThan(0.01 * (1 + Math.abs(lf.loss)));
    }
    // The weights and Adam's moments stay float32 tensors, read and written as before.
    const w = await b.getTensor('levels.0.blocks.0.w1');
    expect(w).toBeInstanceOf(Float32Array);
  });
});

test('without AVX512-BF16 and AMX-BF16 (HGAD_CPU_BF16=0), auto runs fp32 and bf16 is a typed error', async () => {
  const r = await runSnippet(`
    const { HgadModel, cpuPrecision } = require(LIB);
    const cfg = { levels: [{ channels: 8 }], classes: ['a'], centersPerClass: 1, couplingLayers: 1, posEmbedDim: 8, threads: 1, device: 'cpu' };
    const auto = HgadModel.create({ ...cfg, precision: 'auto', trainPrecision: 'auto' });
    let error = null;
    try { HgadModel.create({ ...cfg, precision: 'bf16' }); } catch (e) { error = { code: e.code, parameter: e.parameter, message: e.message }; }
    console.log(JSON.stringify({ cpu: cpuPrecision(), precision: auto.precision, error }));
  `, { shellPrefix: 'export HGAD_CPU_BF16=0;' });
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { cpu: { bf16: boolean }; precision: unknown; error: { code: string; parameter: string; message: string } };
  expect(out.cpu.bf16).toBe(false);
  expect(out.precision).toEqual({ inference: 'fp32', training: 'fp32' });
  expect(out.error).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'config.precision' });
  expect(out.error.message).toMatch(/neither AVX512-BF16 nor AMX-BF16/);
});

describe('spearman (the guard\'s map comparison)', () => {
  test('is 1 for any increasing transform, -1 reversed, and handles ties', () => {
    const a = Float32Array.from([0.1, 5, 2, 2, -1, 7]);
    expect(spearman(a, a.map((v) => Math.exp(v)))).toBeCloseTo(1, 12);
    expect(spearman(a, a.map((v) => -v))).toBeCloseTo(-1, 12);
    expect(spearman([1, 2, 3], [1, 1, 1])).toBeNaN();
    expect(spearman([1, 2], [1, 2, 3])).toBeNaN();
    // One swapped pair of 5 (d^2 sum 2): 1 - 6*2 / (5 * 24) = 0.9.
    expect(spearman([1, 2, 3, 4, 5], [1, 2, 3, 5, 4])).toBeCloseTo(0.9, 12);
  });
});
