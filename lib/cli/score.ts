// hgad score: anomaly scores (and optionally heatmaps) for image files or folders.
import { writeFile } from 'node:fs/promises';

import { HgadError } from '../errors';
import { AnomalyDetector } from '../pipeline/detector';
import { writeHeatmaps } from '../score/heatmap-files';
import { ImageResult, scoreImages } from '../score/scorer';
import { parseThreshold } from '../score/threshold';
import { choice, int, OptionSpec, parse, required, str } from './args';
import { expandInputs } from './inputs';

export const SCORE_HELP = `Usage: hgad score --model <model.hgad> <image or folder>... [options]

Scores every image: an image score (higher = more anomalous), isAnomaly against the threshold the
model was calibrated with (or --threshold), the class used (given with --class, else inferred) and its
confidence. An image that cannot be read or decoded gets a row with its error and the others are
scored; the exit status is 0 unless --fail-on-error is given.

  --model <file>            a detector written by hgad train (required)
  --class <name>            the class of every image (default: inferred per image)
  --format json|csv         output format (default json)
  --out <file>              write the results there (default: standard output)
  --heatmaps <dir>          also write <name>_heatmap.png and <name>_overlay.png per image
  --threshold <t>           operating threshold instead of the calibrated one: a number for every
                            class, or class=number pairs (carpet=0.8,pill=1.2; other classes keep theirs)
  --fail-on-error           exit with status 3 when any image could not be scored (rows still written)
  --normalization <mode>    calibrated (default: scores independent of the other images) or batch
                            (the authors' protocol: normalised over the images of this call)
  --batch-size <n>          images per batch (8)     --threads <n>  threads (all cores)
  --precision <p>           GEMM precision: auto (default: bf16 where the CPU has AVX512-BF16 or
                            AMX-BF16, else fp32), fp32, or bf16 (an error where the CPU lacks both)
`;

const OPTIONS: OptionSpec = {
  model: { type: 'string' }, class: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' },
  heatmaps: { type: 'string' }, normalization: { type: 'string' }, 'batch-size': { type: 'string' }, threads: { type: 'string' },
  threshold: { type: 'string' }, 'fail-on-error': { type: 'boolean' }, precision: { type: 'string' },
};

/** Exit status of hgad score --fail-on-error when some image could not be scored. */
export const EXIT_IMAGE_ERRORS = 3;

function csvField(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** One row per image; a failed image has empty score columns and its error code and message. */
export function toCsv(results: ImageResult[]): string {
  const rows = results.map((r) => (r.error === null
    ? [csvField(r.path ?? r.id), String(r.imageScore), String(r.isAnomaly ?? ''), String(r.threshold ?? ''),
      csvField(r.className), r.classConfidence.toFixed(4), r.classSource, r.thresholdSource ?? '', '', '']
    : [csvField(r.path ?? r.id), '', '', '', '', '', '', '', r.error.code, csvField(r.error.message)]).join(','));
  return ['path,imageScore,isAnomaly,threshold,className,classConfidence,classSource,thresholdSource,errorCode,error', ...rows].join('\n') + '\n';
}

export function toJson(results: ImageResult[]): string {
  return JSON.stringify(results.map((r) => {
    if (r.error !== null) return r;
    const { map: _map, ...rest } = r;
    return rest;
  }), null, 2) + '\n';
}

export async function scoreCommand(args: string[]): Promise<number> {
  const p = parse('score', args, OPTIONS, true);
  if (p.values.help) {
    process.stdout.write(SCORE_HELP);
    return 0;
  }
  const modelPath = required(p, 'model', 'the path of a detector written by hgad train');
  const format = choice(p, 'format', ['json', 'csv'] as const) ?? 'json';
  const normalization = choice(p, 'normalization', ['calibrated', 'batch'] as const) ?? 'calibrated';
  const batchSize = int(p, 'batch-size', 1, 4096) ?? 8;
  const threads = int(p, 'threads', 1, 1024);
  const files = await expandInputs(p.positionals);
  const precision = choice(p, 'precision', ['fp32', 'bf16', 'auto'] as const);
  const detector = await AnomalyDetector.load(modelPath, {
    ...(threads !== undefined ? { threads } : {}), ...(precision !== undefined ? { precision } : {}),
  });
  const className = str(p, 'class');
  const heatmaps = str(p, 'heatmaps');
  const results: ImageResult[] = [];
  try {
    const thresholdText = str(p, 'threshold');
    const threshold = thresholdText === undefined ? undefined : parseThreshold(detector, '--threshold', thresholdText);
    const options = { batchSize, normalization, ...(className ? { className } : {}), ...(threshold !== undefined ? { threshold } : {}) };
    for await (const r of scoreImages(detector, files, options)) {
      results.push(r);
      if (heatmaps && r.error === null) await writeHeatmaps(r, heatmaps);
    }
  } finally {
    await detector.dispose();
  }
  const failed = results.filter((r) => r.error !== null).length;
  if (failed > 0) process.stderr.write(`hgad score: ${failed} of ${results.length} images could not be scored (see their error rows)\n`);
  const text = format === 'csv' ? toCsv(results) : toJson(results);
  const out = str(p, 'out');
  if (out) {
    try {
      await writeFile(out, text);
    } catch (e) {
      throw new HgadError('IO', `Cannot write ${out}: ${(e as Error).message}`, '--out');
    }
    const flagged = results.filter((r) => r.error === null && r.isAnomaly).length;
    process.stderr.write(`${results.length - failed} images scored (${detector.model.precision.inference}), ` +
      `${flagged} flagged as anomalous -> ${out}\n`);
  } else {
    process.stdout.write(text);
  }
  return failed > 0 && p.values['fail-on-error'] === true ? EXIT_IMAGE_ERRORS : 0;
}
