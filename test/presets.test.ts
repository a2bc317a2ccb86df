// Preset download: a local HTTP server on 127.0.0.1 serves the real model file; nothing touches the internet.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { TRAIN_HELP } from '../lib/cli/train';
import { HgadArgumentError, HgadError } from '../lib/errors';
import { buildDemoBackbone } from '../lib/features/demo-backbone';
import { PRESETS, Preset, defaultCacheDir, resolveBackbone } from '../lib/features/presets';

const MODEL = path.resolve(__dirname, '../../shared/models/mobilenetv2-12-int8.onnx');
const bytes = readFileSync(MODEL);
const sha = createHash('sha256').update(bytes).digest('hex');

let server: http.Server;
let base = '';
const requests: string[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/model.onnx') {
      res.writeHead(200, { 'content-length': bytes.length });
      res.end(bytes);
    } else if (req.url === '/moved') {
      res.writeHead(302, { location: '/model.onnx' });
      res.end();
    } else if (req.url === '/truncated') {
      // Announces the whole file, sends half, then drops the connection.
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1), () => req.socket.destroy());
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function preset(name: string, url: string, sha256 = sha): Record<string, Preset> {
  return { [name]: { name, description: 'test', url, sha256, size: bytes.length, taps: ['365_quantized'], licence: 'Apache-2.0' } };
}

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'hgad-presets-'));
}

test('the first call downloads and verifies; the second is a cache hit', async () => {
  const dir = tempDir();
  try {
    const progress: Array<[number, number]> = [];
    requests.length = 0;
    const a = await resolveBackbone('m', { cacheDir: dir, presets: preset('m', `${base}/model.onnx`), onProgress: (r, t) => progress.push([r, t]) });
    expect(requests).toEqual(['/model.onnx']);
    expect(readFileSync(a.path).equals(bytes)).toBe(true);
    expect(a.preset?.name).toBe('m');
    expect(progress[progress.length - 1]).toEqual([bytes.length, bytes.length]);
    expect(readdirSync(dir)).toEqual([path.basename(a.path)]); // no temporary file left
    const b = await resolveBackbone('m', { cacheDir: dir, presets: preset('m', `${base}/model.onnx`) });
    expect(b.path).toBe(a.path);
    expect(requests).toEqual(['/model.onnx']); // the server saw no second request
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a redirect is followed', async () => {
  const dir = tempDir();
  try {
    requests.length = 0;
    const a = await resolveBackbone('m', { cacheDir: dir, presets: preset('m', `${base}/moved`), onProgress: () => undefined });
    expect(requests).toEqual(['/moved', '/model.onnx']);
    expect(readFileSync(a.path).equals(bytes)).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a wrong sha256 is an IO error naming both hashes, and nothing stays in the cache', async () => {
  const dir = tempDir();
  try {
    const wrong = '0'.repeat(64);
    const e = await resolveBackbone('m', { cacheDir: dir, presets: preset('m', `${base}/model.onnx`, wrong), onProgress: () => undefined }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HgadError);
    expect((e as HgadError).code).toBe('IO');
    expect((e as Error).message).toContain(wrong);
    expect((e as Error).message).toContain(sha);
    expect(readdirSync(dir)).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('404 and a connection closed early are IO errors that leave nothing behind', async () => {
  const dir = tempDir();
  try {
    await expect(resolveBackbone('m', { cacheDir: dir, presets: preset('m', `${base}/missing`), onProgress: () => undefined }))
      .rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('404') });
    const e = await resolveBackbone('m', { cacheDir: dir, presets: preset('m', `${base}/truncated`), onProgress: () => undefined }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HgadError);
    expect((e as HgadError).code).toBe('IO');
    expect(readdirSync(dir)).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('local paths are used as they are; unknown names list the presets', async () => {
  expect((await resolveBackbone(MODEL)).path).toBe(MODEL);
  await expect(resolveBackbone('/no/such/file.onnx')).rejects.toMatchObject({ code: 'IO' });
  const e = await resolveBackbone('resnet9000').catch((x: unknown) => x);
  expect(e).toBeInstanceOf(HgadArgumentError);
  expect((e as Error).message).toContain('mobilenetv2-int8');
  expect((e as Error).message).toContain('demo');
});

test('demo resolves to the built-in backbone without a download', async () => {
  const dir = tempDir();
  try {
    requests.length = 0;
    const a = await resolveBackbone('demo', { cacheDir: dir });
    expect(readFileSync(a.path).equals(Buffer.from(buildDemoBackbone(0)))).toBe(true);
    expect(requests).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cache directory: option, then HGAD_CACHE, then XDG_CACHE_HOME/hgad', () => {
  const saved = { h: process.env.HGAD_CACHE, x: process.env.XDG_CACHE_HOME };
  try {
    process.env.HGAD_CACHE = '/tmp/a';
    expect(defaultCacheDir()).toBe('/tmp/a');
    delete process.env.HGAD_CACHE;
    process.env.XDG_CACHE_HOME = '/tmp/x';
    expect(defaultCacheDir()).toBe('/tmp/x/hgad');
  } finally {
    if (saved.h === undefined) delete process.env.HGAD_CACHE; else process.env.HGAD_CACHE = saved.h;
    if (saved.x === undefined) delete process.env.XDG_CACHE_HOME; else process.env.XDG_CACHE_HOME = saved.x;
  }
});

test('the real presets are pinned: https URL at a commit, sha256, size, taps (npm ones: version and sha512 integrity)', () => {
  for (const p of Object.values(PRESETS)) {
    expect(p.taps.length).toBeGreaterThan(0);
    if (p.build) continue;
    if (p.npm) {
      expect(p.url).toBeUndefined();
      expect(p.npm.version).toMatch(/^\d+\.\d+\.\d+$/);
      expect(p.npm.integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
      expect(p.npm.size).toBeGreaterThan(1_000_000);
      continue;
    }
    expect(p.url).toMatch(/^https:\/\/github\.com\/onnx\/models\/raw\/[0-9a-f]{40}\//);
    expect(p.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(p.size).toBeGreaterThan(1_000_000);
  }
  expect(existsSync(MODEL)).toBe(true);
});

test('hgad train --help lists every preset', () => {
  for (const name of Object.keys(PRESETS)) expect(TRAIN_HELP).toContain(name);
  expect(TRAIN_HELP).toContain('resnet50-npm');
});
