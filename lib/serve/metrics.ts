// Prometheus metrics (prom-client) on a registry of the server's own, so two servers in one process
// (tests) do not share counters, plus the /metrics route that exposes them.
import type { FastifyPluginAsync } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'hgad_http_requests_total', help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const, registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'hgad_http_request_duration_seconds', help: 'Time from a request\'s arrival to its answer',
    labelNames: ['method', 'route'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'hgad_batch_size', help: 'Images per scored batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'hgad_batch_duration_seconds', help: 'Time to score one batch (decode, backbone, flow, maps)',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly requestsInFlight = new Gauge({
    name: 'hgad_http_requests_in_flight', help: 'Requests received and not yet answered', registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'hgad_queue_depth', help: 'Images waiting to be scored', registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'hgad_batches_in_flight', help: 'Batches being scored now', registers: [this.registry],
  });
  readonly imagesScored = new Counter({
    name: 'hgad_images_scored_total', help: 'Images scored', registers: [this.registry],
  });
  readonly imageErrors = new Counter({
    name: 'hgad_image_errors_total', help: 'Images that could not be scored, by error code',
    labelNames: ['code'] as const, registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'hgad_requests_rejected_total', help: 'Requests refused before scoring, by reason',
    labelNames: ['reason'] as const, registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'hgad_' });
  }
}

export const metricsRoute: FastifyPluginAsync<{ metrics: ServiceMetrics }> = async (app, { metrics }) => {
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
