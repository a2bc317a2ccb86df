// Writing the report: rendered completely first, then a temporary sibling, fsync, rename, so the
// path holds either its old contents or the whole new report, never a part.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

import { HgadArgumentError, HgadError } from '../errors';
import type { EvaluationOutput } from '../eval/run';
import { checkKeys } from '../validate';
import { RENDER_KEYS, type WriteReportOptions } from './options';
import { renderReport } from './render';

export async function writeTextAtomic(file: string, text: string, parameter: string): Promise<void> {
  // Same directory as the target: rename is only atomic within one file system.
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'wx');
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, file);
  } catch (e) {
    await handle?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new HgadError('IO', `Cannot write ${file}: ${(e as Error).message}`, parameter);
  }
}

/** Renders the report and writes it to options.path atomically. */
export async function writeReport(output: EvaluationOutput, options: WriteReportOptions): Promise<void> {
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object { path, ... }', options);
  checkKeys('options', options, [...RENDER_KEYS, 'path']);
  if (typeof options.path !== 'string' || options.path === '') throw new HgadArgumentError('options.path', 'a file path', options.path);
  const { path, ...rest } = options;
  const html = await renderReport(output, rest);
  await writeTextAtomic(path, html, 'options.path');
}
