// hgad enqueue: submits image files or folders to the workers of a BullMQ queue and collects every
// image's result, in input order, as JSON Lines or CSV (a file written as results arrive, renamed
// into place at the end), with progress on standard error.
import { HgadArgumentError } from '../errors';
import { enqueueScoring, ResultsFile, SubmitProgress } from '../queue';
import { csvRow } from '../queue/results-file';
import type { ThresholdOverride } from '../score/threshold';
import { formatDuration } from '../train/progress';
import { choice, int, OptionSpec, parse, required, str } from './args';
import { expandInputs } from './inputs';
import { EXIT_IMAGE_ERRORS } from './score';

export const ENQUEUE_HELP = `Usage: hgad enqueue --redis <url> --model <model.hgad | sha256> <image or folder>... [options]

Submits every image as a job to the queue of hgad workers and writes each image's result, in input
order: its score, or its error (an image that cannot be read or decoded, a job that failed every
attempt). Results are written as they arrive; --out files appear complete or not at all.

  --redis <url>             redis://[user:password@]host[:port][/db] (required)
  --model <file | sha256>   the detector the workers hold: its file, or its SHA-256 (required)
  --queue <name>            queue name (default hgad-<first 16 hex digits of the detector's SHA-256>)
  --prefix <p>              BullMQ key prefix in Redis (hgad)
  --out <file>              write the results there (default: standard output)
  --format jsonl|csv        results format (jsonl: one JSON object per line)
  --by-reference            send paths relative to --root instead of the images' bytes (every worker
                            must mount the same storage and run with --root)
  --root <dir>              storage root for --by-reference
  --class <name>            the class of every image (default: inferred per image)
  --threshold <t>           operating threshold: a number, or class=number pairs (carpet=0.8,pill=1.2)
  --heatmap                 each result carries its anomaly map as a base64 PNG
  --attempts <n>            attempts per job before a transient failure is final (5)
  --window <n>              images submitted and not yet collected, at most (1000)
  --submission <id>         submission id; job ids are <id>.<index> (random)
  --keep-jobs               leave finished jobs in Redis (default: removed once collected)
  --fail-on-error           exit with status 3 when any image could not be scored
  --quiet                   no progress line
`;

const OPTIONS: OptionSpec = {
  redis: { type: 'string' }, model: { type: 'string' }, queue: { type: 'string' }, prefix: { type: 'string' }, out: { type: 'string' },
  format: { type: 'string' }, 'by-reference': { type: 'boolean' }, root: { type: 'string' }, class: { type: 'string' },
  threshold: { type: 'string' }, heatmap: { type: 'boolean' }, attempts: { type: 'string' }, window: { type: 'string' },
  submission: { type: 'string' }, 'keep-jobs': { type: 'boolean' }, 'fail-on-error': { type: 'boolean' }, quiet: { type: 'boolean' },
};

/** --threshold without the detector at hand: its shape here, its class names at the workers. */
function thresholdOf(text: string): ThresholdOverride {
  const number = (s: string): number => (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s.trim()) ? Number(s) : NaN);
  if (!text.includes('=')) {
    const n = number(text);
    if (Number.isFinite(n)) return n;
  } else {
    const out: Record<string, number> = {};
    for (const part of text.split(',')) {
      const eq = part.indexOf('=');
      const name = part.slice(0, eq).trim();
      const n = number(part.slice(eq + 1));
      if (eq < 0 || name === '' || !Number.isFinite(n)) throw new HgadArgumentError('--threshold', 'a number, or class=number pairs separated by commas', text);
      out[name] = n;
    }
    return out;
  }
  throw new HgadArgumentError('--threshold', 'a number, or class=number pairs separated by commas', text);
}

export async function enqueueCommand(args: string[]): Promise<number> {
  const p = parse('enqueue', args, OPTIONS, true);
  if (p.values.help) {
    process.stdout.write(ENQUEUE_HELP);
    return 0;
  }
  const redis = required(p, 'redis', 'a Redis URL (redis://host:6379)');
  const model = required(p, 'model', 'the detector file or its SHA-256');
  const format = choice(p, 'format', ['jsonl', 'csv'] as const) ?? 'jsonl';
  const byReference = p.values['by-reference'] === true;
  const root = str(p, 'root');
  if (byReference && root === undefined) throw new HgadArgumentError('--root', 'the storage root that --by-reference paths are relative to', root);
  if (!byReference && root !== undefined) throw new HgadArgumentError('--root', 'nothing without --by-reference', root);
  const thresholdText = str(p, 'threshold');
  const files = await expandInputs(p.positionals);
  const out = str(p, 'out');
  const quiet = p.values.quiet === true;
  const started = Date.now();
  let lastLine = 0;
  const progress = (s: SubmitProgress, final = false): void => {
    const now = Date.now();
    const tty = process.stderr.isTTY === true;
    if (quiet || (!final && now - lastLine < (tty ? 250 : 10_000))) return;
    lastLine = now;
    const rate = s.collected / Math.max(1e-3, (now - started) / 1000);
    const eta = rate > 0 ? formatDuration((s.total - s.collected) / rate) : '?';
    const line = `hgad enqueue: submitted ${s.submitted}/${s.total}, results ${s.collected}/${s.total} (${s.failed} errors` +
      `${s.resubmitted ? `, ${s.resubmitted} resubmitted` : ''}), ${rate.toFixed(1)} img/s, ETA ${eta}`;
    process.stderr.write(tty && !final ? `\r${line}\x1b[K` : `${tty ? '\r' : ''}${line}${tty ? '\x1b[K' : ''}\n`);
  };
  const file = out === undefined ? null : ResultsFile.open(out, format);
  let last: SubmitProgress = { total: files.length, submitted: 0, collected: 0, failed: 0, resubmitted: 0 };
  if (file === null && format === 'csv') process.stdout.write('index,id,imageScore,isAnomaly,threshold,thresholdSource,className,classConfidence,classSource,errorCode,error\n');
  try {
    const results = enqueueScoring(files, {
      redis, model,
      ...(str(p, 'queue') !== undefined ? { queue: str(p, 'queue')! } : {}), ...(str(p, 'prefix') !== undefined ? { prefix: str(p, 'prefix')! } : {}),
      ...(byReference ? { transport: 'reference' as const, root: root! } : {}),
      ...(str(p, 'class') !== undefined ? { className: str(p, 'class')! } : {}),
      ...(thresholdText !== undefined ? { threshold: thresholdOf(thresholdText) } : {}),
      ...(p.values.heatmap === true ? { heatmap: true } : {}),
      ...(int(p, 'attempts', 1, 100) !== undefined ? { attempts: int(p, 'attempts', 1, 100)! } : {}),
      ...(int(p, 'window', 1, 1_000_000) !== undefined ? { window: int(p, 'window', 1, 1_000_000)! } : {}),
      ...(str(p, 'submission') !== undefined ? { submission: str(p, 'submission')! } : {}),
      keepJobs: p.values['keep-jobs'] === true,
      onProgress: (s) => {
        last = s;
        progress(s);
      },
    });
    for await (const r of results) {
      if (file) await file.write(r);
      else if (!process.stdout.write(format === 'csv' ? csvRow(r) : `${JSON.stringify(r)}\n`)) {
        await new Promise((resolve) => process.stdout.once('drain', resolve));
      }
    }
    await file?.commit();
  } catch (e) {
    await file?.abort();
    throw e;
  }
  progress(last, true);
  if (out !== undefined && !quiet) process.stderr.write(`hgad enqueue: ${last.collected} results -> ${out}\n`);
  return last.failed > 0 && p.values['fail-on-error'] === true ? EXIT_IMAGE_ERRORS : 0;
}
