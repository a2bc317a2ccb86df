// Loads the compiled addon: a prebuilt binary from prebuilds/ or a local build in build/, found by
// node-gyp-build from the package root.
import * as path from 'node:path';

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
  blocks: number;
  posDim: number;
  clamp: number;
  seed: number;
  threads: number;
}

export interface NativeModel {
  tensorSpecs(): NativeTensorSpec[];
  getTensor(name: string): Float32Array;
  setTensor(name: string, data: Float32Array): void;
  adamSteps(level: number): number;
  setAdamSteps(level: number, steps: number): void;
  setThreads(threads: number): void;
  forward(level: number, x: Float32Array, batch: number, height: number, width: number, z: Float32Array,
    logDet: Float32Array): Promise<void>;
  inverse(level: number, z: Float32Array, batch: number, height: number, width: number, x: Float32Array): Promise<void>;
  score(level: number, x: Float32Array, batch: number, height: number, width: number, classIndex: Int32Array | null,
    logp: Float32Array, negEntropy: Float32Array, classLogits: Float32Array, classOut: Int32Array): Promise<void>;
  gradients(level: number, x: Float32Array, batch: number, height: number, width: number, labels: Int32Array,
    perVector: boolean, weights: Float64Array, inputGrad: Float32Array | null, lr: number | null): Promise<NativeLosses>;
}

interface Addon {
  NativeModel: new (config: NativeModelConfig) => NativeModel;
  abiVersion: number;
  measureSgemm(M: number, N: number, K: number, threads: number, seconds: number): number;
}

let addon: Addon | undefined;

export function native(): Addon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => Addon;
    addon = load(packageRoot());
  }
  return addon;
}

function packageRoot(): string {
  // Compiled files live in dist/lib/, sources in lib/ (ts-jest): walk up to the folder with package.json.
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    try {
      require.resolve(path.join(dir, 'package.json'));
      return dir;
    } catch {
      dir = path.dirname(dir);
    }
  }
  return path.resolve(__dirname, '..');
}
