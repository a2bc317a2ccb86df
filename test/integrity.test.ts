// Integrity of model files and of the model's state: a checksum over the tensor data (format 2), and
// checks of the values themselves (ranges, orthogonal rotations, Adam's moments against each other and
// the step counts), so that a damaged file is refused when it is loaded, naming the tensor, and a
// damaged model is reported as such at scoring instead of as the caller's bad input.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureBatch, HgadError, HgadModel, HgadModelFileError } from '../lib';
import { dataDigest, decodeSafetensors, encodeSafetensors, TensorEntry } from '../lib/io/safetensors';

const config = { levels: [{ channels: 6 }], classes: ['a', 'b'], centersPerClass: 2, couplingLayers: 2, posEmbedDim: 4, seed: 5, threads: 1, device: 'cpu' as const };

function batch(salt = 1): FeatureBatch {
  const data = new Float32Array(2 * 3 * 3 * 6);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(salt + i * 0.731) * 1.3;
  return { batch: 2, height: 3, width: 3, channels: 6, data };
}

let dir: string;
let good: Buffer;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hgad-integrity-'));
  const model = HgadModel.create(config);
  for (let i = 0; i < 3; i++) await model.trainStep(0, batch(i), Int32Array.from([0, 1]), { phase: 2, lr: 1e-2 });
  await model.save(join(dir, 'good.hgad'));
  good = await readFile(join(dir, 'good.hgad'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(bytes: Buffer): Promise<HgadModel> {
  const path = join(dir, `case-${n++}.hgad`);
  await writeFile(path, bytes);
  return HgadModel.load(path, { device: 'cpu' });
}

async function rejection(bytes: Buffer): Promise<HgadModelFileError> {
  const e = await load(bytes).then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(HgadModelFileError);
  return e as HgadModelFileError;
}

/** The good file with `edit` applied to its tensors, written with a checksum of the new data. */
function edited(edit: (t: Map<string, Float32Array>, meta: Record<string, string>) => void, rechecksum = true): Buffer {
  const { metadata, tensors } = decodeSafetensors(good, 'good');
  edit(new Map([...tensors].map(([k, v]) => [k, v.data as Float32Array])), metadata);
  const list = [...tensors.values()] as TensorEntry[];
  if (rechecksum) metadata.checksum = `sha256:${dataDigest(list)}`;
  return encodeSafetensors(list, metadata);
}

describe('checksum (format 2)', () => {
  test('files are written with formatVersion 2 and a sha256 of the data, and load', async () => {
    const { metadata } = decodeSafetensors(good, 'good');
    expect(metadata.formatVersion).toBe('2');
    expect(metadata.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    await expect(load(good)).resolves.toBeInstanceOf(HgadModel);
  });

  test('any changed byte of tensor data is refused, also when the value stays plausible', async () => {
    const dataStart = 8 + Number(good.readBigUInt64LE(0));
    for (const at of [dataStart, dataStart + 101, good.length - 1]) {
      const b = Buffer.from(good);
      b[at] = b[at]! ^ 0x01; // the lowest mantissa bit: a value off by one ulp
      expect((await rejection(b)).message).toMatch(/does not match metadata\.checksum/);
    }
  });

  test('a missing or malformed checksum in a format-2 file is refused', async () => {
    expect((await rejection(edited((_t, m) => { delete m.checksum; }, false))).message).toMatch(/metadata\.checksum is missing/);
    expect((await rejection(edited((_t, m) => { m.checksum = 'crc32:0'; }, false))).message).toMatch(/metadata\.checksum/);
  });

  test('format-1 files (no checksum) still load, with every value check', async () => {
    const v1 = edited((_t, m) => { m.formatVersion = '1'; delete m.checksum; }, false);
    const loaded = await load(v1);
    const original = await load(good);
    expect(await loaded.getTensor('levels.0.mu')).toEqual(await original.getTensor('levels.0.mu'));
    const bad = edited((t, m) => { m.formatVersion = '1'; delete m.checksum; t.get('levels.0.blocks.0.b1')![0] = 1e20; }, false);
    expect((await rejection(bad)).message).toMatch(/"levels\.0\.blocks\.0\.b1" element 0 is 1e\+20/);
  });
});

describe('values', () => {
  test('a damaged parameter (a bias of 1e20) is refused at load, naming the tensor', async () => {
    const e = await rejection(edited((t) => { t.get('levels.0.blocks.1.b2')![3] = 1e20; }));
    expect(e.code).toBe('MODEL_FILE');
    expect(e.message).toMatch(/tensor "levels\.0\.blocks\.1\.b2" element 3 is 1e\+20, outside \[-1e\+06, 1e\+06\]/);
  });

  test('a rotation that is not orthogonal (scaled by 1.01, or one entry changed) is refused', async () => {
    const scaled = await rejection(edited((t) => { t.get('levels.0.blocks.0.rotation')!.forEach((v, i, a) => { a[i] = v * 1.01; }); }));
    expect(scaled.message).toMatch(/"levels\.0\.blocks\.0\.rotation" is not orthogonal: max \|R R\^T - I\| is 0\.020/);
    const poked = await rejection(edited((t) => { t.get('levels.0.blocks.1.rotation')![7]! += 0.01; }));
    expect(poked.message).toMatch(/"levels\.0\.blocks\.1\.rotation" is not orthogonal/);
  });

  test('Adam: a negative second moment, a first moment too large for its second, moments without steps', async () => {
    const negative = await rejection(edited((t) => { t.get('optimizer.levels.0.v.mu')![2] = -1e-6; }));
    expect(negative.message).toMatch(/"optimizer\.levels\.0\.v\.mu" element 2 is -1e-06: Adam's second moment/);
    const large = await rejection(edited((t) => {
      const m = t.get('optimizer.levels.0.m.delta')!, v = t.get('optimizer.levels.0.v.delta')!;
      m[0] = 10 * Math.sqrt(v[0]!) + 1e-3;
    }));
    expect(large.message).toMatch(/"optimizer\.levels\.0\.m\.delta" element 0 .* keep m\^2 <= 2\.8\d* v/);
    const noSteps = await rejection(edited((_t, meta) => { meta.optimizer = JSON.stringify({ steps: [0] }); }));
    expect(noSteps.message).toMatch(/is not 0 although the optimizer has taken no step/);
  });

  test('a negative second moment is refused by setTensor too (it would turn the next step into NaN)', async () => {
    const model = HgadModel.create(config);
    const v = new Float32Array(2 * 6).fill(0);
    v[4] = -1;
    const e = await model.setTensor('optimizer.levels.0.v.mu', v).then(() => undefined, (err: unknown) => err as HgadError);
    expect(e).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'optimizer.levels.0.v.mu' });
  });

  test('a model trained for a while saves and loads again (the checks hold for real training)', async () => {
    const model = HgadModel.create({ ...config, seed: 8 });
    for (let i = 0; i < 40; i++) await model.trainStep(0, batch(i % 5), Int32Array.from([i % 2, 1 - (i % 2)]), { phase: i < 20 ? 1 : 2, lr: 5e-3 });
    const path = join(dir, 'trained.hgad');
    await model.save(path);
    await expect(HgadModel.load(path, { device: 'cpu' })).resolves.toBeInstanceOf(HgadModel);
  });
});

describe('scoring errors say whose fault it is', () => {
  test("a model damaged in memory is a MODEL_STATE error, not the caller's input", async () => {
    const model = HgadModel.create(config);
    const b1 = await model.getTensor('levels.0.blocks.0.b1');
    await model.setTensor('levels.0.blocks.0.b1', b1.map(() => 3e38)); // finite, so setTensor takes it
    const e = await model.score(0, batch()).then(() => undefined, (err: unknown) => err as HgadError);
    expect(e).toBeInstanceOf(HgadError);
    expect(e!.code).toBe('MODEL_STATE');
    expect(e!.message).toMatch(/damaged or has diverged/);
  });

  test('features far out of range on a sound model are still the input\'s fault', async () => {
    const model = HgadModel.create(config);
    const x = batch();
    x.data.fill(1e30);
    const e = await model.score(0, x).then(() => undefined, (err: unknown) => err as HgadError);
    expect(e).toMatchObject({ code: 'INVALID_ARGUMENT', parameter: 'x.data' });
    expect(e!.message).toMatch(/features in x\.data are outside the range/);
  });
});
