// hgad worker: takes scoring jobs from a BullMQ queue on Redis (lib/queue). SIGTERM / SIGINT stop
// taking jobs, finish the jobs held (their results are stored) and exit 0.
import { WORKER_DEFAULTS } from '../queue/worker';
import { startWorker } from '../queue';
import { int, OptionSpec, parse, required, str } from './args';

export const WORKER_HELP = `Usage: hgad worker --redis <url> --model <model.hgad> [options]

Scores the images of jobs submitted with hgad enqueue (or enqueueScoring), batching the jobs it holds.
Run one per machine (it uses every core) on as many machines as needed, all on the same Redis and queue.
A worker killed mid-job loses its jobs to the others after --lock-ms; a job for another detector
fails with an error naming both.

  --redis <url>             redis://[user:password@]host[:port][/db] (rediss:// for TLS) (required)
  --model <file>            a calibrated detector written by hgad train (required)
  --queue <name>            queue name (default hgad-<first 16 hex digits of the detector's SHA-256>)
  --prefix <p>              BullMQ key prefix in Redis (${WORKER_DEFAULTS.prefix})
  --root <dir>              storage root: jobs sent by reference (hgad enqueue --by-reference) are
                            paths relative to it; without it such jobs fail
  --concurrency <n>         jobs held at once (batch size x (pipeline depth + 1))
  --batch-size <n>          images per batch (${WORKER_DEFAULTS.batchSize})
  --max-wait-ms <n>         how long a partial batch waits for more images (${WORKER_DEFAULTS.maxWaitMs})
  --pipeline-depth <n>      batches scored at once (${WORKER_DEFAULTS.pipelineDepth})
  --threads <n>             threads of the flow and the backbone (all cores)
  --lock-ms <n>             job lock: a killed worker's jobs go to others after this long (${WORKER_DEFAULTS.lockMs})
  --max-image-bytes <n>     largest image a job may carry or reference (${WORKER_DEFAULTS.maxImageBytes})
  --max-pixels <n>          largest image after decoding, in pixels (${WORKER_DEFAULTS.maxPixels})
  --name <s>                worker name shown in BullMQ (hgad@<host>:<pid>)
  --quiet                   no log of job failures and connection trouble
`;

const OPTIONS: OptionSpec = {
  redis: { type: 'string' }, model: { type: 'string' }, queue: { type: 'string' }, prefix: { type: 'string' }, root: { type: 'string' },
  concurrency: { type: 'string' }, 'batch-size': { type: 'string' }, 'max-wait-ms': { type: 'string' }, 'pipeline-depth': { type: 'string' },
  threads: { type: 'string' }, 'lock-ms': { type: 'string' }, 'max-image-bytes': { type: 'string' }, 'max-pixels': { type: 'string' },
  name: { type: 'string' }, quiet: { type: 'boolean' },
};

export async function workerCommand(args: string[]): Promise<number> {
  const p = parse('worker', args, OPTIONS);
  if (p.values.help) {
    process.stdout.write(WORKER_HELP);
    return 0;
  }
  const quiet = p.values.quiet === true;
  const defined = <T>(key: string, v: T | undefined): Record<string, T> => (v === undefined ? {} : { [key]: v });
  const worker = await startWorker({
    redis: required(p, 'redis', 'a Redis URL (redis://host:6379)'),
    model: required(p, 'model', 'the path of a detector written by hgad train'),
    ...defined('queue', str(p, 'queue')), ...defined('prefix', str(p, 'prefix')), ...defined('root', str(p, 'root')),
    ...defined('concurrency', int(p, 'concurrency', 1, 4096)), ...defined('batchSize', int(p, 'batch-size', 1, 256)),
    ...defined('maxWaitMs', int(p, 'max-wait-ms', 0, 10_000)), ...defined('pipelineDepth', int(p, 'pipeline-depth', 1, 16)),
    ...defined('threads', int(p, 'threads', 1, 1024)), ...defined('lockMs', int(p, 'lock-ms', 1000, 3_600_000)),
    ...defined('maxImageBytes', int(p, 'max-image-bytes', 1, 512 << 20)), ...defined('maxPixels', int(p, 'max-pixels', 1, 1 << 30)),
    ...defined('name', str(p, 'name')),
    log: (line: string) => {
      if (!quiet || line.includes('taking jobs from')) process.stderr.write(`${line}\n`);
    },
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.stderr.write(`hgad worker: ${signal}: finishing the jobs held\n`);
  await worker.close();
  const s = worker.stats();
  process.stderr.write(`hgad worker: stopped (${s.completed} jobs completed, ${s.failed} failed, ${s.retried} attempts to be retried)\n`);
  // Everything held is finished; a Redis socket that a dropped connection left behind must not keep
  // the process alive.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}
