// Maps when classes differ in how their maps are made: some carry map constants of their own
// (Calibration.classConstants: classes added to a trained detector, whose latents the detector-wide
// constants were not measured on), some combine the two score maps otherwise (map.classCombine: classes
// added to a one-class detector use 'logp*nent', the original class keeps 'logp'). The images of a
// batch are grouped by what applies to their class; each group's maps are made in one native call and
// put back in batch order. A batch of one group is one call on the batch as it is, as before.
import type { AnomalyDetector } from '../pipeline/detector';
import { combineOf, MapCombine } from '../pipeline/spec';
import { anomalyMaps, LevelMaps, MapConstants, MapSize } from './maps';

/** The constants that apply to images of `className`. */
export function constantsFor(detector: AnomalyDetector, className: string): MapConstants {
  const c = detector.spec.calibration!;
  return c.classConstants?.[className] ?? c;
}

/** The combination that applies to images of `className`. */
export function combineFor(detector: AnomalyDetector, className: string): MapCombine {
  return combineOf(detector.spec.map, className);
}

/**
 * The group an image of `className` is normalised with in 'batch' scoring: its map combination, and
 * for a class with a flow of its own (spec.classFlows) that class alone (its logp comes from another
 * flow, on another scale). combineOfGroup reads the combination back.
 */
export function batchGroupFor(detector: AnomalyDetector, className: string): string {
  const combine = combineFor(detector, className);
  return detector.classFlows.get(className) ? `${combine}|${className}` : combine;
}

export function combineOfGroup(group: string): MapCombine {
  return group.split('|')[0] as MapCombine;
}

/** The images of a batch by key, each group in batch order, groups in order of first appearance. */
export function groupImages(batch: number, keyOf: (b: number) => string): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  for (let b = 0; b < batch; b++) {
    const key = keyOf(b);
    const group = groups.get(key);
    if (group) group.push(b);
    else groups.set(key, [b]);
  }
  return groups;
}

/** Images `images` (in that order) of an array holding `perImage` values per image. */
export function pickRows(a: Float32Array, images: number[], perImage: number): Float32Array {
  const out = new Float32Array(images.length * perImage);
  images.forEach((b, i) => out.set(a.subarray(b * perImage, (b + 1) * perImage), i * perImage));
  return out;
}

/** The per-level scores of some of a batch's images (the levels themselves when that is all of them). */
export function pickImages(levels: LevelMaps[], images: number[], batch: number): LevelMaps[] {
  if (images.length === batch) return levels;
  return levels.map((lv) => {
    const hw = lv.height * lv.width;
    return { logp: pickRows(lv.logp, images, hw), negEntropy: pickRows(lv.negEntropy, images, hw), height: lv.height, width: lv.width };
  });
}

/** Maps of the batch made group by group (make(levels, images, key) for each group), in batch order. */
export async function groupedMaps(levels: LevelMaps[], batch: number, size: MapSize, keyOf: (b: number) => string,
  make: (levels: LevelMaps[], batch: number, key: string) => Promise<{ maps: Float32Array; scores: Float32Array }>):
  Promise<{ maps: Float32Array; scores: Float32Array }> {
  const groups = groupImages(batch, keyOf);
  if (groups.size === 1) return make(levels, batch, [...groups.keys()][0]!);
  const pixels = size.height * size.width;
  const maps = new Float32Array(batch * pixels);
  const scores = new Float32Array(batch);
  for (const [key, images] of groups) {
    const part = await make(pickImages(levels, images, batch), images.length, key);
    images.forEach((b, i) => {
      maps.set(part.maps.subarray(i * pixels, (i + 1) * pixels), b * pixels);
      scores[b] = part.scores[i]!;
    });
  }
  return { maps, scores };
}

/** Calibrated maps: each image with its class's constants and combination (classIndex: the class each image is scored as). */
export async function calibratedMaps(detector: AnomalyDetector, levels: LevelMaps[], classIndex: Int32Array, batch: number,
  size: MapSize): Promise<{ maps: Float32Array; scores: Float32Array }> {
  const own = detector.spec.calibration!.classConstants ?? {};
  // Key: the class whose own constants apply ('' = the detector-wide ones) and the combination.
  const keyOf = (b: number): string => {
    const name = detector.classes[classIndex[b]!]!;
    return JSON.stringify([Object.prototype.hasOwnProperty.call(own, name) ? name : '', combineFor(detector, name)]);
  };
  return groupedMaps(levels, batch, size, keyOf, (lv, n, key) => {
    const [name, combine] = JSON.parse(key) as [string, MapCombine];
    return anomalyMaps(lv, n, name === '' ? detector.spec.calibration! : own[name]!, size, combine);
  });
}
