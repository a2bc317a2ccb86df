// An evaluation report as a Markdown table: one row per class, then the mean over classes.
import { HgadArgumentError } from '../errors';
import { checkInteger, checkKeys } from '../validate';
import type { EvalReport } from './evaluate';

export interface TableOptions {
  /** Decimals of the metrics. Default 1. */
  digits?: number;
  /** Metrics in percent (as papers report them). Default true. */
  percent?: boolean;
}

/** NaN (a metric undefined for the class, e.g. AUROC without anomalous images) is shown as n/a. */
export function reportToMarkdown(report: EvalReport, options: TableOptions = {}): string {
  if (typeof report !== 'object' || report === null || !Array.isArray(report.classes)) {
    throw new HgadArgumentError('report', 'an EvalReport', report);
  }
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, ['digits', 'percent']);
  const digits = options.digits ?? 1;
  checkInteger('options.digits', digits, 0, 10);
  const scale = options.percent === false ? 1 : 100;
  const fmt = (v: number): string => (Number.isNaN(v) ? 'n/a' : (v * scale).toFixed(digits));
  const fpr = `${+(report.maxFpr * 100).toFixed(4)}%`;
  const lines = [
    `| Class | Images | Anomalous | Image AUROC | Pixel AUROC | AUPRO@${fpr} | F1-max |`,
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of report.classes) {
    lines.push(`| ${c.className.replace(/\|/g, '\\|')} | ${c.images} | ${c.anomalous} | ${fmt(c.imageAuroc)} | ` +
      `${fmt(c.pixelAuroc)} | ${fmt(c.aupro)} | ${fmt(c.f1Max)} |`);
  }
  const m = report.mean;
  const anomalous = report.classes.reduce((a, c) => a + c.anomalous, 0);
  lines.push(`| **mean** | ${m.images} | ${anomalous} | ${fmt(m.imageAuroc)} | ${fmt(m.pixelAuroc)} | ${fmt(m.aupro)} | ` +
    `${fmt(m.f1Max)} |`);
  return `${lines.join('\n')}\n`;
}
