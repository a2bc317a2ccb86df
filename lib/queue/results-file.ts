// A results file written as results arrive (in input order), for submissions too large to hold in
// memory: JSON Lines (one result object per line) or CSV. It is written under a temporary name and
// renamed into place only when every result is in, so the target is never a partial file.
import { createWriteStream, WriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';

import { HgadArgumentError, HgadError } from '../errors';
import type { PresentedResult } from '../score/present';

export type ResultsFormat = 'jsonl' | 'csv';

const CSV_HEADER = 'index,id,imageScore,isAnomaly,threshold,thresholdSource,className,classConfidence,classSource,errorCode,error\n';

function csvField(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function csvRow(r: PresentedResult): string {
  const cells = r.error === null
    ? [String(r.index), csvField(r.id), String(r.imageScore), String(r.isAnomaly ?? ''), String(r.threshold ?? ''), r.thresholdSource ?? '',
      csvField(r.className), r.classConfidence.toFixed(4), r.classSource, '', '']
    : [String(r.index), csvField(r.id), '', '', '', '', '', '', '', r.error.code, csvField(r.error.message)];
  return `${cells.join(',')}\n`;
}

export class ResultsFile {
  private readonly temp: string;
  private readonly stream: WriteStream;
  private error: Error | null = null;
  private done = false;

  private constructor(readonly file: string, readonly format: ResultsFormat) {
    this.temp = `${file}.part-${process.pid}`;
    this.stream = createWriteStream(this.temp, { flags: 'wx' });
    this.stream.on('error', (e) => { this.error = e; });
    if (format === 'csv') this.stream.write(CSV_HEADER);
  }

  static open(file: string, format: ResultsFormat = 'jsonl'): ResultsFile {
    if (typeof file !== 'string' || file.length === 0) throw new HgadArgumentError('file', 'a file path', file);
    if (format !== 'jsonl' && format !== 'csv') throw new HgadArgumentError('format', "'jsonl' or 'csv'", format);
    return new ResultsFile(file, format);
  }

  /** Appends one result, waiting when the disk is slower than the results (backpressure). */
  async write(r: PresentedResult): Promise<void> {
    this.check();
    const line = this.format === 'csv' ? csvRow(r) : `${JSON.stringify(r)}\n`;
    if (!this.stream.write(line)) {
      await new Promise<void>((resolve) => {
        const go = (): void => {
          this.stream.off('drain', go);
          this.stream.off('error', go);
          resolve();
        };
        this.stream.on('drain', go);
        this.stream.on('error', go);
      });
    }
    this.check();
  }

  /** Flushes and renames the file into place. */
  async commit(): Promise<void> {
    await this.end();
    this.check();
    try {
      await rename(this.temp, this.file);
    } catch (e) {
      throw new HgadError('IO', `Cannot write ${this.file}: ${(e as Error).message}`, 'out');
    }
  }

  /** Removes the temporary file (the target is left as it was). */
  async abort(): Promise<void> {
    await this.end();
    await unlink(this.temp).catch(() => {});
  }

  private async end(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await new Promise<void>((resolve) => {
      if (this.stream.destroyed) resolve();
      else this.stream.end(() => resolve());
      this.stream.once('error', () => resolve());
    });
  }

  private check(): void {
    if (this.error) throw new HgadError('IO', `Cannot write ${this.temp}: ${this.error.message}`, 'out');
  }
}
