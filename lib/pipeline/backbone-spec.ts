// Turning the user's backbone choice into a stored BackboneSpec and back into an open Backbone, with
// the file's sha256 checked before anything parses it, so a detector never silently runs on other
// features than it learned and a detector file cannot make the loader parse an arbitrary file.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import * as nodePath from 'node:path';

import { HgadArgumentError, HgadError } from '../errors';
import { Backbone, BackboneOptions } from '../features/backbone';
import { PRESETS, resolveBackbone } from '../features/presets';
import { checkKeys } from '../validate';
import type { BackboneSpec } from './spec';

const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

export interface BackboneChoice {
  /** Preset name ('mobilenetv2-int8', 'demo', ...) or a path to an .onnx file. */
  model: string;
  taps?: string[];
  scales?: number[];
  inputSize?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
}

const BACKBONE_CHOICE_KEYS = ['model', 'taps', 'scales', 'inputSize', 'mean', 'std'];

/** ONNX files are protobuf messages, which cannot exceed 2 GiB. */
export const MAX_BACKBONE_BYTES = 2 ** 31;

/**
 * The bytes of a backbone file, read once (so what is hashed is what gets parsed): only regular files
 * of at most MAX_BACKBONE_BYTES, so a path such as /dev/zero is refused instead of read forever.
 */
async function readBackbone(file: string, parameter: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    throw new HgadError('IO', `Cannot read the backbone ${file}: ${(e as Error).message}`, parameter);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new HgadError('IO', `The backbone ${file} is not a regular file`, parameter);
    if (st.size > MAX_BACKBONE_BYTES) {
      throw new HgadError('IO', `The backbone ${file} has ${st.size} bytes, more than an ONNX file can hold (${MAX_BACKBONE_BYTES})`, parameter);
    }
    const bytes = Buffer.alloc(st.size);
    let at = 0;
    while (at < st.size) {
      const { bytesRead } = await handle.read(bytes, at, st.size - at, at);
      if (bytesRead === 0) throw new HgadError('IO', `The backbone ${file} shrank while it was read`, parameter);
      at += bytesRead;
    }
    return bytes;
  } catch (e) {
    if (e instanceof HgadError) throw e;
    throw new HgadError('IO', `Cannot read the backbone ${file}: ${(e as Error).message}`, parameter);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The ONNX file a spec refers to (downloaded into the cache for a preset), or null for built-ins. A path
 * is only resolved here: readBackbone decides whether it is a file that may be read.
 */
async function modelFile(model: string): Promise<string | null> {
  const preset = Object.prototype.hasOwnProperty.call(PRESETS, model) ? PRESETS[model]! : null;
  if (preset?.build) return null;
  return preset ? (await resolveBackbone(model)).path : nodePath.resolve(model);
}

export async function specFromChoice(choice: BackboneChoice): Promise<BackboneSpec> {
  if (typeof choice !== 'object' || choice === null || typeof choice.model !== 'string' || choice.model.length === 0) {
    throw new HgadArgumentError('backbone.model', 'a preset name or a path to an .onnx file', choice?.model);
  }
  checkKeys('backbone', choice, BACKBONE_CHOICE_KEYS);
  const preset = Object.prototype.hasOwnProperty.call(PRESETS, choice.model) ? PRESETS[choice.model] : undefined;
  const taps = choice.taps ?? preset?.taps;
  if (!taps || taps.length === 0) {
    throw new HgadArgumentError('backbone.taps', 'the names of the tensors to tap (required for a model that is not a preset)', taps);
  }
  const scales = choice.scales ?? preset?.scales ?? null;
  const inputSize = scales ? Math.max(...scales) : choice.inputSize ?? preset?.inputSize ?? 256;
  // The user's own choice: a name that is neither a preset nor looks like a path is an argument error.
  if (!preset) await resolveBackbone(choice.model);
  const file = await modelFile(choice.model);
  // A path is stored absolute: the detector then works from any working directory on this machine
  // (elsewhere, AnomalyDetector.load's backbone option names the copy to use).
  const model = preset ? choice.model : nodePath.resolve(choice.model);
  return {
    model,
    sha256: file ? sha256Of(await readBackbone(file, 'backbone.model')) : null,
    taps: [...taps],
    scales: scales ? [...scales] : null,
    inputSize,
    mean: choice.mean ?? preset?.mean ?? IMAGENET_MEAN,
    std: choice.std ?? preset?.std ?? IMAGENET_STD,
  };
}

/**
 * Opens the backbone a spec names. A file (a path, a downloaded preset, or `override`: a copy of the
 * file at another place) is read once and its sha256 compared with the stored one before the bytes
 * are parsed; only then does onnxruntime see them.
 */
export async function openBackbone(spec: BackboneSpec, threads: number, override?: string): Promise<Backbone> {
  const base = { taps: spec.taps, mean: spec.mean, std: spec.std, threads, ...(spec.scales ? { scales: spec.scales } : { inputSize: spec.inputSize }) };
  if (override === undefined && PRESETS[spec.model]?.build) return Backbone.open({ model: spec.model, ...base });
  const parameter = override === undefined ? 'backbone.model' : 'options.backbone';
  if (spec.sha256 === null) {
    throw new HgadError('MODEL_FILE', `The backbone ${spec.model} has no sha256 in the detector file, so it cannot be checked`, parameter);
  }
  const file = override !== undefined ? nodePath.resolve(override) : await modelFile(spec.model);
  const bytes = await readBackbone(file!, parameter);
  const actual = sha256Of(bytes);
  if (actual !== spec.sha256) {
    throw new HgadError('MODEL_FILE', `The backbone ${file} is not the one this detector was trained with ` +
      `(sha256 ${actual}, expected ${spec.sha256})`, parameter);
  }
  return Backbone.open({ model: bytes, ...base });
}
