// Channel reduction before the flow (native/core/projection.h). A flow's cost grows with the square of
// its width, and ResNet taps have 512 and 1024 channels: each level is standardised with per-channel
// statistics of the training features, then projected onto `channels` fixed orthonormal directions:
// random ones, or the standardised features' leading principal directions (measured on the same
// sample), which keep far more of the features' variance at the same width. Standardising first
// matters: backbone channels differ in scale by orders of magnitude, and a projection of raw features
// would be dominated by the few loudest ones.
import { HgadArgumentError, HgadModelFileError } from '../errors';
import type { FeatureLevel } from '../features/backbone';
import type { ExtraTensor } from '../io/model-file';
import { localAverage } from '../eval/nearest';
import { callNative, featureOps } from '../native-ops';
import { checkInteger } from '../validate';

/** How a detector reduces its levels (train option `reduction`). */
export interface ReductionOptions {
  /** Width of every level after the projection (a level already narrower keeps its width); or one per level. */
  channels?: number | number[];
  /** Standardise every channel with the training features' mean and standard deviation. Default true. */
  standardize?: boolean;
  /** Training images the statistics are measured on (a seeded sample). Default 256. */
  images?: number;
  /**
   * Average every position's features with its 3x3 neighbourhood first (PatchCore's local aggregation:
   * AvgPool2d(3, 1, 1)), so each vector describes a small patch rather than one receptive-field centre.
   * Default false.
   */
  localAverage?: boolean;
  /**
   * The directions projected onto: 'random' (Haar-random orthonormal, drawn from the seed) or 'pca' (the
   * leading principal directions of the standardised training features). Default 'random'.
   */
  projection?: Projection;
  /** With 'pca': divide each direction by the square root of its variance, so every reduced channel has unit variance. Default false. */
  whiten?: boolean;
}

export type Projection = 'random' | 'pca';
export const PROJECTIONS: readonly Projection[] = ['random', 'pca'];

/** What the detector file stores (PipelineSpec.reduction); the tensors are stored beside the flow's. */
export interface ReductionSpec {
  inChannels: number[];
  channels: number[];
  standardize: boolean;
  localAverage: boolean;
  /** Training images the statistics were measured on. */
  images: number;
  seed: number;
  /** Absent in files written before principal directions existed: 'random'. */
  projection?: Projection;
  whiten?: boolean;
  /** With 'pca': the fraction of each level's standardised variance its directions keep. */
  retained?: number[];
}

interface Level {
  mean: Float32Array;
  scale: Float32Array;
  weight: Float32Array;
}

export const REDUCTION_KEYS = ['channels', 'standardize', 'images', 'localAverage', 'projection', 'whiten'];
const TENSOR = (l: number, what: 'mean' | 'scale' | 'weight'): string => `pipeline.reduction.${l}.${what}`;
/** Variance floor, relative to the mean variance of the level's channels: dead channels stay quiet. */
const VARIANCE_FLOOR = 1e-2;
/** The widest level principal directions are computed for (native kMaxPrincipalChannels). */
export const MAX_PCA_CHANNELS = 4096;

/** Validates the option and resolves the output width of each level. */
export interface ResolvedReduction {
  channels: number[];
  standardize: boolean;
  images: number;
  localAverage: boolean;
  projection: Projection;
  whiten: boolean;
}

export function resolveReduction(options: unknown, inChannels: number[]): ResolvedReduction {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new HgadArgumentError('reduction', 'an object { channels?, standardize?, images?, localAverage?, projection?, whiten? }', options);
  }
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!REDUCTION_KEYS.includes(k)) throw new HgadArgumentError(`reduction.${k}`, `one of the keys ${REDUCTION_KEYS.join(', ')}`, k);
  }
  let channels: number[];
  if (o.channels === undefined) {
    channels = [...inChannels];
  } else if (typeof o.channels === 'number') {
    checkInteger('reduction.channels', o.channels, 2, 1 << 16);
    channels = inChannels.map((c) => Math.min(c, o.channels as number));
  } else if (Array.isArray(o.channels) && o.channels.length === inChannels.length) {
    channels = o.channels.map((c: unknown, l) => {
      checkInteger(`reduction.channels[${l}]`, c, 2, inChannels[l]!);
      return c as number;
    });
  } else {
    throw new HgadArgumentError('reduction.channels', `a width, or one width per level (${inChannels.length})`, o.channels);
  }
  const standardize = o.standardize ?? true;
  if (typeof standardize !== 'boolean') throw new HgadArgumentError('reduction.standardize', 'a boolean', standardize);
  const images = o.images ?? 256;
  checkInteger('reduction.images', images, 1, 1 << 20);
  const localAverage = o.localAverage ?? false;
  if (typeof localAverage !== 'boolean') throw new HgadArgumentError('reduction.localAverage', 'a boolean', localAverage);
  const projection = o.projection ?? 'random';
  if (!PROJECTIONS.includes(projection as Projection)) throw new HgadArgumentError('reduction.projection', `one of ${PROJECTIONS.map((p) => `'${p}'`).join(', ')}`, projection);
  const whiten = o.whiten ?? false;
  if (typeof whiten !== 'boolean') throw new HgadArgumentError('reduction.whiten', 'a boolean', whiten);
  if (whiten && projection !== 'pca') throw new HgadArgumentError('reduction.whiten', "false unless projection is 'pca'", whiten);
  if (projection === 'pca') {
    inChannels.forEach((c, l) => {
      if (c > MAX_PCA_CHANNELS && channels[l]! < c) {
        throw new HgadArgumentError('reduction.projection', `'random' for level ${l}: principal directions take levels of at most ${MAX_PCA_CHANNELS} channels`, `'pca' with ${c} channels`);
      }
    });
  }
  return { channels, standardize, images: images as number, localAverage, projection: projection as Projection, whiten };
}

/** What fit() needs: the resolved options (projection and whiten default to 'random' and false). */
export type FitOptions = Omit<ResolvedReduction, 'images' | 'projection' | 'whiten'> & Partial<Pick<ResolvedReduction, 'projection' | 'whiten'>>;

export class FeatureReduction {
  private constructor(readonly spec: ReductionSpec, private readonly levels: Level[]) {}

  /**
   * Measures the statistics on `batches` (backbone features of training images), then draws the
   * projections from `seed` or, with projection 'pca', takes the leading principal directions.
   */
  static async fit(inChannels: number[], resolved: FitOptions, batches: AsyncIterable<FeatureLevel[]>,
    seed: number): Promise<FeatureReduction> {
    const ops = featureOps();
    const projection = resolved.projection ?? 'random', whiten = resolved.whiten ?? false;
    // Levels whose principal directions are measured: their cross-moments also give the mean and variance.
    const pca = inChannels.map((c) => projection === 'pca' && c <= MAX_PCA_CHANNELS);
    const sums = inChannels.map((c) => ({ sum: new Float64Array(c), sumsq: new Float64Array(c), rows: 0 }));
    const cross = inChannels.map((c, l) => (pca[l] ? { shift: null as Float32Array | null, sum: new Float64Array(c) as Float64Array<ArrayBufferLike>, cross: new Float64Array(c * c) as Float64Array<ArrayBufferLike>, rows: 0 } : null));
    let images = 0;
    if (resolved.standardize || pca.some(Boolean)) {
      for await (const raw of batches) {
        const features = resolved.localAverage ? await Promise.all(raw.map(localAverage)) : raw;
        for (let l = 0; l < features.length; l++) {
          const f = features[l]!;
          const rows = f.batch * f.height * f.width;
          const cr = cross[l];
          if (cr) {
            // Moments about the first batch's mean, so the float32 products in the native sums do not cancel.
            if (!cr.shift) {
              const m = await callNative(() => ops.channelMoments(f.data, rows, f.channels));
              cr.shift = Float32Array.from(m.sum, (v) => v / rows);
            }
            const next = await callNative(() => ops.channelCrossMoments(f.data, rows, f.channels, cr.shift!, cr.sum, cr.cross));
            cr.sum = next.sum;
            cr.cross = next.cross;
            cr.rows += rows;
            continue;
          }
          if (!resolved.standardize) continue;
          const m = await callNative(() => ops.channelMoments(f.data, rows, f.channels));
          const acc = sums[l]!;
          for (let c = 0; c < f.channels; c++) {
            acc.sum[c]! += m.sum[c]!;
            acc.sumsq[c]! += m.sumsq[c]!;
          }
          acc.rows += rows;
        }
        images += features[0]!.batch;
      }
    }
    const levels: Level[] = [];
    const retained: number[] = [];
    for (let l = 0; l < inChannels.length; l++) {
      const C = inChannels[l]!, out = resolved.channels[l]!, cr = cross[l];
      const mean = new Float32Array(C), scale = new Float32Array(C).fill(1);
      const moments = cr
        ? { rows: cr.rows, mean: (c: number) => cr.shift![c]! + cr.sum[c]! / cr.rows, variance: (c: number) => cr.cross[c * C + c]! / cr.rows - (cr.sum[c]! / cr.rows) ** 2 }
        : { rows: sums[l]!.rows, mean: (c: number) => sums[l]!.sum[c]! / sums[l]!.rows, variance: (c: number) => sums[l]!.sumsq[c]! / sums[l]!.rows - (sums[l]!.sum[c]! / sums[l]!.rows) ** 2 };
      if (resolved.standardize && moments.rows > 0) {
        const variance = new Float64Array(C);
        for (let c = 0; c < C; c++) {
          mean[c] = moments.mean(c);
          variance[c] = Math.max(0, moments.variance(c));
        }
        const floor = VARIANCE_FLOOR * (variance.reduce((a, b) => a + b, 0) / C) + 1e-12;
        for (let c = 0; c < C; c++) scale[c] = 1 / Math.sqrt(variance[c]! + floor);
      } else if (cr && cr.rows > 0) {
        for (let c = 0; c < C; c++) mean[c] = moments.mean(c);
      }
      let weight: Float32Array;
      if (cr) {
        if (cr.rows === 0) throw new HgadArgumentError('reduction.images', 'at least one training image to measure principal directions on', 0);
        const pd = await callNative(() => ops.principalDirections(cr.cross, cr.sum, cr.rows, scale, out, whiten));
        weight = pd.weight;
        // Clamped: rounding can put a covariance's smallest eigenvalues a hair below zero.
        retained.push(pd.total > 0 ? Math.min(1, Math.max(0, pd.values.reduce((a, b) => a + b, 0) / pd.total)) : 1);
      } else {
        weight = out === C ? identity(C) : await callNative(() => ops.orthonormalRows(seed * 1009 + l, out, C));
        retained.push(Number.NaN);
      }
      levels.push({ mean, scale, weight });
    }
    return new FeatureReduction({
      inChannels, channels: resolved.channels, standardize: resolved.standardize, localAverage: resolved.localAverage, images, seed,
      ...(projection === 'pca' ? { projection, whiten, retained: retained.map((r) => (Number.isNaN(r) ? 1 : Math.round(r * 1e6) / 1e6)) } : {}),
    }, levels);
  }

  /** The stored reduction of a detector file. */
  static fromFile(spec: ReductionSpec, tensors: ReadonlyMap<string, ExtraTensor>, path: string): FeatureReduction {
    const levels = spec.inChannels.map((C, l) => {
      const get = (what: 'mean' | 'scale' | 'weight', length: number): Float32Array => {
        const t = tensors.get(TENSOR(l, what));
        if (!t || t.data.length !== length) throw new HgadModelFileError(path, `tensor "${TENSOR(l, what)}" is missing or does not hold ${length} values`);
        return t.data;
      };
      return { mean: get('mean', C), scale: get('scale', C), weight: get('weight', spec.channels[l]! * C) };
    });
    return new FeatureReduction(spec, levels);
  }

  tensors(): Map<string, ExtraTensor> {
    const out = new Map<string, ExtraTensor>();
    this.levels.forEach((lv, l) => {
      const C = this.spec.inChannels[l]!;
      out.set(TENSOR(l, 'mean'), { shape: [C], data: lv.mean });
      out.set(TENSOR(l, 'scale'), { shape: [C], data: lv.scale });
      out.set(TENSOR(l, 'weight'), { shape: [this.spec.channels[l]!, C], data: lv.weight });
    });
    return out;
  }

  /** The reduced features of a batch (new arrays; the input is not changed). */
  async apply(features: FeatureLevel[]): Promise<FeatureLevel[]> {
    const ops = featureOps();
    const out: FeatureLevel[] = [];
    for (let l = 0; l < features.length; l++) {
      const f = this.spec.localAverage ? await localAverage(features[l]!) : features[l]!;
      const lv = this.levels[l]!;
      const C = this.spec.inChannels[l]!, K = this.spec.channels[l]!;
      if (f.channels !== C) throw new HgadArgumentError(`features[${l}].channels`, `${C} (the backbone the detector was trained with)`, f.channels);
      const rows = f.batch * f.height * f.width;
      const data = await callNative(() => ops.projectChannels(f.data, rows, C, lv.mean, lv.scale, lv.weight, K));
      out.push({ data, batch: f.batch, height: f.height, width: f.width, channels: K });
    }
    return out;
  }
}

function identity(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}
