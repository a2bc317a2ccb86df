// Per-class evaluation (lib/eval/evaluate.ts) and its Markdown table (lib/eval/table.ts) on a small
// set of samples worked by hand, including the rules for missing maps and masks.
import { evaluate, EvalSample } from '../lib/eval/evaluate';
import { reportToMarkdown } from '../lib/eval/table';

const f32 = (a: number[]): Float32Array => Float32Array.from(a);
const u8 = (a: number[]): Uint8Array => Uint8Array.from(a);
const map2x2 = (m: number[], mask: Uint8Array | null): Partial<EvalSample> => ({ map: f32(m), mask, height: 2, width: 2 });

function samples(): EvalSample[] {
  return [
    // Class a: two normal images (one without a mask: all normal), an anomalous one with its mask,
    // an anomalous one whose mask is unknown (left out of the pixel metrics).
    { className: 'a', imageScore: 0.1, label: 0, ...map2x2([0.1, 0.2, 0.1, 0.0], null) },
    { className: 'a', imageScore: 0.4, label: 0, ...map2x2([0.3, 0.1, 0.2, 0.1], u8([0, 0, 0, 0])) },
    { className: 'b', imageScore: 0.5, label: 0 },
    { className: 'a', imageScore: 0.3, label: 1, ...map2x2([0.9, 0.2, 0.1, 0.1], u8([255, 255, 0, 0])) },
    { className: 'a', imageScore: 0.8, label: 1, ...map2x2([5, 5, 5, 5], null) },
    { className: 'b', imageScore: 0.7, label: 0 },
    // Class c: image scores only, ranked the wrong way.
    { className: 'c', imageScore: 0.2, label: 0 },
    { className: 'c', imageScore: 0.1, label: 1 },
  ] as EvalSample[];
}

test('metrics per class and their mean, worked by hand', async () => {
  const report = await evaluate(samples());
  expect(report.maxFpr).toBe(0.3);
  expect(report.classes.map((c) => [c.className, c.images, c.anomalous])).toEqual([['a', 4, 2], ['b', 2, 0], ['c', 2, 1]]);
  const [a, b, c] = report.classes;
  // Image AUROC of a: positives {0.3, 0.8} vs negatives {0.1, 0.4}: 3 of 4 pairs.
  expect(a!.imageAuroc).toBe(0.75);
  // F1 at 0.8, 0.4, 0.3, 0.1: 2/3, 1/2, 4/5, 2/3.
  expect(a!.f1Max).toBeCloseTo(0.8, 14);
  // Pixels of the first three images: positives 0.9 and 0.2 against ten negatives
  // (0.1 x6, 0.0, 0.2 x2, 0.3): 10 + (7 + 2 * 0.5) of 20 pairs.
  expect(a!.pixelAuroc).toBeCloseTo(0.9, 14);
  // One region {0.9, 0.2}: curve (0, 0.5), (0.1, 0.5) at 0.3, (0.3, 1) at 0.2: area 0.05 + 0.15.
  expect(a!.aupro).toBeCloseTo(0.2 / 0.3, 14);
  expect([b!.imageAuroc, b!.pixelAuroc, b!.aupro, b!.f1Max]).toEqual([NaN, NaN, NaN, NaN]);
  expect(c!.imageAuroc).toBe(0);
  expect(c!.f1Max).toBeCloseTo(2 / 3, 14);
  expect([c!.pixelAuroc, c!.aupro]).toEqual([NaN, NaN]);
  expect(report.mean.images).toBe(8);
  expect(report.mean.imageAuroc).toBeCloseTo(0.375, 14);
  expect(report.mean.pixelAuroc).toBeCloseTo(0.9, 14);
  expect(report.mean.aupro).toBeCloseTo(2 / 3, 14);
  expect(report.mean.f1Max).toBeCloseTo((0.8 + 2 / 3) / 2, 14);
  expect((await evaluate(samples(), { maxFpr: 0.1 })).classes[0]!.aupro).toBeCloseTo(0.5, 14);
});

test('the Markdown table: one row per class, the mean, n/a for NaN', async () => {
  const table = reportToMarkdown(await evaluate(samples()));
  expect(table).toBe([
    '| Class | Images | Anomalous | Image AUROC | Pixel AUROC | AUPRO@30% | F1-max |',
    '|---|---:|---:|---:|---:|---:|---:|',
    '| a | 4 | 2 | 75.0 | 90.0 | 66.7 | 80.0 |',
    '| b | 2 | 0 | n/a | n/a | n/a | n/a |',
    '| c | 2 | 1 | 0.0 | n/a | n/a | 66.7 |',
    '| **mean** | 8 | 3 | 37.5 | 90.0 | 66.7 | 73.3 |',
    '',
  ].join('\n'));
  expect(reportToMarkdown(await evaluate(samples()), { digits: 3, percent: false })).toContain('| a | 4 | 2 | 0.750 | 0.900 | 0.667 | 0.800 |');
});

test('no samples: no classes and NaN means', async () => {
  const report = await evaluate([]);
  expect(report.classes).toEqual([]);
  expect(report.mean).toEqual({ images: 0, imageAuroc: NaN, pixelAuroc: NaN, aupro: NaN, f1Max: NaN });
});

test('bad samples are rejected naming the sample', async () => {
  const s = samples();
  s[3] = { ...s[3]!, map: new Float32Array(9), height: 3, width: 3, mask: new Uint8Array(9) };
  await expect(evaluate(s)).rejects.toMatchObject({ parameter: 'samples[3].map' });
  const t = samples();
  (t[0] as { label: number }).label = 2;
  await expect(evaluate(t)).rejects.toMatchObject({ parameter: 'samples[0].label' });
  const u = samples();
  u[1] = { ...u[1]!, mask: new Uint8Array(3) };
  await expect(evaluate(u)).rejects.toMatchObject({ parameter: 'samples[1].mask' });
  await expect(evaluate(samples(), { maxFpr: 1.5 })).rejects.toMatchObject({ parameter: 'options.maxFpr' });
  const v = samples();
  v[2] = { ...v[2]!, imageScore: NaN };
  await expect(evaluate(v)).rejects.toMatchObject({ parameter: 'samples[2].imageScore' });
});
