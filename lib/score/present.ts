// A result as plain JSON for callers outside the process (the HTTP service, queue jobs): no map (a
// heatmap PNG on request instead), the caller's threshold applied to the calibrated score.
import { heatmapPng } from './heatmap';
import { heatmapRange } from './heatmap-files';
import type { AnomalyDetector } from '../pipeline/detector';
import type { AnomalyResult, ImageError, ImageResult } from './scorer';
import { thresholdFor, ThresholdOverride } from './threshold';

/** An AnomalyResult's fields, its map's size in place of the map. */
export interface PresentedScore extends Pick<AnomalyResult, 'index' | 'id' | 'error' | 'imageScore' | 'isAnomaly' | 'threshold' |
  'thresholdSource' | 'className' | 'classConfidence' | 'classSource' | 'maps'> {
  mapWidth: number;
  mapHeight: number;
  /** The anomaly map as a base64 PNG, when asked for. */
  heatmap?: string;
}

export interface PresentedError {
  index: number;
  id: string;
  error: ImageError;
}

/** One image's outcome as JSON: scored (error null) or its typed error. */
export type PresentedResult = PresentedScore | PresentedError;

/** The result under the caller's threshold (over calibrated scores): threshold, its source and isAnomaly replaced. */
export function applyThreshold(detector: AnomalyDetector, r: AnomalyResult, override: ThresholdOverride | null): AnomalyResult {
  const { threshold, thresholdSource } = thresholdFor(detector, r.className, true, override);
  return { ...r, threshold, thresholdSource, isAnomaly: threshold === null ? null : r.imageScore > threshold };
}

export async function presentResult(detector: AnomalyDetector, r: ImageResult, override: ThresholdOverride | null,
  heatmap: boolean): Promise<PresentedResult> {
  if (r.error !== null) return { index: r.index, id: r.id, error: { code: r.error.code, message: r.error.message } };
  const scored = applyThreshold(detector, r, override);
  const out: PresentedScore = {
    index: r.index, id: r.id, error: null, imageScore: r.imageScore, isAnomaly: scored.isAnomaly, threshold: scored.threshold,
    thresholdSource: scored.thresholdSource,
    className: r.className, classConfidence: r.classConfidence, classSource: r.classSource, maps: r.maps,
    mapWidth: r.width, mapHeight: r.height,
  };
  if (heatmap) out.heatmap = (await heatmapPng(r.map, r.height, r.width, heatmapRange(scored))).toString('base64');
  return out;
}
