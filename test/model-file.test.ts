// Model files (docs/FORMAT.md): bit-exact save/load including the optimiser state, the safetensors
// layout and metadata, and rejection of every kind of damaged or foreign file.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// A plain require (not `import *`) so spies installed on it are seen by the module under test.
import fsPromises = require('node:fs/promises');
import { FeatureBatch, HgadConfig, HgadError, HgadModel, HgadModelFileError } from '../lib';
import { dataDigest, decodeSafetensors, encodeSafetensors, TensorEntry } from '../lib/io/safetensors';

const config: HgadConfig = {
  levels: [{ channels: 4 }, { channels: 6 }],
  classes: ['bottle', 'cable'],
  centersPerClass: 3,
  couplingLayers: 2,
  posEmbedDim: 4,
  seed: 17,
  threads: 2,
};

function batch(channels: number, seed: number): FeatureBatch {
  const data = new Float32Array(2 * 3 * 3 * channels);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i * 0.731) * 1.3;
  return { batch: 2, height: 3, width: 3, channels, data };
}
const x0 = batch(4, 1);
const x1 = batch(6, 2);
const labels = Int32Array.from([0, 1]);

function optimizerName(name: string, mv: 'm' | 'v'): string {
  return name.replace(/^levels\.(\d+)\./, `optimizer.levels.$1.${mv}.`);
}

/** Every tensor of the model: parameters, rotations and (for trainable ones) both Adam moments. */
async function allTensors(model: HgadModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const t of model.tensorInfo()) {
    out.set(t.name, await model.getTensor(t.name));
    if (t.group !== 'fixed') {
      for (const mv of ['m', 'v'] as const) out.set(optimizerName(t.name, mv), await model.getTensor(optimizerName(t.name, mv)));
    }
  }
  return out;
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function expectSameTensors(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...b.keys()]).toEqual([...a.keys()]);
  for (const [name, t] of a) expect({ name, equal: bytes(t).equals(bytes(b.get(name)!)) }).toEqual({ name, equal: true });
}

/** A model trained a few steps: level 0 three steps, level 1 two, so both step counts matter. */
async function trainedModel(): Promise<HgadModel> {
  const model = HgadModel.create(config);
  for (let i = 0; i < 3; i++) await model.trainStep(0, x0, labels, { phase: i < 2 ? 1 : 2, lr: 1e-2 });
  for (let i = 0; i < 2; i++) await model.trainStep(1, x1, labels, { phase: 2, lr: 1e-2 });
  return model;
}

let dir: string;
let trained: HgadModel;
let goodPath: string;
let good: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-model-file-'));
  trained = await trainedModel();
  goodPath = join(dir, 'good.hgad');
  await trained.save(goodPath);
  good = await readFile(goodPath);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  jest.restoreAllMocks();
});

describe('save and load', () => {
  test('round trip is bit-exact for every tensor, including the optimiser state and step counts', async () => {
    const loaded = await HgadModel.load(goodPath);
    expect(loaded.config).toEqual(trained.config);
    expect(loaded.tensorInfo()).toEqual(trained.tensorInfo());
    const want = await allTensors(trained);
    // The optimiser state is really there (not all zeros), so its round trip is checked.
    expect(bytes(want.get('optimizer.levels.1.v.mu')!).some((b) => b !== 0)).toBe(true);
    expectSameTensors(want, await allTensors(loaded));
    expectSameTensors(want, await allTensors(await HgadModel.load(goodPath)));

    // Same scores from the loaded model.
    const s1 = await trained.score(1, x1);
    const s2 = await loaded.score(1, x1);
    expect(bytes(s2.logp).equals(bytes(s1.logp))).toBe(true);

    // One more step on each gives identical tensors only if Adam's step counts (bias correction)
    // came back too.
    const original = await HgadModel.load(goodPath); // a copy, so `trained` stays as saved
    for (const m of [original, loaded]) {
      await m.trainStep(0, x0, labels, { phase: 2, lr: 1e-2 });
      await m.trainStep(1, x1, labels, { phase: 2, lr: 1e-2 });
    }
    await trained.trainStep(0, x0, labels, { phase: 2, lr: 1e-2 });
    await trained.trainStep(1, x1, labels, { phase: 2, lr: 1e-2 });
    const next = await allTensors(trained);
    expectSameTensors(next, await allTensors(loaded));
    expectSameTensors(next, await allTensors(original));
    // Restore `trained` to the saved state for the other tests.
    trained = await HgadModel.load(goodPath);
  });

  test('the step counts matter: a copy saved with other counts trains differently', async () => {
    const loaded = await HgadModel.load(goodPath);
    const doctored = decodeSafetensors(good, goodPath);
    doctored.metadata.optimizer = JSON.stringify({ steps: [1, 1] });
    const path = join(dir, 'steps1.hgad');
    await writeFile(path, encodeSafetensors([...doctored.tensors.values()], doctored.metadata));
    const reset = await HgadModel.load(path);
    await loaded.trainStep(0, x0, labels, { phase: 2, lr: 1e-2 });
    await reset.trainStep(0, x0, labels, { phase: 2, lr: 1e-2 });
    const a = await loaded.getTensor('levels.0.blocks.0.w1');
    const b = await reset.getTensor('levels.0.blocks.0.w1');
    expect(bytes(a).equals(bytes(b))).toBe(false);
  });

  test('metadata.optimizer records the per-level Adam step counts', () => {
    const { metadata } = decodeSafetensors(good, goodPath);
    expect(JSON.parse(metadata.optimizer!)).toEqual({ steps: [3, 2] });
  });

  test('extra metadata is stored, returned by load, and may not replace the format keys', async () => {
    const path = join(dir, 'meta.hgad');
    await trained.save(path, { metadata: { pipeline: '{"a":1}', note: 'x' } });
    const loaded = await HgadModel.load(path);
    expect(loaded.metadata).toEqual({ pipeline: '{"a":1}', note: 'x' });
    expect(HgadModel.create(config).metadata).toEqual({});
    await expect(trained.save(path, { metadata: { config: '{}' } })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', parameter: 'options.metadata.config',
    });
    await expect(trained.save(path, { metadata: { n: 3 as unknown as string } })).rejects.toMatchObject({
      parameter: 'options.metadata.n',
    });
    expect((await HgadModel.load(path)).metadata).toEqual({ pipeline: '{"a":1}', note: 'x' });
  });

  test('save with { optimizer: false } omits the optimiser tensors and loads with a fresh optimiser', async () => {
    const path = join(dir, 'no-opt.hgad');
    await trained.save(path, { optimizer: false });
    const { metadata, tensors } = decodeSafetensors(await readFile(path), path);
    expect(metadata.optimizer).toBeUndefined();
    expect([...tensors.keys()]).toEqual(trained.tensorInfo().map((t) => t.name));
    expect([...tensors.keys()].some((n) => n.startsWith('optimizer.'))).toBe(false);
    const loaded = await HgadModel.load(path);
    const want = await allTensors(trained);
    const got = await allTensors(loaded);
    for (const [name, t] of want) {
      if (name.startsWith('optimizer.')) expect(got.get(name)!.every((v) => v === 0)).toBe(true);
      else expect({ name, equal: bytes(t).equals(bytes(got.get(name)!)) }).toEqual({ name, equal: true });
    }
    // It trains like a freshly created model with the same parameters.
    const fresh = HgadModel.create(config);
    for (const t of fresh.tensorInfo()) await fresh.setTensor(t.name, want.get(t.name)!);
    await loaded.trainStep(0, x0, labels, { phase: 1, lr: 1e-2 });
    await fresh.trainStep(0, x0, labels, { phase: 1, lr: 1e-2 });
    expectSameTensors(await allTensors(fresh), await allTensors(loaded));
  });

  test('the file is a plain safetensors file with the hgad metadata', async () => {
    // Parsed by hand here, independently of lib/io/safetensors.
    const headerLength = Number(good.readBigUInt64LE(0));
    const header = JSON.parse(good.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, any>;
    const meta = header.__metadata__ as Record<string, string>;
    expect(meta.format).toBe('hgad');
    expect(meta.formatVersion).toBe('2');
    expect(meta.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const v of Object.values(meta)) expect(typeof v).toBe('string');
    expect(JSON.parse(meta.config!)).toEqual({
      levels: [{ channels: 4 }, { channels: 6 }],
      classes: ['bottle', 'cable'],
      prior: 'hgad',
      centersPerClass: 3,
      couplingLayers: 2,
      clamp: 1.9,
      posEmbedDim: 4,
      seed: 17,
    });
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const info = trained.tensorInfo();
    const expected = [
      ...info.map((t) => t.name),
      ...info.filter((t) => t.group !== 'fixed').flatMap((t) => [optimizerName(t.name, 'm'), optimizerName(t.name, 'v')]),
    ];
    expect([...names].sort()).toEqual([...expected].sort());
    const dataStart = 8 + headerLength;
    let covered = 0;
    for (const t of info) {
      const entry = header[t.name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
      expect(entry.dtype).toBe('F32');
      expect(entry.shape).toEqual(t.shape);
      const [begin, end] = entry.data_offsets;
      const raw = good.subarray(dataStart + begin, dataStart + end);
      expect(raw.equals(bytes(await trained.getTensor(t.name)))).toBe(true);
      covered += end - begin;
    }
    for (const name of names.filter((n) => n.startsWith('optimizer.'))) {
      const [begin, end] = header[name].data_offsets as [number, number];
      expect(good.subarray(dataStart + begin, dataStart + end).equals(bytes(await trained.getTensor(name)))).toBe(true);
      covered += end - begin;
    }
    expect(dataStart + covered).toBe(good.length);
    // The shapes of FORMAT.md (C = 6, C1 = C2 = 3, P = 4, n = 7, Y = 2, M = 3).
    const shapeOf = (n: string): number[] => header[n].shape;
    expect(shapeOf('levels.1.blocks.1.w1')).toEqual([14, 7]);
    expect(shapeOf('levels.1.blocks.1.w2')).toEqual([6, 14]);
    expect(shapeOf('levels.1.blocks.1.rotation')).toEqual([6, 6]);
    expect(shapeOf('levels.1.delta')).toEqual([2, 2, 6]);
    expect(shapeOf('levels.1.psi')).toEqual([2, 3]);
    expect(shapeOf('optimizer.levels.1.v.delta')).toEqual([2, 2, 6]);
  });

  test('load with { threads: 1 } overrides the thread count; threads are not stored', async () => {
    const one = await HgadModel.load(goodPath, { threads: 1 });
    expect(one.threads).toBe(1);
    expect(one.config.threads).toBe(1);
    const dflt = await HgadModel.load(goodPath);
    expect(dflt.threads).toBe(require('node:os').availableParallelism());
    const e = await HgadModel.load(goodPath, { threads: 0 }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(HgadError);
    expect((e as HgadError).code).toBe('INVALID_ARGUMENT');
    expect((e as HgadError).parameter).toMatch(/threads/);
    // A one-thread model computes the same forward pass.
    const a = await one.forward(1, x1);
    const b = await dflt.forward(1, x1);
    expect(Array.from(a.z)).toEqual(Array.from(b.z));
  });
});

describe('damaged and foreign files are rejected with HgadModelFileError', () => {
  let counter = 0;
  async function expectRejected(contents: Buffer, problem: RegExp): Promise<HgadModelFileError> {
    const path = join(dir, `bad-${counter++}.hgad`);
    await writeFile(path, contents);
    let error: unknown;
    try {
      await HgadModel.load(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HgadModelFileError);
    const e = error as HgadModelFileError;
    expect(e.code).toBe('MODEL_FILE');
    expect(e.path).toBe(path);
    expect(e.message).toContain(path);
    expect(e.message).toMatch(problem);
    return e;
  }

  /**
   * The good file decoded, changed by `edit`, and encoded again with the checksum of the new data (as
   * another program writing a bad model would): what is left to catch is the edit itself.
   */
  function reencoded(edit: (tensors: TensorEntry[], metadata: Record<string, string>) => TensorEntry[] | void): Buffer {
    const { metadata, tensors } = decodeSafetensors(good, goodPath);
    const list = edit([...tensors.values()], metadata) ?? [...tensors.values()];
    if (metadata.checksum !== undefined) metadata.checksum = `sha256:${dataDigest(list)}`;
    return encodeSafetensors(list, metadata);
  }

  test('the unmodified re-encoding loads (the edits below are what is rejected)', async () => {
    const path = join(dir, 'reencoded.hgad');
    await writeFile(path, reencoded(() => undefined));
    expectSameTensors(await allTensors(trained), await allTensors(await HgadModel.load(path)));
  });

  test('truncated files', async () => {
    const headerLength = Number(good.readBigUInt64LE(0));
    const dataStart = 8 + headerLength;
    await expectRejected(good.subarray(0, 0), /shorter than the 8-byte header length/);
    await expectRejected(good.subarray(0, 5), /shorter than the 8-byte header length/);
    for (const at of [8, 8 + 20, 8 + Math.floor(headerLength / 2), dataStart - 1]) {
      await expectRejected(good.subarray(0, at), /header length .* runs past the end/);
    }
    for (const at of [dataStart, dataStart + 3, dataStart + Math.floor((good.length - dataStart) / 2), good.length - 1]) {
      await expectRejected(good.subarray(0, at), /run past the end|data section/);
    }
  });

  test('a flipped byte inside the JSON header', async () => {
    const headerLength = Number(good.readBigUInt64LE(0));
    for (const at of [8, 8 + 1, 8 + Math.floor(headerLength / 3), 8 + headerLength - 1]) {
      const bad = Buffer.from(good);
      bad[at] = bad[at]! ^ 0xff;
      await expectRejected(bad, /header is not valid (UTF-8|JSON)/);
    }
    // An ASCII flip that keeps the header valid UTF-8 but breaks the JSON: '{' -> 'z'.
    const bad = Buffer.from(good);
    expect(String.fromCharCode(bad[8]!)).toBe('{');
    bad[8] = 'z'.charCodeAt(0);
    await expectRejected(bad, /header is not valid JSON/);
  });

  test('a flipped bit in a tensor name in the header', async () => {
    const text = good.toString('latin1');
    const nameAt = text.indexOf('"levels.1.mu"') + 'levels.1.'.length + 1; // the 'm'
    const renamed = Buffer.from(good);
    renamed[nameAt] = renamed[nameAt]! ^ 0x01; // 'm' -> 'l'
    await expectRejected(renamed, /levels\.1\.(mu|lu)/);
  });

  test('a tensor renamed', async () => {
    const e = await expectRejected(reencoded((ts) => {
      ts.find((t) => t.name === 'levels.0.blocks.1.b2')!.name = 'levels.0.blocks.1.bias2';
    }), /levels\.0\.blocks\.1\.(bias2|b2)/);
    expect(e.message).toMatch(/unexpected|missing/);
  });

  test('a tensor with a changed shape (same number of elements)', async () => {
    await expectRejected(reencoded((ts) => {
      ts.find((t) => t.name === 'levels.1.mu')!.shape = [6, 2];
    }), /"levels\.1\.mu" has shape \[6, 2\], expected \[2, 6\]/);
  });

  test('a tensor with a changed shape and size', async () => {
    await expectRejected(reencoded((ts) => {
      const t = ts.find((x) => x.name === 'levels.0.psi')!;
      t.shape = [2, 2];
      t.data = (t.data as Float32Array).slice(0, 4);
    }), /levels\.0\.psi.*shape/);
  });

  test('a missing tensor', async () => {
    await expectRejected(reencoded((ts) => ts.filter((t) => t.name !== 'levels.1.delta')), /missing tensor "levels\.1\.delta"/);
    await expectRejected(reencoded((ts) => ts.filter((t) => t.name !== 'levels.0.blocks.0.rotation')),
      /missing tensor "levels\.0\.blocks\.0\.rotation"/);
  });

  test('a missing optimiser tensor while metadata.optimizer is present', async () => {
    await expectRejected(reencoded((ts) => ts.filter((t) => t.name !== 'optimizer.levels.0.v.phi')),
      /missing tensor "optimizer\.levels\.0\.v\.phi"/);
  });

  test('optimiser tensors without metadata.optimizer', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      delete meta.optimizer;
    }), /unexpected tensor "optimizer\./);
  });

  test('an extra tensor', async () => {
    await expectRejected(reencoded((ts) => [...ts, { name: 'levels.0.extra', dtype: 'F32', shape: [2], data: new Float32Array(2) }]),
      /unexpected tensor "levels\.0\.extra"/);
    await expectRejected(reencoded((ts) => [...ts, { name: 'levels.2.mu', dtype: 'F32', shape: [2, 4], data: new Float32Array(8) }]),
      /unexpected tensor "levels\.2\.mu"/);
  });

  test('a tensor of the wrong dtype (I32)', async () => {
    await expectRejected(reencoded((ts) => {
      const t = ts.find((x) => x.name === 'levels.0.phi')!;
      t.dtype = 'I32';
      t.data = new Int32Array(t.data.length);
    }), /"levels\.0\.phi" has dtype I32, expected F32/);
  });

  test('metadata.format not "hgad"', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      meta.format = 'pt';
    }), /metadata\.format is "pt", expected "hgad"/);
    await expectRejected(reencoded((_ts, meta) => {
      delete meta.format;
    }), /metadata\.format/);
  });

  test('formatVersion "3"', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      meta.formatVersion = '3';
    }), /format version "3" is not supported/);
  });

  test('config that is not valid JSON', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      meta.config = meta.config!.slice(0, -1);
    }), /metadata\.config is not valid JSON/);
    await expectRejected(reencoded((_ts, meta) => {
      delete meta.config;
    }), /metadata\.config/);
  });

  test('config with channels 1', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      const c = JSON.parse(meta.config!);
      c.levels[0].channels = 1;
      meta.config = JSON.stringify(c);
    }), /metadata\.config is not a valid model config: .*config\.levels\[0\]\.channels/);
  });

  test('config that disagrees with the tensors (channels 5 instead of 4)', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      const c = JSON.parse(meta.config!);
      c.levels[0].channels = 5;
      meta.config = JSON.stringify(c);
    }), /shape/);
  });

  test('NaN in a tensor', async () => {
    await expectRejected(reencoded((ts) => {
      (ts.find((t) => t.name === 'levels.1.psi')!.data as Float32Array)[2] = NaN;
    }), /"levels\.1\.psi".*element 2 is NaN/);
    await expectRejected(reencoded((ts) => {
      (ts.find((t) => t.name === 'optimizer.levels.0.m.blocks.1.w1')!.data as Float32Array)[0] = Infinity;
    }), /optimizer\.levels\.0\.m\.blocks\.1\.w1.*Infinity/);
  });

  test('bad optimizer step counts', async () => {
    for (const steps of ['[3]', '[3, -1]', '[3, 1.5]', '"x"']) {
      await expectRejected(reencoded((_ts, meta) => {
        meta.optimizer = `{"steps": ${steps}}`;
      }), /metadata\.optimizer/);
    }
    await expectRejected(reencoded((_ts, meta) => {
      meta.optimizer = '{steps';
    }), /metadata\.optimizer is not valid JSON/);
  });

  test('an optimizer step count too large for the native core (2^52 + 2)', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      meta.optimizer = JSON.stringify({ steps: [2 ** 52 + 2, 0] });
    }), /metadata\.optimizer|steps/);
  });

  test('a stored config with an invalid threads entry is a damaged file, not a bad load() argument', async () => {
    await expectRejected(reencoded((_ts, meta) => {
      meta.config = JSON.stringify({ ...JSON.parse(meta.config!), threads: 0 });
    }), /metadata\.config/);
  });

  test('a file that is not a model at all', async () => {
    await expectRejected(Buffer.from('PK\u0003\u0004 this is a zip file, not a model'), /header length/);
  });
});

describe('file system errors', () => {
  test('a missing file is an IO error, not a model file error', async () => {
    const path = join(dir, 'does-not-exist.hgad');
    const e = await HgadModel.load(path).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(HgadError);
    expect(e).not.toBeInstanceOf(HgadModelFileError);
    expect((e as HgadError).code).toBe('IO');
    expect((e as Error).message).toContain(path);
  });

  test('save into a missing directory is an IO error and leaves no temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'save-'));
    const path = join(sub, 'missing', 'model.hgad');
    const e = await trained.save(path).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(HgadError);
    expect((e as HgadError).code).toBe('IO');
    expect((e as Error).message).toContain(path);
    expect(await readdir(sub)).toEqual([]);
    expect(existsSync(join(sub, 'missing'))).toBe(false);
  });

  test('save over a directory fails with IO, leaves no temporary file and keeps the directory', async () => {
    const sub = await mkdtemp(join(dir, 'save-'));
    const path = join(sub, 'model.hgad');
    await mkdir(path);
    await writeFile(join(path, 'keep.txt'), 'keep');
    const e = await trained.save(path).catch((err: unknown) => err);
    expect((e as HgadError).code).toBe('IO');
    expect(await readdir(sub)).toEqual(['model.hgad']);
    expect((await stat(path)).isDirectory()).toBe(true);
    expect(await readFile(join(path, 'keep.txt'), 'utf8')).toBe('keep');
  });

  test('a save over an existing model that fails at the rename keeps the old file and leaves no temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'save-'));
    const path = join(sub, 'model.hgad');
    await trained.save(path, { optimizer: false });
    const before = await readFile(path);
    jest.spyOn(fsPromises, 'rename').mockRejectedValueOnce(Object.assign(new Error('EXDEV: cross-device link'), { code: 'EXDEV' }));
    const e = await trained.save(path).catch((err: unknown) => err);
    expect((e as HgadError).code).toBe('IO');
    expect((e as Error).message).toMatch(/EXDEV/);
    expect(await readdir(sub)).toEqual(['model.hgad']);
    expect((await readFile(path)).equals(before)).toBe(true);
    // The model is still usable and a later save succeeds.
    await trained.save(path);
    expect((await readFile(path)).equals(good)).toBe(true);
  });
});
