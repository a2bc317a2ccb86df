// The training schedule of HGAD.md section 5 at chosen steps (values computed independently with
// Python's math module for lr 2e-4, 25 meta epochs of 8 passes, 2 warm-up epochs, 10 batches a pass).
import { learningRate, phaseAt, resolveSchedule } from '../lib/train/schedule';

describe('schedule', () => {
  const s = resolveSchedule({});
  const at = (epoch: number, subEpoch: number, batch: number): number => learningRate(s, { epoch, subEpoch, batch }, 10);

  test('defaults are the authors\'', () => {
    expect(s).toEqual({ metaEpochs: 25, subEpochs: 8, lr: 2e-4, warmupEpochs: 2, phase1Epochs: 2 });
  });

  test('warm-up starts at lr/10 and rises linearly per batch to the cosine value of epoch 2', () => {
    expect(at(0, 0, 0)).toBeCloseTo(2e-5, 15);
    expect(at(1, 0, 0)).toBeCloseTo(0.00010843072889837513, 15); // half-way: 80 of 160 batches
    expect(at(1, 2, 3)).toBeCloseTo(0.000133854563456658, 15);
    expect(at(2, 0, 0)).toBeCloseTo(0.00019686145779675027, 15); // cosine at epoch 2: continuous
    expect(at(1, 7, 9)).toBeLessThan(at(2, 0, 0));
  });

  test('cosine decay per meta epoch down towards lr * 0.1^3', () => {
    expect(at(12, 0, 0)).toBeCloseTo(0.00010637277290097842, 15);
    expect(at(12, 7, 9)).toBe(at(12, 0, 0));
    expect(at(24, 3, 1)).toBeCloseTo(9.877413386836713e-7, 18);
  });

  test('phase 1 for the first two meta epochs, then phase 2', () => {
    expect([0, 1, 2, 24].map((e) => phaseAt(s, e))).toEqual([1, 1, 2, 2]);
  });

  test('no warm-up when warmupEpochs is 0', () => {
    const t = resolveSchedule({ warmupEpochs: 0, metaEpochs: 4, lr: 1e-3 });
    expect(learningRate(t, { epoch: 0, subEpoch: 0, batch: 0 }, 5)).toBe(1e-3);
  });

  test('bad options name the option', () => {
    expect(() => resolveSchedule({ lr: -1 })).toThrow(expect.objectContaining({ parameter: 'schedule.lr' }));
    expect(() => resolveSchedule({ metaEpochs: 0 })).toThrow(expect.objectContaining({ parameter: 'schedule.metaEpochs' }));
    expect(() => resolveSchedule({ epochs: 3 } as never)).toThrow(expect.objectContaining({ parameter: 'schedule.epochs' }));
  });
});
