// The latent nearest-neighbour banks of a trained detector (spec.map.nearest; lib/pipeline/latent-banks.ts):
// once its flow is final, every training image's flow inputs go through the flow of its class once
// more, are 3x3-averaged, and a stratified random share of the positions is kept per class and level.
import { imageBatches, Sample } from '../data';
import { HgadError } from '../errors';
import type { FeatureLevel } from '../features/backbone';
import type { AnomalyDetector } from '../pipeline/detector';
import { BankLevel, bankLevels, BankSampler, LatentBanks, pooledLatents } from '../pipeline/latent-banks';

export interface BankBuildOptions {
  batchSize: number;
  threads: number;
  /** The flow inputs of training images kept in memory (the training feature cache), if any. */
  cached?: { has(samples: Sample[]): boolean; batch(samples: Sample[]): FeatureLevel[] };
  signal?: AbortSignal;
}

/**
 * The detector's banks with those of `classes` (re)built from `samples` (their training images, in
 * the order the subsampling follows). Other classes' banks stay as they are.
 */
export async function buildBanks(detector: AnomalyDetector, samples: Sample[], classes: readonly string[],
  options: BankBuildOptions): Promise<LatentBanks> {
  const nearest = detector.spec.map.nearest;
  if (!nearest) throw new Error('buildBanks: the detector has no map.nearest');
  const backbone = await detector.backbone();
  const levels = bankLevels(nearest, backbone.levels.map((l, i): BankLevel => ({
    name: l.name, height: l.height, width: l.width, channels: detector.model.config.levels[i]!.channels,
  })));
  let banks = detector.banks;
  for (const className of classes) {
    const own = samples.filter((s) => s.className === className);
    if (own.length === 0) continue;
    const y = detector.classIndex('className', className);
    const sampler = new BankSampler(own.length, levels, nearest.cap, nearest.seed, className);
    const add = async (features: FeatureLevel[]): Promise<void> => {
      if (options.signal?.aborted) throw new HgadError('ABORTED', 'Training was aborted by options.signal', 'signal');
      const classIndex = new Int32Array(features[0]!.batch).fill(y);
      sampler.add(await pooledLatents(detector.model, detector.classFlows, features, classIndex, nearest.coarse === true));
    };
    const cached = options.cached;
    if (cached?.has(own)) {
      for (let b = 0; b < own.length; b += options.batchSize) await add(cached.batch(own.slice(b, b + options.batchSize)));
    } else {
      const size = { width: detector.inputSize, height: detector.inputSize };
      for await (const batch of imageBatches(own, { batchSize: options.batchSize, size, concurrency: 2 * options.threads })) {
        await add(await detector.features(batch.pixels, batch.batch, { handOver: true }));
      }
    }
    banks = banks.with(className, sampler.result());
  }
  return banks;
}
