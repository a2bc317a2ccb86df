/**
 * Protocol-buffers wire format: just enough to walk an ONNX file field by field. A decoded message is
 * a list of fields that remember their exact original bytes (`raw`), so re-encoding a message that was
 * only partly edited reproduces every untouched field byte for byte, including fields hgad does not know.
 */

export const enum Wire {
  Varint = 0,
  Fixed64 = 1,
  Bytes = 2,
  Fixed32 = 5,
}

export interface Field {
  no: number;
  wire: Wire;
  /** Varint: a number when it fits 2^53 exactly, else a bigint (two's complement for negative int64).
   *  Fixed32, Fixed64 and Bytes: the payload bytes (a view into the decoded buffer). */
  value: number | bigint | Uint8Array;
  /** The field's original encoding (tag included); absent for a field made or changed by hgad. */
  raw?: Uint8Array;
}

/** Malformed protobuf data; callers turn it into an HgadError naming the file. */
export class WireError extends Error {}

interface Cursor {
  buf: Uint8Array;
  pos: number;
}

function readVarint(c: Cursor): number | bigint {
  let result = 0;
  let mul = 1;
  const start = c.pos;
  for (let i = 0; i < 10; i++) {
    if (c.pos >= c.buf.length) throw new WireError(`varint runs past the end of the data at byte ${start}`);
    const b = c.buf[c.pos++] as number;
    if (i < 7) {
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return result;
    } else {
      // Past 49 bits a number may lose precision: redo it in bigint.
      let big = 0n;
      for (let j = start; j <= c.pos - 1; j++) big |= BigInt((c.buf[j] as number) & 0x7f) << BigInt(7 * (j - start));
      if ((b & 0x80) === 0) return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
  }
  throw new WireError(`varint longer than 10 bytes at byte ${start}`);
}

/** Decodes one message level. Throws WireError on truncated or malformed data. */
export function decodeFields(buf: Uint8Array): Field[] {
  const c: Cursor = { buf, pos: 0 };
  const fields: Field[] = [];
  while (c.pos < buf.length) {
    const start = c.pos;
    const tag = readVarint(c);
    if (typeof tag !== 'number') throw new WireError(`field tag too large at byte ${start}`);
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no === 0) throw new WireError(`field number 0 at byte ${start}`);
    let value: number | bigint | Uint8Array;
    if (wire === Wire.Varint) {
      value = readVarint(c);
    } else if (wire === Wire.Bytes) {
      const len = readVarint(c);
      if (typeof len !== 'number' || c.pos + len > buf.length) {
        throw new WireError(`field ${no} at byte ${start} claims ${String(len)} bytes; only ${buf.length - c.pos} remain`);
      }
      value = buf.subarray(c.pos, c.pos + len);
      c.pos += len;
    } else if (wire === Wire.Fixed32 || wire === Wire.Fixed64) {
      const len = wire === Wire.Fixed32 ? 4 : 8;
      if (c.pos + len > buf.length) throw new WireError(`field ${no} at byte ${start} runs past the end of the data`);
      value = buf.subarray(c.pos, c.pos + len);
      c.pos += len;
    } else {
      throw new WireError(`unsupported wire type ${wire} (field ${no}) at byte ${start}`);
    }
    fields.push({ no, wire: wire as Wire, value, raw: buf.subarray(start, c.pos) });
  }
  return fields;
}

/** Growable byte sink; chunks are joined once at the end. */
export class Writer {
  private chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    this.chunks.push(Uint8Array.from(this.scratch));
    this.scratch = [];
  }

  bytes(b: Uint8Array): this {
    this.flushScratch();
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  varint(v: number | bigint): this {
    if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) {
      let n = v;
      while (n >= 128) {
        this.scratch.push((n % 128) | 0x80);
        n = Math.floor(n / 128);
      }
      this.scratch.push(n);
      this.length += varintSize(v);
      return this;
    }
    // Negative int64 values take ten bytes: their 64-bit two's complement.
    let big = BigInt.asUintN(64, BigInt(v));
    let count = 0;
    do {
      const low = Number(big & 0x7fn);
      big >>= 7n;
      this.scratch.push(big > 0n ? low | 0x80 : low);
      count++;
    } while (big > 0n);
    this.length += count;
    return this;
  }

  tag(no: number, wire: Wire): this {
    return this.varint(no * 8 + wire);
  }

  finish(): Uint8Array {
    this.flushScratch();
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: false });

export function encodeString(s: string): Uint8Array {
  return utf8.encode(s);
}

export function decodeString(b: Uint8Array): string {
  return utf8d.decode(b);
}

/** Writes one field; a field that kept its original bytes is copied as is. */
export function writeField(w: Writer, f: Field): void {
  if (f.raw) {
    w.bytes(f.raw);
    return;
  }
  w.tag(f.no, f.wire);
  if (f.wire === Wire.Varint) w.varint(f.value as number | bigint);
  else if (f.wire === Wire.Bytes) w.varint((f.value as Uint8Array).length).bytes(f.value as Uint8Array);
  else w.bytes(f.value as Uint8Array);
}

export function encodeFields(fields: readonly Field[]): Uint8Array {
  const w = new Writer();
  for (const f of fields) writeField(w, f);
  return w.finish();
}

// Builders for new fields (no `raw`: they are encoded from their value).
export function bytesField(no: number, value: Uint8Array): Field {
  return { no, wire: Wire.Bytes, value };
}
export function stringField(no: number, value: string): Field {
  return { no, wire: Wire.Bytes, value: encodeString(value) };
}
export function varintField(no: number, value: number | bigint): Field {
  return { no, wire: Wire.Varint, value };
}
export function messageField(no: number, fields: readonly Field[]): Field {
  return bytesField(no, encodeFields(fields));
}
export function float32Field(no: number, value: number): Field {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, value, true);
  return { no, wire: Wire.Fixed32, value: b };
}

/** Reads a field value as a signed int64 (number; exact within 2^53). */
export function asInt64(v: number | bigint | Uint8Array): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(BigInt.asIntN(64, v));
  throw new WireError('expected a varint field');
}

/** Repeated varints: accepts the packed and the unpacked encoding (proto2 writers use either). */
export function readRepeatedVarint(fields: readonly Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire === Wire.Varint) out.push(asInt64(f.value));
    else if (f.wire === Wire.Bytes) {
      const c: Cursor = { buf: f.value as Uint8Array, pos: 0 };
      while (c.pos < c.buf.length) out.push(asInt64(readVarint(c)));
    }
  }
  return out;
}

/** Repeated float32: packed or not. */
export function readRepeatedFloat(fields: readonly Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    const b = f.value as Uint8Array;
    if (f.wire !== Wire.Fixed32 && f.wire !== Wire.Bytes) continue;
    if (b.length % 4 !== 0) throw new WireError(`float field ${no} has ${b.length} bytes, not a multiple of 4`);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < b.length; i += 4) out.push(dv.getFloat32(i, true));
  }
  return out;
}

export function firstField(fields: readonly Field[], no: number): Field | undefined {
  return fields.find((f) => f.no === no);
}

export function readString(fields: readonly Field[], no: number, fallback = ''): string {
  const f = firstField(fields, no);
  return f && f.wire === Wire.Bytes ? decodeString(f.value as Uint8Array) : fallback;
}

export function readStrings(fields: readonly Field[], no: number): string[] {
  return fields.filter((f) => f.no === no && f.wire === Wire.Bytes).map((f) => decodeString(f.value as Uint8Array));
}

export function readInt(fields: readonly Field[], no: number): number | undefined {
  // proto2 semantics: the last occurrence wins.
  let v: number | undefined;
  for (const f of fields) if (f.no === no && f.wire === Wire.Varint) v = asInt64(f.value);
  return v;
}
