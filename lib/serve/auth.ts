// Bearer-token authentication. Tokens are compared as SHA-256 digests with timingSafeEqual: equal
// lengths whatever the token sent, and a comparison whose time says nothing about how much matched.
import { createHash, timingSafeEqual } from 'node:crypto';

import type { FastifyReply, FastifyRequest } from 'fastify';

import { sendError } from './errors';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** An onRequest hook that lets through requests carrying `Authorization: Bearer <token>`, or `open` paths. */
export function bearerAuth(token: string, open: readonly string[]) {
  const expected = digest(token);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (open.includes(request.routeOptions.url ?? '')) return;
    const header = request.headers.authorization;
    const given = typeof header === 'string' && /^Bearer [^\s]+$/i.test(header) ? header.slice(7) : '';
    if (!timingSafeEqual(digest(given), expected) || given === '') {
      reply.header('WWW-Authenticate', 'Bearer realm="hgad"');
      return sendError(reply, 401, 'UNAUTHORIZED', header === undefined ? 'This server requires a bearer token (Authorization: Bearer <token>)' : 'The bearer token is not valid');
    }
  };
}
