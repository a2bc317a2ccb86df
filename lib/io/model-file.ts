// The hgad model file (docs/FORMAT.md): a safetensors container whose metadata carries the config and
// a sha256 of the tensor data. Loading checks, in this order and before each next step costs anything:
// the file (regular, its size), the header length, the header (format, version, config, the memory the
// config needs, every tensor's name, dtype, shape and place against the config's layout); then it
// builds a zero model off the JS thread, streams the data into it in bounded chunks while hashing it,
// compares the checksum, and checks the values themselves (native finishLoad: ranges, orthogonal
// rotations, Adam's moments).
import { createHash } from 'node:crypto';

import { resolveConfig, ResolvedConfig } from '../config';
import { HgadArgumentError, HgadError, HgadModelFileError } from '../errors';
import { checkModelMemory } from '../limits';
import type { NativeModel } from '../native';
import { checkInteger, checkKeys } from '../validate';
import {
  dataDigest, fromLittleEndianInPlace, Located, openRegularFile, parseContents, readExactly, readHeader,
  removeStaleTemps, TensorEntry, writeSafetensorsAtomic,
} from './safetensors';

export const FORMAT = 'hgad';
/** Version 2 added metadata.checksum. Version 1 files still load, without a checksum to verify. */
export const FORMAT_VERSION = '2';
export const READABLE_VERSIONS = ['1', '2'];
// 'prior' is absent from files written before it existed: resolveConfig reads them as 'hgad'.
const STORED_KEYS = ['levels', 'classes', 'prior', 'centersPerClass', 'couplingLayers', 'clamp', 'posEmbedDim', 'seed'];
const MAX_STEPS = 2 ** 52;
const CHECKSUM_PREFIX = 'sha256:';
/** Data is read in chunks of this many bytes (a multiple of 4: float32 elements never straddle two). */
const CHUNK_BYTES = 4 << 20;

export interface SaveOptions {
  /** Also store Adam's moments and step counts, so training resumes exactly. Default true. */
  optimizer?: boolean;
  /**
   * Extra string metadata stored with the model (e.g. the pipeline's backbone and calibration); keys
   * must not be the format's own (format, formatVersion, config, optimizer, checksum).
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
export const SAVE_OPTION_KEYS = ['optimizer', 'metadata', 'tensors'];

export const RESERVED_METADATA = ['format', 'formatVersion', 'config', 'optimizer', 'checksum'];

/** "levels.0.mu" -> "optimizer.levels.0.m.mu" (Adam's first moment) or ".v." (second). */
export function optimizerName(param: string, moment: 'm' | 'v'): string {
  return param.replace(/^levels\.(\d+)\./, `optimizer.levels.$1.${moment}.`);
}

/** The parameter an optimizer tensor belongs to; any other name is returned unchanged. */
export function parameterOf(name: string): string {
  return name.replace(/^optimizer\.levels\.(\d+)\.[mv]\./, 'levels.$1.');
}

interface Spec {
  name: string;
  shape: number[];
  group: string;
  level: number;
}

function optimizerSpecs(specs: Spec[]): Spec[] {
  return specs.filter((s) => s.group !== 'fixed')
    .flatMap((s) => [{ ...s, name: optimizerName(s.name, 'm') }, { ...s, name: optimizerName(s.name, 'v') }]);
}

export async function saveModelFile(path: string, options: SaveOptions, config: object, core: NativeModel): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw new HgadError('INVALID_ARGUMENT', 'Expected a file path for path', 'path');
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, SAVE_OPTION_KEYS);
  const withOptimizer = options.optimizer ?? true;
  if (typeof withOptimizer !== 'boolean') throw new HgadArgumentError('options.optimizer', 'a boolean', withOptimizer);
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
    for (const s of optimizerSpecs(specs)) tensors.push({ name: s.name, dtype: 'F32', shape: s.shape, data: core.getTensor(s.name) });
    const levels = new Set(specs.map((s) => s.level));
    metadata.optimizer = JSON.stringify({ steps: [...levels].sort((a, b) => a - b).map((l) => core.adamSteps(l)) });
  }
  metadata.checksum = CHECKSUM_PREFIX + dataDigest(tensors);
  await writeSafetensorsAtomic(path, tensors, metadata);
}

/** What the header promises, all checked before the model is built. */
interface Plan {
  cfg: ResolvedConfig;
  extra: Record<string, string>;
  entries: Located[];
  /** The extra ("pipeline.") tensors among the entries. */
  extras: Set<string>;
  dataStart: number;
  checksum: string | undefined;
  steps: number[] | undefined;
}

function planLoad(path: string, header: Record<string, unknown>, dataStart: number, dataLength: number,
  threads: number | undefined): Plan {
  const bad = (problem: string): never => {
    throw new HgadModelFileError(path, problem);
  };
  const { metadata, entries } = parseContents(header, dataLength, path);
  if (metadata.format !== FORMAT) bad(`metadata.format is ${JSON.stringify(metadata.format)}, expected "${FORMAT}"`);
  if (!READABLE_VERSIONS.includes(metadata.formatVersion as string)) {
    bad(`format version ${JSON.stringify(metadata.formatVersion)} is not supported (this hgad reads versions ${READABLE_VERSIONS.join(', ')})`);
  }
  let checksum: string | undefined;
  if (metadata.formatVersion !== '1') {
    const c = metadata.checksum;
    if (typeof c !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(c)) {
      bad(`metadata.checksum is ${c === undefined ? 'missing' : JSON.stringify(c.slice(0, 80))}, expected "sha256:" and 64 hex digits`);
    }
    checksum = c!.slice(CHECKSUM_PREFIX.length);
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
  let expected: Spec[];
  try {
    cfg = resolveConfig({ ...(stored as object), ...(threads !== undefined ? { threads } : {}) });
    // The memory this config needs is refused (naming the setting) before anything is allocated.
    expected = checkModelMemory(cfg).tensors;
  } catch (e) {
    return bad(`metadata.config is not a valid model config: ${(e as Error).message}`);
  }
  let steps: number[] | undefined;
  const hasOptimizer = metadata.optimizer !== undefined;
  if (hasOptimizer) {
    let parsed: unknown;
    try {
      parsed = (JSON.parse(metadata.optimizer!) as { steps?: unknown } | null)?.steps;
    } catch {
      bad('metadata.optimizer is not valid JSON');
    }
    if (!Array.isArray(parsed) || parsed.length !== cfg.levels.length ||
      parsed.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0 || s > MAX_STEPS)) {
      bad(`metadata.optimizer.steps must list one step count in [0, 2^52] per level (${cfg.levels.length})`);
    }
    steps = parsed as number[];
    expected = [...expected, ...optimizerSpecs(expected)];
  }
  // The header's tensors must be exactly the config's, with the config's shapes.
  const byName = new Map(entries.map((e) => [e.name, e]));
  const names = new Set(expected.map((s) => s.name));
  const extras = new Set<string>();
  for (const e of entries) {
    if (names.has(e.name)) continue;
    if (!e.name.startsWith(EXTRA_TENSOR_PREFIX)) bad(`unexpected tensor "${e.name}"`);
    if (e.dtype !== 'F32') bad(`tensor "${e.name}" has dtype ${e.dtype}, expected F32`);
    extras.add(e.name);
  }
  for (const s of expected) {
    const t = byName.get(s.name) ?? bad(`missing tensor "${s.name}"`);
    if (t.dtype !== 'F32') bad(`tensor "${s.name}" has dtype ${t.dtype}, expected F32`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      bad(`tensor "${s.name}" has shape [${t.shape.join(', ')}], expected [${s.shape.join(', ')}]`);
    }
  }
  const extra = Object.fromEntries(Object.entries(metadata).filter(([k]) => !RESERVED_METADATA.includes(k)));
  return { cfg, extra, entries, extras, dataStart, checksum, steps };
}

/**
 * Reads a model file; `build` makes the (zero) model for the checked config off the JS thread, the
 * file's tensors are then streamed into its core. Every problem with the file is an HgadModelFileError
 * (MODEL_FILE), a file that cannot be read an IO error.
 */
export async function loadModelFile<M>(
  path: string,
  options: { threads?: number },
  build: (cfg: ResolvedConfig, metadata: Record<string, string>, tensors: ReadonlyMap<string, ExtraTensor>) => Promise<{ model: M; core: NativeModel }>,
): Promise<M> {
  if (typeof path !== 'string' || path.length === 0) throw new HgadError('INVALID_ARGUMENT', 'Expected a file path for path', 'path');
  if (options.threads !== undefined) checkInteger('options.threads', options.threads, 1, 1024);
  await removeStaleTemps(path);
  const { handle, size } = await openRegularFile(path);
  try {
    const { header, dataStart, dataLength } = await readHeader(handle, size, path);
    const plan = planLoad(path, header, dataStart, dataLength, options.threads);
    const tensors = new Map<string, ExtraTensor>();
    const { model, core } = await build(plan.cfg, plan.extra, tensors);
    const digest = await streamTensors(handle, plan, core, tensors, path);
    if (plan.checksum !== undefined && digest !== plan.checksum) {
      throw new HgadModelFileError(path, `the tensor data does not match metadata.checksum (sha256 ${digest}, ` +
        `expected ${plan.checksum}): the file was altered or damaged after it was written`);
    }
    plan.steps?.forEach((s, l) => core.setAdamSteps(l, s));
    await finishLoad(core, path);
    return model;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The native checks of a model whose tensors were all written; a bad value is the file's fault (MODEL_FILE). */
export async function finishLoad(core: NativeModel, path: string): Promise<void> {
  try {
    await core.finishLoad();
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err?.code === 'MODEL_STATE') throw new HgadModelFileError(path, err.message ?? String(e));
    throw e;
  }
}

/** Reads the data section in bounded chunks into the core's tensors; returns its sha256 (hex). */
async function streamTensors(handle: import('node:fs/promises').FileHandle, plan: Plan, core: NativeModel,
  extras: Map<string, ExtraTensor>, path: string): Promise<string> {
  // Extra tensors are bounded by the file's own size (their places were checked against it).
  const extraBytes = new Map(plan.entries.filter((e) => plan.extras.has(e.name)).map((e) => [e.name, new Uint8Array(e.end - e.begin)]));
  const hash = createHash('sha256');
  const end = plan.entries.length > 0 ? plan.entries[plan.entries.length - 1]!.end : 0;
  const buffer = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(end, 4)));
  let next = 0; // index of the first entry not yet complete
  for (let position = 0; position < end; position += buffer.length) {
    const length = Math.min(buffer.length, end - position);
    await readExactly(handle, buffer, length, plan.dataStart + position, path);
    const chunk = buffer.subarray(0, length);
    hash.update(chunk);
    fromLittleEndianInPlace(chunk, 4);
    for (let i = next; i < plan.entries.length; i++) {
      const e = plan.entries[i]!;
      if (e.begin >= position + length) break;
      const from = Math.max(e.begin, position), to = Math.min(e.end, position + length);
      const bytes = extraBytes.get(e.name);
      if (to > from && bytes) bytes.set(chunk.subarray(from - position, to - position), from - e.begin);
      else if (to > from) core.writeTensorBytes(e.name, from - e.begin, chunk.subarray(from - position, to - position));
      if (e.end <= position + length) next = i + 1;
    }
  }
  for (const e of plan.entries) {
    const bytes = extraBytes.get(e.name);
    if (!bytes) continue;
    const data = new Float32Array(bytes.buffer, 0, bytes.length / 4);
    if (!data.every(Number.isFinite)) throw new HgadModelFileError(path, `tensor "${e.name}" holds non-finite values`);
    extras.set(e.name, { shape: e.shape, data });
  }
  return hash.digest('hex');
}
