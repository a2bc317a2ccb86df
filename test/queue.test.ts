// Scale-out scoring on BullMQ against a real redis-server (127.0.0.1, a free port, started and stopped
// here) and real worker processes (the built CLI, dist/): two workers, one killed with SIGKILL
// mid-run and Redis restarted mid-run, undecodable images in the stream; every image's result comes
// back exactly once, in input order, with the scores of in-process scoreImages. Also: a job for
// another detector, malformed jobs, references to shared storage (a file that appears late is
// retried, one outside the root refused), two detectors on one Redis, SIGTERM while busy.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { Queue } from 'bullmq';
import Redis from 'ioredis';

import { freePort } from '../benchmarks/processes';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { QueueResult, ScoringClient } from '../lib/queue/client';
import { modelFingerprint, defaultQueueName } from '../lib/queue/fingerprint';
import { failureReason, imageKey, JOB_FORMAT, parseFailure } from '../lib/queue/job';
import { ResultsFile } from '../lib/queue/results-file';
import { startWorker as startWorkerInProcess } from '../lib/queue/worker';
import { scoreImages } from '../lib/score/scorer';
import { train } from '../lib/train/trainer';
import { RedisServer, redisAvailable } from './redis-server';
import { tinyDataset, tinyDetector, tinyTrainOptions } from './tiny-detector';

const CLI = resolve(__dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const run = redisAvailable() ? describe : describe.skip;

interface WorkerProcess {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

let dir: string;
let redis: RedisServer;
let detector: AnomalyDetector;
let model: string;
let files: string[];
let images: Buffer[];
let expected: Map<string, number>;
const children: ChildProcess[] = [];
const clients: ScoringClient[] = [];

function startWorker(modelFile: string, args: string[] = []): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', '--redis', redis.url, '--model', modelFile, '--threads', '1', '--batch-size', '4',
    '--lock-ms', '2000', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return new Promise((ready, fail) => {
    const t = setInterval(() => {
      if (log.includes('taking jobs from')) {
        clearInterval(t);
        ready({ child, log: () => log, exited });
      } else if (child.exitCode !== null) {
        clearInterval(t);
        fail(new Error(`hgad worker exited ${child.exitCode}: ${log}`));
      }
    }, 25);
  });
}

async function client(modelOrSha: string, queue?: string): Promise<ScoringClient> {
  const c = await ScoringClient.connect({ redis: redis.url, model: modelOrSha, ...(queue ? { queue } : {}) });
  clients.push(c);
  return c;
}

function expectScored(results: QueueResult[], ids: string[], scoreOf: (id: string) => number | undefined): void {
  expect(results.map((r) => r.index)).toEqual(ids.map((_, i) => i));
  results.forEach((r, i) => {
    expect(r.id).toBe(ids[i]);
    const want = scoreOf(ids[i]!);
    if (want === undefined) {
      expect(r.error).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(r.error?.message).toMatch(/decode/i);
    } else {
      expect(r.error).toBeNull();
      if (r.error === null) expect(r.imageScore).toBe(want);
    }
  });
}

/** The images stored beside the jobs of a queue (transport 'bytes'), by key. */
async function storedImages(queueName: string): Promise<string[]> {
  const r = new Redis(redis.url);
  try {
    return await r.keys(imageKey('hgad', queueName, '*'));
  } finally {
    r.disconnect();
  }
}

/** Every event of the queue's event stream, as { event, jobId }. */
async function events(queueName: string): Promise<{ event: string; jobId?: string }[]> {
  const r = new Redis(redis.url);
  try {
    const entries = await r.xrange(`hgad:${queueName}:events`, '-', '+');
    return entries.map(([, kv]) => {
      const o: Record<string, string> = {};
      for (let i = 0; i < kv.length; i += 2) o[kv[i]!] = kv[i + 1]!;
      return { event: o.event!, ...(o.jobId !== undefined ? { jobId: o.jobId } : {}) };
    });
  } finally {
    r.disconnect();
  }
}

beforeAll(async () => {
  if (!redisAvailable()) return;
  dir = await mkdtemp(join(tmpdir(), 'hgad-queue-'));
  const made = await tinyDetector(dir);
  detector = made.detector;
  model = made.file;
  files = made.dataset.classes.flatMap((c) => made.dataset.samples('test', c)).map((s) => s.path);
  images = await Promise.all(files.map((f) => readFile(f)));
  expected = new Map();
  for await (const r of scoreImages(detector, files, { onError: 'throw' })) expected.set(r.id, r.imageScore);
  redis = await RedisServer.start();
}, 300000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.allSettled(clients.map((c) => c.close()));
  await redis?.dispose();
  await detector?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

run('scoring on a BullMQ queue', () => {
  test('two workers, one killed with SIGKILL and Redis restarted mid-run, bad images in the stream: every image exactly once, in order, with in-process scores', async () => {
    const a = await startWorker(model, ['--name', 'worker-a']);
    const b = await startWorker(model, ['--name', 'worker-b']);
    // 240 jobs: the test images many times over, with undecodable ones among them.
    const corrupt = images[1]!.subarray(0, 200);
    const inputs: { data: Buffer; id: string }[] = [];
    for (let i = 0; i < 240; i++) {
      inputs.push(i % 37 === 5 ? { data: corrupt, id: `bad-${i}` } : { data: images[i % images.length]!, id: `${files[i % files.length]}#${i}` });
    }
    const scoreOf = (id: string): number | undefined => (id.startsWith('bad-') ? undefined : expected.get(id.replace(/#\d+$/, '')));
    const c = await client(model);
    const results: QueueResult[] = [];
    let killedAt = -1, restartedAt = -1;
    let restart: Promise<void> | null = null;
    for await (const r of c.score(inputs, { keepJobs: true, window: 240 })) {
      results.push(r);
      if (results.length === 30) {
        killedAt = results.length;
        a.child.kill('SIGKILL');
      }
      if (results.length === 90) {
        restartedAt = results.length;
        restart = redis.restart(1500);
      }
    }
    await restart;
    expect([killedAt, restartedAt]).toEqual([30, 90]);
    expect(await a.exited).toBeNull(); // killed by the signal
    expectScored(results, inputs.map((x) => x.id), scoreOf);

    // In Redis: each job completed or failed exactly once; worker-a held jobs when it died (stalled).
    const queueName = c.queueName;
    const evs = await events(queueName);
    const finished = new Map<string, number>();
    for (const e of evs) if ((e.event === 'completed' || e.event === 'failed') && e.jobId) finished.set(e.jobId, (finished.get(e.jobId) ?? 0) + 1);
    expect(finished.size).toBe(inputs.length);
    expect([...finished.values()].every((n) => n === 1)).toBe(true);
    expect(evs.some((e) => e.event === 'stalled')).toBe(true);
    const q = new Queue(queueName, { connection: { url: redis.url }, prefix: 'hgad' });
    try {
      const jobs = await q.getJobs(['completed', 'failed'], 0, -1);
      expect(jobs).toHaveLength(inputs.length);
      const by = (name: string): number => jobs.filter((j) => j.processedBy === name).length;
      expect(by('worker-a')).toBeGreaterThan(0);
      expect(by('worker-b')).toBeGreaterThan(by('worker-a'));
      // undecodable images: failed once, never retried
      const bad = jobs.filter((j) => j.failedReason);
      expect(bad.length).toBe(inputs.filter((x) => x.id.startsWith('bad-')).length);
      expect(bad.every((j) => j.attemptsMade === 1 && /^\[INVALID_ARGUMENT/.test(j.failedReason))).toBe(true);
      // Each stored image went with its job's end, except (maybe) those of jobs worker-a finished just
      // before it was killed: they expire (and are removed here, for the tests below).
      const left = await storedImages(queueName);
      const ofA = new Set(jobs.filter((j) => j.processedBy === 'worker-a').map((j) => imageKey('hgad', queueName, j.id!)));
      expect(left.filter((k) => !ofA.has(k))).toEqual([]);
      if (left.length > 0) {
        const r = new Redis(redis.url);
        try {
          await r.del(...left);
        } finally {
          r.disconnect();
        }
      }
      await q.obliterate({ force: true });
    } finally {
      await q.close();
    }
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    expect(b.log()).toMatch(/stopped \(\d+ jobs completed/);
  }, 300000);

  describe('one worker', () => {
    let w: WorkerProcess;
    let storage: string;
    beforeAll(async () => {
      storage = join(dir, 'storage');
      await mkdir(join(storage, 'sub'), { recursive: true });
      await writeFile(join(dir, 'outside.png'), images[0]!);
      await symlink(join(dir, 'outside.png'), join(storage, 'link.png'));
      w = await startWorker(model, ['--root', storage]);
    }, 300000);
    afterAll(async () => {
      if (w.child.exitCode === null) w.child.kill('SIGTERM');
      await w.exited;
    });

    test('references to shared storage: scored like the bytes; a late file is retried; links out of the root and missing files fail', async () => {
      for (let i = 0; i < 3; i++) await writeFile(join(storage, 'sub', `${i}.png`), images[i]!);
      const c = await client(model);
      const refs = [0, 1, 2].map((i) => join(storage, 'sub', `${i}.png`));
      const late = join(storage, 'late.png');
      const out: QueueResult[] = [];
      const appear = setTimeout(() => void writeFile(late, images[3]!), 1500);
      try {
        for await (const r of c.score([...refs, late, join(storage, 'link.png'), join(storage, 'never.png')],
          { transport: 'reference', root: storage, backoffMs: 300, attempts: 4 })) out.push(r);
      } finally {
        clearTimeout(appear);
      }
      expect(out.slice(0, 4).map((r) => (r.error === null ? r.imageScore : r.error.code))).toEqual([0, 1, 2, 3].map((i) => expected.get(files[i]!)));
      expect(out[4]!.error).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'job.image.ref' });
      expect(out[5]!.error).toMatchObject({ code: 'IO', parameter: 'job.image.ref' });
      expect(out[5]!.error!.message).toMatch(/never\.png/);
      // the producer refuses paths outside the root before submitting anything
      await expect(c.score([join(dir, 'outside.png')], { transport: 'reference', root: storage }).next())
        .rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'images[0]' });
    }, 300000);

    test('hgad enqueue: folders in, a CSV file out in input order with error rows; --fail-on-error exits 3', async () => {
      const folder = join(dir, 'incoming');
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, 'a.png'), images[0]!);
      await writeFile(join(folder, 'b.png'), Buffer.from('not an image'));
      await writeFile(join(folder, 'c.png'), images[2]!);
      const out = join(dir, 'results.csv');
      const r = await new Promise<{ code: number | null; stderr: string }>((done) => {
        const child = spawn(process.execPath, [CLI, 'enqueue', '--redis', redis.url, '--model', model, folder, '--out', out, '--format', 'csv',
          '--fail-on-error'], { stdio: ['ignore', 'ignore', 'pipe'] });
        children.push(child);
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
        child.once('exit', (code) => done({ code, stderr }));
      });
      expect(r.stderr).toMatch(/results 3\/3 \(1 errors\)/);
      expect(r.code).toBe(3);
      const rows = (await readFile(out, 'utf8')).trim().split('\n').map((l) => l.split(','));
      expect(rows[0]!.slice(0, 3)).toEqual(['index', 'id', 'imageScore']);
      expect(rows.slice(1).map((c) => [c[0], c[1]])).toEqual([['0', join(folder, 'a.png')], ['1', join(folder, 'b.png')], ['2', join(folder, 'c.png')]]);
      expect(Number(rows[1]![2])).toBe(expected.get(files[0]!));
      expect(rows[2]![9]).toBe('INVALID_ARGUMENT');
      expect(Number(rows[3]![2])).toBe(expected.get(files[2]!));
      expect(existsSync(`${out}.part-${process.pid}`)).toBe(false);
    }, 300000);

    test('a job for another detector, malformed jobs and thresholds fail once with typed errors naming the field', async () => {
      const sha = await modelFingerprint(model);
      const queueName = defaultQueueName(sha);
      const other = await client('0'.repeat(64), queueName);
      const wrong: QueueResult[] = [];
      for await (const r of other.score([images[0]!])) wrong.push(r);
      expect(wrong[0]!.error).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'job.model' });
      expect(wrong[0]!.error!.message).toContain(sha);

      const c = await client(sha);
      const opts: QueueResult[] = [];
      for await (const r of c.score([images[0]!, { data: images[0]!, className: 'pill' }], { threshold: { carpet: -5 } })) opts.push(r);
      expect(opts[0]).toMatchObject({ error: null, imageScore: expected.get(files[0]!) });
      expect(opts[1]).toMatchObject({ error: null, className: 'pill', classSource: 'given' });
      const badClass: QueueResult[] = [];
      for await (const r of c.score([images[0]!], { className: 'zebra' })) badClass.push(r);
      expect(badClass[0]!.error).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'job.className' });
      // collected jobs leave nothing behind: their stored images are removed with them
      expect(await storedImages(queueName)).toEqual([]);

      // Jobs written by something else than hgad's producer
      const q = new Queue(queueName, { connection: { url: redis.url }, prefix: 'hgad' });
      try {
        const good = { format: JOB_FORMAT, model: sha, submission: 'manual', index: 0, id: 'x', image: { bytes: images[0]!.toString('base64') } };
        // a stored image whose length is not the job's (job 0), and a job whose image is not stored (job 1)
        const store = new Redis(redis.url);
        try {
          await store.set(imageKey('hgad', queueName, 'manual.0'), images[0]!.subarray(1));
        } finally {
          store.disconnect();
        }
        const cases: [string, object, string?][] = [
          ['job.image.stored', { ...good, image: { stored: images[0]!.length } }],
          ['job.image.stored', { ...good, image: { stored: images[0]!.length } }, 'IO'],
          ['job.format', { ...good, format: 99 }],
          ['job.image', { ...good, image: { url: 'http://example.invalid/x.png' } }],
          ['job.image.bytes', { ...good, image: { bytes: '%%%%' } }],
          // the right length, one character outside base64's alphabet
          ['job.image.bytes', { ...good, image: { bytes: `${good.image.bytes.slice(0, 100)}%${good.image.bytes.slice(101)}` } }],
          ['job.image.ref', { ...good, image: { ref: '../outside.png' } }],
          ['job.threshold', { ...good, threshold: 'high' }],
          ['job.extra', { ...good, extra: 1 }],
        ];
        const jobs = await Promise.all(cases.map(([, data], i) => q.add('score', data, { jobId: `manual.${i}`, attempts: 3 })));
        const deadline = Date.now() + 30000;
        for (const job of jobs) {
          while (!(await q.getJob(job.id!))?.finishedOn && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        }
        const done = await Promise.all(jobs.map((j) => q.getJob(j.id!)));
        done.forEach((j, i) => {
          expect(j!.failedReason).toMatch(new RegExp(`^\\[${cases[i]![2] ?? 'INVALID_ARGUMENT'} ${cases[i]![0].replace(/\./g, '\\.')}\\] `));
          expect(j!.attemptsMade).toBe(1);
        });
        await q.obliterate({ force: true });
      } finally {
        await q.close();
      }
    }, 300000);
  });

  test('two detectors on one Redis, a queue each; SIGTERM while busy finishes the jobs held and exits 0', async () => {
    const dir2 = join(dir, 'second');
    await mkdir(dir2, { recursive: true });
    const second = await train({ ...tinyTrainOptions(await tinyDataset(join(dir2, 'data'))), seed: 2 });
    const model2 = join(dir2, 'second.hgad');
    await second.save(model2);
    const expected2: number[] = [];
    for await (const r of scoreImages(second, files, { onError: 'throw' })) expected2.push(r.imageScore);
    await second.dispose();

    const w1 = await startWorker(model);
    // a lock of 30 s: on a starved machine a 2 s lock can lapse without any kill
    const w2 = await startWorker(model2, ['--lock-ms', '30000']);
    const c1 = await client(model);
    const c2 = await client(model2);
    expect(c1.queueName).not.toBe(c2.queueName);
    const many = Array.from({ length: 60 }, (_, i) => ({ data: images[i % images.length]!, id: String(i) }));
    const r1: QueueResult[] = [];
    const r2: QueueResult[] = [];
    let stopped: Promise<number | null> | null = null;
    let w3: Promise<WorkerProcess> | null = null;
    let activeAtExit = -1;
    await Promise.all([
      (async () => { for await (const r of c1.score(many)) r1.push(r); })(),
      (async () => {
        for await (const r of c2.score(many)) {
          r2.push(r);
          if (r2.length === 10) {
            w2.child.kill('SIGTERM');
            stopped = w2.exited;
            // The moment it exited, no job may be left active (held and unfinished); the rest is
            // scored by a worker started after that.
            w3 = stopped.then(async () => {
              const r = new Redis(redis.url);
              try {
                activeAtExit = await r.llen(`hgad:${c2.queueName}:active`);
              } finally {
                r.disconnect();
              }
              return startWorker(model2);
            });
          }
        }
      })(),
    ]);
    expect(await stopped).toBe(0);
    expect(w2.log()).toMatch(/SIGTERM: finishing the jobs held[\s\S]*stopped \([1-9]\d* jobs completed, 0 failed/);
    expect(r1.map((r) => (r.error === null ? r.imageScore : r.error))).toEqual(many.map((_, i) => expected.get(files[i % files.length]!)));
    expect(r2.map((r) => (r.error === null ? r.imageScore : r.error))).toEqual(many.map((_, i) => expected2[i % files.length]));
    const last = await w3!;
    expect(activeAtExit).toBe(0);
    for (const w of [w1, last]) w.child.kill('SIGTERM');
    expect(await Promise.all([w1.exited, last.exited])).toEqual([0, 0]);
  }, 300000);
});

describe('queue options and helpers (no worker needed)', () => {
  const sha = 'a'.repeat(64);
  test('every options object rejects unknown keys and bad values, naming them', async () => {
    await expect(ScoringClient.connect({ redis: 'http://localhost', model: sha })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'options.redis' });
    await expect(ScoringClient.connect({ redis: 'redis://127.0.0.1:1', model: sha, host: 'x' } as never)).rejects.toMatchObject({ parameter: 'options.host' });
    await expect(ScoringClient.connect({ redis: 'redis://127.0.0.1:1', model: sha, queue: 'a:b' })).rejects.toMatchObject({ parameter: 'options.queue' });
    await expect(startWorkerInProcess({ redis: 'redis://127.0.0.1:1', model: 'm.hgad', batchsize: 4 } as never)).rejects.toMatchObject({ parameter: 'options.batchsize' });
    await expect(startWorkerInProcess({ redis: 'redis://127.0.0.1:1', model: 'm.hgad', lockMs: 10 })).rejects.toMatchObject({ parameter: 'options.lockMs' });
  });

  test('an unreachable Redis is a QUEUE error after connectTimeoutMs, not a hang', async () => {
    const port = await freePort();
    const t = Date.now();
    await expect(ScoringClient.connect({ redis: `redis://:secret@127.0.0.1:${port}`, model: sha, connectTimeoutMs: 500 }))
      .rejects.toMatchObject({ code: 'QUEUE', parameter: 'redis', message: expect.stringMatching(/Cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1/) });
    expect(Date.now() - t).toBeLessThan(10000);
  });

  test('typed errors survive the trip through a failedReason; anything else is a QUEUE error', () => {
    const e = { code: 'INVALID_ARGUMENT' as const, message: 'Cannot decode image "x [1]": bad] header', parameter: 'images[0].className' };
    expect(parseFailure(failureReason(e))).toEqual(e);
    expect(parseFailure(failureReason({ code: 'IO', message: 'gone' }))).toEqual({ code: 'IO', message: 'gone' });
    expect(parseFailure('job stalled more than allowable limit')).toMatchObject({ code: 'QUEUE', message: expect.stringContaining('stalled') });
  });

  test('a results file appears complete or not at all', async () => {
    const d = await mkdtemp(join(tmpdir(), 'hgad-results-'));
    try {
      const f = ResultsFile.open(join(d, 'r.jsonl'));
      await f.write({ index: 0, id: 'a', error: { code: 'IO', message: 'x' } });
      expect(existsSync(join(d, 'r.jsonl'))).toBe(false);
      await f.commit();
      expect(JSON.parse(await readFile(join(d, 'r.jsonl'), 'utf8'))).toMatchObject({ index: 0, error: { code: 'IO' } });
      const g = ResultsFile.open(join(d, 'r.csv'), 'csv');
      await g.write({ index: 0, id: 'a,"b"', error: { code: 'IO', message: 'x' } });
      await g.abort();
      expect(spawnSync('ls', [d], { encoding: 'utf8' }).stdout.trim()).toBe('r.jsonl');
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
