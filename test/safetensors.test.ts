import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// A plain require (not `import *`) so spies installed on it are seen by the module under test.
import fsPromises = require('node:fs/promises');
import { HgadArgumentError, HgadError, HgadModelFileError } from '../lib/errors';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensorsAtomic,
  type TensorEntry,
} from '../lib/io/safetensors';

const sample = (): TensorEntry[] => [
  // 3 bytes first, so every later tensor starts at an odd file offset and decoding must copy.
  { name: 'bytes', dtype: 'U8', shape: [3], data: new Uint8Array([0, 127, 255]) },
  { name: 'levels.0.w', dtype: 'F32', shape: [2, 3], data: new Float32Array([0.1, -2.5, 3e30, -0, 1e-40, 7]) },
  { name: 'ints', dtype: 'I32', shape: [4], data: new Int32Array([-2147483648, -1, 0, 2147483647]) },
  { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
  { name: 'scalar', dtype: 'F64', shape: [], data: new Float64Array([Math.PI]) },
  { name: 'matrix', dtype: 'F64', shape: [2, 1, 2], data: new Float64Array([1e300, -1e-300, 0.5, 42]) },
];
const sampleMetadata = { format: 'hgad', formatVersion: '1', config: '{"classes":3}' };

/** A file image with an arbitrary (unpadded) header, for crafting malformed files. */
function rawFile(header: unknown, data: number | number[] = 0, headerLength?: number): Buffer {
  const json = Buffer.isBuffer(header)
    ? header
    : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerLength ?? json.length));
  return Buffer.concat([prefix, json, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]);
}

function f32(begin: number, end: number, shape = [(end - begin) / 4]) {
  return { dtype: 'F32', shape, data_offsets: [begin, end] };
}

function expectModelError(buf: Buffer, message: RegExp): void {
  let error: unknown;
  try {
    decodeSafetensors(buf, '/models/m.safetensors');
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(HgadModelFileError);
  expect((error as HgadModelFileError).code).toBe('MODEL_FILE');
  expect((error as HgadModelFileError).path).toBe('/models/m.safetensors');
  expect((error as Error).message).toContain('/models/m.safetensors');
  expect((error as Error).message).toMatch(message);
}

function expectArgumentError(fn: () => unknown, parameter: string, message: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(HgadArgumentError);
  expect((error as HgadArgumentError).parameter).toBe(parameter);
  expect((error as Error).message).toMatch(message);
}

async function expectIoError(promise: Promise<unknown>, path: string): Promise<HgadError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(HgadError);
  expect((error as HgadError).code).toBe('IO');
  expect((error as Error).message).toContain(path);
  return error as HgadError;
}

describe('encode/decode round trip', () => {
  test('keeps names, dtypes, shapes, values, metadata and order', () => {
    const tensors = sample();
    const { metadata, tensors: decoded } = decodeSafetensors(encodeSafetensors(tensors, sampleMetadata), 'x');
    expect(metadata).toEqual(sampleMetadata);
    expect([...decoded.keys()]).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const d = decoded.get(t.name)!;
      expect(d.name).toBe(t.name);
      expect(d.dtype).toBe(t.dtype);
      expect(d.shape).toEqual(t.shape);
      expect(d.data.constructor).toBe(t.data.constructor);
      expect(Array.from(d.data)).toEqual(Array.from(t.data));
    }
    // -0 must survive bit-exactly, not just compare equal.
    expect(Object.is(decoded.get('levels.0.w')!.data[3], -0)).toBe(true);
  });

  test('returns aligned copies that do not share memory with the file buffer', () => {
    const buf = encodeSafetensors(sample(), {});
    const { tensors } = decodeSafetensors(buf, 'x');
    const w = tensors.get('levels.0.w')!.data;
    expect(w.byteOffset).toBe(0);
    expect(w.buffer).not.toBe(buf.buffer);
    buf.fill(0, buf.length - 200);
    expect(w[0]).toBeCloseTo(0.1, 6);
  });

  test('encodes only the viewed part of a typed array', () => {
    const backing = new Float32Array([9, 1, 2, 9]);
    const view = new Float32Array(backing.buffer, 4, 2);
    const { tensors } = decodeSafetensors(encodeSafetensors([{ name: 'v', dtype: 'F32', shape: [2], data: view }], {}), 'x');
    expect(Array.from(tensors.get('v')!.data)).toEqual([1, 2]);
  });

  test('handles an empty file, names with special characters and an unpadded header from another writer', () => {
    expect(decodeSafetensors(encodeSafetensors([], {}), 'x').tensors.size).toBe(0);
    const names = ['__proto__', '0', 'ü "quoted" \\'];
    const tensors = names.map((name, i): TensorEntry => ({ name, dtype: 'I32', shape: [1], data: new Int32Array([i]) }));
    const metadata: Record<string, string> = Object.fromEntries([['__proto__', 'y']]);
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata), 'x');
    expect([...decoded.tensors.keys()]).toEqual(names);
    expect(Object.getOwnPropertyDescriptor(decoded.metadata, '__proto__')?.value).toBe('y');
    const unpadded = rawFile({ a: f32(0, 4) }, [0, 0, 0x80, 0x3f]);
    expect(Array.from(decodeSafetensors(unpadded, 'x').tensors.get('a')!.data)).toEqual([1]);
    expect(decodeSafetensors(unpadded, 'x').metadata).toEqual({});
  });
});

describe('byte layout', () => {
  test('matches the reference layout for a small known case', () => {
    const buf = encodeSafetensors(
      [{ name: 'abc', dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) }],
      { format: 'hgad' },
    );
    const json = '{"__metadata__":{"format":"hgad"},"abc":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    expect(json.length).toBe(89);
    // 89 bytes of JSON padded with 7 spaces to 96, so the data starts 8-byte aligned at 104.
    expect(buf.readBigUInt64LE(0)).toBe(96n);
    expect(buf.subarray(8, 8 + 89).toString('utf8')).toBe(json);
    expect(buf.subarray(8 + 89, 8 + 96).toString('latin1')).toBe('       ');
    expect(buf.subarray(104).toString('hex')).toBe('0000c03f000000c0');
    expect(buf.length).toBe(112);
  });

  test('pads every header to a multiple of 8 bytes', () => {
    for (let n = 1; n <= 9; n++) {
      const buf = encodeSafetensors([{ name: 'x'.repeat(n), dtype: 'U8', shape: [1], data: new Uint8Array([n]) }], {});
      const headerLength = Number(buf.readBigUInt64LE(0));
      expect(headerLength % 8).toBe(0);
      expect(buf[8 + headerLength]).toBe(n);
    }
  });
});

describe('encodeSafetensors rejects bad arguments', () => {
  const t = (over: Partial<TensorEntry>): TensorEntry => ({ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(2), ...over });

  test.each([
    ['duplicate names', [t({}), t({})], 'tensors[1].name', /not used by another tensor/],
    ['an empty name', [t({ name: '' })], 'tensors[0].name', /non-empty string/],
    ['the reserved name', [t({ name: '__metadata__' })], 'tensors[0].name', /other than "__metadata__"/],
    ['an unknown dtype', [t({ dtype: 'F16' as never })], 'tensors[0].dtype', /one of F32, I32, F64, U8/],
    ['a dtype/array mismatch', [t({ data: new Int32Array(2) })], 'tensors[0].data', /Float32Array for dtype F32.*Int32Array/],
    ['a plain array as data', [t({ data: [1, 2] as never })], 'tensors[0].data', /Float32Array/],
    ['a negative dimension', [t({ shape: [-2] })], 'tensors[0].shape', /non-negative integers/],
    ['a fractional dimension', [t({ shape: [0.5, 4] })], 'tensors[0].shape', /non-negative integers/],
    ['a shape/size mismatch', [t({ shape: [3] })], 'tensors[0].shape', /2 elements.*\[3\]/],
    ['a huge shape', [t({ shape: [2 ** 40, 2 ** 40] })], 'tensors[0].shape', /2 elements/],
  ])('%s', (_, tensors, parameter, message) => {
    expectArgumentError(() => encodeSafetensors(tensors as TensorEntry[], {}), parameter, message);
  });

  test('non-string metadata values', () => {
    expectArgumentError(() => encodeSafetensors([], { steps: 3 } as never), 'metadata.steps', /a string.*number 3/);
    expectArgumentError(() => encodeSafetensors([], null as never), 'metadata', /object of strings/);
  });
});

describe('decodeSafetensors rejects malformed files', () => {
  const good = encodeSafetensors(sample(), sampleMetadata);
  const headerEnd = 8 + Number(good.readBigUInt64LE(0));

  test.each([0, 1, 7])('truncated to %i bytes: no header length', (n) => {
    expectModelError(good.subarray(0, n), new RegExp(`file is ${n} bytes, shorter than the 8-byte header length`));
  });

  test.each([8, 9, 40, headerEnd - 1])('truncated to %i bytes: inside the header', (n) => {
    expectModelError(good.subarray(0, n), /header length \d+ runs past the end of the \d+-byte file/);
  });

  test.each([headerEnd, headerEnd + 1, headerEnd + 20, good.length - 1])('truncated to %i bytes: inside the data', (n) => {
    expectModelError(good.subarray(0, n), /data_offsets \[\d+, \d+\] run past the end of the \d+-byte data section/);
  });

  test('a header length over 100 MB', () => {
    expectModelError(rawFile('{}', 0, 2 ** 40), /header length 1099511627776 exceeds the 100000000-byte limit/);
    const max = rawFile('{}');
    max.writeBigUInt64LE(2n ** 64n - 1n);
    expectModelError(max, /header length 18446744073709551615 exceeds/);
  });

  test('a header that is not UTF-8, not JSON or not an object', () => {
    expectModelError(rawFile(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x7b, 0x7d, 0x7d])), /not valid UTF-8/);
    expectModelError(rawFile('{"a": {"dtype":'), /not valid JSON/);
    expectModelError(rawFile(''), /not valid JSON/);
    const corrupted = Buffer.from(good);
    corrupted[8] = 'x'.charCodeAt(0);
    expectModelError(corrupted, /not valid JSON/);
    expectModelError(rawFile('[]'), /not a JSON object but array/);
    expectModelError(rawFile('null'), /not a JSON object but null/);
    expectModelError(rawFile('"abc"'), /not a JSON object but string/);
  });

  test('bad metadata', () => {
    expectModelError(rawFile({ __metadata__: { steps: 3 } }), /__metadata__ value "steps" is number 3, not a string/);
    expectModelError(rawFile({ __metadata__: ['a'] }), /__metadata__ is array of length 1, not an object/);
    expectModelError(rawFile({ __metadata__: null }), /__metadata__ is null, not an object/);
  });

  test('bad tensor entries', () => {
    expectModelError(rawFile({ a: 5 }), /tensor "a" entry is number 5, not an object/);
    expectModelError(rawFile({ '': f32(0, 0, [0]) }), /tensor "" has an empty name/);
  });

  test.each(['F16', 'BF16', 'I64', 'f32', 4, null])('an unsupported dtype %p', (dtype) => {
    expectModelError(rawFile({ a: { ...f32(0, 4), dtype } }, 4), /tensor "a" has unsupported dtype .* \(expected one of F32, I32, F64, U8\)/);
  });

  test.each([[[-1]], [[1.5]], [['2']], ['2'], [null], [[2 ** 53]]])('a bad shape %j', (shape) => {
    expectModelError(rawFile({ a: { ...f32(0, 8), shape } }, 8), /tensor "a" shape .* is not an array of non-negative integers/);
  });

  test.each([[[8, 0]], [[0]], [[0, 4, 8]], [[-4, 4]], [[0, 4.5]], ['0,8'], [undefined]])('bad data_offsets %j', (offsets) => {
    expectModelError(rawFile({ a: { ...f32(0, 8), data_offsets: offsets } }, 8), /tensor "a" data_offsets .* are not two integers \[begin, end\]/);
  });

  test('a byte length that does not match the shape', () => {
    expectModelError(rawFile({ a: f32(0, 8, [3]) }, 8), /tensor "a" holds 8 bytes but shape \[3\] of F32 needs 12 bytes/);
    expectModelError(rawFile({ a: { dtype: 'F64', shape: [1], data_offsets: [0, 4] } }, 4), /holds 4 bytes but shape \[1\] of F64 needs 8/);
    expectModelError(rawFile({ a: f32(0, 8, [2 ** 30, 2 ** 30, 2 ** 30]) }, 8), /needs an impossible number of bytes/);
  });

  test('overlapping tensors', () => {
    expectModelError(rawFile({ a: f32(0, 8), b: f32(4, 12) }, 12), /tensors "a" and "b" overlap at byte 4/);
    expectModelError(rawFile({ a: f32(0, 8), b: f32(0, 8) }, 8), /overlap at byte 0/);
    // A zero-size tensor may not sit inside another one either.
    expectModelError(rawFile({ a: f32(0, 8), z: f32(4, 4, [0]) }, 8), /tensors "a" and "z" overlap/);
  });

  test('gaps in the data section', () => {
    expectModelError(rawFile({ a: f32(0, 8), b: f32(12, 20) }, 20), /gap of 4 unused bytes at byte 8 of the data section, before tensor "b"/);
    expectModelError(rawFile({ a: f32(4, 12) }, 12), /gap of 4 unused bytes at byte 0/);
  });

  test('trailing bytes after the last tensor', () => {
    expectModelError(rawFile({ a: f32(0, 8) }, 9), /1 trailing bytes after the last tensor/);
    expectModelError(rawFile({}, 3), /3 trailing bytes/);
    expectModelError(Buffer.concat([good, Buffer.from([0])]), /1 trailing bytes/);
  });

  test('accepts zero-size tensors that share an offset with a neighbour', () => {
    const { tensors } = decodeSafetensors(rawFile({ b: f32(0, 4), z: f32(0, 0, [0]), y: f32(4, 4, [2, 0]) }, 4), 'x');
    expect([...tensors.keys()]).toEqual(['z', 'b', 'y']);
  });
});

describe('files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hgad-st-'));
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  test('writes, overwrites and reads back without leaving temporary files', async () => {
    const path = join(dir, 'model.safetensors');
    await writeSafetensorsAtomic(path, sample().slice(0, 2), { v: '1' });
    await writeSafetensorsAtomic(path, sample(), sampleMetadata);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(await readFile(path)).toEqual(encodeSafetensors(sample(), sampleMetadata));
    const { metadata, tensors } = await readSafetensors(path);
    expect(metadata).toEqual(sampleMetadata);
    expect(tensors.size).toBe(sample().length);
  });

  test('reading a missing file or a directory is an IO error naming the path', async () => {
    const missing = join(dir, 'missing.safetensors');
    expect((await expectIoError(readSafetensors(missing), missing)).message).toMatch(/ENOENT/);
    await expectIoError(readSafetensors(dir), dir);
  });

  test('reading a corrupt file is a model file error, not an IO error', async () => {
    const path = join(dir, 'bad.safetensors');
    await writeFile(path, Buffer.from([1, 2, 3]));
    await expect(readSafetensors(path)).rejects.toThrow(HgadModelFileError);
  });

  test('writing into a missing directory is an IO error and leaves nothing behind', async () => {
    const path = join(dir, 'missing', 'model.safetensors');
    expect((await expectIoError(writeSafetensorsAtomic(path, sample(), {}), path)).message).toMatch(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });

  test('a failing rename (target is a directory) removes the temporary file and keeps the target', async () => {
    const path = join(dir, 'model.safetensors');
    await mkdir(path);
    await writeFile(join(path, 'keep.txt'), 'keep');
    await expectIoError(writeSafetensorsAtomic(path, sample(), {}), path);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect((await stat(path)).isDirectory()).toBe(true);
    expect(await readFile(join(path, 'keep.txt'), 'utf8')).toBe('keep');
  });

  test('a failure after the temporary file is written leaves the existing file intact', async () => {
    const path = join(dir, 'model.safetensors');
    await writeSafetensorsAtomic(path, sample().slice(0, 1), { v: 'old' });
    const before = await readFile(path);
    jest.spyOn(fsPromises, 'rename').mockRejectedValueOnce(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
    const error = await expectIoError(writeSafetensorsAtomic(path, sample(), { v: 'new' }), path);
    expect(error.message).toMatch(/ENOSPC/);
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(await readFile(path)).toEqual(before);
  });

  test('invalid tensors are rejected before the disk is touched', async () => {
    const path = join(dir, 'model.safetensors');
    await expect(
      writeSafetensorsAtomic(path, [{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }], {}),
    ).rejects.toThrow(HgadArgumentError);
    expect(await readdir(dir)).toEqual([]);
  });
});

const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { timeout: 60_000 }).status === 0;
if (!hasTorch) console.log(`Skipping the Python interoperability test: ${PYTHON} cannot import torch`);

// Deliberately independent of this module: the few lines a Python user would write (docs/FORMAT.md).
const PYTHON_READER = `
import json, struct, sys, torch
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, 'header not padded to 8 bytes'
header = json.loads(raw[8:8 + n])
metadata = header.pop('__metadata__', {})
dtypes = {'F32': torch.float32, 'I32': torch.int32, 'F64': torch.float64, 'U8': torch.uint8}
out = {}
for name, e in header.items():
    begin, end = e['data_offsets']
    chunk = bytearray(raw[8 + n + begin:8 + n + end])
    dtype = dtypes[e['dtype']]
    t = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
    t = t.reshape(e['shape'])
    out[name] = {'dtype': str(t.dtype), 'shape': list(t.shape), 'values': t.flatten().tolist()}
print(json.dumps({'metadata': metadata, 'tensors': out}))
`;

(hasTorch ? test : test.skip)('Python with torch reads a file written here', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hgad-st-py-'));
  try {
    const path = join(dir, 'model.safetensors');
    await writeSafetensorsAtomic(path, sample(), sampleMetadata);
    const result = spawnSync(PYTHON, ['-c', PYTHON_READER, path], { encoding: 'utf8', timeout: 60_000 });
    // stderr is shown on failure only: torch may print harmless warnings on some installs.
    if (result.status !== 0) throw new Error(`python failed (${result.status}): ${result.stderr}`);
    const parsed = JSON.parse(result.stdout) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
    };
    expect(parsed.metadata).toEqual(sampleMetadata);
    const torchDtype = { F32: 'torch.float32', I32: 'torch.int32', F64: 'torch.float64', U8: 'torch.uint8' };
    expect(Object.keys(parsed.tensors).sort()).toEqual(sample().map((t) => t.name).sort());
    for (const t of sample()) {
      const py = parsed.tensors[t.name]!;
      expect(py.dtype).toBe(torchDtype[t.dtype]);
      expect(py.shape).toEqual(t.shape);
      expect(py.values).toEqual(Array.from(t.data));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
