/**
 * Seeded child-process fuzz runner, shared by every fuzz target of the project.
 *
 * A TARGET is a module (TypeScript or JavaScript, path given to runFuzz) that exports `target`:
 *
 *   export const target: FuzzTarget<MyCase> = {
 *     setup?(ctx)                  // once per child process, before its first case (build seed files...)
 *     generate(seed, index, ctx)   // -> case; must be deterministic in (seed, index): a failure is
 *                                  //    reproduced with the same seed and index
 *     describe?(case)              // -> one line naming the case (shown for failures)
 *     run(case, ctx)               // resolve: 'accepted'; throw: classified below
 *     teardown?(ctx)               // once per child, when the parent ends the campaign normally
 *   };
 *
 * ctx is { seed, workDir, params }: workDir is a temporary folder shared by all children of one campaign
 * (removed afterwards), params the JSON-serialisable `params` option of runFuzz.
 *
 * The parent (runFuzz) starts a child node process (test/fuzz/child.js, which loads TypeScript through
 * test/fuzz/register.js), hands it case indices one at a time over IPC and classifies each outcome:
 *   accepted  run() resolved
 *   typed     run() threw an HgadError with a known code (the contract for bad input)
 *   untyped   run() threw anything else (a failure), or a promise of the case rejected unhandled
 *   crash     the child died while the case was in flight (signal, abort, exit): a failure; a new
 *             child is started and the campaign continues with the next case
 *   hang      the case did not settle within caseTimeoutMs (a stalled event loop counts too): the child
 *             is killed (SIGKILL), a failure
 *   oom       the child's resident memory passed memoryLimitMb while the case ran: killed, a failure
 * Many cases run in one child (a child is replaced only after a crash, hang or oom), so a campaign of
 * thousands of cases costs a few child start-ups.
 *
 * runFuzz resolves to a FuzzReport: counts per outcome, typed-error counts per code, and every failure
 * with its index and description. It never throws for failures of the code under test; callers
 * (jest tests, test/fuzz/cli.ts) assert on the report. formatReport() renders it as text.
 *
 * This interface is stable: other targets (detector files, images) depend on it.
 */
import { ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export type FuzzOutcome = 'accepted' | 'typed' | 'untyped' | 'crash' | 'hang' | 'oom';
export const FUZZ_OUTCOMES: readonly FuzzOutcome[] = ['accepted', 'typed', 'untyped', 'crash', 'hang', 'oom'];
/** Outcomes that mean the code under test is wrong. */
export const FUZZ_FAILURES: readonly FuzzOutcome[] = ['untyped', 'crash', 'hang', 'oom'];

export interface FuzzContext {
  seed: number;
  workDir: string;
  params: Record<string, unknown>;
}

export interface FuzzTarget<C> {
  setup?(ctx: FuzzContext): void | Promise<void>;
  generate(seed: number, index: number, ctx: FuzzContext): C | Promise<C>;
  describe?(c: C): string;
  run(c: C, ctx: FuzzContext): unknown | Promise<unknown>;
  teardown?(ctx: FuzzContext): void | Promise<void>;
}

export interface FuzzOptions {
  /** Path of the target module (absolute, or relative to the current directory). */
  target: string;
  seed: number;
  /** Cases [start, start + count). start defaults to 0. */
  count: number;
  start?: number;
  /** A case that does not settle within this is a hang. Default 10 s. */
  caseTimeoutMs?: number;
  /** A child must load the target and finish setup() within this. Default 120 s. */
  startTimeoutMs?: number;
  /** Resident memory of a child above which the case in flight is an 'oom'. Default 2048 MiB. */
  memoryLimitMb?: number;
  /** Passed to the target as ctx.params (JSON). */
  params?: Record<string, unknown>;
  /** Extra node flags for the child (e.g. ['--max-old-space-size=1024']). */
  execArgv?: string[];
  /** Called after every case (progress display). */
  onCase?: (r: FuzzCaseResult) => void;
}

export interface FuzzCaseResult {
  index: number;
  outcome: FuzzOutcome;
  /** HgadError code for 'typed'; the error's class for 'untyped'; the signal or exit code for 'crash'. */
  code?: string;
  message?: string;
  description?: string;
  ms?: number;
}

export interface FuzzReport {
  target: string;
  seed: number;
  start: number;
  count: number;
  counts: Record<FuzzOutcome, number>;
  /** 'typed' outcomes by HgadError code. */
  codes: Record<string, number>;
  /** Every case whose outcome is in FUZZ_FAILURES (plus stray rejections), in index order. */
  failures: FuzzCaseResult[];
  /** Child processes started (1 + one per crash, hang or oom). */
  children: number;
  seconds: number;
  /** The slowest settled cases (index, ms), slowest first. */
  slowest: Array<{ index: number; ms: number; description?: string }>;
}

const CHILD = join(__dirname, 'child.js');
const STDERR_TAIL = 4000;

interface ChildMessage {
  type: 'ready' | 'start' | 'result' | 'stray';
  index?: number;
  outcome?: FuzzOutcome;
  code?: string;
  message?: string;
  stack?: string;
  description?: string;
  ms?: number;
}

/** Resident set size of a process in MiB (Linux /proc), or 0 where it cannot be read. */
function rssMb(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * 4096) / 2 ** 20;
  } catch {
    return 0;
  }
}

class Child {
  readonly proc: ChildProcess;
  stderr = '';
  exitReason = '';
  /** Settles when the process has exited. */
  readonly exited: Promise<void>;
  private done = false;
  private waiter: ((m: ChildMessage | 'exit') => void) | undefined;
  private queue: ChildMessage[] = [];

  constructor(target: string, options: object, execArgv: string[]) {
    this.proc = fork(CHILD, [target, JSON.stringify(options)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      execArgv,
      serialization: 'json',
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-STDERR_TAIL);
    });
    this.proc.on('message', (m: ChildMessage) => this.deliver(m));
    this.exited = new Promise((resolveExit) => {
      this.proc.on('exit', (code, signal) => {
        this.done = true;
        this.exitReason = signal ? signal : `exit ${code}`;
        resolveExit();
        // Messages sent just before exiting arrive before 'exit', so anything queued is read first.
        if (this.queue.length === 0) this.deliver('exit');
      });
    });
  }

  get alive(): boolean {
    return !this.done;
  }

  private deliver(m: ChildMessage | 'exit'): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
    } else if (m !== 'exit') {
      this.queue.push(m);
    }
  }

  /**
   * The next message, or why there is none: 'exit' (the child died), 'timeout' or 'memory' (resident
   * memory above the limit, checked every 100 ms while waiting).
   */
  next(timeoutMs: number, memoryLimitMb: number): Promise<ChildMessage | 'exit' | 'timeout' | 'memory'> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.done) return Promise.resolve('exit');
    return new Promise((resolveNext) => {
      const finish = (v: ChildMessage | 'exit' | 'timeout' | 'memory'): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiter = undefined;
        resolveNext(v);
      };
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      const poll = setInterval(() => {
        if (this.proc.pid !== undefined && rssMb(this.proc.pid) > memoryLimitMb) finish('memory');
      }, 100);
      this.waiter = finish;
    });
  }

  send(m: object): void {
    if (this.alive && this.proc.connected) this.proc.send(m);
  }

  async kill(): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  /** Asks the child to finish (teardown) and waits up to 10 s before killing it. */
  async close(): Promise<void> {
    if (!this.alive) return;
    this.send({ type: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Runs one campaign; see the header comment. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const target = resolve(options.target);
  const start = options.start ?? 0;
  const caseTimeoutMs = options.caseTimeoutMs ?? 10_000;
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const memoryLimitMb = options.memoryLimitMb ?? 2048;
  const workDir = await mkdtemp(join(tmpdir(), 'hgad-fuzz-'));
  const childOptions = { seed: options.seed, workDir, params: options.params ?? {} };
  const counts = Object.fromEntries(FUZZ_OUTCOMES.map((o) => [o, 0])) as Record<FuzzOutcome, number>;
  const codes: Record<string, number> = {};
  const failures: FuzzCaseResult[] = [];
  const settledTimes: Array<{ index: number; ms: number; description?: string }> = [];
  const t0 = Date.now();
  let children = 0;
  let child: Child | undefined;

  const record = (r: FuzzCaseResult): void => {
    counts[r.outcome] += 1;
    if (r.outcome === 'typed' && r.code) codes[r.code] = (codes[r.code] ?? 0) + 1;
    if ((FUZZ_FAILURES as readonly string[]).includes(r.outcome)) failures.push(r);
    if (r.ms !== undefined) settledTimes.push({ index: r.index, ms: r.ms, description: r.description });
    options.onCase?.(r);
  };
  const stray = (m: ChildMessage): void => {
    failures.push({ index: m.index ?? -1, outcome: 'untyped', code: m.code, message: `unhandled rejection: ${m.message}` });
    counts.untyped += 1;
  };

  const startChild = async (): Promise<Child> => {
    children += 1;
    const c = new Child(target, childOptions, options.execArgv ?? []);
    for (;;) {
      const m = await c.next(startTimeoutMs, Number.POSITIVE_INFINITY);
      if (typeof m === 'object' && m.type === 'ready') return c;
      if (typeof m === 'object' && m.type === 'stray') continue;
      await c.kill();
      throw new Error(`fuzz child for ${target} did not start (${typeof m === 'string' ? m : m.type}, ` +
        `${c.exitReason}): ${c.stderr}`);
    }
  };

  try {
    for (let index = start; index < start + options.count; index++) {
      if (!child || !child.alive) child = await startChild();
      child.send({ type: 'run', index });
      let description: string | undefined;
      let caseStart = Date.now();
      for (;;) {
        const remaining = caseTimeoutMs - (Date.now() - caseStart);
        const m = await child.next(Math.max(1, remaining), memoryLimitMb);
        if (m === 'timeout' || m === 'memory') {
          await child.kill();
          record({
            index, description, outcome: m === 'timeout' ? 'hang' : 'oom',
            message: m === 'timeout' ? `no result within ${caseTimeoutMs} ms` : `resident memory above ${memoryLimitMb} MiB`,
          });
          break;
        }
        if (m === 'exit') {
          record({ index, description, outcome: 'crash', code: child.exitReason, message: child.stderr.trim().slice(-1500) });
          break;
        }
        if (m.type === 'stray') {
          stray(m);
          continue;
        }
        if (m.type === 'start') {
          description = m.description;
          caseStart = Date.now(); // the timeout covers run(), not generate()
          continue;
        }
        if (m.type === 'result' && m.index === index) {
          record({
            index, description, outcome: m.outcome!, code: m.code, ms: m.ms,
            message: m.outcome === 'untyped' && m.stack ? `${m.message}\n${m.stack}` : m.message,
          });
          break;
        }
      }
    }
  } finally {
    await child?.close();
    await rm(workDir, { recursive: true, force: true });
  }
  settledTimes.sort((a, b) => b.ms - a.ms);
  return {
    target, seed: options.seed, start, count: options.count, counts, codes,
    failures: failures.sort((a, b) => a.index - b.index), children,
    seconds: (Date.now() - t0) / 1000, slowest: settledTimes.slice(0, 5),
  };
}

/** A few lines: counts per outcome, typed errors per code, the first failures with how to rerun them. */
export function formatReport(r: FuzzReport, maxFailures = 10): string {
  const lines = [
    `fuzz ${r.target} seed ${r.seed} cases [${r.start}, ${r.start + r.count}): ` +
      FUZZ_OUTCOMES.map((o) => `${o} ${r.counts[o]}`).join(', ') +
      ` (${r.seconds.toFixed(1)} s, ${r.children} child process${r.children === 1 ? '' : 'es'})`,
    `  typed errors by code: ${Object.entries(r.codes).map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}`,
    `  slowest: ${r.slowest.map((s) => `#${s.index} ${s.ms.toFixed(0)} ms`).join(', ')}`,
  ];
  for (const f of r.failures.slice(0, maxFailures)) {
    lines.push(`  FAIL #${f.index} ${f.outcome}${f.code ? ` (${f.code})` : ''}: ${f.description ?? ''}`);
    if (f.message) lines.push(`    ${f.message.split('\n').slice(0, 6).join('\n    ')}`);
  }
  if (r.failures.length > maxFailures) lines.push(`  ... and ${r.failures.length - maxFailures} more failures`);
  if (r.failures.length > 0) lines.push(`  rerun one case: npm run fuzz -- --target <target> --seed ${r.seed} --start <index> --count 1`);
  return lines.join('\n');
}
