// What a report is drawn from besides the evaluation itself, and the checks on it.
import type { ResolvedConfig } from '../config';
import { HgadArgumentError } from '../errors';
import type { EvaluationOutput } from '../eval/run';
import type { PipelineSpec } from '../pipeline/spec';
import type { Normalization } from '../score/scorer';
import { checkInteger, checkKeys, isFloat32Array } from '../validate';

/** The detector behind the numbers; an AnomalyDetector's fields fit as they are. */
export interface ReportDetectorInfo {
  classes: readonly string[];
  spec?: Pick<PipelineSpec, 'backbone' | 'map' | 'calibration'>;
  config?: Pick<ResolvedConfig, 'levels' | 'couplingLayers' | 'centersPerClass'>;
}

export interface RenderReportOptions {
  /** Default "hgad evaluation report". */
  title?: string;
  detector?: ReportDetectorInfo;
  /** Grid cells at most (worst first); the rest are counted as left out. Default 48. */
  maxImages?: number;
  /** The command line that produced the evaluation, shown in the header. */
  command?: string;
  /** Default: 'calibrated' when the results carry thresholds, else 'batch'. */
  normalization?: Normalization;
  /** Side of each thumbnail in pixels. Default 128. */
  thumbnailSize?: number;
  /** The date shown (default now); fixed in tests for a reproducible file. */
  date?: Date;
}

export interface WriteReportOptions extends RenderReportOptions {
  /** The .html file to write (atomically). */
  path: string;
}

export interface ResolvedReportOptions {
  title: string;
  detector: ReportDetectorInfo | null;
  maxImages: number;
  command: string | null;
  normalization: Normalization;
  thumbnailSize: number;
  date: Date;
}

function optionalString(name: string, v: unknown): string | null {
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new HgadArgumentError(name, 'a string', v);
  return v;
}

export function checkOutput(output: unknown): EvaluationOutput {
  if (typeof output !== 'object' || output === null) throw new HgadArgumentError('output', 'an EvaluationOutput { report, images, ... }', output);
  const o = output as Partial<EvaluationOutput>;
  if (typeof o.report !== 'object' || o.report === null || !Array.isArray(o.report.classes) || typeof o.report.mean !== 'object') {
    throw new HgadArgumentError('output.report', 'an EvalReport { classes, mean, maxFpr }', o.report);
  }
  if (!Array.isArray(o.images)) throw new HgadArgumentError('output.images', 'an array of { sample, result }', o.images);
  o.images.forEach((im, i) => {
    const name = `output.images[${i}]`;
    if (typeof im !== 'object' || im === null || typeof im.sample !== 'object' || im.sample === null ||
      typeof im.result !== 'object' || im.result === null) {
      throw new HgadArgumentError(name, 'an object { sample, result }', im);
    }
    if (typeof im.sample.path !== 'string' || im.sample.path === '') throw new HgadArgumentError(`${name}.sample.path`, 'a file path', im.sample.path);
    if (im.sample.label !== 0 && im.sample.label !== 1) throw new HgadArgumentError(`${name}.sample.label`, '0 or 1', im.sample.label);
    const r = im.result;
    if (typeof r.imageScore !== 'number' || !Number.isFinite(r.imageScore)) {
      throw new HgadArgumentError(`${name}.result.imageScore`, 'a finite number', r.imageScore);
    }
    checkInteger(`${name}.result.width`, r.width, 1, 1 << 16);
    checkInteger(`${name}.result.height`, r.height, 1, 1 << 16);
    if (!isFloat32Array(r.map) || r.map.length !== r.width * r.height) {
      throw new HgadArgumentError(`${name}.result.map`, `a Float32Array of height*width = ${r.width * r.height} elements`, r.map);
    }
    if (r.threshold !== null && (typeof r.threshold !== 'number' || !Number.isFinite(r.threshold))) {
      throw new HgadArgumentError(`${name}.result.threshold`, 'null or a finite number', r.threshold);
    }
  });
  return output as EvaluationOutput;
}

export const RENDER_KEYS = ['title', 'detector', 'maxImages', 'command', 'normalization', 'thumbnailSize', 'date'];

export function resolveReportOptions(options: unknown, output: EvaluationOutput): ResolvedReportOptions {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, RENDER_KEYS);
  const o = options as RenderReportOptions;
  const maxImages = o.maxImages ?? 48;
  checkInteger('options.maxImages', maxImages, 0, 100000);
  const thumbnailSize = o.thumbnailSize ?? 128;
  checkInteger('options.thumbnailSize', thumbnailSize, 32, 1024);
  const normalization = o.normalization ?? (output.images.some((im) => im.result.threshold !== null) ? 'calibrated' : 'batch');
  if (normalization !== 'calibrated' && normalization !== 'batch') {
    throw new HgadArgumentError('options.normalization', "'calibrated' or 'batch'", normalization);
  }
  if (o.detector !== undefined && (typeof o.detector !== 'object' || o.detector === null || !Array.isArray(o.detector.classes))) {
    throw new HgadArgumentError('options.detector', 'an object { classes, spec?, config? }', o.detector);
  }
  const date = o.date ?? new Date();
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new HgadArgumentError('options.date', 'a valid Date', date);
  return {
    title: optionalString('options.title', o.title) ?? 'hgad evaluation report',
    detector: o.detector ?? null,
    maxImages,
    command: optionalString('options.command', o.command),
    normalization,
    thumbnailSize,
    date,
  };
}
