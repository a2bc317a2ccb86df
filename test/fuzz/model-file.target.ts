// Fuzz target: seeded mutations of real hgad model files -> HgadModel.load, then, when the file loads,
// a score, a training step and a save/load round trip. Every file must load or be refused with a typed
// error; a file whose tensor bytes were changed behind the checksum's back must never load; and a
// model that loaded must keep working (a model that loads but cannot be saved and loaded again is the
// silent corruption the integrity checks exist to stop).
//
// Mutations: truncation, byte flips (anywhere, or in the data only), edits of the 8-byte header length,
// inserted and appended bytes, and edits of the JSON header re-serialised with a correct length: dtype,
// shape (off by one, huge, negative, fractional), data_offsets, tensor names, every config value
// (huge channels / posEmbedDim / couplingLayers, zero, negative, wrong types, unknown keys), optimizer
// step counts, format and version, the checksum; and value edits written with a valid checksum
// (NaN, huge values, negative second moments, scaled rotations, tensors swapped).
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { HgadError, HgadModel } from '../../lib';
import { mulberry32 } from '../../lib/data/random';
import { dataDigest, decodeSafetensors, encodeSafetensors, TensorEntry } from '../../lib/io/safetensors';
import type { FuzzContext, FuzzTarget } from './harness';

interface Seed {
  name: string;
  config: Parameters<typeof HgadModel.create>[0];
  steps: number;
  optimizer: boolean;
  /** Rewrite as a format-1 file (no checksum): its data edits reach the value checks. */
  version1?: boolean;
}

const SEEDS: Seed[] = [
  { name: 'two-levels', config: { levels: [{ channels: 4 }, { channels: 6 }], classes: ['a', 'b'], centersPerClass: 3, couplingLayers: 2, posEmbedDim: 4, seed: 3 }, steps: 2, optimizer: true },
  { name: 'no-optimizer', config: { levels: [{ channels: 5 }], classes: ['a', 'b', 'c'], centersPerClass: 2, couplingLayers: 3, posEmbedDim: 8, seed: 5 }, steps: 1, optimizer: false },
  { name: 'single-gaussian', config: { levels: [{ channels: 8 }], classes: ['x'], prior: 'single-gaussian', couplingLayers: 2, posEmbedDim: 4, seed: 7 }, steps: 1, optimizer: true },
  { name: 'version1', config: { levels: [{ channels: 6 }], classes: ['a', 'b'], centersPerClass: 2, couplingLayers: 2, posEmbedDim: 4, seed: 9 }, steps: 2, optimizer: true, version1: true },
  { name: 'wider', config: { levels: [{ channels: 32 }], classes: ['a', 'b', 'c'], centersPerClass: 4, couplingLayers: 4, posEmbedDim: 16, seed: 11 }, steps: 1, optimizer: true },
];

type Kind =
  | 'truncate' | 'flip-any' | 'flip-data' | 'header-length' | 'insert' | 'append'
  | 'dtype' | 'shape' | 'offsets' | 'rename' | 'drop' | 'config' | 'optimizer-steps' | 'format' | 'checksum'
  | 'values';
const KINDS: Array<[Kind, number]> = [
  ['truncate', 6], ['flip-any', 8], ['flip-data', 10], ['header-length', 5], ['insert', 3], ['append', 3],
  ['dtype', 5], ['shape', 6], ['offsets', 5], ['rename', 3], ['drop', 3], ['config', 14], ['optimizer-steps', 4],
  ['format', 3], ['checksum', 3], ['values', 15],
];

interface Case {
  seed: string;
  kind: Kind;
  what: string;
  bytes: Buffer;
  /** The tensor bytes changed while the checksum was left as it was: loading must fail. */
  mustReject: boolean;
}

const files = new Map<string, Buffer>();

function featureBatch(channels: number, salt: number): { data: Float32Array; batch: number; height: number; width: number; channels: number } {
  const data = new Float32Array(2 * 3 * 3 * channels);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(salt + i * 0.731) * 1.3;
  return { data, batch: 2, height: 3, width: 3, channels };
}

async function makeSeed(dir: string, s: Seed): Promise<Buffer> {
  const path = join(dir, `${s.name}.hgad`);
  try {
    await stat(path);
  } catch {
    const model = HgadModel.create({ ...s.config, threads: 1, device: 'cpu' });
    const labels = Int32Array.from([0, s.config.classes.length - 1]);
    for (let i = 0; i < s.steps; i++) {
      for (let l = 0; l < s.config.levels.length; l++) {
        await model.trainStep(l, featureBatch(s.config.levels[l]!.channels, i + l), labels, { phase: i === 0 ? 1 : 2, lr: 1e-2 });
      }
    }
    const tmp = `${path}.part-${process.pid}`;
    await model.save(tmp, { optimizer: s.optimizer });
    if (s.version1) {
      const { metadata, tensors } = decodeSafetensors(await readFile(tmp), tmp);
      metadata.formatVersion = '1';
      delete metadata.checksum;
      await writeFile(tmp, encodeSafetensors([...tensors.values()], metadata));
    }
    await rename(tmp, path);
  }
  return readFile(path);
}

/** Splits a file into its header object and data section (the seeds are well-formed). */
function split(buf: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>, data: buf.subarray(8 + n) };
}

function join8(header: unknown, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

const HUGE = [0, -1, 1, 2, 3, 1.5, 1e9, 2 ** 31, 2 ** 40, 2 ** 53, 1e300, 65536, 65535, 4096, 1024, 257, 'x', null, true, [], {}];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function generateCase(seedName: string, file: Buffer, r: () => number, kind: Kind): Case {
  const { header, data } = split(file);
  const meta = header.__metadata__ as Record<string, string>;
  const checksummed = meta.checksum !== undefined;
  const tensorNames = Object.keys(header).filter((k) => k !== '__metadata__');
  const dataStart = file.length - data.length;
  const out = (what: string, bytes: Buffer, mustReject = false): Case => ({ seed: seedName, kind, what, bytes, mustReject });
  switch (kind) {
    case 'truncate': {
      const at = Math.floor(r() * file.length);
      return out(`truncate at ${at} of ${file.length}`, file.subarray(0, at));
    }
    case 'flip-any':
    case 'flip-data': {
      const b = Buffer.from(file);
      const n = 1 + Math.floor(r() * 8);
      const from = kind === 'flip-data' ? dataStart : 0;
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = from + Math.floor(r() * (b.length - from));
        b[p] = b[p]! ^ (1 << Math.floor(r() * 8));
        at.push(p);
      }
      const changedData = at.some((p) => p >= dataStart) && !b.subarray(dataStart).equals(file.subarray(dataStart));
      const headerSame = b.subarray(0, dataStart).equals(file.subarray(0, dataStart));
      return out(`flip bits at ${at.join(',')}`, b, checksummed && changedData && headerSame);
    }
    case 'header-length': {
      const b = Buffer.from(file);
      const n = Number(file.readBigUInt64LE(0));
      const v = pick(r, [0n, 1n, 7n, BigInt(n - 1), BigInt(n + 1), BigInt(n + 8), BigInt(file.length), BigInt(file.length - 8),
        100_000_001n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n]);
      b.writeBigUInt64LE(v, 0);
      return out(`header length ${v}`, b);
    }
    case 'insert': {
      const at = Math.floor(r() * file.length);
      const extra = Buffer.alloc(1 + Math.floor(r() * 16), Math.floor(r() * 256));
      return out(`insert ${extra.length} bytes at ${at}`, Buffer.concat([file.subarray(0, at), extra, file.subarray(at)]));
    }
    case 'append': {
      const extra = Buffer.alloc(pick(r, [1, 4, 8, 1000]), Math.floor(r() * 256));
      return out(`append ${extra.length} bytes`, Buffer.concat([file, extra]));
    }
    case 'dtype': {
      const name = pick(r, tensorNames);
      const t = header[name] as Record<string, unknown>;
      t.dtype = pick(r, ['I32', 'F64', 'U8', 'F16', 'BF16', 'x', 7, null]);
      return out(`${name}.dtype = ${JSON.stringify(t.dtype)}`, join8(header, data));
    }
    case 'shape': {
      const name = pick(r, tensorNames);
      const t = header[name] as { shape: unknown[] };
      const shape = [...t.shape];
      const how = Math.floor(r() * 5);
      if (how === 0 && shape.length > 0) shape[Math.floor(r() * shape.length)] = pick(r, HUGE);
      else if (how === 1) shape.push(pick(r, [1, 0, 2, 2 ** 40]));
      else if (how === 2) shape.reverse();
      else if (how === 3) shape.splice(0, 1);
      else t.shape = pick(r, HUGE) as never;
      if (how !== 4) t.shape = shape;
      return out(`${name}.shape = ${JSON.stringify(t.shape)}`, join8(header, data));
    }
    case 'offsets': {
      const name = pick(r, tensorNames);
      const t = header[name] as { data_offsets: unknown[] };
      const o = [...t.data_offsets];
      o[Math.floor(r() * 2)] = pick(r, [...HUGE, data.length, data.length + 4]);
      t.data_offsets = r() < 0.1 ? (pick(r, HUGE) as never) : o;
      return out(`${name}.data_offsets = ${JSON.stringify(t.data_offsets)}`, join8(header, data));
    }
    case 'rename': {
      const name = pick(r, tensorNames);
      const to = pick(r, [name.replace(/\d/, '9'), `${name}x`, '', '__metadata__', 'levels.0.mu', 'optimizer.levels.0.m.mu', 'grad.levels.0.mu']);
      const t = header[name];
      delete header[name];
      header[to] = t;
      return out(`rename ${name} -> ${to}`, join8(header, data));
    }
    case 'drop': {
      const name = pick(r, tensorNames);
      delete header[name];
      return out(`drop ${name}`, join8(header, data));
    }
    case 'config': {
      const cfg = JSON.parse(meta.config!) as Record<string, unknown>;
      const key = pick(r, ['levels.channels', 'levels', 'classes', 'prior', 'centersPerClass', 'couplingLayers', 'clamp', 'posEmbedDim',
        'seed', 'unknown', 'threads', 'device']);
      const value = key === 'prior' ? pick(r, ['hgad', 'single-gaussian', 'inter-only', 'x', 1])
        : key === 'classes' ? pick(r, [[], ['a'], ['a', 'a'], Array.from({ length: 200000 }, (_, i) => `c${i}`), 'a', [1, 2]])
          : key === 'clamp' ? pick(r, [0, -1, 1e308, 1e-300, 1.9, 'x'])
            : key === 'levels' ? pick(r, [[], [{ channels: 4 }], Array.from({ length: 5000 }, () => ({ channels: 4 })), [{ channels: 4, x: 1 }], {}])
              : pick(r, HUGE);
      if (key === 'levels.channels') {
        const levels = cfg.levels as Array<Record<string, unknown>>;
        levels[Math.floor(r() * levels.length)]!.channels = value;
      } else if (key === 'unknown') {
        cfg.centresPerClass = value;
      } else {
        cfg[key] = value;
      }
      meta.config = r() < 0.05 ? '{"levels": [' : JSON.stringify(cfg);
      return out(`config.${key} = ${JSON.stringify(value)?.slice(0, 60)}`, join8(header, data));
    }
    case 'optimizer-steps': {
      const v = pick(r, ['{"steps":[0]}', '{"steps":[0,0]}', '{"steps":[1e300,1]}', '{"steps":[-1,2]}', '{"steps":"x"}', 'null', '{',
        '{"steps":[4503599627370496,1]}', '{"steps":[1,1,1]}', '{"steps":[1.5,1]}', '{"steps":[0,2]}']);
      meta.optimizer = v;
      return out(`optimizer = ${v}`, join8(header, data));
    }
    case 'format': {
      const which = pick(r, ['format', 'formatVersion']);
      meta[which] = pick(r, ['hgad', '1', '2', '3', '', 'pt', '02']);
      if (r() < 0.2) (header as Record<string, unknown>).__metadata__ = pick(r, [null, 1, 'x', { format: 1 }]);
      return out(`${which} = ${meta[which]}`, join8(header, data));
    }
    case 'checksum': {
      const v = pick(r, [undefined, '', 'sha256:', `sha256:${'0'.repeat(64)}`, `md5:${'0'.repeat(32)}`, `sha256:${'G'.repeat(64)}`]);
      if (v === undefined) delete meta.checksum;
      else meta.checksum = v;
      return out(`checksum = ${v}`, join8(header, data));
    }
    case 'values': {
      // Valid container and checksum, wrong values: what only the value checks can catch.
      const { metadata, tensors } = decodeSafetensors(file, seedName);
      const list = [...tensors.values()];
      const t = pick(r, list);
      const a = t.data as Float32Array;
      const how = Math.floor(r() * 6);
      let what: string;
      if (how === 0) {
        const i = Math.floor(r() * a.length);
        a[i] = pick(r, [NaN, Infinity, -Infinity, 1e20, -1e20, 3e6, -5, 1e-45]);
        what = `${t.name}[${i}] = ${a[i]}`;
      } else if (how === 1) {
        const f = pick(r, [1.01, 0.5, -1, 1e6, 0]);
        for (let i = 0; i < a.length; i++) a[i] = a[i]! * f;
        what = `${t.name} *= ${f}`;
      } else if (how === 2) {
        const other = pick(r, list.filter((u) => u.data.length === a.length && u !== t));
        if (other) {
          const copy = Float32Array.from(a);
          a.set(other.data as Float32Array);
          (other.data as Float32Array).set(copy);
        }
        what = `swap ${t.name} <-> ${other?.name ?? '(none)'}`;
      } else if (how === 3) {
        const i = Math.floor(r() * a.length);
        a[i] = -Math.abs(a[i]! || 1e-3);
        what = `${t.name}[${i}] negative`;
      } else if (how === 4) {
        for (let i = 0; i < a.length; i++) a[i] = r() * 2 - 1;
        what = `${t.name} random in [-1, 1]`;
      } else {
        a.fill(0);
        what = `${t.name} zero`;
      }
      if (metadata.checksum !== undefined) metadata.checksum = `sha256:${dataDigest(list as TensorEntry[])}`;
      return out(what, encodeSafetensors(list, metadata));
    }
  }
}

let caseFile = '';
let roundTrip = '';

export const target: FuzzTarget<Case> = {
  async setup(ctx: FuzzContext) {
    const dir = join(ctx.workDir, 'seeds');
    await mkdir(dir, { recursive: true });
    for (const s of SEEDS) files.set(s.name, await makeSeed(dir, s));
    caseFile = join(ctx.workDir, `case-${process.pid}.hgad`);
    roundTrip = join(ctx.workDir, `again-${process.pid}.hgad`);
  },

  generate(seed, index) {
    const r = mulberry32((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
    const s = SEEDS[Math.floor(r() * SEEDS.length)]!;
    const total = KINDS.reduce((a, [, w]) => a + w, 0);
    let x = r() * total;
    let kind: Kind = KINDS[0]![0];
    for (const [k, w] of KINDS) {
      if ((x -= w) < 0) {
        kind = k;
        break;
      }
    }
    return generateCase(s.name, files.get(s.name)!, r, kind);
  },

  describe: (c) => `${c.seed}: ${c.kind}: ${c.what}`,

  async run(c) {
    await writeFile(caseFile, c.bytes);
    // A stalled event loop is a failure even when the case settles before the harness's timeout.
    let last = Date.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = Date.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 20);
    try {
      const model = await HgadModel.load(caseFile, { threads: 1, device: 'cpu' });
      if (c.mustReject) throw new Error('tensor bytes changed behind the checksum, and the file loaded');
      const cfg = model.config;
      const x = featureBatch(cfg.levels[0]!.channels, 1);
      try {
        await model.score(0, x);
      } catch (e) {
        // The load should have refused a model whose parameters cannot score ordinary features.
        if (e instanceof HgadError && e.code === 'MODEL_STATE') throw new Error(`loaded a model that cannot score: ${e.message}`);
        throw e;
      }
      const labels = Int32Array.from([0, cfg.classes.length - 1]);
      await model.trainStep(0, x, labels, { phase: 2, lr: 1e-3 });
      await model.save(roundTrip);
      try {
        await HgadModel.load(roundTrip, { threads: 1, device: 'cpu' });
      } catch (e) {
        throw new Error(`a model that loaded, scored and trained cannot be loaded after saving: ${(e as Error).message}`);
      }
    } finally {
      clearInterval(timer);
      await rm(roundTrip, { force: true });
    }
    if (worstGap > 3000) throw new Error(`the event loop stalled for ${worstGap} ms`);
  },
};
