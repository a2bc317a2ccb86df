// POST /v1/score: one image as the body (Content-Type image/*) or several as multipart/form-data file
// parts. Options (query string, or multipart fields): class, threshold (0.8 or carpet=0.8,pill=1.2),
// heatmap (true: each result carries its anomaly map as a base64 PNG), id (single image). Images only
// ever come from the request's bytes: nothing a request says is used as a file path.
import type { Multipart } from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';

import { presentResult } from '../../score/present';
import type { ImageInput, ImageResult } from '../../score/scorer';
import { parseThreshold } from '../../score/threshold';
import { HgadArgumentError, HgadError } from '../../errors';
import { QueueFullError } from '../batcher';
import { ServiceError } from '../errors';
import type { ServiceState } from '../state';

interface ScoreQuery {
  class?: string;
  threshold?: string;
  heatmap?: boolean;
  id?: string;
}

const OPTION_FIELDS = ['class', 'threshold', 'heatmap', 'id'] as const;

const queryschema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    class: { type: 'string', minLength: 1, maxLength: 256 },
    threshold: { type: 'string', minLength: 1, maxLength: 4096 },
    heatmap: { type: 'boolean' },
    id: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

const imageError = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' }, parameter: { type: 'string' } },
  required: ['code', 'message'],
} as const;

const resultSchema = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    id: { type: 'string' },
    error: { anyOf: [imageError, { type: 'null' }] },
    imageScore: { type: 'number' },
    isAnomaly: { type: ['boolean', 'null'] },
    threshold: { type: ['number', 'null'] },
    thresholdSource: { type: ['string', 'null'] },
    className: { type: 'string' },
    classConfidence: { type: 'number' },
    classSource: { type: 'string' },
    mapWidth: { type: 'integer' },
    mapHeight: { type: 'integer' },
    heatmap: { type: 'string' },
  },
  required: ['index', 'id', 'error'],
} as const;

const responseSchema = {
  type: 'object',
  properties: { results: { type: 'array', items: resultSchema } },
  required: ['results'],
} as const;

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } },
} as const;

interface Parsed {
  images: { data: Buffer; id?: string }[];
  options: ScoreQuery;
}

function flag(name: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new HgadArgumentError(name, 'true or false', v);
}

async function readMultipart(request: FastifyRequest, query: ScoreQuery, maxImages: number): Promise<Parsed> {
  const images: Parsed['images'] = [];
  const options: ScoreQuery = { ...query };
  for await (const part of request.parts() as AsyncIterableIterator<Multipart>) {
    if (part.type === 'file') {
      if (images.length >= maxImages) throw new ServiceError(413, 'BODY_TOO_LARGE', `At most ${maxImages} images per request`);
      const data = await part.toBuffer();
      const name = part.filename || `${part.fieldname}[${images.length}]`;
      images.push({ data, id: name.slice(0, 1024) });
      continue;
    }
    const value = String(part.value);
    if (!(OPTION_FIELDS as readonly string[]).includes(part.fieldname) || part.fieldname === 'id') {
      throw new HgadArgumentError(part.fieldname, `an image file part or one of the fields class, threshold, heatmap`, value);
    }
    if (part.fieldname === 'heatmap') options.heatmap = flag('heatmap', value);
    else if (part.fieldname === 'class') options.class = value;
    else options.threshold = value;
  }
  if (images.length === 0) throw new ServiceError(400, 'INVALID_ARGUMENT', 'The multipart body holds no file part: send one part per image');
  return { images, options };
}

export const scoreRoute: FastifyPluginAsync<{ state: ServiceState }> = async (app, { state }) => {
  app.post<{ Querystring: ScoreQuery }>('/v1/score', {
    schema: { querystring: queryschema, response: { 200: responseSchema, 422: responseSchema, '4xx': errorSchema, '5xx': errorSchema } },
  }, async (request, reply) => {
    if (state.closing) throw new ServiceError(503, 'SHUTTING_DOWN', 'The server is shutting down');
    if (!state.ready) throw new ServiceError(503, 'SHUTTING_DOWN', 'The server is still starting', 1);
    let parsed: Parsed;
    if (request.isMultipart()) {
      try {
        parsed = await readMultipart(request, request.query, state.options.maxImages);
      } catch (e) {
        // the multipart parser's own errors (a truncated body, a bad boundary) carry no status
        if (e instanceof ServiceError || e instanceof HgadError || typeof (e as { statusCode?: unknown }).statusCode === 'number') throw e;
        throw new ServiceError(400, 'INVALID_ARGUMENT', `Malformed multipart body: ${(e as Error).message}`);
      }
    } else {
      const body = request.body;
      if (!Buffer.isBuffer(body) || body.length === 0) throw new ServiceError(400, 'INVALID_ARGUMENT', 'The body is empty: send the bytes of an image');
      parsed = { images: [{ data: body, ...(request.query.id !== undefined ? { id: request.query.id } : {}) }], options: request.query };
    }
    const { options } = parsed;
    if (options.class !== undefined) state.detector.classIndex('class', options.class);
    const override = options.threshold === undefined ? null : parseThreshold(state.detector, 'threshold', options.threshold);
    const inputs: ImageInput[] = parsed.images.map((img, i) => ({
      data: img.data, id: img.id ?? String(i), ...(options.class !== undefined ? { className: options.class } : {}),
    }));
    let submission;
    try {
      submission = state.batcher.submit(inputs);
    } catch (e) {
      if (e instanceof QueueFullError) {
        state.metrics.rejected.inc({ reason: 'queue_full' });
        throw new ServiceError(503, 'QUEUE_FULL', `The queue is full (${e.waiting} images waiting); retry later`, state.batcher.retryAfter());
      }
      throw e;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      const left = state.options.timeoutMs - reply.elapsedTime;
      timer = setTimeout(() => reject(new ServiceError(504, 'TIMEOUT', `The request took longer than ${state.options.timeoutMs} ms`)), Math.max(0, left));
    });
    let results: ImageResult[];
    try {
      results = await Promise.race([Promise.all(submission.results), timeout]);
    } catch (e) {
      submission.cancel();
      if (e instanceof ServiceError) state.metrics.rejected.inc({ reason: 'timeout' });
      throw e;
    } finally {
      clearTimeout(timer);
    }
    // The index of each result is its position in this request, whatever batch it was scored in.
    const body = await Promise.all(results.map((r, index) => presentResult(state.detector, { ...r, index }, override, options.heatmap === true)));
    reply.code(results.every((r) => r.error !== null) ? 422 : 200);
    return { results: body };
  });
};
