// Every non-2xx answer of the service has one shape: { error: { code, message } }, with stable codes.
import type { FastifyReply } from 'fastify';

export type ServiceErrorCode =
  | 'INVALID_ARGUMENT' // a bad option or request shape (400)
  | 'UNAUTHORIZED' // missing or wrong bearer token (401)
  | 'NOT_FOUND' // no such route (404)
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_ACCEPTABLE' // Accept: image/png for a request of several images (406)
  | 'BODY_TOO_LARGE' // over the body, image-size or image-count limits (413)
  | 'UNSUPPORTED_MEDIA_TYPE' // a body that is neither image/* nor multipart/form-data (415)
  | 'IMAGE_ERROR' // every image of the request failed (422; the results say why)
  | 'QUEUE_FULL' // too many images waiting (503 + Retry-After)
  | 'SHUTTING_DOWN' // the server is stopping (503)
  | 'TIMEOUT' // the request took longer than its limit (504)
  | 'INTERNAL'; // a bug or an engine failure (500)

export interface ErrorBody {
  error: { code: ServiceErrorCode; message: string };
}

export function errorBody(code: ServiceErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

export function sendError(reply: FastifyReply, status: number, code: ServiceErrorCode, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(errorBody(code, message));
}

/** An error a route throws to answer with a status and a code. */
export class ServiceError extends Error {
  constructor(readonly statusCode: number, readonly code: ServiceErrorCode, message: string, readonly retryAfter?: number) {
    super(message);
    this.name = 'ServiceError';
  }
}
