// The HTML evaluation report (hgad eval --report).
export { renderReport, formatMetric } from './render';
export { writeReport } from './write';
export { rocCurve, rocArea } from './roc';
export type { RocCurve } from './roc';
export { rankWorstFirst } from './order';
export type { RankedImage, Verdict } from './order';
export { escapeHtml } from './escape';
export type { RenderReportOptions, WriteReportOptions, ReportDetectorInfo } from './options';
