// npm run bench:serve: the HTTP service against in-process scoring, in the same run, on the same
// detector and images as bench:pipeline (real images of ../shared/data, MobileNetV2 int8 backbone,
// the flow at the paper's configuration). The service is the real one (`hgad serve` in its own
// process); autocannon sends one image per request at concurrency 1, 8 and 32, with dynamic batching
// on and off. Throughput counts answered images (200s); latency is per request. On a shared machine
// the CPU the benchmark gets moves from minute to minute, so each row is also set against in-process
// scoring of the same Buffers measured right before and right after it (the mean of the two), beside
// the best in-process rate of the whole run. CPU ms per image of the server, of the clients (autocannon in
// this process) and of in-process scoring tell idle time from extra work.
//
//   node dist/benchmarks/serve.js [--images 128] [--batch 8] [--threads N] [--size 256] [--concurrency 1,8,32]
//     [--pipeline-depth n (the server's --pipeline-depth; default its own)] [--max-wait-ms n (the server's)] [--batching on,off]
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { openDataset, Sample } from '../lib/data';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { cpuMsOf, selfCpuMs, stopChild } from './processes';

interface AcRequest { method: string; path: string; headers: Record<string, string>; body?: Buffer }
interface AcOptions {
  url: string; connections: number; amount: number; pipelining?: number; timeout?: number;
  requests: { method: string; path: string; headers: Record<string, string>; setupRequest(r: AcRequest): AcRequest; onResponse?(status: number): void }[];
}
interface AcResult {
  errors: number; timeouts: number; non2xx: number; '2xx': number;
  latency: { p50: number; p99: number; average: number };
}
// autocannon has no type declarations of its own; this is the part of its API used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (options: AcOptions) => Promise<AcResult>;

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared');
const CLI = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');

async function startServe(model: string, args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--model', model, '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  process.once('exit', () => child.kill('SIGKILL')); // never leave a server behind
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) { clearInterval(t); resolve(m[1]!); }
      if (child.exitCode !== null) { clearInterval(t); reject(new Error(`hgad serve exited: ${stderr}`)); }
    }, 50);
  });
  return { url, child };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    images: { type: 'string', default: '128' }, batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: String(os.availableParallelism()) }, size: { type: 'string', default: '256' },
    concurrency: { type: 'string', default: '1,8,32' }, 'pipeline-depth': { type: 'string' }, 'max-wait-ms': { type: 'string' }, batching: { type: 'string', default: 'on,off' },
  } });
  const count = Number(values.images), batchSize = Number(values.batch), threads = Number(values.threads), size = Number(values.size);
  const levels = values.concurrency.split(',').map(Number);
  const depth = [
    ...(values['pipeline-depth'] === undefined ? [] : ['--pipeline-depth', values['pipeline-depth']]),
    ...(values['max-wait-ms'] === undefined ? [] : ['--max-wait-ms', values['max-wait-ms']]),
  ];
  const batchings = values.batching.split(',') as ('on' | 'off')[];
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  const detector = await train({
    data: dataset, limitPerClass: 16, backbone: {
      model: path.join(SHARED, 'models', 'mobilenetv2-12-int8.onnx'),
      taps: ['365_quantized', '426_quantized', '452_quantized'], inputSize: size,
    },
    schedule: { metaEpochs: 1, subEpochs: 1 }, threads, progressBar: false,
  });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hgad-bench-serve-'));
  const model = path.join(dir, 'model.hgad');
  await detector.save(model);
  const samples: Sample[] = [];
  const tests = dataset.classes.flatMap((c) => dataset.samples('test', c));
  for (let i = 0; samples.length < count; i++) samples.push(tests[i % tests.length]!);
  const files = samples.map((s) => s.path);
  const bytes = await Promise.all(files.map((f) => readFile(f)));

  const time = async (f: () => Promise<void>): Promise<number> => {
    const t = process.hrtime.bigint();
    await f();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  for await (const r of scoreImages(detector, files.slice(0, 2 * batchSize), { onError: 'throw' })) void r; // warm-up
  // In-process rates from files and from Buffers, measured before and after the service runs (on a
  // shared machine the load moves); the reference is the best of the four.
  const inProcessRates = async (): Promise<[number, number]> => [
    count / await time(async () => {
      for await (const r of scoreImages(detector, files, { batchSize, onError: 'throw' })) void r;
    }),
    count / await time(async () => {
      for await (const r of scoreImages(detector, bytes, { batchSize, onError: 'throw' })) void r;
    }),
  ];
  const before = await inProcessRates();

  // In-process rate from Buffers, with this process's CPU ms per image.
  const fromBuffers = async (): Promise<[number, number]> => {
    const c = selfCpuMs();
    const rate = count / await time(async () => {
      for await (const r of scoreImages(detector, bytes, { batchSize, onError: 'throw' })) void r;
    });
    return [rate, (selfCpuMs() - c) / count];
  };
  interface Row {
    batching: string; connections: number; rate: number; p50: number; p99: number; failed: number; adjacent: number;
    /** CPU ms per image: in-process (adjacent runs), the server, the clients (autocannon, this process). */
    cpu: { inProcess: number; server: number; clients: number };
  }
  const rows: Row[] = [];
  for (const batching of batchings) {
    const { url, child } = await startServe(model, ['--threads', String(threads), '--batch-size', String(batchSize), '--batching', batching, '--max-queue', '4096', ...depth]);
    try {
      for (const connections of levels) {
        let next = 0;
        let lastAnswer = 0;
        const run = (amount: number): Promise<AcResult> => autocannon({
          url, connections, amount, timeout: 120,
          requests: [{
            method: 'POST', path: '/v1/score', headers: { 'content-type': 'image/png' },
            setupRequest: (r) => ({ ...r, body: bytes[next++ % bytes.length]! }),
            onResponse: () => { lastAnswer = performance.now(); },
          }],
        });
        await run(Math.max(connections, 2 * batchSize)); // warm-up
        const pre = await fromBuffers();
        // autocannon reports (and resolves) at its next 1 s sampling tick after the last answer, so its
        // duration counts whole seconds (128 requests in 3.4 s read as 4.01 s): the rate's divisor is the
        // time from the start to the last answer, measured here.
        const cpu0 = { server: cpuMsOf(child.pid!), clients: selfCpuMs() };
        const start = performance.now();
        const r = await run(count);
        const seconds = (lastAnswer - start) / 1000;
        const cpu = { inProcess: 0, server: (cpuMsOf(child.pid!) - cpu0.server) / count, clients: (selfCpuMs() - cpu0.clients) / count };
        const post = await fromBuffers();
        cpu.inProcess = (pre[1] + post[1]) / 2;
        const rate = r['2xx'] / seconds;
        rows.push({ batching, connections, rate, p50: r.latency.p50, p99: r.latency.p99, failed: r.non2xx + r.errors + r.timeouts, adjacent: (pre[0] + post[0]) / 2, cpu });
        console.error(JSON.stringify(rows[rows.length - 1]));
      }
    } finally {
      await stopChild(child);
    }
  }
  await rm(dir, { recursive: true, force: true });
  const after = await inProcessRates();
  await detector.dispose();
  const inProcess = Math.max(...before, ...after);

  console.log(`hgad bench:serve — ${count} requests of one test image each (${dataset.classes.join(', ')}) at ${size}px, batch ${batchSize}, ` +
    `${threads} threads, pipeline depth ${values['pipeline-depth'] ?? 'default (2)'}, partial batches wait ${values['max-wait-ms'] ?? 'default (5)'} ms, ${os.cpus()[0]?.model ?? 'cpu'} (${os.availableParallelism()} cores); autocannon in the benchmark's process, ` +
    `the server in its own; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`in-process scoreImages (reference: the best): ${before[0].toFixed(1)} / ${before[1].toFixed(1)} img/s from files / Buffers before ` +
    `the service runs, ${after[0].toFixed(1)} / ${after[1].toFixed(1)} after`);
  console.log('| batching | concurrency | images/s | p50 ms | p99 ms | of in-process (best) | in-process just before/after | of that | failed | CPU ms per image: in-process / server / clients |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) {
    console.log(`| ${r.batching} | ${r.connections} | ${r.rate.toFixed(1)} | ${r.p50} | ${r.p99} | ${(100 * r.rate / inProcess).toFixed(0)}% | ` +
      `${r.adjacent.toFixed(1)} | ${(100 * r.rate / r.adjacent).toFixed(0)}% | ${r.failed} | ` +
      `${r.cpu.inProcess.toFixed(1)} / ${r.cpu.server.toFixed(1)} / ${r.cpu.clients.toFixed(1)} |`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
