// Turning the user's backbone choice into a stored BackboneSpec and back into an open Backbone, with
// the file's sha256 checked so a detector never silently runs on other features than it learned.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

import { HgadArgumentError, HgadError } from '../errors';
import { Backbone, BackboneOptions } from '../features/backbone';
import { PRESETS, resolveBackbone } from '../features/presets';
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

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    throw new HgadError('IO', `Cannot read ${path}: ${(e as Error).message}`, 'backbone.model');
  }
  return hash.digest('hex');
}

/** The ONNX file a spec refers to (downloaded into the cache for a preset), or null for built-ins. */
async function modelFile(model: string): Promise<string | null> {
  if (model === 'demo') return null;
  return (await resolveBackbone(model)).path;
}

export async function specFromChoice(choice: BackboneChoice): Promise<BackboneSpec> {
  if (typeof choice !== 'object' || choice === null || typeof choice.model !== 'string' || choice.model.length === 0) {
    throw new HgadArgumentError('backbone.model', 'a preset name or a path to an .onnx file', choice?.model);
  }
  const preset = PRESETS[choice.model];
  const taps = choice.taps ?? preset?.taps;
  if (!taps || taps.length === 0) {
    throw new HgadArgumentError('backbone.taps', 'the names of the tensors to tap (required for a model that is not a preset)', taps);
  }
  const scales = choice.scales ?? preset?.scales ?? null;
  const inputSize = scales ? Math.max(...scales) : choice.inputSize ?? preset?.inputSize ?? 256;
  const file = await modelFile(choice.model);
  return {
    model: choice.model,
    sha256: file ? await sha256File(file) : null,
    taps: [...taps],
    scales: scales ? [...scales] : null,
    inputSize,
    mean: choice.mean ?? preset?.mean ?? IMAGENET_MEAN,
    std: choice.std ?? preset?.std ?? IMAGENET_STD,
  };
}

export async function openBackbone(spec: BackboneSpec, threads: number): Promise<Backbone> {
  const file = await modelFile(spec.model);
  if (file && spec.sha256) {
    const actual = await sha256File(file);
    if (actual !== spec.sha256) {
      throw new HgadError('MODEL_FILE', `The backbone ${file} is not the one this detector was trained with ` +
        `(sha256 ${actual}, expected ${spec.sha256})`, 'backbone.model');
    }
  }
  const options: BackboneOptions = {
    model: spec.model, taps: spec.taps, mean: spec.mean, std: spec.std, threads,
    ...(spec.scales ? { scales: spec.scales } : { inputSize: spec.inputSize }),
  };
  return Backbone.open(options);
}
