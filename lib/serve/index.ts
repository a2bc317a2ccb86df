// The service's public entry points, loaded on first use: Fastify, prom-client and the multipart
// parser stay out of `require('hgad')` for programs that never serve.
import type { AnomalyDetector } from '../pipeline/detector';
import type { BuildAppOptions, RunningServer } from './app';

export type { BuildAppOptions, RunningServer, ServeOptions } from './app';
export type { ServiceErrorCode } from './errors';

/** Builds the app, warms the detector up and listens (127.0.0.1:8080 unless told otherwise). */
export async function startServer(detector: AnomalyDetector, options: BuildAppOptions = {}): Promise<RunningServer> {
  return (await import('./app')).startServer(detector, options);
}

/** The Fastify app and the state its routes share, not listening yet. */
export async function buildApp(detector: AnomalyDetector, options: BuildAppOptions = {}): ReturnType<typeof import('./app').buildApp> {
  return (await import('./app')).buildApp(detector, options);
}
