// The training schedule of HGAD.md section 5: E meta epochs of S passes each; a cosine learning rate
// per meta epoch from lr down to lr * 0.1^3, with a linear warm-up over the first meta epochs (per
// batch, from lr / 10 to the cosine value where the warm-up ends); phase 1 losses for the first meta
// epochs, then phase 2.
import { HgadArgumentError } from '../errors';
import { checkInteger, checkKeys } from '../validate';

export interface ScheduleOptions {
  /** Meta epochs (E). Default 25. */
  metaEpochs?: number;
  /** Passes over the training images per meta epoch. Default 8. */
  subEpochs?: number;
  /** Base learning rate of the flow (centres take 3x). Default 2e-4. */
  lr?: number;
  /** Meta epochs of linear warm-up. Default 2 (0 disables it). */
  warmupEpochs?: number;
  /** Meta epochs trained with the phase-1 losses before phase 2 starts. Default 2. */
  phase1Epochs?: number;
}

export interface Schedule {
  metaEpochs: number;
  subEpochs: number;
  lr: number;
  warmupEpochs: number;
  phase1Epochs: number;
}

export const SCHEDULE_DEFAULTS: Schedule = { metaEpochs: 25, subEpochs: 8, lr: 2e-4, warmupEpochs: 2, phase1Epochs: 2 };

/** Where a step sits in the run: meta epoch, pass within it, batch within the pass. */
export interface StepPosition {
  epoch: number;
  subEpoch: number;
  batch: number;
}

export function resolveSchedule(options: ScheduleOptions = {}, parameter = 'schedule'): Schedule {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError(parameter, 'an object', options);
  const s: Schedule = { ...SCHEDULE_DEFAULTS };
  checkKeys(parameter, options, Object.keys(SCHEDULE_DEFAULTS));
  for (const key of Object.keys(options) as (keyof ScheduleOptions)[]) {
    const v = options[key];
    if (v === undefined) continue;
    if (key === 'lr') {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v >= 1) {
        throw new HgadArgumentError(`${parameter}.lr`, 'a learning rate in (0, 1)', v);
      }
    } else {
      checkInteger(`${parameter}.${key}`, v, key === 'metaEpochs' || key === 'subEpochs' ? 1 : 0, 100000);
    }
    s[key] = v;
  }
  return s;
}

/** Cosine value of meta epoch `epoch` (constant within the meta epoch). */
export function cosineLr(s: Schedule, epoch: number): number {
  const etaMin = s.lr * 0.1 ** 3;
  return etaMin + (s.lr - etaMin) * (1 + Math.cos((Math.PI * epoch) / s.metaEpochs)) / 2;
}

/** The learning rate of one step; batchesPerPass is the number of batches of one pass over the data. */
export function learningRate(s: Schedule, at: StepPosition, batchesPerPass: number): number {
  if (at.epoch < s.warmupEpochs) {
    const perEpoch = batchesPerPass * s.subEpochs;
    const p = (at.batch + at.subEpoch * batchesPerPass + at.epoch * perEpoch) / (s.warmupEpochs * perEpoch);
    const from = s.lr / 10;
    const to = cosineLr(s, s.warmupEpochs);
    return from + p * (to - from);
  }
  return cosineLr(s, at.epoch);
}

export function phaseAt(s: Schedule, epoch: number): 1 | 2 {
  return epoch < s.phase1Epochs ? 1 : 2;
}
