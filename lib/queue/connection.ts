// Redis connections for BullMQ (through ioredis). Every command waits for the connection instead of
// failing (maxRetriesPerRequest null, the offline queue on), and a dropped connection is retried
// every 0.2 to 2 s for ever: a Redis restart pauses workers and producers, it does not stop them.
// Only the first connection has a deadline, so a wrong URL is an error, not a hang.
import type { ConnectionOptions } from 'bullmq';

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

export function connectionOptions(url: URL, name: string): ConnectionOptions {
  return {
    url: url.href,
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    connectionName: name,
    retryStrategy: (times: number) => Math.min(2000, 100 * 2 ** Math.min(times, 5)),
  };
}

interface Connectable {
  waitUntilReady(): Promise<unknown>;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

/** Resolves once Redis answered; an HgadError (QUEUE) naming the last connection error after timeoutMs. */
export async function connected(what: Connectable, url: URL, timeoutMs: number, parameter: string): Promise<void> {
  let last = '';
  what.on('error', (e) => { last = e.message; });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HgadError('QUEUE',
      `Cannot reach Redis at ${redactUrl(url)} within ${timeoutMs / 1000} s${last ? `: ${last}` : ''}`, parameter)), timeoutMs);
  });
  try {
    await Promise.race([what.waitUntilReady(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
