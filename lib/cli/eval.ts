// hgad eval: metrics of a detector on a dataset's test split.
import { constants } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

import { openDataset } from '../data';
import { HgadError } from '../errors';
import { evaluateDetector, EvaluationOutput } from '../eval/run';
import { reportToMarkdown } from '../eval/table';
import { renderReport } from '../report/render';
import { writeTextAtomic } from '../report/write';
import { AnomalyDetector } from '../pipeline/detector';
import { writeHeatmaps } from '../score/heatmap-files';
import { choice, int, list, OptionSpec, parse, required, str } from './args';

export const EVAL_HELP = `Usage: hgad eval --model <model.hgad> --data <dataset root> [options]

Scores the test split of a dataset and reports image AUROC, pixel AUROC, AUPRO (up to 30% FPR) and
F1-max per class and their mean, as a Markdown table (and JSON with --json).

  --model <file>            a detector written by hgad train (required)
  --data <dir>              dataset root (required)
  --layout <name>           auto (default), mvtec, visa, btad, mvtec3d, generic
  --classes <a,b,...>       evaluate these classes only
  --limit-per-defect <n>    at most n test images per class and defect type
  --infer-class             infer each image's class (default: given, as the authors do); reports accuracy
  --normalization <mode>    calibrated (default) or batch (the authors' protocol, for published numbers)
  --json <file>             write the metrics as JSON
  --markdown <file>         write the Markdown table to a file too
  --heatmaps <dir>          write heatmaps and overlays of every test image
  --report <file.html>      write an HTML report (one self-contained file): metrics, ROC curves, score
                            histograms, and the 48 worst test images with their maps and ground truth
  --batch-size <n>          images per batch (8)     --threads <n>  threads (all cores)
`;

const OPTIONS: OptionSpec = {
  model: { type: 'string' }, data: { type: 'string' }, layout: { type: 'string' }, classes: { type: 'string' },
  'limit-per-defect': { type: 'string' }, 'infer-class': { type: 'boolean' }, normalization: { type: 'string' },
  json: { type: 'string' }, markdown: { type: 'string' }, heatmaps: { type: 'string' }, report: { type: 'string' },
  'batch-size': { type: 'string' },
  threads: { type: 'string' },
};

async function write(file: string, text: string, flag: string): Promise<void> {
  try {
    await writeFile(file, text);
  } catch (e) {
    throw new HgadError('IO', `Cannot write ${file}: ${(e as Error).message}`, flag);
  }
}

export function evaluationJson(out: EvaluationOutput, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...extra, ...out.report, classAccuracy: out.classAccuracy, seconds: out.seconds }, null, 2) + '\n';
}

/** The command line as a shell would take it back: arguments with special characters single-quoted. */
function commandLine(args: string[]): string {
  const quote = (a: string): string => (/^[\w./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  return ['hgad', 'eval', ...args].map(quote).join(' ');
}

export async function evalCommand(args: string[]): Promise<number> {
  const p = parse('eval', args, OPTIONS);
  if (p.values.help) {
    process.stdout.write(EVAL_HELP);
    return 0;
  }
  const modelPath = required(p, 'model', 'the path of a detector written by hgad train');
  const root = required(p, 'data', 'the folder of a dataset');
  const layout = choice(p, 'layout', ['auto', 'mvtec', 'visa', 'btad', 'mvtec3d', 'generic'] as const) ?? 'auto';
  const normalization = choice(p, 'normalization', ['calibrated', 'batch'] as const) ?? 'calibrated';
  const threads = int(p, 'threads', 1, 1024);
  const dataset = await openDataset({ root, layout });
  const detector = await AnomalyDetector.load(modelPath, threads !== undefined ? { threads } : {});
  const heatmaps = str(p, 'heatmaps');
  const classes = list(p, 'classes');
  const limit = int(p, 'limit-per-defect', 1, 1 << 30);
  const reportFile = str(p, 'report');
  if (reportFile) {
    // Checked before the evaluation, which can take long, rather than after it.
    const dir = path.dirname(path.resolve(reportFile));
    await access(dir, constants.W_OK).catch((e: Error) => {
      throw new HgadError('IO', `Cannot write the report into ${dir}: ${e.message}`, '--report');
    });
  }
  // Read now: the report is rendered after the detector is disposed.
  const detectorInfo = { classes: [...detector.classes], spec: detector.spec, config: detector.model.config };
  let out: EvaluationOutput;
  try {
    out = await evaluateDetector(detector, dataset, {
      normalization,
      batchSize: int(p, 'batch-size', 1, 4096) ?? 8,
      inferClass: p.values['infer-class'] === true,
      ...(classes ? { classes } : {}),
      ...(limit !== undefined ? { limitPerDefect: limit } : {}),
      ...(heatmaps ? {
        onResult: async (r, sample) => {
          await writeHeatmaps(r, path.join(heatmaps, sample.className, sample.defect));
        },
      } : {}),
    });
  } finally {
    await detector.dispose();
  }
  const table = reportToMarkdown(out.report);
  process.stdout.write(`${table}\n`);
  if (out.classAccuracy !== null) process.stdout.write(`class accuracy (inferred): ${(100 * out.classAccuracy).toFixed(1)}%\n`);
  process.stdout.write(`${out.images.length} test images in ${out.seconds.toFixed(1)} s (${normalization} normalisation)\n`);
  const json = str(p, 'json');
  if (json) await write(json, evaluationJson(out, { model: modelPath, data: root, normalization }), '--json');
  const md = str(p, 'markdown');
  if (md) await write(md, `${table}\n`, '--markdown');
  if (reportFile) {
    const html = await renderReport(out, { detector: detectorInfo, normalization, command: commandLine(args) });
    await writeTextAtomic(reportFile, html, '--report');
    process.stdout.write(`report: ${reportFile}\n`);
  }
  return 0;
}
