// Training progress: the numbers a callback receives, and a one-line bar for terminals.
import type { LossTerms } from '../model';

export interface TrainProgress {
  /** 0-based meta epoch and pass within it; step counts batches from the start of the run. */
  epoch: number;
  epochs: number;
  subEpoch: number;
  subEpochs: number;
  step: number;
  totalSteps: number;
  phase: 1 | 2;
  lr: number;
  /** Loss terms of the last batch, averaged over the levels. */
  losses: LossTerms;
  imagesPerSecond: number;
  /** Seconds left at the current rate (null before the first batch is timed). */
  etaSeconds: number | null;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export function formatProgress(p: TrainProgress, width = 20): string {
  const done = Math.min(width, Math.round((width * p.step) / Math.max(1, p.totalSteps)));
  const bar = '#'.repeat(done) + '.'.repeat(width - done);
  const l = p.losses;
  const terms = p.phase === 1
    ? `Lg ${l.Lg.toFixed(3)} Lmi ${l.Lmi.toFixed(3)} Le ${l.Le.toFixed(3)}`
    : `Lg ${l.Lg.toFixed(3)} Lmi ${l.Lmi.toFixed(3)} Le ${l.Le.toFixed(3)} Lgi ${l.Lgi.toFixed(3)} Lz ${l.Lz.toFixed(3)}`;
  return `epoch ${p.epoch + 1}/${p.epochs} pass ${p.subEpoch + 1}/${p.subEpochs} [${bar}] ` +
    `step ${p.step}/${p.totalSteps} phase ${p.phase} lr ${p.lr.toExponential(2)} ${terms} ` +
    `${p.imagesPerSecond.toFixed(1)} img/s ETA ${p.etaSeconds === null ? '?' : formatDuration(p.etaSeconds)}`;
}

/** Redraws one line on a TTY; on anything else prints a line at most every `intervalMs`. */
export class ProgressLine {
  private last = 0;
  constructor(private readonly stream: NodeJS.WriteStream, private readonly intervalMs = 200) {}

  update(p: TrainProgress): void {
    const now = Date.now();
    const final = p.step === p.totalSteps;
    const tty = this.stream.isTTY === true;
    if (!final && now - this.last < (tty ? this.intervalMs : 10000)) return;
    this.last = now;
    const line = formatProgress(p);
    if (tty) {
      const cols = this.stream.columns ?? 120;
      this.stream.write(`\r${line.length > cols - 1 ? line.slice(0, cols - 1) : line.padEnd(cols - 1)}${final ? '\n' : ''}`);
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}
