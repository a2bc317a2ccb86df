// Results of a submission in input order, each exactly once. Outcomes arrive out of order and
// possibly more than once (a queue event and a poll can both report a job); the first one for an
// index is kept and the rest ignored, and they are handed out as soon as every earlier one is in.
import type { PresentedResult } from '../score/present';

export class ResultCollector {
  private readonly ready = new Map<number, PresentedResult>();
  /** Next index to hand out: everything below it was handed out. */
  private next = 0;
  private waiters: (() => void)[] = [];
  private sleepers: (() => void)[] = [];
  private failure: Error | null = null;

  constructor(readonly total: number) {}

  /** Records an image's outcome; false when it was already known (a duplicate report). */
  accept(index: number, result: PresentedResult): boolean {
    if (!Number.isSafeInteger(index) || index < this.next || index >= this.total || this.ready.has(index)) return false;
    this.ready.set(index, { ...result, index });
    if (index === this.next) this.wake();
    return true;
  }

  /** The next index to hand out. */
  get head(): number {
    return this.next;
  }

  has(index: number): boolean {
    return index < this.next || this.ready.has(index);
  }

  /** Up to `count` indexes below `limit` with no outcome yet, oldest first. */
  oldestMissing(limit: number, count: number): number[] {
    const out: number[] = [];
    for (let i = this.next; i < limit && out.length < count; i++) if (!this.ready.has(i)) out.push(i);
    return out;
  }

  /** Waits for the next result in order, then returns it and every one after it that is in. */
  async take(): Promise<PresentedResult[]> {
    while (!this.ready.has(this.next) && this.next < this.total) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failure) throw this.failure;
    const out: PresentedResult[] = [];
    for (let r = this.ready.get(this.next); r !== undefined; r = this.ready.get(this.next)) {
      out.push(r);
      this.ready.delete(this.next);
      this.next += 1;
    }
    return out;
  }

  /** Sleeps up to ms, or until interrupt(). */
  async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.sleepers.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Ends every sleep() now. */
  interrupt(): void {
    for (const w of this.sleepers.splice(0)) w();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Makes take() reject (the poller failed). */
  fail(e: Error): void {
    this.failure = e;
    this.wake();
  }
}
