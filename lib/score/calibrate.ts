// Calibration: the normalisation constants of the anomaly maps and one image-score threshold per
// class, measured on normal images (held out from training when there are enough of them) and stored
// in the detector, so that scoring an image never depends on what else is scored with it.
import type { Sample } from '../data';
import { HgadArgumentError } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';
import type { Calibration, ClassConstants } from '../pipeline/spec';
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
  const batch = options.batchSize ? { batchSize: options.batchSize } : {};
  // Classes with a flow of their own (spec.classFlows) are measured apart, each with constants of its
  // own: their logp comes from their own flow, on another scale than the shared flow's.
  const ownFlow = (name: string): boolean => detector.classFlows.get(name) !== undefined;
  const shared = normals.filter((s) => !ownFlow(s.className));
  const before = detector.spec.calibration;
  // Only class-flow images given: the shared flow's constants stay as they were measured.
  const measured = shared.length === 0 && before
    ? { constants: { logpShift: before.logpShift, nentShift: before.nentShift, logpTop: before.logpTop, nentTop: before.nentTop }, scores: [] }
    : await measureConstants(detector, shared.length > 0 ? shared : normals, batch);
  const scores = new Map<string, number[]>();
  for (const s of measured.scores) scores.set(s.className, [...(scores.get(s.className) ?? []), s.score]);
  const previous = before?.classConstants ?? {};
  const classConstants: Record<string, ClassConstants> = {};
  for (const [name] of detector.classFlows.entries()) {
    const own = normals.filter((s) => s.className === name);
    if (own.length === 0) {
      // Not measured again: its constants stay (its maps do not depend on the shared flow's).
      if (previous[name]) classConstants[name] = previous[name]!;
      continue;
    }
    const m = await measureConstants(detector, own, batch);
    classConstants[name] = { ...m.constants, images: own.length };
    scores.set(name, m.scores.map((x) => x.score));
  }
  // The fallback of a class without images: the scores on the same flow's scale where there are any.
  const sharedScores = measured.scores.map((x) => x.score);
  const all = sharedScores.length > 0 ? sharedScores : [...scores.values()].flat();
  const thresholds: Record<string, number> = {};
  for (const name of detector.classes) {
    const own = scores.get(name) ?? [];
    // A class without calibration images: a class flow's keeps its threshold, as does every class when
    // no shared-flow image was given; otherwise the other classes' scores on the shared flow's scale.
    const kept = own.length === 0 && (ownFlow(name) || sharedScores.length === 0) ? before?.thresholds[name] : undefined;
    thresholds[name] = kept ?? quantile(own.length > 0 ? own : all, q);
  }
  return {
    ...measured.constants, thresholds, images: normals.length, quantile: q,
    ...(Object.keys(classConstants).length > 0 ? { classConstants } : {}),
  };
}
