/**
 * Per-class evaluation of scored test images: image AUROC and F1-max from the image scores, pixel
 * AUROC and AUPRO from the maps and ground-truth masks, and the mean over classes.
 */
import { HgadArgumentError } from '../errors';
import { isUint8Array } from '../native-ops';
import { checkInteger, checkKeys, isFloat32Array } from '../validate';
import { aupro, auroc, f1Max } from './metrics';

export interface EvalSample {
  className: string;
  imageScore: number;
  /** 1 = anomalous. */
  label: 0 | 1;
  /** Anomaly map, height x width row-major; images without one take no part in the pixel metrics. */
  map?: Float32Array;
  /**
   * Ground truth at the map's size, nonzero = anomalous (0/255 masks work as they are). null or absent:
   * an all-zero mask for a normal image; for an anomalous image the mask is unknown and the image is
   * left out of the pixel metrics (it still counts for the image metrics).
   */
  mask?: Uint8Array | null;
  height?: number;
  width?: number;
}

export interface ClassMetrics {
  className: string;
  images: number;
  anomalous: number;
  imageAuroc: number;
  /** NaN when the class has no pixel data with both normal and anomalous pixels. */
  pixelAuroc: number;
  /** Up to EvalReport.maxFpr; NaN without anomalous regions. */
  aupro: number;
  /** Best image-level F1 over all thresholds. */
  f1Max: number;
}

export type MeanMetrics = Omit<ClassMetrics, 'className' | 'images' | 'anomalous'> & { images: number };

export interface EvalReport {
  classes: ClassMetrics[];
  /** Each metric averaged over the classes where it is defined (not NaN); images: the total. */
  mean: MeanMetrics;
  maxFpr: number;
}

export interface EvaluateOptions {
  /** Upper FPR of AUPRO. Default 0.3. */
  maxFpr?: number;
}

function checkSample(s: unknown, i: number): EvalSample {
  const name = `samples[${i}]`;
  if (typeof s !== 'object' || s === null) throw new HgadArgumentError(name, 'an object { className, imageScore, label, ... }', s);
  const o = s as Record<string, unknown>;
  if (typeof o.className !== 'string') throw new HgadArgumentError(`${name}.className`, 'a string', o.className);
  if (typeof o.imageScore !== 'number' || !Number.isFinite(o.imageScore)) {
    throw new HgadArgumentError(`${name}.imageScore`, 'a finite number', o.imageScore);
  }
  if (o.label !== 0 && o.label !== 1) throw new HgadArgumentError(`${name}.label`, '0 or 1', o.label);
  if (o.map !== undefined) {
    checkInteger(`${name}.height`, o.height, 1, 1 << 16);
    checkInteger(`${name}.width`, o.width, 1, 1 << 16);
    const n = (o.height as number) * (o.width as number);
    if (!isFloat32Array(o.map) || o.map.length !== n) {
      throw new HgadArgumentError(`${name}.map`, `a Float32Array of height*width = ${n} elements`, o.map);
    }
    if (o.mask !== undefined && o.mask !== null && (!isUint8Array(o.mask) || o.mask.length !== n)) {
      throw new HgadArgumentError(`${name}.mask`, `null or a Uint8Array of height*width = ${n} elements`, o.mask);
    }
  }
  return s as EvalSample;
}

function nanMean(values: number[]): number {
  const defined = values.filter((v) => !Number.isNaN(v));
  return defined.length === 0 ? NaN : defined.reduce((a, b) => a + b, 0) / defined.length;
}

async function pixelMetrics(samples: { sample: EvalSample; index: number }[], maxFpr: number):
  Promise<{ pixelAuroc: number; aupro: number }> {
  const used = samples.filter(({ sample: s }) => s.map !== undefined && (s.label === 0 || (s.mask !== undefined && s.mask !== null)));
  if (used.length === 0) return { pixelAuroc: NaN, aupro: NaN };
  const { height, width } = used[0]!.sample as Required<EvalSample>;
  const hw = height * width;
  const maps = new Float32Array(used.length * hw);
  const masks = new Uint8Array(used.length * hw);
  used.forEach(({ sample: s, index }, k) => {
    if (s.height !== height || s.width !== width) {
      throw new HgadArgumentError(`samples[${index}].map`,
        `a ${height}x${width} map like the other maps of class ${s.className}`, `a ${s.height}x${s.width} map`);
    }
    maps.set(s.map!, k * hw);
    if (s.mask) masks.set(s.mask, k * hw);
  });
  return { pixelAuroc: await auroc(maps, masks), aupro: await aupro(maps, masks, used.length, height, width, maxFpr) };
}

/** Metrics per class (in order of first appearance) and their mean over classes. */
export async function evaluate(samples: EvalSample[], options: EvaluateOptions = {}): Promise<EvalReport> {
  if (!Array.isArray(samples)) throw new HgadArgumentError('samples', 'an array of EvalSample', samples);
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, ['maxFpr']);
  const maxFpr = options.maxFpr ?? 0.3;
  if (typeof maxFpr !== 'number' || !(maxFpr > 0 && maxFpr <= 1)) throw new HgadArgumentError('options.maxFpr', 'a number in (0, 1]', maxFpr);
  const byClass = new Map<string, { sample: EvalSample; index: number }[]>();
  samples.forEach((s, index) => {
    const sample = checkSample(s, index);
    const list = byClass.get(sample.className) ?? [];
    list.push({ sample, index });
    byClass.set(sample.className, list);
  });
  const classes: ClassMetrics[] = [];
  // One class at a time: each native call already uses every core.
  for (const [className, list] of byClass) {
    const scores = Float32Array.from(list, ({ sample }) => sample.imageScore);
    const labels = Uint8Array.from(list, ({ sample }) => sample.label);
    const imageAuroc = await auroc(scores, labels);
    const f1 = await f1Max(scores, labels);
    const pixel = await pixelMetrics(list, maxFpr);
    classes.push({
      className, images: list.length, anomalous: list.filter(({ sample }) => sample.label === 1).length,
      imageAuroc, pixelAuroc: pixel.pixelAuroc, aupro: pixel.aupro, f1Max: f1.f1,
    });
  }
  const mean: MeanMetrics = {
    images: samples.length,
    imageAuroc: nanMean(classes.map((c) => c.imageAuroc)),
    pixelAuroc: nanMean(classes.map((c) => c.pixelAuroc)),
    aupro: nanMean(classes.map((c) => c.aupro)),
    f1Max: nanMean(classes.map((c) => c.f1Max)),
  };
  return { classes, mean, maxFpr };
}
