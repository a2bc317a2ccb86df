// A queue worker: takes scoring jobs from a BullMQ queue and scores their images with the same core
// as `hgad serve` (the dynamic batcher over scoreImages), so the images of the jobs it holds are
// scored together in batches. Outcomes:
// - an image scored: the job completes; its return value is the image's result (JSON, no map);
// - an image that cannot be decoded, a malformed job, a job for another detector: the job fails
//   once with the typed error (UnrecoverableError: BullMQ does not retry it);
// - anything that may pass (storage I/O, an engine failure): the job fails this attempt and BullMQ
//   retries it with backoff, up to the attempts the producer asked for;
// - the worker killed (kill -9): its job locks expire and another worker's stalled-job check puts the
//   jobs back in the queue. A job completes at most once: BullMQ refuses a completion whose lock was lost.
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';

import { Job, UnrecoverableError, Worker } from 'bullmq';

import { HgadArgumentError, HgadError } from '../errors';
import { AnomalyDetector } from '../pipeline/detector';
import { Batcher } from '../serve/batcher';
import { presentResult, PresentedScore } from '../score/present';
import { ImageInput, inputsOf, scoreImages } from '../score/scorer';
import { checkThreshold } from '../score/threshold';
import { checkInteger, checkKeys } from '../validate';
import { checkRedisUrl, connectionOptions, imageConnection, reachable, redactUrl } from './connection';
import { checkQueueName, defaultQueueName, modelFingerprint } from './fingerprint';
import { decodeBase64, failureReason, imageKey, JOB_NAME, parseJobData, ScoringJobData } from './job';
import { WorkerMetrics } from './metrics';

export interface WorkerOptions {
  /** redis://[user:password@]host[:port][/db] */
  redis: string;
  /** The detector file to score with. */
  model: string;
  /** Queue name; default hgad-<first 16 hex digits of the detector's SHA-256>. */
  queue?: string;
  /** BullMQ key prefix in Redis. Default 'hgad'. */
  prefix?: string;
  /** Jobs held at once. Default batchSize * (pipelineDepth + 1), enough to keep the pipeline full. */
  concurrency?: number;
  /** Images per batch (8). */
  batchSize?: number;
  /** How long a partial batch waits for more images, ms (5). */
  maxWaitMs?: number;
  /** Batches scored at once (2). */
  pipelineDepth?: number;
  /** Threads of the flow and the backbone. Default: every core. */
  threads?: number;
  /** Folder that reference jobs ({ ref }) are relative to; without it reference jobs fail. */
  root?: string | null;
  /** Largest image a job may carry or reference, bytes (64 MiB). */
  maxImageBytes?: number;
  /** Largest image after decoding, pixels (64 megapixels). */
  maxPixels?: number;
  /** A job's lock, ms (30000): a worker that stops renewing it (killed) loses its jobs to others after this long. */
  lockMs?: number;
  /** How long the first connection to Redis may take, ms (30000). */
  connectTimeoutMs?: number;
  /** Worker name shown in BullMQ (job.processedBy). Default hgad@<host>:<pid>. */
  name?: string;
  /** Where connection trouble and job failures are reported. Default: nowhere. */
  log?: (line: string) => void;
}

const WORKER_KEYS = ['redis', 'model', 'queue', 'prefix', 'concurrency', 'batchSize', 'maxWaitMs', 'pipelineDepth', 'threads', 'root',
  'maxImageBytes', 'maxPixels', 'lockMs', 'connectTimeoutMs', 'name', 'log'];

export const WORKER_DEFAULTS = {
  prefix: 'hgad', batchSize: 8, maxWaitMs: 5, pipelineDepth: 2, maxImageBytes: 64 << 20, maxPixels: 64 << 20, lockMs: 30_000,
  connectTimeoutMs: 30_000,
};

export interface WorkerStats {
  completed: number;
  /** Jobs failed for good (their typed error is the image's result). */
  failed: number;
  /** Attempts that failed and will be retried. */
  retried: number;
}

export interface RunningWorker {
  name: string;
  queue: string;
  /** SHA-256 of the detector file: jobs for any other detector are refused. */
  model: string;
  detector: AnomalyDetector;
  metrics: WorkerMetrics;
  stats(): WorkerStats;
  /** Takes no more jobs, finishes the jobs it holds (their results are stored), disconnects, frees the detector. */
  close(): Promise<void>;
}

/** A failure the job must not be retried for (the same input would fail the same way). */
function final(e: HgadError): UnrecoverableError {
  return new UnrecoverableError(failureReason(e));
}

/**
 * Errors of reading a referenced file that a retry cannot fix. ENOENT is not one: on shared storage
 * (NFS, a synced bucket) a file just written elsewhere may not be visible here yet.
 */
const PERMANENT_ERRNO = new Set(['ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'ELOOP', 'ENAMETOOLONG', 'EINVAL']);

async function readReference(root: string | null, ref: string, maxBytes: number): Promise<Buffer> {
  if (root === null) {
    throw final(new HgadArgumentError('job.image.ref', 'image bytes: this worker has no storage root (--root) to read references from', ref));
  }
  const full = path.resolve(root, ref);
  const inside = (p: string): boolean => {
    const rel = path.relative(root, p);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  if (path.isAbsolute(ref) || ref.includes('\0') || !inside(full)) {
    throw final(new HgadArgumentError('job.image.ref', `a path inside the storage root ${root}`, ref));
  }
  let handle;
  try {
    // A symbolic link must not lead out of the root either.
    if (!inside(await realpath(full))) throw final(new HgadArgumentError('job.image.ref', `a path inside the storage root ${root}`, ref));
    // O_NONBLOCK: a FIFO must not hold the job (and its renewed lock) for ever.
    handle = await open(full, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) throw final(new HgadArgumentError('job.image.ref', 'a regular file', ref));
    if (st.size > maxBytes) throw final(new HgadArgumentError('job.image.ref', `a file of at most ${maxBytes} bytes`, `${st.size} bytes`));
    return await handle.readFile();
  } catch (e) {
    if (e instanceof UnrecoverableError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const error = new HgadError('IO', `Cannot read ${ref} under ${root}: ${(e as Error).message}`, 'job.image.ref');
    throw PERMANENT_ERRNO.has(code) ? final(error) : new Error(failureReason(error));
  } finally {
    await handle?.close();
  }
}

function resolveOptions(options: WorkerOptions) {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, WORKER_KEYS);
  const redis = checkRedisUrl('options.redis', options.redis);
  if (typeof options.model !== 'string' || options.model.length === 0) throw new HgadArgumentError('options.model', 'the path of a detector file', options.model);
  if (options.queue !== undefined) checkQueueName('options.queue', options.queue);
  const prefix = options.prefix ?? WORKER_DEFAULTS.prefix;
  checkQueueName('options.prefix', prefix);
  const batchSize = options.batchSize ?? WORKER_DEFAULTS.batchSize;
  checkInteger('options.batchSize', batchSize, 1, 256);
  const pipelineDepth = options.pipelineDepth ?? WORKER_DEFAULTS.pipelineDepth;
  checkInteger('options.pipelineDepth', pipelineDepth, 1, 16);
  const concurrency = options.concurrency ?? batchSize * (pipelineDepth + 1);
  checkInteger('options.concurrency', concurrency, 1, 4096);
  const maxWaitMs = options.maxWaitMs ?? WORKER_DEFAULTS.maxWaitMs;
  checkInteger('options.maxWaitMs', maxWaitMs, 0, 10_000);
  if (options.threads !== undefined) checkInteger('options.threads', options.threads, 1, 1024);
  if (options.root !== undefined && options.root !== null && (typeof options.root !== 'string' || options.root.length === 0)) {
    throw new HgadArgumentError('options.root', 'a folder', options.root);
  }
  const maxImageBytes = options.maxImageBytes ?? WORKER_DEFAULTS.maxImageBytes;
  checkInteger('options.maxImageBytes', maxImageBytes, 1, 512 << 20);
  const maxPixels = options.maxPixels ?? WORKER_DEFAULTS.maxPixels;
  checkInteger('options.maxPixels', maxPixels, 1, 1 << 30);
  const lockMs = options.lockMs ?? WORKER_DEFAULTS.lockMs;
  checkInteger('options.lockMs', lockMs, 1000, 3_600_000);
  const connectTimeoutMs = options.connectTimeoutMs ?? WORKER_DEFAULTS.connectTimeoutMs;
  checkInteger('options.connectTimeoutMs', connectTimeoutMs, 100, 3_600_000);
  const name = options.name ?? `hgad@${hostname()}:${process.pid}`;
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) throw new HgadArgumentError('options.name', 'a name of 1 to 200 characters', name);
  if (options.log !== undefined && typeof options.log !== 'function') throw new HgadArgumentError('options.log', 'a function', options.log);
  return {
    redis, model: options.model, queue: options.queue, prefix, batchSize, pipelineDepth, concurrency, maxWaitMs, threads: options.threads,
    root: options.root ?? null, maxImageBytes, maxPixels, lockMs, connectTimeoutMs, name, log: options.log ?? ((): void => {}),
  };
}

/** Opens the backbone and scores one blank image, so that the first jobs do not wait for it. */
async function warmUp(detector: AnomalyDetector): Promise<void> {
  const S = detector.inputSize;
  const blank = { data: new Uint8Array(S * S * 3).fill(128), width: S, height: S, channels: 3 as const };
  for await (const r of scoreImages(detector, [blank], { onError: 'throw' })) void r;
}

const CLOSE_GRACE_MS = 5000;

/** Whether `p` settled within `ms` (its outcome is not needed: a stop goes on either way). */
async function settled(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Loads the detector, connects to Redis and starts taking jobs. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const o = resolveOptions(options);
  const root = o.root === null ? null : await realpath(o.root).catch((e: Error) => {
    throw new HgadArgumentError('options.root', 'an existing folder', `${o.root} (${e.message})`);
  });
  await reachable(o.redis, o.connectTimeoutMs, 'redis');
  const fingerprint = await modelFingerprint(o.model);
  const queue = o.queue ?? defaultQueueName(fingerprint);
  const detector = await AnomalyDetector.load(o.model, o.threads !== undefined ? { threads: o.threads } : {});
  try {
    await warmUp(detector);
  } catch (e) {
    await detector.dispose();
    throw e;
  }
  const metrics = new WorkerMetrics();
  const batcher = new Batcher(detector, {
    batching: true, batchSize: o.batchSize, maxWaitMs: o.maxWaitMs, pipelineDepth: o.pipelineDepth, maxQueue: o.concurrency, maxPixels: o.maxPixels,
  }, metrics);
  const stats: WorkerStats = { completed: 0, failed: 0, retried: 0 };

  const inputOf = async (job: Job, d: ScoringJobData): Promise<ImageInput> => {
    const labels = { id: d.id, ...(d.className !== undefined ? { className: d.className } : {}) };
    const image = d.image;
    let input: ImageInput;
    if ('ref' in image) input = { data: await readReference(root, image.ref, o.maxImageBytes), ...labels };
    else if ('stored' in image) {
      const data = await storedImage(job.id!, image.stored);
      input = 'width' in image ? { data, width: image.width, height: image.height, channels: image.channels, ...labels } : { data, ...labels };
    } else if ('raw' in image) input = { data: decodeBase64('job.image.raw', image.raw), width: image.width, height: image.height, channels: image.channels, ...labels };
    else input = { data: decodeBase64('job.image.bytes', image.bytes), ...labels };
    // The checks scoreImages makes up front (class names, raw sizes), here, so that one bad job cannot
    // fail the batch it would join.
    inputsOf(detector, [input], o.maxPixels);
    return input;
  };

  // Jobs taken and not yet moved to completed / failed in Redis (the worker's events), so that a stop
  // can wait for exactly what it holds.
  let held = 0;
  let onIdle: (() => void) | null = null;
  const release = (): void => {
    held = Math.max(0, held - 1);
    if (held === 0) onIdle?.();
  };
  const untilIdle = (): Promise<void> => (held === 0 ? Promise.resolve() : new Promise((resolve) => {
    onIdle = resolve;
  }));

  const processor = async (job: Job): Promise<PresentedScore> => {
    held += 1;
    let d: ScoringJobData;
    let override;
    let input: ImageInput;
    try {
      if (job.name !== JOB_NAME) throw new HgadArgumentError('job.name', `'${JOB_NAME}' (an hgad scoring job)`, job.name);
      d = parseJobData(job.data, o.maxImageBytes);
      if (d.model !== fingerprint) {
        throw new HgadError('INVALID_ARGUMENT', `The job is for the detector with sha256 ${d.model}, but this worker holds ${o.model} ` +
          `(sha256 ${fingerprint}): submit it to the queue of workers that hold its detector`, 'job.model');
      }
      if (d.className !== undefined) detector.classIndex('job.className', d.className);
      override = d.threshold === undefined ? null : checkThreshold(detector, 'job.threshold', d.threshold);
      input = await inputOf(job, d);
    } catch (e) {
      if (e instanceof HgadError) throw final(e);
      throw e;
    }
    let r;
    try {
      r = await batcher.submit([input]).results[0]!;
    } catch (e) {
      // The engine failed the whole batch (not this image's fault): retried.
      throw new Error(failureReason(e instanceof HgadError ? e : new HgadError('NATIVE', (e as Error).message)));
    }
    if (r.error !== null) {
      // An image that cannot be decoded will never decode; anything else may pass on another attempt.
      if (r.error.code === 'INVALID_ARGUMENT') throw new UnrecoverableError(failureReason(r.error));
      throw new Error(failureReason(r.error));
    }
    return await presentResult(detector, { ...r, index: d.index, id: d.id }, override, d.heatmap === true) as PresentedScore;
  };

  const images = imageConnection(o.redis, `${o.name}-images`);
  // A job's stored image, read as a Buffer (no string of its size to build); a Redis error is thrown
  // as it is, so the attempt is retried.
  const storedImage = async (id: string, length: number): Promise<Buffer> => {
    const bytes = await images.getBuffer(imageKey(o.prefix, queue, id));
    if (bytes === null) {
      throw new HgadError('IO', `The image of job ${id} is no longer in Redis (collected, expired after 7 days, or lost by a restart ` +
        'without persistence): submit it again', 'job.image.stored');
    }
    if (bytes.length !== length) throw new HgadArgumentError('job.image.stored', `${length} bytes (the job's image length)`, `${bytes.length} bytes`);
    return bytes;
  };

  const worker = new Worker(queue, processor, {
    connection: connectionOptions(o.redis, o.name), prefix: o.prefix, name: o.name, autorun: false, concurrency: o.concurrency,
    lockDuration: o.lockMs, stalledInterval: o.lockMs, maxStalledCount: 3,
  });
  let lastError = '';
  worker.on('error', (e) => {
    // Connection trouble repeats every retry: say it once per distinct message.
    if (e.message !== lastError) o.log(`hgad worker: ${e.message}`);
    lastError = e.message;
  });
  // A stored image is needed until its job is finished for good: then it goes (the producer removes
  // it too when it collects the result, in case this worker dies before).
  const forget = (job: Job): void => {
    if (typeof job.id === 'string') images.del(imageKey(o.prefix, queue, job.id)).catch(() => {});
  };
  worker.on('completed', (job) => {
    forget(job);
    release();
    stats.completed += 1;
    metrics.jobs.inc({ outcome: 'completed' });
    lastError = '';
  });
  worker.on('failed', (job, e) => {
    release();
    const retry = job !== undefined && !(e instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1);
    if (job !== undefined && !retry) forget(job);
    if (retry) stats.retried += 1;
    else stats.failed += 1;
    metrics.jobs.inc({ outcome: retry ? 'retry' : 'failed' });
    o.log(`hgad worker: job ${job?.id ?? '?'} ${retry ? 'failed, will be retried' : 'failed'}: ${e.message}`);
  });
  await worker.waitUntilReady();
  void worker.run().catch((e: Error) => o.log(`hgad worker: stopped taking jobs: ${e.message}`));
  o.log(`hgad worker: ${o.name} taking jobs from ${redactUrl(o.redis)} queue ${queue} (detector sha256 ${fingerprint.slice(0, 16)}..., ` +
    `${detector.threads} threads, ${o.concurrency} jobs at once)`);
  let closing: Promise<void> | null = null;
  return {
    name: o.name, queue, model: fingerprint, detector, metrics,
    stats: () => ({ ...stats }),
    close: () => {
      closing ??= (async () => {
        const graceful = worker.close();
        // The jobs held finish (a job whose completion cannot reach Redis is left to the stalled-job
        // check of the other workers), then BullMQ gets a bounded time to close its connections:
        // its close() can wait for ever on a blocking connection that went through a Redis restart
        // (taskforcesh/bullmq#2430, #4656).
        await settled(untilIdle(), Math.max(o.lockMs, CLOSE_GRACE_MS));
        if (!(await settled(graceful, CLOSE_GRACE_MS))) {
          o.log(`hgad worker: the Redis connections did not close within ${CLOSE_GRACE_MS / 1000} s of the last job; dropping them`);
          await settled(worker.disconnect(), CLOSE_GRACE_MS);
        }
        await batcher.drained();
        await settled(images.quit(), CLOSE_GRACE_MS);
        images.disconnect();
        await detector.dispose();
      })();
      return closing;
    },
  };
}
