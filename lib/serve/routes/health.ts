// GET /healthz: the process answers. GET /readyz: it can score now (warmed up, not shutting down);
// load balancers send traffic only while it says 200.
import type { FastifyPluginAsync } from 'fastify';

import type { ServiceState } from '../state';

export const healthRoutes: FastifyPluginAsync<{ state: ServiceState }> = async (app, { state }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (state.closing) return reply.code(503).send({ status: 'shutting down' });
    if (!state.ready) return reply.code(503).send({ status: 'starting' });
    return { status: 'ready', queue: state.batcher.waiting };
  });
};
