// Dynamic batching: images of concurrent requests wait in one queue and are scored together, up to
// the batch size or until the oldest has waited maxWaitMs, with a few batches in flight at once so
// that decoding, the backbone and the flow of successive batches overlap as in one long scoreImages
// call. The queue is bounded: past it, submit refuses (the route answers 503 + Retry-After).
import type { AnomalyDetector } from '../pipeline/detector';
import type { ImageInput, ImageResult } from '../score/scorer';
import { scoreImages } from '../score/scorer';
import type { ServiceMetrics } from './metrics';

/** What the batcher reports to (the service's metrics, or a queue worker's). */
export type BatcherMetrics = Pick<ServiceMetrics, 'queueDepth' | 'inFlight' | 'batchSize' | 'batchSeconds' | 'imagesScored' | 'imageErrors'>;

export interface BatcherOptions {
  /** false: every submit() is scored on its own as soon as a slot is free, never merged or held back. */
  batching: boolean;
  batchSize: number;
  maxWaitMs: number;
  pipelineDepth: number;
  maxQueue: number;
  maxPixels: number;
}

interface Job {
  input: ImageInput;
  resolve(result: ImageResult): void;
  reject(error: Error): void;
  /** Set when the request gave up (timeout): a job still queued is then dropped. */
  cancelled: boolean;
}

export class QueueFullError extends Error {
  constructor(readonly waiting: number) {
    super(`${waiting} images are already waiting to be scored`);
    this.name = 'QueueFullError';
  }
}

export interface Submission {
  results: Promise<ImageResult>[];
  /** Drops the images not yet started (their promises never settle). */
  cancel(): void;
}

export class Batcher {
  private readonly queue: Job[][] = [];
  private queued = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | null = null;
  private idle: (() => void)[] = [];
  /** Mean seconds per scored image, for Retry-After. */
  private secondsPerImage = 0.05;

  constructor(private readonly detector: AnomalyDetector, private readonly o: BatcherOptions, private readonly metrics: BatcherMetrics) {}

  get waiting(): number {
    return this.queued;
  }

  /** Seconds until the queue has room again, at the recent rate (at least 1). */
  retryAfter(): number {
    return Math.max(1, Math.ceil((this.queued * this.secondsPerImage) / Math.max(1, this.o.pipelineDepth)));
  }

  /** Queues one request's images; throws QueueFullError when they do not fit. */
  submit(inputs: ImageInput[]): Submission {
    if (this.queued + inputs.length > this.o.maxQueue) throw new QueueFullError(this.queued);
    const jobs: Job[] = [];
    const results = inputs.map((input) => new Promise<ImageResult>((resolve, reject) => {
      jobs.push({ input, resolve, reject, cancelled: false });
    }));
    this.queue.push(jobs);
    this.queued += jobs.length;
    this.metrics.queueDepth.set(this.queued);
    this.schedule();
    return {
      results,
      cancel: () => {
        for (const j of jobs) j.cancelled = true;
      },
    };
  }

  /** Resolves once nothing is queued or being scored. */
  drained(): Promise<void> {
    if (this.queued === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    while (this.inFlight < this.o.pipelineDepth && this.queued > 0) {
      // Batching: a full batch goes now; a partial one goes when its wait is over, at once when a batch
      // just finished (its images waited for that), or, with nothing being scored, as soon as as many
      // images wait as the last batch answered: clients that send their next image on each answer (a
      // camera loop) have then all come back, and waiting longer only leaves the machine idle (1 client:
      // 5 ms more per image). With another batch in flight the wait costs nothing and gathers more images.
      const back = this.inFlight === 0 && this.queued >= this.answered;
      if (this.o.batching && this.queued < this.o.batchSize && !this.due && !back) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = null;
            this.due = true;
            this.schedule();
          }, this.o.maxWaitMs);
        }
        return;
      }
      this.due = false;
      this.answered = Infinity;
      this.start(this.take());
    }
  }

  private due = false;
  /** Images of the last batch that finished, until the next batch starts (then none: Infinity). */
  private answered = Infinity;

  private take(): Job[] {
    const out: Job[] = [];
    if (!this.o.batching) {
      out.push(...this.queue.shift()!);
    } else {
      // Spread what waits over the free pipeline slots (8 images, 2 slots: two batches of 4), so that
      // one batch's decoding and backbone overlap the other's flow even when few requests are open.
      const free = this.o.pipelineDepth - this.inFlight;
      const size = Math.min(this.o.batchSize, Math.ceil(this.queued / free));
      while (out.length < size && this.queue.length > 0) {
        const first = this.queue[0]!;
        const n = Math.min(first.length, size - out.length);
        out.push(...first.splice(0, n));
        if (first.length === 0) this.queue.shift();
      }
    }
    this.queued -= out.length;
    this.metrics.queueDepth.set(this.queued);
    if (this.timer && this.queued === 0) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    return out.filter((j) => !j.cancelled);
  }

  private start(jobs: Job[]): void {
    if (jobs.length === 0) return;
    this.inFlight += 1;
    this.metrics.inFlight.set(this.inFlight);
    this.metrics.batchSize.observe(jobs.length);
    const t0 = process.hrtime.bigint();
    void this.run(jobs).finally(() => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.metrics.batchSeconds.observe(seconds);
      this.secondsPerImage = 0.8 * this.secondsPerImage + 0.2 * (seconds / jobs.length);
      this.inFlight -= 1;
      this.metrics.inFlight.set(this.inFlight);
      this.due = this.queued > 0; // what queued up while the pipeline was full has waited long enough
      this.answered = jobs.length;
      this.schedule();
      if (this.queued === 0 && this.inFlight === 0) for (const f of this.idle.splice(0)) f();
    });
  }

  private async run(jobs: Job[]): Promise<void> {
    let i = 0;
    try {
      const options = { batchSize: jobs.length, maxPixels: this.o.maxPixels, onError: 'result' as const };
      for await (const r of scoreImages(this.detector, jobs.map((j) => j.input), options)) {
        if (r.error === null) this.metrics.imagesScored.inc();
        else this.metrics.imageErrors.inc({ code: r.error.code });
        jobs[i++]!.resolve(r);
      }
    } catch (e) {
      // Not an image's fault (those come back as results): the engine failed; every image left fails.
      const error = e instanceof Error ? e : new Error(String(e));
      for (; i < jobs.length; i++) {
        this.metrics.imageErrors.inc({ code: 'NATIVE' });
        jobs[i]!.reject(error);
      }
    }
  }
}
