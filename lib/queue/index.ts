// Scale-out scoring on a BullMQ queue: the public entry points, loaded on first use so that BullMQ and
// ioredis stay out of `require('hgad')` for programs that never use a queue.
import type { ClientOptions, QueueResult, ScoringClient, SubmitOptions } from './client';
import type { ImageInput } from '../score/scorer';
import type { RunningWorker, WorkerOptions } from './worker';

export type { ClientOptions, QueueResult, SubmitOptions, SubmitProgress } from './client';
export type { ScoringClient } from './client';
export type { RunningWorker, WorkerOptions, WorkerStats } from './worker';
export type { ResultsFormat } from './results-file';
export { ResultsFile } from './results-file';
export { modelFingerprint, defaultQueueName } from './fingerprint';

/** Loads a detector, connects to Redis and takes scoring jobs until close(). */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  return (await import('./worker')).startWorker(options);
}

/** A producer connected to Redis: score(images) submits them and yields their results in input order. */
export async function connectScoringClient(options: ClientOptions): Promise<ScoringClient> {
  return (await import('./client')).ScoringClient.connect(options);
}

/** Submits images to the queue's workers and yields their results in input order, then disconnects. */
export async function* enqueueScoring(images: readonly ImageInput[], options: ClientOptions & SubmitOptions): AsyncGenerator<QueueResult> {
  yield* (await import('./client')).enqueueScoring(images, options);
}
