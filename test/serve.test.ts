// hgad serve against the real server on a free port of 127.0.0.1: scores equal to in-process scoring,
// dynamic batching under concurrency (and a lone client not held back), a corrupt image among good
// ones, malformed and oversized bodies, wrong content types, bearer tokens, the bounded queue, the time
// limit, heatmaps, metrics, that no request can make the server read a file, and SIGTERM while busy
// (nothing in flight lost, exit 0).
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import sharp from 'sharp';

import { openDataset } from '../lib/data';
import { colorize } from '../lib/score/heatmap';
import { generateDemoDataset } from '../lib/demo';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { scoreImages } from '../lib/score/scorer';
import { RunningServer, startServer, BuildAppOptions } from '../lib/serve/app';
import { train } from '../lib/train/trainer';

let dir: string;
let detector: AnomalyDetector;
let model: string;
let images: Buffer[];
let expected: number[];
const servers: RunningServer[] = [];
const children: ChildProcess[] = [];
const TOKEN = 'test-token-0123456789abcdef';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-serve-'));
  await generateDemoDataset({ root: join(dir, 'data'), seed: 9, classes: ['carpet', 'pill'], trainPerClass: 8, testGoodPerClass: 3, testDefectPerClass: 3 });
  const dataset = await openDataset({ root: join(dir, 'data'), layout: 'mvtec' });
  detector = await train({
    data: dataset, backbone: { model: 'demo' }, schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4, seed: 3, threads: 2, progressBar: false, flow: { couplingLayers: 2, centersPerClass: 2 }, holdout: 0.25,
  });
  model = join(dir, 'model.hgad');
  await detector.save(model);
  const files = dataset.classes.flatMap((c) => dataset.samples('test', c)).map((s) => s.path);
  images = await Promise.all(files.map((f) => readFile(f)));
  expected = [];
  for await (const r of scoreImages(detector, files, { onError: 'throw' })) expected.push(r.imageScore);
}, 300000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all(servers.map((s) => s.close()));
  await detector?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function serve(options: BuildAppOptions = {}): Promise<RunningServer> {
  const s = await startServer(detector, { port: 0, ...options });
  servers.push(s);
  return s;
}

interface ScoreBody {
  results: { index: number; id: string; error: { code: string; message: string } | null; imageScore?: number; isAnomaly?: boolean | null;
    threshold?: number | null; thresholdSource?: string | null; className?: string; classSource?: string; heatmap?: string; heatmapRange?: { min: number; max: number }; map?: string }[];
}

async function post(url: string, body: Buffer | string | FormData | undefined, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const r = await fetch(url, { method: 'POST', body: body ?? null, headers });
  const text = await r.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json, headers: r.headers };
}

function form(parts: [string, Buffer, string][], fields: Record<string, string> = {}): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (const [name, data, type] of parts) f.append('image', new Blob([data], { type }), name);
  return f;
}

describe('hgad serve', () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await serve();
  }, 120000);

  test('listens on 127.0.0.1 and answers the probes and /v1/model', async () => {
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`${s.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${s.url}/readyz`)).json()).toMatchObject({ status: 'ready' });
    const m = await (await fetch(`${s.url}/v1/model`)).json() as Record<string, any>;
    expect(m).toMatchObject({ classes: ['carpet', 'pill'], thresholds: detector.spec.calibration!.thresholds, backbone: { model: 'demo' } });
    expect(typeof m.hgad).toBe('string');
    expect(m.classFlows).toEqual([]);
    expect(m.staleThresholds).toEqual([]);
    expect((await fetch(`${s.url}/nope`)).status).toBe(404);
  });

  test('one image as the body scores exactly as scoreImages does; class, threshold and heatmap options', async () => {
    const r = await post(`${s.url}/v1/score`, images[0], { 'content-type': 'image/png' });
    expect(r.status).toBe(200);
    expect(r.json.results).toHaveLength(1);
    expect(r.json.results[0]).toMatchObject({ index: 0, id: '0', error: null, imageScore: expected[0], thresholdSource: 'calibration' });
    expect(r.json.results[0]).not.toHaveProperty('map');
    const o = await post(`${s.url}/v1/score?class=pill&threshold=pill%3D-100&heatmap=true&id=cam-7`, images[0], { 'content-type': 'image/png' });
    expect(o.status).toBe(200);
    expect(o.json.results[0]).toMatchObject({ id: 'cam-7', className: 'pill', classSource: 'given', threshold: -100, thresholdSource: 'class', isAnomaly: true });
    const png = await sharp(Buffer.from(o.json.results[0].heatmap, 'base64')).metadata();
    expect([png.format, png.width, png.height]).toEqual(['png', detector.mapSize, detector.mapSize]);
  });

  test('heatmap=png,float32: the PNG decodes to the map\'s values through the colour scale; Accept: image/png answers that PNG', async () => {
    let map: Float32Array | undefined;
    for await (const x of scoreImages(detector, [images[0]!], { onError: 'throw' })) map = x.map;
    const S = detector.mapSize;
    const r = await post(`${s.url}/v1/score?heatmap=png,float32`, images[0], { 'content-type': 'image/png' });
    expect(r.status).toBe(200);
    const res = r.json.results[0];
    // the values: exactly the in-process map, little-endian float32
    const raw = Buffer.from(res.map, 'base64');
    expect(raw.length).toBe(4 * S * S);
    const values = new Float32Array(raw.buffer, raw.byteOffset, S * S);
    expect(Buffer.from(values.buffer, values.byteOffset, values.byteLength).equals(Buffer.from(map!.buffer, map!.byteOffset, map!.byteLength))).toBe(true);
    const t = detector.spec.calibration!.thresholds[res.className]!;
    expect(res.heatmapRange).toEqual({ min: 0, max: 1.5 * t });
    // the PNG: S x S RGB, each pixel the colour of its value's quantisation step (256 steps over the range)
    const png = Buffer.from(res.heatmap, 'base64');
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([S, S, 3]);
    const table = await colorize(Float32Array.from({ length: 256 }, (_, i) => i + 0.5), 1, 256, { min: 0, max: 256 });
    const colour = (k: number): number => (table[3 * k]! << 16) | (table[3 * k + 1]! << 8) | table[3 * k + 2]!;
    const { min, max } = res.heatmapRange as { min: number; max: number };
    let exact = 0, near = 0;
    const steps = new Set<number>();
    for (let i = 0; i < S * S; i++) {
      const k = Math.min(255, Math.floor(256 * Math.min(1, Math.max(0, (values[i]! - min) / (max - min)))));
      steps.add(k);
      const got = (data[3 * i]! << 16) | (data[3 * i + 1]! << 8) | data[3 * i + 2]!;
      if (got === colour(k)) exact += 1;
      else if ((k > 0 && got === colour(k - 1)) || (k < 255 && got === colour(k + 1))) near += 1; // float32 vs double at a step's edge
    }
    expect(steps.size).toBeGreaterThan(10); // a map with structure, so that a wrong or transposed PNG shows
    expect(exact + near).toBe(S * S);
    expect(exact / (S * S)).toBeGreaterThan(0.999);

    // Accept: image/png: the same PNG as the whole answer, the result in headers
    const a = await fetch(`${s.url}/v1/score?id=cam%207`, { method: 'POST', body: images[0], headers: { 'content-type': 'image/png', accept: 'image/png' } });
    expect([a.status, a.headers.get('content-type')]).toEqual([200, 'image/png']);
    expect(Buffer.from(await a.arrayBuffer()).equals(png)).toBe(true);
    expect(Number(a.headers.get('x-hgad-image-score'))).toBe(expected[0]);
    expect([a.headers.get('x-hgad-id'), a.headers.get('x-hgad-class'), a.headers.get('x-hgad-threshold-source')]).toEqual(['cam%207', res.className, 'calibration']);
    expect([Number(a.headers.get('x-hgad-heatmap-min')), Number(a.headers.get('x-hgad-heatmap-max'))]).toEqual([min, max]);
    expect(a.headers.get('x-hgad-is-anomaly')).toBe(String(res.isAnomaly));
    // JSON stays the default whenever the client accepts it at least as well
    for (const accept of ['*/*', 'image/png, application/json', 'application/json, image/png;q=0.5', 'text/html']) {
      const j = await post(`${s.url}/v1/score`, images[0], { 'content-type': 'image/png', accept });
      expect([accept, j.status, j.json.results?.[0]?.imageScore]).toEqual([accept, 200, expected[0]]);
    }
    const both = await post(`${s.url}/v1/score`, form([['a.png', images[0]!, 'image/png'], ['b.png', images[1]!, 'image/png']]), { accept: 'image/png' });
    expect([both.status, both.json.error.code]).toEqual([406, 'NOT_ACCEPTABLE']);
    const bad = await post(`${s.url}/v1/score`, Buffer.from('not an image'), { 'content-type': 'image/png', accept: 'image/png' });
    expect([bad.status, bad.json.error.code]).toEqual([422, 'IMAGE_ERROR']);
    for (const h of ['jpeg', 'png,png', 'yes']) {
      const e = await post(`${s.url}/v1/score?heatmap=${h}`, images[0], { 'content-type': 'image/png' });
      expect([h, e.status, e.json.error.code]).toEqual([h, 400, 'INVALID_ARGUMENT']);
    }
  });

  test('several images as multipart, a corrupt one among them: its error in its place, the others scored', async () => {
    const corrupt = images[1]!.subarray(0, 300);
    const r = await post(`${s.url}/v1/score`, form([['a.png', images[0]!, 'image/png'], ['broken.png', corrupt, 'image/png'],
      ['c.png', images[2]!, 'image/png']], { threshold: '0.001', heatmap: 'float32' }));
    expect(r.status).toBe(200);
    const results = (r.json as ScoreBody).results;
    expect(results.map((x) => [x.index, x.id, x.error?.code ?? null])).toEqual([[0, 'a.png', null], [1, 'broken.png', 'INVALID_ARGUMENT'], [2, 'c.png', null]]);
    expect([results[0]!.imageScore, results[2]!.imageScore]).toEqual([expected[0], expected[2]]);
    expect(results[0]).toMatchObject({ threshold: 0.001, thresholdSource: 'global' });
    const bytes = (b64: string | undefined): number => Buffer.from(b64 ?? '', 'base64').length;
    expect([bytes(results[0]!.map), bytes(results[2]!.map), results[0]!.heatmap]).toEqual([4 * detector.mapSize ** 2, 4 * detector.mapSize ** 2, undefined]);
    const allBad = await post(`${s.url}/v1/score`, Buffer.from('not an image'), { 'content-type': 'image/jpeg' });
    expect(allBad.status).toBe(422);
    expect(allBad.json.results[0].error.code).toBe('INVALID_ARGUMENT');
  });

  test('concurrent requests are batched together and every answer is its own image\'s', async () => {
    const order = Array.from({ length: 24 }, (_, i) => i % images.length);
    const answers = await Promise.all(order.map((i) => post(`${s.url}/v1/score`, images[i], { 'content-type': 'image/png' })));
    expect(answers.map((a) => a.status)).toEqual(order.map(() => 200));
    expect(answers.map((a) => a.json.results[0].imageScore)).toEqual(order.map((i) => expected[i]));
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const sum = Number(/^hgad_batch_size_sum (\S+)/m.exec(metrics)![1]);
    const count = Number(/^hgad_batch_size_count (\S+)/m.exec(metrics)![1]);
    expect(sum / count).toBeGreaterThan(1.5);
  }, 120000);

  test('a lone client is held for the batching wait only until the server knows it sends one image at a time', async () => {
    const waiting = await serve({ maxWaitMs: 1500 });
    const timed = async (i: number): Promise<number> => {
      const t = performance.now();
      const a = await post(`${waiting.url}/v1/score`, images[i], { 'content-type': 'image/png' });
      expect(a.json.results[0].imageScore).toBe(expected[i]);
      return performance.now() - t;
    };
    // The first image waits for company; once a batch of one was answered, the next is scored at once.
    expect(await timed(0)).toBeGreaterThanOrEqual(1500);
    for (const i of [1, 2, 3]) expect(await timed(i)).toBeLessThan(1500);
  }, 60000);

  test('malformed requests, wrong content types and unknown options get typed 4xx errors', async () => {
    const cases: [Promise<{ status: number; json: any }>, number, string][] = [
      [post(`${s.url}/v1/score`, undefined), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score`, Buffer.alloc(0), { 'content-type': 'image/png' }), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score`, JSON.stringify({ path: '/etc/passwd' }), { 'content-type': 'application/json' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [post(`${s.url}/v1/score`, 'hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [post(`${s.url}/v1/score`, images[0], { 'content-type': 'application/octet-stream' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [post(`${s.url}/v1/score?path=/etc/passwd`, images[0], { 'content-type': 'image/png' }), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score?class=bolt`, images[0], { 'content-type': 'image/png' }), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score?threshold=high`, images[0], { 'content-type': 'image/png' }), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score`, '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb', { 'content-type': 'multipart/form-data; boundary=x' }), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score`, form([], { class: 'pill' })), 400, 'INVALID_ARGUMENT'],
      [post(`${s.url}/v1/score`, form([['a.png', images[0]!, 'image/png']], { path: '/etc/passwd' })), 400, 'INVALID_ARGUMENT'],
    ];
    for (const [answer, status, code] of cases) {
      const a = await answer;
      expect([a.status, a.json?.error?.code]).toEqual([status, code]);
    }
  });

  test('no request makes the server read one of its files', async () => {
    // a path as the body, as a file name and as an id: each is only bytes or a label
    const asBody = await post(`${s.url}/v1/score?id=/etc/hostname`, Buffer.from(join(dir, 'model.hgad')), { 'content-type': 'image/png' });
    expect(asBody.status).toBe(422);
    expect(asBody.json.results[0]).toMatchObject({ id: '/etc/hostname', error: { code: 'INVALID_ARGUMENT' } });
    const named = await post(`${s.url}/v1/score`, form([[resolve(dir, 'model.hgad'), Buffer.from('x'), 'image/png']]));
    expect(named.status).toBe(422);
    expect(named.json.results[0].error.message).not.toMatch(/ENOENT|EACCES|no such file/);
  });
});

describe('limits', () => {
  test('oversized bodies and too many images get 413', async () => {
    const s = await serve({ bodyLimit: 4096, maxImages: 2 });
    const big = await post(`${s.url}/v1/score`, images[0], { 'content-type': 'image/png' });
    expect(images[0]!.length).toBeGreaterThan(4096);
    expect([big.status, big.json.error.code]).toEqual([413, 'BODY_TOO_LARGE']);
    const bigPart = await post(`${s.url}/v1/score`, form([['a.png', images[0]!, 'image/png']]));
    expect([bigPart.status, bigPart.json.error.code]).toEqual([413, 'BODY_TOO_LARGE']);
    const tiny = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer();
    const many = await post(`${s.url}/v1/score`, form([['a', tiny, 'image/png'], ['b', tiny, 'image/png'], ['c', tiny, 'image/png']]));
    expect([many.status, many.json.error.code]).toEqual([413, 'BODY_TOO_LARGE']);
    const two = await post(`${s.url}/v1/score`, form([['a', tiny, 'image/png'], ['b', tiny, 'image/png']]));
    expect(two.status).toBe(200);
    await s.close();
  }, 120000);

  test('a full queue answers 503 with Retry-After; the requests it took are all scored', async () => {
    const s = await serve({ maxQueue: 2, batchSize: 1, pipelineDepth: 1 });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => post(`${s.url}/v1/score`, images[i % images.length], { 'content-type': 'image/png' })));
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    for (const a of refused) {
      expect(a.json.error.code).toBe('QUEUE_FULL');
      expect(Number(a.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true);
    await s.close();
  }, 120000);

  test('a request past its time limit gets 504', async () => {
    const s = await serve({ timeoutMs: 100, batchSize: 1, pipelineDepth: 1 });
    const parts = images.slice(0, 6).map((b, i): [string, Buffer, string] => [`${i}.png`, b, 'image/png']);
    const r = await post(`${s.url}/v1/score`, form(parts));
    expect([r.status, r.json.error.code]).toEqual([504, 'TIMEOUT']);
    await s.close();
  }, 120000);
});

describe('bearer token', () => {
  test('required on /v1 and /metrics when configured, not on the probes; compared exactly', async () => {
    const s = await serve({ token: TOKEN });
    const score = (auth?: string): Promise<{ status: number; json: any; headers: Headers }> =>
      post(`${s.url}/v1/score`, images[0], { 'content-type': 'image/png', ...(auth ? { authorization: auth } : {}) });
    const none = await score();
    expect([none.status, none.json.error.code, none.headers.get('www-authenticate')]).toEqual([401, 'UNAUTHORIZED', 'Bearer realm="hgad"']);
    for (const bad of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, 'Bearer ', TOKEN]) expect((await score(bad)).status).toBe(401);
    expect((await score(`Bearer ${TOKEN}`)).status).toBe(200);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${s.url}/v1/model`)).status).toBe(401);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    await s.close();
  }, 120000);
});

describe('metrics', () => {
  test('/metrics exposes requests, latency, batch sizes, queue depth, images scored and errors by code', async () => {
    const s = await serve();
    await post(`${s.url}/v1/score`, form([['a', images[0]!, 'image/png'], ['b', Buffer.from('bad'), 'image/png']]));
    const text = await (await fetch(`${s.url}/metrics`)).text();
    expect(text).toMatch(/^hgad_images_scored_total 1$/m);
    expect(text).toMatch(/^hgad_image_errors_total\{code="INVALID_ARGUMENT"\} 1$/m);
    expect(text).toMatch(/^hgad_http_requests_total\{method="POST",route="\/v1\/score",status="200"\} 1$/m);
    expect(text).toMatch(/^hgad_http_request_duration_seconds_count\{method="POST",route="\/v1\/score"\} 1$/m);
    expect(text).toMatch(/^hgad_batch_size_sum 2$/m);
    expect(text).toMatch(/^hgad_queue_depth 0$/m);
    await s.close();
  }, 120000);
});

describe('hgad serve (the command)', () => {
  test('SIGTERM while busy: every request in flight is answered, then it exits 0', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    const bin = resolve(__dirname, '..', 'dist', 'lib', 'cli', 'main.js');
    const child = spawn(process.execPath, [bin, 'serve', '--model', model, '--port', '0', '--token-file', tokenFile, '--threads', '2', '--timeout-ms', '600000'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const url = await new Promise<string>((res, rej) => {
      const t = setInterval(() => {
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m) { clearInterval(t); res(m[1]!); }
        if (child.exitCode !== null) { clearInterval(t); rej(new Error(`hgad serve exited: ${stderr}`)); }
      }, 50);
    });
    const auth = { authorization: `Bearer ${TOKEN}` };
    // 16 requests of 4 images each: enough work that many are still in flight at SIGTERM
    const pick = (i: number, k: number): number => (4 * i + k) % images.length;
    const inFlight = Array.from({ length: 16 }, (_, i) =>
      post(`${url}/v1/score`, form([0, 1, 2, 3].map((k): [string, Buffer, string] => [`${k}.png`, images[pick(i, k)]!, 'image/png'])), auth));
    // wait until the server has received all 16 (this /metrics request is one more in flight) while
    // some are still being scored, then stop it
    let held = 0;
    for (const started = Date.now(); ; await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() - started > 120000) throw new Error('the 16 requests never arrived together');
      const m = await (await fetch(`${url}/metrics`, { headers: auth })).text();
      held = Number(/^hgad_http_requests_in_flight (\d+)/m.exec(m)?.[1] ?? 0) - 1;
      const answered = [...m.matchAll(/^hgad_http_requests_total\{method="POST",route="\/v1\/score",status="\d+"\} (\d+)/gm)]
        .reduce((a, x) => a + Number(x[1]), 0);
      if (held + answered === 16 && held > 0) break;
    }
    child.kill('SIGTERM');
    const answers = await Promise.all(inFlight);
    console.log(`SIGTERM with ${held} of 16 requests in flight`);
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(answers.map((a) => a.json.results.map((r: { imageScore: number }) => r.imageScore)))
      .toEqual(answers.map((_, i) => [0, 1, 2, 3].map((k) => expected[pick(i, k)])));
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/SIGTERM: finishing the requests in flight[\s\S]*stopped/);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  }, 300000);
});
