// Evaluating a detector on a dataset's test split: every test image scored (class given, as the
// authors assume, or inferred), maps compared with the ground-truth masks, metrics per class and mean.
import type { Dataset, Sample } from '../data';
import { HgadArgumentError } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';
import { AnomalyResult, SCORE_OPTION_KEYS, scoredBatches, ScoreOptions } from '../score/scorer';
import { checkInteger, checkKeys } from '../validate';
import { evaluate, EvalReport, EvalSample } from './evaluate';

export interface EvaluateOptions extends Omit<ScoreOptions, 'className' | 'onError'> {
  /** Classes to evaluate (default: the detector's classes found in the dataset). */
  classes?: string[];
  /** At most this many test images per class and defect type (the first in name order). */
  limitPerDefect?: number;
  /** Infer each image's class instead of giving it; the report then includes class accuracy. */
  inferClass?: boolean;
  /** Upper FPR of AUPRO. Default 0.3. */
  maxFpr?: number;
  /** Called for every scored image (e.g. to write heatmaps), in dataset order. */
  onResult?: (result: AnomalyResult, sample: Sample) => void | Promise<void>;
}

const EVALUATE_KEYS = ['classes', 'limitPerDefect', 'inferClass', 'maxFpr', 'onResult'];

export interface EvaluatedImage {
  sample: Sample;
  result: AnomalyResult;
}

export interface EvaluationOutput {
  report: EvalReport;
  /** Share of images whose inferred class was right (only with inferClass). */
  classAccuracy: number | null;
  /** Every image with its score and map (maps are kept for the report). */
  images: EvaluatedImage[];
  seconds: number;
}

export function testSamples(detector: AnomalyDetector, dataset: Dataset, options: EvaluateOptions): Sample[] {
  const classes = options.classes ?? detector.classes.filter((c) => dataset.classes.includes(c));
  if (!Array.isArray(classes) || classes.length === 0) {
    throw new HgadArgumentError('classes', `classes the detector knows that the dataset has (detector: ${detector.classes.join(', ')}; dataset: ${dataset.classes.join(', ')})`, classes);
  }
  classes.forEach((c, i) => {
    detector.classIndex(`classes[${i}]`, c);
    if (!dataset.classes.includes(c)) throw new HgadArgumentError(`classes[${i}]`, `a class of the dataset (${dataset.classes.join(', ')})`, c);
  });
  if (options.limitPerDefect !== undefined) checkInteger('limitPerDefect', options.limitPerDefect, 1, 1 << 30);
  const out: Sample[] = [];
  for (const c of classes) {
    const all = dataset.samples('test', c);
    if (options.limitPerDefect === undefined) {
      out.push(...all);
      continue;
    }
    const seen = new Map<string, number>();
    for (const s of all) {
      const n = seen.get(s.defect) ?? 0;
      if (n < options.limitPerDefect) out.push(s);
      seen.set(s.defect, n + 1);
    }
  }
  return out;
}

export async function evaluateDetector(detector: AnomalyDetector, dataset: Dataset, options: EvaluateOptions = {}): Promise<EvaluationOutput> {
  detector.assertUsable();
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, [...SCORE_OPTION_KEYS.filter((k) => k !== 'className'), ...EVALUATE_KEYS]);
  const started = Date.now();
  const samples = testSamples(detector, dataset, options);
  // The loader carries the class; blank it to have it inferred.
  const input = options.inferClass ? samples.map((s) => ({ ...s, className: '' })) : samples;
  const images: EvaluatedImage[] = [];
  const evalSamples: EvalSample[] = [];
  let correct = 0, i = 0;
  const { classes: _c, limitPerDefect: _l, inferClass: _i, maxFpr: _m, onResult: _o, ...scoreOptions } = options;
  // The authors evaluate one class at a time, so 'batch' normalisation runs over each class's test
  // images (classes given); calibrated scores do not depend on the grouping.
  const groups: Sample[][] = [];
  if (options.normalization === 'batch' && !options.inferClass) {
    for (const s of input) {
      const last = groups[groups.length - 1];
      if (last && last[0]!.className === s.className) last.push(s);
      else groups.push([s]);
    }
  } else {
    groups.push(input);
  }
  for (const group of groups) {
    for await (const batch of scoredBatches(detector, group, { ...scoreOptions, onError: 'throw' }, true)) {
      const S = detector.mapSize;
      for (let b = 0; b < batch.results.length; b++, i++) {
        const sample = samples[i]!;
        const result = batch.results[b]!;
        if (result.className === sample.className) correct += 1;
        const known = sample.label === 0 || sample.maskPath !== null;
        evalSamples.push({
          className: sample.className, imageScore: result.imageScore, label: sample.label, map: result.map,
          mask: known && batch.masks ? batch.masks.slice(b * S * S, (b + 1) * S * S) : null, height: S, width: S,
        });
        images.push({ sample, result });
        await options.onResult?.(result, sample);
      }
    }
  }
  const report = await evaluate(evalSamples, options.maxFpr !== undefined ? { maxFpr: options.maxFpr } : {});
  return { report, classAccuracy: options.inferClass ? correct / samples.length : null, images, seconds: (Date.now() - started) / 1000 };
}
