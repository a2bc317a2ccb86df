// The quality guard of the bf16 precision (issue 14), run by `npm run bench:quality -- --precision-guard`:
// on the shared real data, one unified detector trained in fp32 is evaluated with fp32 and with bf16
// scoring (image and pixel AUROC, and the Spearman rank correlation of every test image's anomaly map
// between the two); a second detector, same data, schedule and seed, is trained in mixed precision
// (bf16 GEMMs) and evaluated with fp32 scoring against the first. Limits: scoring AUROC change <= 0.002,
// map rank correlation >= 0.999 (mean over images; the minimum is reported too), mixed-precision
// training within 0.005 AUROC of fp32.
import type { Dataset } from '../lib/data';
import { evaluateDetector } from '../lib/eval/run';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import type { Precision } from '../lib/precision';
import { spearman } from './rank-correlation';

export const GUARD_LIMITS = { scoringAuroc: 0.002, mapSpearman: 0.999, trainingAuroc: 0.005 } as const;

export interface GuardMetrics {
  image: number;
  pixel: number;
}

export interface GuardResult {
  /** Mean over classes of the fp32-trained detector scored in fp32 and in bf16, and of the bf16-trained one scored in fp32. */
  fp32: GuardMetrics;
  bf16Scoring: GuardMetrics;
  bf16Training: GuardMetrics;
  spearmanMean: number;
  spearmanMin: number;
  images: number;
  scoringHolds: boolean;
  trainingHolds: boolean;
}

async function evaluateAt(detector: AnomalyDetector, dataset: Dataset, classes: string[], precision: Precision,
  limitPerDefect: number | undefined, batchSize: number): Promise<{ metrics: GuardMetrics; maps: Float32Array[] }> {
  await detector.model.setPrecision({ inference: precision });
  if (detector.model.precision.inference !== precision) throw new Error(`scoring did not run in ${precision}`);
  const { report, images } = await evaluateDetector(detector, dataset, {
    classes, normalization: 'batch', batchSize, ...(limitPerDefect ? { limitPerDefect } : {}),
  });
  const mean = (k: 'imageAuroc' | 'pixelAuroc'): number => report.classes.reduce((a, c) => a + c[k], 0) / report.classes.length;
  return { metrics: { image: mean('imageAuroc'), pixel: mean('pixelAuroc') }, maps: images.map((i) => i.result.map) };
}

/**
 * trainDetector(precision) trains the guard's detector (the caller fixes data, schedule and seed, the
 * same for both arms); the first arm's detector is disposed before the second is trained.
 */
export async function runPrecisionGuard(dataset: Dataset, classes: string[],
  trainDetector: (precision: Precision) => Promise<AnomalyDetector>, options: { limitPerDefect?: number; batchSize: number },
  log: (line: string) => void): Promise<GuardResult> {
  const a = await trainDetector('fp32');
  let fp32, bf16;
  try {
    fp32 = await evaluateAt(a, dataset, classes, 'fp32', options.limitPerDefect, options.batchSize);
    bf16 = await evaluateAt(a, dataset, classes, 'bf16', options.limitPerDefect, options.batchSize);
  } finally {
    await a.dispose();
  }
  const rhos = fp32.maps.map((m, i) => spearman(m, bf16.maps[i]!));
  const spearmanMean = rhos.reduce((x, y) => x + y, 0) / rhos.length;
  const spearmanMin = Math.min(...rhos);
  log(`guard: fp32 ${JSON.stringify(fp32.metrics)}, bf16 scoring ${JSON.stringify(bf16.metrics)}, ` +
    `map Spearman mean ${spearmanMean.toFixed(5)} min ${spearmanMin.toFixed(5)} over ${rhos.length} images`);
  const b = await trainDetector('bf16');
  let mixed;
  try {
    if (b.model.precision.training !== 'bf16') throw new Error('the mixed-precision arm did not train in bf16');
    mixed = await evaluateAt(b, dataset, classes, 'fp32', options.limitPerDefect, options.batchSize);
  } finally {
    await b.dispose();
  }
  log(`guard: mixed-precision training ${JSON.stringify(mixed.metrics)}`);
  const d = (x: GuardMetrics, y: GuardMetrics): number => Math.max(Math.abs(x.image - y.image), Math.abs(x.pixel - y.pixel));
  return {
    fp32: fp32.metrics, bf16Scoring: bf16.metrics, bf16Training: mixed.metrics, spearmanMean, spearmanMin, images: rhos.length,
    scoringHolds: d(fp32.metrics, bf16.metrics) <= GUARD_LIMITS.scoringAuroc && spearmanMean >= GUARD_LIMITS.mapSpearman,
    trainingHolds: d(fp32.metrics, mixed.metrics) <= GUARD_LIMITS.trainingAuroc,
  };
}

export function guardSection(r: GuardResult, setup: string): string {
  const f = (v: number): string => v.toFixed(4);
  const dI = (x: GuardMetrics): string => `${(x.image - r.fp32.image >= 0 ? '+' : '')}${(x.image - r.fp32.image).toFixed(4)}`;
  const dP = (x: GuardMetrics): string => `${(x.pixel - r.fp32.pixel >= 0 ? '+' : '')}${(x.pixel - r.fp32.pixel).toFixed(4)}`;
  return [
    '| arm | image AUROC | pixel AUROC | change (image / pixel) |', '|---|---|---|---|',
    `| fp32 training, fp32 scoring | ${f(r.fp32.image)} | ${f(r.fp32.pixel)} | |`,
    `| fp32 training, bf16 scoring | ${f(r.bf16Scoring.image)} | ${f(r.bf16Scoring.pixel)} | ${dI(r.bf16Scoring)} / ${dP(r.bf16Scoring)} |`,
    `| bf16 (mixed-precision) training, fp32 scoring | ${f(r.bf16Training.image)} | ${f(r.bf16Training.pixel)} | ${dI(r.bf16Training)} / ${dP(r.bf16Training)} |`,
    '',
    `Anomaly maps, fp32 vs bf16 scoring: Spearman rank correlation mean ${r.spearmanMean.toFixed(5)}, minimum ` +
      `${r.spearmanMin.toFixed(5)} over ${r.images} test images.`, '',
    `- bf16 scoring: AUROC change <= ${GUARD_LIMITS.scoringAuroc}, map rank correlation >= ${GUARD_LIMITS.mapSpearman}: ` +
      `${r.scoringHolds ? 'holds' : 'FAILS'}`,
    `- mixed-precision training within ${GUARD_LIMITS.trainingAuroc} AUROC of fp32: ${r.trainingHolds ? 'holds' : 'FAILS'}`,
    '', setup,
  ].join('\n');
}
