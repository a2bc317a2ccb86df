// Seeded mutations shared by the pipeline's fuzz targets (detector files, images): a generator per
// (seed, index), byte-level edits (truncations, flips, inserted and deleted runs, integer fields set to
// hostile values) and value-level edits of JSON trees.
import { hashString, mulberry32 } from '../../lib/data/random';

export class Rng {
  private readonly next: () => number;

  constructor(seed: number, index: number, salt: string) {
    this.next = mulberry32(hashString(`${salt}:${seed}:${index}`));
  }

  float(): number {
    return this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Values that break integer fields: zero, one, signs, powers of two and their neighbours, all ones. */
export const HOSTILE_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x7fff, 0x8000, 0xffff, 0x10000,
  0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 16000, 65535, 100000, 1 << 24];

export type ByteEdit = { what: string; data: Buffer };

/** A fixed-width integer field at `at` set to a hostile value (little- or big-endian). */
export function setField(data: Buffer, at: number, width: 1 | 2 | 4, bigEndian: boolean, value: number): Buffer {
  const b = Buffer.from(data);
  if (at < 0 || at + width > b.length) return b;
  const v = value >>> 0;
  if (width === 1) b.writeUInt8(v & 0xff, at);
  else if (width === 2) (bigEndian ? b.writeUInt16BE(v & 0xffff, at) : b.writeUInt16LE(v & 0xffff, at));
  else (bigEndian ? b.writeUInt32BE(v, at) : b.writeUInt32LE(v, at));
  return b;
}

/** One generic byte-level mutation of `data`. */
export function mutateBytes(rng: Rng, data: Buffer): ByteEdit {
  const n = data.length;
  switch (rng.int(7)) {
    case 0: {
      // Truncation, biased toward the headers where the parsers branch.
      const at = rng.chance(0.5) ? rng.int(Math.min(n, 512)) : rng.int(n);
      return { what: `truncated to ${at} bytes`, data: data.subarray(0, at) };
    }
    case 1: {
      const b = Buffer.from(data);
      const flips = 1 + rng.int(16);
      const inHead = rng.chance(0.5);
      for (let i = 0; i < flips; i++) {
        const at = inHead ? rng.int(Math.min(n, 256)) : rng.int(n);
        b[at] = rng.chance(0.5) ? b[at]! ^ (1 << rng.int(8)) : rng.int(256);
      }
      return { what: `${flips} byte flips${inHead ? ' in the first 256 bytes' : ''}`, data: b };
    }
    case 2: {
      const at = rng.int(Math.min(n, 1024));
      const v = rng.pick(HOSTILE_U32);
      const width = rng.pick([1, 2, 4] as const);
      const be = rng.chance(0.5);
      return { what: `u${width * 8}${be ? 'be' : 'le'} at ${at} = ${v}`, data: setField(data, at, width, be, v) };
    }
    case 3: {
      const at = rng.int(n);
      const len = 1 + rng.int(64);
      return { what: `${len} bytes deleted at ${at}`, data: Buffer.concat([data.subarray(0, at), data.subarray(at + len)]) };
    }
    case 4: {
      const at = rng.int(n);
      const len = 1 + rng.int(64);
      const fill = Buffer.alloc(len, rng.pick([0, 0xff, rng.int(256)]));
      return { what: `${len} bytes inserted at ${at}`, data: Buffer.concat([data.subarray(0, at), fill, data.subarray(at)]) };
    }
    case 5: {
      // A block copied over another place (repeated chunks, markers in the wrong place).
      const from = rng.int(n);
      const to = rng.int(n);
      const len = 1 + rng.int(128);
      const b = Buffer.from(data);
      data.copy(b, to, from, Math.min(n, from + len));
      return { what: `${len} bytes copied from ${from} to ${to}`, data: b };
    }
    default: {
      const keep = rng.int(Math.min(n, 64));
      return { what: `first ${keep} bytes kept, rest zero`, data: Buffer.concat([data.subarray(0, keep), Buffer.alloc(n - keep)]) };
    }
  }
}

/** Every path (list of keys) into a JSON tree, containers included. */
export function jsonPaths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...jsonPaths(x, [...prefix, i])));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) out.push(...jsonPaths(x, [...prefix, k]));
  return out;
}

/** Replacement values: wrong types, huge and tiny numbers, long strings and path names. */
export function hostileValue(rng: Rng, workDir: string): unknown {
  return rng.pick<() => unknown>([
    () => rng.pick([0, -0, 1, -1, 0.5, 2, 3, 1e-300, -1e-300, 5e-324, 1e308, -1e308, 1.7976931348623157e308, 1e9, -1e9,
      2 ** 31, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e-7, 0.999999999, 1.0000001, 65536, 4096, 8192, 16, 15, 7, 8]),
    () => rng.pick([null, true, false, [], {}, [1, 2, 3], { a: 1 }, [[[]]], [null]]),
    () => rng.pick(['', 'NaN', 'Infinity', '-Infinity', '1e308', '0', 'demo', 'mobilenetv2-int8', 'wide-resnet50-2', '__proto__',
      'constructor', 'logp', 'logp*nent', 'nent', 'carpet', 'pill']),
    () => rng.pick(['/etc/passwd', '/dev/zero', '/dev/urandom', '/proc/self/mem', '../../../../etc/shadow', workDir,
      `${workDir}/tiny.hgad`, `${workDir}/nothing.onnx`, 'C:\\Windows\\win.ini', 'x.onnx', '\u0000.onnx']),
    () => 'x'.repeat(rng.pick([100, 5000, 100000])),
    () => 'a'.repeat(64),
    () => rng.float() * 10 ** (rng.int(40) - 20) * (rng.chance(0.3) ? -1 : 1),
  ])();
}

/** One value-level edit of a JSON tree (in place); returns a description. */
export function mutateJson(rng: Rng, root: Record<string, unknown>, workDir: string): string {
  const paths = jsonPaths(root).filter((p) => p.length > 0);
  const path = rng.pick(paths);
  const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], root); // eslint-disable-line @typescript-eslint/no-explicit-any
  const key = path[path.length - 1]!;
  const name = path.join('.');
  const old = parent[key];
  switch (rng.int(6)) {
    case 0:
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return `deleted ${name}`;
    case 1:
      if (typeof old === 'number') {
        const v = rng.pick([old * -1, old * 1e6, old * 1e300, old + 1, old - 1, old / 1e6, Math.round(old) + 0.5, old * (1 + 1e-9)]);
        parent[key] = v;
        return `${name}: ${old} -> ${v}`;
      }
      parent[key] = hostileValue(rng, workDir);
      return `${name} = ${JSON.stringify(parent[key])?.slice(0, 60)}`;
    case 2:
      if (Array.isArray(old)) {
        if (rng.chance(0.5) && old.length > 0) old.push(old[rng.int(old.length)]);
        else old.length = rng.int(old.length + 1);
        return `${name} resized to ${old.length}`;
      }
      if (typeof old === 'object' && old !== null) {
        (old as Record<string, unknown>)[rng.pick(['extra', 'nentTop2', 'sha', 'Model', '__proto__', 'constructor'])] = hostileValue(rng, workDir);
        return `${name} gained a key`;
      }
      parent[key] = hostileValue(rng, workDir);
      return `${name} = ${JSON.stringify(parent[key])?.slice(0, 60)}`;
    default:
      parent[key] = hostileValue(rng, workDir);
      return `${name} = ${JSON.stringify(parent[key])?.slice(0, 60)}`;
  }
}
