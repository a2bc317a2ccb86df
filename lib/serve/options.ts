// The service's settings, every one validated up front with an error naming it.
import { HgadArgumentError } from '../errors';
import { checkInteger } from '../validate';

export interface ServeOptions {
  /** Interface to listen on. Default '127.0.0.1' (this machine only); '0.0.0.0' to expose it. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Bearer token every /v1 and /metrics request must carry; none (no authentication) by default. */
  token?: string | null;
  /** Merge concurrent requests into batches (default true); false scores each request as it comes. */
  batching?: boolean;
  /** Images per batch. Default 8. */
  batchSize?: number;
  /** How long a batch that is not full waits for more images, in ms. Default 5. */
  maxWaitMs?: number;
  /** Batches scored at once (their decode, backbone and flow stages overlap). Default 2. */
  pipelineDepth?: number;
  /** Images waiting to be scored before requests are refused with 503 + Retry-After. Default 256. */
  maxQueue?: number;
  /** Largest request body (an image, or the whole multipart body), in bytes. Default 16 MiB. */
  bodyLimit?: number;
  /** Images per multipart request. Default 64. */
  maxImages?: number;
  /** Largest image, in pixels after decoding. Default 40 million. */
  maxPixels?: number;
  /** Time a request may take from arrival to answer, in ms (504 past it). Default 30000. */
  timeoutMs?: number;
}

export type ResolvedServeOptions = Required<ServeOptions>;

export const SERVE_DEFAULTS: ResolvedServeOptions = {
  host: '127.0.0.1', port: 8080, token: null, batching: true, batchSize: 8, maxWaitMs: 5, pipelineDepth: 2,
  maxQueue: 256, bodyLimit: 16 * 1024 * 1024, maxImages: 64, maxPixels: 40_000_000, timeoutMs: 30_000,
};

const KEYS = Object.keys(SERVE_DEFAULTS);

export function resolveServeOptions(options: ServeOptions): ResolvedServeOptions {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!KEYS.includes(key)) throw new HgadArgumentError(`options.${key}`, `one of the options ${KEYS.join(', ')}`, key);
  }
  const o = { ...SERVE_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as ResolvedServeOptions;
  if (typeof o.host !== 'string' || o.host.length === 0) throw new HgadArgumentError('options.host', 'a host name or IP address', o.host);
  checkInteger('options.port', o.port, 0, 65535);
  if (o.token !== null && (typeof o.token !== 'string' || o.token.length < 16 || /\s/.test(o.token))) {
    throw new HgadArgumentError('options.token', 'null or a string of at least 16 characters without white space', o.token === null ? null : '(hidden)');
  }
  if (typeof o.batching !== 'boolean') throw new HgadArgumentError('options.batching', 'a boolean', o.batching);
  checkInteger('options.batchSize', o.batchSize, 1, 256);
  checkInteger('options.maxWaitMs', o.maxWaitMs, 0, 10_000);
  checkInteger('options.pipelineDepth', o.pipelineDepth, 1, 16);
  checkInteger('options.maxQueue', o.maxQueue, 1, 1 << 20);
  checkInteger('options.bodyLimit', o.bodyLimit, 1024, 1 << 30);
  checkInteger('options.maxImages', o.maxImages, 1, 4096);
  checkInteger('options.maxPixels', o.maxPixels, 1, 1 << 30);
  checkInteger('options.timeoutMs', o.timeoutMs, 100, 3_600_000);
  return o;
}
