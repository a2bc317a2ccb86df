// Nearest-neighbour maps in the flow's latent space (map.nearest; benchmarks/RESULTS.md, issue 10).
// The flow maps normal texture and defects further apart than the backbone does, but its mixture
// prior (a few unit Gaussians per class) gives subtle defects about the likelihood of normal texture.
// So the maps read distances instead: every position's latent z, 3x3-averaged, against a memory bank of
// the training images' averaged latents of the image's class; per-level distance maps are upsampled,
// summed and blurred like the flow's maps (lib/eval/nearest.ts -> native/core/nearest.cpp).
//
// A bank holds at most `cap` vectors per class and level, drawn uniformly at random without
// replacement, the same number from every training image (stratified, so every image is represented),
// with a seed per class and level; a level whose whole set fits is kept whole. Random rather than
// PatchCore's greedy coreset: one greedy step over magnetic_tile's 658k layer2 candidates takes about
// 110 ms on 2 cores (16k steps: 30 min per level), and every candidate would have to be kept.
import { hashString, mulberry32 } from '../data/random';
import { HgadError, HgadModelFileError } from '../errors';
import { DistancePlane, distanceMaps, halfResolution, localAverage, nearestDistances } from '../eval/nearest';
import type { FeatureLevel } from '../features/backbone';
import type { ExtraTensor } from '../io/model-file';
import type { HgadModel } from '../model';
import type { Precision } from '../precision';
import { groupImages, pickRows } from '../score/class-constants';
import type { ClassFlows } from './class-flows';

/** What a detector's anomaly maps are: the flow's density, or latent nearest-neighbour distances. */
export type MapMethod = 'density' | 'nearest';
export const MAP_METHODS: readonly MapMethod[] = ['density', 'nearest'];

/** map.nearest: the maps are latent nearest-neighbour distances, from banks of at most `cap` vectors. */
export interface NearestSpec {
  /** Most vectors per class and level. */
  cap: number;
  /** Seed of the subsampling (the training seed). */
  seed: number;
  /**
   * One level more: the coarsest level's latents 2x2-averaged (half its resolution), then 3x3-averaged
   * and banked like the others. Broad defects (bands, uneven shading) span more than a position's
   * neighbourhood; on the validation split this level lifted pixel AUROC by 3.0 (magnetic_tile) and 1.5
   * (metal_plate) points for at most 0.3 image points. Absent: false.
   */
  coarse?: boolean;
}

/** Default bank cap: 4k vectors lost 2.4 image-AUROC points against 16k on magnetic_tile's validation split. */
export const DEFAULT_BANK_SIZE = 16384;
export const BANK_SIZE_RANGE: readonly [number, number] = [1, 1 << 20];

const PREFIX = 'pipeline.bank.';
const tensorName = (classIndex: number, level: number): string => `${PREFIX}${classIndex}.${level}`;

/** Level shapes and names of a detector's flow inputs (names seed the subsampling). */
export interface BankLevel {
  name: string;
  height: number;
  width: number;
  channels: number;
}

/** The widths of a detector's banks: one per flow level, and the coarsest again for the coarse level. */
export function bankChannels(nearest: NearestSpec, flowChannels: number[]): number[] {
  return nearest.coarse ? [...flowChannels, flowChannels[flowChannels.length - 1]!] : flowChannels;
}

/** The bank levels of flow levels `levels` (names seed the subsampling; the coarse one is "<name>/2"). */
export function bankLevels(nearest: NearestSpec, levels: BankLevel[]): BankLevel[] {
  const last = levels[levels.length - 1]!;
  return nearest.coarse
    ? [...levels, { name: `${last.name}/2`, height: Math.floor(last.height / 2), width: Math.floor(last.width / 2), channels: last.channels }]
    : levels;
}

/** `m` distinct positions of [0, n) drawn with `next`, in increasing order (partial Fisher-Yates). */
function pick(n: number, m: number, next: () => number): Int32Array {
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  if (m >= n) return idx;
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(next() * (n - i));
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx.slice(0, m).sort();
}

/** One class's banks, filled batch by batch from its `images` training images in a fixed order. */
export class BankSampler {
  readonly vectors: number[];
  private readonly quota: ((image: number) => number)[];
  private readonly banks: Float32Array[];
  private readonly rngs: (() => number)[];
  private readonly filled: number[];
  private image = 0;

  constructor(readonly images: number, private readonly levels: BankLevel[], cap: number, seed: number, className: string) {
    this.quota = levels.map((l) => {
      const positions = l.height * l.width;
      if (images * positions <= cap) return () => positions;
      // Image i gets floor(cap (i+1) / n) - floor(cap i / n): cap in all, at most ceil(cap / n) <= positions.
      return (i: number) => Math.floor((cap * (i + 1)) / images) - Math.floor((cap * i) / images);
    });
    this.vectors = levels.map((l, li) => {
      let v = 0;
      for (let i = 0; i < images; i++) v += this.quota[li]!(i);
      return v;
    });
    this.banks = levels.map((l, li) => new Float32Array(this.vectors[li]! * l.channels));
    this.rngs = levels.map((l) => mulberry32((seed ^ hashString(`${className}/${l.name}`)) >>> 0));
    this.filled = levels.map(() => 0);
  }

  /** The next images' averaged latents (one entry per level, NHWC). */
  add(pooled: FeatureLevel[]): void {
    const batch = pooled[0]!.batch;
    if (this.image + batch > this.images) throw new Error(`BankSampler: more than the ${this.images} images it was made for`);
    pooled.forEach((f, li) => {
      const P = f.height * f.width, C = f.channels;
      for (let b = 0; b < batch; b++) {
        for (const p of pick(P, this.quota[li]!(this.image + b), this.rngs[li]!)) {
          const at = (b * P + p) * C;
          this.banks[li]!.set(f.data.subarray(at, at + C), this.filled[li]! * C);
          this.filled[li]! += 1;
        }
      }
    });
    this.image += batch;
  }

  /** The banks, once every image was added. */
  result(): Float32Array[] {
    if (this.image !== this.images) throw new Error(`BankSampler: ${this.image} of ${this.images} images added`);
    return this.banks;
  }
}

/** The flow a class's latents come from: its own (spec.classFlows) or the shared one. */
export function flowOf(model: HgadModel, classFlows: ClassFlows, className: string): HgadModel {
  return classFlows.get(className) ?? model;
}

/**
 * The 3x3-averaged latents of a batch of flow inputs, each image through the flow of its class
 * (classIndex: per image, into model.config.classes); with `coarse`, one level more (NearestSpec.coarse).
 */
export async function pooledLatents(model: HgadModel, classFlows: ClassFlows, features: FeatureLevel[], classIndex: Int32Array,
  coarse: boolean): Promise<FeatureLevel[]> {
  const classes = model.config.classes;
  const out: FeatureLevel[] = [];
  for (let l = 0; l < features.length; l++) {
    const f = features[l]!;
    const z = (await model.forward(l, f)).z;
    const per = f.height * f.width * f.channels;
    for (const [y, images] of groupImages(f.batch, (b) => String(classIndex[b]))) {
      const own = classFlows.get(classes[Number(y)]!);
      if (!own) continue;
      const x = images.length < f.batch ? { ...f, batch: images.length, data: pickRows(f.data, images, per) } : f;
      const zo = (await own.forward(l, x)).z;
      images.forEach((b, k) => z.set(zo.subarray(k * per, (k + 1) * per), b * per));
    }
    out.push(await localAverage({ ...f, data: z }));
    if (coarse && l === features.length - 1) out.push(await localAverage(await halfResolution({ ...f, data: z })));
  }
  return out;
}

/** Per class name, one bank per level ([vectors, channels] row-major). */
export class LatentBanks {
  private readonly byClass: ReadonlyMap<string, Float32Array[]>;

  constructor(entries: Iterable<[string, Float32Array[]]> = []) {
    this.byClass = new Map(entries);
  }

  get size(): number {
    return this.byClass.size;
  }

  get(className: string): Float32Array[] | undefined {
    return this.byClass.get(className);
  }

  /** These banks and `className`'s. */
  with(className: string, banks: Float32Array[]): LatentBanks {
    return new LatentBanks([...this.byClass, [className, banks]]);
  }

  /** Vectors per level of `className`'s banks (channels: the level widths). */
  vectors(className: string, channels: number[]): number[] {
    return (this.byClass.get(className) ?? []).map((b, l) => b.length / channels[l]!);
  }

  /** The tensors to store, "pipeline.bank.<class index>.<level>", each [vectors, channels]. */
  tensors(classes: readonly string[], channels: number[]): Map<string, ExtraTensor> {
    const out = new Map<string, ExtraTensor>();
    classes.forEach((c, y) => {
      this.byClass.get(c)?.forEach((data, l) => {
        if (channels[l] === undefined) throw new Error(`LatentBanks.tensors: class ${c} has a bank at level ${l} but the widths list ${channels.length} levels`);
        out.set(tensorName(y, l), { shape: [data.length / channels[l]!, channels[l]!], data });
      });
    });
    return out;
  }

  /**
   * A detector file's banks. Without map.nearest it must hold none; with it, each class has a bank at
   * every level or at none (a checkpoint written before training finished has none), every bank is
   * [1..cap, channels] (the model file already refused non-finite values), and a calibrated detector
   * has every class's.
   */
  static fromFile(nearest: NearestSpec | undefined, calibrated: boolean, classes: readonly string[], flowChannels: number[],
    tensors: ReadonlyMap<string, ExtraTensor>, path: string): LatentBanks {
    const channels = nearest ? bankChannels(nearest, flowChannels) : flowChannels;
    const bad = (problem: string): never => {
      throw new HgadModelFileError(path, problem);
    };
    const found = new Map<string, Float32Array[]>();
    for (const [name, t] of tensors) {
      if (!name.startsWith(PREFIX)) continue;
      if (!nearest) bad(`tensor "${name}" is a nearest-neighbour bank but metadata.pipeline.map has no nearest`);
      const m = /^(\d+)\.(\d+)$/.exec(name.slice(PREFIX.length));
      const y = m ? Number(m[1]) : -1, l = m ? Number(m[2]) : -1;
      if (!(y >= 0 && y < classes.length && l >= 0 && l < channels.length)) {
        bad(`tensor "${name}" names no class and level (the detector has ${classes.length} classes and ${channels.length} bank levels)`);
      }
      const C = channels[l]!;
      const rows = t.shape.length === 2 && t.shape[1] === C ? t.shape[0]! : -1;
      if (!(rows >= 1 && rows <= nearest!.cap && t.data.length === rows * C)) {
        bad(`tensor "${name}" must have shape [1..${nearest!.cap}, ${C}] (map.nearest.cap vectors of the level's width) but has [${t.shape.join(', ')}]`);
      }
      const banks = found.get(classes[y]!) ?? new Array<Float32Array>(channels.length);
      banks[l] = t.data;
      found.set(classes[y]!, banks);
    }
    for (const [c, banks] of found) {
      for (let l = 0; l < channels.length; l++) if (!banks[l]) bad(`class ${c} has a nearest-neighbour bank at some levels but not at level ${l}`);
    }
    if (nearest && calibrated) {
      const missing = classes.find((c) => !found.has(c));
      if (missing !== undefined) bad(`class ${missing} has no nearest-neighbour bank (tensors "${PREFIX}${classes.indexOf(missing)}.<level>")`);
    }
    return new LatentBanks(found);
  }
}

/** Map side and blur of the distance maps. */
export interface NearestMapSize {
  height: number;
  width: number;
  sigma: number;
}

/**
 * The anomaly maps of a batch from its averaged latents: each image's positions against its class's
 * banks (classIndex per image), per level; then upsampled, summed, blurred; image score = map max.
 * precision: the search's GEMM (the detector's scoring precision, HgadModel.precision.inference).
 */
export async function nearestMaps(banks: LatentBanks, classes: readonly string[], pooled: FeatureLevel[], classIndex: Int32Array,
  size: NearestMapSize, precision: Precision): Promise<{ maps: Float32Array; scores: Float32Array }> {
  const batch = pooled[0]!.batch;
  const groups = groupImages(batch, (b) => classes[classIndex[b]!]!);
  for (const c of groups.keys()) {
    if (!banks.get(c)) {
      throw new HgadError('INVALID_ARGUMENT', `This detector has no nearest-neighbour bank for class ${c}: its banks are built when training finishes`, 'detector');
    }
  }
  const planes: DistancePlane[] = [];
  for (let l = 0; l < pooled.length; l++) {
    const f = pooled[l]!;
    const HW = f.height * f.width;
    const values = new Float32Array(batch * HW);
    for (const [c, images] of groups) {
      const q = images.length === batch ? f.data : pickRows(f.data, images, HW * f.channels);
      const d = await nearestDistances(q, banks.get(c)![l]!, { dim: f.channels, precision });
      if (images.length === batch) values.set(d);
      else images.forEach((b, k) => values.set(d.subarray(k * HW, (k + 1) * HW), b * HW));
    }
    planes.push({ values, height: f.height, width: f.width });
  }
  return distanceMaps(planes, batch, size);
}
