// The evaluation report as one self-contained HTML page: header, metrics table, per-class ROC curves
// and score distributions (inline SVG), and the grid of test images worst first (PNG data URIs).
import type { ClassMetrics, EvalReport } from '../eval/evaluate';
import type { EvaluationOutput } from '../eval/run';
import { histogramSvg, rocSvg } from './charts';
import { escapeHtml } from './escape';
import { renderGrid } from './grid';
import { scoreHistogram } from './histogram';
import { checkOutput, RenderReportOptions, ReportDetectorInfo, resolveReportOptions, ResolvedReportOptions } from './options';
import { rankWorstFirst, RankedImage } from './order';
import { rocCurve } from './roc';
import { REPORT_CSS } from './style';

const HISTOGRAM_BINS = 24;

/** The metrics as reportToMarkdown prints them: percent, one decimal, NaN as n/a. */
export function formatMetric(v: number): string {
  return Number.isNaN(v) ? 'n/a' : (v * 100).toFixed(1);
}

function detectorRows(d: ReportDetectorInfo): [string, string][] {
  const rows: [string, string][] = [];
  if (d.spec) {
    const b = d.spec.backbone;
    const scales = b.scales ? `, scales ${b.scales.join('/')}` : '';
    rows.push(['Backbone', `${b.model} (input ${b.inputSize} px${scales}; taps ${b.taps.join(', ')})`]);
    rows.push(['Anomaly map', `${d.spec.map.size} × ${d.spec.map.size}, Gaussian σ ${d.spec.map.sigma}`]);
  }
  if (d.config) {
    rows.push(['Flow', `${d.config.levels.length} levels, ${d.config.couplingLayers} coupling layers, ` +
      `${d.config.centersPerClass} centres per class`]);
  }
  rows.push(['Detector classes', d.classes.join(', ')]);
  if (d.spec?.calibration) {
    rows.push(['Calibration', `${d.spec.calibration.images} normal images, threshold quantile ${d.spec.calibration.quantile}`]);
  }
  return rows;
}

function header(output: EvaluationOutput, o: ResolvedReportOptions): string {
  const anomalous = output.images.filter((im) => im.sample.label === 1).length;
  const rows: [string, string][] = [
    ['Date', o.date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')],
    ...(o.detector ? detectorRows(o.detector) : []),
    ['Test images', `${output.images.length} (${anomalous} anomalous, ${output.images.length - anomalous} normal)` +
      ` in ${output.seconds.toFixed(1)} s`],
    ['Normalisation', o.normalization === 'calibrated'
      ? 'calibrated (constants and thresholds measured on normal training images)'
      : 'batch (the authors\' protocol: normalised over these test images; no thresholds)'],
  ];
  if (output.classAccuracy !== null) rows.push(['Class accuracy', `${(100 * output.classAccuracy).toFixed(1)}% (classes inferred)`]);
  const dl = rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('');
  const command = o.command !== null ? `<dt>Command</dt><dd><code>${escapeHtml(o.command)}</code></dd>` : '';
  return `<header><h1>${escapeHtml(o.title)}</h1><dl class="summary">${dl}${command}</dl></header>`;
}

function metricsTable(report: EvalReport): string {
  const fpr = `${+(report.maxFpr * 100).toFixed(4)}%`;
  const row = (name: string, images: number, anomalous: number, m: Omit<ClassMetrics, 'className' | 'images' | 'anomalous'>, cls = ''): string =>
    `<tr${cls}><td>${name}</td><td>${images}</td><td>${anomalous}</td><td>${formatMetric(m.imageAuroc)}</td>` +
    `<td>${formatMetric(m.pixelAuroc)}</td><td>${formatMetric(m.aupro)}</td><td>${formatMetric(m.f1Max)}</td></tr>`;
  const anomalous = report.classes.reduce((a, c) => a + c.anomalous, 0);
  return '<table class="metrics"><thead><tr><th>Class</th><th>Images</th><th>Anomalous</th><th>Image AUROC</th>' +
    `<th>Pixel AUROC</th><th>AUPRO@${fpr}</th><th>F1-max</th></tr></thead><tbody>` +
    report.classes.map((c) => row(escapeHtml(c.className), c.images, c.anomalous, c)).join('') +
    row('mean', report.mean.images, anomalous, report.mean, ' class="mean"') +
    '</tbody></table><p class="muted">Percent. Pixel AUROC and AUPRO over images with a known mask; n/a where undefined.</p>';
}

function classCharts(report: EvalReport, ranked: RankedImage[]): string {
  const cards = report.classes.map((c) => {
    const list = ranked.filter((r) => r.image.sample.className === c.className);
    const scores = list.map((r) => r.image.result.imageScore);
    const labels = list.map((r) => r.image.sample.label);
    // A line only where the class's images share one reference: with classes given (the usual case)
    // the calibrated threshold, without calibration the F1-max one; inferred classes may mix several.
    const references = [...new Set(list.map((r) => r.reference))];
    const sources = [...new Set(list.map((r) => r.referenceSource))];
    const threshold = references.length === 1 && sources[0] !== 'median' ? references[0]! : null;
    const label = sources[0] === 'f1-max' ? 'F1-max threshold' : 'threshold';
    const normal = scores.filter((_, k) => labels[k] === 0), anomalous = scores.filter((_, k) => labels[k] === 1);
    const hist = scoreHistogram(normal, anomalous, HISTOGRAM_BINS, threshold);
    return `<div class="chart-card"><h3>${escapeHtml(c.className)} <span class="muted">— ${normal.length} normal, ${anomalous.length} anomalous</span></h3>` +
      `<div class="pair">${rocSvg(c.className, rocCurve(scores, labels), c.imageAuroc)}${histogramSvg(c.className, hist, threshold, label)}</div></div>`;
  });
  return `<div class="charts">${cards.join('')}</div>`;
}

/** The report as an HTML string; reads the test images (and masks) for the thumbnails, writes nothing. */
export async function renderReport(output: EvaluationOutput, options: RenderReportOptions = {}): Promise<string> {
  const out = checkOutput(output);
  const o = resolveReportOptions(options, out);
  const ranked = await rankWorstFirst(out.images);
  const grid = await renderGrid(ranked, o.maxImages, o.thumbnailSize);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(o.title)}</title>
<style>${REPORT_CSS}</style></head>
<body><main>
${header(out, o)}
<h2>Metrics</h2>
${metricsTable(out.report)}
<h2>Image-level ROC and score distributions</h2>
${classCharts(out.report, ranked)}
<h2>Test images, worst first</h2>
${grid.html}
<footer>Generated by hgad. Self-contained: no scripts, no external resources.</footer>
</main></body></html>
`;
}
