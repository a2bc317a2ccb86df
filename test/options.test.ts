// Unknown option keys are errors everywhere in the engine API: a misspelt option must not be ignored
// and its default used without a word.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureBatch, HgadArgumentError, HgadModel } from '../lib';

const config = { levels: [{ channels: 4 }], classes: ['a', 'b'], couplingLayers: 1, posEmbedDim: 4, threads: 1, device: 'cpu' as const };
const x: FeatureBatch = { batch: 2, height: 2, width: 2, channels: 4, data: new Float32Array(32).map((_, i) => Math.sin(i)) };
const labels = Int32Array.from([0, 1]);

async function argumentError(f: () => unknown): Promise<HgadArgumentError> {
  let error: unknown;
  try {
    await f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(HgadArgumentError);
  return error as HgadArgumentError;
}

test('HgadModel.create: an unknown key is named, with the keys it accepts', async () => {
  const e = await argumentError(() => HgadModel.create({ ...config, centresPerClass: 4 } as never));
  expect(e.parameter).toBe('config.centresPerClass');
  expect(e.message).toBe('Expected a known key: config accepts only levels, classes, prior, centersPerClass, couplingLayers, ' +
    'clamp, posEmbedDim, seed, threads, device for config.centresPerClass but received number 4');
  const l = await argumentError(() => HgadModel.create({ ...config, levels: [{ channels: 4, chanels: 8 }] } as never));
  expect(l.parameter).toBe('config.levels[0].chanels');
});

test('load, save, trainStep and gradients options: unknown keys are errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hgad-options-'));
  try {
    const model = HgadModel.create(config);
    const path = join(dir, 'm.hgad');
    expect((await argumentError(() => model.save(path, { optimiser: false } as never))).parameter).toBe('options.optimiser');
    await model.save(path);
    expect((await argumentError(() => HgadModel.load(path, { thread: 2 } as never))).parameter).toBe('options.thread');
    expect((await argumentError(() => model.trainStep(0, x, labels, { phase: 1, lr: 1e-3, momentum: 0.9 } as never))).parameter)
      .toBe('options.momentum');
    expect((await argumentError(() => model.gradients(0, x, labels, { weight: { Lg: 1 } } as never))).parameter).toBe('options.weight');
    expect((await argumentError(() => model.gradients(0, x, labels, { phase: 3 } as never))).parameter).toBe('options.phase');
    // The known keys still work.
    await model.save(path, { optimizer: false, metadata: { note: 'x' } });
    await HgadModel.load(path, { threads: 1, device: 'cpu' });
    await model.gradients(0, x, labels, { phase: 1 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('createAsync builds off the JS thread the same model as create, and checks the same way', async () => {
  const a = HgadModel.create({ ...config, seed: 4 });
  const b = await HgadModel.createAsync({ ...config, seed: 4 });
  for (const t of a.tensorInfo()) expect(await b.getTensor(t.name)).toEqual(await a.getTensor(t.name));
  expect(await b.score(0, x)).toEqual(await a.score(0, x));
  expect((await argumentError(() => HgadModel.createAsync({ ...config, centresPerClass: 4 } as never))).parameter)
    .toBe('config.centresPerClass');
  expect((await argumentError(() => HgadModel.createAsync({ ...config, posEmbedDim: 65536 }))).parameter).toBe('config.posEmbedDim');
});
