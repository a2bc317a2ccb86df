/**
 * Downloading a backbone once: streamed to a temporary file beside the destination, sha256 checked while
 * it streams, fsync'ed and renamed into place, so the cache never holds a partial or altered file.
 * `fetchBytes` is the in-memory variant for things that are processed rather than kept (npm tarballs).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

import { HgadError } from '../errors';

export interface DownloadOptions {
  sha256: string;
  /** Called as bytes arrive; total is 0 when the server sends no length. */
  onProgress?: (received: number, total: number) => void;
  /** Milliseconds without any data before giving up (default 30 s). */
  idleTimeoutMs?: number;
  maxRedirects?: number;
}

/** ca: PEM certificates that replace Node's trusted ones for https (npm's `cafile`). */
function request(url: URL, timeoutMs: number, headers: Record<string, string>, ca?: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.protocol === 'https:' ? https.get : url.protocol === 'http:' ? http.get : null;
    if (!get) {
      reject(new HgadError('IO', `Cannot download ${url.href}: only http and https URLs are supported`, 'url'));
      return;
    }
    const req = get(url, { headers: { 'user-agent': 'hgad', ...headers }, ...(ca !== undefined && url.protocol === 'https:' ? { ca } : {}) }, resolve);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new HgadError('IO', `Cannot download ${url.href}: ${e.message}`, 'url')));
  });
}

/** Follows redirects to the final 200 response. An Authorization header is sent to the first origin
 *  only: a registry that redirects tarballs to a CDN must not hand the CDN its user's token. */
async function fetchOk(start: string, timeoutMs: number, maxRedirects: number, headers: Record<string, string> = {},
  ca?: string): Promise<{ res: IncomingMessage; url: URL }> {
  let url = new URL(start);
  const origin = url.origin;
  for (let hop = 0; ; hop++) {
    const sent = url.origin === origin ? headers : Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
    const res = await request(url, timeoutMs, sent, ca);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (hop >= maxRedirects) throw new HgadError('IO', `Cannot download ${start}: more than ${maxRedirects} redirects`, 'url');
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status !== 200) {
      res.resume();
      throw new HgadError('IO', `Cannot download ${url.href}: the server answered ${status} ${res.statusMessage ?? ''}`.trim(), 'url');
    }
    return { res, url };
  }
}

/** Resolves when the response ended complete; rejects when the connection closed early. */
function completion(res: IncomingMessage): Promise<void> {
  const ended = new Promise<void>((resolve, reject) => {
    res.on('aborted', () => reject(new Error('the connection closed before the end of the file')));
    res.on('error', reject);
    res.on('end', () => (res.complete ? resolve() : reject(new Error('the connection closed before the end of the file'))));
  });
  ended.catch(() => undefined); // observed by the caller; avoid an unhandled rejection meanwhile
  return ended;
}

export interface FetchBytesOptions {
  /** Digest to compute while the bytes stream in (returned as raw bytes). */
  hash?: 'sha256' | 'sha512';
  headers?: Record<string, string>;
  onProgress?: (received: number, total: number) => void;
  /** Refuse bodies larger than this (default 1 GiB). */
  maxBytes?: number;
  idleTimeoutMs?: number;
  maxRedirects?: number;
  /** PEM certificates to trust instead of Node's default ones (npm's `cafile`). */
  ca?: string;
}

/** Fetches `url` into memory (following redirects); checks the length the server announced. */
export async function fetchBytes(url: string, options: FetchBytesOptions = {}): Promise<{ bytes: Buffer; url: URL; digest?: Buffer }> {
  const timeoutMs = options.idleTimeoutMs ?? 30000;
  const maxBytes = options.maxBytes ?? 2 ** 30;
  const { res, url: finalUrl } = await fetchOk(url, timeoutMs, options.maxRedirects ?? 10, options.headers, options.ca);
  const total = Number(res.headers['content-length'] ?? 0) || 0;
  const hash = options.hash ? createHash(options.hash) : undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    if (total > maxBytes) throw new Error(`the server announces ${total} bytes, more than the ${maxBytes} expected at most`);
    res.setTimeout(timeoutMs, () => res.destroy(new Error(`no data for ${timeoutMs} ms`)));
    const ended = completion(res);
    for await (const chunk of res) {
      const b = chunk as Buffer;
      received += b.length;
      if (received > maxBytes) throw new Error(`more than the ${maxBytes} bytes expected at most`);
      hash?.update(b);
      chunks.push(b);
      options.onProgress?.(received, total);
    }
    await ended;
    if (total > 0 && received !== total) throw new Error(`received ${received} of ${total} bytes`);
  } catch (e) {
    res.destroy();
    throw new HgadError('IO', `Cannot download ${finalUrl.href}: ${(e as Error).message}`, 'url');
  }
  const bytes = Buffer.concat(chunks, received);
  return hash ? { bytes, url: finalUrl, digest: hash.digest() } : { bytes, url: finalUrl };
}

/** Downloads `url` to `dest` (atomically) and checks its sha256. */
export async function download(url: string, dest: string, options: DownloadOptions): Promise<void> {
  const timeoutMs = options.idleTimeoutMs ?? 30000;
  const { res, url: finalUrl } = await fetchOk(url, timeoutMs, options.maxRedirects ?? 10);
  await mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.${randomBytes(6).toString('hex')}.part`;
  const total = Number(res.headers['content-length'] ?? 0) || 0;
  const hash = createHash('sha256');
  let received = 0;
  let file;
  try {
    file = await open(tmp, 'w');
  } catch (e) {
    res.destroy();
    throw new HgadError('IO', `Cannot write ${tmp}: ${(e as Error).message}`, 'cacheDir');
  }
  let ok = false;
  try {
    res.setTimeout(timeoutMs, () => res.destroy(new Error(`no data for ${timeoutMs} ms`)));
    const ended = completion(res);
    for await (const chunk of res) {
      const b = chunk as Buffer;
      hash.update(b);
      received += b.length;
      let off = 0;
      while (off < b.length) off += (await file.write(b, off, b.length - off)).bytesWritten;
      options.onProgress?.(received, total);
    }
    await ended;
    if (total > 0 && received !== total) throw new Error(`received ${received} of ${total} bytes`);
    const actual = hash.digest('hex');
    if (actual !== options.sha256.toLowerCase()) {
      throw new HgadError('IO', `Downloaded ${finalUrl.href} but its sha256 is ${actual}, expected ${options.sha256}; the file was discarded`, 'sha256');
    }
    await file.sync();
    await file.close();
    file = undefined;
    await rename(tmp, dest);
    ok = true;
  } catch (e) {
    if (e instanceof HgadError) throw e;
    throw new HgadError('IO', `Cannot download ${finalUrl.href}: ${(e as Error).message}`, 'url');
  } finally {
    if (file) await file.close().catch(() => undefined);
    if (!ok) {
      res.destroy();
      await unlink(tmp).catch(() => undefined);
    }
  }
}

/** A progress bar on stderr, drawn only when stderr is a terminal. */
export function stderrProgress(label: string): ((received: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (received, total) => {
    const now = Date.now();
    const done = total > 0 && received >= total;
    if (!done && now - last < 100) return;
    last = now;
    const mb = (n: number): string => (n / 1048576).toFixed(1);
    const width = 30;
    const bar = total > 0 ? '#'.repeat(Math.round((received / total) * width)).padEnd(width, '.') : '';
    const text = total > 0 ? `${bar} ${mb(received)}/${mb(total)} MiB` : `${mb(received)} MiB`;
    process.stderr.write(`\r${label} ${text}${done ? '\n' : ''}`);
  };
}
