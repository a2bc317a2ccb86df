/**
 * Reading an npm package tarball in memory: gunzip with node:zlib (on the libuv pool, bounded output)
 * and a ustar reader that keeps regular files. npm writes ustar headers (name + prefix) and, for long
 * paths, pax 'x' records or GNU 'L' entries; all three are understood. Nothing is written to disk, so
 * entry names are only used as map keys and never as paths.
 */
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';

/** A damaged archive; callers turn it into an HgadError naming the package. */
export class TarError extends Error {}

const gunzipAsync = promisify(gunzip);
const BLOCK = 512;

export async function gunzipBytes(bytes: Uint8Array, maxOutputLength = 2 ** 30): Promise<Buffer> {
  try {
    return await gunzipAsync(bytes, { maxOutputLength });
  } catch (e) {
    throw new TarError(`not a complete gzip stream: ${(e as Error).message}`);
  }
}

function cstring(b: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('utf8');
}

/** An octal field, or base-256 (high bit of the first byte set) as GNU tar writes for large sizes. */
function number(b: Uint8Array, start: number, length: number, what: string, at: number): number {
  if (((b[start] as number) & 0x80) !== 0) {
    let v = (b[start] as number) & 0x7f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + (b[i] as number);
    if (!Number.isSafeInteger(v)) throw new TarError(`entry header at byte ${at}: ${what} too large`);
    return v;
  }
  const text = cstring(b, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`entry header at byte ${at}: ${what} "${text}" is not an octal number`);
  return parseInt(text, 8);
}

/** pax extended header records: "<length> <key>=<value>\n". */
function paxRecords(data: Uint8Array, at: number): Map<string, string> {
  const out = new Map<string, string>();
  const text = Buffer.from(data.buffer, data.byteOffset, data.length);
  let pos = 0;
  while (pos < text.length) {
    const space = text.indexOf(0x20, pos);
    const len = space > pos ? Number(text.toString('latin1', pos, space)) : NaN;
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > text.length) throw new TarError(`pax header at byte ${at} is malformed`);
    const record = text.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * The regular files of a tar archive, by name (leading "./" removed), as views into `tar`.
 * Throws TarError for a damaged header (checksum), a non-octal field or an entry past the end.
 */
export function readTar(tar: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  let off = 0;
  let longName: string | undefined;
  let sawEnd = false;
  while (off + BLOCK <= tar.length) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((x) => x === 0)) {
      sawEnd = true;
      break;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    const stored = number(h, 148, 8, 'checksum', off);
    if (stored !== sum) throw new TarError(`entry header at byte ${off} has checksum ${stored}, computed ${sum}: not a tar archive or damaged`);
    const size = number(h, 124, 12, 'size', off);
    const type = String.fromCharCode(h[156] as number);
    const ustar = cstring(h, 257, 6) === 'ustar';
    const prefix = ustar ? cstring(h, 345, 155) : '';
    const headerName = prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100);
    const start = off + BLOCK;
    const end = start + size;
    if (end > tar.length) throw new TarError(`entry "${headerName}" at byte ${off} needs ${size} bytes; the archive ends ${tar.length - start} bytes later (truncated)`);
    const data = tar.subarray(start, end);
    if (type === 'x') {
      longName = paxRecords(data, off).get('path') ?? longName;
    } else if (type === 'L') {
      longName = cstring(data, 0, data.length);
    } else {
      if (type === '0' || type === '\0' || type === '7') files.set((longName ?? headerName).replace(/^\.\//, ''), data);
      longName = undefined; // 'g' (global pax), directories, links: nothing to keep
    }
    off = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  if (!sawEnd) throw new TarError(`the archive ends at byte ${tar.length} without its end-of-archive blocks (truncated)`);
  return files;
}
