// Loads the compiled addon: a local build in build/Release (source build) or else a prebuilt binary,
// found by node-gyp-build from the package root.
//
// The prebuilt Linux x64 binary carries a static OpenBLAS (scripts/prebuild.sh). OpenBLAS 0.3.21 picks
// its kernels when the library loads and misreads some CPUs (a generic kernel at a quarter of the
// speed), so the kernel family is named from the CPU's flags in OPENBLAS_CORETYPE for the moment of
// loading, unless the user set it. Source builds use oneDNN, which ignores the variable.
//
// Prebuilt variants for optional hardware (the CUDA one) live in variants/<name>/prebuilds/<platform>-<arch>/,
// where node-gyp-build never looks for the CPU binary. A variant is tried only when no local build exists
// and its device is present (a native module cannot be unloaded, so loading it just to ask would keep two
// copies of OpenBLAS in the process); otherwise, or when it fails to load, the CPU binary is used after a
// one-line notice on stderr. HGAD_VARIANT=cpu|cuda forces the choice (HGAD_VARIANT=cpu also silences the
// notice); unset or 'auto' decides as above.
//
// HGAD_ADDON=<path to a hgad.node> loads that file instead and nothing else (no variant, no fallback): the
// sanitizer build in build-asan/ (scripts/sanitize.sh), or another build to compare with.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HgadArgumentError, HgadError } from './errors';

export interface NativeTensorSpec {
  name: string;
  shape: number[];
  group: 'flow' | 'centres' | 'logits' | 'fixed';
  level: number;
}

export interface NativeLosses {
  Lg: number;
  Lmi: number;
  Le: number;
  Lgi: number;
  Lz: number;
  loss: number;
}

export interface NativeModelConfig {
  channels: number[];
  classes: number;
  centres: number;
  prior?: 'hgad' | 'single-gaussian' | 'inter-only';
  blocks: number;
  posDim: number;
  clamp: number;
  seed: number;
  threads: number;
  /** Where the model runs; an addon built without CUDA accepts only 'cpu'. */
  device?: 'cpu' | 'cuda';
  /** false: every tensor zero, for writeTensorBytes and finishLoad (default true: initialised per HGAD.md). */
  init?: boolean;
}

/** What a config implies, before anything is built (NativeModel.layout). */
export interface NativeLayout {
  tensors: NativeTensorSpec[];
  /** Estimated bytes the model holds once trained with config.threads threads. */
  bytes: number;
  /** This machine's physical memory (0 when unknown). */
  physicalBytes: number;
}

/** What the addon reports about CUDA (native/binding/device.h); absent on addons built without CUDA. */
export interface NativeCudaInfo {
  compiled: boolean;
  available: boolean;
  devices: number;
  deviceName: string;
  reason: string;
  gemm: string;
}

export interface NativeModel {
  tensorSpecs(): NativeTensorSpec[];
  getTensor(name: string): Float32Array;
  setTensor(name: string, data: Float32Array): void;
  /** Raw little-endian float32 bytes of a tensor (or Adam moment) at a byte offset; only while loading. */
  writeTensorBytes(name: string, byteOffset: number, bytes: Uint8Array): void;
  /** Checks every tensor written while loading (rejects with code MODEL_STATE naming the tensor). */
  finishLoad(): Promise<void>;
  adamSteps(level: number): number;
  setAdamSteps(level: number, steps: number): void;
  setThreads(threads: number): void;
  /** bf16 GEMMs for inference, for training (CPU models on a CPU that has them; lib/precision.ts). */
  setPrecision(inference: boolean, training: boolean): void;
  forward(level: number, x: Float32Array, batch: number, height: number, width: number, z: Float32Array,
    logDet: Float32Array): Promise<void>;
  inverse(level: number, z: Float32Array, batch: number, height: number, width: number, x: Float32Array): Promise<void>;
  score(level: number, x: Float32Array, batch: number, height: number, width: number, classIndex: Int32Array | null,
    logp: Float32Array, negEntropy: Float32Array, classLogits: Float32Array, classOut: Int32Array,
    classPosterior: Float32Array | null, withLogDet?: boolean): Promise<void>;
  gradients(level: number, x: Float32Array, batch: number, height: number, width: number, labels: Int32Array,
    perVector: boolean, weights: Float64Array, inputGrad: Float32Array | null, lr: number | null,
    latentLogDet?: Float32Array | null): Promise<NativeLosses>;
  /** Which parameters a level's optimiser steps update: the flow, and the classes from firstClass on (CPU only). */
  setTrainable(level: number, flow: boolean, firstClass: number): void;
}

interface Addon {
  NativeModel: (new (config: NativeModelConfig) => NativeModel) & {
    cudaInfo?: () => NativeCudaInfo;
    cpuFeatures?: () => { avx512Bf16: boolean; amxBf16: boolean; bf16: boolean; gemm: string };
    layout(config: NativeModelConfig, tensors?: boolean): NativeLayout;
    /** Makes the model on the libuv pool: initialised, or all zero with init false (for loading). */
    build(config: NativeModelConfig): Promise<NativeModel>;
  };
  abiVersion: number;
  measureSgemm(M: number, N: number, K: number, threads: number, seconds: number): number;
}

let addon: Addon | undefined;

export function native(): Addon {
  if (!addon) addon = loadAddon(packageRoot());
  return addon;
}

type Load = ((dir: string) => Addon) & { resolve(dir: string): string };

/** A prebuilt variant for optional hardware, tried before the CPU binary when its device is present. */
interface Variant {
  name: string;
  /** Why the device cannot be used here, or undefined when it looks present. */
  missing(): string | undefined;
}

const VARIANTS: Variant[] = [
  {
    name: 'cuda',
    // The NVIDIA kernel driver exposes the /proc file (containers with GPU access see it too); WSL2 has
    // neither, its GPU is /dev/dxg with the driver's libcuda in /usr/lib/wsl/lib.
    missing: () =>
      fs.existsSync('/proc/driver/nvidia/version') ||
      (fs.existsSync('/dev/dxg') && fs.existsSync('/usr/lib/wsl/lib/libcuda.so.1'))
        ? undefined
        : 'no NVIDIA driver found (no /proc/driver/nvidia/version)',
  },
];

const VARIANT_ENV = 'HGAD_VARIANT';

/** HGAD_VARIANT as 'auto', 'cpu' or a variant's name; anything else is an HgadArgumentError. */
function variantChoice(): string {
  const value = process.env[VARIANT_ENV];
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  const names = ['cpu', ...VARIANTS.map((v) => v.name)];
  if (!names.includes(value)) {
    throw new HgadArgumentError(VARIANT_ENV, `unset or one of 'auto', ${names.map((n) => `'${n}'`).join(', ')}`, value);
  }
  return value;
}

let noticed = false;

/** One line on stderr, once per process: which variant was passed over and why. */
function notice(text: string): void {
  if (noticed) return;
  noticed = true;
  process.stderr.write(`hgad: ${text}; using the CPU binary (set ${VARIANT_ENV}=cpu to choose it silently)\n`);
}

const ADDON_ENV = 'HGAD_ADDON';

function loadAddon(root: string): Addon {
  const explicit = process.env[ADDON_ENV];
  if (explicit !== undefined && explicit !== '') return loadExplicit(explicit);
  const choice = variantChoice();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const load = require('node-gyp-build') as Load;
  return withCoreType(() => {
    let file: string | undefined;
    try {
      file = load.resolve(root);
    } catch {
      file = undefined;
    }
    if (choice !== 'cpu' && choice !== 'auto') return loadForced(load, root, choice);
    // A local build (build/Release) is the user's own choice, possibly with CUDA itself: no variant then.
    const variants = choice === 'auto' && (file === undefined || isPrebuilt(file)) ? VARIANTS : [];
    for (const v of variants) {
      const dir = path.join(root, 'variants', v.name);
      if (!fs.existsSync(path.join(dir, 'prebuilds'))) continue;
      const missing = v.missing();
      if (missing !== undefined) {
        notice(`${v.name} variant skipped: ${missing}`);
        continue;
      }
      try {
        return load(dir);
      } catch (e) {
        notice(`${v.name} variant skipped: it did not load (${firstLine(e)})`);
      }
    }
    if (file === undefined) throw new HgadError('NATIVE', noBinaryMessage(root));
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(file) as Addon;
    } catch (e) {
      throw new HgadError('NATIVE', loadFailedMessage(file, e));
    }
  });
}

/** HGAD_ADDON named a binary: load exactly that one or fail. */
function loadExplicit(file: string): Addon {
  const resolved = path.resolve(file);
  if (!fs.existsSync(resolved)) {
    throw new HgadError('NATIVE', `${ADDON_ENV} is '${file}' but there is no file ${resolved}`, ADDON_ENV);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return withCoreType(() => require(resolved) as Addon);
  } catch (e) {
    throw new HgadError('NATIVE', `${ADDON_ENV} is '${file}' but ${resolved} could not be loaded: ${firstLine(e)}`, ADDON_ENV);
  }
}

/** HGAD_VARIANT named a variant: load it or fail, whatever the hardware (the CUDA one loads without a driver). */
function loadForced(load: Load, root: string, name: string): Addon {
  const dir = path.join(root, 'variants', name);
  let file: string;
  try {
    file = load.resolve(dir);
  } catch {
    throw new HgadError('NATIVE', `${VARIANT_ENV} is '${name}' but this hgad has no ${name} binary for ` +
      `${process.platform}-${process.arch} in ${path.join(dir, 'prebuilds')}`, VARIANT_ENV);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as Addon;
  } catch (e) {
    throw new HgadError('NATIVE', `${VARIANT_ENV} is '${name}' but ${file} could not be loaded: ${firstLine(e)}`, VARIANT_ENV);
  }
}

function isPrebuilt(file: string): boolean {
  return file.includes(`${path.sep}prebuilds${path.sep}`);
}

/** OpenBLAS's name for the widest kernel family this CPU runs, or undefined to let it decide. */
export function openblasCoreType(cpuFlags: ReadonlySet<string>): string | undefined {
  const has = (...f: string[]) => f.every((x) => cpuFlags.has(x));
  // SkylakeX rather than Cooperlake on CPUs with AVX512-BF16 too: the same sgemm kernel, and measured
  // faster here (benchmarks/RESULTS.md, bench:gemm).
  if (has('avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl')) return 'SkylakeX';
  if (has('avx2', 'fma')) return 'Haswell';
  if (has('avx')) return 'SandyBridge';
  return undefined;
}

function cpuFlags(): Set<string> {
  try {
    const m = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'latin1'));
    return new Set(m?.[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return new Set();
  }
}

function withCoreType<T>(fn: () => T): T {
  const key = 'OPENBLAS_CORETYPE';
  if (process.env[key] !== undefined || process.platform !== 'linux' || process.arch !== 'x64') return fn();
  const core = openblasCoreType(cpuFlags());
  if (core === undefined) return fn();
  process.env[key] = core;
  try {
    return fn();
  } finally {
    delete process.env[key]; // read once, when the library loads; not passed on to child processes
  }
}

const SOURCE_BUILD =
  'To build it from source: install a C++17 compiler with OpenMP, make, python3 and oneDNN (Debian/Ubuntu: ' +
  'apt-get install g++ make python3 libdnnl-dev), then run `npx node-gyp rebuild` in the hgad package folder';

function noBinaryMessage(root: string): string {
  return `hgad has no native binary for ${process.platform}-${process.arch} (Node ${process.version}): ` +
    `the package ships a prebuilt one for linux-x64 (glibc) in ${path.join(root, 'prebuilds')}, and there is no ` +
    `local build in ${path.join(root, 'build', 'Release')}. ${SOURCE_BUILD}.`;
}

function loadFailedMessage(file: string, e: unknown): string {
  const reason = firstLine(e);
  const needs = isPrebuilt(file)
    ? ' The prebuilt binary needs Linux x64 with glibc >= 2.34 and libstdc++ from GCC >= 11 (GLIBCXX_3.4.29).'
    : '';
  return `hgad's native binary ${file} could not be loaded: ${reason}.${needs} ${SOURCE_BUILD}.`;
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0] ?? text;
}

function packageRoot(): string {
  // Compiled files live in dist/lib/, sources in lib/ (ts-jest): walk up to the folder with package.json.
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..');
}
