// Operating thresholds chosen at inference time: one for every class, or one per class, over the
// thresholds stored at calibration. A result says which threshold decided isAnomaly and where it came
// from, so a changed operating point is always visible in the output.
import { HgadArgumentError } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';

/** A threshold for every class, or thresholds per class name (classes left out keep the calibrated one). */
export type ThresholdOverride = number | Readonly<Record<string, number>>;

/** 'global': the override for every class; 'class': the override for this class; 'calibration': the stored one. */
export type ThresholdSource = 'global' | 'class' | 'calibration';

function checkValue(parameter: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new HgadArgumentError(parameter, 'a finite number', v);
  return v;
}

/** The override checked: finite numbers, class names the detector knows. */
export function checkThreshold(detector: AnomalyDetector, parameter: string, v: unknown): ThresholdOverride {
  if (typeof v === 'number') return checkValue(parameter, v);
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) {
    throw new HgadArgumentError(parameter, 'a number (every class) or an object { className: number }', v);
  }
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(v)) {
    detector.classIndex(`${parameter}.${name}`, name);
    out[name] = checkValue(`${parameter}.${name}`, value);
  }
  if (Object.keys(out).length === 0) throw new HgadArgumentError(parameter, 'at least one class threshold', v);
  return out;
}

/**
 * Text form, shared by the CLI (--threshold) and the service: `0.8` for every class, or
 * `carpet=0.8,pill=1.2` per class.
 */
export function parseThreshold(detector: AnomalyDetector, parameter: string, text: string): ThresholdOverride {
  const t = text.trim();
  const number = (s: string): number => (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s.trim()) ? Number(s) : NaN);
  if (!t.includes('=')) {
    const n = number(t);
    if (!Number.isFinite(n)) throw new HgadArgumentError(parameter, 'a number, or class=number pairs separated by commas', text);
    return n;
  }
  const out: Record<string, number> = {};
  for (const part of t.split(',')) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim();
    const n = number(part.slice(eq + 1));
    if (eq < 0 || name === '' || !Number.isFinite(n)) {
      throw new HgadArgumentError(parameter, 'a number, or class=number pairs separated by commas', text);
    }
    out[name] = n;
  }
  return checkThreshold(detector, parameter, out);
}

/**
 * The threshold that applies to an image scored as `className`: the override's, else the calibrated
 * one when scores are calibrated (a stored threshold means nothing to batch-normalised scores).
 */
export function thresholdFor(detector: AnomalyDetector, className: string, calibratedScores: boolean,
  override: ThresholdOverride | null): { threshold: number | null; thresholdSource: ThresholdSource | null } {
  if (typeof override === 'number') return { threshold: override, thresholdSource: 'global' };
  const own = override?.[className];
  if (own !== undefined) return { threshold: own, thresholdSource: 'class' };
  const stored = calibratedScores ? detector.spec.calibration?.thresholds[className] : undefined;
  return stored === undefined ? { threshold: null, thresholdSource: null } : { threshold: stored, thresholdSource: 'calibration' };
}
