// Model configuration: defaults of the authors' release (HGAD.md) and up-front validation that names
// the bad setting.
import * as os from 'node:os';

import { HgadArgumentError } from './errors';
import {
  checkPrecision, DEFAULT_INFERENCE_PRECISION, DEFAULT_TRAINING_PRECISION, PrecisionChoice,
} from './precision';
import { checkInteger, checkKeys } from './validate';

export interface LevelSpec {
  /** Feature channels of this level (C). */
  channels: number;
}

export interface HgadConfig {
  /** One entry per feature level; each level gets its own flow and mixture. */
  levels: LevelSpec[];
  /** Class names of the training images (unified model: several classes in one model). */
  classes: string[];
  /**
   * The latent prior. 'hgad' (default): the hierarchical Gaussian mixture of HGAD.md. 'single-gaussian':
   * the classic flow, N(0, I) for every class (centres and class logits frozen at 0, M = 1; loss
   * (-log N(z; 0, I) - log|det J|) / C; classes cannot be inferred). 'inter-only': the inter-class
   * mixture without intra-class centres (M = 1), trained with the phase-1 losses throughout (the
   * ablation of HGAD.md section 4).
   */
  prior?: Prior;
  /** Intra-class centres per class (M). Default 10; the 'single-gaussian' and 'inter-only' priors need 1 (their default). */
  centersPerClass?: number;
  /** Coupling blocks per flow (K). Default 12. */
  couplingLayers?: number;
  /** Soft clamp of the affine coupling's log-scale (alpha). Default 1.9. */
  clamp?: number;
  /** Positional-encoding size (P), a multiple of 4. Default 256. */
  posEmbedDim?: number;
  /** Seed of the initialisation; the same seed and config give bit-identical parameters. Default 0. */
  seed?: number;
  /** Worker threads for the native core. Default: the machine's available parallelism. */
  threads?: number;
  /**
   * Where the engine runs: 'cpu', 'cuda' (an error when the addon has no CUDA backend or no device
   * can be used) or 'auto' (CUDA when available, else the CPU). Default 'auto'. Not stored in model
   * files: a model saved on one device loads on the other.
   */
  device?: DeviceChoice;
  /**
   * GEMM precision of scoring (forward, inverse, score): 'fp32', 'bf16' (bfloat16 inputs, float
   * accumulation; an error where the CPU lacks AVX512-BF16 and AMX-BF16, or on CUDA) or 'auto' (bf16
   * where the CPU has it). Default 'auto' (lib/precision.ts says why). Not stored in model files.
   */
  precision?: PrecisionChoice;
  /**
   * GEMM precision of training steps: mixed precision with 'bf16' (bf16 GEMM inputs, float
   * accumulation, float master weights, gradients and Adam state). Default 'fp32'. Not stored.
   */
  trainPrecision?: PrecisionChoice;
}

export type Prior = 'hgad' | 'single-gaussian' | 'inter-only';
export const PRIORS: readonly Prior[] = ['hgad', 'single-gaussian', 'inter-only'];

export type DeviceChoice = 'cpu' | 'cuda' | 'auto';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['cpu', 'cuda', 'auto'];

export interface ResolvedConfig {
  levels: LevelSpec[];
  classes: string[];
  prior: Prior;
  centersPerClass: number;
  couplingLayers: number;
  clamp: number;
  posEmbedDim: number;
  seed: number;
  threads: number;
  /** As requested; HgadModel.device says where the model runs. */
  device: DeviceChoice;
  /** As requested; HgadModel.precision says what runs. */
  precision: PrecisionChoice;
  trainPrecision: PrecisionChoice;
}

export const DEFAULTS = {
  centersPerClass: 10,
  couplingLayers: 12,
  clamp: 1.9,
  posEmbedDim: 256,
  seed: 0,
} as const;

export function defaultThreads(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/** Every key HgadConfig has; any other key is an error (a misspelt option must not fall back to its default). */
export const CONFIG_KEYS: readonly string[] = ['levels', 'classes', 'prior', 'centersPerClass', 'couplingLayers', 'clamp',
  'posEmbedDim', 'seed', 'threads', 'device', 'precision', 'trainPrecision'];
export const MAX_LEVELS = 1024;
export const MAX_CLASSES = 100000;

export function resolveConfig(config: unknown): ResolvedConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new HgadArgumentError('config', 'an object', config);
  }
  checkKeys('config', config, CONFIG_KEYS);
  const c = config as Record<string, unknown>;
  if (!Array.isArray(c.levels) || c.levels.length === 0 || c.levels.length > MAX_LEVELS) {
    throw new HgadArgumentError('config.levels', `a non-empty array of at most ${MAX_LEVELS} { channels }`, c.levels);
  }
  const levels = c.levels.map((lv: unknown, i: number) => {
    if (typeof lv !== 'object' || lv === null) throw new HgadArgumentError(`config.levels[${i}]`, 'an object { channels }', lv);
    checkKeys(`config.levels[${i}]`, lv, ['channels']);
    const ch = (lv as Record<string, unknown>).channels;
    checkInteger(`config.levels[${i}].channels`, ch, 2, 65536);
    return { channels: ch as number };
  });
  if (!Array.isArray(c.classes) || c.classes.length === 0 || c.classes.length > MAX_CLASSES) {
    throw new HgadArgumentError('config.classes', `a non-empty array of at most ${MAX_CLASSES} class names`, c.classes);
  }
  const seen = new Set<string>();
  c.classes.forEach((name: unknown, i: number) => {
    if (typeof name !== 'string' || name.length === 0) {
      throw new HgadArgumentError(`config.classes[${i}]`, 'a non-empty string', name);
    }
    if (seen.has(name)) throw new HgadArgumentError(`config.classes[${i}]`, 'a class name not listed before', name);
    seen.add(name);
  });
  const opt = (key: keyof typeof DEFAULTS, lo: number, hi: number, integer = true): number => {
    const v = c[key];
    if (v === undefined) return DEFAULTS[key];
    if (integer) checkInteger(`config.${key}`, v, lo, hi);
    else if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
      throw new HgadArgumentError(`config.${key}`, `a number in [${lo}, ${hi}]`, v);
    }
    return v as number;
  };
  const posEmbedDim = opt('posEmbedDim', 4, 65536);
  if (posEmbedDim % 4 !== 0) throw new HgadArgumentError('config.posEmbedDim', 'a multiple of 4', posEmbedDim);
  const clamp = opt('clamp', 1e-3, 1e3, false);
  let threads = defaultThreads();
  if (c.threads !== undefined) {
    checkInteger('config.threads', c.threads, 1, 1024);
    threads = c.threads as number;
  }
  const seed = opt('seed', 0, Number.MAX_SAFE_INTEGER);
  const prior = c.prior === undefined ? 'hgad' : c.prior;
  if (!(PRIORS as readonly unknown[]).includes(prior)) {
    throw new HgadArgumentError('config.prior', `one of ${PRIORS.map((p) => `'${p}'`).join(', ')}`, prior);
  }
  if (prior !== 'hgad' && c.centersPerClass !== undefined && c.centersPerClass !== 1) {
    throw new HgadArgumentError('config.centersPerClass', `1 (or nothing) with the '${prior as string}' prior`, c.centersPerClass);
  }
  const centersPerClass = prior === 'hgad' ? opt('centersPerClass', 1, 10000) : 1;
  const device = c.device === undefined ? 'auto' : c.device;
  if (!(DEVICE_CHOICES as readonly unknown[]).includes(device)) {
    throw new HgadArgumentError('config.device', `one of ${DEVICE_CHOICES.map((d) => `'${d}'`).join(', ')}`, device);
  }
  return {
    levels,
    classes: [...(c.classes as string[])],
    prior: prior as Prior,
    centersPerClass,
    couplingLayers: opt('couplingLayers', 1, 1000),
    clamp,
    posEmbedDim,
    seed,
    threads,
    device: device as DeviceChoice,
    precision: checkPrecision('config.precision', c.precision, DEFAULT_INFERENCE_PRECISION),
    trainPrecision: checkPrecision('config.trainPrecision', c.trainPrecision, DEFAULT_TRAINING_PRECISION),
  };
}

/** The part of the config that is stored with a model (threads, device and precision belong to the machine, not the model). */
export function storedConfig(c: ResolvedConfig): Omit<ResolvedConfig, 'threads' | 'device' | 'precision' | 'trainPrecision'> {
  const { threads: _threads, device: _device, precision: _precision, trainPrecision: _trainPrecision, ...rest } = c;
  return rest;
}

