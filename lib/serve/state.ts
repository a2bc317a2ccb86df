// What the routes share: the detector, the batcher, the metrics, the limits and the server's phase.
import type { AnomalyDetector } from '../pipeline/detector';
import type { Batcher } from './batcher';
import type { ServiceMetrics } from './metrics';
import type { ResolvedServeOptions } from './options';

export interface ServiceState {
  detector: AnomalyDetector;
  batcher: Batcher;
  metrics: ServiceMetrics;
  options: ResolvedServeOptions;
  /** hgad's version, reported by GET /v1/model. */
  version: string;
  /** Warm-up done: the backbone is open and one image went through. */
  ready: boolean;
  /** SIGTERM or close() seen: new scoring requests are refused, in-flight ones finish. */
  closing: boolean;
}
