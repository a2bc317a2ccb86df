// The scoring service: a Fastify app over one AnomalyDetector. Routes are plugins (routes/), the
// bearer token an onRequest hook (auth.ts), metrics a prom-client registry (metrics.ts), and images of
// concurrent requests are scored in shared batches (batcher.ts).
import multipart from '@fastify/multipart';
import Fastify, { FastifyError, FastifyInstance } from 'fastify';

import { HgadArgumentError, HgadError } from '../errors';
import type { AnomalyDetector } from '../pipeline/detector';
import { scoreImages } from '../score/scorer';
import { bearerAuth } from './auth';
import { Batcher } from './batcher';
import { errorBody, sendError, ServiceError, ServiceErrorCode } from './errors';
import { metricsRoute, ServiceMetrics } from './metrics';
import { resolveServeOptions, ServeOptions } from './options';
import { healthRoutes } from './routes/health';
import { modelRoute } from './routes/model';
import { scoreRoute } from './routes/score';
import type { ServiceState } from './state';

export type { ServeOptions } from './options';

/** Paths open without a token: the orchestrator's probes. */
const OPEN_PATHS = ['/healthz', '/readyz'];

export interface BuildAppOptions extends ServeOptions {
  /** hgad's version for GET /v1/model. */
  version?: string;
  /** Fastify's request log (pino, JSON on stdout). Default false. */
  log?: boolean;
}

const STATUS_CODES: Record<number, ServiceErrorCode> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHORIZED', 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED', 406: 'NOT_ACCEPTABLE',
  413: 'BODY_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 503: 'SHUTTING_DOWN', 504: 'TIMEOUT',
};

/** The app, not listening yet, and the state its routes share. */
export async function buildApp(detector: AnomalyDetector, options: BuildAppOptions = {}): Promise<{ app: FastifyInstance; state: ServiceState }> {
  const { version = 'unknown', log = false, ...serve } = options ?? {};
  const o = resolveServeOptions(serve);
  if (!detector.calibrated) {
    throw new HgadArgumentError('detector', 'a calibrated detector (served scores must not depend on the other images of a batch)',
      'a detector without calibration');
  }
  const metrics = new ServiceMetrics();
  const batcher = new Batcher(detector, { ...o }, metrics);
  const state: ServiceState = { detector, batcher, metrics, options: o, version, ready: false, closing: false };
  const app = Fastify({
    logger: log ? { level: 'info' } : false,
    bodyLimit: o.bodyLimit,
    requestTimeout: o.timeoutMs,
    return503OnClosing: true,
    // unknown query parameters are errors, not silently dropped
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(/^image\/[a-z0-9.+-]+$/i, { parseAs: 'buffer', bodyLimit: o.bodyLimit }, (_request, body, done) => done(null, body));
  await app.register(multipart, {
    limits: { fileSize: o.bodyLimit, files: o.maxImages, fields: 16, fieldSize: 8192, parts: o.maxImages + 16, headerPairs: 100 },
  });

  const open = new WeakSet<object>();
  const done = (request: object): void => {
    if (open.delete(request)) metrics.requestsInFlight.dec();
  };
  app.addHook('onRequest', async (request) => {
    open.add(request);
    metrics.requestsInFlight.inc();
  });
  app.addHook('onRequestAbort', async (request) => done(request));
  app.addHook('onResponse', async (request, reply) => {
    done(request);
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
  // While stopping, every answer closes its connection: a keep-alive connection left idle after its
  // last answer would otherwise hold close() until keepAliveTimeout.
  app.addHook('onSend', async (_request, reply) => {
    if (state.closing) reply.header('Connection', 'close');
  });
  if (o.token !== null) app.addHook('onRequest', bearerAuth(o.token, OPEN_PATHS));

  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`));
  app.setErrorHandler((error: FastifyError | ServiceError | HgadError, request, reply) => {
    if (error instanceof ServiceError) {
      if (error.retryAfter !== undefined) reply.header('Retry-After', String(error.retryAfter));
      if (error.code === 'SHUTTING_DOWN') reply.header('Connection', 'close');
      return reply.code(error.statusCode).send(errorBody(error.code, error.message));
    }
    if (error instanceof HgadError && error.code === 'INVALID_ARGUMENT') return reply.code(400).send(errorBody('INVALID_ARGUMENT', error.message));
    const status = (error as FastifyError).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(STATUS_CODES[status] ?? 'INVALID_ARGUMENT', error.message));
    }
    request.log.error(error);
    return reply.code(500).send(errorBody('INTERNAL', error instanceof HgadError ? error.message : 'Internal error while scoring'));
  });

  await app.register(healthRoutes, { state });
  await app.register(modelRoute, { state });
  await app.register(scoreRoute, { state });
  await app.register(metricsRoute, { metrics });
  return { app, state };
}

export interface RunningServer {
  app: FastifyInstance;
  /** http://host:port */
  url: string;
  port: number;
  /** Stops accepting, lets every request in flight finish (their images are scored), then resolves. */
  close(): Promise<void>;
}

/** Opens the backbone and runs one image through, so the first request is not the slow one. */
async function warmUp(detector: AnomalyDetector): Promise<void> {
  const S = detector.inputSize;
  const blank = { data: new Uint8Array(S * S * 3).fill(128), width: S, height: S, channels: 3 as const };
  for await (const r of scoreImages(detector, [blank], { onError: 'throw' })) void r;
}

/** Builds the app, warms the detector up and listens (127.0.0.1:8080 unless told otherwise). */
export async function startServer(detector: AnomalyDetector, options: BuildAppOptions = {}): Promise<RunningServer> {
  const { app, state } = await buildApp(detector, options);
  await warmUp(detector);
  await app.listen({ host: state.options.host, port: state.options.port });
  state.ready = true;
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : state.options.port;
  const host = state.options.host.includes(':') ? `[${state.options.host}]` : state.options.host;
  let closing: Promise<void> | null = null;
  return {
    app, port, url: `http://${host}:${port}`,
    close: () => {
      closing ??= (async () => {
        state.closing = true;
        await app.close();
        await state.batcher.drained();
      })();
      return closing;
    },
  };
}
