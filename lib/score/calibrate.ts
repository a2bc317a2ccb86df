// Calibration: the normalisation constants of the anomaly maps and one image-score threshold per
// class, measured on normal images (held out from training when there are enough of them) and stored
// in the detector, so that scoring an image never depends on what else is scored with it.
import type { Sample } from '../data';
import { HgadArgumentError } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';
import type { Calibration } from '../pipeline/spec';
import { checkKeys } from '../validate';
import { measureConstants } from './scorer';

export interface CalibrateOptions {
  /** Quantile of the normal images' scores (per class) taken as the threshold. Default 0.99. */
  quantile?: number;
  batchSize?: number;
}

/** Linear-interpolated quantile (numpy's default) of a non-empty list. */
export function quantile(values: number[], q: number): number {
  const v = [...values].sort((a, b) => a - b);
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return v[lo]! + (v[hi]! - v[lo]!) * (pos - lo);
}

export async function calibrate(detector: AnomalyDetector, normals: Sample[], options: CalibrateOptions = {}): Promise<Calibration> {
  detector.assertUsable();
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, ['quantile', 'batchSize']);
  const q = options.quantile ?? 0.99;
  if (typeof q !== 'number' || !(q >= 0 && q <= 1)) throw new HgadArgumentError('calibration.quantile', 'a number in [0, 1]', q);
  if (!Array.isArray(normals) || normals.length === 0) {
    throw new HgadArgumentError('normals', 'at least one normal image to calibrate on', normals);
  }
  normals.forEach((s, i) => detector.classIndex(`normals[${i}].className`, s.className));
  const { constants, scores } = await measureConstants(detector, normals, options.batchSize ? { batchSize: options.batchSize } : {});
  const thresholds: Record<string, number> = {};
  for (const name of detector.classes) {
    const own = scores.filter((s) => s.className === name).map((s) => s.score);
    // A class without calibration images falls back to all classes' scores.
    thresholds[name] = quantile(own.length > 0 ? own : scores.map((s) => s.score), q);
  }
  return { ...constants, thresholds, images: normals.length, quantile: q };
}
