// npm run bench:queue: scoring through the BullMQ queue against in-process scoreImages, in the same run,
// on the same detector and images as bench:serve / bench:pipeline (real images of ../shared/data,
// MobileNetV2 int8 backbone, the flow at the paper's configuration). A real redis-server (append-only
// file, fsync every second, as recommended for production) on a free port of 127.0.0.1, workers as
// real `hgad worker` processes, the producer (ScoringClient) in this process.
//   1. images/s with 1 worker of all threads vs in-process scoreImages (the queue's overhead), for
//      each transport: images stored in Redis beside the jobs (against in-process scoring from Buffers) and as
//      references to a shared folder (against in-process scoring from the same files), with the CPU
//      time each process spent per image (Linux /proc), since producer, Redis and worker share the cores;
//   2. jobs/s with 1, 2 and 4 worker processes of 1 thread each;
//   Redis commands and memory per image, for the deployment arithmetic in RESULTS.md.
//
// On a shared machine the load moves between measurements, so part 1 alternates in-process and queue
// runs (--rounds pairs) and compares their totals.
//
//   node dist/benchmarks/queue.js [--images 128] [--batch 8] [--threads N] [--size 256] [--workers 1,2,4] [--rounds 2]
//     [--transport bytes,reference]
//     [--model file.hgad (skip training)]
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Redis from 'ioredis';

import { openDataset } from '../lib/data';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { ScoringClient } from '../lib/queue/client';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { cpuMsOf, freePort, selfCpuMs, stopChild } from './processes';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared');
const CLI = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');

function waitFor(child: ChildProcess, text: RegExp, what: string): Promise<void> {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (text.test(out)) { clearInterval(t); resolve(); }
      if (child.exitCode !== null) { clearInterval(t); reject(new Error(`${what} exited: ${out}`)); }
    }, 25);
  });
}


type Transport = 'bytes' | 'reference';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    images: { type: 'string', default: '128' }, batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: String(os.availableParallelism()) }, size: { type: 'string', default: '256' },
    workers: { type: 'string', default: '1,2,4' }, model: { type: 'string' }, rounds: { type: 'string', default: '2' },
    transport: { type: 'string', default: 'bytes,reference' },
  } });
  const count = Number(values.images), batchSize = Number(values.batch), threads = Number(values.threads), size = Number(values.size);
  const workerCounts = values.workers.split(',').map(Number);
  const rounds = Number(values.rounds);
  const transports = values.transport.split(',') as Transport[];
  for (const t of transports) if (t !== 'bytes' && t !== 'reference') throw new Error(`--transport: bytes and/or reference, not ${t}`);
  const redisBin = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (!redisBin) throw new Error('redis-server is not installed (apt-get install redis-server, or bash scripts/install-deps.sh)');

  const dir = await mkdtemp(path.join(os.tmpdir(), 'hgad-bench-queue-'));
  const children: ChildProcess[] = [];
  // never leave a process behind, also when interrupted
  process.once('exit', () => { for (const c of children) c.kill('SIGKILL'); });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const dataset = await openDataset({ root: path.join(SHARED, 'data'), layout: 'mvtec' });
  let model = values.model;
  let detector: AnomalyDetector;
  if (model) {
    detector = await AnomalyDetector.load(model, { threads });
  } else {
    detector = await train({
      data: dataset, limitPerClass: 16, backbone: {
        model: path.join(SHARED, 'models', 'mobilenetv2-12-int8.onnx'),
        taps: ['365_quantized', '426_quantized', '452_quantized'], inputSize: size,
      },
      schedule: { metaEpochs: 1, subEpochs: 1 }, threads, progressBar: false,
    });
    model = path.join(dir, 'model.hgad');
    await detector.save(model);
  }
  const tests = dataset.classes.flatMap((c) => dataset.samples('test', c));
  const files = Array.from({ length: count }, (_, i) => tests[i % tests.length]!.path);
  const bytes = await Promise.all(files.map((f) => readFile(f)));
  const inputs = bytes.map((data, i) => ({ data, id: String(i) }));
  const dataRoot = path.join(SHARED, 'data');

  const time = async (f: () => Promise<void>): Promise<number> => {
    const t = process.hrtime.bigint();
    await f();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  // In-process scoring of what the workers get: the bytes, or the files themselves.
  const inProcess = async (t: Transport): Promise<number> => count / await time(async () => {
    for await (const r of scoreImages(detector, t === 'bytes' ? bytes : files, { batchSize, onError: 'throw' })) void r;
  });
  for await (const r of scoreImages(detector, bytes.slice(0, 2 * batchSize), { onError: 'throw' })) void r; // warm-up

  const port = await freePort();
  const redis = spawn(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
    '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(redis);
  await waitFor(redis, /Ready to accept connections/, 'redis-server');
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url);
  const info = async (): Promise<{ commands: number; memory: number }> => {
    const text = await probe.info();
    const field = (k: string): number => Number(new RegExp(`^${k}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { commands: field('total_commands_processed'), memory: field('used_memory') };
  };

  const startWorkers = async (n: number, workerThreads: number): Promise<ChildProcess[]> => {
    const ws = Array.from({ length: n }, (_, i) => spawn(process.execPath, [CLI, 'worker', '--redis', url, '--model', model!,
      '--threads', String(workerThreads), '--batch-size', String(batchSize), '--root', dataRoot, '--name', `bench-${n}-${i}`], { stdio: ['ignore', 'ignore', 'pipe'] }));
    children.push(...ws);
    await Promise.all(ws.map((w) => waitFor(w, /taking jobs from/, 'hgad worker')));
    return ws;
  };
  const client = await ScoringClient.connect({ redis: url, model });
  let probes = 0;
  const submit = async (items: typeof inputs | string[], transport: Transport = 'bytes'): Promise<{ seconds: number; peakMemory: number; failed: number }> => {
    let peakMemory = 0, failed = 0;
    const sampler = setInterval(() => {
      probes += 1;
      void info().then((i) => { peakMemory = Math.max(peakMemory, i.memory); });
    }, 100);
    const seconds = await time(async () => {
      const options = transport === 'bytes' ? { window: 4096 } : { window: 4096, transport, root: dataRoot };
      for await (const r of client.score(items, options)) if (r.error !== null) failed += 1;
    });
    clearInterval(sampler);
    return { seconds, peakMemory, failed };
  };

  // 1. one worker with every thread against in-process scoring, alternating; CPU per image of each process
  let ws = await startWorkers(1, threads);
  await submit(inputs.slice(0, 2 * batchSize)); // warm-up
  interface Pair { inProcess: number; queue: number; cpu: { inProcess: number; producer: number; redis: number; worker: number } }
  const pairs: Record<Transport, Pair[]> = { bytes: [], reference: [] };
  let commandsPerImage = 0, peakMemory = 0, idleMemory = 0, failedOne = 0;
  for (let round = 0; round < rounds; round++) {
    for (const t of transports) {
      const c0 = selfCpuMs();
      const local = await inProcess(t);
      const c1 = selfCpuMs();
      const idle = await info();
      probes = 0;
      const before = { redis: cpuMsOf(redis.pid!), worker: cpuMsOf(ws[0]!.pid!) };
      const one = await submit(t === 'bytes' ? inputs : files, t);
      const cpu = {
        inProcess: (c1 - c0) / count, producer: (selfCpuMs() - c1) / count,
        redis: (cpuMsOf(redis.pid!) - before.redis) / count, worker: (cpuMsOf(ws[0]!.pid!) - before.worker) / count,
      };
      const busy = await info();
      if (t === 'bytes') {
        // INFO counts itself: leave out the sampler's calls and the final one
        commandsPerImage += (busy.commands - idle.commands - probes - 1) / count / rounds;
        peakMemory = Math.max(peakMemory, one.peakMemory);
        idleMemory = idle.memory;
      }
      failedOne += one.failed;
      pairs[t].push({ inProcess: local, queue: count / one.seconds, cpu });
      console.error(JSON.stringify({ transport: t, ...pairs[t][pairs[t].length - 1] }));
    }
  }
  await Promise.all(ws.map((w) => stopChild(w)));

  // 2. jobs/s with n single-thread workers
  const rows: { workers: number; rate: number; failed: number }[] = [];
  for (const n of workerCounts) {
    ws = await startWorkers(n, 1);
    await submit(inputs.slice(0, 2 * batchSize * n)); // warm-up, every worker
    const r = await submit(inputs);
    rows.push({ workers: n, rate: count / r.seconds, failed: r.failed });
    console.error(JSON.stringify(rows[rows.length - 1]));
    await Promise.all(ws.map((w) => stopChild(w)));
  }
  await client.close();
  probe.disconnect();
  await stopChild(redis);
  await detector.dispose();
  await rm(dir, { recursive: true, force: true });

  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const meanImage = bytes.reduce((sum, b) => sum + b.length, 0) / count;
  console.log(`hgad bench:queue — ${count} test images (${dataset.classes.join(', ')}, mean ${(meanImage / 1024).toFixed(0)} KiB) at ${size}px, ` +
    `batch ${batchSize}, ${os.cpus()[0]?.model ?? 'cpu'} (${os.availableParallelism()} cores); redis-server with appendfsync everysec, ` +
    `producer in the benchmark's process, workers in their own; load average at the end ${load}`);
  for (const t of transports) {
    const ps = pairs[t];
    // Rates over the same images: total images / total seconds of each kind.
    const total = (k: 'inProcess' | 'queue'): number => (rounds * count) / ps.reduce((sum, p) => sum + count / p[k], 0);
    const reference = total('inProcess'), queueRate = total('queue');
    const mean = (k: keyof Pair['cpu']): number => ps.reduce((sum, p) => sum + p.cpu[k], 0) / ps.length;
    const from = t === 'bytes' ? 'images stored in Redis beside the jobs; in-process from Buffers' : 'images by reference (--root); in-process from the same files';
    console.log(`transport ${t} (${from}), rounds in-process / queue img/s: ` + ps.map((p) => `${p.inProcess.toFixed(1)} / ${p.queue.toFixed(1)}`).join(', '));
    console.log(`  queue, 1 worker x ${threads} threads: ${queueRate.toFixed(1)} img/s against ${reference.toFixed(1)} in-process = ` +
      `${(100 * queueRate / reference).toFixed(0)}% (overhead ${(100 * (1 - queueRate / reference)).toFixed(1)}%)`);
    console.log(`  CPU ms per image: in-process ${mean('inProcess').toFixed(1)}; queue: worker ${mean('worker').toFixed(1)} ` +
      `(${(100 * (mean('worker') / mean('inProcess') - 1)).toFixed(1)}% over in-process), producer ${mean('producer').toFixed(1)} (with this benchmark's INFO sampling), Redis ${mean('redis').toFixed(1)}`);
  }
  console.log(`${failedOne} failed`);
  console.log(`Redis per image (transport bytes): ${commandsPerImage.toFixed(1)} commands (producer, worker and collector together); ` +
    `peak memory ${(peakMemory / 1048576).toFixed(1)} MiB with up to ${count} images in flight (${((peakMemory - idleMemory) / count / 1024).toFixed(0)} KiB per image in flight)`);
  console.log('| worker processes (1 thread each) | jobs/s | per worker | failed |');
  console.log('|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.workers} | ${r.rate.toFixed(1)} | ${(r.rate / r.workers).toFixed(1)} | ${r.failed} |`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
