// Resource limits of the engine. A config is refused, naming the setting to change, when the model it
// describes would need more memory than this machine can give one model, before anything is
// allocated: an allocation failure inside the native core is no way to learn that (and a model file
// is only a few bytes of JSON away from any config).
import * as os from 'node:os';

import type { ResolvedConfig } from './config';
import { HgadArgumentError } from './errors';
import { native, NativeLayout, NativeModelConfig } from './native';

/** Share of the machine's memory (os.totalmem()) that one model may need. */
export const MODEL_MEMORY_SHARE = 0.8;

/** Bytes one model may need on this machine: MODEL_MEMORY_SHARE of os.totalmem(). */
export function modelMemoryLimit(): number {
  return Math.floor(os.totalmem() * MODEL_MEMORY_SHARE);
}

/** The config as the addon takes it. */
export function nativeConfig(cfg: ResolvedConfig, device: 'cpu' | 'cuda', init = true): NativeModelConfig {
  return {
    channels: cfg.levels.map((l) => l.channels),
    classes: cfg.classes.length,
    centres: cfg.centersPerClass,
    prior: cfg.prior,
    blocks: cfg.couplingLayers,
    posDim: cfg.posEmbedDim,
    clamp: cfg.clamp,
    seed: cfg.seed,
    threads: cfg.threads,
    device,
    init,
  };
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/**
 * The model's layout (tensors, estimated bytes) when it fits in modelMemoryLimit(); otherwise an
 * HgadArgumentError naming the setting whose reduction saves the most memory.
 */
export function checkModelMemory(cfg: ResolvedConfig): NativeLayout {
  const addon = native().NativeModel;
  const bytesOf = (c: ResolvedConfig): number => addon.layout(nativeConfig(c, 'cpu'), false).bytes;
  const need = bytesOf(cfg);
  const limit = modelMemoryLimit();
  if (need <= limit) return addon.layout(nativeConfig(cfg, 'cpu'));
  // Name the setting that matters most: the one whose smallest value saves the most memory.
  const candidates: Array<{ parameter: string; value: unknown; smaller: ResolvedConfig }> = [
    ...cfg.levels.map((l, i) => ({
      parameter: `config.levels[${i}].channels`, value: l.channels,
      smaller: { ...cfg, levels: cfg.levels.map((m, j) => (j === i ? { channels: 2 } : m)) },
    })),
    { parameter: 'config.posEmbedDim', value: cfg.posEmbedDim, smaller: { ...cfg, posEmbedDim: 4 } },
    { parameter: 'config.couplingLayers', value: cfg.couplingLayers, smaller: { ...cfg, couplingLayers: 1 } },
    { parameter: 'config.centersPerClass', value: cfg.centersPerClass, smaller: { ...cfg, centersPerClass: 1 } },
    { parameter: 'config.classes', value: cfg.classes, smaller: { ...cfg, classes: cfg.classes.slice(0, 1) } },
    { parameter: 'config.threads', value: cfg.threads, smaller: { ...cfg, threads: 1 } },
  ];
  let worst = candidates[0]!;
  let saved = -1;
  for (const c of candidates) {
    const s = need - bytesOf(c.smaller);
    if (s > saved) {
      saved = s;
      worst = c;
    }
  }
  throw new HgadArgumentError(worst.parameter,
    `a smaller value: this config needs about ${gib(need)} of memory, above the limit of ${gib(limit)} ` +
    `(${MODEL_MEMORY_SHARE * 100}% of this machine's ${gib(os.totalmem())})`, worst.value);
}
