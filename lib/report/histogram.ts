// Score distributions of one class: normal and anomalous image scores counted in the same bins.
export interface ScoreHistogram {
  /** Lower edge of the first bin and upper edge of the last. */
  lo: number;
  hi: number;
  normal: number[];
  anomalous: number[];
}

/**
 * Equal-width bins over [lo, hi], the range of the scores widened to include `include` (the threshold,
 * so its line is always on the chart); the last bin is closed on the right.
 */
export function scoreHistogram(normal: readonly number[], anomalous: readonly number[], bins: number,
  include: number | null = null): ScoreHistogram {
  const all = [...normal, ...anomalous, ...(include === null ? [] : [include])];
  let lo = Math.min(...all), hi = Math.max(...all);
  if (all.length === 0) {
    lo = 0;
    hi = 1;
  } else if (!(hi > lo)) {
    // One distinct value: a range around it, so the bar has a width.
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.05 : 0.5;
    lo -= pad;
    hi += pad;
  }
  const count = (values: readonly number[]): number[] => {
    const out = new Array<number>(bins).fill(0);
    for (const v of values) out[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]! += 1;
    return out;
  };
  return { lo, hi, normal: count(normal), anomalous: count(anomalous) };
}
