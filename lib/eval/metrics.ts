/**
 * Detection and localisation metrics, computed natively (native/core/metrics.cpp) with one sort of the
 * scores, so tens of millions of pixels are fine. Labels and masks: nonzero = anomalous (0/255 masks
 * work as they are). Scores must be finite.
 */
import { HgadArgumentError } from '../errors';
import { callNative, imageOps, isUint8Array } from '../native-ops';
import { checkInteger, isFloat32Array } from '../validate';

function checkScored(scores: unknown, labels: unknown, names: [string, string] = ['scores', 'labels']): void {
  if (!isFloat32Array(scores)) throw new HgadArgumentError(names[0], 'a Float32Array', scores);
  if (!isUint8Array(labels) || labels.length !== scores.length) {
    throw new HgadArgumentError(names[1], `a Uint8Array of ${scores.length} elements (one per score)`, labels);
  }
}

/**
 * Area under the ROC curve, exact: tied scores count a half, as the trapezoid over distinct
 * thresholds of sklearn.metrics.roc_auc_score. NaN when only one class is present.
 */
export async function auroc(scores: Float32Array, labels: Uint8Array): Promise<number> {
  checkScored(scores, labels);
  return callNative(() => imageOps().rocAuc(scores, labels));
}

/**
 * The best F1 over all thresholds (score >= threshold is anomalous) and the highest threshold that
 * reaches it. NaN (both) when no sample is anomalous.
 */
export async function f1Max(scores: Float32Array, labels: Uint8Array): Promise<{ f1: number; threshold: number }> {
  checkScored(scores, labels);
  return callNative(() => imageOps().f1Max(scores, labels));
}

/**
 * Area under the per-region overlap curve up to maxFpr, divided by maxFpr (MVTec AD's AUPRO, as its
 * evaluation code's compute_pro + trapezoid): regions are the 8-connected components of each image's
 * mask; at every distinct score t (descending), FPR = share of normal pixels (all images) >= t and
 * PRO = mean over regions of the share of the region's pixels >= t; trapezoids from (0, 0), the last
 * one cut at maxFpr by linear interpolation. NaN without anomalous regions or without normal pixels.
 * maps and masks: count x height x width, row-major.
 */
export async function aupro(maps: Float32Array, masks: Uint8Array, count: number, height: number, width: number,
  maxFpr = 0.3): Promise<number> {
  checkInteger('count', count, 1, Number.MAX_SAFE_INTEGER);
  checkInteger('height', height, 1, 1 << 16);
  checkInteger('width', width, 1, 1 << 16);
  const n = count * height * width;
  if (!isFloat32Array(maps) || maps.length !== n) {
    throw new HgadArgumentError('maps', `a Float32Array of count*height*width = ${n} elements`, maps);
  }
  checkScored(maps, masks, ['maps', 'masks']);
  if (typeof maxFpr !== 'number' || !(maxFpr > 0 && maxFpr <= 1)) throw new HgadArgumentError('maxFpr', 'a number in (0, 1]', maxFpr);
  return callNative(() => imageOps().aupro(maps, masks, count, height, width, maxFpr));
}
