// Measures how long the event loop is held up: perf_hooks.monitorEventLoopDelay (what a server sees),
// and beside it the same delays less the time the main thread spent waiting for a CPU (its run-queue
// wait, from /proc/self/task/<pid>/schedstat on Linux). On a machine shared with other jobs the raw
// delay includes the scheduler's; the remainder is what the process itself blocks the loop for.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

export interface LoopDelay {
  /** monitorEventLoopDelay, ms */
  p99: number;
  max: number;
  /** Delays less the main thread's run-queue wait over each, ms (equal to the raw ones without /proc). */
  blockedP99: number;
  blockedMax: number;
  /** blockedMax over the loop turns that no garbage collection overlapped, ms. */
  blockedMaxNoGc: number;
  /**
   * The main thread's own CPU time within one loop turn, ms: what the process itself holds the loop
   * for (JavaScript, native calls, garbage collection), whatever the machine's load; p99 and max.
   */
  cpuP99: number;
  cpuMax: number;
  /** Longest garbage-collection pause seen (wall time, so it too grows on a busy machine), ms. */
  gcMax: number;
  /** Share of the measured time the main thread waited for a CPU. */
  runQueueShare: number;
}

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;

/** The main thread's [time on a CPU, time waiting for one] so far, ms (null without /proc). */
function schedstat(): [number, number] | null {
  try {
    const f = readFileSync(SCHEDSTAT, 'utf8').split(' ');
    return [Number(f[0]) / 1e6, Number(f[1]) / 1e6];
  } catch {
    return null;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `work` while sampling the loop every millisecond. */
export async function measureLoop(work: () => Promise<void>): Promise<LoopDelay> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  const blocked: number[] = [];
  const cpu: number[] = [];
  const turns: { from: number; to: number; blocked: number }[] = [];
  const gcs: { from: number; to: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ from: e.startTime, to: e.startTime + e.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  const s0 = schedstat();
  let last = t0;
  let lastStat = s0;
  const timer = setInterval(() => {
    const now = performance.now();
    const stat = schedstat();
    const delay = Math.max(0, now - last - 1);
    const b = Math.max(0, delay - (stat !== null && lastStat !== null ? stat[1] - lastStat[1] : 0));
    blocked.push(b);
    cpu.push(stat !== null && lastStat !== null ? stat[0] - lastStat[0] : b);
    if (b > 10) turns.push({ from: last, to: now, blocked: b });
    last = now;
    lastStat = stat;
  }, 1);
  histogram.enable();
  try {
    await work();
  } finally {
    histogram.disable();
    clearInterval(timer);
    await new Promise((resolve) => setImmediate(resolve)); // let the observer see the last collections
    observer.disconnect();
  }
  const overlapsGc = (t: { from: number; to: number }): boolean => gcs.some((g) => g.from < t.to && g.to > t.from);
  const total = performance.now() - t0;
  const s1 = schedstat();
  blocked.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  return {
    p99: histogram.percentile(99) / 1e6,
    max: histogram.max / 1e6,
    blockedP99: percentile(blocked, 99),
    blockedMax: blocked[blocked.length - 1] ?? 0,
    blockedMaxNoGc: Math.max(0, ...turns.filter((t) => !overlapsGc(t)).map((t) => t.blocked)),
    cpuP99: percentile(cpu, 99),
    cpuMax: cpu[cpu.length - 1] ?? 0,
    gcMax: Math.max(0, ...gcs.map((g) => g.to - g.from)),
    runQueueShare: s0 !== null && s1 !== null ? (s1[1] - s0[1]) / total : 0,
  };
}

export function describeDelay(d: LoopDelay): string {
  const f = (x: number): string => x.toFixed(1);
  return `event-loop delay p99 ${f(d.p99)} ms, max ${f(d.max)} ms; less run-queue wait: p99 ${f(d.blockedP99)} ms, ` +
    `max ${f(d.blockedMax)} ms (${f(d.blockedMaxNoGc)} ms outside garbage collections, longest ${f(d.gcMax)} ms); ` +
    `main thread's own CPU time per turn p99 ${f(d.cpuP99)} ms, max ${f(d.cpuMax)} ms; waiting for a CPU ${(100 * d.runQueueShare).toFixed(0)}% of the time`;
}
