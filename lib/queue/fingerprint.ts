// Which detector a job is for: the SHA-256 of the detector file. Producers put it in every job and
// workers compare it with the file they loaded, so several detectors can share one Redis and a job
// is never scored by the wrong one. The default queue name is derived from it too.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

import { HgadArgumentError, HgadError } from '../errors';

const SHA256 = /^[0-9a-f]{64}$/;

/** SHA-256 of a detector file, as 64 lowercase hex digits. */
export async function modelFingerprint(file: string): Promise<string> {
  if (typeof file !== 'string' || file.length === 0) throw new HgadArgumentError('model', 'the path of a detector file', file);
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (e) {
    throw new HgadError('IO', `Cannot read the detector file ${file}: ${(e as Error).message}`, 'model');
  }
  return hash.digest('hex');
}

export function checkFingerprint(parameter: string, v: unknown): string {
  if (typeof v !== 'string' || !SHA256.test(v)) throw new HgadArgumentError(parameter, 'a SHA-256 as 64 lowercase hex digits', v);
  return v;
}

/** The queue a detector's jobs go to unless told otherwise: one queue per detector. */
export function defaultQueueName(fingerprint: string): string {
  return `hgad-${fingerprint.slice(0, 16)}`;
}

const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export function checkQueueName(parameter: string, v: unknown): string {
  if (typeof v !== 'string' || !QUEUE_NAME.test(v)) {
    throw new HgadArgumentError(parameter, 'a queue name of 1 to 128 letters, digits, _, . or -', v);
  }
  return v;
}
