// A worker's counters (prom-client, on a registry of its own): what its batcher scores and what
// becomes of its jobs. `hgad worker` prints a summary from them when it stops.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { BatcherMetrics } from '../serve/batcher';

export class WorkerMetrics implements BatcherMetrics {
  readonly registry = new Registry();
  readonly batchSize = new Histogram({
    name: 'hgad_batch_size', help: 'Images per scored batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'hgad_batch_duration_seconds', help: 'Time to score one batch (decode, backbone, flow, maps)',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'hgad_queue_depth', help: 'Images of held jobs waiting for a batch', registers: [this.registry] });
  readonly inFlight = new Gauge({ name: 'hgad_batches_in_flight', help: 'Batches being scored now', registers: [this.registry] });
  readonly imagesScored = new Counter({ name: 'hgad_images_scored_total', help: 'Images scored', registers: [this.registry] });
  readonly imageErrors = new Counter({
    name: 'hgad_image_errors_total', help: 'Images that could not be scored, by error code', labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: 'hgad_jobs_total', help: 'Jobs finished by this worker: completed, failed (for good) or retry (failed, will be retried)',
    labelNames: ['outcome'] as const, registers: [this.registry],
  });
}
