// Image-level ROC curves: one point per distinct score (hundreds of images per class, so a loop over
// the sorted scores is cheap; pixel-level curves would need the native metrics and are not drawn).
export interface RocCurve {
  /** False positive rates, from 0 to 1, non-decreasing. */
  fpr: number[];
  /** True positive rates at the same thresholds. */
  tpr: number[];
  /** The score threshold of each point (score >= threshold is anomalous); the first is +Infinity. */
  thresholds: number[];
}

/**
 * The ROC curve as sklearn.metrics.roc_curve(drop_intermediate=False) draws it: (0, 0), then one
 * point per distinct score from the highest down, tied scores taken together. null when the labels
 * hold only one class (no curve exists).
 */
export function rocCurve(scores: readonly number[], labels: readonly (0 | 1)[]): RocCurve | null {
  const positives = labels.filter((l) => l === 1).length;
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return null;
  const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const curve: RocCurve = { fpr: [0], tpr: [0], thresholds: [Infinity] };
  let tp = 0, fp = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    if (labels[i] === 1) tp += 1;
    else fp += 1;
    const next = order[k + 1];
    if (next === undefined || scores[next] !== scores[i]) {
      curve.fpr.push(fp / negatives);
      curve.tpr.push(tp / positives);
      curve.thresholds.push(scores[i]!);
    }
  }
  return curve;
}

/** Trapezoid area under the curve (equals the AUROC, ties counting a half). */
export function rocArea(curve: RocCurve): number {
  let area = 0;
  for (let k = 1; k < curve.fpr.length; k++) {
    area += (curve.fpr[k]! - curve.fpr[k - 1]!) * (curve.tpr[k]! + curve.tpr[k - 1]!) / 2;
  }
  return area;
}
