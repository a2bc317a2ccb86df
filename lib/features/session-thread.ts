// An onnxruntime session on its own worker thread, so that the backbone never blocks the event loop
// (onnxruntime-node's own session.run is synchronous on the calling thread: see session-worker.ts).
// Tensors cross as plain { type, data, dims }: inputs are copied (the caller keeps its arrays) unless
// the caller hands their buffers over, outputs are handed over without a copy (onnxruntime-node's
// output buffers are detachable). A copy of a batch's pixels is a few ms of the event loop's time on a
// busy machine, and garbage for its collector: the scorer hands its batches over.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { HgadError } from '../errors';

export interface WireTensor {
  type: string;
  data: Uint8Array | Float32Array | BigInt64Array | Int32Array;
  dims: number[];
}

/** The subset of onnxruntime's SessionOptions hgad sets (plain data: it crosses to the thread). */
export interface ThreadSessionOptions {
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode: 'sequential' | 'parallel';
  interOpNumThreads: number;
  intraOpNumThreads?: number;
  logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  /** onnxruntime's session config entries, nested by their dotted keys (values are strings). */
  extra?: { session?: Record<string, Record<string, string>> };
}

/** @internal what the worker is started with */
export interface SessionInit {
  model: Uint8Array;
  options: ThreadSessionOptions;
}

/** @internal */
export type ThreadRequest =
  | { kind: 'run'; id: number; feeds: Record<string, WireTensor>; outputs: string[] }
  | { kind: 'release'; id: number };

/** @internal */
export type ThreadReply =
  | { kind: 'ready' }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, WireTensor> }
  | { kind: 'error'; id: number; message: string }
  | { kind: 'released'; id: number };

/**
 * The worker's script: the compiled session-worker.js beside this file; under ts-jest (this file is
 * the .ts source) the compiled copy in dist/, so tests need `npm run build:ts` first, like the CLI test.
 */
function workerScript(): string {
  const beside = path.join(__dirname, 'session-worker.js');
  if (existsSync(beside)) return beside;
  const built = path.resolve(__dirname, '..', '..', 'dist', 'lib', 'features', 'session-worker.js');
  if (existsSync(built)) return built;
  throw new HgadError('NATIVE', `The backbone thread's script is missing (looked for ${beside} and ${built}): run npm run build:ts`, 'model');
}

interface Pending {
  resolve(outputs: Record<string, WireTensor>): void;
  reject(error: Error): void;
}

export class SessionThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | null = null;
  private released = false;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (r: ThreadReply) => this.settle(r));
    worker.on('error', (e) => this.fail(new Error(`the backbone thread failed: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`the backbone thread exited (code ${code})`)));
  }

  /** Starts the thread and creates the session there; rejects with onnxruntime's message when it cannot load the model. */
  static create(model: Uint8Array, options: ThreadSessionOptions): Promise<SessionThread> {
    const worker = new Worker(workerScript(), { workerData: { model, options } satisfies SessionInit });
    return new Promise((resolve, reject) => {
      const early = (e: Error): void => reject(e);
      const exit = (code: number): void => reject(new Error(`the backbone thread exited (code ${code}) before its session was ready`));
      worker.once('error', early);
      worker.once('exit', exit);
      worker.once('message', (r: ThreadReply) => {
        worker.off('error', early);
        worker.off('exit', exit);
        if (r.kind === 'ready') {
          const thread = new SessionThread(worker);
          worker.unref(); // an idle session must not keep the process alive
          resolve(thread);
        } else {
          void worker.terminate();
          reject(new Error(r.kind === 'failed' ? r.message : `unexpected reply ${r.kind}`));
        }
      });
    });
  }

  /**
   * One session.run on the thread; runs happen in call order. `transfer`: input buffers handed over
   * (detached here: the caller must not use them again).
   */
  run(feeds: Record<string, WireTensor>, outputs: string[], transfer: ArrayBuffer[] = []): Promise<Record<string, WireTensor>> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.released) return Promise.reject(new Error('the session was released'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ kind: 'run', id, feeds, outputs } satisfies ThreadRequest, transfer);
    });
  }

  /** Releases the session after the runs already asked for, then ends the thread. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.dead) return;
    const id = this.nextId++;
    const done = new Promise<unknown>((resolve) => this.pending.set(id, { resolve, reject: resolve }));
    this.worker.ref();
    this.worker.postMessage({ kind: 'release', id } satisfies ThreadRequest);
    await done;
    await this.worker.terminate();
  }

  private settle(r: ThreadReply): void {
    if (r.kind === 'ready' || r.kind === 'failed') return;
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.worker.unref();
    if (r.kind === 'result') p.resolve(r.outputs);
    else if (r.kind === 'error') p.reject(new Error(r.message));
    else p.resolve({});
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
