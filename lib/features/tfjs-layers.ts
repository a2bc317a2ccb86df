/**
 * A TF.js *layers* model (model.json from tfjs-converter + its weight shards) to ONNX, for the layers a
 * convolutional backbone is made of: InputLayer, ZeroPadding2D, Conv2D, BatchNormalization, Activation /
 * ReLU (relu, linear), Add, MaxPooling2D. Only the layers the requested outputs depend on are converted,
 * so a classifier head (pooling, Dense) is simply left out. Keras is channels-last; the ONNX graph is NCHW
 * and kernels are transposed HWIO -> OIHW.
 *
 * A BatchNormalization that only follows a Conv2D is folded into it, in float32 with every operation
 * rounded as numpy would (s = gamma / sqrt(var + eps); W' = W s; b' = (b - mean) s + beta), which makes the
 * weights bit-identical to a float32 reference fold. This is a one-off pass over the weights at
 * conversion time (about a second for ResNet-50), not a per-image path.
 */
import { endianness } from 'node:os';
import * as path from 'node:path';

import { HgadError } from '../errors';
import { GraphBuilder } from '../onnx/builder';
import { Attribute, DataType, attr } from '../onnx/proto';
import { WireError } from '../onnx/wire';

type Triple = [number, number, number];

export interface TfjsConvertOptions {
  /** Path of model.json among the files; weight shard paths are relative to its folder. */
  modelJson: string;
  /** [ONNX output name, Keras layer name] in output order. */
  outputs: Array<[string, string]>;
  /**
   * The ONNX input ("input", float32 NCHW RGB) is (x/255 - mean)/std. With `caffeBgrMean` the graph turns
   * that back into what Keras' "caffe" preprocessing gives the network: BGR, 0..255, minus these means.
   */
  input: { mean: Triple; std: Triple; caffeBgrMean?: Triple };
  docString?: string;
  metadata?: Record<string, string>;
}

interface Layer {
  name: string;
  className: string;
  config: Record<string, unknown>;
  inputs: string[];
}

interface Value {
  tensor: string;
  channels: number;
}

interface Weight {
  shape: number[];
  data?: Float32Array;
  dtype: string;
}

const f = Math.fround;

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

class Converter {
  private readonly b = new GraphBuilder();
  private readonly values = new Map<string, Value>();
  private readonly weights = new Map<string, Weight>();
  private readonly outputOf = new Map<string, string>(); // Keras layer -> ONNX output name

  constructor(private readonly files: ReadonlyMap<string, Uint8Array>, private readonly options: TfjsConvertOptions) {}

  fail(message: string): HgadError {
    return new HgadError('MODEL_FILE', `Cannot convert the TF.js model ${this.options.modelJson}: ${message}`, 'model');
  }

  convert(): Uint8Array {
    const json = this.files.get(this.options.modelJson);
    if (!json) throw this.fail('the file is not in the package');
    let doc: Record<string, unknown> | undefined;
    try {
      doc = obj(JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.length).toString('utf8')));
    } catch (e) {
      throw this.fail(`not valid JSON (${(e as Error).message})`);
    }
    const topology = obj(doc?.modelTopology);
    const modelConfig = obj(topology?.model_config) ?? topology;
    if (!doc || !modelConfig) throw this.fail('no modelTopology: not a TF.js layers model');
    if (modelConfig.class_name !== 'Model' && modelConfig.class_name !== 'Functional') {
      throw this.fail(`the model is a ${String(modelConfig.class_name)}; only functional Keras models (Model) are converted`);
    }
    const layerList = obj(modelConfig.config)?.layers;
    if (!Array.isArray(layerList) || layerList.length === 0) throw this.fail('modelTopology lists no layers');
    const layers = layerList.map((l, i) => this.parseLayer(l, i));
    const byName = new Map(layers.map((l) => [l.name, l]));
    if (byName.size !== layers.length) throw this.fail('two layers share a name');
    this.loadWeights(doc.weightsManifest);

    // Only what the outputs need, in the file's (topological) order.
    const needed = new Set<string>();
    const stack: string[] = [];
    for (const [out, layer] of this.options.outputs) {
      if (!byName.has(layer)) throw this.fail(`no layer "${layer}" (asked for output "${out}")`);
      if (this.outputOf.has(layer)) throw this.fail(`layer "${layer}" is asked for twice`);
      this.outputOf.set(layer, out);
      this.b.reserve(out);
      stack.push(layer);
    }
    while (stack.length > 0) {
      const name = stack.pop() as string;
      if (needed.has(name)) continue;
      needed.add(name);
      for (const i of (byName.get(name) as Layer).inputs) {
        if (!byName.has(i)) throw this.fail(`layer "${name}" reads "${i}", which is not a layer`);
        stack.push(i);
      }
    }
    const consumers = new Map<string, string[]>();
    for (const l of layers) if (needed.has(l.name)) for (const i of l.inputs) consumers.set(i, [...(consumers.get(i) ?? []), l.name]);

    const folded = new Set<string>();
    for (const l of layers) {
      if (!needed.has(l.name) || folded.has(l.name)) continue;
      const next = consumers.get(l.name);
      const bn = next?.length === 1 ? byName.get(next[0] as string) : undefined;
      // A Conv2D with its own activation applies it before the BN, which then cannot be folded.
      const fold = l.className === 'Conv2D' && (l.config.activation ?? 'linear') === 'linear' && !this.outputOf.has(l.name) &&
        bn?.className === 'BatchNormalization' && bn.inputs.length === 1;
      if (fold) {
        folded.add((bn as Layer).name);
        this.conv2d(l, bn as Layer);
      } else {
        this.layer(l);
      }
    }

    for (const [out, layer] of this.options.outputs) {
      const v = this.values.get(layer) as Value;
      if (v.tensor !== out) this.b.op('Identity', [v.tensor], `${out}_identity`, [], out);
      this.b.output({ name: out, elemType: DataType.FLOAT, shape: ['batch', v.channels, `${out}_height`, `${out}_width`] });
    }
    const model = this.b.build({
      graphName: 'tfjs_layers', opsets: [{ domain: '', version: 13 }], irVersion: 7, producer: 'hgad',
      ...(this.options.docString ? { docString: this.options.docString } : {}),
      ...(this.options.metadata ? { metadata: this.options.metadata } : {}),
    });
    return model.encode();
  }

  private parseLayer(raw: unknown, index: number): Layer {
    const l = obj(raw);
    const name = l?.name ?? obj(l?.config)?.name;
    if (!l || typeof name !== 'string' || typeof l.class_name !== 'string') throw this.fail(`layers[${index}] has no name or class_name`);
    const inbound = l.inbound_nodes;
    if (!Array.isArray(inbound) || inbound.length > 1) throw this.fail(`layer "${name}" must have one list of inbound nodes (shared layers are not supported)`);
    const inputs: string[] = [];
    for (const entry of (inbound[0] ?? []) as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || entry[1] !== 0 || entry[2] !== 0) {
        throw this.fail(`layer "${name}" has an inbound node in an unknown form: ${JSON.stringify(entry)}`);
      }
      inputs.push(entry[0]);
    }
    return { name, className: l.class_name, config: obj(l.config) ?? {}, inputs };
  }

  private loadWeights(manifest: unknown): void {
    if (!Array.isArray(manifest)) throw this.fail('no weightsManifest');
    if (endianness() !== 'LE') throw this.fail('TF.js weights are little-endian; this machine is not');
    const dir = path.posix.dirname(this.options.modelJson);
    manifest.forEach((group, gi) => {
      const g = obj(group);
      if (!g || !Array.isArray(g.paths) || !Array.isArray(g.weights)) throw this.fail(`weightsManifest[${gi}] needs paths and weights`);
      const shards = g.paths.map((p) => {
        const file = typeof p === 'string' ? path.posix.join(dir, p) : '';
        const bytes = this.files.get(file);
        if (!bytes) throw this.fail(`the weight file ${file || JSON.stringify(p)} is not in the package`);
        return bytes;
      });
      const total = shards.reduce((a, s) => a + s.length, 0);
      const all = new Uint8Array(total); // one aligned copy per group
      let at = 0;
      for (const s of shards) {
        all.set(s, at);
        at += s.length;
      }
      let off = 0;
      for (const w of g.weights as unknown[]) {
        const e = obj(w);
        const shape = e?.shape;
        if (!e || typeof e.name !== 'string' || !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          throw this.fail(`weightsManifest[${gi}] has an entry without name or shape`);
        }
        const q = obj(e.quantization);
        const dtype = String(q?.dtype ?? e.dtype);
        const size = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1, int8: 1, bool: 1 }[dtype];
        if (size === undefined) throw this.fail(`weight "${e.name}" has the unknown dtype ${dtype}`);
        const n = (shape as number[]).reduce((a, d) => a * d, 1);
        if (off + n * size > total) throw this.fail(`the weight files of group ${gi} hold ${total} bytes; "${e.name}" ends at byte ${off + n * size}`);
        const entry: Weight = { shape: shape as number[], dtype: q ? `quantized ${dtype}` : dtype };
        if (!q && dtype === 'float32') {
          entry.data = off % 4 === 0 ? new Float32Array(all.buffer, off, n) : new Float32Array(all.slice(off, off + 4 * n).buffer);
        }
        this.weights.set(e.name, entry);
        off += n * size;
      }
      if (off !== total) throw this.fail(`weightsManifest[${gi}] describes ${off} bytes but its files hold ${total}`);
    });
  }

  private weight(layer: string, key: string, shape: number[]): Float32Array {
    const w = this.weights.get(`${layer}/${key}`);
    if (!w) throw this.fail(`no weight "${layer}/${key}" in the weights manifest`);
    if (!w.data) throw this.fail(`weight "${layer}/${key}" is ${w.dtype}; only float32 weights are converted`);
    if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
      throw this.fail(`weight "${layer}/${key}" has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    return w.data;
  }

  private input(l: Layer, i = 0): Value {
    const name = l.inputs[i];
    const v = name === undefined ? undefined : this.values.get(name);
    if (!v) throw this.fail(`layer "${l.name}" has no input ${i}`);
    return v;
  }

  /** The tensor name of a layer's result: the ONNX output name when it is one. */
  private emit(l: Layer, opType: string, inputs: string[], attributes: Attribute[], channels: number): void {
    const tensor = this.b.op(opType, inputs, l.name, attributes, this.outputOf.get(l.name));
    this.values.set(l.name, { tensor, channels });
  }

  private pair(l: Layer, key: string, fallback?: [number, number]): [number, number] {
    const v = l.config[key] ?? fallback;
    const p = typeof v === 'number' ? [v, v] : v;
    if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isSafeInteger(x) && x >= 1)) {
      throw this.fail(`layer "${l.name}": ${key} must be two positive integers, not ${JSON.stringify(v)}`);
    }
    return [p[0], p[1]];
  }

  private channelsLast(l: Layer): void {
    const df = l.config.data_format;
    if (df !== undefined && df !== 'channels_last') throw this.fail(`layer "${l.name}" has data_format ${String(df)}; only channels_last is converted`);
  }

  private layer(l: Layer): void {
    const c = l.config;
    switch (l.className) {
      case 'InputLayer': return this.inputLayer(l);
      case 'Conv2D': return this.conv2d(l, undefined);
      case 'BatchNormalization': return this.batchNorm(l);
      case 'ZeroPadding2D': {
        this.channelsLast(l);
        const p = c.padding;
        const rows = typeof p === 'number' ? [p, p] : Array.isArray(p) && typeof p[0] === 'number' ? [p[0], p[0]] : Array.isArray(p) ? p[0] : undefined;
        const cols = typeof p === 'number' ? [p, p] : Array.isArray(p) && typeof p[1] === 'number' ? [p[1], p[1]] : Array.isArray(p) ? p[1] : undefined;
        const ok = (x: unknown): x is [number, number] => Array.isArray(x) && x.length === 2 && x.every((v) => Number.isSafeInteger(v) && v >= 0);
        if (!ok(rows) || !ok(cols)) throw this.fail(`layer "${l.name}": padding ${JSON.stringify(p)} is not understood`);
        const x = this.input(l);
        const pads = this.b.constant(`${l.name}_pads`, [8], BigInt64Array.from([0, 0, rows[0], cols[0], 0, 0, rows[1], cols[1]], BigInt));
        return this.emit(l, 'Pad', [x.tensor, pads], [attr.string('mode', 'constant')], x.channels);
      }
      case 'Activation': case 'ReLU': {
        const x = this.input(l);
        const relu = l.className === 'ReLU'
          ? (c.max_value ?? null) === null && (c.negative_slope ?? 0) === 0 && (c.threshold ?? 0) === 0
          : c.activation === 'relu';
        if (relu) return this.emit(l, 'Relu', [x.tensor], [], x.channels);
        if (l.className === 'Activation' && c.activation === 'linear') return this.alias(l, x);
        throw this.fail(`layer "${l.name}" (${l.className} ${JSON.stringify(c.activation ?? c)}) is not supported; relu and linear are`);
      }
      case 'Add': {
        if (l.inputs.length < 2) throw this.fail(`layer "${l.name}" adds fewer than two tensors`);
        const xs = l.inputs.map((_, i) => this.input(l, i));
        if (xs.some((x) => x.channels !== xs[0]?.channels)) throw this.fail(`layer "${l.name}" adds tensors of different channel counts`);
        let acc = (xs[0] as Value).tensor;
        for (let i = 1; i < xs.length - 1; i++) acc = this.b.op('Add', [acc, (xs[i] as Value).tensor], `${l.name}_${i}`);
        return this.emit(l, 'Add', [acc, (xs[xs.length - 1] as Value).tensor], [], (xs[0] as Value).channels);
      }
      case 'MaxPooling2D': {
        this.channelsLast(l);
        const k = this.pair(l, 'pool_size', [2, 2]);
        const s = c.strides === null || c.strides === undefined ? k : this.pair(l, 'strides');
        const x = this.input(l);
        return this.emit(l, 'MaxPool', [x.tensor], [attr.ints('kernel_shape', k), attr.ints('strides', s), ...this.padding(l, k, s, [1, 1])], x.channels);
      }
      default:
        throw this.fail(`layer "${l.name}" is a ${l.className}, which the converter does not support (needed for the requested outputs)`);
    }
  }

  private alias(l: Layer, x: Value): void {
    const out = this.outputOf.get(l.name);
    if (out) this.emit(l, 'Identity', [x.tensor], [], x.channels);
    else this.values.set(l.name, x);
  }

  /** ONNX padding for Keras "valid" / "same": explicit pads at stride 1, else SAME_UPPER (extra at the end, as TF). */
  private padding(l: Layer, k: [number, number], s: [number, number], d: [number, number]): Attribute[] {
    const mode = l.config.padding ?? 'valid';
    if (mode === 'valid') return [attr.ints('pads', [0, 0, 0, 0])];
    if (mode !== 'same') throw this.fail(`layer "${l.name}" has padding ${JSON.stringify(mode)}; valid and same are supported`);
    if (s[0] === 1 && s[1] === 1) {
      const th = d[0] * (k[0] - 1);
      const tw = d[1] * (k[1] - 1);
      return [attr.ints('pads', [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)])];
    }
    return [attr.string('auto_pad', 'SAME_UPPER')];
  }

  private inputLayer(l: Layer): void {
    const shape = l.config.batch_input_shape ?? l.config.batch_shape;
    if (Array.isArray(shape) && (shape.length !== 4 || shape[3] !== 3)) throw this.fail(`the input "${l.name}" has shape ${JSON.stringify(shape)}; an [N, H, W, 3] image is expected`);
    const { mean, std, caffeBgrMean } = this.options.input;
    let x = this.b.input({ name: 'input', elemType: DataType.FLOAT, shape: ['batch', 3, 'height', 'width'] });
    if (caffeBgrMean) {
      // normalised RGB -> 0..1 RGB -> 0..255 -> BGR -> minus the Caffe means; each step in float32 as written.
      const per = (v: Triple): Float32Array => Float32Array.from(v);
      x = this.b.op('Mul', [x, this.b.constant('input_std', [1, 3, 1, 1], per(std))], 'input_unscale');
      x = this.b.op('Add', [x, this.b.constant('input_mean', [1, 3, 1, 1], per(mean))], 'input_unshift');
      x = this.b.op('Mul', [x, this.b.constant('input_255', [], Float32Array.of(255))], 'input_to_255');
      x = this.b.op('Slice', [x, this.b.constant('bgr_starts', [1], BigInt64Array.of(-1n)), this.b.constant('bgr_ends', [1], BigInt64Array.of(-(2n ** 63n) + 1n)),
        this.b.constant('bgr_axes', [1], BigInt64Array.of(1n)), this.b.constant('bgr_steps', [1], BigInt64Array.of(-1n))], 'input_rgb_to_bgr');
      x = this.b.op('Sub', [x, this.b.constant('caffe_mean', [1, 3, 1, 1], per(caffeBgrMean))], 'input_caffe');
    }
    this.values.set(l.name, { tensor: x, channels: 3 });
  }

  /** Conv2D, with the BatchNormalization `bn` folded in when given. */
  private conv2d(l: Layer, bn: Layer | undefined): void {
    this.channelsLast(l);
    const c = l.config;
    if ((c.groups ?? 1) !== 1) throw this.fail(`layer "${l.name}" is a grouped convolution; only groups = 1 is converted`);
    const act = c.activation ?? 'linear';
    if (act !== 'linear' && act !== 'relu') throw this.fail(`layer "${l.name}" has activation ${JSON.stringify(act)}; relu and linear are supported`);
    const x = this.input(l);
    const k = this.pair(l, 'kernel_size');
    const s = this.pair(l, 'strides', [1, 1]);
    const d = this.pair(l, 'dilation_rate', [1, 1]);
    const cout = c.filters;
    if (!Number.isSafeInteger(cout) || (cout as number) < 1) throw this.fail(`layer "${l.name}" has no valid filters count`);
    const o = cout as number;
    const cin = x.channels;
    const kernel = this.weight(l.name, 'kernel', [k[0], k[1], cin, o]);
    const bias = c.use_bias === false ? undefined : this.weight(l.name, 'bias', [o]);

    const scale = new Float32Array(o).fill(1);
    const shift = new Float32Array(o);
    if (bias) shift.set(bias);
    if (bn) {
      const p = this.bnParams(bn, o);
      for (let j = 0; j < o; j++) {
        scale[j] = f((p.gamma[j] as number) / f(Math.sqrt(f((p.variance[j] as number) + p.eps))));
        shift[j] = f(f(f((shift[j] as number) - (p.mean[j] as number)) * (scale[j] as number)) + (p.beta[j] as number));
      }
    }
    // HWIO -> OIHW, each weight times its output channel's scale (exact when the scale is 1).
    const w = new Float32Array(o * cin * k[0] * k[1]);
    const area = k[0] * k[1];
    for (let y = 0; y < k[0]; y++) {
      for (let xk = 0; xk < k[1]; xk++) {
        for (let i = 0; i < cin; i++) {
          const src = ((y * k[1] + xk) * cin + i) * o;
          const dst = i * area + y * k[1] + xk;
          for (let j = 0; j < o; j++) w[j * cin * area + dst] = (kernel[src + j] as number) * (scale[j] as number);
        }
      }
    }
    const target = bn ?? l;
    const inputs = [x.tensor, this.b.constant(`${target.name}_weight`, [o, cin, k[0], k[1]], w)];
    if (bias || bn) inputs.push(this.b.constant(`${target.name}_bias`, [o], shift));
    const attrs = [attr.ints('dilations', d), attr.int('group', 1), attr.ints('kernel_shape', k), ...this.padding(l, k, s, d), attr.ints('strides', s)];
    if (act === 'relu') {
      const conv = this.b.op('Conv', inputs, target.name, attrs);
      this.emit(target, 'Relu', [conv], [], o);
    } else {
      this.emit(target, 'Conv', inputs, attrs, o);
    }
  }

  private bnParams(bn: Layer, channels: number): { gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array; eps: number } {
    const c = bn.config;
    const axis = Array.isArray(c.axis) && c.axis.length === 1 ? c.axis[0] : c.axis ?? -1;
    if (axis !== 3 && axis !== -1) throw this.fail(`layer "${bn.name}" normalises axis ${JSON.stringify(c.axis)}; only the channel axis (3 / -1) is converted`);
    const eps = typeof c.epsilon === 'number' && c.epsilon >= 0 ? f(c.epsilon) : NaN;
    if (Number.isNaN(eps)) throw this.fail(`layer "${bn.name}" has no valid epsilon`);
    return {
      gamma: c.scale === false ? new Float32Array(channels).fill(1) : this.weight(bn.name, 'gamma', [channels]),
      beta: c.center === false ? new Float32Array(channels) : this.weight(bn.name, 'beta', [channels]),
      mean: this.weight(bn.name, 'moving_mean', [channels]),
      variance: this.weight(bn.name, 'moving_variance', [channels]),
      eps,
    };
  }

  private batchNorm(l: Layer): void {
    const x = this.input(l);
    const p = this.bnParams(l, x.channels);
    const n = x.channels;
    const inputs = [x.tensor, this.b.constant(`${l.name}_gamma`, [n], p.gamma), this.b.constant(`${l.name}_beta`, [n], p.beta),
      this.b.constant(`${l.name}_mean`, [n], p.mean), this.b.constant(`${l.name}_var`, [n], p.variance)];
    this.emit(l, 'BatchNormalization', inputs, [attr.float('epsilon', p.eps)], n);
  }
}

/** Converts a TF.js layers model among `files` (name -> bytes, e.g. from readTar) to ONNX bytes. */
export function convertTfjsLayersModel(files: ReadonlyMap<string, Uint8Array>, options: TfjsConvertOptions): Uint8Array {
  try {
    return new Converter(files, options).convert();
  } catch (e) {
    if (e instanceof WireError) throw new HgadError('MODEL_FILE', `Cannot convert the TF.js model ${options.modelJson}: ${e.message}`, 'model');
    throw e;
  }
}
