// Redis connections for BullMQ (through ioredis). Every command waits for the connection instead of
// failing (maxRetriesPerRequest null, the offline queue on), and a dropped connection is retried
// every 0.2 to 2 s for ever: a Redis restart pauses workers and producers, it does not stop them.
// Only the first connection has a deadline (reachable()), so a wrong URL is an error, not a hang.
import type { ConnectionOptions } from 'bullmq';
import Redis from 'ioredis';

import { HgadArgumentError, HgadError } from '../errors';

export function checkRedisUrl(parameter: string, v: unknown): URL {
  let url: URL | null = null;
  try {
    url = typeof v === 'string' ? new URL(v) : null;
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw new HgadArgumentError(parameter, 'a Redis URL redis://[user:password@]host[:port][/db] (rediss:// for TLS)', v);
  }
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,2}$/.test(url.pathname)) {
    throw new HgadArgumentError(parameter, 'a database number after the host (redis://host:6379/0)', v);
  }
  return url;
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: URL): string {
  const u = new URL(url.href);
  if (u.password) u.password = '***';
  return u.href;
}

// Commands wait for the connection; a dropped one is retried every 0.2 to 2 s for ever.
const PATIENT = {
  maxRetriesPerRequest: null,
  enableOfflineQueue: true,
  retryStrategy: (times: number): number => Math.min(2000, 100 * 2 ** Math.min(times, 5)),
};

export function connectionOptions(url: URL, name: string): ConnectionOptions {
  return { url: url.href, connectionName: name, ...PATIENT };
}

/**
 * A plain ioredis connection for the images stored beside the jobs (binary values: BullMQ's own
 * client interface reads strings only), as patient as BullMQ's; it connects at its first command.
 */
export function imageConnection(url: URL, name: string): Redis {
  const client = new Redis(url.href, { connectionName: name, lazyConnect: true, ...PATIENT });
  // Without a listener an 'error' (Redis gone) would be thrown; commands wait for the reconnection.
  client.on('error', () => {});
  return client;
}

/**
 * Resolves once Redis answers PING; an HgadError (QUEUE) naming the last connection error after
 * timeoutMs. Probed with a client of its own that never retries by itself: BullMQ's objects retry for
 * ever and cannot all be closed before they first connect, so they are made only once this passed.
 */
export async function reachable(url: URL, timeoutMs: number, parameter: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let attempt = 0; ; attempt++) {
    const client = new Redis(url.href, {
      lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null,
      connectTimeout: Math.max(100, Math.min(5000, deadline - Date.now())),
    });
    client.on('error', (e: Error) => { last = e.message; });
    last = '';
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (e) {
      if (!last && (e as Error).message) last = (e as Error).message;
      // A refused password will not be accepted later.
      if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(last)) {
        throw new HgadError('QUEUE', `Redis at ${redactUrl(url)} refused the credentials: ${last}`, parameter);
      }
    } finally {
      client.disconnect();
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new HgadError('QUEUE', `Cannot reach Redis at ${redactUrl(url)} within ${timeoutMs / 1000} s${last ? `: ${last}` : ''}`, parameter);
    }
    await new Promise((r) => setTimeout(r, Math.min(left, 2000, 100 * 2 ** attempt)));
  }
}
