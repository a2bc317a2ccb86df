/**
 * @jest-environment ./test/ort-environment.js
 */
// Backbone feature extraction on the real MobileNetV2 int8 model and on the demo backbone, checked
// against independent references: the unmodified graph (tap added as an output) fed with inputs normalised
// by hand here, and quantised taps dequantised here with the node's own scale and zero point.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import * as ort from 'onnxruntime-node';

import { HgadArgumentError, HgadError } from '../lib/errors';
import { Backbone } from '../lib/features/backbone';
import { DEMO_TAPS, buildDemoBackbone } from '../lib/features/demo-backbone';
import { OnnxModel } from '../lib/onnx/model';
import { DataType, tensorValues } from '../lib/onnx/proto';

const MODEL = path.resolve(__dirname, '../../shared/models/mobilenetv2-12-int8.onnx');
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Deterministic pseudo-random RGB images with some structure (gradients + noise). */
function images(batch: number, size: number, seed: number): Uint8Array {
  const out = new Uint8Array(batch * size * size * 3);
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const p = Math.floor(i / 3) % (size * size);
    const y = Math.floor(p / size);
    const x = p % size;
    out[i] = (((x * 3 + y * 5 + (i % 3) * 40) & 255) * 0.6 + (s >>> 24) * 0.4) | 0;
  }
  return out;
}

/** The model's input computed by hand: (x / 255 - mean) / std, NCHW float32. */
function normalisedByHand(pixels: Uint8Array, batch: number, size: number): Float32Array {
  const out = new Float32Array(batch * 3 * size * size);
  for (let n = 0; n < batch; n++) for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) {
    const v = pixels[((n * size + y) * size + x) * 3 + c] as number;
    out[((n * 3 + c) * size + y) * size + x] = (v / 255 - (MEAN[c] as number)) / (STD[c] as number);
  }
  return out;
}

/** Runs the original graph with `tap` added as an output (any size), returning the raw NCHW tensor. */
async function referenceTap(bytes: Uint8Array, tap: string, elemType: number, input: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const m = OnnxModel.decode(bytes);
  const inputName = m.graph.inputs.find((i) => !m.graph.initializer(i.name))!.name;
  m.graph.setShape('input', inputName, ['N', 3, 'H', 'W']);
  m.graph.clearValueInfoShapes();
  for (const o of m.graph.outputs) m.graph.removeOutput(o.name);
  m.graph.addOutput({ name: tap, elemType });
  const session = await ort.InferenceSession.create(m.encode(), { intraOpNumThreads: 2 });
  const r = await session.run({ [inputName]: new ort.Tensor('float32', input, dims) });
  await session.release();
  return r[tap] as ort.Tensor;
}

function nchwToNhwc(src: ArrayLike<number>, n: number, c: number, h: number, w: number, f: (v: number) => number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    out[((b * h + y) * w + x) * c + k] = f(src[((b * c + k) * h + y) * w + x] as number);
  }
  return out;
}

describe('Backbone on MobileNetV2 int8', () => {
  const bytes = new Uint8Array(readFileSync(MODEL));

  test('several stages of one pass: shapes and strides at 256 px', async () => {
    const bb = await Backbone.open({ model: MODEL, taps: ['365_quantized', '426_quantized', '452_quantized'], inputSize: 256, threads: 2 });
    try {
      expect(bb.inputSize).toBe(256);
      expect(bb.levels.map((l) => [l.tap, l.scale, l.height, l.width, l.channels, l.stride])).toEqual([
        ['365_quantized', 256, 32, 32, 32, 8], ['426_quantized', 256, 16, 16, 96, 16], ['452_quantized', 256, 8, 8, 160, 32],
      ]);
      const f = await bb.extract(images(2, 256, 1), 2);
      expect(f.map((l) => [l.batch, l.height, l.width, l.channels, l.data.length])).toEqual([
        [2, 32, 32, 32, 2 * 32 * 32 * 32], [2, 16, 16, 96, 2 * 16 * 16 * 96], [2, 8, 8, 160, 2 * 8 * 8 * 160],
      ]);
      for (const l of f) expect(l.data.every(Number.isFinite)).toBe(true);
    } finally {
      await bb.dispose();
    }
  });

  test("the authors' style: one tap at scales [512, 256, 128], largest first", async () => {
    const bb = await Backbone.open({ model: bytes, taps: ['426_quantized'], scales: [256, 512, 128], threads: 2 });
    try {
      expect(bb.inputSize).toBe(512);
      expect(bb.levels.map((l) => [l.name, l.height, l.channels, l.stride])).toEqual([
        ['426_quantized@512', 32, 96, 16], ['426_quantized@256', 16, 96, 16], ['426_quantized@128', 8, 96, 16],
      ]);
      const px = images(1, 512, 2);
      const f = await bb.extract(px, 1);
      expect(f.map((l) => l.height)).toEqual([32, 16, 8]);
      // The 512 level goes through an identity Resize: it must equal a single 512 px pass.
      const single = await Backbone.open({ model: bytes, taps: ['426_quantized'], inputSize: 512, threads: 2 });
      const g = await single.extract(px, 1);
      await single.dispose();
      expect(Buffer.from(f[0]!.data.buffer).equals(Buffer.from(g[0]!.data.buffer))).toBe(true);
      // handOver: the same features, the pixels' buffer detached after the last scale's run (not before:
      // every scale reads it); a view into a larger buffer is copied, never detached
      const own = px.slice();
      const h = await bb.extract(own, 1, { handOver: true });
      expect(h.map((l) => Buffer.from(l.data.buffer, l.data.byteOffset, l.data.byteLength).equals(Buffer.from(f[h.indexOf(l)]!.data.buffer)))).toEqual([true, true, true]);
      expect(own.length).toBe(0);
      const pool = new Uint8Array(px.length + 16);
      const view = pool.subarray(16);
      view.set(px);
      await bb.extract(view, 1, { handOver: true });
      expect([view.length, pool.length]).toEqual([px.length, px.length + 16]);
      await expect(bb.extract(px, 1, { handOver: 1 } as never)).rejects.toThrow(/options.handOver/);
      await expect(bb.extract(px, 1, { copy: false } as never)).rejects.toThrow(/options.copy/);
    } finally {
      await bb.dispose();
    }
  });

  test('dequantised taps equal (q - zero_point) * scale of the unmodified graph fed a hand-normalised input', async () => {
    const size = 224;
    const batch = 2;
    const px = images(batch, size, 3);
    const bb = await Backbone.open({ model: MODEL, taps: ['365_quantized', '452_quantized'], inputSize: size, threads: 2 });
    const ours = await bb.extract(px, batch);
    await bb.dispose();
    const m = OnnxModel.decode(bytes);
    for (const [i, tap] of ['365_quantized', '452_quantized'].entries()) {
      const producer = m.graph.producer(tap)!;
      expect(producer.opType).toBe('QLinearAdd');
      const scale = tensorValues(m.graph.initializer(producer.inputs[6]!)!)[0]!;
      const zp = tensorValues(m.graph.initializer(producer.inputs[7]!)!)[0]!;
      const q = await referenceTap(bytes, tap, DataType.UINT8, normalisedByHand(px, batch, size), [batch, 3, size, size]);
      expect(q.type).toBe('uint8');
      const [n, c, h, w] = q.dims as number[];
      const expected = nchwToNhwc(q.data as Uint8Array, n!, c!, h!, w!, (v) => (v - zp) * scale);
      const got = ours[i]!;
      expect([got.batch, got.channels, got.height, got.width]).toEqual([n, c, h, w]);
      // Rounding of the folded Mul+Add may move a value across a quantisation step of the input: allow one
      // step on a handful of elements, nothing more.
      let differ = 0;
      let maxDiff = 0;
      for (let k = 0; k < expected.length; k++) {
        const d = Math.abs((expected[k] as number) - (got.data[k] as number));
        if (d > 1e-6) differ++;
        maxDiff = Math.max(maxDiff, d);
      }
      expect(differ / expected.length).toBeLessThan(0.01);
      expect(maxDiff).toBeLessThanOrEqual(3 * scale + 1e-6);
    }
  });

  test('a batch of 3 equals three batches of 1', async () => {
    const bb = await Backbone.open({ model: MODEL, taps: ['365_quantized', '452_quantized'], inputSize: 256, threads: 2 });
    try {
      const px = images(3, 256, 4);
      const all = await bb.extract(px, 3);
      for (let n = 0; n < 3; n++) {
        const one = await bb.extract(px.slice(n * 256 * 256 * 3, (n + 1) * 256 * 256 * 3), 1);
        for (const [l, level] of one.entries()) {
          const per = level.data.length;
          expect(Array.from(all[l]!.data.subarray(n * per, (n + 1) * per))).toEqual(Array.from(level.data));
        }
      }
    } finally {
      await bb.dispose();
    }
  });

  test('unknown taps and bad sizes give typed errors naming the parameter', async () => {
    const err = await Backbone.open({ model: MODEL, taps: ['365_quantized', 'no_such_tensor'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HgadArgumentError);
    expect((err as HgadArgumentError).parameter).toBe('taps[1]');
    expect((err as Error).message).toMatch(/a tensor of the model; e\.g\. .*_quantized/);
    expect((err as Error).message).toContain('no_such_tensor');
    await expect(Backbone.open({ model: MODEL, taps: ['365_quantized'], inputSize: 8 })).rejects.toMatchObject({ parameter: 'inputSize', code: 'INVALID_ARGUMENT' });
    await expect(Backbone.open({ model: MODEL, taps: ['365_quantized'], scales: [256, 100.5] })).rejects.toMatchObject({ parameter: 'scales[1]' });
    await expect(Backbone.open({ model: MODEL, taps: [] })).rejects.toMatchObject({ parameter: 'taps' });
    await expect(Backbone.open({ model: MODEL })).rejects.toMatchObject({ parameter: 'taps' });
    await expect(Backbone.open({ model: MODEL, taps: ['365_quantized'], std: [0.2, 0, 0.2] })).rejects.toMatchObject({ parameter: 'std' });
    await expect(Backbone.open({ model: 'not-a-preset', taps: ['x'] })).rejects.toMatchObject({ parameter: 'model' });
    const bb = await Backbone.open({ model: MODEL, taps: ['452_quantized'], inputSize: 64, threads: 1 });
    try {
      await expect(bb.extract(new Uint8Array(64 * 64 * 3), 2)).rejects.toMatchObject({ parameter: 'pixels' });
      await expect(bb.extract(new Uint8Array(64 * 64 * 3), 0)).rejects.toMatchObject({ parameter: 'batch' });
      await expect(bb.extract(new Float32Array(64 * 64 * 3) as unknown as Uint8Array, 1)).rejects.toMatchObject({ parameter: 'pixels' });
    } finally {
      await bb.dispose();
    }
    await expect(bb.extract(new Uint8Array(64 * 64 * 3), 1)).rejects.toBeInstanceOf(HgadError);
  });

  test('a truncated or non-ONNX file is an HgadError, not a crash', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hgad-features-'));
    try {
      for (const cut of [100, 1_000_000, bytes.length - 1]) {
        const file = path.join(dir, `cut${cut}.onnx`);
        writeFileSync(file, bytes.subarray(0, cut));
        const e = await Backbone.open({ model: file, taps: ['365_quantized'] }).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(HgadError);
        expect((e as HgadError).code).toBe('MODEL_FILE');
      }
      const junk = path.join(dir, 'junk.onnx');
      writeFileSync(junk, Buffer.from('this is not a protobuf file at all'));
      await expect(Backbone.open({ model: junk, taps: ['a'] })).rejects.toMatchObject({ code: 'MODEL_FILE' });
      await expect(Backbone.open({ model: path.join(dir, 'missing.onnx'), taps: ['a'] })).rejects.toMatchObject({ code: 'IO' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Backbone on the demo backbone (float taps, one of them a graph output)', () => {
  test("opens by name with the preset's taps and size; values equal the unmodified graph fed by hand", async () => {
    const bb = await Backbone.open({ model: 'demo', threads: 2 });
    try {
      expect(bb.inputSize).toBe(256);
      expect(bb.levels.map((l) => [l.tap, l.height, l.channels, l.stride])).toEqual([
        ['demo_s4', 64, 32, 4], ['demo_s8', 32, 64, 8], ['demo_s16', 16, 96, 16],
      ]);
      const size = 256;
      const px = images(2, size, 5);
      const ours = await bb.extract(px, 2);
      const input = normalisedByHand(px, 2, size);
      for (const [i, tap] of DEMO_TAPS.entries()) {
        const ref = await referenceTap(buildDemoBackbone(0), tap, DataType.FLOAT, input, [2, 3, size, size]);
        const [n, c, h, w] = ref.dims as number[];
        const expected = nchwToNhwc(ref.data as Float32Array, n!, c!, h!, w!, (v) => v);
        let maxRel = 0;
        let scale = 0;
        for (let k = 0; k < expected.length; k++) scale = Math.max(scale, Math.abs(expected[k] as number));
        for (let k = 0; k < expected.length; k++) maxRel = Math.max(maxRel, Math.abs((expected[k] as number) - (ours[i]!.data[k] as number)) / scale);
        expect(maxRel).toBeLessThan(1e-4);
        // informative, not dead: a good share of positive responses
        const positive = expected.filter((v) => v > 0).length / expected.length;
        expect(positive).toBeGreaterThan(0.1);
      }
    } finally {
      await bb.dispose();
    }
  });

  test('the same seed gives the same bytes; another seed other filters; it says it is a demo', () => {
    const a = buildDemoBackbone(0);
    expect(Buffer.from(buildDemoBackbone(0)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(buildDemoBackbone(1)).equals(Buffer.from(a))).toBe(false);
    const m = OnnxModel.decode(a);
    expect(m.docString).toMatch(/DEMO backbone/);
    expect(m.metadata['hgad.demo_backbone']).toBe('true');
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['demo_s16']);
    expect(() => buildDemoBackbone(-1)).toThrow(RangeError);
  });
});
