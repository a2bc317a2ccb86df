// Inline SVG charts of the report: a class's image-level ROC curve and its score histogram. Plain
// SVG elements only (no script, no external font), so the report stays one self-contained file.
import { escapeHtml } from './escape';
import type { ScoreHistogram } from './histogram';
import type { RocCurve } from './roc';

export const COLORS = { normal: '#3b7dd8', anomalous: '#d9412b', threshold: '#222', roc: '#6a3fb5' } as const;

interface Frame {
  left: number;
  top: number;
  width: number;
  height: number;
}

const n2 = (v: number): string => String(Math.round(v * 100) / 100);

/** Plot-area coordinates of a data point with x and y in [0, 1]. */
export function plotPoint(frame: Frame, x: number, y: number): [number, number] {
  return [frame.left + x * frame.width, frame.top + (1 - y) * frame.height];
}

function axes(f: Frame, xTicks: [number, string][], yTicks: [number, string][], xLabel: string, yLabel: string): string {
  const bottom = f.top + f.height;
  const parts = [`<rect x="${f.left}" y="${f.top}" width="${f.width}" height="${f.height}" fill="#fff" stroke="#999"/>`];
  for (const [t, label] of xTicks) {
    const x = n2(f.left + t * f.width);
    parts.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 4}" stroke="#999"/>`,
      `<text x="${x}" y="${bottom + 15}" text-anchor="middle">${escapeHtml(label)}</text>`);
  }
  for (const [t, label] of yTicks) {
    const y = n2(f.top + (1 - t) * f.height);
    parts.push(`<line x1="${f.left - 4}" y1="${y}" x2="${f.left}" y2="${y}" stroke="#999"/>`,
      `<text x="${f.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(label)}</text>`);
  }
  const cy = f.top + f.height / 2;
  parts.push(`<text x="${n2(f.left + f.width / 2)}" y="${bottom + 30}" text-anchor="middle" class="axis-label">${escapeHtml(xLabel)}</text>`,
    `<text x="12" y="${n2(cy)}" text-anchor="middle" class="axis-label" transform="rotate(-90 12 ${n2(cy)})">${escapeHtml(yLabel)}</text>`);
  return parts.join('');
}

export const ROC_FRAME: Frame = { left: 44, top: 10, width: 170, height: 170 };

/** The ROC curve with the chance diagonal and its AUC; a note instead when the class has one label only. */
export function rocSvg(className: string, curve: RocCurve | null, auc: number): string {
  const f = ROC_FRAME;
  const w = f.left + f.width + 12, h = f.top + f.height + 38;
  const ticks: [number, string][] = [[0, '0'], [0.5, '0.5'], [1, '1']];
  const body = [axes(f, ticks, ticks, 'false positive rate', 'true positive rate')];
  const [x0, y0] = plotPoint(f, 0, 0), [x1, y1] = plotPoint(f, 1, 1);
  body.push(`<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y1}" stroke="#bbb" stroke-dasharray="4 3"/>`);
  if (curve) {
    const pts = curve.fpr.map((x, k) => plotPoint(f, x, curve.tpr[k]!).map(n2).join(',')).join(' ');
    body.push(`<polyline class="roc" data-class="${escapeHtml(className)}" points="${pts}" fill="none" stroke="${COLORS.roc}" stroke-width="2" stroke-linejoin="round"/>`);
    const auctext = Number.isNaN(auc) ? 'n/a' : auc.toFixed(3);
    body.push(`<rect x="${f.left + f.width - 82}" y="${f.top + f.height - 24}" width="78" height="18" fill="#fff" stroke="#ccc"/>`,
      `<line x1="${f.left + f.width - 78}" y1="${f.top + f.height - 15}" x2="${f.left + f.width - 64}" y2="${f.top + f.height - 15}" stroke="${COLORS.roc}" stroke-width="2"/>`,
      `<text x="${f.left + f.width - 60}" y="${f.top + f.height - 15}" dominant-baseline="middle">AUC ${auctext}</text>`);
  } else {
    body.push(`<text x="${n2(f.left + f.width / 2)}" y="${n2(f.top + f.height / 2)}" text-anchor="middle">one label only: no curve</text>`);
  }
  return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="image ROC of ${escapeHtml(className)}">${body.join('')}</svg>`;
}

function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-2)) return v.toExponential(1);
  return String(+v.toPrecision(3));
}

export const HISTOGRAM_FRAME: Frame = { left: 44, top: 36, width: 300, height: 144 };

/** Normal and anomalous score counts as overlapping translucent bars, with the threshold as a dashed line. */
export function histogramSvg(className: string, h: ScoreHistogram, threshold: number | null, label = 'threshold'): string {
  const f = HISTOGRAM_FRAME;
  const w = f.left + f.width + 12, ht = f.top + f.height + 38;
  const bins = h.normal.length;
  const top = Math.max(1, ...h.normal, ...h.anomalous);
  const xTicks: [number, string][] = [0, 0.5, 1].map((t) => [t, tickLabel(h.lo + t * (h.hi - h.lo))]);
  const yTicks: [number, string][] = [[0, '0'], [1, String(top)]];
  const body = [axes(f, xTicks, yTicks, 'image score', 'images')];
  const bw = f.width / bins;
  const bars = (counts: number[], color: string, kind: string): void => {
    counts.forEach((c, b) => {
      if (c === 0) return;
      const bh = (c / top) * f.height;
      body.push(`<rect class="bar ${kind}" x="${n2(f.left + b * bw + 0.5)}" y="${n2(f.top + f.height - bh)}" width="${n2(bw - 1)}" height="${n2(bh)}" fill="${color}" fill-opacity="0.55"><title>${kind}: ${c}</title></rect>`);
    });
  };
  bars(h.normal, COLORS.normal, 'normal');
  bars(h.anomalous, COLORS.anomalous, 'anomalous');
  if (threshold !== null) {
    const t = (threshold - h.lo) / (h.hi - h.lo);
    const x = n2(f.left + t * f.width);
    // Near an edge the label runs inwards so it stays inside the chart.
    const anchor = t > 0.75 ? 'end' : t < 0.25 ? 'start' : 'middle';
    body.push(`<line class="threshold" x1="${x}" y1="${f.top - 4}" x2="${x}" y2="${f.top + f.height}" stroke="${COLORS.threshold}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
      `<text x="${x}" y="${f.top - 7}" text-anchor="${anchor}">${escapeHtml(label)} ${escapeHtml(tickLabel(threshold))}</text>`);
  }
  const legend = (x: number, color: string, label: string): string =>
    `<rect x="${x}" y="4" width="10" height="10" fill="${color}" fill-opacity="0.55"/><text x="${x + 14}" y="9" dominant-baseline="middle">${label}</text>`;
  body.push(legend(f.left, COLORS.normal, 'normal'), legend(f.left + 64, COLORS.anomalous, 'anomalous'));
  return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${ht}" viewBox="0 0 ${w} ${ht}" role="img" aria-label="score histogram of ${escapeHtml(className)}">${body.join('')}</svg>`;
}
