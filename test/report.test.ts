// The HTML evaluation report (lib/report) on a small evaluation built by hand: real PNG images and
// masks written with sharp, real maps, the metrics computed by evaluate(). Checks the table against
// reportToMarkdown, the ROC polylines and the worst-first order against hand computations, escaping,
// the image cap, the thumbnails' pixels, the atomic write, argument errors, and (when Debian's
// chromium is installed; CI does not need it) that the page renders to a non-blank screenshot.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';

import type { Sample } from '../lib/data';
import { HgadError } from '../lib/errors';
import { evaluate } from '../lib/eval/evaluate';
import type { EvaluatedImage, EvaluationOutput } from '../lib/eval/run';
import { reportToMarkdown } from '../lib/eval/table';
import { ROC_FRAME } from '../lib/report/charts';
import { escapeHtml, rankWorstFirst, renderReport, rocArea, rocCurve, writeReport } from '../lib/report';
import type { AnomalyResult } from '../lib/score/scorer';

const IMAGE = 32; // image files, px
const MAP = 8; // anomaly maps
const THUMB = 32;
const BACKGROUND = { r: 200, g: 180, b: 120 };
const DEFECT = { r: 40, g: 40, b: 40 };
// The defect: pixels 8..23 of the image, 2..5 of the map.
const DEFECT_BOX = { left: 8, top: 8, width: 16, height: 16 };

const HOSTILE_CLASS = `beta<&>"'`;
const HOSTILE_FILE = `a<b>&"x'.png`;

let dir: string;

interface Spec {
  className: string;
  name: string;
  label: 0 | 1;
  score: number;
  threshold: number | null;
}

// Class alpha (threshold 0.55): normal 0.2, 0.5, 0.9; anomalous 0.6, 1.2, 0.4 (the hostile file name).
// Class beta<&>"' (threshold 0.8): normal 0.3, 0.7; anomalous 0.7, 1.0. Class gamma (0.5): normal 0.1, 0.2.
const SPECS: Spec[] = [
  { className: 'alpha', name: 'n1.png', label: 0, score: 0.2, threshold: 0.55 },
  { className: 'alpha', name: 'n2.png', label: 0, score: 0.5, threshold: 0.55 },
  { className: 'alpha', name: 'n3.png', label: 0, score: 0.9, threshold: 0.55 },
  { className: 'alpha', name: 'a1.png', label: 1, score: 0.6, threshold: 0.55 },
  { className: 'alpha', name: 'a2.png', label: 1, score: 1.2, threshold: 0.55 },
  { className: 'alpha', name: HOSTILE_FILE, label: 1, score: 0.4, threshold: 0.55 },
  { className: HOSTILE_CLASS, name: 'm1.png', label: 0, score: 0.3, threshold: 0.8 },
  { className: HOSTILE_CLASS, name: 'm2.png', label: 0, score: 0.7, threshold: 0.8 },
  { className: HOSTILE_CLASS, name: 'b1.png', label: 1, score: 0.7, threshold: 0.8 },
  { className: HOSTILE_CLASS, name: 'b2.png', label: 1, score: 1.0, threshold: 0.8 },
  { className: 'gamma', name: 'g1.png', label: 0, score: 0.1, threshold: 0.5 },
  { className: 'gamma', name: 'g2.png', label: 0, score: 0.2, threshold: 0.5 },
];

/** The map-sized mask (0/255) of the defect box. */
function mapMask(): Uint8Array {
  const m = new Uint8Array(MAP * MAP);
  const s = IMAGE / MAP;
  for (let y = DEFECT_BOX.top / s; y < (DEFECT_BOX.top + DEFECT_BOX.height) / s; y++) {
    for (let x = DEFECT_BOX.left / s; x < (DEFECT_BOX.left + DEFECT_BOX.width) / s; x++) m[y * MAP + x] = 255;
  }
  return m;
}

/** Anomalous: the score over the defect box, a tenth of it elsewhere; normal: the score at pixel 0 only. */
function mapOf(spec: Spec): Float32Array {
  const mask = mapMask();
  return Float32Array.from(mask, (v, k) => (spec.label === 1 ? (v ? spec.score : spec.score / 10) : k === 0 ? spec.score : spec.score / 10));
}

async function writeImage(file: string, defect: boolean): Promise<void> {
  const base = sharp({ create: { width: IMAGE, height: IMAGE, channels: 3, background: BACKGROUND } });
  const box = await sharp({ create: { width: DEFECT_BOX.width, height: DEFECT_BOX.height, channels: 3, background: DEFECT } }).png().toBuffer();
  await (defect ? base.composite([{ input: box, left: DEFECT_BOX.left, top: DEFECT_BOX.top }]) : base).png().toFile(file);
}

async function writeMask(file: string): Promise<void> {
  const box = await sharp({ create: { width: DEFECT_BOX.width, height: DEFECT_BOX.height, channels: 3, background: '#fff' } }).png().toBuffer();
  await sharp({ create: { width: IMAGE, height: IMAGE, channels: 3, background: '#000' } })
    .composite([{ input: box, left: DEFECT_BOX.left, top: DEFECT_BOX.top }]).png().toFile(file);
}

let output: EvaluationOutput;

async function buildOutput(): Promise<EvaluationOutput> {
  const images: EvaluatedImage[] = [];
  for (const spec of SPECS) {
    const defect = spec.label === 1 ? 'scratch' : 'good';
    const folder = join(dir, spec.className, 'test', defect);
    await mkdir(folder, { recursive: true });
    const path = join(folder, spec.name);
    await writeImage(path, spec.label === 1);
    let maskPath: string | null = null;
    if (spec.label === 1) {
      await mkdir(join(dir, spec.className, 'ground_truth', defect), { recursive: true });
      maskPath = join(dir, spec.className, 'ground_truth', defect, `mask-${spec.name}`);
      await writeMask(maskPath);
    }
    const sample: Sample = { path, className: spec.className, split: 'test', defect, label: spec.label, maskPath };
    const result: AnomalyResult = {
      index: images.length, id: path, error: null, thresholdSource: spec.threshold === null ? null : 'calibration',
      path, imageScore: spec.score, isAnomaly: spec.threshold === null ? null : spec.score > spec.threshold,
      threshold: spec.threshold, className: spec.className, classConfidence: 1, classSource: 'given', maps: 'density',
      map: mapOf(spec), width: MAP, height: MAP,
    };
    images.push({ sample, result });
  }
  const report = await evaluate(images.map(({ sample, result }) => ({
    className: sample.className, imageScore: result.imageScore, label: sample.label, map: result.map,
    mask: sample.label === 1 ? mapMask() : null, height: MAP, width: MAP,
  })));
  return { report, classAccuracy: null, images, seconds: 1.5 };
}

const DATE = new Date('2024-05-06T07:08:09Z');
let html: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-report-'));
  output = await buildOutput();
  html = await renderReport(output, { date: DATE, thumbnailSize: THUMB, command: 'hgad eval --report "r.html"', title: 'T <1>' });
}, 60000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The text of the page without the data: URIs (base64 could contain anything by chance). */
const textOf = (page: string): string => page.replace(/data:image\/png;base64,[A-Za-z0-9+/=]+/g, 'DATA');

function tableRows(page: string): string[][] {
  const table = /<table class="metrics">([\s\S]*?)<\/table>/.exec(page)![1]!;
  return [...table.matchAll(/<tr[^>]*>([\s\S]*?)<\/tr>/g)].map((m) => [...m[1]!.matchAll(/<t[dh]>([\s\S]*?)<\/t[dh]>/g)].map((c) => c[1]!));
}

test('the metrics table holds the numbers reportToMarkdown prints, and the hand-computed ones', () => {
  const rows = tableRows(html);
  expect(rows[0]).toEqual(['Class', 'Images', 'Anomalous', 'Image AUROC', 'Pixel AUROC', 'AUPRO@30%', 'F1-max']);
  const md = reportToMarkdown(output.report).trim().split('\n').slice(2)
    .map((line) => line.split(' | ').map((c) => c.replace(/^\| ?| ?\|$/g, '').replace(/\*\*/g, '')));
  expect(rows.slice(1)).toEqual(md.map((cells, r) => (r < md.length - 1 ? [escapeHtml(cells[0]!), ...cells.slice(1)] : cells)));
  // alpha: 6 of the 9 (anomalous, normal) pairs are ranked right (0.6 > 0.2, 0.5; 1.2 > all; 0.4 > 0.2).
  expect(rows[1]!.slice(0, 4)).toEqual(['alpha', '6', '3', '66.7']);
  // beta: 1.0 beats both normals, 0.7 beats 0.3 and ties 0.7: 3.5 of 4.
  expect(rows[2]!.slice(0, 4)).toEqual([escapeHtml(HOSTILE_CLASS), '4', '2', '87.5']);
  // gamma has no anomalous image: every metric is undefined.
  expect(rows[3]).toEqual(['gamma', '2', '0', 'n/a', 'n/a', 'n/a', 'n/a']);
  expect(rows[4]!.slice(0, 4)).toEqual(['mean', '12', '5', ((66.667 + 87.5) / 2).toFixed(1)]);
});

function polylines(page: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const m of page.matchAll(/<polyline class="roc" data-class="([^"]*)" points="([^"]*)"/g)) {
    const pts = m[2]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    // Back from the plot frame's pixels to (FPR, TPR).
    out.set(m[1]!, pts.map(([x, y]) => [(x - ROC_FRAME.left) / ROC_FRAME.width, 1 - (y - ROC_FRAME.top) / ROC_FRAME.height]));
  }
  return out;
}

test('one ROC polyline per class with two labels, its points worked by hand', () => {
  const curves = polylines(html);
  expect([...curves.keys()]).toEqual(['alpha', escapeHtml(HOSTILE_CLASS)]);
  // alpha, scores descending: 1.2 a, 0.9 n, 0.6 a, 0.5 n, 0.4 a, 0.2 n (3 positives, 3 negatives).
  const third = 1 / 3;
  const alpha: [number, number][] = [[0, 0], [0, third], [third, third], [third, 2 * third], [2 * third, 2 * third], [2 * third, 1], [1, 1]];
  // beta: 1.0 a, then 0.7 a and 0.7 n tied (one step), then 0.3 n.
  const beta: [number, number][] = [[0, 0], [0, 0.5], [0.5, 1], [1, 1]];
  for (const [name, expected] of [['alpha', alpha], [escapeHtml(HOSTILE_CLASS), beta]] as const) {
    const got = curves.get(name)!;
    expect(got).toHaveLength(expected.length);
    got.forEach(([x, y], k) => {
      expect(x).toBeCloseTo(expected[k]![0], 3);
      expect(y).toBeCloseTo(expected[k]![1], 3);
    });
  }
  expect(textOf(html)).toContain('one label only: no curve'); // gamma
  expect(textOf(html)).toContain('AUC 0.667');
  expect(textOf(html)).toContain('AUC 0.875');
});

test('rocCurve: ties make one step, the area is the native AUROC, one label gives no curve', () => {
  const c = rocCurve([1.0, 0.7, 0.7, 0.3], [1, 1, 0, 0])!;
  expect(c).toEqual({ fpr: [0, 0, 0.5, 1], tpr: [0, 0.5, 1, 1], thresholds: [Infinity, 1.0, 0.7, 0.3] });
  expect(rocArea(c)).toBeCloseTo(output.report.classes[1]!.imageAuroc, 12);
  expect(rocCurve([0.1, 0.2], [0, 0])).toBeNull();
});

// Spread (population sd of the class's scores): alpha 0.32998, beta 0.24875, gamma 0.05.
// Anomalous badness (threshold - score) / sd: a3 (the hostile name) 0.455, b1 0.402, a1 -0.152,
// b2 -0.804, a2 -1.970. Normal badness (score - threshold) / sd: n3 1.061, n2 -0.152, m2 -0.402,
// n1 -1.061, m1 -2.010, g2 -6, g1 -8. Interleaved, anomalous first.
const WORST_FIRST = [HOSTILE_FILE, 'n3.png', 'b1.png', 'n2.png', 'a1.png', 'm2.png', 'b2.png', 'n1.png', 'a2.png', 'm1.png', 'g2.png', 'g1.png'];
const VERDICTS = ['FN', 'FP', 'FN', 'TN', 'TP', 'TN', 'TP', 'TN', 'TP', 'TN', 'TN', 'TN'];

test('the grid shows the images worst first, anomalous and normal in turn, with their verdicts', async () => {
  const cells = [...html.matchAll(/<figure class="cell (\w\w)" data-path="([^"]*)" data-verdict="(\w\w)">/g)];
  expect(cells.map((m) => m[2]!.split('/').pop())).toEqual(WORST_FIRST.map(escapeHtml));
  expect(cells.map((m) => m[3])).toEqual(VERDICTS);
  const ranked = await rankWorstFirst(output.images);
  expect(ranked[0]!.badness).toBeCloseTo(0.15 / 0.329983, 4);
  expect(ranked[1]!.badness).toBeCloseTo(0.35 / 0.329983, 4);
  expect(textOf(html)).toContain('12 of 12 images shown; 0 left out.');
  // Captions show the path below the folder all images share.
  expect(textOf(html)).toContain(`<div class="name" title="${escapeHtml(output.images[5]!.sample.path)}">alpha/test/scratch/${escapeHtml(HOSTILE_FILE)}</div>`);
});

test('without calibration the reference is the F1-max threshold on the test set', async () => {
  const uncalibrated = output.images.map(({ sample, result }) => ({ sample, result: { ...result, threshold: null, isAnomaly: null } }));
  const ranked = await rankWorstFirst(uncalibrated);
  // alpha: F1 at thresholds 1.2, 0.9, 0.6, 0.5, 0.4, 0.2 = 1/2, 2/5, 2/3, 4/7, 3/4, 2/3: best at 0.4 (score >= 0.4).
  const alpha = ranked.filter((r) => r.image.sample.className === 'alpha');
  expect(new Set(alpha.map((r) => r.reference))).toEqual(new Set([Math.fround(0.4)]));
  expect(alpha.every((r) => r.referenceSource === 'f1-max')).toBe(true);
  const verdict = (name: string): string => alpha.find((r) => r.image.sample.path.endsWith(`/${name}`))!.verdict;
  expect([HOSTILE_FILE, 'a1.png', 'a2.png', 'n1.png', 'n2.png', 'n3.png'].map(verdict)).toEqual(['TP', 'TP', 'TP', 'TN', 'FP', 'FP']);
  // gamma has no anomalous image: its median.
  for (const r of ranked.filter((x) => x.image.sample.className === 'gamma')) {
    expect(r.referenceSource).toBe('median');
    expect(r.reference).toBeCloseTo(0.15, 12);
  }
  const page = await renderReport({ ...output, images: uncalibrated }, { thumbnailSize: THUMB, maxImages: 2 });
  expect(textOf(page)).toContain('F1-max threshold 0.4');
  expect(textOf(page)).toContain('batch (the authors');
});

test('every string from the data is escaped: hostile file and class names never reach the page raw', () => {
  const text = textOf(html);
  for (const raw of ['<b>&"x', `beta<&>"'`, 'T <1>', '"r.html"']) expect(text).not.toContain(raw);
  expect(text).toContain(escapeHtml(HOSTILE_FILE));
  expect(text).toContain(`<h3>${escapeHtml(HOSTILE_CLASS)} <span`);
  expect(text).toContain('<title>T &lt;1&gt;</title>');
  expect(text).toContain('<code>hgad eval --report &quot;r.html&quot;</code>');
  expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  // Self-contained: nothing is fetched.
  expect(text).not.toMatch(/<script|<link|src="http|url\(/i);
});

test('maxImages caps the grid and the page says how many were left out', async () => {
  const page = await renderReport(output, { thumbnailSize: THUMB, maxImages: 4 });
  const cells = [...page.matchAll(/<figure class="cell \w\w" data-path="([^"]*)"/g)].map((m) => m[1]!.split('/').pop());
  expect(cells).toEqual(WORST_FIRST.slice(0, 4).map(escapeHtml));
  expect(textOf(page)).toContain('4 of 12 images shown; 8 left out (at most 4 cells).');
  const none = await renderReport(output, { maxImages: 0 });
  expect(none).not.toContain('<figure');
  expect(textOf(none)).toContain('0 of 12 images shown; 12 left out');
});

async function pixelsOf(uri: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const png = Buffer.from(uri.replace('data:image/png;base64,', ''), 'base64');
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

test('thumbnails: the image, the mask tinted red and outlined yellow, the heatmap hot over the defect', async () => {
  const first = /<figure class="cell FN"[\s\S]*?<\/figure>/.exec(html)![0];
  const uris = [...first.matchAll(/src="(data:image\/png;base64,[^"]+)"/g)].map((m) => m[1]!);
  expect(uris).toHaveLength(3);
  const [image, mask, heat] = await Promise.all(uris.map(pixelsOf));
  const at = (p: { data: Buffer; width: number; channels: number }, x: number, y: number): number[] =>
    Array.from(p.data.subarray((y * p.width + x) * p.channels, (y * p.width + x) * p.channels + 3));
  for (const p of [image!, mask!, heat!]) expect([p.width, p.height]).toEqual([THUMB, THUMB]);
  const near = (got: number[], want: number[], tol: number): void => got.forEach((v, k) => expect(Math.abs(v - want[k]!)).toBeLessThanOrEqual(tol));
  near(at(image!, 2, 2), [BACKGROUND.r, BACKGROUND.g, BACKGROUND.b], 4);
  near(at(image!, 16, 16), [DEFECT.r, DEFECT.g, DEFECT.b], 4);
  // Inside the mask: 0.45 red (255, 40, 40) over the defect's grey; outside: the image unchanged.
  const a = 115 / 255; // the tint alpha as a byte
  near(at(mask!, 16, 16), [DEFECT.r * (1 - a) + 255 * a, DEFECT.g * (1 - a) + 40 * a, DEFECT.b * (1 - a) + 40 * a], 6);
  near(at(mask!, 2, 2), [BACKGROUND.r, BACKGROUND.g, BACKGROUND.b], 6);
  // The outline: a two-pixel band across the mask's edge (x = 7 and 8 on the row through the middle).
  near(at(mask!, 7, 16), [255, 235, 0], 6);
  near(at(mask!, 8, 16), [255, 235, 0], 6);
  near(at(mask!, 6, 16), [BACKGROUND.r, BACKGROUND.g, BACKGROUND.b], 6);
  near(at(mask!, 9, 16), at(mask!, 16, 16), 2);
  // The hostile-named image's map is 0.4 over the defect and 0.04 elsewhere, colours 0..0.825 (1.5 x 0.55):
  // colour index floor(256 t) = 124 over the defect: jet (112, 255, 135) (see heatmap.test.ts), blended
  // half and half with the grey (40): (76, 147, 87); index 12 elsewhere: jet (0, 0, 182) over the
  // background: (100, 90, 151). Tolerance for the 8 -> 32 px resize and the palette.
  near(at(heat!, 16, 16), [76, 147, 87], 10);
  near(at(heat!, 1, 1), [100, 90, 151], 10);
  // Normal images have no mask picture.
  expect(textOf(html).match(/normal: no defect/g)).toHaveLength(7);
});

test('writeReport writes atomically: the page appears whole, no temporary file stays behind', async () => {
  const out = join(dir, 'out');
  await mkdir(out);
  const file = join(out, 'report.html');
  await writeReport(output, { path: file, date: DATE, thumbnailSize: THUMB, command: 'hgad eval --report "r.html"', title: 'T <1>' });
  expect(await readFile(file, 'utf8')).toBe(html);
  expect(await readdir(out)).toEqual(['report.html']);
});

test('a failing write leaves no file and no temporary file, and names the parameter', async () => {
  const out = join(dir, 'fail');
  await mkdir(join(out, 'taken.html'), { recursive: true });
  // The target is a directory: the temporary file is written, the rename fails, the temporary file goes.
  await expect(writeReport(output, { path: join(out, 'taken.html'), maxImages: 0 }))
    .rejects.toMatchObject({ code: 'IO', parameter: 'options.path' });
  expect(await readdir(out)).toEqual(['taken.html']);
  expect((await stat(join(out, 'taken.html'))).isDirectory()).toBe(true);
  const missing = join(dir, 'no-such-dir', 'r.html');
  await expect(writeReport(output, { path: missing, maxImages: 0 })).rejects.toMatchObject({ code: 'IO', parameter: 'options.path' });
  expect(existsSync(join(dir, 'no-such-dir'))).toBe(false);
});

test('bad arguments are rejected with a typed error naming the parameter', async () => {
  const expectArg = async (p: Promise<unknown>, parameter: string): Promise<void> => {
    const err = await p.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(HgadError);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', parameter });
  };
  await expectArg(renderReport(null as unknown as EvaluationOutput), 'output');
  await expectArg(renderReport({ ...output, report: {} as EvaluationOutput['report'] }), 'output.report');
  await expectArg(renderReport({ ...output, images: 'x' as unknown as EvaluatedImage[] }), 'output.images');
  const bad = output.images.map((im, i) => (i === 1 ? { ...im, result: { ...im.result, map: new Float32Array(3) } } : im));
  await expectArg(renderReport({ ...output, images: bad }), 'output.images[1].result.map');
  const nan = output.images.map((im, i) => (i === 2 ? { ...im, result: { ...im.result, imageScore: NaN } } : im));
  await expectArg(renderReport({ ...output, images: nan }), 'output.images[2].result.imageScore');
  await expectArg(renderReport(output, { maxImages: -1 }), 'options.maxImages');
  await expectArg(renderReport(output, { maxImages: 1.5 }), 'options.maxImages');
  await expectArg(renderReport(output, { thumbnailSize: 8 }), 'options.thumbnailSize');
  await expectArg(renderReport(output, { title: 3 as unknown as string }), 'options.title');
  await expectArg(renderReport(output, { normalization: 'x' as 'batch' }), 'options.normalization');
  await expectArg(renderReport(output, { detector: { classes: 'a' } as never }), 'options.detector');
  await expectArg(writeReport(output, {} as never), 'options.path');
  await expectArg(writeReport(output, null as never), 'options');
  // An image file that is gone: the loader's error, naming the path.
  const gone = output.images.map((im, i) => (i === 5 ? { ...im, sample: { ...im.sample, path: join(dir, 'gone.png') } } : im));
  await expect(renderReport({ ...output, images: gone })).rejects.toMatchObject({ code: 'IO', parameter: 'path' });
});

test('the header summarises the detector, the command, the images and the normalisation', async () => {
  const page = await renderReport(output, {
    date: DATE, maxImages: 0, command: 'hgad eval --model m.hgad',
    detector: {
      classes: ['alpha', 'gamma'],
      spec: {
        backbone: { model: 'mobilenetv2-int8', sha256: null, taps: ['t1', 't2'], scales: null, inputSize: 256, mean: [0, 0, 0], std: [1, 1, 1] },
        map: { size: 64, sigma: 4, combine: 'logp*nent', density: 'full' },
        calibration: { logpShift: [], nentShift: [], logpTop: 0, nentTop: 0, thresholds: {}, images: 20, quantile: 0.99 },
      },
      config: { levels: [{ channels: 4 }, { channels: 8 }] as never, couplingLayers: 8, centersPerClass: 10 },
    },
  });
  const text = textOf(page);
  for (const s of ['2024-05-06 07:08:09 UTC', 'mobilenetv2-int8 (input 256 px; taps t1, t2)', '64 × 64, Gaussian σ 4',
    '2 levels, 8 coupling layers, 10 centres per class', 'alpha, gamma', '20 normal images, threshold quantile 0.99',
    '12 (5 anomalous, 7 normal) in 1.5 s', 'calibrated (constants', '<code>hgad eval --model m.hgad</code>']) {
    expect(text).toContain(s);
  }
});

const chromium = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'chromium')).find((f) => existsSync(f));
if (!chromium) console.warn('report.test.ts: chromium is not on PATH; the headless render check is skipped (CI does not need it)');

(chromium ? test : test.skip)('the page renders in headless chromium to a non-blank screenshot', async () => {
  const file = join(dir, 'chromium.html');
  await writeReport(output, { path: file });
  const png = join(dir, 'chromium.png');
  await promisify(execFile)(chromium!, ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
    `--screenshot=${png}`, '--window-size=1400,2400', `file://${file}`], { timeout: 60000 });
  const meta = await sharp(png).metadata();
  expect([meta.width, meta.height]).toEqual([1400, 2400]);
  const stats = await sharp(png).stats();
  // A blank page is one flat colour: the rendered report has text, charts and thumbnails.
  expect(stats.channels.slice(0, 3).every((c) => c.stdev > 20)).toBe(true);
  expect(stats.isOpaque).toBe(true);
}, 90000);
