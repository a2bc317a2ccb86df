// HgadModel: the public API over the native core. Arguments are validated here, up front; work runs
// off the JS thread, one operation at a time per model.
import { resolveConfig, storedConfig, DeviceChoice, DEVICE_CHOICES, HgadConfig, ResolvedConfig } from './config';
import { HgadArgumentError, HgadError, HgadModelFileError } from './errors';
import { ExtraTensor, finishLoad, loadModelFile, parameterOf, saveModelFile, SaveOptions } from './io/model-file';
import { checkModelMemory, nativeConfig } from './limits';
import { fromNativeError } from './native-ops';
import { native, NativeCudaInfo, NativeLosses, NativeModel, NativeTensorSpec } from './native';
import { checkPrecision, Precision, PrecisionChoice, resolvePrecision } from './precision';
import {
  BatchShape, checkBatch, checkInteger, checkKeys, checkShape, FeatureBatch, isFloat32Array, isInt32Array,
} from './validate';

export type LossTerms = NativeLosses;
export type LossTerm = 'Lg' | 'Lmi' | 'Le' | 'Lgi' | 'Lz';
export const LOSS_TERMS: readonly LossTerm[] = ['Lg', 'Lmi', 'Le', 'Lgi', 'Lz'];

export interface ForwardResult {
  /** Latent vectors, same layout as the input. */
  z: Float32Array;
  /** log|det J| of the flow, one per vector. */
  logDet: Float32Array;
}

/**
 * Which log-density logp is: 'full', the flow's log p_X(x) = log p_Z(z) + log|det J| (HGAD.md
 * section 6, the authors' maps); 'latent', the mixture's log p_Z(z) alone. The log-determinant measures
 * how much the flow stretches space around x; it varies far more across normal positions than the
 * latent term does, and on validation splits it ranked subtle defects worse (benchmarks/RESULTS.md).
 */
export type Density = 'full' | 'latent';
export const DENSITIES: readonly Density[] = ['full', 'latent'];

export function checkDensity(parameter: string, v: unknown): Density {
  if (!(DENSITIES as readonly unknown[]).includes(v)) throw new HgadArgumentError(parameter, `one of ${DENSITIES.join(', ')}`, v);
  return v as Density;
}

export interface ScoreCallOptions {
  /** Default 'full'. */
  density?: Density;
}

export interface ScoreResult {
  /** Per-vector log-density under the image's class, divided by C (HGAD.md section 6; options.density). */
  logp: Float32Array;
  /** Per-vector negative entropy of the class posterior softmax(-d/2). */
  negEntropy: Float32Array;
  /** Per-vector class logits -d_y/2 + log pi_y, [vectors, classes]. */
  classLogits: Float32Array;
  /** The class each image was scored under (given, or inferred from its mean class logits). */
  classIndex: Int32Array;
  /** Per image, the mean over its positions of the class posterior softmax(classLogits), [batch, classes]. */
  classPosterior: Float32Array;
  /** The GEMM precision this call ran at (HgadModel.precision.inference). */
  precision: Precision;
}

/** The precisions a model runs at, resolved for this machine and device (lib/precision.ts). */
export interface ModelPrecision {
  /** forward, inverse, score */
  inference: Precision;
  /** trainStep (mixed precision when 'bf16') */
  training: Precision;
}

export interface PrecisionOptions {
  inference?: PrecisionChoice;
  training?: PrecisionChoice;
}
const PRECISION_OPTION_KEYS = ['inference', 'training'];

export interface TrainStepOptions {
  /** 1: L_g, L_mi, L_e; 2: adds L_gi and L_z (HGAD.md section 4). Priors other than 'hgad' always use 1. */
  phase: 1 | 2;
  /** Learning rate of the flow parameters (centres take 3x). */
  lr: number;
}

export interface LoadOptions {
  /** Worker threads (default: the machine's available parallelism). */
  threads?: number;
  /** Where the model runs (default 'auto'); model files do not say where they were trained. */
  device?: DeviceChoice;
  /** GEMM precision of scoring and of training (HgadConfig.precision, trainPrecision). */
  precision?: PrecisionChoice;
  trainPrecision?: PrecisionChoice;
}
const LOAD_OPTION_KEYS = ['threads', 'device', 'precision', 'trainPrecision'];
const TRAIN_STEP_OPTION_KEYS = ['phase', 'lr'];
const GRADIENT_OPTION_KEYS = ['phase', 'weights'];

export interface GradientOptions {
  /** Weights of the phase (default 2; always 1 for priors other than 'hgad'), or explicit weights of each loss term. */
  phase?: 1 | 2;
  weights?: Partial<Record<LossTerm, number>>;
}

export interface GradientResult {
  losses: LossTerms;
  /** Gradient of the weighted loss for every trainable tensor, by model-file name. */
  grads: Map<string, Float32Array>;
  /** Gradient with respect to the input features. */
  inputGrad: Float32Array;
}

export interface TensorInfo {
  name: string;
  shape: number[];
  group: 'flow' | 'centres' | 'logits' | 'fixed';
  level: number;
}

/**
 * What the loaded addon can do with CUDA: compiled (built with a CUDA toolkit), available (a device can
 * be used now), devices, deviceName, reason (why not, when not), gemm ('cublas' or 'builtin').
 */
export type CudaInfo = NativeCudaInfo;

/** Whether this addon and machine can run models on CUDA (config.device 'cuda' or 'auto'). */
export function cudaInfo(): CudaInfo {
  const query = native().NativeModel.cudaInfo;
  if (typeof query !== 'function') {
    return { compiled: false, available: false, devices: 0, deviceName: '', reason: 'the loaded addon has no CUDA backend', gemm: '' };
  }
  return query();
}

/** The device a model with this config runs on; 'cuda' when CUDA cannot be used is an error. */
function pickDevice(requested: DeviceChoice): 'cpu' | 'cuda' {
  if (requested === 'cpu') return 'cpu';
  const info = cudaInfo();
  if (info.available) return 'cuda';
  if (requested === 'auto') return 'cpu';
  throw new HgadError('INVALID_ARGUMENT', `config.device is 'cuda' but CUDA is unavailable: ${info.reason}`, 'config.device');
}

/**
 * An operation copies its inputs when it starts, which is after the operations queued before it on
 * the same model: an input transferred away meanwhile is detached (length 0). Say so plainly.
 */
function checkAttached(parameter: string, a: { length: number }, length: number): void {
  if (a.length !== length) {
    throw new HgadArgumentError(parameter, `the array passed to this call, still holding its ${length} elements when the ` +
      'operation starts (it was transferred or detached while earlier operations on this model ran)', a);
  }
}

/** The options of trainStep and trainStepLatent: checked the same way for both. */
function checkTrainStepOptions(options: TrainStepOptions): void {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { phase, lr }', options);
  checkKeys('options', options, TRAIN_STEP_OPTION_KEYS);
  if (options.phase !== 1 && options.phase !== 2) throw new HgadArgumentError('options.phase', '1 or 2', options.phase);
  if (typeof options.lr !== 'number' || !Number.isFinite(options.lr) || options.lr < 0 || options.lr >= 1000) {
    throw new HgadArgumentError('options.lr', 'a finite learning rate in [0, 1000)', options.lr);
  }
}

function phaseWeights(phase: 1 | 2): Float64Array {
  return Float64Array.from([1, -100, 1, phase === 2 ? 1 : 0, phase === 2 ? 1 : 0]);
}

export class HgadModel {
  private readonly core: NativeModel;
  private readonly cfg: ResolvedConfig;
  /** Where the operations run: 'cuda' or 'cpu' (config.device resolved). */
  readonly device: 'cpu' | 'cuda';
  /** The model's tensors by name; fixed by the config, so read from the core once. */
  private readonly specs: Map<string, NativeTensorSpec>;
  private queue: Promise<unknown> = Promise.resolve();
  private resolvedPrecision: ModelPrecision = { inference: 'fp32', training: 'fp32' };
  /** Metadata stored with the model beyond its config (SaveOptions.metadata); empty for a new model. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Extra tensors stored with the model (SaveOptions.tensors); empty for a new model. */
  readonly extraTensors: ReadonlyMap<string, ExtraTensor>;

  /**
   * core: a model built (and loaded) already, on `device`; otherwise a new, initialised one is made.
   * tensors: the file's extra tensors (filled as the file's data is read).
   */
  private constructor(cfg: ResolvedConfig, metadata: Record<string, string> = {}, built?: { core: NativeModel; device: 'cpu' | 'cuda' },
    tensors: ReadonlyMap<string, ExtraTensor> = new Map()) {
    this.cfg = cfg;
    this.metadata = Object.freeze({ ...metadata });
    this.extraTensors = tensors;
    try {
      if (built) {
        this.device = built.device;
        this.core = built.core;
      } else {
        this.device = pickDevice(cfg.device);
        this.core = new (native().NativeModel)(nativeConfig(cfg, this.device));
      }
    } catch (e) {
      throw fromNativeError(e);
    }
    this.specs = new Map(this.core.tensorSpecs().map((t) => [t.name, t]));
    this.applyPrecision(cfg.precision, cfg.trainPrecision);
  }

  /** Resolves both choices for this device and CPU and sets them on the core (no operation may be running). */
  private applyPrecision(inference: PrecisionChoice, training: PrecisionChoice): void {
    const resolved: ModelPrecision = {
      inference: resolvePrecision('config.precision', inference, this.device),
      training: resolvePrecision('config.trainPrecision', training, this.device),
    };
    if (resolved.inference === 'bf16' || resolved.training === 'bf16' || this.device === 'cpu') {
      try {
        this.core.setPrecision(resolved.inference === 'bf16', resolved.training === 'bf16');
      } catch (e) {
        throw fromNativeError(e);
      }
    }
    this.cfg.precision = inference;
    this.cfg.trainPrecision = training;
    this.resolvedPrecision = resolved;
  }

  /**
   * A new model initialised as in HGAD.md; the same config and seed give bit-identical parameters.
   * A config whose model would not fit in memory (limits.ts) is refused before anything is allocated.
   */
  static create(config: HgadConfig): HgadModel {
    const cfg = resolveConfig(config);
    checkModelMemory(cfg);
    return new HgadModel(cfg);
  }

  /**
   * create(), with the model allocated and initialised off the JS thread: the random rotations cost
   * O(C^3) per coupling block (seconds at C = 1024), during which create() blocks the event loop.
   * Same config, same parameters as create().
   */
  static async createAsync(config: HgadConfig): Promise<HgadModel> {
    const cfg = resolveConfig(config);
    checkModelMemory(cfg);
    let built: { core: NativeModel; device: 'cpu' | 'cuda' };
    try {
      const where = pickDevice(cfg.device);
      built = { core: await native().NativeModel.build(nativeConfig(cfg, where)), device: where };
    } catch (e) {
      throw fromNativeError(e);
    }
    return new HgadModel(cfg, {}, built);
  }

  /**
   * Reads a model file written by save(); every size, offset, name, value and the checksum are checked
   * (docs/FORMAT.md), and the model is built off the JS thread. The file does not say where it was
   * trained: options.device (default 'auto') picks where it runs.
   */
  static async load(path: string, options: LoadOptions = {}): Promise<HgadModel> {
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    checkKeys('options', options, LOAD_OPTION_KEYS);
    const device = options.device ?? 'auto';
    if (!(DEVICE_CHOICES as readonly unknown[]).includes(device)) {
      throw new HgadArgumentError('options.device', `one of ${DEVICE_CHOICES.map((d) => `'${d}'`).join(', ')}`, device);
    }
    checkPrecision('options.precision', options.precision, 'auto');
    checkPrecision('options.trainPrecision', options.trainPrecision, 'auto');
    return loadModelFile(path, { threads: options.threads }, async (cfg, metadata, tensors) => {
      const full = {
        ...cfg, device,
        precision: checkPrecision('options.precision', options.precision, cfg.precision),
        trainPrecision: checkPrecision('options.trainPrecision', options.trainPrecision, cfg.trainPrecision),
      };
      let built: { core: NativeModel; device: 'cpu' | 'cuda' };
      try {
        const where = pickDevice(device);
        built = { core: await native().NativeModel.build(nativeConfig(full, where, false)), device: where };
      } catch (e) {
        throw fromNativeError(e);
      }
      const model = new HgadModel(full, metadata, built, tensors);
      return { model, core: model.core };
    });
  }

  /**
   * A model of `config` whose tensors are `tensors` (every tensor of tensorInfo(), by name, as
   * getTensor gives them), built off the JS thread and checked as a loaded file's are (finishLoad:
   * ranges, orthogonal rotations). For models stored inside another file (a detector's class flows):
   * `source` names that file in the errors, which are HgadModelFileErrors.
   */
  static async fromTensors(config: HgadConfig, tensors: ReadonlyMap<string, Float32Array>, source: string): Promise<HgadModel> {
    let cfg: ResolvedConfig;
    try {
      cfg = resolveConfig(config);
      checkModelMemory(cfg);
    } catch (e) {
      throw new HgadModelFileError(source, `a stored model's config is not valid: ${(e as Error).message}`);
    }
    let built: { core: NativeModel; device: 'cpu' | 'cuda' };
    try {
      const where = pickDevice(cfg.device);
      built = { core: await native().NativeModel.build(nativeConfig(cfg, where, false)), device: where };
    } catch (e) {
      throw fromNativeError(e);
    }
    const specs = built.core.tensorSpecs().filter((s) => !s.name.startsWith('optimizer.'));
    for (const s of specs) {
      const data = tensors.get(s.name);
      const count = s.shape.reduce((a, b) => a * b, 1);
      if (!(data instanceof Float32Array) || data.length !== count) {
        throw new HgadModelFileError(source, `a stored model's tensor "${s.name}" is ${data ? `${data.length} values` : 'missing'}, expected ${count}`);
      }
      built.core.writeTensorBytes(s.name, 0, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    const names = new Set(specs.map((s) => s.name));
    for (const name of tensors.keys()) {
      if (!names.has(name)) throw new HgadModelFileError(source, `a stored model has an unexpected tensor "${name}"`);
    }
    await finishLoad(built.core, source).catch((e: unknown) => {
      throw fromNativeError(e);
    });
    return new HgadModel(cfg, {}, built);
  }

  get config(): Readonly<ResolvedConfig> {
    return this.cfg;
  }

  get threads(): number {
    return this.cfg.threads;
  }

  /** The GEMM precisions in use: config.precision and config.trainPrecision resolved for this machine. */
  get precision(): Readonly<ModelPrecision> {
    return { ...this.resolvedPrecision };
  }

  /**
   * Changes the GEMM precision of scoring and/or training (options as config.precision and
   * config.trainPrecision), after the operations queued before; resolves to the precisions now in use.
   */
  async setPrecision(options: PrecisionOptions): Promise<ModelPrecision> {
    if (typeof options !== 'object' || options === null) {
      throw new HgadArgumentError('options', 'an object { inference?, training? }', options);
    }
    checkKeys('options', options, PRECISION_OPTION_KEYS);
    const inference = checkPrecision('options.inference', options.inference, this.cfg.precision);
    const training = checkPrecision('options.training', options.training, this.cfg.trainPrecision);
    // Checked now, so the caller's error names the option; applied when the queue reaches it.
    resolvePrecision('options.inference', inference, this.device);
    resolvePrecision('options.training', training, this.device);
    return this.run(() => {
      this.applyPrecision(inference, training);
      return Promise.resolve(this.precision);
    });
  }

  set threads(n: number) {
    checkInteger('threads', n, 1, 1024);
    this.core.setThreads(n);
    this.cfg.threads = n;
  }

  /** Names, shapes and groups of every tensor, in model-file order. */
  tensorInfo(): TensorInfo[] {
    return [...this.specs.values()].map((s) => ({ ...s, shape: [...s.shape] }));
  }

  /** A copy of one tensor: a parameter ("levels.0.mu") or Adam's moments ("optimizer.levels.0.m.mu"). */
  async getTensor(name: string): Promise<Float32Array> {
    this.tensorSize(name);
    return this.run(() => Promise.resolve(this.core.getTensor(name)));
  }

  /** Overwrites one tensor; values must be finite and the length must match. */
  async setTensor(name: string, data: Float32Array): Promise<void> {
    const size = this.tensorSize(name);
    if (!isFloat32Array(data) || data.length !== size) {
      throw new HgadArgumentError('data', `a Float32Array of ${size} elements (the size of ${name})`, data);
    }
    return this.run(() => {
      checkAttached('data', data, size);
      return Promise.resolve(this.core.setTensor(name, data));
    });
  }

  // Input arrays are read in place when the operation runs: keep them unchanged until it settles.
  async forward(level: number, x: FeatureBatch): Promise<ForwardResult> {
    const b = this.batch(level, x);
    const length = b.data.length;
    return this.run(async () => {
      checkAttached('x.data', b.data, length);
      const n = b.batch * b.height * b.width;
      const z = new Float32Array(n * b.channels);
      const logDet = new Float32Array(n);
      await this.core.forward(level, b.data, b.batch, b.height, b.width, z, logDet);
      return { z, logDet };
    });
  }

  async inverse(level: number, z: Float32Array, shape: BatchShape): Promise<FeatureBatch> {
    this.checkLevel(level);
    const s = checkShape('shape', shape);
    const channels = this.cfg.levels[level]!.channels;
    const zb = checkBatch('z', { ...s, channels, data: z }, channels);
    const length = zb.data.length;
    return this.run(async () => {
      checkAttached('z', zb.data, length);
      const data = new Float32Array(length);
      await this.core.inverse(level, zb.data, s.batch, s.height, s.width, data);
      return { ...s, channels, data };
    });
  }

  /**
   * Per-vector scoring outputs. classIndex: one class (index or name) for every image, one per image
   * (Int32Array), or omitted to infer each image's class from its mean class logits.
   */
  async score(level: number, x: FeatureBatch, classIndex?: number | string | Int32Array, options: ScoreCallOptions = {}): Promise<ScoreResult> {
    const b = this.batch(level, x);
    const classes = classIndex === undefined ? null : this.imageClasses('classIndex', classIndex, b.batch);
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    checkKeys('options', options, ['density']);
    const density = options.density === undefined ? 'full' : checkDensity('options.density', options.density);
    const length = b.data.length;
    return this.run(async () => {
      checkAttached('x.data', b.data, length);
      if (classes) checkAttached('classIndex', classes, b.batch);
      const n = b.batch * b.height * b.width;
      const out: ScoreResult = {
        logp: new Float32Array(n),
        negEntropy: new Float32Array(n),
        classLogits: new Float32Array(n * this.cfg.classes.length),
        classIndex: new Int32Array(b.batch),
        classPosterior: new Float32Array(b.batch * this.cfg.classes.length),
        precision: this.resolvedPrecision.inference,
      };
      await this.core.score(level, b.data, b.batch, b.height, b.width, classes, out.logp, out.negEntropy,
        out.classLogits, out.classIndex, out.classPosterior, density === 'full');
      return out;
    });
  }

  /** One optimiser step of this level on one batch; returns the loss terms before the step. */
  async trainStep(level: number, x: FeatureBatch, labels: Int32Array, options: TrainStepOptions): Promise<LossTerms> {
    const b = this.batch(level, x);
    const perVector = this.checkLabels(labels, b);
    checkTrainStepOptions(options);
    const length = b.data.length, labelCount = labels.length;
    return this.run(() => {
      checkAttached('x.data', b.data, length);
      checkAttached('labels', labels, labelCount);
      return this.core.gradients(level, b.data, b.batch, b.height, b.width, labels, perVector,
        phaseWeights(this.lossPhase(options.phase)), null, options.lr);
    });
  }

  /**
   * Which parameters later optimiser steps of `level` update (adding classes to a trained model): the
   * flow's, and the centres and logits of the classes from `firstClass` on. Frozen parameters and their
   * Adam moments stay bit for bit as they are. CPU models only. Default: everything.
   */
  setTrainable(level: number, trainable: { flow: boolean; firstClass: number }): void {
    this.checkLevel(level);
    if (typeof trainable !== 'object' || trainable === null) throw new HgadArgumentError('trainable', 'an object { flow, firstClass }', trainable);
    checkKeys('trainable', trainable, ['flow', 'firstClass']);
    if (typeof trainable.flow !== 'boolean') throw new HgadArgumentError('trainable.flow', 'true or false', trainable.flow);
    checkInteger('trainable.firstClass', trainable.firstClass, 0, this.cfg.classes.length);
    if (this.device !== 'cpu' && (!trainable.flow || trainable.firstClass > 0)) {
      throw new HgadArgumentError('trainable', "everything trainable on a CUDA model (freeze parameters on a model loaded with device 'cpu')", trainable);
    }
    try {
      this.core.setTrainable(level, trainable.flow, trainable.firstClass);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /**
   * One optimiser step of the mixture on the flow's outputs (z and logDet from forward()), for a level
   * whose flow is frozen (setTrainable): the flow does not run, so a step costs the mixture alone.
   */
  async trainStepLatent(level: number, z: FeatureBatch, logDet: Float32Array, labels: Int32Array, options: TrainStepOptions): Promise<LossTerms> {
    const b = this.batch(level, z);
    const perVector = this.checkLabels(labels, b);
    const n = b.batch * b.height * b.width;
    if (!isFloat32Array(logDet) || logDet.length !== n) throw new HgadArgumentError('logDet', `a Float32Array of ${n} log-dets`, logDet);
    checkTrainStepOptions(options);
    const length = b.data.length, labelCount = labels.length;
    return this.run(() => {
      checkAttached('z.data', b.data, length);
      checkAttached('labels', labels, labelCount);
      checkAttached('logDet', logDet, n);
      return this.core.gradients(level, b.data, b.batch, b.height, b.width, labels, perVector,
        phaseWeights(this.lossPhase(options.phase)), null, options.lr, logDet);
    });
  }

  /** Loss terms and gradients without an update (for checks against other implementations). */
  async gradients(level: number, x: FeatureBatch, labels: Int32Array, options: GradientOptions = {}): Promise<GradientResult> {
    const b = this.batch(level, x);
    const perVector = this.checkLabels(labels, b);
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { phase?, weights? }', options);
    checkKeys('options', options, GRADIENT_OPTION_KEYS);
    if (options.phase !== undefined && options.phase !== 1 && options.phase !== 2) {
      throw new HgadArgumentError('options.phase', '1 or 2', options.phase);
    }
    let weights = phaseWeights(this.lossPhase(options.phase ?? 2));
    if (options.weights !== undefined) {
      if (typeof options.weights !== 'object' || options.weights === null) {
        throw new HgadArgumentError('options.weights', `an object with numbers for ${LOSS_TERMS.join(', ')}`, options.weights);
      }
      for (const key of Object.keys(options.weights)) {
        if (!(LOSS_TERMS as readonly string[]).includes(key)) {
          throw new HgadArgumentError('options.weights', `only the loss terms ${LOSS_TERMS.join(', ')}`, key);
        }
      }
      weights = new Float64Array(LOSS_TERMS.length);
      LOSS_TERMS.forEach((t, i) => {
        const w = options.weights![t] ?? 0;
        if (typeof w !== 'number' || !Number.isFinite(w)) throw new HgadArgumentError(`options.weights.${t}`, 'a finite number', w);
        weights[i] = w;
      });
    }
    const length = b.data.length, labelCount = labels.length;
    return this.run(async () => {
      checkAttached('x.data', b.data, length);
      checkAttached('labels', labels, labelCount);
      const inputGrad = new Float32Array(length);
      const losses = await this.core.gradients(level, b.data, b.batch, b.height, b.width, labels, perVector, weights,
        inputGrad, null);
      const grads = new Map<string, Float32Array>();
      for (const s of this.specs.values()) {
        if (s.level === level && s.group !== 'fixed') grads.set(s.name, this.core.getTensor(`grad.${s.name}`));
      }
      return { losses, grads, inputGrad };
    });
  }

  /** Writes the model (and, by default, the optimiser state) atomically: temporary file, then rename. */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    return this.run(() => saveModelFile(path, options, storedConfig(this.cfg), this.core));
  }

  /**
   * The single-Gaussian and inter-only priors train with the phase-1 losses throughout (their loss
   * has no intra-class terms); for the single Gaussian that loss is the classic flow's L_g plus
   * constants (L_mi = 0, L_e = log Y).
   */
  private lossPhase(phase: 1 | 2): 1 | 2 {
    return this.cfg.prior === 'hgad' ? phase : 1;
  }

  private run<T>(job: () => Promise<T>): Promise<T> {
    // The queue itself never rejects (see below), so each job starts once the previous one settled.
    const next = this.queue.then(job).catch((e: unknown) => {
      throw fromNativeError(e);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Element count of a parameter or optimizer tensor; anything else is an argument error. */
  private tensorSize(name: unknown): number {
    if (typeof name === 'string') {
      const param = parameterOf(name);
      const spec = this.specs.get(param);
      if (spec && (param === name || spec.group !== 'fixed')) return spec.shape.reduce((a, b) => a * b, 1);
    }
    throw new HgadArgumentError('name', 'the name of one of this model\'s tensors (see tensorInfo())', name);
  }

  private checkLevel(level: unknown): void {
    checkInteger('level', level, 0, this.cfg.levels.length - 1);
  }

  private batch(level: number, x: unknown): FeatureBatch {
    this.checkLevel(level);
    return checkBatch('x', x, this.cfg.levels[level]!.channels);
  }

  private imageClasses(parameter: string, c: number | string | Int32Array, batch: number): Int32Array {
    const Y = this.cfg.classes.length;
    const index = (v: number | string): number => {
      if (typeof v === 'string') {
        const i = this.cfg.classes.indexOf(v);
        if (i < 0) throw new HgadArgumentError(parameter, `one of the model's classes (${this.cfg.classes.join(', ')})`, v);
        return i;
      }
      checkInteger(parameter, v, 0, Y - 1);
      return v;
    };
    if (isInt32Array(c)) {
      if (c.length !== batch) throw new HgadArgumentError(parameter, `an Int32Array with one class per image (${batch})`, c);
      c.forEach((v, i) => checkInteger(`${parameter}[${i}]`, v, 0, Y - 1));
      return c;
    }
    if (typeof c !== 'number' && typeof c !== 'string') {
      throw new HgadArgumentError(parameter, 'a class index, a class name or an Int32Array', c);
    }
    return new Int32Array(batch).fill(index(c));
  }

  private checkLabels(labels: unknown, b: FeatureBatch): boolean {
    const n = b.batch * b.height * b.width;
    if (!isInt32Array(labels) || (labels.length !== b.batch && labels.length !== n)) {
      throw new HgadArgumentError('labels', `an Int32Array of ${b.batch} (per image) or ${n} (per vector) class indices`, labels);
    }
    return labels.length !== b.batch;
  }
}
