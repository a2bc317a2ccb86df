// bench:quality's search in a detector's flow latent space (benchmarks/nn-reference.ts, detector
// option): its vectors are the flow's outputs for the detector's own flow inputs, level by level, and
// the whole reference runs on them with the detector's widths.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { imageBatches } from '../lib/data';
import { HgadArgumentError } from '../lib/errors';
import type { AnomalyDetector } from '../lib/pipeline/detector';
import { latentSource, runNnReference } from '../benchmarks/nn-reference';
import { TINY_CLASSES, tinyDetector } from './tiny-detector';
import type { Dataset } from '../lib/data';

describe('latent search', () => {
  let dir: string;
  let detector: AnomalyDetector;
  let dataset: Dataset;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-nn-latent-'));
    ({ detector, dataset } = await tinyDetector(dir));
  }, 120000);

  afterAll(async () => {
    await detector?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('its vectors are the flow outputs of the detector\'s flow inputs, per level', async () => {
    const src = await latentSource(detector);
    const samples = dataset.samples('train', TINY_CLASSES[0]!).slice(0, 2);
    const size = detector.inputSize;
    for await (const b of imageBatches(samples, { batchSize: 2, size: { width: size, height: size } })) {
      const got = await src.extract(b.pixels, b.batch);
      const inputs = await detector.features(b.pixels, b.batch);
      expect(got.length).toBe(detector.model.config.levels.length);
      for (let l = 0; l < got.length; l++) {
        const want = (await detector.model.forward(l, inputs[l]!)).z;
        expect(got[l]!.channels).toBe(detector.model.config.levels[l]!.channels);
        expect(src.levels[l]!.channels).toBe(got[l]!.channels);
        expect([got[l]!.height, got[l]!.width]).toEqual([src.levels[l]!.height, src.levels[l]!.width]);
        expect(got[l]!.data).toEqual(want);
        // The flow is not the identity: the search really is in another space than its inputs.
        expect(got[l]!.data).not.toEqual(inputs[l]!.data);
      }
    }
    await src.dispose();
  });

  test('runs the reference on the latents, repeatably, and leaves the detector usable', async () => {
    const options = { dataset, classes: TINY_CLASSES, detector, seed: 1, cap: 1 << 20, batchSize: 4, threads: 1, mapSize: 32 };
    const a = await runNnReference(options);
    expect(a.space).toBe('latent');
    for (const bank of a.banks) {
      const l = a.banks.filter((x) => x.className === bank.className).indexOf(bank);
      expect(bank.channels).toBe(detector.model.config.levels[l]!.channels);
      expect(bank.vectors).toBe(bank.available);
    }
    for (const c of TINY_CLASSES) {
      for (const m of [a.perClassBank[c]!, a.allClassesBank[c]!]) {
        expect(m.image).toBeGreaterThanOrEqual(0);
        expect(m.image).toBeLessThanOrEqual(1);
      }
    }
    const b = await runNnReference(options);
    expect(b.perClassBank).toEqual(a.perClassBank);
    expect(b.allClassesBank).toEqual(a.allClassesBank);
    // The detector's backbone was not disposed by the search.
    const size = detector.inputSize;
    await expect(detector.features(new Uint8Array(size * size * 3), 1)).resolves.toHaveLength(detector.model.config.levels.length);
  }, 120000);

  test('needs a backbone or a detector', async () => {
    const e = await runNnReference({ dataset, classes: TINY_CLASSES, seed: 1 }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(HgadArgumentError);
    expect((e as HgadArgumentError).parameter).toBe('options.backbone');
  });
});
