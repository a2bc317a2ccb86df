// AnomalyDetector: the product object. One flow model (HgadModel) plus everything needed to go from
// image files to anomaly maps: the backbone, the map geometry, calibration constants and thresholds.
// Saved as one model file (the flow's tensors, the spec in the metadata).
import { defaultThreads } from '../config';
import { HgadArgumentError, HgadError, HgadModelFileError } from '../errors';
import type { Backbone, ExtractOptions, FeatureLevel } from '../features/backbone';
import { HgadModel } from '../model';
import type { PrecisionChoice } from '../precision';
import { checkInteger, checkKeys } from '../validate';
import { openBackbone } from './backbone-spec';
import { FeatureReduction } from './reduction';
import { ClassFlows } from './class-flows';
import { bankChannels, LatentBanks } from './latent-banks';
import { decodeSpec, encodeSpec, PIPELINE_KEY, PipelineSpec } from './spec';

export interface DetectorLoadOptions {
  /** Threads of the flow and of the backbone. Default: the machine's available parallelism. */
  threads?: number;
  /**
   * The backbone's .onnx file, when it is not where the detector file says (another machine, a moved
   * folder). Its sha256 must match the one stored in the detector; checked before the file is parsed.
   */
  backbone?: string;
  /** GEMM precision of scoring (HgadConfig.precision; default 'auto'); model.precision says what runs. */
  precision?: PrecisionChoice;
  /** GEMM precision of training steps when the detector is trained further (HgadConfig.trainPrecision). */
  trainPrecision?: PrecisionChoice;
}

export interface DetectorSaveOptions {
  /** Store Adam's state too (checkpoints); a finished detector does not need it. Default false. */
  optimizer?: boolean;
}

const LOAD_KEYS = ['threads', 'backbone', 'precision', 'trainPrecision'];
const SAVE_KEYS = ['optimizer'];

export class AnomalyDetector {
  readonly model: HgadModel;
  /** The stored description; calibration and training are replaced as training progresses. */
  spec: PipelineSpec;
  /** The channel reduction between the backbone and the flow, when the detector has one. */
  readonly reduction: FeatureReduction | null;
  /** Flows of classes' own (spec.classFlows), by class name. */
  classFlows: ClassFlows;
  /** Latent nearest-neighbour banks by class (spec.map.nearest); built when training finishes. */
  banks: LatentBanks;
  private backboneOpen: Promise<Backbone> | null = null;
  private readonly threadCount: number;
  /** The file this detector was loaded from and the backbone file given for it, if any. */
  private readonly source: { file: string; backbone?: string } | undefined;
  private disposed = false;

  /** @internal Use AnomalyDetector.load, or train() from lib/train. */
  constructor(model: HgadModel, spec: PipelineSpec, threads?: number, backbone?: Backbone,
    extras: { reduction?: FeatureReduction | null; source?: { file: string; backbone?: string }; classFlows?: ClassFlows; banks?: LatentBanks } = {}) {
    this.model = model;
    this.reduction = extras.reduction ?? null;
    this.classFlows = extras.classFlows ?? new ClassFlows();
    this.banks = extras.banks ?? new LatentBanks();
    this.spec = this.reduction ? { ...spec, reduction: this.reduction.spec } : spec;
    this.threadCount = threads ?? model.threads ?? defaultThreads();
    this.source = extras.source;
    if (backbone) this.backboneOpen = Promise.resolve(backbone);
  }

  static async load(path: string, options: DetectorLoadOptions = {}): Promise<AnomalyDetector> {
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    checkKeys('options', options, LOAD_KEYS);
    if (options.threads !== undefined) checkInteger('options.threads', options.threads, 1, 1024);
    if (options.backbone !== undefined && (typeof options.backbone !== 'string' || options.backbone.length === 0)) {
      throw new HgadArgumentError('options.backbone', 'a path to the backbone\'s .onnx file', options.backbone);
    }
    const model = await HgadModel.load(path, {
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.precision !== undefined ? { precision: options.precision } : {}),
      ...(options.trainPrecision !== undefined ? { trainPrecision: options.trainPrecision } : {}),
    });
    const spec = decodeSpec(model.metadata[PIPELINE_KEY], path, model.config.levels.length, model.config.classes);
    const reduction = spec.reduction ? FeatureReduction.fromFile(spec.reduction, model.extraTensors, path) : null;
    model.config.levels.forEach((lv, l) => {
      const width = reduction ? reduction.spec.channels[l]! : lv.channels;
      if (width !== lv.channels) throw new HgadModelFileError(path, `metadata.pipeline.reduction gives level ${l} ${width} channels but the flow has ${lv.channels}`);
    });
    if (options.backbone !== undefined && spec.backbone.sha256 === null) {
      throw new HgadArgumentError('options.backbone', `nothing: this detector uses the built-in ${spec.backbone.model} backbone`, options.backbone);
    }
    const classFlows = await ClassFlows.fromFile(spec, model, path);
    const banks = LatentBanks.fromFile(spec.map.nearest, spec.calibration !== null, model.config.classes,
      model.config.levels.map((l) => l.channels), model.extraTensors, path);
    return new AnomalyDetector(model, spec, options.threads, undefined, {
      reduction, classFlows, banks, source: options.backbone !== undefined ? { file: path, backbone: options.backbone } : { file: path },
    });
  }

  /**
   * @internal A detector over another flow with this one's backbone settings, reduction, backbone file
   * and banks (extendDetector). Its backbone is opened on first use, independently of this one's.
   */
  withModel(model: HgadModel, spec: PipelineSpec, threads?: number, classFlows: ClassFlows = this.classFlows): AnomalyDetector {
    this.assertUsable();
    return new AnomalyDetector(model, spec, threads ?? this.threadCount, undefined, {
      reduction: this.reduction, source: this.source, classFlows, banks: this.banks,
    });
  }

  /** The widths of the latent banks (spec.map.nearest), level by level. */
  bankChannels(): number[] {
    const flow = this.model.config.levels.map((l) => l.channels);
    return this.spec.map.nearest ? bankChannels(this.spec.map.nearest, flow) : flow;
  }

  /** Throws once dispose() was called: a disposed detector stays disposed (load it again to use it). */
  assertUsable(): void {
    if (this.disposed) {
      throw new HgadError('INVALID_ARGUMENT', 'This AnomalyDetector was disposed; load it again to use it', 'this');
    }
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  get classes(): readonly string[] {
    return this.model.config.classes;
  }

  get threads(): number {
    return this.threadCount;
  }

  /** Side length of the square images the backbone takes and of the anomaly maps. */
  get inputSize(): number {
    return this.spec.backbone.inputSize;
  }

  get mapSize(): number {
    return this.spec.map.size;
  }

  get calibrated(): boolean {
    return this.spec.calibration !== null;
  }

  /** The backbone, opened (and its file hash checked) on first use. */
  backbone(): Promise<Backbone> {
    try {
      this.assertUsable();
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.backboneOpen) {
      this.backboneOpen = this.openChecked();
      this.backboneOpen.catch(() => {
        this.backboneOpen = null;
      });
    }
    return this.backboneOpen;
  }

  /**
   * The flow's input for a batch of images (batch * S * S * 3 RGB bytes, S = inputSize): the backbone's
   * levels, reduced when the detector has a reduction.
   */
  async features(pixels: Uint8Array, batch: number, options: ExtractOptions = {}): Promise<FeatureLevel[]> {
    const raw = await (await this.backbone()).extract(pixels, batch, options);
    return this.reduction ? this.reduction.apply(raw) : raw;
  }

  /**
   * Opens the backbone and checks that it gives the levels the flow was built for. Settings from a
   * file that the backbone rejects (a tap it does not have) are the file's fault: MODEL_FILE errors.
   */
  private async openChecked(): Promise<Backbone> {
    const file = this.source?.file ?? 'in memory';
    let backbone: Backbone;
    try {
      backbone = await openBackbone(this.spec.backbone, this.threadCount, this.source?.backbone);
    } catch (e) {
      if (this.source && e instanceof HgadError && e.code === 'INVALID_ARGUMENT') {
        throw new HgadModelFileError(file, `metadata.pipeline: the backbone settings do not fit the backbone (${e.message})`);
      }
      throw e;
    }
    const want = this.reduction?.spec.inChannels ?? this.model.config.levels.map((l) => l.channels);
    const got = backbone.levels.map((l) => l.channels);
    if (got.join() !== want.join()) {
      await backbone.dispose();
      throw new HgadModelFileError(file, `metadata.pipeline: the backbone gives feature levels of ${got.join(', ')} channels ` +
        `but the flow was built for ${want.join(', ')}`);
    }
    return backbone;
  }

  /** Class name or index -> index; throws an argument error naming `parameter` otherwise. */
  classIndex(parameter: string, name: string | number): number {
    if (typeof name === 'number' && Number.isInteger(name) && name >= 0 && name < this.classes.length) return name;
    const i = typeof name === 'string' ? this.classes.indexOf(name) : -1;
    if (i < 0) throw new HgadArgumentError(parameter, `one of the detector's classes (${this.classes.join(', ')})`, name);
    return i;
  }

  async save(path: string, options: DetectorSaveOptions = {}): Promise<void> {
    this.assertUsable();
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    checkKeys('options', options, SAVE_KEYS);
    if (options.optimizer !== undefined && typeof options.optimizer !== 'boolean') {
      throw new HgadArgumentError('options.optimizer', 'true or false', options.optimizer);
    }
    const tensors = new Map([...(this.reduction?.tensors() ?? []), ...await this.classFlows.tensors(this.spec),
      ...this.banks.tensors(this.classes, this.bankChannels())]);
    await this.model.save(path, {
      optimizer: options.optimizer ?? false,
      metadata: { [PIPELINE_KEY]: encodeSpec(this.spec) },
      ...(tensors.size > 0 ? { tensors } : {}),
    });
  }

  /**
   * Releases the backbone's onnxruntime session. Final: every later call that needs the backbone or
   * the flow (scoring, calibration, evaluation, save) throws; the spec and classes stay readable.
   */
  async dispose(): Promise<void> {
    this.disposed = true;
    const open = this.backboneOpen;
    this.backboneOpen = null;
    // A backbone that failed to open has nothing to release.
    const backbone = open ? await open.catch(() => null) : null;
    if (backbone) await backbone.dispose();
  }
}
