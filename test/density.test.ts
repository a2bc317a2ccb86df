// The log-density the anomaly maps read (HgadModel.score's density, a detector's map.density):
// 'latent' is the mixture's log p_Z(z), 'full' adds the flow's log|det J| (HGAD.md section 6).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { HgadModel } from '../lib';
import { AnomalyDetector } from '../lib/pipeline/detector';
import { decodeSpec, encodeSpec, PipelineSpec } from '../lib/pipeline/spec';
import { scoreImages } from '../lib/score/scorer';
import { DEFAULT_DENSITY, train } from '../lib/train/trainer';
import { hgad } from './run-cli';
import { tinyDataset, tinyTrainOptions } from './tiny-detector';

describe('HgadModel.score density', () => {
  const C = 5, H = 4, W = 3, B = 2;
  const model = HgadModel.create({ levels: [{ channels: C }], classes: ['a', 'b'], couplingLayers: 2, centersPerClass: 3, posEmbedDim: 8, seed: 3 });
  // deterministic, not all alike
  const x = { batch: B, height: H, width: W, channels: C, data: Float32Array.from({ length: B * H * W * C }, (_, i) => Math.sin(1.7 * i) * 1.3) };

  test("'latent' is 'full' less the flow's log-determinant per channel; the class outputs do not change", async () => {
    const full = await model.score(0, x, 1);
    const latent = await model.score(0, x, 1, { density: 'latent' });
    const { logDet } = await model.forward(0, x);
    let worst = 0;
    for (let i = 0; i < logDet.length; i++) worst = Math.max(worst, Math.abs(full.logp[i]! - logDet[i]! / C - latent.logp[i]!));
    expect(worst).toBeLessThan(1e-4);
    expect(Math.max(...logDet.map(Math.abs))).toBeGreaterThan(1e-3); // the two densities really differ here
    expect(latent.negEntropy).toEqual(full.negEntropy);
    expect(latent.classLogits).toEqual(full.classLogits);
    expect((await model.score(0, x, 1, { density: 'full' })).logp).toEqual(full.logp);
  });

  test('bad options name the parameter', async () => {
    await expect(model.score(0, x, 1, { density: 'joint' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'options.density' });
    await expect(model.score(0, x, 1, { densty: 'latent' } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'options.densty' });
  });
});

describe('map.density in the detector file', () => {
  const spec = (map: object): string => JSON.stringify({
    version: 1, backbone: { model: 'demo', sha256: null, taps: ['t'], scales: null, inputSize: 64, mean: [0, 0, 0], std: [1, 1, 1] },
    map, calibration: null, training: null,
  });

  test("absent means 'full' (files from before the setting); 'full' is written without it so earlier readers still read it", () => {
    const old = decodeSpec(spec({ size: 64, sigma: 4, combine: 'logp*nent' }), 'f', 1, ['a', 'b']);
    expect(old.map.density).toBe('full');
    expect(JSON.parse(encodeSpec(old)).map).toEqual({ size: 64, sigma: 4, combine: 'logp*nent' });
    const latent: PipelineSpec = { ...old, map: { ...old.map, density: 'latent' } };
    expect(JSON.parse(encodeSpec(latent)).map.density).toBe('latent');
    expect(decodeSpec(encodeSpec(latent), 'f', 1, ['a', 'b']).map.density).toBe('latent');
    expect(() => decodeSpec(spec({ size: 64, sigma: 4, density: 'joint' }), 'f', 1, ['a'])).toThrow(/map\.density/);
  });
});

describe('training and scoring with a density', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-density-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test("new detectors read the default density; 'full' on request; the file keeps it and scores follow it", async () => {
    expect(DEFAULT_DENSITY).toBe('latent');
    const data = await tinyDataset(join(dir, 'data'));
    const latent = await train(tinyTrainOptions(data));
    const full = await train({ ...tinyTrainOptions(data), density: 'full' });
    try {
      expect(latent.spec.map.density).toBe('latent');
      expect(full.spec.map.density).toBe('full');
      const file = join(dir, 'latent.hgad');
      await latent.save(file);
      const back = await AnomalyDetector.load(file);
      const images = data.classes.flatMap((c) => data.samples('test', c)).map((s) => s.path);
      const scores = async (d: AnomalyDetector): Promise<number[]> => {
        const out: number[] = [];
        for await (const r of scoreImages(d, images, { onError: 'throw', normalization: 'batch' })) out.push(r.imageScore);
        return out;
      };
      try {
        expect(back.spec.map.density).toBe('latent');
        const a = await scores(latent), b = await scores(back), f = await scores(full);
        expect(b).toEqual(a);
        // same flow and mixture (same seed and data), different maps
        expect(f).not.toEqual(a);
      } finally {
        await back.dispose();
      }
      await expect(train({ ...tinyTrainOptions(data), density: 'joint' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'density' });
    } finally {
      await latent.dispose();
      await full.dispose();
    }
  }, 120000);

  test('hgad train --density full writes it; a bad value names the flag', async () => {
    const out = join(dir, 'cli.hgad');
    const ok = await hgad('train', '--data', join(dir, 'data'), '--backbone', 'demo', '--input-size', '64', '--epochs', '1', '--passes', '1',
      '--coupling-layers', '1', '--centers', '2', '--threads', '1', '--density', 'full', '--out', out);
    expect(ok.code).toBe(0);
    const d = await AnomalyDetector.load(out);
    try {
      expect(d.spec.map.density).toBe('full');
    } finally {
      await d.dispose();
    }
    const bad = await hgad('train', '--data', join(dir, 'data'), '--density', 'joint', '--out', join(dir, 'bad.hgad'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--density/);
  }, 120000);
});
