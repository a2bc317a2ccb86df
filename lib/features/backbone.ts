/**
 * Backbone feature extraction with onnxruntime-node. All per-pixel work (layout, resizing, normalisation,
 * dequantisation, NHWC transposes) runs inside the rewritten ONNX graph (graph.ts); this file only checks
 * arguments, runs the session once per scale and labels the results. The session lives on its own
 * worker thread (session-thread.ts), so a backbone pass never blocks the event loop.
 */
import { readFile } from 'node:fs/promises';

import { HgadArgumentError, HgadError } from '../errors';
import { OnnxModel } from '../onnx/model';
import { WireError } from '../onnx/wire';
import { checkKeys } from '../validate';
import { PIXELS_INPUT, SIZES_INPUT, prepareGraph } from './graph';
import { SessionThread, WireTensor } from './session-thread';
import { IMAGENET_MEAN, IMAGENET_STD, PRESETS, Preset, resolveBackbone } from './presets';

export interface BackboneOptions {
  /** An .onnx path, a preset name (see PRESETS), or ONNX bytes. */
  model: string | Uint8Array;
  /** Intermediate tensor names to tap; a preset's default taps when omitted. */
  taps?: string[];
  /** The authors' setup: input sizes, e.g. [512, 256, 128]; each tap at each scale is a level. */
  scales?: number[];
  /** The single pass size when `scales` is absent (default: the preset's, else 256). */
  inputSize?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
  /** Intra-op threads of the onnxruntime session (default: onnxruntime's choice, one per core). */
  threads?: number;
  /** Where presets are downloaded (see resolveBackbone). */
  cacheDir?: string;
}

/** One level's features, NHWC (what HgadModel.trainStep / score take). */
export interface ExtractOptions {
  /**
   * Hand the pixels' buffer over to the backbone's thread instead of copying it there (saves a copy on
   * the JavaScript thread): `pixels` is detached (length 0) once the call returns. Ignored for an array
   * that is a view into a larger buffer. Default false.
   */
  handOver?: boolean;
}

export interface FeatureLevel {
  data: Float32Array;
  batch: number;
  height: number;
  width: number;
  channels: number;
}

export interface LevelInfo {
  /** `${tap}@${scale}` */
  name: string;
  tap: string;
  scale: number;
  channels: number;
  height: number;
  width: number;
  /** Input pixels per feature-map position at this scale (scale / height). */
  stride: number;
}

/** Input sizes the backbone graph accepts (pixels per side). */
export const MIN_SIZE = 16;
export const MAX_SIZE = 8192;
/**
 * Normalisation constants: pixels (0..1) become (x - mean) / std in float32 inside the graph. A mean
 * beyond +-10 has no meaning for pixels in [0, 1]; std down to 1e-3 covers 0..255-scaled models (std
 * 1/255). Within these bounds normalised values stay within +-1.1e4; beyond them a typo (std 1e-9,
 * mean 1e30) turns every feature into noise or overflows the flow.
 */
export const MEAN_LIMIT = 10;
export const STD_RANGE: readonly [number, number] = [1e-3, 1e3];

function checkSize(parameter: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < MIN_SIZE || v > MAX_SIZE) {
    throw new HgadArgumentError(parameter, `an integer pixel size in [${MIN_SIZE}, ${MAX_SIZE}]`, v);
  }
  return v;
}

/** Why a mean or std triple is unusable, or null when it is fine. */
export function tripleProblem(v: unknown, std: boolean): string | null {
  const [lo, hi] = std ? STD_RANGE : [-MEAN_LIMIT, MEAN_LIMIT];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && x >= lo && x <= hi)) {
    return `an array of 3 numbers (R, G, B) in [${lo}, ${hi}]`;
  }
  return null;
}

function checkTriple(parameter: string, v: unknown, std: boolean): [number, number, number] {
  const problem = tripleProblem(v, std);
  if (problem !== null) throw new HgadArgumentError(parameter, problem, v);
  const a = v as number[];
  return [a[0]!, a[1]!, a[2]!];
}

interface Resolved {
  bytes: Uint8Array;
  source: string;
  preset?: Preset;
}

async function loadModel(model: unknown, cacheDir: string | undefined): Promise<Resolved> {
  if (model instanceof Uint8Array || Object.prototype.toString.call(model) === '[object Uint8Array]') {
    return { bytes: model as Uint8Array, source: 'the given ONNX bytes' };
  }
  if (typeof model !== 'string' || model.length === 0) {
    throw new HgadArgumentError('model', 'an .onnx path, a preset name or ONNX bytes (Uint8Array)', model);
  }
  const preset = PRESETS[model];
  if (preset?.build) return { bytes: preset.build(), source: `the ${model} preset`, preset };
  const { path } = await resolveBackbone(model, cacheDir === undefined ? {} : { cacheDir });
  try {
    const bytes = await readFile(path);
    return preset ? { bytes, source: path, preset } : { bytes, source: path };
  } catch (e) {
    throw new HgadError('IO', `Cannot read the backbone ${path}: ${(e as Error).message}`, 'model');
  }
}

export class Backbone {
  readonly levels: LevelInfo[];
  readonly inputSize: number;
  readonly taps: readonly string[];
  readonly scales: readonly number[];
  private session: SessionThread | null;
  private readonly outputs: string[];
  private readonly resize: boolean;

  private constructor(session: SessionThread, outputs: string[], taps: string[], scales: number[], resize: boolean, levels: LevelInfo[]) {
    this.session = session;
    this.outputs = outputs;
    this.taps = taps;
    this.scales = scales;
    this.inputSize = scales[0] as number;
    this.resize = resize;
    this.levels = levels;
  }

  static async open(options: BackboneOptions): Promise<Backbone> {
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { model, taps, ... }', options);
    checkKeys('options', options, ['model', 'taps', 'scales', 'inputSize', 'mean', 'std', 'threads', 'cacheDir']);
    const loaded = await loadModel(options.model, options.cacheDir);
    const preset = loaded.preset;
    const taps = options.taps ?? preset?.taps;
    if (!Array.isArray(taps) || taps.length === 0 || !taps.every((t) => typeof t === 'string' && t.length > 0)) {
      throw new HgadArgumentError('taps', 'a non-empty array of tensor names (required for a model that is not a preset)', taps);
    }
    if (new Set(taps).size !== taps.length) throw new HgadArgumentError('taps', 'distinct tensor names', taps);
    let scales: number[];
    if (options.scales !== undefined) {
      if (!Array.isArray(options.scales) || options.scales.length === 0) throw new HgadArgumentError('scales', 'a non-empty array of pixel sizes', options.scales);
      options.scales.forEach((s, i) => checkSize(`scales[${i}]`, s));
      if (new Set(options.scales).size !== options.scales.length) throw new HgadArgumentError('scales', 'distinct sizes', options.scales);
      scales = [...options.scales].sort((a, b) => b - a);
    } else if (options.inputSize !== undefined) {
      scales = [checkSize('inputSize', options.inputSize)];
    } else {
      scales = preset?.scales ? [...preset.scales].sort((a, b) => b - a) : [preset?.inputSize ?? 256];
    }
    const mean = checkTriple('mean', options.mean ?? preset?.mean ?? IMAGENET_MEAN, false);
    const std = checkTriple('std', options.std ?? preset?.std ?? IMAGENET_STD, true);
    if (options.threads !== undefined && (!Number.isSafeInteger(options.threads) || options.threads < 1 || options.threads > 1024)) {
      throw new HgadArgumentError('threads', 'an integer in [1, 1024]', options.threads);
    }

    let model: OnnxModel;
    try {
      model = OnnxModel.decode(loaded.bytes);
    } catch (e) {
      if (e instanceof WireError) throw new HgadError('MODEL_FILE', `${loaded.source} is not a valid ONNX model (truncated or damaged?): ${e.message}`, 'model');
      throw e;
    }
    const resize = scales.length > 1;
    const prepared = prepareGraph(model, { taps, mean, std, resize });
    let session: SessionThread;
    try {
      session = await SessionThread.create(prepared.bytes, {
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        interOpNumThreads: 1,
        ...(options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
        logSeverityLevel: 3,
        // onnxruntime's pool threads spin after each operator by default, waiting for the next one. Here
        // they share the cores with the flow's pool and libvips, and their spinning took the CPU those
        // needed: with it off, in alternated runs (MobileNetV2 int8, batch 8, 2 threads) pipelined scoring
        // went from 41-48 to 49-53 images/s and the service at 8 clients from 42-46 to 48-54.
        extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
      });
    } catch (e) {
      throw new HgadError('MODEL_FILE', `onnxruntime cannot load ${loaded.source}: ${(e as Error).message}`, 'model');
    }
    // A probe run at every scale gives each level's shape and checks that the taps come out as 4-D float maps.
    const probe = new Backbone(session, prepared.outputs, taps, scales, resize, []);
    const levels: LevelInfo[] = [];
    try {
      for (const scale of scales) {
        const results = await probe.run(new Uint8Array(scales[0]! * scales[0]! * 3), 1, scale, false);
        results.forEach((r, i) => {
          levels.push({
            name: `${taps[i]}@${scale}`, tap: taps[i] as string, scale, channels: r.channels, height: r.height, width: r.width,
            stride: scale / r.height,
          });
        });
      }
    } catch (e) {
      await session.release().catch(() => undefined);
      throw e;
    }
    return new Backbone(session, prepared.outputs, taps, scales, resize, levels);
  }

  /**
   * Features of a batch of images: `pixels` holds batch * S * S * 3 RGB bytes (S = inputSize, row-major,
   * channels last). Levels come for each scale (largest first), for each tap in the order given.
   */
  async extract(pixels: Uint8Array, batch: number, options: ExtractOptions = {}): Promise<FeatureLevel[]> {
    if (!Number.isSafeInteger(batch) || batch < 1 || batch > 1 << 16) throw new HgadArgumentError('batch', 'an integer in [1, 65536]', batch);
    const s = this.inputSize;
    if (Object.prototype.toString.call(pixels) !== '[object Uint8Array]') throw new HgadArgumentError('pixels', 'a Uint8Array of RGB bytes', pixels);
    if (pixels.length !== batch * s * s * 3) {
      throw new HgadArgumentError('pixels', `a Uint8Array of batch*${s}*${s}*3 = ${batch * s * s * 3} bytes`, pixels);
    }
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { handOver? }', options);
    checkKeys('options', options, ['handOver']);
    if (options.handOver !== undefined && typeof options.handOver !== 'boolean') throw new HgadArgumentError('options.handOver', 'a boolean', options.handOver);
    // Only a buffer the array spans whole can be handed over (detaching a shared pool would break its other users).
    const own = options.handOver === true && pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength && !(pixels.buffer instanceof SharedArrayBuffer);
    const out: FeatureLevel[] = [];
    for (const [k, scale] of this.scales.entries()) out.push(...(await this.run(pixels, batch, scale, own && k === this.scales.length - 1)));
    return out;
  }

  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }

  private async run(pixels: Uint8Array, batch: number, scale: number, handOver: boolean): Promise<FeatureLevel[]> {
    if (!this.session) throw new HgadError('INVALID_ARGUMENT', 'This Backbone was disposed', 'this');
    const s = this.inputSize;
    const feeds: Record<string, WireTensor> = { [PIXELS_INPUT]: { type: 'uint8', data: pixels, dims: [batch, s, s, 3] } };
    if (this.resize) feeds[SIZES_INPUT] = { type: 'int64', data: BigInt64Array.from([batch, 3, scale, scale], BigInt), dims: [4] };
    let results: Record<string, WireTensor>;
    try {
      results = await this.session.run(feeds, this.outputs, handOver ? [pixels.buffer as ArrayBuffer] : []);
    } catch (e) {
      throw new HgadError('NATIVE', `onnxruntime failed running the backbone at ${scale} px: ${(e as Error).message}`, 'model');
    }
    return this.outputs.map((name, i) => {
      const t = results[name]!;
      const tap = this.taps[i];
      if (t.type !== 'float32') {
        throw new HgadError('INVALID_ARGUMENT', `Expected a float or dequantisable tensor for taps[${i}] but "${tap}" comes out as ${t.type}`, `taps[${i}]`);
      }
      if (t.dims.length !== 4) {
        throw new HgadError('INVALID_ARGUMENT', `Expected a 4-D feature map (N, C, H, W) for taps[${i}] but "${tap}" has shape [${t.dims.join(', ')}]`, `taps[${i}]`);
      }
      const [b, height, width, channels] = t.dims as [number, number, number, number];
      return { data: t.data as Float32Array, batch: b, height, width, channels };
    });
  }
}

