// POST /v1/score: one image as the body (Content-Type image/*) or several as multipart/form-data file
// parts. Options (query string, or multipart fields): class, threshold (0.8 or carpet=0.8,pill=1.2),
// heatmap (png: each result carries its coloured anomaly map as a base64 PNG; float32: the map's values;
// see heatmaps.ts), id (single image). With `Accept: image/png` and one image, the answer is that
// image's heatmap PNG itself, its scores in X-Hgad-* headers. Images only ever come from the request's
// bytes: nothing a request says is used as a file path.
import type { Multipart } from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';

import { applyThreshold, presentResult } from '../../score/present';
import type { ImageInput, ImageResult } from '../../score/scorer';
import { parseThreshold, ThresholdOverride } from '../../score/threshold';
import { HgadArgumentError, HgadError } from '../../errors';
import { wantsPng } from '../accept';
import { QueueFullError } from '../batcher';
import { errorBody, ServiceError } from '../errors';
import { HeatmapFormat, heatmapFields, parseHeatmap, pngOf, rangeOf, resultHeaders } from '../heatmaps';
import { inOwnTurn } from '../turns';
import type { ServiceState } from '../state';

interface ScoreQuery {
  class?: string;
  threshold?: string;
  heatmap?: string;
  id?: string;
}

const OPTION_FIELDS = ['class', 'threshold', 'heatmap', 'id'] as const;

const queryschema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    class: { type: 'string', minLength: 1, maxLength: 256 },
    threshold: { type: 'string', minLength: 1, maxLength: 4096 },
    heatmap: { type: 'string', minLength: 1, maxLength: 32 },
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
    maps: { type: 'string' },
    mapWidth: { type: 'integer' },
    mapHeight: { type: 'integer' },
    heatmap: { type: 'string' },
    heatmapRange: { type: 'object', properties: { min: { type: 'number' }, max: { type: 'number' } }, required: ['min', 'max'] },
    map: { type: 'string' },
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
    if (part.fieldname === 'heatmap') options.heatmap = value;
    else if (part.fieldname === 'class') options.class = value;
    else options.threshold = value;
  }
  if (images.length === 0) throw new ServiceError(400, 'INVALID_ARGUMENT', 'The multipart body holds no file part: send one part per image');
  return { images, options };
}

/** What a result says in the JSON answer: the map only in the formats asked for; the request's threshold applied. */
async function present(state: ServiceState, r: ImageResult, override: ThresholdOverride | null, heatmap: readonly HeatmapFormat[]): Promise<object> {
  // The fields every caller outside the process gets (shared with the queue's jobs), then the map formats.
  const base = await presentResult(state.detector, r, override, false);
  if (r.error !== null || heatmap.length === 0) return base;
  return { ...base, ...(await heatmapFields(applyThreshold(state.detector, r, override), heatmap)) };
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
    const heatmap = parseHeatmap(options.heatmap);
    const png = wantsPng(request.headers.accept);
    if (png && parsed.images.length !== 1) {
      throw new ServiceError(406, 'NOT_ACCEPTABLE', `An image/png answer is one image's heatmap but the request holds ${parsed.images.length} images: ` +
        'send one, or accept application/json (heatmap=png gives each image\'s heatmap as base64 PNG)');
    }
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
    if (png) {
      const r = { ...results[0]!, index: 0 };
      if (r.error !== null) {
        // a string, so that the 422 JSON schema (results) does not apply
        const failed = JSON.stringify(errorBody('IMAGE_ERROR', `The image could not be scored (${r.error.code}): ${r.error.message}`));
        return reply.code(422).type('application/json; charset=utf-8').send(failed);
      }
      const s = applyThreshold(state.detector, r, override);
      const range = rangeOf(s);
      const bytes = await pngOf(s, range);
      return reply.code(200).headers(resultHeaders(s, range)).type('image/png').send(bytes);
    }
    const body = await Promise.all(results.map((r, index) => present(state, { ...r, index }, override, heatmap)));
    reply.code(results.every((r) => r.error !== null) ? 422 : 200);
    if (heatmap.length === 0) return { results: body };
    // Answers with maps run to hundreds of KB of base64: V8's native JSON.stringify and one UTF-8
    // encoding into a Buffer, in a turn of their own, instead of the schema serializer's character
    // loop, a length scan and the socket's encoding of one long string.
    const bytes = await inOwnTurn(() => Buffer.from(JSON.stringify({ results: body })));
    return reply.type('application/json; charset=utf-8').send(bytes);
  });
};
