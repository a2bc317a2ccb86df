// The hgad model file (docs/FORMAT.md): a safetensors container whose metadata carries the config.
// Loading checks the format, the version, the config and that the tensors are exactly the model's.
import { resolveConfig, ResolvedConfig } from '../config';
import { HgadArgumentError, HgadError, HgadModelFileError } from '../errors';
import { checkInteger } from '../validate';
import type { NativeModel } from '../native';
import { readSafetensors, TensorEntry, writeSafetensorsAtomic } from './safetensors';

export const FORMAT = 'hgad';
export const FORMAT_VERSION = '1';
// 'prior' is absent from files written before it existed: resolveConfig reads them as 'hgad'.
const STORED_KEYS = ['levels', 'classes', 'prior', 'centersPerClass', 'couplingLayers', 'clamp', 'posEmbedDim', 'seed'];
const MAX_STEPS = 2 ** 52;

export interface SaveOptions {
  /** Also store Adam's moments and step counts, so training resumes exactly. Default true. */
  optimizer?: boolean;
  /**
   * Extra string metadata stored with the model (e.g. the pipeline's backbone and calibration); keys
   * must not be the format's own (format, formatVersion, config, optimizer).
   */
  metadata?: Record<string, string>;
  /** Extra float32 tensors, by name (each name starts with "pipeline."). */
  tensors?: ReadonlyMap<string, ExtraTensor>;
}

/**
 * Tensors stored beside the model's own (e.g. the pipeline's channel reduction): float32, names under
 * this prefix; the model file keeps them as they are and hands them back on load.
 */
export const EXTRA_TENSOR_PREFIX = 'pipeline.';

export interface ExtraTensor {
  shape: number[];
  data: Float32Array;
}

export const RESERVED_METADATA = ['format', 'formatVersion', 'config', 'optimizer'];

/** "levels.0.mu" -> "optimizer.levels.0.m.mu" (Adam's first moment) or ".v." (second). */
export function optimizerName(param: string, moment: 'm' | 'v'): string {
  return param.replace(/^levels\.(\d+)\./, `optimizer.levels.$1.${moment}.`);
}

/** The parameter an optimizer tensor belongs to; any other name is returned unchanged. */
export function parameterOf(name: string): string {
  return name.replace(/^optimizer\.levels\.(\d+)\.[mv]\./, 'levels.$1.');
}

function optimizerNames(core: NativeModel): string[] {
  return core.tensorSpecs().filter((s) => s.group !== 'fixed')
    .flatMap((s) => [optimizerName(s.name, 'm'), optimizerName(s.name, 'v')]);
}

export async function saveModelFile(path: string, options: SaveOptions, config: object, core: NativeModel): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw new HgadError('INVALID_ARGUMENT', 'Expected a file path for path', 'path');
  const withOptimizer = options.optimizer ?? true;
  const specs = core.tensorSpecs();
  const tensors: TensorEntry[] = specs.map((s) => ({ name: s.name, dtype: 'F32', shape: s.shape, data: core.getTensor(s.name) }));
  const extra = options.metadata ?? {};
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
    throw new HgadArgumentError('options.metadata', 'an object of strings', extra);
  }
  for (const [key, value] of Object.entries(extra)) {
    if (RESERVED_METADATA.includes(key)) {
      throw new HgadArgumentError(`options.metadata.${key}`, `a key other than ${RESERVED_METADATA.join(', ')}`, key);
    }
    if (typeof value !== 'string') throw new HgadArgumentError(`options.metadata.${key}`, 'a string', value);
  }
  for (const [name, t] of options.tensors ?? new Map<string, ExtraTensor>()) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!name.startsWith(EXTRA_TENSOR_PREFIX) || !(t.data instanceof Float32Array) || t.data.length !== count) {
      throw new HgadArgumentError(`options.tensors.${name}`, `a Float32Array of ${count} values named "${EXTRA_TENSOR_PREFIX}..."`, t.data);
    }
    tensors.push({ name, dtype: 'F32', shape: t.shape, data: t.data });
  }
  const metadata: Record<string, string> = {
    ...extra,
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    config: JSON.stringify(config),
  };
  if (withOptimizer) {
    const shapes = new Map(specs.map((s) => [s.name, s.shape]));
    for (const name of optimizerNames(core)) {
      tensors.push({ name, dtype: 'F32', shape: shapes.get(parameterOf(name))!, data: core.getTensor(name) });
    }
    const levels = new Set(specs.map((s) => s.level));
    metadata.optimizer = JSON.stringify({ steps: [...levels].sort((a, b) => a - b).map((l) => core.adamSteps(l)) });
  }
  await writeSafetensorsAtomic(path, tensors, metadata);
}

export async function loadModelFile<M>(
  path: string,
  options: { threads?: number },
  build: (cfg: ResolvedConfig, metadata: Record<string, string>, tensors: Map<string, ExtraTensor>) => { model: M; core: NativeModel },
): Promise<M> {
  if (options.threads !== undefined) checkInteger('options.threads', options.threads, 1, 1024);
  const { metadata, tensors } = await readSafetensors(path);
  const bad = (problem: string): never => {
    throw new HgadModelFileError(path, problem);
  };
  if (metadata.format !== FORMAT) bad(`metadata.format is ${JSON.stringify(metadata.format)}, expected "${FORMAT}"`);
  if (metadata.formatVersion !== FORMAT_VERSION) {
    bad(`format version ${JSON.stringify(metadata.formatVersion)} is not supported (this hgad reads version ${FORMAT_VERSION})`);
  }
  let stored: unknown;
  try {
    stored = JSON.parse(metadata.config ?? '');
  } catch {
    bad('metadata.config is not valid JSON');
  }
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) bad('metadata.config is not a JSON object');
  const unknown = Object.keys(stored as object).filter((k) => !STORED_KEYS.includes(k));
  if (unknown.length > 0) bad(`metadata.config has unknown keys: ${unknown.join(', ')}`);
  let cfg: ResolvedConfig;
  try {
    cfg = resolveConfig({ ...(stored as object), ...(options.threads !== undefined ? { threads: options.threads } : {}) });
  } catch (e) {
    return bad(`metadata.config is not a valid model config: ${(e as Error).message}`);
  }
  const extra = Object.fromEntries(Object.entries(metadata).filter(([k]) => !RESERVED_METADATA.includes(k)));
  const extraTensors = new Map<string, ExtraTensor>();
  for (const [name, t] of tensors) {
    if (!name.startsWith(EXTRA_TENSOR_PREFIX)) continue;
    if (t.dtype !== 'F32') bad(`tensor "${name}" has dtype ${t.dtype}, expected F32`);
    const data = t.data as Float32Array;
    if (!data.every(Number.isFinite)) bad(`tensor "${name}" holds non-finite values`);
    extraTensors.set(name, { shape: t.shape, data });
  }
  const { model, core } = build(cfg, extra, extraTensors);
  const expected = core.tensorSpecs();
  const hasOptimizer = metadata.optimizer !== undefined;
  const names = new Set(expected.map((s) => s.name));
  const optNames = hasOptimizer ? optimizerNames(core) : [];
  optNames.forEach((n) => names.add(n));
  for (const name of tensors.keys()) if (!names.has(name) && !extraTensors.has(name)) bad(`unexpected tensor "${name}"`);
  const shapeOf = new Map(expected.map((s) => [s.name, s.shape]));
  const fill = (name: string, shape: number[]): void => {
    const t = tensors.get(name) ?? bad(`missing tensor "${name}"`);
    if (t.dtype !== 'F32') bad(`tensor "${name}" has dtype ${t.dtype}, expected F32`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      bad(`tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    try {
      core.setTensor(name, t.data as Float32Array);
    } catch (e) {
      bad(`tensor "${name}": ${(e as Error).message}`);
    }
  };
  for (const s of expected) fill(s.name, s.shape);
  for (const name of optNames) fill(name, shapeOf.get(parameterOf(name))!);
  if (hasOptimizer) {
    let steps: unknown;
    try {
      steps = (JSON.parse(metadata.optimizer!) as { steps?: unknown }).steps;
    } catch {
      bad('metadata.optimizer is not valid JSON');
    }
    if (!Array.isArray(steps) || steps.length !== cfg.levels.length ||
      steps.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0 || s > MAX_STEPS)) {
      bad(`metadata.optimizer.steps must list one step count in [0, 2^52] per level (${cfg.levels.length})`);
    }
    (steps as number[]).forEach((s, l) => core.setAdamSteps(l, s));
  }
  return model;
}
