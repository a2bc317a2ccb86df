// A deterministic hold-out split of training samples (e.g. for early stopping or threshold picking).
import { HgadArgumentError } from '../errors';
import { isInteger } from '../validate';
import { hashString, shuffled } from './random';
import { Sample } from './types';

/**
 * Moves round(fraction * n) samples of each class (n of them) to `holdout`, at least 1 when fraction > 0
 * and n >= 2, and never all of them. Which samples move depends only on the seed, the class name and
 * that class's samples, so adding a class does not change the split of the others. Both outputs keep
 * the input order.
 */
export function splitHoldout(samples: Sample[], fraction: number, seed: number): { train: Sample[]; holdout: Sample[] } {
  if (!Array.isArray(samples)) throw new HgadArgumentError('samples', 'an array of samples', samples);
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1)) {
    throw new HgadArgumentError('fraction', 'a number in [0, 1)', fraction);
  }
  if (!isInteger(seed)) throw new HgadArgumentError('seed', 'an integer', seed);

  const byClass = new Map<string, number[]>();
  samples.forEach((s, i) => {
    if (typeof s !== 'object' || s === null || typeof s.className !== 'string') {
      throw new HgadArgumentError(`samples[${i}]`, 'a sample with a className', s);
    }
    const list = byClass.get(s.className);
    if (list) list.push(i);
    else byClass.set(s.className, [i]);
  });

  const held = new Set<number>();
  for (const [className, indices] of byClass) {
    const n = indices.length;
    if (fraction === 0 || n < 2) continue;
    const count = Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
    const order = shuffled(indices, (seed ^ hashString(className)) >>> 0);
    for (const i of order.slice(0, count)) held.add(i);
  }
  const train: Sample[] = [];
  const holdout: Sample[] = [];
  samples.forEach((s, i) => (held.has(i) ? holdout : train).push(s));
  return { train, holdout };
}
