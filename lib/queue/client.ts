// The producer side: submits images as scoring jobs (one image per job, deterministic job ids) and
// collects their outcomes in input order. Submission and collection overlap with a bounded window of
// images in flight, so a submission of millions of images holds neither all their bytes in Redis
// nor all their results in memory.
import { randomBytes } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import * as path from 'node:path';

import { Queue, QueueEvents } from 'bullmq';
import type Redis from 'ioredis';

import { isByteArray } from '../data/source';
import { HgadArgumentError } from '../errors';
import type { PresentedResult } from '../score/present';
import type { ImageInput } from '../score/scorer';
import type { ThresholdOverride } from '../score/threshold';
import { checkInteger, checkKeys } from '../validate';
import { checkRedisUrl, connectionOptions, imageConnection, reachable } from './connection';
import { checkQueueName, defaultQueueName, modelFingerprint } from './fingerprint';
import { checkSubmissionId, imageKey, JOB_FORMAT, JOB_NAME, jobId, parseFailure, parseJobId, ScoringJobData } from './job';
import { ResultCollector } from './results';

export type QueueResult = PresentedResult;

export interface ClientOptions {
  /** redis://[user:password@]host[:port][/db] */
  redis: string;
  /** The detector the images are for: its SHA-256 (64 hex digits) or the detector file itself. */
  model: string;
  /** Queue name; default hgad-<first 16 hex digits of the detector's SHA-256>, as the workers use. */
  queue?: string;
  /** BullMQ key prefix in Redis. Default 'hgad'. */
  prefix?: string;
  /** How long the first connection to Redis may take, ms (30000). */
  connectTimeoutMs?: number;
}

export interface SubmitProgress {
  total: number;
  /** Images whose jobs are in the queue (or that failed before one was made). */
  submitted: number;
  /** Results handed out, in input order. */
  collected: number;
  /** Of those, images that could not be scored. */
  failed: number;
  /** Jobs found missing from Redis (lost by a restart without persistence) and submitted again. */
  resubmitted: number;
}

export interface SubmitOptions {
  /**
   * 'bytes' (default): each image goes to Redis with its job (a binary value beside it), so workers
   * need no shared storage; Redis holds the image until its job is finished (7 days at most).
   * 'reference': jobs carry a path relative to `root`,
   * which every worker mounts (hgad worker --root); only file paths under `root` can be sent.
   */
  transport?: 'bytes' | 'reference';
  /** For transport 'reference': the folder that image paths are sent relative to. */
  root?: string;
  /** The class of every image, when known (else per image, else inferred). */
  className?: string;
  /** Operating threshold: a number for every class, or { className: number }. */
  threshold?: ThresholdOverride;
  /** Each result carries its anomaly map as a base64 PNG. */
  heatmap?: boolean;
  /** Attempts per job before a transient failure becomes the image's error (5). */
  attempts?: number;
  /** First retry delay, ms, doubled at each retry (1000). */
  backoffMs?: number;
  /** Images submitted and not yet handed out, at most (1000). */
  window?: number;
  /** Submission id: job ids are <submission>.<index>. Default: random. */
  submission?: string;
  /** Largest image sent as bytes (64 MiB); larger ones get an error result (send them by reference). */
  maxImageBytes?: number;
  /** Leave finished jobs in Redis after collecting them (default false: removed once handed out). */
  keepJobs?: boolean;
  /** How often the collector asks Redis about the oldest jobs it has no event for, ms (1000). */
  pollMs?: number;
  onProgress?: (p: SubmitProgress) => void;
}

const CLIENT_KEYS = ['redis', 'model', 'queue', 'prefix', 'connectTimeoutMs'];
const SUBMIT_KEYS = ['transport', 'root', 'className', 'threshold', 'heatmap', 'attempts', 'backoffMs', 'window', 'submission',
  'maxImageBytes', 'keepJobs', 'pollMs', 'onProgress'];
const SHA256 = /^[0-9a-f]{64}$/;
/** Jobs added per Redis round trip. */
const ADD_CHUNK = 64;
/** Finished jobs kept in Redis at most this long when nobody collects them (a producer that died). */
const KEEP_UNCOLLECTED_S = 7 * 24 * 3600;

/** One image of a submission as the producer has it, before it becomes job data. */
interface Pending {
  index: number;
  id: string;
  className?: string;
  /** Where its bytes come from (read again if Redis loses the job). */
  source: { file: string } | { bytes: Uint8Array } | { raw: Uint8Array; width: number; height: number; channels: 1 | 2 | 3 | 4 } | { ref: string };
}

function checkThresholdShape(v: unknown): ThresholdOverride {
  const finite = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);
  if (finite(v)) return v as number;
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0 && Object.values(v).every(finite)) return v as Record<string, number>;
  throw new HgadArgumentError('options.threshold', 'a finite number or an object { className: number }', v);
}

export class ScoringClient {
  private constructor(readonly queue: Queue, private readonly events: QueueEvents, readonly queueName: string,
    readonly model: string, private readonly prefix: string, private readonly images: Redis) {}

  /** Connects to Redis (an HgadError QUEUE if it cannot within connectTimeoutMs). */
  static async connect(options: ClientOptions): Promise<ScoringClient> {
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    checkKeys('options', options, CLIENT_KEYS);
    const url = checkRedisUrl('options.redis', options.redis);
    if (typeof options.model !== 'string' || options.model.length === 0) {
      throw new HgadArgumentError('options.model', 'a detector file or its SHA-256 (64 hex digits)', options.model);
    }
    const model = SHA256.test(options.model) ? options.model : await modelFingerprint(options.model);
    const name = options.queue === undefined ? defaultQueueName(model) : checkQueueName('options.queue', options.queue);
    const prefix = checkQueueName('options.prefix', options.prefix ?? 'hgad');
    const timeout = options.connectTimeoutMs ?? 30_000;
    checkInteger('options.connectTimeoutMs', timeout, 100, 3_600_000);
    await reachable(url, timeout, 'redis');
    const queue = new Queue(name, { connection: connectionOptions(url, 'hgad-producer'), prefix });
    const events = new QueueEvents(name, { connection: connectionOptions(url, 'hgad-collector'), prefix });
    // Without listeners an 'error' (Redis gone) would be thrown; reconnection is automatic.
    queue.on('error', () => {});
    events.on('error', () => {});
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    return new ScoringClient(queue, events, name, model, prefix, imageConnection(url, 'hgad-producer-images'));
  }

  /**
   * Submits the images and yields one result per image, in input order: its score, or its typed
   * error (an image the producer cannot read, one a worker cannot decode, a job that failed every
   * attempt). Stop iterating to abandon the rest (jobs already submitted stay in the queue).
   */
  async *score(images: readonly ImageInput[], options: SubmitOptions = {}): AsyncGenerator<QueueResult> {
    if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
    checkKeys('options', options, SUBMIT_KEYS);
    const transport = options.transport ?? 'bytes';
    if (transport !== 'bytes' && transport !== 'reference') throw new HgadArgumentError('options.transport', "'bytes' or 'reference'", transport);
    let root: string | null = null;
    if (transport === 'reference') {
      if (typeof options.root !== 'string' || options.root.length === 0) {
        throw new HgadArgumentError('options.root', "the folder image paths are relative to (transport 'reference')", options.root);
      }
      root = await realpath(options.root).catch((e: Error) => {
        throw new HgadArgumentError('options.root', 'an existing folder', `${options.root} (${e.message})`);
      });
    } else if (options.root !== undefined) {
      throw new HgadArgumentError('options.root', "nothing (it is for transport 'reference')", options.root);
    }
    if (options.className !== undefined && (typeof options.className !== 'string' || options.className.length === 0)) {
      throw new HgadArgumentError('options.className', 'a class name', options.className);
    }
    const threshold = options.threshold === undefined ? undefined : checkThresholdShape(options.threshold);
    if (options.heatmap !== undefined && typeof options.heatmap !== 'boolean') throw new HgadArgumentError('options.heatmap', 'true or false', options.heatmap);
    const attempts = options.attempts ?? 5;
    checkInteger('options.attempts', attempts, 1, 100);
    const backoffMs = options.backoffMs ?? 1000;
    checkInteger('options.backoffMs', backoffMs, 0, 3_600_000);
    const window = options.window ?? 1000;
    checkInteger('options.window', window, 1, 1_000_000);
    const maxImageBytes = options.maxImageBytes ?? 64 << 20;
    checkInteger('options.maxImageBytes', maxImageBytes, 1, 512 << 20);
    const pollMs = options.pollMs ?? 1000;
    checkInteger('options.pollMs', pollMs, 10, 600_000);
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new HgadArgumentError('options.onProgress', 'a function', options.onProgress);
    const submission = options.submission === undefined ? randomBytes(8).toString('hex') : checkSubmissionId('options.submission', options.submission);
    const pending = pendingOf(images, transport, root);

    const progress: SubmitProgress = { total: pending.length, submitted: 0, collected: 0, failed: 0, resubmitted: 0 };
    const report = (): void => options.onProgress?.({ ...progress });
    const collector = new ResultCollector(pending.length);
    const onCompleted = ({ jobId: id, returnvalue }: { jobId: string; returnvalue: unknown }): void => {
      const j = parseJobId(id);
      if (j && j.submission === submission) collector.accept(j.index, returnvalue as QueueResult);
    };
    const onFailed = ({ jobId: id, failedReason }: { jobId: string; failedReason: string }): void => {
      const j = parseJobId(id);
      if (j && j.submission === submission) collector.accept(j.index, { index: j.index, id: pending[j.index]?.id ?? String(j.index), error: parseFailure(failedReason) });
    };
    this.events.on('completed', onCompleted);
    this.events.on('failed', onFailed);

    const jobOptions = {
      attempts, backoff: { type: 'exponential', delay: backoffMs },
      removeOnComplete: { age: KEEP_UNCOLLECTED_S }, removeOnFail: { age: KEEP_UNCOLLECTED_S },
    };
    // A job and, for images sent as bytes, its image, stored under imageKey before the job is added.
    type Made = { data: ScoringJobData; image: Buffer | null };
    const dataOf = async (p: Pending): Promise<Made | QueueResult> => {
      let image: ScoringJobData['image'];
      let stored: Buffer | null = null;
      const s = p.source;
      const store = (bytes: Uint8Array): number => {
        stored = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        return bytes.byteLength;
      };
      const tooBig = (n: number): QueueResult => ({ index: p.index, id: p.id, error: { code: 'INVALID_ARGUMENT',
        message: `Image ${p.id} is ${n} bytes, over maxImageBytes (${maxImageBytes}); send large images by reference`, parameter: 'maxImageBytes' } });
      if ('ref' in s) {
        image = { ref: s.ref };
      } else if ('file' in s) {
        let bytes: Buffer;
        try {
          bytes = await readFile(s.file);
        } catch (e) {
          return { index: p.index, id: p.id, error: { code: 'IO', message: `Cannot read ${s.file}: ${(e as Error).message}` } };
        }
        if (bytes.length > maxImageBytes) return tooBig(bytes.length);
        image = { stored: store(bytes) };
      } else if ('raw' in s) {
        if (s.raw.length > maxImageBytes) return tooBig(s.raw.length);
        image = { stored: store(s.raw), width: s.width, height: s.height, channels: s.channels };
      } else {
        if (s.bytes.length > maxImageBytes) return tooBig(s.bytes.length);
        image = { stored: store(s.bytes) };
      }
      const className = p.className ?? options.className;
      const data: ScoringJobData = {
        format: JOB_FORMAT, model: this.model, submission, index: p.index, id: p.id, image,
        ...(className !== undefined ? { className } : {}), ...(threshold !== undefined ? { threshold } : {}),
        ...(options.heatmap ? { heatmap: true } : {}),
      };
      return { data, image: stored };
    };
    const keyOf = (index: number): string => imageKey(this.prefix, this.queueName, jobId(submission, index));
    const add = async (items: Pending[]): Promise<void> => {
      const jobs = [];
      const images = this.images.pipeline();
      for (const p of items) {
        const made = await dataOf(p);
        if (!('data' in made)) {
          collector.accept(p.index, made);
          continue;
        }
        jobs.push({ name: JOB_NAME, data: made.data, opts: { ...jobOptions, jobId: jobId(submission, p.index) } });
        if (made.image) images.set(keyOf(p.index), made.image, 'EX', KEEP_UNCOLLECTED_S);
      }
      // The images first: a worker may take a job the moment it is added.
      if (images.length > 0) {
        for (const [e] of (await images.exec()) ?? []) if (e) throw e;
      }
      // Job ids are fixed per image: adding one that exists (a retried add) changes nothing.
      if (jobs.length > 0) await this.queue.addBulk(jobs);
    };

    let next = 0;
    let stopPolling = false;
    let eventTrouble = false;
    const onEventsError = (): void => { eventTrouble = true; };
    this.events.on('error', onEventsError);
    const poll = async (): Promise<void> => {
      // Events are the fast path. When the oldest result has not come for pollMs (or the event
      // connection had trouble), ask Redis about the oldest outstanding jobs: this finds what the
      // events missed (a reconnection, a trimmed event stream) and jobs Redis lost (restarted without
      // persistence), which are submitted again. While results flow, it costs nothing.
      let head = -1;
      while (!stopPolling) {
        await collector.sleep(pollMs);
        if (stopPolling) return;
        if (collector.head !== head && !eventTrouble) {
          head = collector.head;
          continue;
        }
        eventTrouble = false;
        let count = 8;
        while (!stopPolling) {
          const oldest = collector.oldestMissing(Math.min(next, pending.length), count);
          const states = await Promise.all(oldest.map((i) => this.queue.getJobState(jobId(submission, i))));
          let found = false;
          const lost: Pending[] = [];
          for (let k = 0; k < oldest.length; k++) {
            const i = oldest[k]!;
            const state = states[k];
            if (state === 'completed' || state === 'failed') {
              const job = await this.queue.getJob(jobId(submission, i));
              if (!job) continue;
              if (state === 'completed') collector.accept(i, job.returnvalue as QueueResult);
              else collector.accept(i, { index: i, id: pending[i]!.id, error: parseFailure(job.failedReason) });
              found = true;
            } else if (state === 'unknown' && !collector.has(i)) {
              lost.push(pending[i]!);
            }
          }
          if (lost.length > 0) {
            progress.resubmitted += lost.length;
            await add(lost);
          }
          if (!found && lost.length === 0) break;
          count = 64; // events were missed: look further
        }
        head = collector.head;
      }
    };
    const poller = poll().catch((e: Error) => collector.fail(e));

    const collected: number[] = [];
    try {
      while (progress.collected < pending.length) {
        // Keep the window full.
        while (next < pending.length && next - progress.collected < window) {
          const items = pending.slice(next, Math.min(pending.length, next + ADD_CHUNK, progress.collected + window));
          await add(items);
          next += items.length;
          progress.submitted = next;
          report();
        }
        for (const r of await collector.take()) {
          progress.collected += 1;
          if (r.error !== null) progress.failed += 1;
          if (!options.keepJobs) collected.push(r.index);
          yield r;
        }
        report();
        if (collected.length >= ADD_CHUNK || progress.collected === pending.length) {
          const done = collected.splice(0);
          if (done.length > 0) await Promise.all([...done.map((i) => this.queue.remove(jobId(submission, i))), this.images.del(...done.map(keyOf))]);
        }
      }
    } finally {
      stopPolling = true;
      collector.interrupt();
      await poller;
      this.events.off('completed', onCompleted);
      this.events.off('failed', onFailed);
      this.events.off('error', onEventsError);
    }
  }

  /** Closes the connections (jobs already submitted stay in the queue). */
  async close(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.events.close(), this.images.quit()]);
  }
}

/** The inputs as the producer will send them; shapes are checked here, before anything is submitted. */
function pendingOf(images: readonly ImageInput[], transport: 'bytes' | 'reference', root: string | null): Pending[] {
  if (!Array.isArray(images)) throw new HgadArgumentError('images', 'an array of images', images);
  return images.map((input: unknown, index): Pending => {
    const at = `images[${index}]`;
    let file: string | undefined;
    let labels: { id?: string; className?: string } = {};
    let source: Pending['source'] | undefined;
    if (typeof input === 'string') {
      file = input;
    } else if (isByteArray(input)) {
      source = { bytes: input as Uint8Array };
    } else if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
      const o = input as Record<string, unknown>;
      for (const key of Object.keys(o)) {
        if (!['path', 'data', 'width', 'height', 'channels', 'id', 'className'].includes(key)) {
          throw new HgadArgumentError(`${at}.${key}`, 'one of the keys path, data, width, height, channels, id, className', key);
        }
      }
      if (o.id !== undefined && (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 1024)) {
        throw new HgadArgumentError(`${at}.id`, 'a non-empty string of at most 1024 characters', o.id);
      }
      if (o.className !== undefined && (typeof o.className !== 'string' || o.className.length === 0)) {
        throw new HgadArgumentError(`${at}.className`, 'a class name', o.className);
      }
      labels = { ...(o.id !== undefined ? { id: o.id as string } : {}), ...(o.className !== undefined ? { className: o.className as string } : {}) };
      if (typeof o.path === 'string' && o.path.length > 0 && o.data === undefined) {
        file = o.path;
      } else if (isByteArray(o.data) && o.path === undefined) {
        if (o.width === undefined && o.height === undefined && o.channels === undefined) {
          source = { bytes: o.data as Uint8Array };
        } else {
          const { width, height, channels } = o;
          if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || ![1, 2, 3, 4].includes(channels as number)
            || (o.data as Uint8Array).length !== (width as number) * (height as number) * (channels as number)) {
            throw new HgadArgumentError(at, 'raw pixels { data, width, height, channels } with data.length = width * height * channels', input);
          }
          source = { raw: o.data as Uint8Array, width: width as number, height: height as number, channels: channels as 1 | 2 | 3 | 4 };
        }
      }
    }
    if (file !== undefined) {
      if (transport === 'reference') {
        const rel = path.relative(root!, path.resolve(file));
        if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
          throw new HgadArgumentError(at, `a file under the storage root ${root} (transport 'reference')`, file);
        }
        source = { ref: rel.split(path.sep).join('/') };
      } else {
        source = { file };
      }
      return { index, id: labels.id ?? file, ...(labels.className ? { className: labels.className } : {}), source };
    }
    if (source === undefined) {
      throw new HgadArgumentError(at, 'a file path, encoded image bytes (Uint8Array), { path | data, id?, className? } or raw pixels { data, width, height, channels, id?, className? }', input);
    }
    if (transport === 'reference') throw new HgadArgumentError(at, "a file path (transport 'reference' sends paths, not bytes)", input);
    return { index, id: labels.id ?? String(index), ...(labels.className ? { className: labels.className } : {}), source };
  });
}

/**
 * Scores images on the queue's workers: connects, submits, yields results in input order (see
 * ScoringClient.score) and disconnects.
 */
export async function* enqueueScoring(images: readonly ImageInput[], options: ClientOptions & SubmitOptions): AsyncGenerator<QueueResult> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  const own: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) (CLIENT_KEYS.includes(k) ? own : rest)[k] = v;
  checkKeys('options', options, [...CLIENT_KEYS, ...SUBMIT_KEYS]);
  const client = await ScoringClient.connect(own as unknown as ClientOptions);
  try {
    yield* client.score(images, rest as SubmitOptions);
  } finally {
    await client.close();
  }
}

