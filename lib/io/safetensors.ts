/**
 * Reading and writing safetensors containers (https://github.com/huggingface/safetensors), the file
 * format of hgad models (docs/FORMAT.md). Only the dtypes hgad uses are supported.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON header, then the tensor data.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness, hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { TextDecoder } from 'node:util';
import { HgadArgumentError, HgadError, HgadModelFileError, describe } from '../errors';

export type DType = 'F32' | 'I32' | 'F64' | 'U8';

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Float64Array | Uint8Array;
}

/** A tensor's place in the file: bytes [begin, end) of the data section. */
export interface Located {
  name: string;
  begin: number;
  end: number;
  dtype: DType;
  shape: number[];
}

export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

interface DTypeInfo {
  size: number;
  /** The `[object X]` tag of the matching typed array; compared by tag because instanceof fails across realms (jest, vm). */
  tag: string;
  view: (bytes: ArrayBuffer) => TensorEntry['data'];
}

const DTYPES: Record<DType, DTypeInfo> = {
  F32: { size: 4, tag: '[object Float32Array]', view: (b) => new Float32Array(b) },
  I32: { size: 4, tag: '[object Int32Array]', view: (b) => new Int32Array(b) },
  F64: { size: 8, tag: '[object Float64Array]', view: (b) => new Float64Array(b) },
  U8: { size: 1, tag: '[object Uint8Array]', view: (b) => new Uint8Array(b) },
};

const METADATA_KEY = '__metadata__';
/** Real headers are kilobytes; a huge length means a corrupt or hostile file, so refuse before allocating. */
const MAX_HEADER_BYTES = 100_000_000;
/** The reference implementation pads the header so the data section starts 8-byte aligned. */
const HEADER_ALIGNMENT = 8;
const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** The file is little-endian; typed arrays use the host order, so big-endian hosts swap each element. */
function toLittleEndianInPlace(bytes: Uint8Array, elementSize: number): void {
  if (HOST_IS_LITTLE_ENDIAN || elementSize === 1) return;
  for (let i = 0; i < bytes.length; i += elementSize) bytes.subarray(i, i + elementSize).reverse();
}

/** Product of a shape, or undefined when it is not a safe integer (such a tensor cannot exist in memory). */
function elementCount(shape: readonly number[]): number | undefined {
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) return undefined;
  }
  return count;
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

// ---------------------------------------------------------------------------------------------------
// Encoding

function validateTensors(tensors: TensorEntry[]): void {
  if (!Array.isArray(tensors)) throw new HgadArgumentError('tensors', 'an array of tensor entries', tensors);
  const seen = new Set<string>();
  tensors.forEach((t, i) => {
    const p = `tensors[${i}]`;
    if (!isPlainObject(t)) throw new HgadArgumentError(p, 'an object {name, dtype, shape, data}', t);
    if (typeof t.name !== 'string' || t.name === '' || t.name === METADATA_KEY) {
      throw new HgadArgumentError(`${p}.name`, `a non-empty string other than "${METADATA_KEY}"`, t.name);
    }
    if (seen.has(t.name)) throw new HgadArgumentError(`${p}.name`, 'a name not used by another tensor', t.name);
    seen.add(t.name);
    if (!isDType(t.dtype)) throw new HgadArgumentError(`${p}.dtype`, `one of ${Object.keys(DTYPES).join(', ')}`, t.dtype);
    const info = DTYPES[t.dtype];
    if (!ArrayBuffer.isView(t.data) || Object.prototype.toString.call(t.data) !== info.tag) {
      throw new HgadArgumentError(`${p}.data`, `a ${info.tag.slice(8, -1)} for dtype ${t.dtype}`, t.data);
    }
    if (!isShape(t.shape)) throw new HgadArgumentError(`${p}.shape`, 'an array of non-negative integers', t.shape);
    const count = elementCount(t.shape);
    if (count !== t.data.length) {
      throw new HgadArgumentError(`${p}.shape`, `a shape with ${t.data.length} elements to match data`, `[${t.shape.join(', ')}]`);
    }
  });
}

function validateMetadata(metadata: Record<string, string>): void {
  if (!isPlainObject(metadata)) throw new HgadArgumentError('metadata', 'an object of strings', metadata);
  for (const [key, value] of Object.entries(metadata)) {
    // safetensors readers (Rust, Python) reject non-string metadata values outright.
    if (typeof value !== 'string') throw new HgadArgumentError(`metadata.${key}`, 'a string', value);
  }
}

/** Serializes tensors, in the given order, into a safetensors file image. */
export function encodeSafetensors(tensors: TensorEntry[], metadata: Record<string, string>): Buffer {
  validateTensors(tensors);
  validateMetadata(metadata);

  // Built by hand rather than from one object: JS objects reorder integer-like keys and treat "__proto__"
  // specially, and the header should list tensors in data order.
  const parts = [`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`];
  let offset = 0;
  for (const t of tensors) {
    const end = offset + t.data.byteLength;
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLength = Math.ceil(json.length / HEADER_ALIGNMENT) * HEADER_ALIGNMENT;

  const out = Buffer.alloc(8 + headerLength + offset);
  out.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(out, 8);
  out.fill(' ', 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const t of tensors) {
    const bytes = out.subarray(position, position + t.data.byteLength);
    bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    toLittleEndianInPlace(bytes, DTYPES[t.dtype].size);
    position += t.data.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Decoding

/**
 * The header length from the file's first 8 bytes, checked against the limit and the file size before
 * anything else is read (a length field must never decide how much is allocated).
 */
function headerLength(prefix: Buffer, fileSize: number, path: string): number {
  const fail = (problem: string): never => {
    throw new HgadModelFileError(path, problem);
  };
  if (fileSize < 8) fail(`file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const declared = prefix.readBigUInt64LE(0);
  if (declared > BigInt(MAX_HEADER_BYTES)) fail(`header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const length = Number(declared);
  if (8 + length > fileSize) fail(`header length ${length} runs past the end of the ${fileSize}-byte file`);
  return length;
}

function parseHeaderText(bytes: Uint8Array, path: string): Record<string, unknown> {
  const fail = (problem: string): never => {
    throw new HgadModelFileError(path, problem);
  };
  let text = '';
  try {
    // fatal: Buffer#toString would silently replace invalid bytes with U+FFFD.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(header)) fail(`header is not a JSON object but ${describe(header)}`);
  return header as Record<string, unknown>;
}

function parseHeader(buf: Buffer, path: string): { header: Record<string, unknown>; dataStart: number } {
  const length = headerLength(buf, buf.length, path);
  return { header: parseHeaderText(buf.subarray(8, 8 + length), path), dataStart: 8 + length };
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw new HgadModelFileError(path, `${METADATA_KEY} is ${describe(value)}, not an object`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new HgadModelFileError(path, `${METADATA_KEY} value "${key}" is ${describe(v)}, not a string`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data instead of changing the prototype.
  return Object.fromEntries(Object.entries(value)) as Record<string, string>;
}

function parseEntry(name: string, value: unknown, dataLength: number, path: string): Located {
  const fail = (problem: string): never => {
    throw new HgadModelFileError(path, `tensor "${name}" ${problem}`);
  };
  if (name === '') fail('has an empty name');
  if (!isPlainObject(value)) return fail(`entry is ${describe(value)}, not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDType(dtype)) return fail(`has unsupported dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPES).join(', ')})`);
  if (!isShape(shape)) return fail(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    return fail(`data_offsets ${JSON.stringify(offsets)} are not two integers [begin, end] with 0 <= begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) fail(`data_offsets [${begin}, ${end}] run past the end of the ${dataLength}-byte data section`);
  const count = elementCount(shape);
  const expected = count === undefined ? undefined : count * DTYPES[dtype].size;
  if (expected !== end - begin) {
    fail(`holds ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${expected ?? 'an impossible number of'} bytes`);
  }
  return { name, begin, end, dtype, shape };
}

/** Safetensors requires the tensors to tile the data section exactly: no overlaps, gaps or trailing bytes. */
function checkCoverage(entries: Located[], dataLength: number, path: string): void {
  let position = 0;
  let previous: Located | undefined;
  for (const e of entries) {
    if (e.begin < position) {
      throw new HgadModelFileError(path, `tensors "${previous?.name}" and "${e.name}" overlap at byte ${e.begin} of the data section`);
    }
    if (e.begin > position) {
      throw new HgadModelFileError(path, `gap of ${e.begin - position} unused bytes at byte ${position} of the data section, before tensor "${e.name}"`);
    }
    position = e.end;
    previous = e;
  }
  if (position !== dataLength) {
    throw new HgadModelFileError(path, `${dataLength - position} trailing bytes after the last tensor in the data section`);
  }
}

/**
 * Parses and fully validates a safetensors file image; `path` only names the file in errors.
 * Tensors come back in data order, each as a fresh, aligned copy that does not share memory with `buf`.
 */
/** Metadata and tensor places of a parsed header, fully checked against a data section of dataLength bytes. */
export function parseContents(header: Record<string, unknown>, dataLength: number, path: string):
  { metadata: Record<string, string>; entries: Located[] } {
  const metadata = parseMetadata(header[METADATA_KEY], path);
  const entries = Object.entries(header)
    .filter(([name]) => name !== METADATA_KEY)
    .map(([name, value]) => parseEntry(name, value, dataLength, path))
    // end breaks ties so a zero-size tensor sorts before a tensor starting at the same byte.
    .sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkCoverage(entries, dataLength, path);
  return { metadata, entries };
}

export function decodeSafetensors(buf: Buffer, path: string): SafetensorsContents {
  if (!Buffer.isBuffer(buf)) throw new HgadArgumentError('buf', 'a Buffer', buf);
  const { header, dataStart } = parseHeader(buf, path);
  const { metadata, entries } = parseContents(header, buf.length - dataStart, path);

  const tensors = new Map<string, TensorEntry>();
  for (const e of entries) {
    // A tensor's bytes sit at an arbitrary offset of buf, so copy them into a fresh (aligned) buffer.
    const bytes = new Uint8Array(e.end - e.begin);
    bytes.set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    toLittleEndianInPlace(bytes, DTYPES[e.dtype].size);
    tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: DTYPES[e.dtype].view(bytes.buffer) });
  }
  return { metadata, tensors };
}

// ---------------------------------------------------------------------------------------------------
// Files

function ioError(action: string, path: string, err: unknown): HgadError {
  const reason = err instanceof Error ? err.message : String(err);
  return new HgadError('IO', `Could not ${action} ${path}: ${reason}`, 'path');
}

/** sha256 of the data section the tensors make, in order: the checksum hgad model files carry. */
export function dataDigest(tensors: TensorEntry[]): string {
  const hash = createHash('sha256');
  for (const t of tensors) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (HOST_IS_LITTLE_ENDIAN || DTYPES[t.dtype].size === 1) {
      hash.update(bytes);
    } else {
      const copy = Uint8Array.from(bytes);
      toLittleEndianInPlace(copy, DTYPES[t.dtype].size);
      hash.update(copy);
    }
  }
  return hash.digest('hex');
}

// Temporary files of an atomic write are `<target>.hgad-tmp-<host>-<pid>-<random>`: identifiable as
// ours, and as belonging to one process of one machine, so a later save or load of the same target
// can remove those whose process is gone (a save killed mid-write leaves a complete temporary file,
// as large as the model). Files named `<target>.tmp-<pid>-<random>` by earlier versions count too.
const TEMP_MARK = '.hgad-tmp-';
const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/** The temporary sibling a write of `path` uses. */
export function tempPath(path: string): string {
  return `${path}${TEMP_MARK}${HOST_TAG}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/**
 * Removes temporary files that writes of `path` by processes of this machine that no longer run left
 * behind. Best effort: a folder that cannot be listed, or a file another process removed first, is
 * not an error. Returns the names removed.
 */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const ours = new RegExp(`^${HOST_TAG}-(\\d+)-[0-9a-f]{12}$`);
  const legacy = /^(\d+)-[0-9a-f]{12}$/;
  const removed: string[] = [];
  for (const name of names) {
    let pid: number | undefined;
    if (name.startsWith(base + TEMP_MARK)) pid = Number(ours.exec(name.slice(base.length + TEMP_MARK.length))?.[1]);
    else if (name.startsWith(`${base}.tmp-`)) pid = Number(legacy.exec(name.slice(base.length + 5))?.[1]);
    if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    try {
      await rm(join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // Someone else's cleanup won, or the folder is read-only: nothing to do.
    }
  }
  return removed;
}

/**
 * Writes the file so that `path` holds either its old contents or the complete new file, even if the
 * process or machine dies part-way: write a temporary sibling, fsync it, then rename it over `path`.
 * Every error path removes the temporary file; one left by a killed process is removed by the next
 * write or load of the same path (removeStaleTemps).
 */
export async function writeSafetensorsAtomic(
  path: string,
  tensors: TensorEntry[],
  metadata: Record<string, string>,
): Promise<void> {
  const image = encodeSafetensors(tensors, metadata); // argument errors surface before the disk is touched
  await removeStaleTemps(path);
  // Same directory as the target: rename is only atomic within one file system.
  const tmp = tempPath(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'wx');
    await handle.writeFile(image);
    // Without the fsync a crash after the rename can leave a renamed but empty file.
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw ioError('write', path, err);
  }
  await syncDirectory(dirname(path));
}

/** Makes the rename itself durable. Best effort: Windows and some file systems cannot fsync a directory. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // The new file is already in place; failing here would report an error for a write that happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Opens a file for reading only when it is a regular file: a device (/dev/zero), a FIFO or a socket
 * never ends or blocks, so it is refused before a byte is read (O_NONBLOCK keeps the open itself from
 * waiting for a FIFO's writer). The caller closes the handle.
 */
export async function openRegularFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw ioError('read', path, err);
  }
  try {
    const st = await handle.stat();
    // A directory stays what reading it always was, an IO error; anything else that is not a regular
    // file cannot hold a model.
    if (st.isDirectory()) throw ioError('read', path, new Error('EISDIR: illegal operation on a directory'));
    if (!st.isFile()) {
      const kind = st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isFIFO() ? 'a FIFO'
        : st.isSocket() ? 'a socket' : 'not a regular file';
      throw new HgadModelFileError(path, `is ${kind}, not a regular file`);
    }
    return { handle, size: st.size };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err instanceof HgadError ? err : ioError('read', path, err);
  }
}

/** Reads exactly length bytes at position, or fails naming the file (it shrank while being read). */
export async function readExactly(handle: FileHandle, buffer: Uint8Array, length: number, position: number,
  path: string): Promise<void> {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await handle.read(buffer, done, length - done, position + done));
    } catch (err) {
      throw ioError('read', path, err);
    }
    if (n === 0) throw new HgadModelFileError(path, `file ended at byte ${position + done} while reading it (changed meanwhile?)`);
    done += n;
  }
}

/**
 * The header of an open safetensors file, read with bounded buffers: the 8-byte length is checked
 * against the limit and the file size before the header is read, and nothing of the data is read.
 */
export async function readHeader(handle: FileHandle, size: number, path: string):
  Promise<{ header: Record<string, unknown>; dataStart: number; dataLength: number }> {
  const prefix = Buffer.alloc(8);
  if (size >= 8) await readExactly(handle, prefix, 8, 0, path);
  const length = headerLength(prefix, size, path);
  const text = Buffer.alloc(length);
  await readExactly(handle, text, length, 8, path);
  return { header: parseHeaderText(text, path), dataStart: 8 + length, dataLength: size - 8 - length };
}

/**
 * Reads and validates a safetensors file. The header is read and checked first; the data section is
 * read only when its size is that of the tensors the header lists and at most maxDataBytes.
 */
export async function readSafetensors(path: string, maxDataBytes = 2 ** 32): Promise<SafetensorsContents> {
  const { handle, size } = await openRegularFile(path);
  try {
    const { header, dataStart, dataLength } = await readHeader(handle, size, path);
    const { metadata, entries } = parseContents(header, dataLength, path);
    if (dataLength > maxDataBytes) {
      throw new HgadModelFileError(path, `data section of ${dataLength} bytes exceeds the ${maxDataBytes}-byte limit`);
    }
    const tensors = new Map<string, TensorEntry>();
    for (const e of entries) {
      // A fresh (aligned) buffer per tensor.
      const bytes = new Uint8Array(e.end - e.begin);
      await readExactly(handle, bytes, bytes.length, dataStart + e.begin, path);
      toLittleEndianInPlace(bytes, DTYPES[e.dtype].size);
      tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: DTYPES[e.dtype].view(bytes.buffer) });
    }
    return { metadata, tensors };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** Swaps a little-endian chunk of `elementSize`-byte elements into host order, in place (no-op on LE hosts). */
export function fromLittleEndianInPlace(bytes: Uint8Array, elementSize: number): void {
  toLittleEndianInPlace(bytes, elementSize);
}
