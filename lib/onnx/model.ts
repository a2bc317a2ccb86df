/**
 * An ONNX ModelProto opened for editing. The graph is kept as its list of fields: nodes, inputs, outputs,
 * initialisers and value_info are parsed into typed views, every other field (and every field of a
 * message hgad did not change) is written back byte for byte.
 */
import {
  DataType, Dim, GRAPH, MODEL, OnnxNode, TensorData, ValueInfo, encodeNode, encodeTensor, encodeValueInfo, parseNode,
  parseTensor, parseValueInfo,
} from './proto';
import {
  Field, Wire, WireError, bytesField, decodeFields, encodeFields, messageField, readInt, readString, stringField,
  varintField,
} from './wire';

type Kind = 'node' | 'input' | 'output' | 'initializer' | 'valueInfo';
const KIND_OF_FIELD: Readonly<Record<number, Kind>> = {
  [GRAPH.node]: 'node', [GRAPH.input]: 'input', [GRAPH.output]: 'output', [GRAPH.initializer]: 'initializer',
  [GRAPH.valueInfo]: 'valueInfo',
};
const FIELD_OF_KIND: Readonly<Record<Kind, number>> = {
  node: GRAPH.node, input: GRAPH.input, output: GRAPH.output, initializer: GRAPH.initializer, valueInfo: GRAPH.valueInfo,
};

interface Entry {
  field: Field; // for typed entries, `field.raw` is dropped once the view changes
  kind?: Kind;
  node?: OnnxNode;
  info?: ValueInfo;
  tensor?: TensorData;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export class OnnxGraph {
  private entries: Entry[];

  constructor(bytes: Uint8Array) {
    this.entries = decodeFields(bytes).map((field) => {
      const kind = field.wire === Wire.Bytes ? KIND_OF_FIELD[field.no] : undefined;
      if (!kind) return { field };
      const b = field.value as Uint8Array;
      if (kind === 'node') return { field, kind, node: parseNode(b) };
      if (kind === 'initializer') return { field, kind, tensor: parseTensor(b) };
      return { field, kind, info: parseValueInfo(b) };
    });
  }

  get name(): string {
    return readString(this.entries.map((e) => e.field), GRAPH.name);
  }

  get nodes(): OnnxNode[] {
    return this.entries.filter((e) => e.kind === 'node').map((e) => e.node as OnnxNode);
  }
  get inputs(): ValueInfo[] {
    return this.infos('input');
  }
  get outputs(): ValueInfo[] {
    return this.infos('output');
  }
  get valueInfo(): ValueInfo[] {
    return this.infos('valueInfo');
  }
  get initializers(): TensorData[] {
    return this.entries.filter((e) => e.kind === 'initializer').map((e) => e.tensor as TensorData);
  }

  private infos(kind: Kind): ValueInfo[] {
    return this.entries.filter((e) => e.kind === kind).map((e) => e.info as ValueInfo);
  }

  /** The node whose outputs include `tensor`, if any. */
  producer(tensor: string): OnnxNode | undefined {
    for (const e of this.entries) if (e.kind === 'node' && e.node?.outputs.includes(tensor)) return e.node;
    return undefined;
  }

  initializer(name: string): TensorData | undefined {
    for (const e of this.entries) if (e.kind === 'initializer' && e.tensor?.name === name) return e.tensor;
    return undefined;
  }

  /** Every tensor name the graph mentions (inputs, initialisers, node outputs). */
  tensorNames(): Set<string> {
    const s = new Set<string>();
    for (const e of this.entries) {
      if (e.node) for (const o of e.node.outputs) s.add(o);
      if (e.info && e.kind === 'input') s.add(e.info.name);
      if (e.tensor) s.add(e.tensor.name);
    }
    return s;
  }

  /** Adds nodes before every existing node (prepend) or after the last one; the graph stays topologically sorted
   *  when prepended nodes only read graph inputs/initialisers and appended nodes only read existing tensors. */
  addNodes(nodes: OnnxNode[], where: 'start' | 'end'): void {
    const made: Entry[] = nodes.map((n) => ({ field: bytesField(GRAPH.node, encodeNode(n)), kind: 'node', node: n }));
    const idx = where === 'start'
      ? this.entries.findIndex((e) => e.kind === 'node')
      : this.lastIndex('node') + 1;
    this.entries.splice(idx < 0 || (where === 'end' && idx === 0) ? this.entries.length : idx, 0, ...made);
  }

  addInitializer(t: TensorData): void {
    this.entries.push({ field: bytesField(GRAPH.initializer, encodeTensor(t)), kind: 'initializer', tensor: t });
  }
  addInput(vi: ValueInfo): void {
    this.insertInfo('input', vi);
  }
  addOutput(vi: ValueInfo): void {
    this.insertInfo('output', vi);
  }
  addValueInfo(vi: ValueInfo): void {
    this.insertInfo('valueInfo', vi);
  }

  removeInput(name: string): boolean {
    return this.remove('input', name);
  }
  removeOutput(name: string): boolean {
    return this.remove('output', name);
  }

  /** Replaces the dims of an input (or output / value_info) of that name, e.g. to make them symbolic. */
  setShape(kind: 'input' | 'output' | 'valueInfo', name: string, shape: Dim[] | undefined): void {
    const e = this.entries.find((x) => x.kind === kind && x.info?.name === name);
    if (!e || !e.info) throw new WireError(`graph has no ${kind} named "${name}"`);
    const info: ValueInfo = { ...e.info };
    if (shape === undefined) delete info.shape;
    else info.shape = shape;
    e.info = info;
    e.field = bytesField(FIELD_OF_KIND[kind], encodeValueInfo(info));
  }

  /** Drops the shapes of every value_info entry (keeping element types): shape hints recorded for one input
   *  size would contradict the shapes at another size. */
  clearValueInfoShapes(): void {
    for (const e of this.entries) {
      if (e.kind === 'valueInfo' && e.info?.shape !== undefined) this.setShape('valueInfo', e.info.name, undefined);
    }
  }

  encode(): Uint8Array {
    return encodeFields(this.entries.map((e) => e.field));
  }

  private insertInfo(kind: Kind, vi: ValueInfo): void {
    const made: Entry = { field: bytesField(FIELD_OF_KIND[kind], encodeValueInfo(vi)), kind, info: vi };
    const last = this.lastIndex(kind);
    this.entries.splice(last < 0 ? this.entries.length : last + 1, 0, made);
  }

  private lastIndex(kind: Kind): number {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]?.kind === kind) return i;
    return -1;
  }

  private remove(kind: Kind, name: string): boolean {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => !(e.kind === kind && e.info?.name === name));
    return this.entries.length !== before;
  }
}

export class OnnxModel {
  private fields: Field[];
  readonly graph: OnnxGraph;

  private constructor(fields: Field[], graph: OnnxGraph) {
    this.fields = fields;
    this.graph = graph;
  }

  /** Parses ModelProto bytes. Throws WireError for data that is not a well-formed ONNX model. */
  static decode(bytes: Uint8Array): OnnxModel {
    const fields = decodeFields(bytes);
    const graphFields = fields.filter((f) => f.no === MODEL.graph && f.wire === Wire.Bytes);
    if (graphFields.length !== 1) throw new WireError(`expected one graph in the model, found ${graphFields.length}`);
    if (readInt(fields, MODEL.irVersion) === undefined) throw new WireError('no ir_version: not an ONNX model');
    return new OnnxModel(fields, new OnnxGraph(graphFields[0]?.value as Uint8Array));
  }

  /** A new model around a graph built with OnnxGraph's editing methods. */
  static create(options: { graphName: string; opsets: OpsetImport[]; irVersion?: number; producer?: string; docString?: string; metadata?: Record<string, string> }): OnnxModel {
    const fields: Field[] = [varintField(MODEL.irVersion, options.irVersion ?? 7)];
    fields.push(stringField(MODEL.producerName, options.producer ?? 'hgad'));
    if (options.docString) fields.push(stringField(MODEL.docString, options.docString));
    fields.push(bytesField(MODEL.graph, encodeFields([stringField(GRAPH.name, options.graphName)])));
    for (const o of options.opsets) fields.push(messageField(MODEL.opsetImport, [stringField(1, o.domain), varintField(2, o.version)]));
    for (const [k, v] of Object.entries(options.metadata ?? {})) fields.push(messageField(MODEL.metadataProps, [stringField(1, k), stringField(2, v)]));
    return OnnxModel.decode(encodeFields(fields));
  }

  get irVersion(): number {
    return readInt(this.fields, MODEL.irVersion) ?? 0;
  }

  get producerName(): string {
    return readString(this.fields, MODEL.producerName);
  }

  get docString(): string {
    return readString(this.fields, MODEL.docString);
  }

  get metadata(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const f of this.fields) if (f.no === MODEL.metadataProps && f.wire === Wire.Bytes) {
      const kv = decodeFields(f.value as Uint8Array);
      out[readString(kv, 1)] = readString(kv, 2);
    }
    return out;
  }

  get opsets(): OpsetImport[] {
    return this.fields.filter((f) => f.no === MODEL.opsetImport && f.wire === Wire.Bytes).map((f) => {
      const o = decodeFields(f.value as Uint8Array);
      return { domain: readString(o, 1), version: readInt(o, 2) ?? 0 };
    });
  }

  /** The opset version imported for a domain ('' and 'ai.onnx' are the default domain). */
  opset(domain = ''): number | undefined {
    const d = domain === 'ai.onnx' ? '' : domain;
    return this.opsets.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === d)?.version;
  }

  encode(): Uint8Array {
    const graph = this.graph.encode();
    return encodeFields(this.fields.map((f) => (f.no === MODEL.graph && f.wire === Wire.Bytes ? bytesField(MODEL.graph, graph) : f)));
  }
}

export { DataType };
