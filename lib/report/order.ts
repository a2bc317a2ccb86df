// Which test images the report shows first: the detector's worst mistakes. Each image is placed
// relative to a reference score of its class, the calibrated threshold (what the detector decides
// with) or, without calibration, the class's F1-max threshold on this test set; the distance is in
// units of the class's score spread, so classes with different score scales mix fairly.
import { f1Max } from '../eval/metrics';
import type { EvaluatedImage } from '../eval/run';

export type Verdict = 'TP' | 'FP' | 'FN' | 'TN';

export interface RankedImage {
  image: EvaluatedImage;
  /** The score the verdict compares with, and where it comes from. */
  reference: number;
  referenceSource: 'calibrated' | 'f1-max' | 'median';
  verdict: Verdict;
  /**
   * How wrong the image is: (score - reference) / spread for a normal image, (reference - score) /
   * spread for an anomalous one; positive for a mistake, larger is worse.
   */
  badness: number;
}

function spread(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  return sd > 0 ? sd : 1;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Per true class (sample.className): the reference without calibration and the score spread. */
async function classStats(images: EvaluatedImage[]): Promise<Map<string, { fallback: number; source: 'f1-max' | 'median'; spread: number }>> {
  const byClass = new Map<string, EvaluatedImage[]>();
  for (const im of images) {
    const list = byClass.get(im.sample.className);
    if (list) list.push(im);
    else byClass.set(im.sample.className, [im]);
  }
  const out = new Map<string, { fallback: number; source: 'f1-max' | 'median'; spread: number }>();
  for (const [name, list] of byClass) {
    const scores = list.map((im) => im.result.imageScore);
    const best = await f1Max(Float32Array.from(scores), Uint8Array.from(list, (im) => im.sample.label));
    const useF1 = list.some((im) => im.sample.label === 0) && Number.isFinite(best.threshold);
    out.set(name, { fallback: useF1 ? best.threshold : median(scores), source: useF1 ? 'f1-max' : 'median', spread: spread(scores) });
  }
  return out;
}

function verdictOf(label: 0 | 1, predicted: boolean): Verdict {
  if (label === 1) return predicted ? 'TP' : 'FN';
  return predicted ? 'FP' : 'TN';
}

/**
 * Every image ranked worst first: anomalous and normal images each sorted by badness (descending,
 * ties by path), then interleaved (anomalous first) so both kinds of mistake lead the grid.
 */
export async function rankWorstFirst(images: EvaluatedImage[]): Promise<RankedImage[]> {
  const stats = await classStats(images);
  const ranked = images.map((image): RankedImage => {
    const s = stats.get(image.sample.className)!;
    const { imageScore, threshold, isAnomaly } = image.result;
    const calibrated = threshold !== null;
    const reference = calibrated ? threshold : s.fallback;
    // The calibrated decision is score > threshold; F1-max's is score >= threshold.
    // F1-max's threshold is one of the scores as float32 (the native metrics take Float32Array).
    const predicted = calibrated ? (isAnomaly ?? imageScore > reference) : Math.fround(imageScore) >= reference;
    const signed = (imageScore - reference) / s.spread;
    return {
      image, reference, referenceSource: calibrated ? 'calibrated' : s.source,
      verdict: verdictOf(image.sample.label, predicted),
      badness: image.sample.label === 1 ? -signed : signed,
    };
  });
  const byBadness = (a: RankedImage, b: RankedImage): number =>
    b.badness - a.badness || (a.image.sample.path < b.image.sample.path ? -1 : a.image.sample.path > b.image.sample.path ? 1 : 0);
  const anomalous = ranked.filter((r) => r.image.sample.label === 1).sort(byBadness);
  const normal = ranked.filter((r) => r.image.sample.label === 0).sort(byBadness);
  const out: RankedImage[] = [];
  for (let k = 0; k < Math.max(anomalous.length, normal.length); k++) {
    if (k < anomalous.length) out.push(anomalous[k]!);
    if (k < normal.length) out.push(normal[k]!);
  }
  return out;
}
