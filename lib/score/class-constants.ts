// Calibrated maps when some classes carry their own map constants (Calibration.classConstants: classes
// added to a trained detector, whose latents the detector-wide constants were not measured on). The
// images of a batch are grouped by the constants that apply to their class; each group's maps are made
// with its constants and put back in batch order. Without class constants: one call, as before.
import type { AnomalyDetector } from '../pipeline/detector';
import type { MapCombine } from '../pipeline/spec';
import { anomalyMaps, LevelMaps, MapConstants, MapSize } from './maps';

/** The constants that apply to images of `className`. */
export function constantsFor(detector: AnomalyDetector, className: string): MapConstants {
  const c = detector.spec.calibration!;
  return c.classConstants?.[className] ?? c;
}

export async function calibratedMaps(detector: AnomalyDetector, levels: LevelMaps[], classIndex: Int32Array, batch: number,
  size: MapSize, combine: MapCombine): Promise<{ maps: Float32Array; scores: Float32Array }> {
  const own = detector.spec.calibration!.classConstants ?? {};
  const groups = new Map<string, number[]>(); // '' = the detector-wide constants
  for (let b = 0; b < batch; b++) {
    const name = detector.classes[classIndex[b]!]!;
    const key = Object.prototype.hasOwnProperty.call(own, name) ? name : '';
    groups.set(key, [...(groups.get(key) ?? []), b]);
  }
  const whole = (key: string): MapConstants => (key === '' ? detector.spec.calibration! : own[key]!);
  if (groups.size === 1) return anomalyMaps(levels, batch, whole([...groups.keys()][0]!), size, combine);
  const pixels = size.height * size.width;
  const maps = new Float32Array(batch * pixels);
  const scores = new Float32Array(batch);
  for (const [key, images] of groups) {
    const sub = levels.map((lv) => {
      const hw = lv.height * lv.width;
      const pick = (a: Float32Array): Float32Array => {
        const out = new Float32Array(images.length * hw);
        images.forEach((b, i) => out.set(a.subarray(b * hw, (b + 1) * hw), i * hw));
        return out;
      };
      return { logp: pick(lv.logp), negEntropy: pick(lv.negEntropy), height: lv.height, width: lv.width };
    });
    const part = await anomalyMaps(sub, images.length, whole(key), size, combine);
    images.forEach((b, i) => {
      maps.set(part.maps.subarray(i * pixels, (i + 1) * pixels), b * pixels);
      scores[b] = part.scores[i]!;
    });
  }
  return { maps, scores };
}
