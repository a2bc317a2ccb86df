// The grid of test images, worst first: each cell holds the image, its ground truth and its anomaly
// map, with a caption of what the detector said about it.
import * as path from 'node:path';

import { escapeHtml } from './escape';
import type { RankedImage } from './order';
import { cellPictures, CellPictures } from './thumbnails';

/** Thumbnails are made a few at a time: sharp has its own thread pool, this only keeps it busy. */
const CONCURRENCY = 4;

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const k = next++;
      out[k] = await fn(items[k]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function formatScore(v: number): string {
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(+v.toPrecision(4));
}

const SOURCE_LABEL = { calibrated: 'calibrated', 'f1-max': 'F1-max on this test set', median: 'class median' } as const;

/** The folder all images share, so captions show the distinguishing part (class/test/defect/file). */
export function commonFolder(paths: string[]): string {
  if (paths.length === 0) return '';
  let parts = path.dirname(paths[0]!).split(path.sep);
  for (const p of paths.slice(1)) {
    const q = path.dirname(p).split(path.sep);
    let k = 0;
    while (k < parts.length && k < q.length && parts[k] === q[k]) k++;
    parts = parts.slice(0, k);
  }
  return parts.join(path.sep);
}

function displayName(file: string, root: string): string {
  // A single image shares its own folder: its file name alone is shown.
  const rel = root === '' ? file : path.relative(root, file);
  return rel === '' || rel.startsWith('..') ? path.basename(file) : rel.split(path.sep).join('/');
}

function cell(r: RankedImage, pics: CellPictures, size: number, root: string): string {
  const { sample, result } = r.image;
  const img = (src: string, alt: string): string => `<img src="${src}" width="${size}" height="${size}" alt="${alt}">`;
  const mask = pics.mask !== null ? img(pics.mask, 'ground truth')
    : `<div class="none">${sample.label === 1 ? 'mask not available' : 'normal: no defect'}</div>`;
  let cls = `class <b>${escapeHtml(result.className)}</b> (${result.classSource}`;
  if (result.classSource === 'inferred') cls += `, ${(100 * result.classConfidence).toFixed(0)}%`;
  cls += ')';
  if (result.className !== sample.className) cls += ` <span class="wrong">true: ${escapeHtml(sample.className)}</span>`;
  const name = displayName(sample.path, root);
  return `<figure class="cell ${r.verdict}" data-path="${escapeHtml(sample.path)}" data-verdict="${r.verdict}">` +
    `<div class="pics">${img(pics.image, 'image')}${mask}${img(pics.heatmap, 'anomaly map')}</div>` +
    '<div class="pic-labels"><span>image</span><span>ground truth</span><span>anomaly map</span></div>' +
    `<figcaption><div class="name" title="${escapeHtml(sample.path)}">${escapeHtml(name)}</div>` +
    `<div>${cls} · defect <b>${escapeHtml(sample.defect)}</b></div>` +
    `<div>score <b>${formatScore(result.imageScore)}</b> · threshold ${formatScore(r.reference)} <span class="muted">(${SOURCE_LABEL[r.referenceSource]})</span></div>` +
    `<div><span class="verdict ${r.verdict}">${r.verdict}</span> ${r.verdict === 'FN' ? 'missed defect' : r.verdict === 'FP' ? 'false alarm' : r.verdict === 'TP' ? 'defect found' : 'normal, passed'}</div>` +
    '</figcaption></figure>';
}

export interface GridSection {
  html: string;
  shown: number;
  leftOut: number;
}

/** The grid of the ranked images (rankWorstFirst), at most maxImages cells of thumb-pixel pictures. */
export async function renderGrid(ranked: RankedImage[], maxImages: number, thumb: number): Promise<GridSection> {
  const shown = ranked.slice(0, maxImages);
  const pictures = await mapLimited(shown, CONCURRENCY, (r) => cellPictures(r.image, thumb));
  const counts = { TP: 0, FP: 0, FN: 0, TN: 0 };
  for (const r of ranked) counts[r.verdict] += 1;
  const leftOut = ranked.length - shown.length;
  const root = commonFolder(ranked.map((r) => r.image.sample.path));
  const cellWidth = 3 * thumb + 2 * 4 + 2 * 8 + 6;
  const html = [
    '<p>Anomalous images with the lowest scores and normal images with the highest, relative to the class threshold ' +
    '(the calibrated one; without calibration the F1-max threshold on this test set) in units of the class\'s score ' +
    'spread, taken in turn. Verdicts over all images: ' +
    `<span class="verdict TP">TP</span> ${counts.TP} · <span class="verdict FN">FN</span> ${counts.FN} · ` +
    `<span class="verdict FP">FP</span> ${counts.FP} · <span class="verdict TN">TN</span> ${counts.TN}.</p>`,
    '<div class="legend"><span>Ground truth: defect tinted red, outlined yellow.</span>' +
    '<span>Anomaly map: <span class="jet"></span> 0 to 1.5 × threshold (calibrated; otherwise 0 to the image\'s score), blended at 50%.</span></div>',
    `<div class="grid" style="--thumb:${thumb}px;--cell:${cellWidth}px">`,
    ...shown.map((r, k) => cell(r, pictures[k]!, thumb, root)),
    '</div>',
    `<p class="left-out">${shown.length} of ${ranked.length} images shown; ${leftOut} left out` +
    `${leftOut > 0 ? ` (at most ${maxImages} cells)` : ''}.</p>`,
  ].join('\n');
  return { html, shown: shown.length, leftOut };
}
