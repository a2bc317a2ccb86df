/**
 * Field numbers and typed views of the ONNX messages hgad reads or writes (onnx.proto, proto2).
 * Parsing keeps each message's field list so untouched parts re-encode unchanged.
 */
import {
  Field, Wire, WireError, asInt64, bytesField, decodeFields, decodeString, encodeFields, firstField, float32Field,
  messageField, readInt, readRepeatedFloat, readRepeatedVarint, readString, readStrings, stringField, varintField,
} from './wire';

/** TensorProto.DataType values used here. */
export const DataType = {
  FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10,
  DOUBLE: 11, UINT32: 12, UINT64: 13,
} as const;

export const DATA_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(DataType).map(([k, v]) => [v, k.toLowerCase()]),
);

/** AttributeProto.AttributeType values. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export type Dim = number | string | null; // fixed size, symbolic name, or unknown

export interface ValueInfo {
  name: string;
  /** Tensor element type (DataType); undefined when not a tensor type or not given. */
  elemType?: number;
  /** undefined: shape not given (any rank). */
  shape?: Dim[];
}

export type AttributeValue = number | string | number[] | TensorData;

export interface Attribute {
  name: string;
  type: number;
  value: AttributeValue;
}

export interface OnnxNode {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  /** Parsed only for the simple kinds (float, int, string, floats, ints, tensor); others stay in `fields`. */
  attributes: Attribute[];
}

export interface TensorData {
  name: string;
  dataType: number;
  dims: number[];
  /** Little-endian element bytes (raw_data); absent when the values sit in typed fields or external data. */
  raw?: Uint8Array;
}

// ---- field numbers ----
export const MODEL = { irVersion: 1, producerName: 2, producerVersion: 3, domain: 4, modelVersion: 5, docString: 6, graph: 7, opsetImport: 8, metadataProps: 14 } as const;
export const GRAPH = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12, valueInfo: 13 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, docString: 6, domain: 7 } as const;
const ATTR = { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, strings: 9, type: 20 } as const;
const TENSOR = { dims: 1, dataType: 2, floatData: 4, int32Data: 5, int64Data: 7, name: 8, rawData: 9, doubleData: 10, dataLocation: 14 } as const;
const VALUE_INFO = { name: 1, type: 2 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1, shape: 2 } as const;
const SHAPE = { dim: 1 } as const;
const DIM = { value: 1, param: 2 } as const;

// ---- decoding ----
export function parseNode(bytes: Uint8Array): OnnxNode {
  const f = decodeFields(bytes);
  const attributes: Attribute[] = [];
  for (const a of f) if (a.no === NODE.attribute && a.wire === Wire.Bytes) {
    const parsed = parseAttribute(a.value as Uint8Array);
    if (parsed) attributes.push(parsed);
  }
  return {
    opType: readString(f, NODE.opType),
    domain: readString(f, NODE.domain),
    name: readString(f, NODE.name),
    inputs: readStrings(f, NODE.input),
    outputs: readStrings(f, NODE.output),
    attributes,
  };
}

function parseAttribute(bytes: Uint8Array): Attribute | undefined {
  const f = decodeFields(bytes);
  const name = readString(f, ATTR.name);
  const type = readInt(f, ATTR.type) ?? 0;
  switch (type) {
    case AttrType.FLOAT: return { name, type, value: readRepeatedFloat(f, ATTR.f)[0] ?? 0 };
    case AttrType.INT: return { name, type, value: readInt(f, ATTR.i) ?? 0 };
    case AttrType.STRING: return { name, type, value: readString(f, ATTR.s) };
    case AttrType.FLOATS: return { name, type, value: readRepeatedFloat(f, ATTR.floats) };
    case AttrType.INTS: return { name, type, value: readRepeatedVarint(f, ATTR.ints) };
    case AttrType.TENSOR: {
      const t = firstField(f, ATTR.t);
      return t ? { name, type, value: parseTensor(t.value as Uint8Array) } : undefined;
    }
    default: return undefined;
  }
}

export function parseTensor(bytes: Uint8Array): TensorData {
  const f = decodeFields(bytes);
  const t: TensorData = {
    name: readString(f, TENSOR.name),
    dataType: readInt(f, TENSOR.dataType) ?? 0,
    dims: readRepeatedVarint(f, TENSOR.dims),
  };
  const raw = firstField(f, TENSOR.rawData);
  if (raw) t.raw = raw.value as Uint8Array;
  else if ((readInt(f, TENSOR.dataLocation) ?? 0) === 0) {
    // Values in typed fields: re-express them as raw little-endian bytes so readers have one path.
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (t.dataType === DataType.FLOAT) t.raw = toBytes(Float32Array.from(readRepeatedFloat(f, TENSOR.floatData)));
    else if (t.dataType === DataType.INT64) t.raw = toBytes(BigInt64Array.from(readRepeatedVarint(f, TENSOR.int64Data), BigInt));
    else if (t.dataType === DataType.INT32) t.raw = toBytes(Int32Array.from(readRepeatedVarint(f, TENSOR.int32Data)));
    else if (t.dataType === DataType.UINT8 || t.dataType === DataType.BOOL) t.raw = Uint8Array.from(readRepeatedVarint(f, TENSOR.int32Data));
    else if (t.dataType === DataType.INT8) t.raw = toBytes(Int8Array.from(readRepeatedVarint(f, TENSOR.int32Data)));
    if (t.raw && n > 0 && t.raw.length === 0) delete t.raw;
  }
  return t;
}

function toBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The values of a small numeric tensor (scales, zero points, shapes) as plain numbers. */
export function tensorValues(t: TensorData): number[] {
  if (!t.raw) throw new WireError(`tensor "${t.name}" has no inline data`);
  const b = t.raw;
  // A fresh, aligned copy: `raw` is often a view into a Node Buffer, whose slice() is another view.
  const copy = new Uint8Array(b);
  const buf = copy.buffer;
  switch (t.dataType) {
    case DataType.FLOAT: return Array.from(new Float32Array(buf, 0, b.length / 4));
    case DataType.DOUBLE: return Array.from(new Float64Array(buf, 0, b.length / 8));
    case DataType.UINT8: case DataType.BOOL: return Array.from(copy);
    case DataType.INT8: return Array.from(new Int8Array(buf));
    case DataType.INT32: return Array.from(new Int32Array(buf, 0, b.length / 4));
    case DataType.INT64: return Array.from(new BigInt64Array(buf, 0, b.length / 8), Number);
    default: throw new WireError(`tensor "${t.name}" has data type ${DATA_TYPE_NAMES[t.dataType] ?? t.dataType}, not a number type hgad reads`);
  }
}

export function parseValueInfo(bytes: Uint8Array): ValueInfo {
  const f = decodeFields(bytes);
  const vi: ValueInfo = { name: readString(f, VALUE_INFO.name) };
  const type = firstField(f, VALUE_INFO.type);
  if (!type) return vi;
  const tt = firstField(decodeFields(type.value as Uint8Array), TYPE.tensorType);
  if (!tt) return vi;
  const ttf = decodeFields(tt.value as Uint8Array);
  const elem = readInt(ttf, TENSOR_TYPE.elemType);
  if (elem !== undefined) vi.elemType = elem;
  const shape = firstField(ttf, TENSOR_TYPE.shape);
  if (shape) {
    vi.shape = decodeFields(shape.value as Uint8Array).filter((d) => d.no === SHAPE.dim).map((d) => {
      const df = decodeFields(d.value as Uint8Array);
      const v = readInt(df, DIM.value);
      if (v !== undefined) return v;
      const p = firstField(df, DIM.param);
      return p ? decodeString(p.value as Uint8Array) : null;
    });
  }
  return vi;
}

// ---- encoding ----
export function encodeValueInfo(vi: ValueInfo): Uint8Array {
  const tt: Field[] = [];
  if (vi.elemType !== undefined) tt.push(varintField(TENSOR_TYPE.elemType, vi.elemType));
  if (vi.shape) {
    tt.push(messageField(TENSOR_TYPE.shape, vi.shape.map((d) => messageField(SHAPE.dim,
      typeof d === 'number' ? [varintField(DIM.value, d)] : typeof d === 'string' ? [stringField(DIM.param, d)] : []))));
  }
  return encodeFields([stringField(VALUE_INFO.name, vi.name), messageField(VALUE_INFO.type, [messageField(TYPE.tensorType, tt)])]);
}

export function encodeTensor(t: TensorData): Uint8Array {
  const f: Field[] = t.dims.map((d) => varintField(TENSOR.dims, d));
  f.push(varintField(TENSOR.dataType, t.dataType));
  if (t.name) f.push(stringField(TENSOR.name, t.name));
  f.push(bytesField(TENSOR.rawData, t.raw ?? new Uint8Array(0)));
  return encodeFields(f);
}

function encodeAttribute(a: Attribute): Uint8Array {
  const f: Field[] = [stringField(ATTR.name, a.name)];
  const v = a.value;
  switch (a.type) {
    case AttrType.FLOAT: f.push(float32Field(ATTR.f, v as number)); break;
    case AttrType.INT: f.push(varintField(ATTR.i, v as number)); break;
    case AttrType.STRING: f.push(stringField(ATTR.s, v as string)); break;
    case AttrType.FLOATS: for (const x of v as number[]) f.push(float32Field(ATTR.floats, x)); break;
    case AttrType.INTS: for (const x of v as number[]) f.push(varintField(ATTR.ints, x)); break;
    case AttrType.TENSOR: f.push(bytesField(ATTR.t, encodeTensor(v as TensorData))); break;
    default: throw new WireError(`cannot encode attribute "${a.name}" of type ${a.type}`);
  }
  f.push(varintField(ATTR.type, a.type));
  return encodeFields(f);
}

export function encodeNode(n: OnnxNode): Uint8Array {
  const f: Field[] = [];
  for (const i of n.inputs) f.push(stringField(NODE.input, i));
  for (const o of n.outputs) f.push(stringField(NODE.output, o));
  if (n.name) f.push(stringField(NODE.name, n.name));
  f.push(stringField(NODE.opType, n.opType));
  for (const a of n.attributes) f.push(bytesField(NODE.attribute, encodeAttribute(a)));
  if (n.domain) f.push(stringField(NODE.domain, n.domain));
  return encodeFields(f);
}

// ---- small constructors ----
export const attr = {
  int: (name: string, value: number): Attribute => ({ name, type: AttrType.INT, value }),
  ints: (name: string, value: number[]): Attribute => ({ name, type: AttrType.INTS, value }),
  float: (name: string, value: number): Attribute => ({ name, type: AttrType.FLOAT, value }),
  floats: (name: string, value: number[]): Attribute => ({ name, type: AttrType.FLOATS, value }),
  string: (name: string, value: string): Attribute => ({ name, type: AttrType.STRING, value }),
  tensor: (name: string, value: TensorData): Attribute => ({ name, type: AttrType.TENSOR, value }),
};

export function node(opType: string, inputs: string[], outputs: string[], name: string, attributes: Attribute[] = [], domain = ''): OnnxNode {
  return { opType, domain, name, inputs, outputs, attributes };
}

/** A tensor from a typed array; its bytes are stored little-endian as raw_data. */
export function tensor(name: string, dims: number[], data: Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array): TensorData {
  const dataType = data instanceof Float32Array ? DataType.FLOAT : data instanceof Int32Array ? DataType.INT32
    : data instanceof BigInt64Array ? DataType.INT64 : data instanceof Int8Array ? DataType.INT8 : DataType.UINT8;
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new WireError(`tensor "${name}": ${data.length} values for dims [${dims.join(', ')}]`);
  return { name, dataType, dims, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() };
}

export { asInt64 };
