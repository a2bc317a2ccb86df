// A tiny detector trained in seconds (demo backbone at 64 px, one pass, 32 px maps) for tests and fuzz
// targets that need a real detector file and real images rather than a hand-written spec.
import { rename } from 'node:fs/promises';
import { join } from 'node:path';

import { openDataset, Dataset } from '../lib/data';
import { generateDemoDataset } from '../lib/demo';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { train, TrainOptions } from '../lib/train/trainer';

export const TINY_CLASSES = ['carpet', 'pill'];

export async function tinyDataset(root: string): Promise<Dataset> {
  await generateDemoDataset({ root, seed: 1, classes: TINY_CLASSES, size: 64, trainPerClass: 6, testGoodPerClass: 1, testDefectPerClass: 2 });
  return openDataset({ root, layout: 'mvtec' });
}

export function tinyTrainOptions(data: Dataset): TrainOptions {
  return {
    data,
    backbone: { model: 'demo', inputSize: 64 },
    schedule: { metaEpochs: 1, subEpochs: 1, lr: 1e-3, warmupEpochs: 0, phase1Epochs: 1 },
    batchSize: 4,
    seed: 1,
    threads: 1,
    progressBar: false,
    flow: { couplingLayers: 1, centersPerClass: 2 },
    holdout: 0.34,
    mapSize: 32,
  };
}

/** Trains the tiny detector on a demo dataset under dir/data and saves it (atomically) to dir/tiny.hgad. */
export async function tinyDetector(dir: string): Promise<{ detector: AnomalyDetector; file: string; dataset: Dataset }> {
  const dataset = await tinyDataset(join(dir, 'data'));
  const detector = await train(tinyTrainOptions(dataset));
  const file = join(dir, 'tiny.hgad');
  await detector.save(`${file}.${process.pid}.part`);
  await rename(`${file}.${process.pid}.part`, file);
  return { detector, file, dataset };
}
