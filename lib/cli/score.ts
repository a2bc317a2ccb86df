// hgad score: anomaly scores (and optionally heatmaps) for image files or folders.
import { writeFile } from 'node:fs/promises';

import { HgadError } from '../errors';
import { AnomalyDetector } from '../pipeline/detector';
import { writeHeatmaps } from '../score/heatmap-files';
import { AnomalyResult, scoreImages } from '../score/scorer';
import { choice, int, OptionSpec, parse, required, str } from './args';
import { expandInputs } from './inputs';

export const SCORE_HELP = `Usage: hgad score --model <model.hgad> <image or folder>... [options]

Scores every image: an image score (higher = more anomalous), isAnomaly against the threshold the
model was calibrated with, the class used (given with --class, else inferred) and its confidence.

  --model <file>            a detector written by hgad train (required)
  --class <name>            the class of every image (default: inferred per image)
  --format json|csv         output format (default json)
  --out <file>              write the results there (default: standard output)
  --heatmaps <dir>          also write <name>_heatmap.png and <name>_overlay.png per image
  --normalization <mode>    calibrated (default: scores independent of the other images) or batch
                            (the authors' protocol: normalised over the images of this call)
  --batch-size <n>          images per batch (8)     --threads <n>  threads (all cores)
`;

const OPTIONS: OptionSpec = {
  model: { type: 'string' }, class: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' },
  heatmaps: { type: 'string' }, normalization: { type: 'string' }, 'batch-size': { type: 'string' }, threads: { type: 'string' },
};

function csvField(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function toCsv(results: AnomalyResult[]): string {
  const rows = results.map((r) => [csvField(r.path), String(r.imageScore), String(r.isAnomaly ?? ''), String(r.threshold ?? ''),
    csvField(r.className), r.classConfidence.toFixed(4), r.classSource].join(','));
  return ['path,imageScore,isAnomaly,threshold,className,classConfidence,classSource', ...rows].join('\n') + '\n';
}

export function toJson(results: AnomalyResult[]): string {
  return JSON.stringify(results.map(({ map: _map, ...r }) => r), null, 2) + '\n';
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
  const detector = await AnomalyDetector.load(modelPath, threads !== undefined ? { threads } : {});
  const className = str(p, 'class');
  const heatmaps = str(p, 'heatmaps');
  const results: AnomalyResult[] = [];
  try {
    for await (const r of scoreImages(detector, files, { batchSize, normalization, ...(className ? { className } : {}) })) {
      results.push(r);
      if (heatmaps) await writeHeatmaps(r, heatmaps);
    }
  } finally {
    await detector.dispose();
  }
  const text = format === 'csv' ? toCsv(results) : toJson(results);
  const out = str(p, 'out');
  if (out) {
    try {
      await writeFile(out, text);
    } catch (e) {
      throw new HgadError('IO', `Cannot write ${out}: ${(e as Error).message}`, '--out');
    }
    const flagged = results.filter((r) => r.isAnomaly).length;
    process.stderr.write(`${results.length} images scored, ${flagged} flagged as anomalous -> ${out}\n`);
  } else {
    process.stdout.write(text);
  }
  return 0;
}
