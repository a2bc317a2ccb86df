// AnomalyDetector: the product object. One flow model (HgadModel) plus everything needed to go from
// image files to anomaly maps: the backbone, the map geometry, calibration constants and thresholds.
// Saved as one model file (the flow's tensors, the spec in the metadata).
import { defaultThreads } from '../config';
import { HgadArgumentError } from '../errors';
import { HgadModelFileError } from '../errors';
import type { Backbone, FeatureLevel } from '../features/backbone';
import { HgadModel } from '../model';
import { checkInteger } from '../validate';
import { openBackbone } from './backbone-spec';
import { FeatureReduction } from './reduction';
import { decodeSpec, encodeSpec, PIPELINE_KEY, PipelineSpec } from './spec';

export interface DetectorLoadOptions {
  /** Threads of the flow and of the backbone. Default: the machine's available parallelism. */
  threads?: number;
}

export interface DetectorSaveOptions {
  /** Store Adam's state too (checkpoints); a finished detector does not need it. Default false. */
  optimizer?: boolean;
}

export class AnomalyDetector {
  readonly model: HgadModel;
  /** The stored description; calibration and training are replaced as training progresses. */
  spec: PipelineSpec;
  /** The channel reduction between the backbone and the flow, when the detector has one. */
  readonly reduction: FeatureReduction | null;
  private backboneOpen: Promise<Backbone> | null = null;
  private readonly threadCount: number;

  /** @internal Use AnomalyDetector.load, or train() from lib/train. */
  constructor(model: HgadModel, spec: PipelineSpec, threads?: number, backbone?: Backbone, reduction?: FeatureReduction | null) {
    this.model = model;
    this.spec = reduction ? { ...spec, reduction: reduction.spec } : spec;
    this.reduction = reduction ?? null;
    this.threadCount = threads ?? model.threads ?? defaultThreads();
    if (backbone) this.backboneOpen = Promise.resolve(backbone);
  }

  static async load(path: string, options: DetectorLoadOptions = {}): Promise<AnomalyDetector> {
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    if (options.threads !== undefined) checkInteger('options.threads', options.threads, 1, 1024);
    const model = await HgadModel.load(path, options.threads !== undefined ? { threads: options.threads } : {});
    const spec = decodeSpec(model.metadata[PIPELINE_KEY], path, model.config.levels.length, model.config.classes);
    const reduction = spec.reduction ? FeatureReduction.fromFile(spec.reduction, model.extraTensors, path) : null;
    model.config.levels.forEach((lv, l) => {
      const width = reduction ? reduction.spec.channels[l]! : lv.channels;
      if (width !== lv.channels) throw new HgadModelFileError(path, `metadata.pipeline.reduction gives level ${l} ${width} channels but the flow has ${lv.channels}`);
    });
    return new AnomalyDetector(model, spec, options.threads, undefined, reduction);
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
    if (!this.backboneOpen) {
      this.backboneOpen = openBackbone(this.spec.backbone, this.threadCount);
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
  async features(pixels: Uint8Array, batch: number): Promise<FeatureLevel[]> {
    const raw = await (await this.backbone()).extract(pixels, batch);
    return this.reduction ? this.reduction.apply(raw) : raw;
  }

  /** Class name or index -> index; throws an argument error naming `parameter` otherwise. */
  classIndex(parameter: string, name: string | number): number {
    if (typeof name === 'number' && Number.isInteger(name) && name >= 0 && name < this.classes.length) return name;
    const i = typeof name === 'string' ? this.classes.indexOf(name) : -1;
    if (i < 0) throw new HgadArgumentError(parameter, `one of the detector's classes (${this.classes.join(', ')})`, name);
    return i;
  }

  async save(path: string, options: DetectorSaveOptions = {}): Promise<void> {
    await this.model.save(path, {
      optimizer: options.optimizer ?? false,
      metadata: { [PIPELINE_KEY]: encodeSpec(this.spec) },
      ...(this.reduction ? { tensors: this.reduction.tensors() } : {}),
    });
  }

  async dispose(): Promise<void> {
    const open = this.backboneOpen;
    this.backboneOpen = null;
    // A backbone that failed to open has nothing to release.
    const backbone = open ? await open.catch(() => null) : null;
    if (backbone) await backbone.dispose();
  }
}
