// The scoring job as it is stored in Redis: one image per job, so that a job's outcome is exactly one
// image's result or typed error, retries and stalled-job recovery act per image, and an undecodable
// image fails alone. Producers build jobs with jobData(); workers trust nothing in Redis and check
// every field with parseJobData() before using it.
import { HgadArgumentError, HgadError, HgadErrorCode, HGAD_ERROR_CODES } from '../errors';
import type { ImageError } from '../score/scorer';
import type { ThresholdOverride } from '../score/threshold';
import { checkFingerprint } from './fingerprint';

export const JOB_NAME = 'score';
/**
 * Version of the job layout hgad's producer writes; a worker refuses layouts it does not know. 2 adds
 * images stored beside the job ({ stored }); a worker also takes the layout-1 jobs of earlier producers.
 */
export const JOB_FORMAT = 2;
const JOB_FORMATS = [1, 2];

/**
 * The image: its bytes (or raw 8-bit pixels, with their shape) stored as a binary value beside the job
 * (`stored`: their length; the key is the job's own, imageKey), or base64 in the job itself (`bytes`,
 * `raw`: what layout 1 wrote), or a reference: a path relative to the storage root every worker
 * mounts (--root). Stored bytes cost Redis their size, not 4/3 of it inside a JSON string, and a
 * worker reads them as a Buffer: no string of the image's size to parse, decode and collect.
 */
export type JobImage =
  | { stored: number }
  | { stored: number; width: number; height: number; channels: 1 | 2 | 3 | 4 }
  | { bytes: string }
  | { raw: string; width: number; height: number; channels: 1 | 2 | 3 | 4 }
  | { ref: string };

/**
 * The Redis key of a job's stored image: beside the queue's own keys, named by the job id, so that a
 * job cannot point a worker at any other key. The worker that finishes the job removes it, the
 * producer too when it collects the result; it expires after 7 days whatever happens (BullMQ's
 * obliterate does not know it).
 */
export function imageKey(prefix: string, queue: string, id: string): string {
  return `${prefix}:${queue}:image:${id}`;
}

export interface ScoringJobData {
  format: typeof JOB_FORMAT;
  /** SHA-256 of the detector file the image must be scored with. */
  model: string;
  submission: string;
  /** Position in the submission. */
  index: number;
  id: string;
  image: JobImage;
  className?: string;
  threshold?: ThresholdOverride;
  heatmap?: boolean;
}

const SUBMISSION = /^[A-Za-z0-9_-]{1,64}$/;
const DATA_KEYS = ['format', 'model', 'submission', 'index', 'id', 'image', 'className', 'threshold', 'heatmap'];

export function checkSubmissionId(parameter: string, v: unknown): string {
  if (typeof v !== 'string' || !SUBMISSION.test(v)) throw new HgadArgumentError(parameter, '1 to 64 letters, digits, _ or -', v);
  return v;
}

/** BullMQ job ids: unique per image of a submission, so adding a job twice (a retried add) is a no-op. */
export function jobId(submission: string, index: number): string {
  return `${submission}.${index}`;
}

/** The submission and index of a job id, or null for a job that is not one of ours. */
export function parseJobId(id: string): { submission: string; index: number } | null {
  const m = /^([A-Za-z0-9_-]{1,64})\.(\d{1,15})$/.exec(id);
  return m ? { submission: m[1]!, index: Number(m[2]) } : null;
}

/**
 * Checks job data read from Redis. Anything malformed is an HgadArgumentError naming the field
 * (`job.image.ref`, ...): the job fails once with it, as a retry could not help.
 */
export function parseJobData(data: unknown, maxImageBytes: number): ScoringJobData {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new HgadArgumentError('job', 'an hgad scoring job', data);
  const d = data as Record<string, unknown>;
  for (const key of Object.keys(d)) {
    if (!DATA_KEYS.includes(key)) throw new HgadArgumentError(`job.${key}`, `one of the keys ${DATA_KEYS.join(', ')}`, key);
  }
  if (!JOB_FORMATS.includes(d.format as number)) {
    throw new HgadArgumentError('job.format', `${JOB_FORMATS.join(' or ')} (the job layouts this worker knows; update hgad)`, d.format);
  }
  checkFingerprint('job.model', d.model);
  checkSubmissionId('job.submission', d.submission);
  if (!Number.isSafeInteger(d.index) || (d.index as number) < 0) throw new HgadArgumentError('job.index', 'an integer >= 0', d.index);
  if (typeof d.id !== 'string' || d.id.length === 0 || d.id.length > 1024) throw new HgadArgumentError('job.id', 'a string of 1 to 1024 characters', d.id);
  if (d.className !== undefined && (typeof d.className !== 'string' || d.className.length === 0)) {
    throw new HgadArgumentError('job.className', 'a class name', d.className);
  }
  if (d.heatmap !== undefined && typeof d.heatmap !== 'boolean') throw new HgadArgumentError('job.heatmap', 'true or false', d.heatmap);
  // threshold: checked against the detector's classes by the worker (checkThreshold)
  const image = d.image;
  const layouts = '{ stored }, { stored, width, height, channels }, { bytes }, { raw, width, height, channels } or { ref }';
  if (typeof image !== 'object' || image === null || Array.isArray(image)) throw new HgadArgumentError('job.image', layouts, image);
  const im = image as Record<string, unknown>;
  const keys = Object.keys(im).sort().join(',');
  const base64 = (key: string): void => {
    const v = im[key];
    // 4/3 of the bytes, rounded up to whole groups of four characters; the characters themselves are
    // checked by decodeBase64 as it decodes (a regular expression over 50 KiB cost 0.5 ms per job).
    if (typeof v !== 'string' || v.length === 0 || v.length % 4 !== 0) {
      throw new HgadArgumentError(`job.image.${key}`, 'base64 data', v);
    }
    if ((v.length / 4) * 3 > maxImageBytes + 2) throw new HgadArgumentError(`job.image.${key}`, `at most ${maxImageBytes} bytes (--max-image-bytes)`, `${(v.length / 4) * 3} bytes`);
  };
  if (keys === 'stored' || keys === 'channels,height,stored,width') {
    // raw shapes: checked by the scorer's raw-image check
    if (d.format === 1) throw new HgadArgumentError('job.image', 'layout 1 images ({ bytes }, { raw, ... } or { ref })', 'stored');
    if (!Number.isSafeInteger(im.stored) || (im.stored as number) < 1 || (im.stored as number) > maxImageBytes) {
      throw new HgadArgumentError('job.image.stored', `the image's length, 1 to ${maxImageBytes} bytes (--max-image-bytes)`, im.stored);
    }
  } else if (keys === 'bytes') base64('bytes');
  else if (keys === 'channels,height,raw,width') base64('raw');
  else if (keys === 'ref') {
    if (typeof im.ref !== 'string' || im.ref.length === 0 || im.ref.length > 4096) throw new HgadArgumentError('job.image.ref', 'a relative path', im.ref);
  } else {
    throw new HgadArgumentError('job.image', layouts, `keys ${keys}`);
  }
  return d as unknown as ScoringJobData;
}

/**
 * The bytes of a base64 field checked by parseJobData. Node's decoder (which also takes the URL-safe
 * alphabet) skips other characters and stops at misplaced padding, so any of them leaves the output
 * shorter than the length that the string's size and padding promise.
 */
export function decodeBase64(parameter: string, v: string): Buffer {
  const padding = v.endsWith('==') ? 2 : v.endsWith('=') ? 1 : 0;
  const bytes = Buffer.from(v, 'base64');
  if (bytes.length !== (v.length / 4) * 3 - padding) throw new HgadArgumentError(parameter, 'base64 data', `${v.slice(0, 32)}${v.length > 32 ? '...' : ''}`);
  return bytes;
}

/**
 * A typed error as a job's failedReason: `[CODE parameter] message`, readable in any BullMQ dashboard
 * and read back into { code, parameter, message } by the collector.
 */
export function failureReason(e: ImageError | HgadError): string {
  return `[${e.code}${e.parameter !== undefined ? ` ${e.parameter}` : ''}] ${e.message}`;
}

export function parseFailure(reason: string | undefined): ImageError {
  const m = /^\[([A-Z_]+)(?: (\S+?))?\] ([\s\S]*)$/.exec(reason ?? '');
  if (m && (HGAD_ERROR_CODES as readonly string[]).includes(m[1]!)) {
    return { code: m[1] as HgadErrorCode, message: m[3]!, ...(m[2] !== undefined ? { parameter: m[2] } : {}) };
  }
  // Not the worker's own words: BullMQ gave up on the job (stalled too often, lock lost, ...).
  return { code: 'QUEUE', message: `The queue failed the job: ${reason ?? 'no reason given'}` };
}
