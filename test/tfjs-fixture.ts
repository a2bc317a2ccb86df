// A small generated TF.js layers model (every layer kind the converter handles, a classifier head it must
// leave out), npm-style tarballs of it, and an independent float64 forward pass with Keras semantics
// (channels-last, TF "same" padding, unfolded batch norm) to check the converted ONNX against.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

import { mulberry32 } from '../lib/data/random';

export const SIZE = 12;
export const CAFFE: [number, number, number] = [103.939, 116.779, 123.68];
export const MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const STD: [number, number, number] = [0.229, 0.224, 0.225];
export const OUTPUTS: Array<[string, string]> = [['feat', 'out1'], ['deep', 'bn_alone']];

type Cfg = Record<string, unknown>;
interface LayerSpec { name: string; cls: string; config: Cfg; inputs: string[] }

const conv = (name: string, filters: number, k: number, input: string, extra: Cfg = {}): LayerSpec => ({
  name, cls: 'Conv2D', inputs: [input],
  config: { filters, kernel_size: [k, k], strides: [1, 1], padding: 'valid', data_format: 'channels_last', dilation_rate: [1, 1], activation: 'linear', use_bias: true, ...extra },
});
const bn = (name: string, input: string, extra: Cfg = {}): LayerSpec => ({ name, cls: 'BatchNormalization', inputs: [input], config: { axis: [3], epsilon: 0.001, center: true, scale: true, ...extra } });
const act = (name: string, activation: string, input: string): LayerSpec => ({ name, cls: 'Activation', inputs: [input], config: { activation } });

export const LAYERS: LayerSpec[] = [
  { name: 'input_1', cls: 'InputLayer', inputs: [], config: { batch_input_shape: [null, SIZE, SIZE, 3], dtype: 'float32' } },
  { name: 'pad', cls: 'ZeroPadding2D', inputs: ['input_1'], config: { padding: [[1, 1], [2, 1]], data_format: 'channels_last' } },
  conv('conv1', 4, 3, 'pad'),
  bn('bn1', 'conv1'),
  act('act1', 'relu', 'bn1'),
  { name: 'pool', cls: 'MaxPooling2D', inputs: ['act1'], config: { pool_size: [2, 2], strides: [1, 1], padding: 'same', data_format: 'channels_last' } },
  conv('a_conv', 5, 1, 'pool', { activation: 'relu', use_bias: false }),
  conv('b_conv', 5, 3, 'a_conv', { padding: 'same', dilation_rate: [2, 2] }),
  bn('bn_b', 'b_conv', { center: false, scale: false }),
  conv('short', 5, 1, 'pool', { activation: 'relu' }), // relu before its BN: that BN must not be folded
  bn('bn_s', 'short'),
  { name: 'add', cls: 'Add', inputs: ['bn_b', 'bn_s'], config: {} },
  act('out1', 'relu', 'add'),
  conv('down', 6, 3, 'out1', { strides: [2, 2], padding: 'same' }),
  act('lin', 'linear', 'down'),
  bn('bn_alone', 'lin'),
  { name: 'gap', cls: 'GlobalAveragePooling2D', inputs: ['bn_alone'], config: {} },
  { name: 'fc', cls: 'Dense', inputs: ['gap'], config: { units: 2, activation: 'softmax', use_bias: true } },
];

export type Weights = Map<string, { shape: number[]; data: Float64Array }>;

/** Seeded weights for every layer (float32-representable, stored in float64). */
export function makeWeights(seed = 1): Weights {
  const rnd = mulberry32(seed);
  const w: Weights = new Map();
  const put = (name: string, shape: number[], f: () => number): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { shape, data: Float64Array.from(Float32Array.from({ length: n }, f)) });
  };
  const channels = new Map<string, number>([['input_1', 3]]);
  for (const l of LAYERS.slice(1)) {
    const cin = channels.get(l.inputs[0] as string) as number;
    let cout = cin;
    if (l.cls === 'Conv2D') {
      const k = (l.config.kernel_size as number[])[0] as number;
      cout = l.config.filters as number;
      put(`${l.name}/kernel`, [k, k, cin, cout], () => (rnd() - 0.5) * 0.02);
      if (l.config.use_bias !== false) put(`${l.name}/bias`, [cout], () => rnd() - 0.5);
    } else if (l.cls === 'BatchNormalization') {
      if (l.config.scale !== false) put(`${l.name}/gamma`, [cin], () => 0.5 + rnd());
      if (l.config.center !== false) put(`${l.name}/beta`, [cin], () => rnd() - 0.5);
      put(`${l.name}/moving_mean`, [cin], () => rnd() - 0.5);
      put(`${l.name}/moving_variance`, [cin], () => 0.2 + rnd());
    } else if (l.cls === 'Dense') {
      put('fc/kernel', [6, 2], () => rnd() - 0.5);
      put('fc/bias', [2], () => rnd() - 0.5);
      cout = 2;
    }
    channels.set(l.name, cout);
  }
  return w;
}

/** The package files: model.json and the float32 weights split over two shards. */
export function packageFiles(w: Weights, modelJson?: string): Map<string, Uint8Array> {
  const manifest = [...w.entries()].map(([name, v]) => ({ name, shape: v.shape, dtype: 'float32' }));
  const all = Buffer.concat([...w.values()].map((v) => Buffer.from(Float32Array.from(v.data).buffer)));
  const cut = Math.floor(all.length / 3) + 1; // not a multiple of 4: shards are byte ranges
  const json = modelJson ?? JSON.stringify({
    format: 'layers-model', generatedBy: 'hgad test', convertedBy: 'hgad test',
    modelTopology: {
      keras_version: '2.2.4-tf', backend: 'tensorflow',
      model_config: {
        class_name: 'Model',
        config: {
          name: 'tiny', input_layers: [['input_1', 0, 0]], output_layers: [['fc', 0, 0]],
          layers: LAYERS.map((l) => ({ name: l.name, class_name: l.cls, config: { name: l.name, ...l.config }, inbound_nodes: l.inputs.length ? [l.inputs.map((i) => [i, 0, 0, {}])] : [] })),
        },
      },
    },
    weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: manifest }],
  });
  return new Map<string, Uint8Array>([
    ['package/package.json', Buffer.from(JSON.stringify({ name: 'tiny-net', version: '1.0.0', license: 'ISC' }))],
    ['package/model/model.json', Buffer.from(json)],
    ['package/model/group1-shard1of2.bin', all.subarray(0, cut)],
    ['package/model/group1-shard2of2.bin', all.subarray(cut)],
  ]);
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar entry (header + data padded to 512). */
function tarEntry(name: string, data: Uint8Array, type = '0'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write(octal(0o644, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(data.length, 12), 124);
  h.write(octal(499162500, 12), 136);
  h.write(' '.repeat(8), 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, Buffer.from(data), pad]);
}

/** A gzipped tar of `files`, as npm pack writes one (a pax record for names longer than 100 bytes). */
export function tarball(files: Map<string, Uint8Array>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of files) {
    if (name.length > 100) {
      const rec = ` path=${name}\n`;
      let len = rec.length + 2;
      if (`${len}${rec}`.length !== len) len += 1;
      parts.push(tarEntry('PaxHeader', Buffer.from(`${len}${rec}`), 'x'));
    }
    parts.push(tarEntry(name, data));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts));
}

export function integrity(bytes: Uint8Array): string {
  return `sha512-${createHash('sha512').update(bytes).digest('base64')}`;
}

// ---- reference forward pass (float64, NHWC, one image) ----
interface Map3 { h: number; w: number; c: number; d: Float64Array }
const at = (m: Map3, y: number, x: number, c: number): number => m.d[(y * m.w + x) * m.c + c] as number;

function samePads(size: number, k: number, s: number, d: number): [number, number] {
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + (k - 1) * d + 1 - size, 0);
  return [Math.floor(total / 2), out];
}

function convRef(x: Map3, w: Weights, l: LayerSpec): Map3 {
  const K = w.get(`${l.name}/kernel`) as { shape: number[]; data: Float64Array };
  const [k, , cin, cout] = K.shape as [number, number, number, number];
  const s = (l.config.strides as number[])[0] as number;
  const d = (l.config.dilation_rate as number[])[0] as number;
  const same = l.config.padding === 'same';
  const [py, oh] = same ? samePads(x.h, k, s, d) : [0, Math.floor((x.h - (k - 1) * d - 1) / s) + 1];
  const [px, ow] = same ? samePads(x.w, k, s, d) : [0, Math.floor((x.w - (k - 1) * d - 1) / s) + 1];
  const bias = w.get(`${l.name}/bias`)?.data;
  const out: Map3 = { h: oh, w: ow, c: cout, d: new Float64Array(oh * ow * cout) };
  for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) for (let o = 0; o < cout; o++) {
    let acc = bias ? (bias[o] as number) : 0;
    for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) {
      const iy = y * s + ky * d - py;
      const ix = xx * s + kx * d - px;
      if (iy < 0 || ix < 0 || iy >= x.h || ix >= x.w) continue;
      for (let i = 0; i < cin; i++) acc += at(x, iy, ix, i) * (K.data[((ky * k + kx) * cin + i) * cout + o] as number);
    }
    out.d[(y * ow + xx) * cout + o] = l.config.activation === 'relu' ? Math.max(0, acc) : acc;
  }
  return out;
}

function map(x: Map3, f: (v: number, c: number) => number): Map3 {
  return { ...x, d: x.d.map((v, i) => f(v, i % x.c)) };
}

/** Keras' forward pass of LAYERS on one normalised NCHW image; returns each output NCHW. */
export function reference(w: Weights, nchw: Float32Array): Map<string, Float64Array> {
  const vals = new Map<string, Map3>();
  const x: Map3 = { h: SIZE, w: SIZE, c: 3, d: new Float64Array(SIZE * SIZE * 3) };
  for (let y = 0; y < SIZE; y++) for (let xx = 0; xx < SIZE; xx++) for (let c = 0; c < 3; c++) {
    // normalised RGB -> Keras caffe input: BGR, 0..255, minus the BGR means
    const rgb = (nchw[(2 - c) * SIZE * SIZE + y * SIZE + xx] as number) * (STD[2 - c] as number) + (MEAN[2 - c] as number);
    x.d[(y * SIZE + xx) * 3 + c] = rgb * 255 - (CAFFE[c] as number);
  }
  for (const l of LAYERS) {
    const inp = vals.get(l.inputs[0] ?? '') as Map3;
    let out: Map3;
    if (l.cls === 'InputLayer') out = x;
    else if (l.cls === 'ZeroPadding2D') {
      const [[t, b], [le, r]] = l.config.padding as [[number, number], [number, number]];
      out = { h: inp.h + t + b, w: inp.w + le + r, c: inp.c, d: new Float64Array((inp.h + t + b) * (inp.w + le + r) * inp.c) };
      for (let y = 0; y < inp.h; y++) for (let xx = 0; xx < inp.w; xx++) for (let c = 0; c < inp.c; c++) out.d[((y + t) * out.w + xx + le) * out.c + c] = at(inp, y, xx, c);
    } else if (l.cls === 'Conv2D') out = convRef(inp, w, l);
    else if (l.cls === 'BatchNormalization') {
      const g = w.get(`${l.name}/gamma`)?.data;
      const be = w.get(`${l.name}/beta`)?.data;
      const mu = (w.get(`${l.name}/moving_mean`) as { data: Float64Array }).data;
      const v = (w.get(`${l.name}/moving_variance`) as { data: Float64Array }).data;
      out = map(inp, (val, c) => ((val - (mu[c] as number)) / Math.sqrt((v[c] as number) + 0.001)) * (g ? (g[c] as number) : 1) + (be ? (be[c] as number) : 0));
    } else if (l.cls === 'Activation') out = l.config.activation === 'relu' ? map(inp, (v) => Math.max(0, v)) : inp;
    else if (l.cls === 'Add') {
      const other = vals.get(l.inputs[1] as string) as Map3;
      out = { ...inp, d: inp.d.map((v, i) => v + (other.d[i] as number)) };
    } else if (l.cls === 'MaxPooling2D') {
      // 2x2, stride 1, "same": one row/column of padding at the end, ignored by the max
      out = { ...inp, d: new Float64Array(inp.d.length) };
      for (let y = 0; y < inp.h; y++) for (let xx = 0; xx < inp.w; xx++) for (let c = 0; c < inp.c; c++) {
        let m = -Infinity;
        for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) if (y + dy < inp.h && xx + dx < inp.w) m = Math.max(m, at(inp, y + dy, xx + dx, c));
        out.d[(y * inp.w + xx) * inp.c + c] = m;
      }
    } else break; // the classifier head is not converted
    vals.set(l.name, out);
  }
  const result = new Map<string, Float64Array>();
  for (const [name, layer] of OUTPUTS) {
    const m = vals.get(layer) as Map3;
    const nchwOut = new Float64Array(m.d.length);
    for (let y = 0; y < m.h; y++) for (let xx = 0; xx < m.w; xx++) for (let c = 0; c < m.c; c++) nchwOut[(c * m.h + y) * m.w + xx] = at(m, y, xx, c);
    result.set(name, nchwOut);
  }
  return result;
}
